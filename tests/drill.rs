//! A failover drill end to end, on loopback: two HTTP backends, maglevd
//! (the binary) programming the simulator, the simulator's data-plane
//! stand-in serving the VIP by VPP's Maglev table, and maglevt's monitor
//! probing the VIP from outside with a new connection per probe.
//!
//! - Disabling a backend is hitless: new flows move to the other backend
//!   and not one probe fails.
//! - A backend that dies costs the probes hashed to it until the health
//!   check notices (fall × fast-interval); then every probe succeeds on the
//!   survivor, and the dead backend turns grey in the tally 5 s after its
//!   last answer.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maglev_drills::{free_port, workspace_bin, Kill};
use maglev_monitor::stats::{Class, ACTIVE_FOR};
use maglev_monitor::targets::{Kind, Target};
use maglev_monitor::{Header, Model, Monitor, ProbeOptions};
use maglev_proto as pb;
use maglev_proto::maglev_client::MaglevClient;
use maglev_vppsim::{SimOptions, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const VIP: &str = "127.0.4.10";
const B1: &str = "127.0.4.11";
const B2: &str = "127.0.4.12";

/// A backend: answers any request with `X-IPng-Frontend: <name>`.
async fn backend(ip: &str, port: u16, name: &'static str) -> JoinHandle<()> {
    let l = TcpListener::bind((ip, port)).await.unwrap();
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            conns.spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut have = 0;
                while !buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf[have..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have += n,
                    }
                }
                let r = format!(
                    "HTTP/1.1 200 OK\r\nX-IPng-Frontend: {name}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = s.write_all(r.as_bytes()).await;
            });
        }
    })
}

fn config(path: &Path, port: u16) {
    std::fs::write(
        path,
        format!(
            "maglev:
  vpp:
    lb:
      ipv4-src-address: 198.51.100.1
      ipv6-src-address: '2001:db8::1'
      sync-interval: 1s
      startup-min-delay: 0
      startup-max-delay: 0
  healthchecks:
    web: {{ type: http, port: {port}, interval: 200ms, fast-interval: 100ms, down-interval: 200ms, timeout: 300ms, rise: 2, fall: 2 }}
  backends:
    b1: {{ address: {B1}, healthcheck: web }}
    b2: {{ address: {B2}, healthcheck: web }}
  frontends:
    www:
      address: {VIP}
      port: {port}
      pools:
        - name: primary
          backends: {{ b1: {{}}, b2: {{}} }}
"
        ),
    )
    .unwrap();
}

async fn wait_for(m: &Monitor, what: &str, limit: Duration, ok: impl Fn(&Model) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        {
            let model = m.model();
            if ok(&model) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; model: {:?} errors {:?}",
                model.stats[0].tally(Instant::now()),
                model.errors
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn count(m: &Model, name: &str) -> u64 {
    m.stats[0]
        .tally(Instant::now())
        .iter()
        .find(|e| e.value == name)
        .map_or(0, |e| e.count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_is_hitless_and_a_dead_backend_costs_only_the_detection_window() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let b1 = backend(B1, port, "b1").await;
    let b2 = backend(B2, port, "b2").await;
    let api = dir.path().join("api.sock");
    let sim = Simulator::start(SimOptions {
        api_socket: api.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    sim.serve_dataplane();
    let cfg = dir.path().join("maglev.yaml");
    config(&cfg, port);
    let grpc = free_port();
    let _maglevd = Kill(
        Command::new(workspace_bin("maglevd"))
            .arg("--config")
            .arg(&cfg)
            .args([
                "--grpc-addr",
                &format!("127.0.0.1:{grpc}"),
                "--insecure-admin-tcp",
            ])
            .args(["--metrics-addr", "", "--vpp-stats-addr", ""])
            .arg("--vpp-api-addr")
            .arg(&api)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let vip: SocketAddr = format!("{VIP}:{port}").parse().unwrap();
    let monitor = Monitor::start(
        vec![Target {
            name: "www".into(),
            address: vip.ip(),
            port,
            kind: Kind::Http,
        }],
        Duration::from_millis(20),
        ProbeOptions {
            timeout: Duration::from_millis(500),
            ..ProbeOptions::default()
        },
    );
    let monitor = Arc::new(monitor);
    wait_for(
        &monitor,
        "both backends answer",
        Duration::from_secs(20),
        |m| count(m, "b1") >= 5 && count(m, "b2") >= 5,
    )
    .await;
    // Before maglevd programmed the VIP, probes failed; start clean.
    monitor.model().reset();

    let mut api_client = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(c) = MaglevClient::connect(format!("http://127.0.0.1:{grpc}")).await {
                break c;
            }
            assert!(Instant::now() < deadline, "maglevd gRPC never came up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    // Drill 1: disable b1. New flows go to b2; nothing fails.
    api_client
        .disable_backend(pb::BackendActionRequest { name: "b1".into() })
        .await
        .unwrap();
    // The reconciler applies it within milliseconds; give it a little.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b1_after_disable = count(&monitor.model(), "b1");
    let b2_before = count(&monitor.model(), "b2");
    wait_for(&monitor, "50 probes on b2", Duration::from_secs(10), |m| {
        count(m, "b2") >= b2_before + 50
    })
    .await;
    {
        let m = monitor.model();
        assert_eq!(
            count(&m, "b1"),
            b1_after_disable,
            "no new flow reached disabled b1"
        );
        assert_eq!(m.stats[0].fail, 0, "disable is hitless: {:?}", m.errors);
    }

    // Drill 2: enable b1 again, then b2 dies.
    api_client
        .enable_backend(pb::BackendActionRequest { name: "b1".into() })
        .await
        .unwrap();
    let b1_before = count(&monitor.model(), "b1");
    wait_for(&monitor, "b1 back", Duration::from_secs(10), |m| {
        count(m, "b1") >= b1_before + 10
    })
    .await;
    b2.abort();
    let died = Instant::now();
    // Until maglevd sees b2 down (fall 2 × fast-interval 100 ms, after the
    // next probe) new flows hashed to b2 fail; then all go to b1.
    wait_for(&monitor, "some probe fails", Duration::from_secs(5), |m| {
        m.stats[0].fail > 0
    })
    .await;
    let mut last_fail = monitor.model().stats[0].fail;
    let mut clean_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let fail = monitor.model().stats[0].fail;
        if fail != last_fail {
            last_fail = fail;
            clean_since = Instant::now();
        } else if clean_since.elapsed() >= Duration::from_secs(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "probes kept failing after b2 died"
        );
    }
    let outage = clean_since.duration_since(died);
    assert!(
        outage < Duration::from_secs(3),
        "failures stopped {outage:?} after b2 died"
    );
    let m = monitor.model().clone();
    eprintln!(
        "b2 died: {} probes failed, the last {outage:?} after its death",
        m.stats[0].fail
    );
    assert!(
        m.errors.iter().all(|e| e.class == Class::NetErr),
        "a dead backend is a network error: {:?}",
        m.errors
    );
    let b1_now = count(&m, "b1");
    let view = m.view(
        died + ACTIVE_FOR + Duration::from_millis(100),
        Header::default(),
    );
    let tally = &view.tallies[0].entries;
    assert!(
        tally.iter().any(|(v, _, active)| v == "b1" && *active),
        "{tally:?}"
    );
    assert!(
        tally.iter().any(|(v, _, active)| v == "b2" && !*active),
        "b2 is grey 5 s after its last answer: {tally:?}"
    );
    assert!(b1_now > b1_before);
    b1.abort();
    drop(monitor);
    sim.shutdown().await;
}
