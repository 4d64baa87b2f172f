//! `http` and `https`: one request on a fresh connection.
//!
//! For https, TLS is applied to the TCP connection and HTTP spoken over it
//! with a plain path (the Go tool once wrapped TLS twice by also using an
//! `https://` URL). The status must be in the configured set and, when a
//! regex is configured, the first 64 KiB of the body must match it.
//!
//! The probe does not ask for `Connection: close`: once it has what it
//! needs it drops the connection, which the zero linger turns into a reset
//! (as HAProxy's checks do), instead of a FIN exchange per probe.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HOST, USER_AGENT};
use hyper::Request;
use hyper_util::rt::TokioIo;
use maglev_config::{HttpCheck, HttpMethod};
use maglev_tls::TlsConfigs;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::layered::{drive, probe, TlsTarget};
use super::{sock_err, BoxFuture, Probe, Sockets};
use crate::result::{Code, ProbeResult};

/// At most this much of the body is read for the regex.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct HttpProbe {
    check: HttpCheck,
    timeout: Duration,
    sockets: Sockets,
    user_agent: String,
    tls: Option<Arc<ClientConfig>>,
}

impl HttpProbe {
    pub(crate) fn new(
        check: HttpCheck,
        timeout: Duration,
        sockets: Sockets,
        user_agent: String,
        tls: &TlsConfigs,
    ) -> HttpProbe {
        let tls = check.tls.as_ref().map(|t| tls.get(t.insecure));
        HttpProbe {
            check,
            timeout,
            sockets,
            user_agent,
            tls,
        }
    }

    fn host_header(&self, target: IpAddr) -> String {
        if let Some(h) = &self.check.host {
            return h.clone();
        }
        let default_port = if self.tls.is_some() { 443 } else { 80 };
        let host = match target {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        if self.check.port == default_port {
            host
        } else {
            format!("{host}:{}", self.check.port)
        }
    }

    /// One request over `io`; the caller bounds it with the deadline.
    async fn exchange<S>(&self, io: S, target: IpAddr, start: Instant) -> ProbeResult
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let took = || start.elapsed();
        let handshake = hyper::client::conn::http1::handshake(TokioIo::new(io));
        let (mut sender, conn) = match handshake.await {
            Err(e) => return ProbeResult::new(Code::L7Rsp, e.to_string(), took()),
            Ok(pair) => pair,
        };
        let method = match self.check.method {
            HttpMethod::Get => hyper::Method::GET,
            HttpMethod::Head => hyper::Method::HEAD,
        };
        let request = Request::builder()
            .method(method)
            .uri(self.check.path.as_str())
            .header(HOST, self.host_header(target))
            .header(USER_AGENT, self.user_agent.as_str())
            .body(Empty::<Bytes>::new());
        let request = match request {
            Ok(r) => r,
            Err(e) => return sock_err(format!("cannot build request: {e}"), took()),
        };
        let work = async {
            let response = match sender.send_request(request).await {
                Err(e) => return ProbeResult::new(Code::L7Rsp, e.to_string(), took()),
                Ok(r) => r,
            };
            let status = response.status().as_u16();
            if !self.check.response_codes.contains(status) {
                return ProbeResult::new(Code::L7Sts, format!("HTTP {status}"), took());
            }
            if let Some(re) = &self.check.response_regex {
                let mut body = response.into_body();
                let mut buf: Vec<u8> = Vec::new();
                while buf.len() < MAX_BODY {
                    match body.frame().await {
                        None => break,
                        Some(Err(e)) => {
                            return ProbeResult::new(Code::L7Rsp, e.to_string(), took())
                        }
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                let room = MAX_BODY - buf.len();
                                buf.extend_from_slice(&data[..data.len().min(room)]);
                            }
                        }
                    }
                }
                if !re.regex().is_match(&String::from_utf8_lossy(&buf)) {
                    return ProbeResult::new(
                        Code::L7Rsp,
                        format!("HTTP {status}, body does not match /{}/", re.as_str()),
                        took(),
                    );
                }
            }
            ProbeResult::new(Code::L7Ok, format!("HTTP {status}"), took())
        };
        // The connection is driven here, in the probe's own task, and
        // dropped with it: no task per probe, nothing left behind.
        drive(work, conn).await
    }
}

impl Probe for HttpProbe {
    fn check(&self, target: IpAddr) -> BoxFuture<'_, ProbeResult> {
        let tls = TlsTarget::of(self.tls.as_ref(), self.check.tls.as_ref());
        Box::pin(probe(
            self.timeout,
            "no response",
            &self.sockets,
            target,
            self.check.port,
            tls,
            move |stream, start| self.exchange(stream, target, start),
        ))
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}
