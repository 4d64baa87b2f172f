//! `grpc`: one `grpc.health.v1.Health/Check` call on a fresh HTTP/2
//! connection (plaintext, or TLS with ALPN `h2`).
//!
//! SERVING passes (`L7OK`); any other serving status, or a call that ends
//! with a gRPC error, fails with `L7STS` naming it (`NOT_SERVING`,
//! `SERVICE_UNKNOWN`, `gRPC UNIMPLEMENTED: …`); an HTTP status other than
//! 200 is `L7STS HTTP n`; a reply that is not a health response is
//! `L7RSP`. Connect, TLS and reply timeouts are `L4TOUT`, `L6TOUT` and
//! `L7TOUT`, as for HTTP. The call is encoded by hand (a few bytes of
//! protobuf), so probing needs no gRPC stack.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use maglev_config::GrpcCheck;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::layered::{drive, probe, Target, TlsTarget};
use super::netns::QuickConnect;
use super::{sock_err, BoxFuture, Probe, Sockets};
use crate::result::{Code, ProbeResult};

/// The most of a reply that is read.
const MAX_REPLY: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct GrpcProbe {
    check: GrpcCheck,
    timeout: Duration,
    sockets: Sockets,
    user_agent: String,
    tls: Option<Arc<ClientConfig>>,
    /// The request body, encoded once.
    body: Bytes,
    quick: QuickConnect,
}

impl GrpcProbe {
    pub(crate) fn new(
        check: GrpcCheck,
        timeout: Duration,
        sockets: Sockets,
        user_agent: String,
        tls: &maglev_tls::TlsConfigs,
    ) -> GrpcProbe {
        let tls = check.tls.as_ref().map(|t| {
            // The shared configs speak http/1.1; gRPC needs h2.
            let mut c = ClientConfig::clone(&tls.get(t.insecure));
            c.alpn_protocols = vec![b"h2".to_vec()];
            Arc::new(c)
        });
        let body = Bytes::from(frame(&encode_request(&check.service)));
        GrpcProbe {
            check,
            timeout,
            sockets,
            user_agent,
            tls,
            body,
            quick: QuickConnect::default(),
        }
    }

    fn authority(&self, target: IpAddr) -> String {
        if let Some(a) = &self.check.authority {
            return a.clone();
        }
        match target {
            IpAddr::V4(a) => format!("{a}:{}", self.check.port),
            IpAddr::V6(a) => format!("[{a}]:{}", self.check.port),
        }
    }

    async fn call<S>(&self, io: S, target: IpAddr, start: Instant) -> ProbeResult
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let took = || start.elapsed();
        let handshake =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io));
        let (mut sender, conn) = match handshake.await {
            Err(e) => return ProbeResult::new(Code::L7Rsp, format!("HTTP/2: {e}"), took()),
            Ok(pair) => pair,
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let request = Request::builder()
            .method(hyper::Method::POST)
            .uri(format!(
                "{scheme}://{}/grpc.health.v1.Health/Check",
                self.authority(target)
            ))
            .header(hyper::header::CONTENT_TYPE, "application/grpc")
            .header(hyper::header::TE, "trailers")
            .header(hyper::header::USER_AGENT, self.user_agent.as_str())
            .body(Full::new(self.body.clone()));
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
            if status != 200 {
                return ProbeResult::new(Code::L7Sts, super::http1::status_detail(status), took());
            }
            // A call that fails at once carries its status in the headers
            // ("trailers-only").
            let mut grpc_status = grpc_status(response.headers());
            let mut body = response.into_body();
            let mut data: Vec<u8> = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = match frame {
                    Ok(f) => f,
                    Err(e) => return ProbeResult::new(Code::L7Rsp, e.to_string(), took()),
                };
                match frame.into_data() {
                    Ok(d) => {
                        if data.len() + d.len() > MAX_REPLY {
                            return ProbeResult::new(
                                Code::L7Rsp,
                                "reply larger than 64 KiB",
                                took(),
                            );
                        }
                        data.extend_from_slice(&d);
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            grpc_status = grpc_status.or(self::grpc_status(&trailers));
                        }
                    }
                }
            }
            let (code, detail) = verdict(grpc_status, &data);
            ProbeResult::new(code, detail, took())
        };
        drive(work, conn).await
    }
}

impl Probe for GrpcProbe {
    fn check(&self, target: IpAddr) -> BoxFuture<'_, ProbeResult> {
        let to = Target {
            sockets: &self.sockets,
            quick: &self.quick,
            addr: target,
            port: self.check.port,
            tls: TlsTarget::of(self.tls.as_ref(), self.check.tls.as_ref()),
            // hyper writes the connection preface itself.
            early: &[],
        };
        Box::pin(probe(
            self.timeout,
            "no reply",
            to,
            move |stream, start, _| self.call(stream, target, start),
        ))
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// `grpc-status` of a header map, if present.
fn grpc_status(h: &hyper::HeaderMap) -> Option<(u32, String)> {
    let code = h.get("grpc-status")?.to_str().ok()?.trim().parse().ok()?;
    let message = h
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some((code, message))
}

/// gRPC percent-encodes `grpc-message`.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The name of a gRPC status code.
fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("code {code}"), |n| n.to_string())
}

/// `HealthCheckRequest { service }` as protobuf.
pub(crate) fn encode_request(service: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if !service.is_empty() {
        out.push(0x0a); // field 1, length-delimited
        let mut n = service.len();
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

/// A gRPC message frame: no compression, a 4-byte length, the message.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The serving status of one framed `HealthCheckResponse` (0 when the
/// field is absent, as protobuf has it); why not, when it is not one.
pub(crate) fn decode_reply(data: &[u8]) -> Result<u64, String> {
    let (&flag, rest) = data.split_first().ok_or("empty reply")?;
    if flag != 0 {
        return Err("compressed reply (none was asked for)".to_string());
    }
    let len = rest
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .ok_or("truncated reply")?;
    let msg = rest.get(4..4 + len).ok_or("truncated reply")?;
    let mut at = 0;
    let mut status = 0;
    while at < msg.len() {
        let key = varint(msg, &mut at).ok_or("malformed reply")?;
        match (key >> 3, key & 7) {
            (1, 0) => status = varint(msg, &mut at).ok_or("malformed reply")?,
            (_, 0) => {
                varint(msg, &mut at).ok_or("malformed reply")?;
            }
            (_, 1) => at += 8,
            (_, 2) => {
                let n = varint(msg, &mut at).ok_or("malformed reply")? as usize;
                at = at.checked_add(n).ok_or("malformed reply")?;
            }
            (_, 5) => at += 4,
            _ => return Err("malformed reply".to_string()),
        }
    }
    if at > msg.len() {
        return Err("malformed reply".to_string());
    }
    Ok(status)
}

/// The probe's code and detail from the call's status and reply.
pub(crate) fn verdict(status: Option<(u32, String)>, data: &[u8]) -> (Code, String) {
    match status {
        None => return (Code::L7Rsp, "no grpc-status".to_string()),
        Some((0, _)) => {}
        Some((code, message)) if message.is_empty() => {
            return (Code::L7Sts, format!("gRPC {}", code_name(code)))
        }
        Some((code, message)) => {
            return (Code::L7Sts, format!("gRPC {}: {message}", code_name(code)))
        }
    }
    match decode_reply(data) {
        Ok(1) => (Code::L7Ok, "SERVING".to_string()),
        Ok(0) => (Code::L7Sts, "UNKNOWN".to_string()),
        Ok(2) => (Code::L7Sts, "NOT_SERVING".to_string()),
        Ok(3) => (Code::L7Sts, "SERVICE_UNKNOWN".to_string()),
        Ok(n) => (Code::L7Sts, format!("serving status {n}")),
        Err(why) => (Code::L7Rsp, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u8) -> Vec<u8> {
        frame(&[0x08, status])
    }

    #[test]
    fn request_encoding() {
        assert_eq!(encode_request(""), Vec::<u8>::new());
        assert_eq!(encode_request("a.B"), vec![0x0a, 3, b'a', b'.', b'B']);
        let long = "x".repeat(200);
        assert_eq!(&encode_request(&long)[..3], &[0x0a, 0xc8, 0x01]);
    }

    #[test]
    fn verdicts() {
        let ok = Some((0, String::new()));
        assert_eq!(
            verdict(ok.clone(), &reply(1)),
            (Code::L7Ok, "SERVING".into())
        );
        assert_eq!(
            verdict(ok.clone(), &reply(2)),
            (Code::L7Sts, "NOT_SERVING".into())
        );
        assert_eq!(
            verdict(ok.clone(), &reply(3)),
            (Code::L7Sts, "SERVICE_UNKNOWN".into())
        );
        // An empty message is status 0 (UNKNOWN).
        assert_eq!(
            verdict(ok.clone(), &frame(&[])),
            (Code::L7Sts, "UNKNOWN".into())
        );
        // Unknown fields are skipped.
        assert_eq!(
            verdict(ok.clone(), &frame(&[0x12, 2, b'h', b'i', 0x08, 1])),
            (Code::L7Ok, "SERVING".into())
        );
        assert_eq!(verdict(ok.clone(), &[0, 0, 0]).0, Code::L7Rsp);
        assert_eq!(verdict(ok.clone(), &[1, 0, 0, 0, 0]).0, Code::L7Rsp);
        assert_eq!(verdict(ok, &frame(&[0x12, 9, 1])).0, Code::L7Rsp);
        assert_eq!(
            verdict(Some((12, "unknown service x".into())), &[]),
            (Code::L7Sts, "gRPC UNIMPLEMENTED: unknown service x".into())
        );
        assert_eq!(
            verdict(Some((5, String::new())), &[]),
            (Code::L7Sts, "gRPC NOT_FOUND".into())
        );
        assert_eq!(verdict(None, &reply(1)).0, Code::L7Rsp);
        assert_eq!(percent_decode("a%20b%zz%"), "a b%zz%");
    }
}
