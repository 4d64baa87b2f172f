//! Sockets made in the configured network namespace.
//!
//! A socket stays in the namespace it was created in, so one thread enters
//! the namespace once (`setns`) and creates sockets on request; connecting
//! and I/O then happen on the runtime as usual. Without a namespace,
//! sockets are created directly.

use std::fs::File;
use std::io;
use std::sync::mpsc as std_mpsc;

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
    pub async fn connect(&self, addr: std::net::SocketAddr) -> io::Result<tokio::net::TcpStream> {
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
        let std_stream: std::net::TcpStream = sock.into();
        tokio::net::TcpSocket::from_std_stream(std_stream)
            .connect(addr)
            .await
    }
}
