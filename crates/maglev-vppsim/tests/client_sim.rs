//! The Rust client against the simulator over a real unix socket: handshake,
//! lb semantics and error codes, dumps, pipelining, faults, stats segment.

use std::net::IpAddr;
use std::time::Duration;

use maglev_vpp::binapi::*;
use maglev_vpp::stats::StatsClient;
use maglev_vpp::{Client, ClientOptions, Encap, Error, LbApi, LbConfig, VipKey, VipSpec, VppError};
use maglev_vppsim::{SimOptions, Simulator};

struct Fixture {
    _dir: tempfile::TempDir,
    sim: Simulator,
    api: std::path::PathBuf,
    stats: std::path::PathBuf,
}

async fn start(v2: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api.sock");
    let stats = dir.path().join("stats.sock");
    let sim = Simulator::start(SimOptions {
        api_socket: api.clone(),
        stats_socket: Some(stats.clone()),
        v2,
        ..Default::default()
    })
    .await
    .unwrap();
    Fixture {
        _dir: dir,
        sim,
        api,
        stats,
    }
}

async fn connect(f: &Fixture) -> LbApi {
    connect_with(f, Duration::from_secs(5)).await
}

async fn connect_with(f: &Fixture, timeout: Duration) -> LbApi {
    let client = Client::connect(
        &f.api,
        ClientOptions {
            name: "test".to_string(),
            timeout,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    LbApi::new(client)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn spec(key: VipKey, encap: Encap) -> VipSpec {
    VipSpec {
        key,
        encap,
        src_ip_sticky: false,
        new_flows_table_length: 1024,
    }
}

#[tokio::test]
async fn handshake_version_and_ping() {
    let f = start(true).await;
    let lb = connect(&f).await;
    assert_eq!(lb.client().client_index() & 0x8000_0000, 0x8000_0000);
    assert!(lb.has_v2() && lb.has_conf_get());
    assert!(lb.client().message_table().len() > 50);
    let v = lb.show_version().await.unwrap();
    assert_eq!(v.program, "vpe");
    assert_eq!(v.version, f.sim.options().version);
    assert_eq!(lb.client().ping().await.unwrap(), f.sim.pid());
    lb.client().clone().close().await.unwrap();
    let calls = f.sim.calls();
    let last = calls.last().unwrap();
    assert_eq!((last.msg, last.retval), ("sockclnt_delete", 1));
    f.sim.shutdown().await;
}

#[tokio::test]
async fn conf_set_and_get() {
    let f = start(true).await;
    let lb = connect(&f).await;
    let before = lb.conf_get().await.unwrap();
    assert_eq!(before.sticky_buckets_per_core, 1024);
    assert_eq!(before.flow_timeout, 40);
    let conf = LbConfig {
        ip4_src_address: "192.0.2.1".parse().unwrap(),
        ip6_src_address: "2001:db8::1".parse().unwrap(),
        sticky_buckets_per_core: u32::MAX, // keep
        flow_timeout: 60,
    };
    lb.conf_set(&conf).await.unwrap();
    let after = lb.conf_get().await.unwrap();
    assert_eq!(after.ip4_src_address, conf.ip4_src_address);
    assert_eq!(
        after.sticky_buckets_per_core, 1024,
        "0xffffffff keeps the value"
    );
    assert_eq!(after.flow_timeout, 60);
    let err = lb
        .conf_set(&LbConfig {
            sticky_buckets_per_core: 1000,
            ..conf
        })
        .await
        .unwrap_err();
    assert_eq!(err.vpp_error(), Some(VppError::InvalidMemorySize));
    f.sim.shutdown().await;
}

#[tokio::test]
async fn weights_and_buckets_follow_upstream() {
    let f = start(true).await;
    let lb = connect(&f).await;
    let key = VipKey {
        address: ip("192.0.2.0"),
        prefix_len: 24,
        protocol: 6,
        port: 80,
    };
    lb.vip_add(&spec(key, Encap::Gre4)).await.unwrap();
    for i in 1..=4 {
        lb.as_add(&key, ip(&format!("10.0.0.{i}")), 100)
            .await
            .unwrap();
    }
    let buckets = |ases: Vec<maglev_vpp::AsInfo>| -> Vec<u32> {
        ases.iter().map(|a| a.num_buckets.unwrap()).collect()
    };
    assert_eq!(buckets(lb.as_dump().await.unwrap()), [256, 256, 256, 256]);
    lb.as_set_weight(&key, ip("10.0.0.1"), 50, false)
        .await
        .unwrap();
    assert_eq!(buckets(lb.as_dump().await.unwrap()), [150, 292, 291, 291]);
    lb.as_set_weight(&key, ip("10.0.0.2"), 0, true)
        .await
        .unwrap();
    assert_eq!(buckets(lb.as_dump().await.unwrap()), [208, 0, 408, 408]);
    let vips = lb.vip_dump().await.unwrap();
    assert_eq!(vips.len(), 1);
    assert_eq!(vips[0].key, key);
    assert_eq!(vips[0].encap, Encap::Gre4);
    assert_eq!(vips[0].flow_table_length, 1024);
    f.sim.shutdown().await;
}

#[tokio::test]
async fn vpp_error_codes() {
    let f = start(true).await;
    let lb = connect(&f).await;
    let key = VipKey::host(ip("192.0.2.10"), 6, 80);
    let code = |r: Result<(), Error>| r.unwrap_err().vpp_error().unwrap();
    assert_eq!(code(lb.vip_del(&key).await), VppError::NoSuchEntry);
    assert_eq!(
        code(lb.vip_add(&spec(key, Encap::Nat6)).await),
        VppError::InvalidAddressFamily
    );
    let mut odd = spec(key, Encap::Gre4);
    odd.new_flows_table_length = 1000;
    assert_eq!(code(lb.vip_add(&odd).await), VppError::InvalidMemorySize);
    lb.vip_add(&spec(key, Encap::Gre4)).await.unwrap();
    assert_eq!(
        code(lb.vip_add(&spec(key, Encap::Gre4)).await),
        VppError::ValueExist
    );
    let all_port = VipKey::host(ip("192.0.2.10"), 6, 0);
    assert_eq!(all_port.protocol, 255);
    assert_eq!(
        code(lb.vip_add(&spec(all_port, Encap::Gre4)).await),
        VppError::ValueExist
    );
    let https = VipKey::host(ip("192.0.2.10"), 6, 443);
    assert_eq!(
        code(lb.vip_add(&spec(https, Encap::Gre6)).await),
        VppError::InvalidArgument
    );
    assert_eq!(
        code(lb.as_add(&key, ip("2001:db8::1"), 100).await),
        VppError::InvalidAddressFamily
    );
    lb.as_add(&key, ip("10.0.0.1"), 100).await.unwrap();
    assert_eq!(
        code(lb.as_add(&key, ip("10.0.0.1"), 100).await),
        VppError::ValueExist
    );
    assert_eq!(
        code(lb.as_set_weight(&key, ip("10.0.0.9"), 1, false).await),
        VppError::NoSuchEntry
    );
    // The error text names the request and the code.
    let e = lb.vip_del(&https).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "lb_add_del_vip: VPP returned no such entry (-6)"
    );
    f.sim.shutdown().await;
}

#[tokio::test]
async fn lazy_deletion_is_visible_in_dumps() {
    let f = start(true).await;
    let lb = connect(&f).await;
    let key = VipKey::host(ip("2001:db8::80"), 17, 53);
    lb.vip_add(&spec(key, Encap::Gre6)).await.unwrap();
    lb.as_add(&key, ip("2001:db8:1::1"), 100).await.unwrap();
    lb.as_add(&key, ip("2001:db8:1::2"), 100).await.unwrap();
    lb.as_del(&key, ip("2001:db8:1::1"), true).await.unwrap();
    let ases = lb.as_dump().await.unwrap();
    assert_eq!(ases.len(), 2);
    let removed = ases
        .iter()
        .find(|a| a.address == ip("2001:db8:1::1"))
        .unwrap();
    assert!(!removed.used);
    assert_eq!(removed.num_buckets, Some(0));
    // Deleting it again is accepted; set_weight is not.
    lb.as_del(&key, ip("2001:db8:1::1"), false).await.unwrap();
    assert!(lb
        .as_set_weight(&key, ip("2001:db8:1::1"), 5, false)
        .await
        .is_err());
    f.sim.collect_garbage();
    assert_eq!(lb.as_dump().await.unwrap().len(), 1);
    f.sim.shutdown().await;
}

#[tokio::test]
async fn ipv4_dump_filter_matches_nothing() {
    let f = start(true).await;
    let lb = connect(&f).await;
    let key = VipKey::host(ip("192.0.2.10"), 6, 80);
    lb.vip_add(&spec(key, Encap::Gre4)).await.unwrap();
    lb.as_add(&key, ip("10.0.0.1"), 100).await.unwrap();
    let filtered = lb
        .client()
        .dump(&LbAsV2Dump {
            pfx: Prefix::host(ip("192.0.2.10")),
            protocol: 6,
            port: 80,
        })
        .await
        .unwrap();
    assert!(filtered.is_empty(), "VPP's IPv4 filter never matches");
    assert_eq!(lb.as_dump().await.unwrap().len(), 1);
    f.sim.shutdown().await;
}

#[tokio::test]
async fn old_vpp_without_v2() {
    let f = start(false).await;
    let lb = connect(&f).await;
    assert!(!lb.has_v2());
    assert!(!lb.has_conf_get());
    let key = VipKey::host(ip("192.0.2.10"), 6, 80);
    lb.vip_add(&spec(key, Encap::Gre4)).await.unwrap();
    lb.as_add(&key, ip("10.0.0.1"), 30).await.unwrap();
    let ases = lb.as_dump().await.unwrap();
    assert_eq!(ases.len(), 1);
    assert_eq!(ases[0].weight, None, "v1 dumps carry no weight");
    let e = lb
        .as_set_weight(&key, ip("10.0.0.1"), 0, true)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::UnknownMessage { name_crc } if name_crc == "lb_as_set_weight_2d89bdbd"),
        "{e}"
    );
    // v1 adds use VPP's default weight.
    assert_eq!(f.sim.lb().live_vips().next().unwrap().ases[0].weight, 100);
    f.sim.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_on_one_connection() {
    let f = start(true).await;
    let lb = connect(&f).await;
    let mut tasks = Vec::new();
    for _ in 0..500 {
        let c = lb.client().clone();
        tasks.push(tokio::spawn(async move { c.ping().await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), f.sim.pid());
    }
    // Dumps interleaved with requests keep their own details.
    let key = VipKey::host(ip("192.0.2.10"), 6, 80);
    lb.vip_add(&spec(key, Encap::Gre4)).await.unwrap();
    let (a, b, c) = tokio::join!(lb.vip_dump(), lb.client().ping(), lb.as_dump());
    assert_eq!(a.unwrap().len(), 1);
    assert!(b.is_ok());
    assert!(c.unwrap().is_empty());
    f.sim.shutdown().await;
}

#[tokio::test]
async fn cli_shows_pool_index_and_sticky() {
    let f = start(true).await;
    let lb = connect(&f).await;
    let key = VipKey::host(ip("192.0.2.10"), 6, 80);
    lb.vip_add(&VipSpec {
        src_ip_sticky: true,
        ..spec(key, Encap::Gre4)
    })
    .await
    .unwrap();
    lb.as_add(&key, ip("10.0.0.1"), 100).await.unwrap();
    let out = lb.cli("show lb vips verbose").await.unwrap();
    assert!(
        out.contains(" ip4-gre4 [1] 192.0.2.10/32 src_ip_sticky\n"),
        "{out}"
    );
    assert!(out.contains("  protocol:6 port:80\n"), "{out}");
    // master's AS line carries the weight; 26.06's does not.
    assert!(
        out.contains("    10.0.0.1 weight:100 buckets:1024 flows:0 dpo:1 used\n"),
        "{out}"
    );
    f.sim.shutdown().await;
    let f = start(false).await;
    let lb = connect(&f).await;
    lb.vip_add(&spec(key, Encap::Gre4)).await.unwrap();
    lb.as_add(&key, ip("10.0.0.1"), 100).await.unwrap();
    let out = lb.cli("show lb vips verbose").await.unwrap();
    assert!(out.contains(" ip4-gre4 [1] 192.0.2.10/32\n"), "{out}");
    assert!(
        out.contains("    10.0.0.1 1024 buckets   0 flows  dpo:1 used\n"),
        "{out}"
    );
    f.sim.shutdown().await;
}

#[tokio::test]
async fn faults_drop_stall_restart() {
    let f = start(true).await;
    let lb = connect_with(&f, Duration::from_millis(300)).await;
    let pid = lb.client().ping().await.unwrap();

    f.sim.set_stalled(true);
    let e = lb.client().ping().await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    f.sim.set_stalled(false);
    assert!(
        lb.client().ping().await.is_ok(),
        "a late reply does not confuse later calls"
    );

    f.sim.drop_connections();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = lb.client().ping().await.unwrap_err();
    assert!(matches!(e, Error::Disconnected), "{e}");
    assert!(lb.client().is_closed());

    let key = VipKey::host(ip("192.0.2.10"), 6, 80);
    let lb = connect(&f).await;
    lb.vip_add(&spec(key, Encap::Gre4)).await.unwrap();
    f.sim.restart();
    let lb = connect(&f).await;
    assert_ne!(
        lb.client().ping().await.unwrap(),
        pid,
        "a restarted VPP has a new pid"
    );
    assert!(
        lb.vip_dump().await.unwrap().is_empty(),
        "and forgot its VIPs"
    );
    f.sim.shutdown().await;
}

#[tokio::test]
async fn table_length_zero_never_reaches_the_wire() {
    let f = start(true).await;
    let lb = connect(&f).await;
    let key = VipKey::host(ip("192.0.2.10"), 6, 80);
    let mut zero = spec(key, Encap::Gre4);
    zero.new_flows_table_length = 0;
    assert!(matches!(
        lb.vip_add(&zero).await,
        Err(Error::Unsupported(_))
    ));
    assert!(f.sim.crashed().is_none());
    // Sent raw, it kills the simulated VPP as it would the real one.
    let raw = lb
        .client()
        .request(&LbAddDelVipV2 {
            pfx: Prefix::host(ip("192.0.2.10")),
            protocol: 6,
            port: 80,
            new_flows_table_length: 0,
            ..Default::default()
        })
        .await;
    assert!(raw.is_err());
    assert!(f.sim.crashed().is_some());
    f.sim.shutdown().await;
}

#[tokio::test]
async fn missing_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Client::connect(dir.path().join("nope.sock"), ClientOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    assert!(e.is_connection_error());
}

#[tokio::test]
async fn stats_segment_counters() {
    let f = start(true).await;
    let lb = connect(&f).await;
    let mut stats = StatsClient::connect(&f.stats).unwrap();
    let boot = stats.boottime().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        boot <= now && now - boot < 60,
        "boottime {boot} vs now {now}"
    );
    assert!(
        stats.lb_vip_counters().unwrap().is_empty(),
        "no VIP, no counters yet"
    );

    let key = VipKey::host(ip("192.0.2.10"), 6, 80);
    lb.vip_add(&spec(key, Encap::Gre4)).await.unwrap();
    f.sim.count_packets(1, 1, 7); // first session packet
    f.sim.count_packets(1, 3, 3); // no server configured
    let counters = stats.lb_vip_counters().unwrap();
    assert_eq!(counters[1].first_packet, 7, "summed over two threads");
    assert_eq!(counters[1].no_server, 3);
    assert_eq!(
        counters[0],
        Default::default(),
        "index 0 is the placeholder VIP"
    );
    let route = stats.combined_counter("/net/route/to").unwrap();
    assert_eq!(route[1], (10, 1000));
    assert!(matches!(
        stats.simple_counter("/no/such"),
        Err(maglev_vpp::stats::StatsError::NotFound(_))
    ));

    // A restart changes the boot time the reader sees.
    tokio::time::sleep(Duration::from_millis(10)).await;
    f.sim.restart();
    let mut stats = StatsClient::connect(&f.stats).unwrap();
    assert!(stats.boottime().unwrap() > boot);
    f.sim.shutdown().await;
}

#[tokio::test]
async fn never_takes_or_removes_a_socket_it_did_not_create() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    // A live socket (a real VPP, say) is refused and left alone.
    let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let e = Simulator::start(SimOptions {
        api_socket: path.clone(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("live socket"), "{e}");
    assert!(path.exists());
    drop(live);
    // A dead one (its listener gone) is replaced.
    let sim = Simulator::start(SimOptions {
        api_socket: path.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    // Someone else's socket put in its place is not removed on shutdown.
    std::fs::remove_file(&path).unwrap();
    let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    sim.shutdown().await;
    assert!(path.exists(), "removed a socket it did not create");
    drop(other);
    // No path, no default: an error, not /run/vpp/api.sock.
    assert!(Simulator::start(SimOptions::default()).await.is_err());
}
