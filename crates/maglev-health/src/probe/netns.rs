//! Sockets made in the configured network namespace.
//!
//! A socket stays in the namespace it was created in, so one thread enters
//! the namespace once (`setns`) and creates sockets on request; connecting
//! and I/O then happen on the runtime as usual. Without a namespace,
//! sockets are created directly.

use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc as std_mpsc;

use nix::errno::Errno;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::oneshot;

use super::SetupError;

type Request = (
    Domain,
    Type,
    Option<Protocol>,
    oneshot::Sender<io::Result<Socket>>,
);

/// Where probe sockets come from.
#[derive(Debug, Clone)]
pub enum Sockets {
    /// The daemon's own namespace.
    Host,
    /// A thread inside another network namespace.
    Netns {
        /// The configured name.
        name: String,
        /// Requests to the namespace thread.
        tx: std_mpsc::Sender<Request>,
    },
}

impl Sockets {
    /// Sockets in `netns` (a name under `/run/netns` or a path), or in the
    /// host namespace. Entering the namespace is tried here, so a missing
    /// namespace or capability is an error now, not a down backend later.
    pub fn new(netns: Option<&str>) -> Result<Sockets, SetupError> {
        let Some(name) = netns else {
            return Ok(Sockets::Host);
        };
        let path = if name.starts_with('/') {
            name.to_string()
        } else {
            format!("/run/netns/{name}")
        };
        let err = |source: io::Error| SetupError::Netns {
            name: name.to_string(),
            source,
        };
        let file = File::open(&path).map_err(err)?;
        let (tx, rx) = std_mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = std_mpsc::channel::<io::Result<()>>();
        std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn(move || {
                let entered = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from);
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if !ok {
                    return;
                }
                for (domain, ty, protocol, reply) in rx {
                    let _ = reply.send(Socket::new(domain, ty, protocol));
                }
            })
            .map_err(err)?;
        ready_rx
            .recv()
            .map_err(|_| err(io::Error::other("namespace thread died")))?
            .map_err(err)?;
        Ok(Sockets::Netns {
            name: name.to_string(),
            tx,
        })
    }

    /// A new socket.
    pub async fn socket(
        &self,
        domain: Domain,
        ty: Type,
        protocol: Option<Protocol>,
    ) -> io::Result<Socket> {
        match self {
            Sockets::Host => Socket::new(domain, ty, protocol),
            Sockets::Netns { name, tx } => {
                let (reply, rx) = oneshot::channel();
                tx.send((domain, ty, protocol, reply))
                    .map_err(|_| io::Error::other(format!("netns {name}: thread gone")))?;
                rx.await
                    .map_err(|_| io::Error::other(format!("netns {name}: thread gone")))?
            }
        }
    }

    /// A TCP connection to `addr`, made from a socket of this namespace.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpStream> {
        let std_stream: std::net::TcpStream = self.stream_socket(addr).await?.into();
        tokio::net::TcpSocket::from_std_stream(std_stream)
            .connect(addr)
            .await
    }

    /// A TCP connection to `addr` with `data` sent on it as early as the
    /// kernel takes it: how much of `data` went (the rest is the caller's
    /// to send).
    ///
    /// When the handshake completes inside `connect` (a backend on this
    /// host: loopback, or a namespace the packets reach without leaving the
    /// kernel) the connection is up although `connect` says "in progress";
    /// sending at once then saves the wait for writability, its wake-up and
    /// the `SO_ERROR` check, as HAProxy's checks do. With an empty `data`
    /// the question is asked with `getpeername`. Against a backend across a
    /// network the attempt fails (`EAGAIN`, one syscall) and `quick` stops
    /// trying for a while, so far backends pay for about one attempt in
    /// [`QUICK_BACKOFF`] connects.
    pub(crate) async fn connect_sending(
        &self,
        addr: SocketAddr,
        data: &[u8],
        quick: &QuickConnect,
    ) -> io::Result<(tokio::net::TcpStream, usize)> {
        let sock = self.stream_socket(addr).await?;
        let mut up = match sock.connect(&addr.into()) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(Errno::EINPROGRESS as i32) => false,
            Err(e) => return Err(e),
        };
        let std_stream: std::net::TcpStream = sock.into();
        let mut sent = 0;
        if !up && quick.try_now() {
            let early = if data.is_empty() {
                std_stream.peer_addr().map(|_| 0)
            } else {
                // std's send: MSG_NOSIGNAL, no SIGPIPE on a closed socket.
                (&std_stream).write(data)
            };
            match early {
                Ok(n) => {
                    up = true;
                    sent = n;
                }
                // Still connecting: wait below as any connect does.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => quick.missed(),
                // getpeername has no error of its own for a refused
                // connect: the socket's pending error says which it is.
                Err(e) if e.raw_os_error() == Some(Errno::ENOTCONN as i32) => {
                    if let Some(e) = std_stream.take_error()? {
                        return Err(e);
                    }
                    quick.missed();
                }
                // The connect's own failure (refused, unreachable).
                Err(e) => return Err(e),
            }
        }
        let stream = tokio::net::TcpStream::from_std(std_stream)?;
        if !up {
            // What tokio's connect does: writable once the handshake ended,
            // then the socket's error says how.
            stream.writable().await?;
            if let Some(e) = stream.take_error()? {
                return Err(e);
            }
        }
        Ok((stream, sent))
    }

    /// A non-blocking TCP socket for `addr`, closed with a reset.
    async fn stream_socket(&self, addr: SocketAddr) -> io::Result<Socket> {
        let domain = if addr.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        // Non-blocking from the start, and close-on-exec (socket2's
        // default): no fcntl calls per probe.
        let sock = self
            .socket(domain, Type::STREAM.nonblocking(), Some(Protocol::TCP))
            .await?;
        // Closed with a reset, as HAProxy's checks are: no FIN exchange and
        // no TIME_WAIT socket per probe (a checker at thousands of probes a
        // second otherwise keeps tens of thousands of them).
        sock.set_linger(Some(std::time::Duration::ZERO))?;
        Ok(sock)
    }
}

/// Connects after which the early attempt of [`Sockets::connect_sending`]
/// is skipped once it found a handshake still under way.
pub(crate) const QUICK_BACKOFF: u32 = 63;

/// Whether [`Sockets::connect_sending`] looks for a finished handshake
/// right after `connect`: one per probe (shared by its backends), so a
/// check of far backends stops paying for the attempt.
#[derive(Debug, Default)]
pub(crate) struct QuickConnect {
    /// Connects left to skip.
    skip: AtomicU32,
}

impl QuickConnect {
    fn try_now(&self) -> bool {
        // Racy on purpose: a lost update only shifts when the next try is.
        let skip = self.skip.load(Ordering::Relaxed);
        if skip == 0 {
            return true;
        }
        self.skip.store(skip - 1, Ordering::Relaxed);
        false
    }

    fn missed(&self) {
        self.skip.store(QUICK_BACKOFF, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(q: &QuickConnect) -> u32 {
        q.skip.load(Ordering::Relaxed)
    }

    /// On loopback the handshake is over when `connect` returns: the
    /// request goes at once, and the early attempt keeps being made.
    #[tokio::test]
    async fn a_near_backend_gets_the_request_with_the_handshake() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let quick = QuickConnect::default();
        for _ in 0..3 {
            let (_s, sent) = Sockets::Host
                .connect_sending(addr, b"GET / HTTP/1.1\r\n\r\n", &quick)
                .await
                .unwrap();
            assert_eq!(sent, 18);
            let (_s, sent) = Sockets::Host
                .connect_sending(addr, b"", &quick)
                .await
                .unwrap();
            assert_eq!(sent, 0);
            assert_eq!(skip(&quick), 0);
        }
    }

    /// A refused connect is the connect's error, whichever way the early
    /// attempt asked, and no reason to stop trying.
    #[tokio::test]
    async fn a_refused_connect_is_reported_as_refused() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let quick = QuickConnect::default();
        for data in [&b"GET /"[..], b""] {
            let e = Sockets::Host
                .connect_sending(addr, data, &quick)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{data:?}: {e}");
        }
        assert_eq!(skip(&quick), 0);
    }

    /// A handshake still under way (here: a listener whose queue is full
    /// drops the SYN) is waited for as any connect is, and the next
    /// QUICK_BACKOFF connects skip the early attempt.
    #[tokio::test]
    async fn a_handshake_under_way_is_waited_for_and_backs_off() {
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        l.listen(0).unwrap();
        let addr = l.local_addr().unwrap().as_socket().unwrap();
        // Fill the accept queue (never accepted).
        let mut held = Vec::new();
        let quick = QuickConnect::default();
        let wait = std::time::Duration::from_millis(200);
        let stuck = loop {
            assert!(held.len() < 8, "the listener's queue never filled");
            let connect = Sockets::Host.connect_sending(addr, b"x", &quick);
            match tokio::time::timeout(wait, connect).await {
                Ok(r) => held.push(r.unwrap()),
                Err(_) => break true,
            }
        };
        assert!(stuck);
        assert_eq!(skip(&quick), QUICK_BACKOFF);
        assert!(!quick.try_now());
        assert_eq!(skip(&quick), QUICK_BACKOFF - 1);
        for _ in 1..QUICK_BACKOFF {
            assert!(!quick.try_now());
        }
        assert!(quick.try_now(), "tries again after the backoff");
    }
}
