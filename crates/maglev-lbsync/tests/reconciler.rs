//! The reconciler against the simulator over real sockets: warmup, per-VIP
//! release, drift repair, VPP restart, old VPP, deterministic tables,
//! dry runs, weight overrides, prediction.

use maglev_testkit::eventually;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use maglev_config::Config;
use maglev_health::{Checker, CheckerOptions};
use maglev_lbsync::desired::vip_key;
use maglev_lbsync::predict;
use maglev_lbsync::reconciler::{spawn, ReconcilerHandle, ReconcilerOptions};
use maglev_vppsim::{SimOptions, Simulator};
use tokio::time::Instant;

struct Rig {
    _dir: tempfile::TempDir,
    sim: Simulator,
    checker: Checker,
    handle: ReconcilerHandle,
    start: Instant,
}

fn config(lb_extra: &str, frontends: &str) -> Config {
    config_with(lb_extra, frontends, "300ms")
}

fn config_with(lb_extra: &str, frontends: &str, sync_interval: &str) -> Config {
    let text = format!(
        "maglev:
  vpp:
    lb:
      ipv4-src-address: 198.51.100.1
      ipv6-src-address: '2001:db8::1'
      sync-interval: {sync_interval}
{lb_extra}
  healthchecks:
    silent: {{ type: tcp, port: 9, timeout: 3s, interval: 5s }}
  backends:
    s1: {{ address: 10.0.0.2 }}
    s2: {{ address: 10.0.0.10 }}
    s3: {{ address: 10.0.0.3 }}
    slow: {{ address: 127.0.0.1, healthcheck: silent }}
  frontends:
{frontends}"
    );
    maglev_config::load_str(&text, "t.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .config
}

const WWW: &str = "    www:
      address: 203.0.113.80
      port: 443
      pools:
        - { name: primary, backends: { s1: { weight: 60 }, s2: {} } }
        - { name: standby, backends: { s3: {} } }
";

const NO_WARMUP: &str = "      startup-min-delay: 0\n      startup-max-delay: 0";

async fn rig(cfg: Config, v2: bool) -> Rig {
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
    let start = Instant::now();
    let checker = Checker::start(&cfg, CheckerOptions::default()).unwrap();
    let handle = spawn(
        Arc::new(cfg),
        checker.clone(),
        ReconcilerOptions {
            api_socket: Some(api),
            stats_socket: Some(stats),
            retry_interval: Duration::from_millis(50),
            ping_interval: Duration::from_millis(100),
            ..Default::default()
        },
    );
    Rig {
        _dir: dir,
        sim,
        checker,
        handle,
        start,
    }
}

/// (VIP address, AS address) → (weight, buckets) of live ASes in the sim.
fn sim_ases(sim: &Simulator) -> BTreeMap<(IpAddr, IpAddr), (u8, u32)> {
    let lb = sim.lb();
    let mut out = BTreeMap::new();
    for v in lb.live_vips() {
        for (i, a) in v.ases.iter().enumerate().filter(|(_, a)| a.used) {
            out.insert((v.address, a.address), (a.weight, v.buckets(i)));
        }
    }
    out
}

/// How long the simulator tests wait for a condition.
const WAIT: Duration = Duration::from_secs(5);

/// A TCP port free on `ip` (a loopback address) a moment ago.
fn free_port_on(ip: &str) -> u16 {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap().port()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn lb_writes(sim: &Simulator) -> usize {
    sim.calls()
        .iter()
        .filter(|c| c.msg.starts_with("lb_add_del") || c.msg == "lb_as_set_weight")
        .count()
}

#[tokio::test]
async fn cold_start_waits_for_the_warmup_then_programs_everything() {
    let r = rig(
        config(
            "      startup-min-delay: 400ms\n      startup-max-delay: 2s",
            WWW,
        ),
        true,
    )
    .await;
    // Connected and conf pushed, but no lb writes inside the hands-off window.
    eventually("connected", WAIT, || r.handle.status().vpp.is_some()).await;
    tokio::time::sleep_until(r.start + Duration::from_millis(300)).await;
    assert_eq!(lb_writes(&r.sim), 0, "wrote during startup-min-delay");
    assert!(
        r.sim.calls().iter().any(|c| c.msg == "lb_conf"),
        "lb_conf is not held back"
    );
    eventually("programmed", WAIT, || sim_ases(&r.sim).len() == 3).await;
    assert!(r.start.elapsed() >= Duration::from_millis(400));
    let ases = sim_ases(&r.sim);
    let vip = ip("203.0.113.80");
    assert_eq!(ases[&(vip, ip("10.0.0.2"))].0, 60);
    assert_eq!(ases[&(vip, ip("10.0.0.10"))].0, 100);
    assert_eq!(ases[&(vip, ip("10.0.0.3"))].0, 0, "standby");
    // Numeric order of the AS calls: .2, .3, .10.
    let order: Vec<String> = r
        .sim
        .calls()
        .iter()
        .filter(|c| c.msg == "lb_add_del_as_v2")
        .map(|c| c.detail.clone())
        .collect();
    let pos = |needle: &str| order.iter().position(|d| d.contains(needle)).unwrap();
    assert!(
        pos("[10, 0, 0, 2") < pos("[10, 0, 0, 3") && pos("[10, 0, 0, 3") < pos("[10, 0, 0, 10"),
        "{order:?}"
    );
    // lb_conf got the configured sources.
    assert_eq!(r.sim.lb().conf.ip4_src, [198, 51, 100, 1]);
    // A second sync right after sends nothing.
    let before = lb_writes(&r.sim);
    let report = r.handle.sync(None, false).await.unwrap();
    assert!(report.plan.is_empty(), "{}", report.plan);
    assert_eq!(lb_writes(&r.sim), before);
}

#[tokio::test]
async fn a_frontend_is_released_as_soon_as_its_backends_are_known() {
    let frontends = format!(
        "{WWW}    api:
      address: 203.0.113.81
      port: 80
      pools:
        - {{ name: p, backends: {{ slow: {{}} }} }}
"
    );
    let r = rig(
        config(
            "      startup-min-delay: 200ms\n      startup-max-delay: 10s",
            &frontends,
        ),
        true,
    )
    .await;
    // www's backends are static (known at once); api's probe takes 3 s.
    eventually("www programmed", WAIT, || sim_ases(&r.sim).len() == 3).await;
    assert!(r.start.elapsed() < Duration::from_secs(2));
    assert!(
        !r.sim
            .lb()
            .live_vips()
            .any(|v| v.address == ip("203.0.113.81")),
        "api is still unknown and must not be written"
    );
    assert!(!r.handle.status().warmup_done);
}

#[tokio::test]
async fn drift_is_repaired_by_the_periodic_full_sync() {
    let r = rig(config(NO_WARMUP, WWW), true).await;
    eventually("programmed", WAIT, || sim_ases(&r.sim).len() == 3).await;
    let vip = vip_key(&r.handle.desired().await.unwrap().0.frontends["www"]);
    // Someone deletes an AS behind our back.
    r.sim.with_lb_mut(|lb, now| {
        let p = maglev_vpp::binapi::Prefix::host(vip.address);
        let a: maglev_vpp::binapi::Address = ip("10.0.0.10").into();
        assert_eq!(lb.add_del_as(&p, 6, 443, &a, 0, true, false, now), 0);
    });
    assert_eq!(sim_ases(&r.sim).len(), 2);
    eventually("restored by the periodic sync", WAIT, || {
        sim_ases(&r.sim).len() == 3
    })
    .await;
}

#[tokio::test]
async fn a_restarted_vpp_gets_everything_again() {
    let r = rig(config(NO_WARMUP, WWW), true).await;
    eventually("programmed", WAIT, || sim_ases(&r.sim).len() == 3).await;
    let pid = r.handle.status().vpp.unwrap().pid;
    let boot = r.handle.status().vpp.unwrap().boottime;
    r.sim.restart();
    assert!(sim_ases(&r.sim).is_empty());
    eventually("reconnected to the new VPP", WAIT, || {
        r.handle.status().vpp.is_some_and(|v| v.pid != pid)
    })
    .await;
    assert_ne!(r.handle.status().vpp.unwrap().boottime, boot);
    eventually("resynced", WAIT, || sim_ases(&r.sim).len() == 3).await;
    assert_eq!(
        r.sim.lb().conf.ip4_src,
        [198, 51, 100, 1],
        "lb_conf pushed again"
    );
}

#[tokio::test]
async fn health_transitions_reach_vpp() {
    let r = rig(config(NO_WARMUP, WWW), true).await;
    eventually("programmed", WAIT, || sim_ases(&r.sim).len() == 3).await;
    r.sim.clear_calls();
    r.checker.disable("s2", "test").unwrap();
    let vip = ip("203.0.113.80");
    eventually("s2 at weight 0", WAIT, || {
        sim_ases(&r.sim)[&(vip, ip("10.0.0.10"))].0 == 0
    })
    .await;
    let call = r
        .sim
        .calls()
        .into_iter()
        .find(|c| c.msg == "lb_as_set_weight")
        .unwrap();
    assert!(
        call.detail.contains("weight: 0") && call.detail.contains("is_flush: true"),
        "{}",
        call.detail
    );
    // Disable the whole primary pool: the standby takes over.
    r.checker.disable("s1", "test").unwrap();
    eventually("standby active", WAIT, || {
        sim_ases(&r.sim)[&(vip, ip("10.0.0.3"))].0 == 100
    })
    .await;
    assert_eq!(
        r.handle.status().frontends["www"],
        maglev_lbsync::FrontendState::Up
    );
}

#[tokio::test]
async fn weight_override_dry_run_and_errors() {
    let r = rig(config(NO_WARMUP, WWW), true).await;
    eventually("programmed", WAIT, || sim_ases(&r.sim).len() == 3).await;
    r.handle
        .set_weight("www", "primary", "s1", 7)
        .await
        .unwrap();
    let vip = ip("203.0.113.80");
    eventually("override applied", WAIT, || {
        sim_ases(&r.sim)[&(vip, ip("10.0.0.2"))].0 == 7
    })
    .await;
    assert!(r
        .handle
        .set_weight("www", "primary", "s1", 101)
        .await
        .is_err());
    assert!(r
        .handle
        .set_weight("nope", "primary", "s1", 1)
        .await
        .is_err());
    assert!(r
        .handle
        .set_weight("www", "standby", "s1", 1)
        .await
        .is_err());
    // Dry run: the plan, nothing sent.
    r.sim.with_lb_mut(|lb, now| {
        let p = maglev_vpp::binapi::Prefix::host(vip);
        let a: maglev_vpp::binapi::Address = ip("10.0.0.2").into();
        lb.add_del_as(&p, 6, 443, &a, 0, true, false, now);
    });
    let before = lb_writes(&r.sim);
    let report = r.handle.sync(Some("www".into()), true).await;
    let report = report.unwrap();
    // The per-VIP plan uses the cache, which does not know about the
    // deletion; a full dry run reads VPP.
    let full = r.handle.sync(None, true).await.unwrap();
    assert_eq!(
        full.plan.to_string(),
        "as-add 203.0.113.80/32 tcp:443 10.0.0.2 weight 7\n"
    );
    assert!(report.applied.is_none() && full.applied.is_none());
    assert_eq!(lb_writes(&r.sim), before, "dry runs send nothing");
    assert!(r.handle.sync(Some("nope".into()), true).await.is_err());
}

#[tokio::test]
async fn old_vpp_without_v2() {
    let r = rig(config(NO_WARMUP, WWW), false).await;
    eventually("programmed", WAIT, || sim_ases(&r.sim).len() == 2).await;
    assert!(!r.handle.status().vpp.unwrap().lb_v2);
    let vip = ip("203.0.113.80");
    assert!(
        !sim_ases(&r.sim).contains_key(&(vip, ip("10.0.0.3"))),
        "weight 0 is not added"
    );
    r.checker.disable("s2", "test").unwrap();
    eventually("s2 deleted", WAIT, || {
        !sim_ases(&r.sim).contains_key(&(vip, ip("10.0.0.10")))
    })
    .await;
    let v2_only = [
        "lb_add_del_as_v2",
        "lb_as_set_weight",
        "lb_as_v2_dump",
        "lb_conf_get",
    ];
    assert!(r.sim.calls().iter().all(|c| !v2_only.contains(&c.msg)));
    r.checker.enable("s2", "test").unwrap();
    eventually("s2 back", WAIT, || {
        sim_ases(&r.sim).contains_key(&(vip, ip("10.0.0.10")))
    })
    .await;
}

#[tokio::test]
async fn two_reconcilers_build_identical_tables_as_predicted() {
    let a = rig(config(NO_WARMUP, WWW), true).await;
    let b = rig(config(NO_WARMUP, WWW), true).await;
    eventually("a programmed", WAIT, || sim_ases(&a.sim).len() == 3).await;
    eventually("b programmed", WAIT, || sim_ases(&b.sim).len() == 3).await;
    let table = |sim: &Simulator| -> Vec<Option<IpAddr>> {
        let lb = sim.lb();
        let v = lb.live_vips().next().unwrap();
        v.table()
            .iter()
            .map(|s| s.map(|i| v.ases[i].address))
            .collect()
    };
    assert_eq!(table(&a.sim), table(&b.sim), "slot for slot");
    // The prediction matches VPP's table and num_buckets.
    let (cfg, desired, _) = a.handle.desired().await.unwrap();
    let d = &desired.vips[&vip_key(&cfg.frontends["www"])];
    let p = predict::table(d);
    assert_eq!(p.slots, table(&a.sim));
    let vpp = a.handle.vpp_state().await.unwrap();
    let actual = &vpp.vips[&d.key];
    for (addr, n) in &p.buckets {
        assert_eq!(actual.ases[addr].buckets, Some(*n), "{addr}");
    }
    assert_eq!(actual.index, Some(1), "pool index from the CLI");
    assert_eq!(actual.src_ip_sticky, Some(false));
    // A lookup lands on a live AS.
    let (slot, hit) = predict::lookup(d, &p, ip("198.51.100.7"), 40000, 443);
    assert!(slot < 1024 && hit.is_some());
}

#[tokio::test]
async fn published_buckets_are_what_vpp_says_after_every_change() {
    published_buckets(true).await;
}

#[tokio::test]
async fn published_buckets_are_what_old_vpp_says_after_every_change() {
    published_buckets(false).await;
}

async fn published_buckets(v2: bool) {
    let r = rig(config(NO_WARMUP, WWW), v2).await;
    let ases = if v2 { 3 } else { 2 };
    eventually("programmed", WAIT, || sim_ases(&r.sim).len() == ases).await;
    let key = {
        let (cfg, _, _) = r.handle.desired().await.unwrap();
        vip_key(&cfg.frontends["www"])
    };
    // The published buckets (what a read gets without asking anyone)
    // against a fresh read of VPP, after each kind of change.
    let check = |what: &'static str| {
        let handle = r.handle.clone();
        async move {
            let fresh = handle.vpp_state().await.unwrap();
            let want: BTreeMap<IpAddr, u32> = fresh.vips[&key]
                .ases
                .iter()
                .map(|(a, s)| (*a, s.buckets.unwrap()))
                .collect();
            let got = handle
                .buckets(&key)
                .unwrap_or_else(|| panic!("{what}: no buckets"));
            assert_eq!(*got, want, "{what}");
        }
    };
    check("after the first sync").await;
    r.checker.disable("s2", "test").unwrap();
    // (Old VPP has no weights: the AS is deleted instead.)
    eventually("s2 at 0", WAIT, || {
        sim_ases(&r.sim)
            .get(&(key.address, ip("10.0.0.10")))
            .is_none_or(|a| a.0 == 0)
    })
    .await;
    check("after a disable (a per-VIP sync)").await;
    r.handle
        .set_weight("www", "primary", "s1", 7)
        .await
        .unwrap();
    check("after a weight override").await;
    r.checker.enable("s2", "test").unwrap();
    eventually("s2 back", WAIT, || {
        sim_ases(&r.sim)
            .get(&(key.address, ip("10.0.0.10")))
            .map(|a| a.0)
            > Some(0)
    })
    .await;
    check("after an enable").await;
}

#[tokio::test]
async fn counters_come_from_the_stats_segment() {
    let r = rig(config(NO_WARMUP, WWW), true).await;
    eventually("programmed", WAIT, || sim_ases(&r.sim).len() == 3).await;
    r.sim.count_packets(1, 1, 42);
    let c = r.handle.counters().await.unwrap();
    assert_eq!(c[1].first_packet, 42);
}

#[tokio::test]
async fn without_vpp_requests_say_unavailable() {
    let cfg = config(NO_WARMUP, WWW);
    let checker = Checker::start(&cfg, CheckerOptions::default()).unwrap();
    let handle = spawn(
        Arc::new(cfg),
        checker,
        ReconcilerOptions {
            api_socket: None,
            stats_socket: None,
            ..Default::default()
        },
    );
    let e = handle.sync(None, false).await.unwrap_err();
    assert_eq!(e.to_string(), "VPP integration is disabled");
    assert!(!handle.status().vpp_enabled);
}

#[tokio::test]
async fn a_failed_call_is_retried_within_a_second_not_at_the_next_periodic_sync() {
    // The periodic full sync is a minute away.
    let r = rig(config_with(NO_WARMUP, WWW, "60s"), true).await;
    eventually("programmed", WAIT, || sim_ases(&r.sim).len() == 3).await;
    // The VIP vanishes behind maglevd's back; its record still has it, so
    // the next per-VIP sync sends a weight call VPP refuses (-6).
    let vip = vip_key(&r.handle.desired().await.unwrap().0.frontends["www"]);
    r.sim.with_lb_mut(|lb, now| {
        let a = maglev_vpp::binapi::Prefix::host(vip.address);
        assert_eq!(
            lb.add_del_vip(
                maglev_vppsim::lb::VipArgs {
                    pfx: a,
                    protocol: 6,
                    port: 443,
                    encap: 0,
                    dscp: 0,
                    srv_type: 0,
                    target_port: 0,
                    table_len: 1024,
                    src_ip_sticky: false,
                    is_del: true,
                },
                now,
            ),
            Ok(0)
        );
    });
    let failed_before = r.handle.status().sync_failures.values().sum::<u64>();
    // An operator's weight change that VPP refuses is reported as such,
    // not as a success.
    let e = r
        .handle
        .set_weight("www", "primary", "s2", 50)
        .await
        .unwrap_err();
    assert!(
        matches!(e, maglev_lbsync::reconciler::SyncError::Rejected(_)),
        "{e}"
    );
    let took = eventually(
        "the VIP re-created by the retry",
        Duration::from_secs(2),
        || sim_ases(&r.sim).len() == 3,
    )
    .await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(
        r.handle.status().sync_failures.values().sum::<u64>() > failed_before,
        "the failure was not counted"
    );
}

#[tokio::test]
async fn programming_needs_no_stats_segment() {
    // A stats socket that is missing, and one whose listener never accepts
    // (a full backlog): neither may hold up VPP programming.
    for never_accepts in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let api = dir.path().join("api.sock");
        let stats = dir.path().join("stats.sock");
        let _hold = never_accepts.then(|| {
            use nix::sys::socket::{
                bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
            };
            let s = socket(
                AddressFamily::Unix,
                SockType::SeqPacket,
                SockFlag::empty(),
                None,
            )
            .unwrap();
            bind(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                &UnixAddr::new(&stats).unwrap(),
            )
            .unwrap();
            listen(&s, Backlog::new(0).unwrap()).unwrap();
            // Fill the backlog so a further connect would block.
            let filler = socket(
                AddressFamily::Unix,
                SockType::SeqPacket,
                SockFlag::SOCK_NONBLOCK,
                None,
            )
            .unwrap();
            let _ = nix::sys::socket::connect(
                std::os::fd::AsRawFd::as_raw_fd(&filler),
                &UnixAddr::new(&stats).unwrap(),
            );
            (s, filler)
        });
        let sim = Simulator::start(SimOptions {
            api_socket: api.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        let cfg = config(NO_WARMUP, WWW);
        let checker = Checker::start(&cfg, CheckerOptions::default()).unwrap();
        let handle = spawn(
            Arc::new(cfg),
            checker.clone(),
            ReconcilerOptions {
                api_socket: Some(api),
                stats_socket: Some(stats),
                retry_interval: Duration::from_millis(50),
                ping_interval: Duration::from_millis(100),
                ..Default::default()
            },
        );
        eventually(
            &format!("programmed (stats socket never accepts: {never_accepts})"),
            WAIT,
            || sim_ases(&sim).len() == 3,
        )
        .await;
        assert!(handle.status().vpp.is_some_and(|v| v.boottime.is_none()));
        assert!(
            handle.counters().await.is_err(),
            "no counters without stats"
        );
    }
}

#[tokio::test]
async fn below_the_panic_threshold_the_pool_fails_open() {
    // Four TCP-checked backends on 127.0.20.1-4; closing a listener takes
    // its backend down (connection refused) within a probe or two.
    let probe_port = free_port_on("127.0.20.1");
    let mut listeners = Vec::new();
    for i in 1..=4 {
        listeners.push(Some(
            tokio::net::TcpListener::bind(format!("127.0.20.{i}:{probe_port}"))
                .await
                .unwrap(),
        ));
    }
    let text = format!(
        "maglev:
  vpp:
    lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1', sync-interval: 1h, startup-min-delay: 0, startup-max-delay: 0 }}
  healthchecks:
    t: {{ type: tcp, port: {probe_port}, interval: 50ms, timeout: 500ms, rise: 1, fall: 1 }}
  backends:
    c1: {{ address: 127.0.20.1, healthcheck: t }}
    c2: {{ address: 127.0.20.2, healthcheck: t }}
    c3: {{ address: 127.0.20.3, healthcheck: t }}
    c4: {{ address: 127.0.20.4, healthcheck: t }}
  frontends:
    p:
      address: 203.0.113.81
      port: 80
      panic-threshold: 50
      pools:
        - {{ name: primary, backends: {{ c1: 10, c2: 20, c3: 30, c4: 40 }} }}
"
    );
    let cfg = maglev_config::load_str(&text, "t.yaml").unwrap().config;
    let r = rig(cfg, true).await;
    let vip = ip("203.0.113.81");
    let weights = |sim: &Simulator| -> Vec<u8> {
        (1..=4)
            .map(|i| {
                sim_ases(sim)
                    .get(&(vip, ip(&format!("127.0.20.{i}"))))
                    .map_or(255, |w| w.0)
            })
            .collect()
    };
    eventually("all up", WAIT, || weights(&r.sim) == [10, 20, 30, 40]).await;
    // Two of four down: 50 % is not below the threshold.
    listeners[2] = None;
    listeners[3] = None;
    eventually("two removed", WAIT, || weights(&r.sim) == [10, 20, 0, 0]).await;
    assert_eq!(
        r.handle.status().frontends["p"],
        maglev_lbsync::FrontendState::Up
    );
    // A third: 25 %. The pool fails open: every member at its weight again.
    let calls = r.sim.call_count();
    listeners[1] = None;
    eventually("panic", WAIT, || {
        r.handle.status().frontends["p"] == maglev_lbsync::FrontendState::Panic
    })
    .await;
    eventually("failing open", WAIT, || weights(&r.sim) == [10, 20, 30, 40]).await;
    let raised: Vec<String> = r
        .sim
        .calls_since(calls)
        .into_iter()
        .filter(|c| c.msg == "lb_as_set_weight")
        .map(|c| c.detail)
        .collect();
    assert!(
        raised.iter().all(|d| d.contains("is_flush: false")),
        "failing open flushes nothing: {raised:?}"
    );
    // Back above the threshold: the dead are removed again.
    listeners[1] = Some(
        tokio::net::TcpListener::bind(format!("127.0.20.2:{probe_port}"))
            .await
            .unwrap(),
    );
    eventually("panic over", WAIT, || weights(&r.sim) == [10, 20, 0, 0]).await;
    assert_eq!(
        r.handle.status().frontends["p"],
        maglev_lbsync::FrontendState::Up
    );
}

#[tokio::test]
async fn a_backend_that_comes_back_ramps_up_a_step_a_second() {
    let probe_port = free_port_on("127.0.21.1");
    let listen = |i: u8| {
        let addr = format!("127.0.21.{i}:{probe_port}");
        async move { tokio::net::TcpListener::bind(addr).await.unwrap() }
    };
    let l1 = listen(1).await;
    let _l2 = listen(2).await;
    let text = format!(
        "maglev:
  vpp:
    lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1', sync-interval: 1h, startup-min-delay: 0, startup-max-delay: 0 }}
  healthchecks:
    t: {{ type: tcp, port: {probe_port}, interval: 50ms, timeout: 500ms, rise: 1, fall: 1 }}
  backends:
    r1: {{ address: 127.0.21.1, healthcheck: t }}
    r2: {{ address: 127.0.21.2, healthcheck: t }}
  frontends:
    s:
      address: 203.0.113.82
      port: 80
      slow-start: 3s
      pools:
        - {{ name: p, backends: {{ r1: 50, r2: 100 }} }}
"
    );
    let cfg = maglev_config::load_str(&text, "t.yaml").unwrap().config;
    let r = rig(cfg, true).await;
    let vip = ip("203.0.113.82");
    let r1 = ip("127.0.21.1");
    let weight = |sim: &Simulator| sim_ases(sim).get(&(vip, r1)).map(|w| w.0);
    // At start (from unknown) there is no ramp: full weight at once.
    eventually("programmed", WAIT, || weight(&r.sim) == Some(50)).await;
    assert!(r.handle.status().ramps.is_empty());
    drop(l1);
    eventually("r1 down", WAIT, || weight(&r.sim) == Some(0)).await;
    let calls = r.sim.call_count();
    let back = std::time::Instant::now();
    let _l1 = listen(1).await;
    eventually("ramp over", Duration::from_secs(8), || {
        weight(&r.sim) == Some(50) && r.handle.status().ramps.is_empty()
    })
    .await;
    // 10 %, 40 %, 70 % of 50, then 50: one weight call each, a second apart.
    let steps: Vec<(u8, Duration)> = r
        .sim
        .calls_since(calls)
        .into_iter()
        .filter(|c| c.msg == "lb_as_set_weight" && c.detail.contains("[127, 0, 21, 1,"))
        .map(|c| {
            let w = c
                .detail
                .split("weight: ")
                .nth(1)
                .and_then(|s| s.split(|ch: char| !ch.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .unwrap();
            (w, c.at.duration_since(back))
        })
        .collect();
    let weights: Vec<u8> = steps.iter().map(|s| s.0).collect();
    assert_eq!(
        weights,
        [5, 20, 35, 50],
        "{steps:?}\n{:#?}",
        r.sim.calls_since(calls)
    );
    for pair in steps.windows(2) {
        let gap = pair[1].1.saturating_sub(pair[0].1);
        assert!(
            gap >= Duration::from_millis(900),
            "steps closer than a second: {steps:?}"
        );
    }
    // r2 never moved.
    assert_eq!(sim_ases(&r.sim)[&(vip, ip("127.0.21.2"))].0, 100);
}

#[tokio::test]
async fn an_agent_drains_scales_and_takes_out_a_backend() {
    // a1's agent answers whatever the test sets; a2 has none.
    let port = free_port_on("127.0.22.1");
    let agent_port = free_port_on("127.0.22.1");
    let _p1 = tokio::net::TcpListener::bind(("127.0.22.1", port))
        .await
        .unwrap();
    let _p2 = tokio::net::TcpListener::bind(("127.0.22.2", port))
        .await
        .unwrap();
    let reply = Arc::new(std::sync::Mutex::new("ready up 100%\n".to_string()));
    let agent = tokio::net::TcpListener::bind(("127.0.22.1", agent_port))
        .await
        .unwrap();
    let r2 = Arc::clone(&reply);
    // What the check sent first on each connection (its `send` string).
    let heard = Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    let h2 = Arc::clone(&heard);
    let agent_task = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut s, _)) = agent.accept().await else {
                return;
            };
            let mut hello = [0u8; 6];
            let _ = s.read_exact(&mut hello).await;
            h2.lock().unwrap().push(hello.to_vec());
            let line = r2.lock().unwrap().clone();
            let _ = s.write_all(line.as_bytes()).await;
        }
    });
    let text = format!(
        "maglev:
  vpp:
    lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1', sync-interval: 1h, startup-min-delay: 0, startup-max-delay: 0 }}
  healthchecks:
    t: {{ type: tcp, port: {port}, interval: 50ms, timeout: 500ms, rise: 1, fall: 1, agent: {{ port: {agent_port}, interval: 50ms, send: \"hello\\n\" }} }}
  backends:
    a1: {{ address: 127.0.22.1, healthcheck: t }}
    a2: {{ address: 127.0.22.2 }}
  frontends:
    ag:
      address: 203.0.113.83
      port: 80
      pools:
        - {{ name: p, backends: {{ a1: 80, a2: 100 }} }}
"
    );
    let cfg = maglev_config::load_str(&text, "t.yaml").unwrap().config;
    let r = rig(cfg, true).await;
    let vip = ip("203.0.113.83");
    let a1 = ip("127.0.22.1");
    let weight = |sim: &Simulator| sim_ases(sim).get(&(vip, a1)).map(|w| w.0);
    let last_flush = |sim: &Simulator, since: usize| {
        sim.calls_since(since)
            .into_iter()
            .rfind(|c| c.msg == "lb_as_set_weight" && c.detail.contains("[127, 0, 22, 1,"))
            .map(|c| c.detail.contains("is_flush: true"))
    };
    eventually("programmed", WAIT, || weight(&r.sim) == Some(80)).await;
    eventually("the agent asked", WAIT, || {
        !heard.lock().unwrap().is_empty()
    })
    .await;
    assert!(
        heard.lock().unwrap().iter().all(|h| h == b"hello\n"),
        "the check sends its `send` string: {:?}",
        heard.lock().unwrap()
    );
    // N %: of the configured weight.
    *reply.lock().unwrap() = "50%\n".into();
    eventually("50 %", WAIT, || weight(&r.sim) == Some(40)).await;
    assert_eq!(
        r.checker.backend("a1").unwrap().agent.unwrap().describe(),
        "ready up 50%"
    );
    // drain: 0 without flush.
    let calls = r.sim.call_count();
    *reply.lock().unwrap() = "drain # maintenance at 10:00\n".into();
    eventually("drained", WAIT, || weight(&r.sim) == Some(0)).await;
    assert_eq!(last_flush(&r.sim, calls), Some(false), "drain keeps flows");
    // ready again (50 % still in force).
    *reply.lock().unwrap() = "ready\n".into();
    eventually("ready", WAIT, || weight(&r.sim) == Some(40)).await;
    // maint: out, with a flush, like an operator disable.
    let calls = r.sim.call_count();
    *reply.lock().unwrap() = "maint\n".into();
    eventually("maint", WAIT, || weight(&r.sim) == Some(0)).await;
    assert_eq!(last_flush(&r.sim, calls), Some(true), "maint flushes");
    // Garbage and silence change nothing.
    *reply.lock().unwrap() = "sideways\n".into();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(weight(&r.sim), Some(0));
    agent_task.abort();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        weight(&r.sim),
        Some(0),
        "an unreachable agent changes nothing"
    );
    let b = r.checker.backend("a1").unwrap();
    assert_eq!(b.agent.unwrap().describe(), "maint up 50%");
    assert!(b.agent_last.unwrap().0.is_err(), "the last answer was none");
    // a2 never moved.
    assert_eq!(sim_ases(&r.sim)[&(vip, ip("127.0.22.2"))].0, 100);
    // What readers are given (GetFrontend, the scrape, the reconciler's
    // inputs): a1's wish, nobody else's.
    let agents = r.checker.agents();
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert_eq!(agents["a1"].describe(), "maint up 50%");
    let lean = r.checker.summaries();
    assert_eq!(lean[0].agent, Some(agents["a1"]), "{lean:?}");
    assert_eq!(lean[1].agent, None, "a2 has no agent: {lean:?}");
    // A reload that drops the agent forgets what it asked for.
    let without = text.replace(
        &format!(", agent: {{ port: {agent_port}, interval: 50ms, send: \"hello\\n\" }}"),
        "",
    );
    assert_ne!(without, text);
    let cfg = maglev_config::load_str(&without, "t.yaml").unwrap().config;
    r.checker.apply(&cfg).unwrap();
    r.handle.reload(Arc::new(cfg)).await.unwrap();
    assert!(r.checker.agents().is_empty(), "{:?}", r.checker.agents());
    eventually("a1 at its configured weight", WAIT, || {
        weight(&r.sim) == Some(80)
    })
    .await;
}
