//! The client side: a tonic channel to maglevd over TCP, TLS or a unix
//! socket.

use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tonic::transport::{Channel, Uri};

use crate::tls::{ClientTls, TlsError};
use crate::Endpoint;

/// maglevc's default: the local unix socket when it exists.
pub const DEFAULT_SOCKET: &str = "/run/vpp-maglev/maglevd.sock";
/// maglevc's default otherwise.
pub const DEFAULT_TCP: &str = "localhost:9090";

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no channel could be made.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The address does not parse.
    #[error("{0}")]
    Address(String),
    /// The TLS settings are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Connecting failed (the cause chain says why).
    #[error("cannot connect")]
    Connect(#[source] tonic::transport::Error),
}

/// The default server: `unix:/run/vpp-maglev/maglevd.sock` when that
/// socket exists, else `localhost:9090`.
pub fn default_server() -> String {
    if std::path::Path::new(DEFAULT_SOCKET).exists() {
        format!("unix:{DEFAULT_SOCKET}")
    } else {
        DEFAULT_TCP.to_string()
    }
}

/// Connects to `addr` (`host:port`, `http://host:port`,
/// `https://host:port`, `unix:/path`). A bare TCP address uses TLS when
/// any of `tls` is set.
pub async fn dial(addr: &str, tls: &ClientTls) -> Result<Channel, DialError> {
    let endpoint = Endpoint::parse(addr).map_err(DialError::Address)?;
    match endpoint {
        Endpoint::Unix(path) => {
            // The URI is required by tonic and unused by the connector.
            let ep = Channel::from_static("http://maglevd.sock").connect_timeout(CONNECT_TIMEOUT);
            ep.connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { UnixStream::connect(path).await.map(TokioIo::new) }
            }))
            .await
            .map_err(DialError::Connect)
        }
        Endpoint::Tcp(hostport, scheme) if scheme.tls(tls.enabled()) => {
            let host = Endpoint::Tcp(hostport.clone(), scheme)
                .host()
                .unwrap_or_default()
                .to_string();
            let name = tls.name_for(&host)?;
            let connector = tokio_rustls::TlsConnector::from(Arc::new(tls.config()?));
            let ep = Channel::from_shared(format!("http://{hostport}"))
                .map_err(|e| DialError::Address(format!("{addr}: {e}")))?
                .connect_timeout(CONNECT_TIMEOUT);
            ep.connect_with_connector(tower::service_fn(move |_: Uri| {
                let (hostport, name, connector) =
                    (hostport.clone(), name.clone(), connector.clone());
                async move {
                    let tcp = TcpStream::connect(hostport.as_str()).await?;
                    let _ = tcp.set_nodelay(true);
                    let mut tls = connector.connect(name, tcp).await?;
                    // In TLS 1.3 the server judges the client certificate
                    // after the client thinks the handshake is done; its
                    // refusal (an alert) would surface as a cancelled RPC.
                    // The server speaks first in HTTP/2 (its SETTINGS), so
                    // read that now: a refusal becomes this connect's
                    // error, naming the alert.
                    let mut first = vec![0u8; 1024];
                    let n = tls.read(&mut first).await?;
                    if n == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "the server closed the TLS connection",
                        ));
                    }
                    first.truncate(n);
                    Ok::<_, std::io::Error>(TokioIo::new(Replay::new(first, tls)))
                }
            }))
            .await
            .map_err(DialError::Connect)
        }
        Endpoint::Tcp(hostport, _) => Channel::from_shared(format!("http://{hostport}"))
            .map_err(|e| DialError::Address(format!("{addr}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .map_err(DialError::Connect),
    }
}

/// A stream whose first bytes were read ahead: they are read again first.
struct Replay<S> {
    ahead: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Replay<S> {
    fn new(ahead: Vec<u8>, inner: S) -> Replay<S> {
        Replay {
            ahead,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        if me.at < me.ahead.len() {
            let n = (me.ahead.len() - me.at).min(buf.remaining());
            buf.put_slice(&me.ahead[me.at..me.at + n]);
            me.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
