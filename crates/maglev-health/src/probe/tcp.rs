//! `tcp`: a connection that completes its handshake passes; it is closed at
//! once.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::netns::QuickConnect;
use super::{within, BoxFuture, Probe, Sockets};
use crate::result::{Code, ProbeResult};

#[derive(Debug)]
pub(crate) struct TcpProbe {
    pub port: u16,
    pub timeout: Duration,
    pub sockets: Sockets,
    pub quick: QuickConnect,
}

impl Probe for TcpProbe {
    fn check(&self, target: IpAddr) -> BoxFuture<'_, ProbeResult> {
        Box::pin(async move {
            let start = tokio::time::Instant::now();
            let deadline = start + self.timeout;
            let addr = SocketAddr::new(target, self.port);
            let connect = self.sockets.connect_sending(addr, &[], &self.quick);
            match within(deadline, connect).await {
                None => ProbeResult::new(Code::L4Tout, "connect timeout", start.elapsed()),
                Some(Err(e)) => super::connect_failed(&e, start.elapsed()),
                Some(Ok((stream, _))) => {
                    drop(stream);
                    ProbeResult::new(Code::L4Ok, "connected", start.elapsed())
                }
            }
        })
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}
