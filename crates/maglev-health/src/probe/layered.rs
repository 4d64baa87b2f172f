//! What the `http`, `https` and `grpc` probes share: connect, TLS when
//! asked, then an application exchange, all under one deadline whose
//! expiry is reported with the code of the phase it hit (`L4TOUT`,
//! `L6TOUT`, `L7TOUT`).

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::netns::QuickConnect;
use super::{sock_err, Sockets};
use crate::result::{Code, ProbeResult};

const CONNECT: u8 = 0;
const TLS: u8 = 1;
const APP: u8 = 2;

/// Where a probe is, so a timeout names the right phase.
#[derive(Debug, Default)]
struct Phase(AtomicU8);

impl Phase {
    fn set(&self, p: u8) {
        self.0.store(p, Ordering::Relaxed);
    }
}

/// Runs `probe` under `timeout`; on expiry the result names the phase
/// (`app_detail` for the application's: "no response", "no reply").
async fn within_deadline<'a, F>(
    timeout: Duration,
    app_detail: &'static str,
    phase: &'a Phase,
    probe: F,
) -> ProbeResult
where
    F: std::future::Future<Output = ProbeResult> + 'a,
{
    let start = Instant::now();
    match tokio::time::timeout(timeout, probe).await {
        Ok(r) => r,
        Err(_) => {
            let (code, detail) = match phase.0.load(Ordering::Relaxed) {
                CONNECT => (Code::L4Tout, "connect timeout"),
                TLS => (Code::L6Tout, "TLS handshake timeout"),
                _ => (Code::L7Tout, app_detail),
            };
            ProbeResult::new(code, detail, start.elapsed())
        }
    }
}

/// Where a layered probe connects and what it may send with the
/// handshake.
pub(crate) struct Target<'a> {
    pub sockets: &'a Sockets,
    pub quick: &'a QuickConnect,
    pub addr: IpAddr,
    pub port: u16,
    /// TLS over the connection, if any.
    pub tls: Option<TlsTarget<'a>>,
    /// The application's first bytes, sent as soon as the connection is
    /// up (plain connections only: TLS speaks first).
    pub early: &'a [u8],
}

/// One layered probe: connect to the target (TLS with its `tls`), then
/// `exchange` on the stream, all under `timeout`. `exchange` learns how
/// much of the target's `early` bytes were sent already.
pub(crate) async fn probe<F, Fut>(
    timeout: Duration,
    app_detail: &'static str,
    target: Target<'_>,
    exchange: F,
) -> ProbeResult
where
    F: FnOnce(Stream, Instant, usize) -> Fut,
    Fut: std::future::Future<Output = ProbeResult>,
{
    let phase = Phase::default();
    within_deadline(timeout, app_detail, &phase, async {
        let start = Instant::now();
        match connect(target, &phase, start).await {
            Err(r) => r,
            Ok((stream, sent)) => exchange(stream, start, sent).await,
        }
    })
    .await
}

/// Runs an exchange while driving its connection, in the probe's own task
/// (no task per probe, nothing left behind when it is dropped).
pub(crate) async fn drive<W, C>(work: W, conn: C) -> ProbeResult
where
    W: std::future::Future<Output = ProbeResult>,
    C: std::future::Future,
{
    let mut work = std::pin::pin!(work);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        biased;
        r = &mut work => r,
        _ = &mut conn => work.await,
    }
}

/// A probe's connection: plain TCP or TLS over it.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// TLS settings of one probe: the client config and the server name
/// (`None`: the target's address, and no SNI).
pub(crate) struct TlsTarget<'a> {
    config: &'a Arc<ClientConfig>,
    server_name: Option<&'a str>,
}

impl<'a> TlsTarget<'a> {
    /// A probe's TLS, when it has a client config (`options` name the
    /// server).
    pub(crate) fn of(
        config: Option<&'a Arc<ClientConfig>>,
        options: Option<&'a maglev_config::TlsOptions>,
    ) -> Option<TlsTarget<'a>> {
        config.map(|config| TlsTarget {
            config,
            server_name: options.and_then(|t| t.server_name.as_deref()),
        })
    }
}

/// Connects to the target and, with its `tls`, completes the handshake;
/// the phase moves to the application's when the stream is ready. An
/// error is already the probe's result (`L4CON`, `L6RSP`, `SOCKERR`).
async fn connect(
    target: Target<'_>,
    phase: &Phase,
    start: Instant,
) -> Result<(Stream, usize), ProbeResult> {
    let early = if target.tls.is_some() {
        &[][..]
    } else {
        target.early
    };
    let (stream, sent) = target
        .sockets
        .connect_sending(
            SocketAddr::new(target.addr, target.port),
            early,
            target.quick,
        )
        .await
        .map_err(|e| super::connect_failed(&e, start.elapsed()))?;
    let Some(tls) = target.tls else {
        phase.set(APP);
        return Ok((Stream::Plain(stream), sent));
    };
    let target = target.addr;
    phase.set(TLS);
    let server_name = match tls.server_name {
        // No SNI is sent for an IP address; the certificate must then
        // name the IP.
        None => ServerName::IpAddress(target.into()),
        Some(name) => ServerName::try_from(name.to_string()).map_err(|e| {
            sock_err(
                format!("invalid server name {name:?}: {e}"),
                start.elapsed(),
            )
        })?,
    };
    let tls = TlsConnector::from(Arc::clone(tls.config))
        .connect(server_name, stream)
        .await
        .map_err(|e| ProbeResult::new(Code::L6Rsp, format!("TLS: {e}"), start.elapsed()))?;
    phase.set(APP);
    Ok((Stream::Tls(Box::new(tls)), 0))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
