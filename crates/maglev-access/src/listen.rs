//! Listeners for the API: TCP (plain or TLS) and unix sockets, one bounded
//! stream of connections for tonic, each tagged with its [`PeerInfo`].

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{info, warn};

use crate::role::{process_groups, AdminRules, PeerInfo, Transport};
use crate::tls::ServerTls;
use crate::{Endpoint, Scheme};

/// How long a client may take over the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Ownership and mode of a unix-socket listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixOptions {
    /// Permission bits (default 0660: owner and group may connect).
    pub mode: u32,
    /// Group of the socket file (default: the daemon's group).
    pub gid: Option<u32>,
}

impl Default for UnixOptions {
    fn default() -> Self {
        UnixOptions {
            mode: 0o660,
            gid: None,
        }
    }
}

enum Bound {
    /// With TLS or not.
    Tcp(TcpListener, bool),
    Unix {
        listener: UnixListener,
        path: PathBuf,
        inode: u64,
    },
}

/// One bound address.
pub struct Listener {
    bound: Bound,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Listener({})", self.local_addr())
    }
}

impl Listener {
    /// Binds `endpoint`; `tls`: whether TLS is configured (a bare TCP
    /// address then uses it). A TCP `:port` listens on every address. A
    /// unix socket left by a dead process is replaced; one a live process
    /// answers on, or a file that is not a socket, is an error.
    pub async fn bind(endpoint: &Endpoint, unix: UnixOptions, tls: bool) -> io::Result<Listener> {
        match endpoint {
            Endpoint::Tcp(addr, scheme) => {
                if *scheme == Scheme::Tls && !tls {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "https:// needs --tls-cert and --tls-key",
                    ));
                }
                let bind = match addr.strip_prefix(':') {
                    Some(port) => format!("[::]:{port}"),
                    None => addr.clone(),
                };
                Ok(Listener {
                    bound: Bound::Tcp(TcpListener::bind(&bind).await?, scheme.tls(tls)),
                })
            }
            Endpoint::Unix(path) => bind_unix(path, unix).await,
        }
    }

    /// The bound address as the logs show it.
    pub fn local_addr(&self) -> String {
        match &self.bound {
            Bound::Tcp(l, tls) => {
                let a = l
                    .local_addr()
                    .map_or_else(|_| "?".to_string(), |a| a.to_string());
                if *tls {
                    format!("https://{a}")
                } else {
                    a
                }
            }
            Bound::Unix { path, .. } => format!("unix:{}", path.display()),
        }
    }

    /// The TCP port, for tests that bind port 0.
    pub fn port(&self) -> Option<u16> {
        match &self.bound {
            Bound::Tcp(l, _) => l.local_addr().ok().map(|a| a.port()),
            Bound::Unix { .. } => None,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Remove the socket file, unless another process has replaced it.
        if let Bound::Unix { path, inode, .. } = &self.bound {
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == *inode) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

async fn bind_unix(path: &Path, opts: UnixOptions) -> io::Result<Listener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if UnixStream::connect(path).await.is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("another process listens on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    // Until these two calls the umask's mode applies; without write
    // permission for others nobody else can connect in between.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(opts.mode))?;
    if let Some(gid) = opts.gid {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .map_err(|e| io::Error::other(format!("chgrp {gid} {}: {e}", path.display())))?;
    }
    let inode = std::fs::symlink_metadata(path)?.ino();
    Ok(Listener {
        bound: Bound::Unix {
            listener,
            path: path.to_path_buf(),
            inode,
        },
    })
}

/// How connections are admitted.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The certificate for TLS listeners.
    pub tls: Option<Arc<ServerTls>>,
    /// Role rules.
    pub rules: Arc<AdminRules>,
    /// Connections open at once over all listeners; more wait in the
    /// kernel's backlog.
    pub max_connections: usize,
}

enum Io {
    /// Accepted on a TLS listener, before the handshake.
    Handshake(TcpStream),
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An accepted connection: its stream, who it is, and its slot.
pub struct Conn {
    io: Io,
    peer: PeerInfo,
    _slot: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({})", self.peer.who)
    }
}

impl Conn {
    /// Who it is and its role.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

macro_rules! with_io {
    ($self:ident, $io:ident => $e:expr) => {
        match &mut $self.get_mut().io {
            Io::Tcp($io) | Io::Handshake($io) => $e,
            Io::Unix($io) => $e,
            Io::Tls($io) => $e,
        }
    };
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        with_io!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        with_io!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        with_io!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Tcp(s) | Io::Handshake(s) => s.is_write_vectored(),
            Io::Unix(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        with_io!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        with_io!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

/// Every listener's connections in one stream, at most
/// `max_connections` open at once (no accept while all slots are taken).
/// TLS handshakes run beside the accept loop, each within
/// [`HANDSHAKE_TIMEOUT`]; a failed one is logged and dropped.
pub fn incoming(
    listeners: Vec<Listener>,
    admission: Admission,
) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(16);
    let slots = Arc::new(Semaphore::new(admission.max_connections));
    for listener in listeners {
        let tx = tx.clone();
        let slots = Arc::clone(&slots);
        let admission = admission.clone();
        tokio::spawn(async move {
            // Owned here so that the socket file goes when the stream does.
            let listener = listener;
            loop {
                let slot = tokio::select! {
                    () = tx.closed() => return,
                    s = Arc::clone(&slots).acquire_owned() => s.expect("never closed"),
                };
                let accepted = tokio::select! {
                    () = tx.closed() => return,
                    a = accept(&listener) => a,
                };
                let io = match accepted {
                    Ok(io) => io,
                    // EMFILE and the like: back off instead of spinning.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let tx = tx.clone();
                let admission = admission.clone();
                tokio::spawn(async move {
                    if let Some(conn) = admit(io, slot, &admission).await {
                        let _ = tx.send(Ok(conn)).await;
                    }
                });
            }
        });
    }
    ReceiverStream::new(rx)
}

async fn accept(listener: &Listener) -> io::Result<Io> {
    match &listener.bound {
        Bound::Tcp(l, tls) => {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            keepalive(&s);
            Ok(if *tls { Io::Handshake(s) } else { Io::Tcp(s) })
        }
        Bound::Unix { listener, .. } => Ok(Io::Unix(listener.accept().await?.0)),
    }
}

/// TCP keepalive after 60 s idle: peers that vanish without a FIN go.
fn keepalive(s: &TcpStream) {
    use nix::sys::socket::{setsockopt, sockopt};
    let _ = setsockopt(s, sockopt::KeepAlive, &true);
    let _ = setsockopt(s, sockopt::TcpKeepIdle, &60);
}

async fn admit(io: Io, slot: OwnedSemaphorePermit, a: &Admission) -> Option<Conn> {
    let peer_addr = |s: &TcpStream| {
        s.peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string())
    };
    let (io, peer) = match io {
        Io::Tcp(s) => {
            let who = format!("tcp {}", peer_addr(&s));
            let role = a.rules.tcp();
            (
                Io::Tcp(s),
                PeerInfo {
                    role,
                    transport: Transport::Tcp,
                    who,
                },
            )
        }
        Io::Handshake(s) => match &a.tls {
            None => return None,
            Some(tls) => {
                let from = peer_addr(&s);
                // gRPC is HTTP/2 only.
                let acceptor = tls.acceptor(&[b"h2"]);
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(s)).await
                {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        info!(event = "tls-refused", peer = %from, error = %e);
                        return None;
                    }
                    Err(_) => {
                        info!(event = "tls-refused", peer = %from, error = "handshake timed out");
                        return None;
                    }
                };
                let leaf = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.as_ref().to_vec());
                let (role, name) = a.rules.tls(leaf.as_deref());
                let who = match name {
                    Some(n) => format!("tls {n} {from}"),
                    None => format!("tls (no client certificate) {from}"),
                };
                (
                    Io::Tls(Box::new(stream)),
                    PeerInfo {
                        role,
                        transport: Transport::Tls,
                        who,
                    },
                )
            }
        },
        Io::Unix(s) => {
            let (role, who) = match s.peer_cred() {
                Ok(c) => {
                    let groups = c.pid().map(process_groups).unwrap_or_default();
                    let role =
                        a.rules
                            .unix(c.uid(), c.gid(), &groups, nix::unistd::geteuid().as_raw());
                    let pid = c.pid().map_or_else(|| "?".to_string(), |p| p.to_string());
                    (role, format!("unix uid={} pid={pid}", c.uid()))
                }
                Err(e) => {
                    warn!(event = "peer-credentials", error = %e, "unix peer without credentials: read role");
                    (crate::Role::Read, "unix (no credentials)".to_string())
                }
            };
            (
                Io::Unix(s),
                PeerInfo {
                    role,
                    transport: Transport::Unix,
                    who,
                },
            )
        }
        Io::Tls(_) => unreachable!("TLS is set up in admit"),
    };
    Some(Conn {
        io,
        peer,
        _slot: slot,
    })
}
