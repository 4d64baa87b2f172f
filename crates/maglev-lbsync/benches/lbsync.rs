//! `cargo xtask bench lbsync`: the reconciler's costs at scale.
//!
//! - planning: desired state + plan for 1,000 VIPs × 64 ASes (from empty,
//!   and when already in sync);
//! - full sync from empty: 1,000 VIPs × 64 ASes applied to the simulator
//!   (in-process, on its own thread);
//! - per-VIP sync latency: a backend transition (operator disable/enable)
//!   to the weight call arriving at the simulator, p50/p99 over many trials,
//!   with all 1,000 VIPs programmed.
//!
//! With `--real` (`cargo xtask bench lbsync --real`) the full sync and the
//! per-VIP latency are measured again against each real VPP build, with
//! VPP's own CPU time for the full sync beside the wall time (VPP rebuilds
//! the VIP's Maglev table on every AS change, so that is the floor), and
//! the latency taken from the transition to the reconciler's count of
//! completed weight calls (VPP has answered).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use maglev_health::{Checker, CheckerOptions, State};
use maglev_lbsync::actual::ActualState;
use maglev_lbsync::desired::{desired_state, Overrides};
use maglev_lbsync::reconciler::{spawn, ReconcilerOptions};
use maglev_lbsync::{plan, Capabilities, Scope};
use maglev_vppsim::{SimOptions, Simulator};

const VIPS: usize = 1000;
const ASES: usize = 64;
const TRIALS: usize = 200;

/// 1,000 frontends, each with its own 64 static backends.
fn config() -> maglev_config::Config {
    let mut y = String::from(
        "maglev:\n  vpp:\n    lb:\n      ipv4-src-address: 198.51.100.1\n      ipv6-src-address: '2001:db8::1'\n      sync-interval: 1h\n      startup-min-delay: 0\n      startup-max-delay: 0\n  backends:\n",
    );
    for v in 0..VIPS {
        for a in 0..ASES {
            y.push_str(&format!(
                "    b{v}x{a}: {{ address: 10.{}.{}.{} }}\n",
                v / 256,
                v % 256,
                a + 1
            ));
        }
    }
    y.push_str("  frontends:\n");
    for v in 0..VIPS {
        y.push_str(&format!(
            "    f{v}:\n      address: 203.{}.{}.1\n      port: 443\n      new-flows-table-length: 8192\n      pools:\n        - name: p\n          backends:\n",
            v / 256,
            v % 256
        ));
        for a in 0..ASES {
            y.push_str(&format!("            b{v}x{a}: {{}}\n"));
        }
    }
    maglev_config::load_str(&y, "bench.yaml").unwrap().config
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Full sync from empty and per-VIP latency against a real VPP: (wall,
/// VPP CPU, latencies).
fn real_vpp(
    cfg: &maglev_config::Config,
    install: &maglev_testkit::vpp::Install,
) -> (Duration, Option<f64>, Vec<Duration>) {
    let dir = tempfile::tempdir().unwrap();
    let vpp = maglev_testkit::vpp::Vpp::start(install, dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let checker = Checker::start(cfg, CheckerOptions::default()).unwrap();
        while checker.backends().iter().any(|b| b.state != State::Up) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let cpu0 = vpp.cpu_seconds();
        let t = Instant::now();
        let handle = spawn(
            Arc::new(cfg.clone()),
            checker.clone(),
            ReconcilerOptions {
                api_socket: Some(vpp.api_socket()),
                stats_socket: None,
                retry_interval: Duration::from_secs(3600),
                call_timeout: Duration::from_secs(60),
                ..Default::default()
            },
        );
        let done = |s: &maglev_lbsync::reconciler::Status, kind: &str| -> u64 {
            s.totals
                .iter()
                .filter(|((_, k), _)| *k == kind)
                .map(|(_, n)| *n)
                .sum()
        };
        // Any completed AS call: a weight change on master, a delete or add
        // on 26.06 (no weights there).
        let as_calls = |s: &maglev_lbsync::reconciler::Status| {
            done(s, "as_weight_updated") + done(s, "as_removed") + done(s, "as_added")
        };
        let mut status = handle.watch_status();
        status
            .wait_for(|s| {
                done(s, "vip_added") >= VIPS as u64 && done(s, "as_added") >= (VIPS * ASES) as u64
            })
            .await
            .unwrap();
        let full = t.elapsed();
        let cpu = cpu0.zip(vpp.cpu_seconds()).map(|(a, b)| b - a);
        let mut lat = Vec::with_capacity(TRIALS);
        for i in 0..TRIALS {
            let backend = format!("b{}x{}", i % VIPS, i % ASES);
            let before = as_calls(&status.borrow());
            let t = Instant::now();
            checker.disable(&backend, "bench").unwrap();
            status.wait_for(|s| as_calls(s) > before).await.unwrap();
            lat.push(t.elapsed());
            let before = as_calls(&status.borrow());
            checker.enable(&backend, "bench").unwrap();
            status.wait_for(|s| as_calls(s) > before).await.unwrap();
        }
        drop(handle);
        lat.sort();
        (full, cpu, lat)
    })
}

fn main() {
    let real = std::env::args().any(|a| a == "--real");
    let cfg = config();
    let states: HashMap<String, State> = cfg
        .backends
        .keys()
        .map(|b| (b.clone(), State::Up))
        .collect();
    let caps = Capabilities { v2: true };

    // Planning.
    let t = Instant::now();
    let desired = desired_state(&cfg, &states, &Overrides::new());
    let t_desired = t.elapsed();
    let t = Instant::now();
    let cold = plan(&desired, &ActualState::default(), &Scope::All, caps);
    let t_cold = t.elapsed();
    let mut synced = ActualState::default();
    for op in &cold.ops {
        synced.apply(op, true);
    }
    let t = Instant::now();
    let idle = plan(&desired, &synced, &Scope::All, caps);
    let t_idle = t.elapsed();
    assert!(idle.is_empty());

    // The simulator on its own thread and runtime.
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api.sock");
    let sim = Simulator::start_on_thread(SimOptions {
        api_socket: api.clone(),
        ..Default::default()
    })
    .unwrap();

    // The daemon side: checker and reconciler on one current-thread runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (full, latencies) = rt.block_on(async {
        let checker = Checker::start(&cfg, CheckerOptions::default()).unwrap();
        // Let every static backend come up before VPP is connected.
        while checker.backends().iter().any(|b| b.state != State::Up) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let handle = spawn(
            Arc::new(cfg.clone()),
            checker.clone(),
            ReconcilerOptions {
                api_socket: None,
                stats_socket: None,
                ..Default::default()
            },
        );
        drop(handle);
        // Full sync from empty, through the reconciler's own path.
        let handle = spawn(
            Arc::new(cfg.clone()),
            checker.clone(),
            ReconcilerOptions {
                api_socket: Some(api.clone()),
                stats_socket: None,
                retry_interval: Duration::from_secs(3600),
                ..Default::default()
            },
        );
        let t = Instant::now();
        while sim.lb().live_vips().count() < VIPS
            || sim.lb().live_vips().map(|v| v.ases.len()).sum::<usize>() < VIPS * ASES
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let full = t.elapsed();
        sim.clear_calls();
        // Per-VIP latency: transition → weight call at the simulator.
        let mut lat = Vec::with_capacity(TRIALS);
        for i in 0..TRIALS {
            let backend = format!("b{}x{}", i % VIPS, i % ASES);
            let n = sim.call_count();
            let t = Instant::now();
            checker.disable(&backend, "bench").unwrap();
            loop {
                if let Some(c) = sim
                    .calls_since(n)
                    .iter()
                    .find(|c| c.msg == "lb_as_set_weight")
                {
                    lat.push(c.at.duration_since(t));
                    break;
                }
                tokio::task::yield_now().await;
            }
            checker.enable(&backend, "bench").unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(handle);
        lat.sort();
        (full, lat)
    });

    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| desired state, {VIPS} VIPs × {ASES} ASes | {:.1} ms |",
        t_desired.as_secs_f64() * 1e3
    );
    println!(
        "| plan from empty ({} calls) | {:.1} ms |",
        cold.ops.len(),
        t_cold.as_secs_f64() * 1e3
    );
    println!(
        "| plan when in sync (0 calls) | {:.1} ms |",
        t_idle.as_secs_f64() * 1e3
    );
    println!(
        "| full sync from empty against the simulator ({} calls) | {:.2} s |",
        cold.ops.len(),
        full.as_secs_f64()
    );
    println!(
        "| per-VIP sync after a transition, {TRIALS} trials: p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
    if real {
        for install in maglev_testkit::vpp::installs().iter().rev() {
            let (full, cpu, lat) = real_vpp(&cfg, install);
            report_full(&install.name, cold.ops.len(), full, cpu);
            println!(
                "| per-VIP sync against VPP {} (transition to VPP's reply), {TRIALS} trials: p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |",
                install.name,
                percentile(&lat, 0.5).as_secs_f64() * 1e3,
                percentile(&lat, 0.99).as_secs_f64() * 1e3,
                lat.last().unwrap().as_secs_f64() * 1e3
            );
        }
    }
}

fn report_full(name: &str, calls: usize, full: Duration, cpu: Option<f64>) {
    println!(
        "| full sync from empty against VPP {name} ({calls} calls): wall / VPP's own CPU (ratio) | {:.2} s / {} |",
        full.as_secs_f64(),
        match cpu {
            Some(c) => format!("{c:.2} s ({:.2}×)", full.as_secs_f64() / c),
            None => "n/a".to_string(),
        }
    );
}
