//! A stand-in for VPP's data plane, for the demo and end-to-end tests on
//! one machine (`maglev-vppsim --dataplane`).
//!
//! Every TCP VIP with a port whose address is loopback (127.0.0.0/8, ::1)
//! gets a listener on that address and port, and each accepted connection
//! is proxied to the application server that the VIP's new-flow table
//! picks for the connection's 5-tuple: the same Maglev table and flow hash
//! as VPP, so maglevt and `maglevc lookup` see what VPP would do. What
//! differs: a userspace proxy replaces GRE encapsulation (backends see the
//! proxy, not the client), and an established connection stays on its AS
//! until it closes (VPP's sticky table, without its timeout or flush). A
//! VIP's "first packet" counter counts proxied connections and "no server"
//! the ones refused for want of an AS. VIPs elsewhere are left alone: the
//! simulator never listens beyond loopback.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use maglev_vpp::maglev::flow_hash;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::Inner;

/// How often the VIP list is re-read.
const RESCAN: Duration = Duration::from_millis(200);
/// Counter indexes (VPP's order): first packet, no server.
const FIRST: usize = 1;
const NO_SERVER: usize = 3;
const TCP: u8 = 6;

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn served(addr: &IpAddr, plen: u8, protocol: u8, port: u16) -> bool {
    let host = match addr {
        IpAddr::V4(_) => plen == 32,
        IpAddr::V6(_) => plen == 128,
    };
    addr.is_loopback() && host && protocol == TCP && port != 0
}

/// Keeps one listener per served VIP until the task is aborted.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut listeners: HashMap<SocketAddr, AbortOnDrop> = HashMap::new();
    let mut failed: HashSet<SocketAddr> = HashSet::new();
    let mut tick = tokio::time::interval(RESCAN);
    loop {
        tick.tick().await;
        let want: HashSet<SocketAddr> = {
            let st = inner.state.lock().expect("sim state");
            st.lb
                .live_vips()
                .filter(|v| served(&v.address, v.plen, v.protocol, v.port))
                .map(|v| SocketAddr::new(v.address, v.port))
                .collect()
        };
        listeners.retain(|k, _| want.contains(k));
        failed.retain(|k| want.contains(k));
        for vip in want {
            if listeners.contains_key(&vip) || failed.contains(&vip) {
                continue;
            }
            match TcpListener::bind(vip).await {
                Ok(l) => {
                    info!(%vip, "data plane: serving VIP");
                    let task = tokio::spawn(accept(Arc::clone(&inner), l, vip));
                    listeners.insert(vip, AbortOnDrop(task));
                }
                Err(e) => {
                    warn!(%vip, error = %e, "data plane: cannot listen on VIP");
                    failed.insert(vip);
                }
            }
        }
    }
}

/// The AS a new connection from `peer` to `vip` goes to, and the VIP's
/// index; `None` for the AS when the table has no server.
fn pick(inner: &Inner, vip: SocketAddr, peer: SocketAddr) -> Option<(u32, Option<IpAddr>)> {
    let st = inner.state.lock().expect("sim state");
    let v = st
        .lb
        .live_vips()
        .find(|v| v.address == vip.ip() && v.port == vip.port() && v.protocol == TCP)?;
    let table = v.table();
    if table.is_empty() {
        return Some((v.index, None));
    }
    let (sp, dp) = if v.src_ip_sticky {
        (0, 0)
    } else {
        (peer.port(), vip.port())
    };
    let slot = flow_hash(peer.ip(), vip.ip(), sp, dp) as usize & (table.len() - 1);
    Some((v.index, table[slot].map(|i| v.ases[i].address)))
}

async fn accept(inner: Arc<Inner>, listener: TcpListener, vip: SocketAddr) {
    loop {
        let Ok((mut client, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Some((index, target)) = pick(&inner, vip, peer) else {
            continue;
        };
        let Some(server) = target else {
            inner.count_packets(index, NO_SERVER, 1);
            debug!(%vip, %peer, "data plane: no server");
            continue;
        };
        inner.count_packets(index, FIRST, 1);
        tokio::spawn(async move {
            match TcpStream::connect((server, vip.port())).await {
                Ok(mut up) => {
                    let _ = up.set_nodelay(true);
                    let _ = client.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                }
                Err(e) => debug!(%vip, %server, error = %e, "data plane: AS unreachable"),
            }
        });
    }
}
