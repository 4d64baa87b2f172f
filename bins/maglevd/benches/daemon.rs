//! `cargo xtask bench daemon`: maglevd as a process.
//!
//! 1. Failover latency, split: a backend stops answering (its server
//!    accepts and closes at once) → **detection** (maglevd's transition
//!    time, from WatchEvents) → **controller overhead** (the weight-0
//!    call arriving at the simulator, whose call log carries wall-clock
//!    time). p50/p99 over many trials; the backend comes back between
//!    trials.
//! 2. Idle CPU and RSS with 1,000 backends: all static, then all TCP-checked
//!    every second (against a closed loopback port), with VPP connected;
//!    CPU from /proc/<pid>/stat over a window after warm-up, RSS from VmHWM.

use maglev_testkit::{free_port, Kill};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use maglev_proto as pb;
use maglev_proto::maglev_client::MaglevClient;
use maglev_vppsim::{SimOptions, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TRIALS: usize = 100;
const WINDOW: Duration = Duration::from_secs(10);

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn maglevd(config: &std::path::Path, api: &std::path::Path, grpc: u16) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_maglevd"))
            .arg("--config")
            .arg(config)
            .args([
                "--grpc-addr",
                &format!("127.0.0.1:{grpc}"),
                "--insecure-admin-tcp",
                "--metrics-addr",
                "",
            ])
            .arg("--vpp-api-addr")
            .arg(api)
            .args(["--vpp-stats-addr", "", "--log-level", "warn"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn header(extra_lb: &str) -> String {
    format!(
        "maglev:\n  vpp:\n    lb:\n      ipv4-src-address: 198.51.100.1\n      ipv6-src-address: '2001:db8::1'\n      startup-min-delay: 0\n      startup-max-delay: 0\n{extra_lb}"
    )
}

fn ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn failover(
    dir: &std::path::Path,
    sim: &Simulator,
    api: &std::path::Path,
) -> (Vec<f64>, Vec<f64>) {
    let alive = Arc::new(AtomicBool::new(true));
    let l = tokio::net::TcpListener::bind("127.0.4.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let a = Arc::clone(&alive);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            let a = Arc::clone(&a);
            tokio::spawn(async move {
                if !a.load(Ordering::SeqCst) {
                    return; // dropped: the probe gets no response
                }
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let config = dir.join("failover.yaml");
    std::fs::write(
        &config,
        format!(
            "{}  healthchecks:\n    web: {{ type: http, port: {port}, interval: 200ms, fast-interval: 50ms, down-interval: 200ms, timeout: 100ms, rise: 1, fall: 2 }}\n  backends:\n    b1: {{ address: 127.0.4.1, healthcheck: web }}\n    b2: {{ address: 127.0.4.2 }}\n  frontends:\n    www: {{ address: 203.0.113.80, port: 80, pools: [ {{ name: p, backends: {{ b1: {{}}, b2: {{}} }} }} ] }}\n",
            header("")
        ),
    )
    .unwrap();
    let grpc = free_port();
    let _d = maglevd(&config, api, grpc);
    let mut client = loop {
        if let Ok(c) = MaglevClient::connect(format!("http://127.0.0.1:{grpc}")).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let weight = |sim: &Simulator| -> Option<u8> {
        let lb = sim.lb();
        let w = lb
            .live_vips()
            .flat_map(|v| {
                v.ases.iter().filter(|a| {
                    a.used && a.address == "127.0.4.1".parse::<std::net::IpAddr>().unwrap()
                })
            })
            .map(|a| a.weight)
            .next();
        w
    };
    while weight(sim) != Some(100) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut events = client
        .watch_events(pb::WatchEventsRequest {
            backend: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut detection, mut overhead) = (Vec::new(), Vec::new());
    for _ in 0..TRIALS {
        let n = sim.call_count();
        let death = SystemTime::now();
        alive.store(false, Ordering::SeqCst);
        let transition_ns = loop {
            let ev = events.message().await.unwrap().unwrap();
            if let Some(pb::event::Event::Backend(b)) = ev.event {
                let t = b.transition.unwrap();
                if t.to == "down" {
                    break t.at_unix_ns;
                }
            }
        };
        let call = loop {
            if let Some(c) = sim
                .calls_since(n)
                .into_iter()
                .find(|c| c.msg == "lb_as_set_weight")
            {
                break c;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        detection.push((transition_ns - ns(death)) as f64 / 1e6);
        overhead.push((ns(call.wall) - transition_ns) as f64 / 1e6);
        alive.store(true, Ordering::SeqCst);
        while weight(sim) != Some(100) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Let the counter reach the top again.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    (detection, overhead)
}

async fn idle(dir: &std::path::Path, api: &std::path::Path, checked: bool) -> (f64, f64) {
    // Nothing listens on the port: every probe is refused (the backends are
    // down and probed every second all the same), and no server is needed.
    let port = free_port();
    let mut y = header("");
    y.push_str(&format!(
        "  healthchecks:\n    t: {{ type: tcp, port: {port}, interval: 1s, timeout: 1s }}\n  backends:\n"
    ));
    for i in 0..1000 {
        let hc = if checked { ", healthcheck: t" } else { "" };
        y.push_str(&format!(
            "    b{i}: {{ address: 127.5.{}.{}{hc} }}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    y.push_str("  frontends:\n");
    for f in 0..10 {
        y.push_str(&format!(
            "    f{f}:\n      address: 203.0.113.{}\n      port: 80\n      new-flows-table-length: 16384\n      pools:\n        - name: p\n          backends:\n",
            f + 1
        ));
        for i in (f * 100)..(f * 100 + 100) {
            y.push_str(&format!("            b{i}: {{}}\n"));
        }
    }
    if !checked {
        y = y.replace(
            "  healthchecks:\n",
            "  healthchecks:\n    unused-ok: { type: icmp }\n",
        );
    }
    let config = dir.join(if checked {
        "idle-tcp.yaml"
    } else {
        "idle-static.yaml"
    });
    std::fs::write(&config, y).unwrap();
    let d = maglevd(&config, api, free_port());
    let pid = d.0.id();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let c0 = cpu_seconds(pid);
    tokio::time::sleep(WINDOW).await;
    let cpu = (cpu_seconds(pid) - c0) / WINDOW.as_secs_f64() * 100.0;
    (cpu, peak_rss_mb(pid))
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api.sock");
    let sim = Simulator::start_on_thread(SimOptions {
        api_socket: api.clone(),
        ..Default::default()
    })
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut det, mut over) = rt.block_on(failover(dir.path(), &sim, &api));
    sim.restart();
    let (cpu_static, rss_static) = rt.block_on(idle(dir.path(), &api, false));
    sim.restart();
    let (cpu_tcp, rss_tcp) = rt.block_on(idle(dir.path(), &api, true));
    println!("| measurement | p50 | p99 | max |");
    println!("|---|---|---|---|");
    println!(
        "| detection: death → transition ({TRIALS} trials) | {:.1} ms | {:.1} ms | {:.1} ms |",
        pct(&mut det, 0.5),
        pct(&mut det, 0.99),
        pct(&mut det, 1.0)
    );
    println!(
        "| controller overhead: transition → weight 0 at VPP | {:.2} ms | {:.2} ms | {:.2} ms |",
        pct(&mut over, 0.5),
        pct(&mut over, 0.99),
        pct(&mut over, 1.0)
    );
    println!();
    println!("| 1,000 backends, VPP connected | CPU (of one core) | peak RSS |");
    println!("|---|---|---|");
    println!("| static (no probes) | {cpu_static:.2} % | {rss_static:.1} MB |");
    println!("| TCP check every 1 s | {cpu_tcp:.2} % | {rss_tcp:.1} MB |");
}
