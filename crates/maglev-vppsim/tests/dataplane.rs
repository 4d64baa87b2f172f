//! The data-plane stand-in: connections to a loopback VIP reach the AS
//! that VPP's Maglev table and flow hash pick for their 5-tuple; weight 0
//! takes an AS out of new flows; no live AS counts as "no server".

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use maglev_vpp::maglev::{flow_hash, new_flow_table};
use maglev_vpp::{Client, ClientOptions, Encap, LbApi, LbConfig, VipKey, VipSpec};
use maglev_vppsim::{SimOptions, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ASES: [&str; 3] = ["127.0.0.21", "127.0.0.22", "127.0.0.23"];

/// An AS: answers every connection with its address and closes.
async fn as_server(ip: &str, port: u16) -> tokio::task::JoinHandle<()> {
    let l = TcpListener::bind((ip, port)).await.unwrap();
    let name = ip.to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            let _ = s.write_all(name.as_bytes()).await;
        }
    })
}

async fn ask(vip: SocketAddr) -> (u16, String) {
    let mut s = TcpStream::connect(vip).await.unwrap();
    let port = s.local_addr().unwrap().port();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    (port, out)
}

fn expected(weights: &[(IpAddr, u8)], vip: SocketAddr, src_port: u16) -> Option<String> {
    let table = new_flow_table(1024, weights);
    let slot =
        flow_hash("127.0.0.1".parse().unwrap(), vip.ip(), src_port, vip.port()) as usize & 1023;
    table[slot].map(|i| weights[i].0.to_string())
}

#[tokio::test]
async fn connections_follow_the_maglev_table() {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api.sock");
    let sim = Simulator::start(SimOptions {
        api_socket: api.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    sim.serve_dataplane();
    // One port for the VIP and its ASes, as with GRE (no port translation).
    let port = TcpListener::bind("127.0.0.21:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut servers = Vec::new();
    for ip in ASES {
        servers.push(as_server(ip, port).await);
    }
    let lb = LbApi::new(
        Client::connect(&api, ClientOptions::default())
            .await
            .unwrap(),
    );
    lb.conf_set(&LbConfig {
        ip4_src_address: "198.51.100.1".parse().unwrap(),
        ip6_src_address: "2001:db8::1".parse().unwrap(),
        sticky_buckets_per_core: u32::MAX,
        flow_timeout: 40,
    })
    .await
    .unwrap();
    let vip: SocketAddr = format!("127.0.0.20:{port}").parse().unwrap();
    let key = VipKey::host(vip.ip(), 6, port);
    lb.vip_add(&VipSpec {
        key,
        encap: Encap::Gre4,
        src_ip_sticky: false,
        new_flows_table_length: 1024,
    })
    .await
    .unwrap();
    let mut weights: Vec<(IpAddr, u8)> = Vec::new();
    for (ip, w) in ASES.iter().zip([100u8, 50, 0]) {
        let ip: IpAddr = ip.parse().unwrap();
        lb.as_add(&key, ip, w).await.unwrap();
        weights.push((ip, w));
    }
    // The data plane picks the VIP up within its rescan period.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(vip).await.is_err() {
        assert!(Instant::now() < deadline, "VIP never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Through the proxy once, so that connection is counted before the
    // counter is read.
    ask(vip).await;
    let first_before = sim.lb().live_vips().next().unwrap().counters[1];

    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..60 {
        let (src_port, got) = ask(vip).await;
        assert_eq!(
            Some(got.clone()),
            expected(&weights, vip, src_port),
            "source port {src_port}"
        );
        *seen.entry(got).or_insert(0) += 1;
    }
    assert!(
        !seen.contains_key(ASES[2]),
        "weight 0 gets no new flows: {seen:?}"
    );
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        sim.lb().live_vips().next().unwrap().counters[1] - first_before,
        60,
        "first-packet counter counts connections"
    );

    // Drain web1: new flows avoid it at once.
    lb.as_set_weight(&key, weights[0].0, 0, true).await.unwrap();
    weights[0].1 = 0;
    for _ in 0..20 {
        let (src_port, got) = ask(vip).await;
        assert_eq!(got, ASES[1], "source port {src_port}");
    }

    // No live AS: the connection is closed at once, counted as no server.
    lb.as_set_weight(&key, weights[1].0, 0, true).await.unwrap();
    let (_, got) = ask(vip).await;
    assert_eq!(got, "");
    assert_eq!(sim.lb().live_vips().next().unwrap().counters[3], 1);

    // Deleting the VIP stops the listener.
    for (ip, _) in &weights {
        lb.as_del(&key, *ip, true).await.unwrap();
    }
    lb.vip_del(&key).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(vip).await.is_ok() {
        assert!(Instant::now() < deadline, "VIP still served after deletion");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for s in servers {
        s.abort();
    }
    sim.shutdown().await;
}
