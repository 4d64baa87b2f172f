//! One VIP's prober: a GET (HTTP or HTTPS) or a TCP connect, bounded by the
//! timeout, with or without keep-alive.
//!
//! Without keep-alive every probe opens a new connection (and asks the
//! server to close it), so the load balancer hashes each one afresh and
//! the tally shows where new flows land right now.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONNECTION, HOST, USER_AGENT};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::stats::{Outcome, Probe};
use crate::targets::{Kind, Target};

/// At most this much of a response body is read; a longer body ends the
/// connection instead of being drained.
const MAX_BODY: usize = 64 * 1024;

/// How probes are made (maglevt's flags).
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Deadline of one probe.
    pub timeout: Duration,
    /// Request path.
    pub uri: String,
    /// Host header (and TLS server name); the VIP address when `None`.
    pub host: Option<String>,
    /// Response header whose values are tallied.
    pub header: HeaderName,
    /// Skip certificate verification.
    pub insecure: bool,
    /// Reuse connections.
    pub keepalive: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            timeout: Duration::from_secs(2),
            uri: "/.well-known/ipng/healthz".to_string(),
            host: None,
            header: HeaderName::from_static("x-ipng-frontend"),
            insecure: false,
            keepalive: false,
        }
    }
}

/// Probes one VIP; keeps the connection between probes with keep-alive.
#[derive(Debug)]
pub struct Prober {
    target: Target,
    opts: Arc<ProbeOptions>,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    host: HeaderValue,
    conn: Option<SendRequest<Empty<Bytes>>>,
}

fn net(e: impl std::fmt::Display) -> Outcome {
    Outcome::NetErr(tidy(&e.to_string()))
}

/// `Connection refused (os error 111)` → `connection refused`.
fn tidy(s: &str) -> String {
    let s = match s.find(" (os error ") {
        Some(i) => &s[..i],
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The innermost cause of an error: "connection refused" rather than
/// hyper's wrapping.
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    while let Some(inner) = e.source() {
        e = inner;
    }
    e.to_string()
}

impl Prober {
    /// A prober for `target`.
    pub fn new(target: Target, opts: Arc<ProbeOptions>) -> Prober {
        let default_port = if target.kind == Kind::Https { 443 } else { 80 };
        let host = match &opts.host {
            Some(h) => h.clone(),
            None if target.port == default_port => match target.address {
                std::net::IpAddr::V6(a) => format!("[{a}]"),
                a => a.to_string(),
            },
            None => target.label(),
        };
        let host = HeaderValue::from_str(&host).unwrap_or(HeaderValue::from_static("localhost"));
        let tls = (target.kind == Kind::Https).then(|| {
            let name = opts
                .host
                .as_deref()
                .and_then(|h| ServerName::try_from(h.to_string()).ok())
                .unwrap_or_else(|| ServerName::IpAddress(target.address.into()));
            (maglev_tls::client_config(opts.insecure), name)
        });
        Prober {
            target,
            opts,
            tls,
            host,
            conn: None,
        }
    }

    /// The VIP probed.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// One probe.
    pub async fn probe(&mut self) -> Probe {
        let at = Instant::now();
        let outcome = match tokio::time::timeout(self.opts.timeout, self.attempt()).await {
            Ok(o) => o,
            Err(_) => {
                // Whatever was in flight is abandoned with its connection.
                self.conn = None;
                Outcome::Timeout
            }
        };
        Probe {
            at: at.into_std(),
            latency: at.elapsed(),
            outcome,
        }
    }

    async fn attempt(&mut self) -> Outcome {
        if self.target.kind == Kind::Tcp {
            return match TcpStream::connect(self.target.addr()).await {
                Ok(_) => Outcome::Answer {
                    status: None,
                    tally: None,
                },
                Err(e) => net(e),
            };
        }
        let mut sender = match self.conn.take() {
            Some(s) if !s.is_closed() => s,
            _ => match self.connect().await {
                Ok(s) => s,
                Err(o) => return o,
            },
        };
        if let Err(e) = sender.ready().await {
            return net(cause(&e));
        }
        let mut req = Request::get(self.opts.uri.as_str())
            .header(HOST, self.host.clone())
            .header(USER_AGENT, concat!("maglevt/", env!("CARGO_PKG_VERSION")));
        if !self.opts.keepalive {
            req = req.header(CONNECTION, "close");
        }
        let req = match req.body(Empty::<Bytes>::new()) {
            Ok(r) => r,
            Err(e) => return net(e),
        };
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => return net(cause(&e)),
        };
        let status = resp.status().as_u16();
        let tally = resp
            .headers()
            .get(&self.opts.header)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string());
        // Read the body so the connection can be reused, up to a limit.
        let mut body = resp.into_body();
        let mut read = 0usize;
        let mut reusable = self.opts.keepalive;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(d) = f.data_ref() {
                        read += d.len();
                    }
                    if read > MAX_BODY {
                        reusable = false;
                        break;
                    }
                }
                Err(e) => return net(cause(&e)),
            }
        }
        if reusable {
            self.conn = Some(sender);
        }
        Outcome::Answer {
            status: Some(status),
            tally,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, Outcome> {
        let tcp = TcpStream::connect(self.target.addr()).await.map_err(net)?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some((config, name)) => {
                let tls = TlsConnector::from(Arc::clone(config))
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| Outcome::NetErr(format!("TLS: {}", tidy(&cause(&e)))))?;
                handshake(tls).await
            }
        }
    }
}

async fn handshake<S>(io: S) -> Result<SendRequest<Empty<Bytes>>, Outcome>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| net(cause(&e)))?;
    // The connection task ends when the sender is dropped or the server
    // closes.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_text_is_tidy() {
        assert_eq!(
            super::tidy("Connection refused (os error 111)"),
            "connection refused"
        );
        assert_eq!(
            super::tidy("invalid peer certificate"),
            "invalid peer certificate"
        );
        assert_eq!(super::tidy(""), "");
    }
}
