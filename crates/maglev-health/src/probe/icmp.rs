//! `icmp`: echo request, echo reply. One socket per address family serves
//! every backend; replies are matched by sequence number, identifier (raw
//! sockets) and a per-socket token in the payload, and must come from the
//! probed address.
//!
//! A raw socket needs CAP_NET_RAW; without it an unprivileged ICMP
//! datagram socket ("ping socket") is used where the kernel allows it
//! (`net.ipv4.ping_group_range`). The kernel then picks the identifier and
//! hands this socket only its own replies.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Type};
use tokio::sync::{oneshot, OnceCell};
use tokio::time::Instant;

use super::{sock_err, BoxFuture, Probe, Sockets};
use crate::result::{Code, ProbeResult};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

type Waiters = Arc<Mutex<HashMap<u16, (IpAddr, oneshot::Sender<()>)>>>;

/// The shared sockets, one per family, made on first use.
#[derive(Debug, Default)]
pub(crate) struct Pingers {
    v4: OnceCell<Result<Arc<Pinger>, String>>,
    v6: OnceCell<Result<Arc<Pinger>, String>>,
}

#[derive(Debug)]
pub(crate) struct Pinger {
    sock: Arc<tokio::net::UdpSocket>,
    v6: bool,
    ident: u16,
    token: [u8; 8],
    next_seq: AtomicU16,
    waiters: Waiters,
    recv: tokio::task::JoinHandle<()>,
}

impl Drop for Pinger {
    fn drop(&mut self) {
        self.recv.abort();
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Pinger {
    async fn new(sockets: &Sockets, v6: bool) -> Result<Arc<Pinger>, String> {
        let (domain, proto) = if v6 {
            (Domain::IPV6, Protocol::ICMPV6)
        } else {
            (Domain::IPV4, Protocol::ICMPV4)
        };
        let (sock, raw) = match sockets.socket(domain, Type::RAW, Some(proto)).await {
            Ok(s) => (s, true),
            Err(raw_err) => match sockets.socket(domain, Type::DGRAM, Some(proto)).await {
                Ok(s) => (s, false),
                Err(dgram_err) => {
                    return Err(format!(
                        "no ICMP{} socket: raw needs CAP_NET_RAW ({raw_err}); an unprivileged \
                         ping socket needs net.ipv4.ping_group_range to include this group \
                         ({dgram_err})",
                        if v6 { "v6" } else { "" }
                    ))
                }
            },
        };
        let setup = || -> std::io::Result<tokio::net::UdpSocket> {
            sock.set_nonblocking(true)?;
            sock.set_cloexec(true)?;
            // An ICMP socket reads and writes datagrams like a UDP socket;
            // std's safe API does the rest.
            let fd: OwnedFd = sock.into();
            tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd))
        };
        let sock = Arc::new(setup().map_err(|e| format!("ICMP socket: {e}"))?);
        let token: [u8; 8] = rand::random();
        let ident: u16 = rand::random();
        let waiters: Waiters = Arc::default();
        let recv = tokio::spawn(recv_loop(
            Arc::clone(&sock),
            Arc::clone(&waiters),
            v6,
            raw,
            ident,
            token,
        ));
        Ok(Arc::new(Pinger {
            sock,
            v6,
            ident,
            token,
            next_seq: AtomicU16::new(rand::random()),
            waiters,
            recv,
        }))
    }

    async fn ping(&self, target: IpAddr, timeout: Duration) -> ProbeResult {
        let start = Instant::now();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut packet = Vec::with_capacity(16);
        packet.push(if self.v6 {
            ECHO_REQUEST_V6
        } else {
            ECHO_REQUEST_V4
        });
        packet.push(0);
        packet.extend_from_slice(&[0, 0]);
        packet.extend_from_slice(&self.ident.to_be_bytes());
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&self.token);
        if !self.v6 {
            // ICMPv6 checksums are the kernel's job; IPv4's are ours.
            let c = checksum(&packet);
            packet[2..4].copy_from_slice(&c.to_be_bytes());
        }
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .expect("icmp waiters")
            .insert(seq, (target, tx));
        let result = async {
            if let Err(e) = self.sock.send_to(&packet, SocketAddr::new(target, 0)).await {
                return ProbeResult::new(Code::L3Con, format!("send: {e}"), start.elapsed());
            }
            match tokio::time::timeout_at(start + timeout, rx).await {
                Ok(Ok(())) => ProbeResult::new(Code::L3Ok, "echo reply", start.elapsed()),
                Ok(Err(_)) => sock_err("ICMP receiver stopped", start.elapsed()),
                Err(_) => ProbeResult::new(Code::L3Tout, "no echo reply", start.elapsed()),
            }
        }
        .await;
        self.waiters.lock().expect("icmp waiters").remove(&seq);
        result
    }
}

async fn recv_loop(
    sock: Arc<tokio::net::UdpSocket>,
    waiters: Waiters,
    v6: bool,
    raw: bool,
    ident: u16,
    token: [u8; 8],
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let mut data = &buf[..n];
        if raw && !v6 {
            // Raw IPv4 sockets deliver the IP header too.
            let Some(first) = data.first() else { continue };
            let ihl = usize::from(first & 0x0f) * 4;
            if data.len() < ihl {
                continue;
            }
            data = &data[ihl..];
        }
        if data.len() < 16 {
            continue;
        }
        let reply = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
        if data[0] != reply || data[8..16] != token {
            continue;
        }
        let id = u16::from_be_bytes([data[4], data[5]]);
        if raw && id != ident {
            continue;
        }
        let seq = u16::from_be_bytes([data[6], data[7]]);
        let mut w = waiters.lock().expect("icmp waiters");
        if w.get(&seq).is_some_and(|(target, _)| *target == from.ip()) {
            if let Some((_, tx)) = w.remove(&seq) {
                let _ = tx.send(());
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct IcmpProbe {
    pub pingers: Arc<Pingers>,
    pub sockets: Sockets,
    pub timeout: Duration,
}

impl IcmpProbe {
    async fn pinger(&self, v6: bool) -> Result<Arc<Pinger>, String> {
        let cell = if v6 {
            &self.pingers.v6
        } else {
            &self.pingers.v4
        };
        cell.get_or_init(|| Pinger::new(&self.sockets, v6))
            .await
            .clone()
    }
}

impl Probe for IcmpProbe {
    fn check(&self, target: IpAddr) -> BoxFuture<'_, ProbeResult> {
        Box::pin(async move {
            let start = Instant::now();
            match self.pinger(target.is_ipv6()).await {
                Ok(p) => p.ping(target, self.timeout).await,
                Err(e) => sock_err(e, start.elapsed()),
            }
        })
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}
