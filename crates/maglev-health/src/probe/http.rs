//! `http` and `https`: one request on a fresh connection.
//!
//! For https, TLS is applied to the TCP connection and HTTP spoken over it
//! with a plain path (the Go tool once wrapped TLS twice by also using an
//! `https://` URL). The status must be in the configured set and, when a
//! regex is configured, the first 64 KiB of the body must match it.
//!
//! The probe does not ask for `Connection: close`: once it has what it
//! needs it drops the connection, which the zero linger turns into a reset
//! (as HAProxy's checks do), instead of a FIN exchange per probe. The
//! exchange itself is [`super::http1`]'s: one request, the head parsed in
//! place, the body read only for a regex.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use maglev_config::{HttpCheck, HttpMethod};
use maglev_tls::TlsConfigs;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::http1;
use super::layered::{probe, Target, TlsTarget};
use super::netns::QuickConnect;
use super::{sock_err, BoxFuture, Probe, Sockets};
use crate::result::{Code, ProbeResult};

#[derive(Debug)]
pub(crate) struct HttpProbe {
    check: HttpCheck,
    timeout: Duration,
    sockets: Sockets,
    user_agent: String,
    tls: Option<Arc<ClientConfig>>,
    quick: QuickConnect,
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
            quick: QuickConnect::default(),
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

    /// The request bytes for `target`; `None` when a part cannot go on
    /// the wire.
    fn request(&self, target: IpAddr) -> Option<Vec<u8>> {
        let method = match self.check.method {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
        };
        let host = self.host_header(target);
        http1::request(method, &self.check.path, &host, &self.user_agent)
    }

    /// The rest of `request` (its first `sent` bytes went with the
    /// handshake) and the response over `io`; the caller bounds it with
    /// the deadline.
    async fn exchange<S>(
        &self,
        mut io: S,
        request: &[u8],
        sent: usize,
        start: Instant,
    ) -> ProbeResult
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let took = || start.elapsed();
        let regex = self.check.response_regex.as_ref();
        let head = self.check.method == HttpMethod::Head;
        let unsent = request.get(sent..).unwrap_or_default();
        let response = match http1::exchange(&mut io, unsent, head, regex.is_some()).await {
            Ok(r) => r,
            Err(e) => return ProbeResult::new(Code::L7Rsp, e, took()),
        };
        let status = response.status;
        if !self.check.response_codes.contains(status) {
            return ProbeResult::new(Code::L7Sts, http1::status_detail(status), took());
        }
        if let (Some(re), Some(body)) = (regex, &response.body) {
            if !re.regex().is_match(&String::from_utf8_lossy(body)) {
                return ProbeResult::new(
                    Code::L7Rsp,
                    format!("HTTP {status}, body does not match /{}/", re.as_str()),
                    took(),
                );
            }
        }
        ProbeResult::new(Code::L7Ok, http1::status_detail(status), took())
    }
}

impl Probe for HttpProbe {
    fn check(&self, target: IpAddr) -> BoxFuture<'_, ProbeResult> {
        Box::pin(async move {
            let Some(request) = self.request(target) else {
                return sock_err(
                    "cannot build request: path, Host or User-Agent is not visible ASCII",
                    Duration::ZERO,
                );
            };
            let to = Target {
                sockets: &self.sockets,
                quick: &self.quick,
                addr: target,
                port: self.check.port,
                tls: TlsTarget::of(self.tls.as_ref(), self.check.tls.as_ref()),
                early: &request,
            };
            probe(self.timeout, "no response", to, |stream, start, sent| {
                self.exchange(stream, &request, sent, start)
            })
            .await
        })
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}
