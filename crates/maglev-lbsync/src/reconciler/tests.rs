//! The reconciler's logic on paused time against the in-memory VPP
//! (`crate::model`): when it writes, what it retries, how it reconnects.
//! Virtual time makes the timing assertions exact and the tests instant;
//! the same behaviours over a real socket are in `tests/reconciler.rs`
//! (simulator) and `tests/real_vpp.rs` (VPP).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use maglev_health::{Checker, CheckerOptions};
use tokio::time::Instant;

use super::sync::INDEX_READ_DELAY;
use super::*;
use crate::model::ModelVpp;
use crate::plan::Op;

const WWW: &str = "    www:
      address: 203.0.113.80
      port: 443
      pools:
        - { name: primary, backends: { s1: { weight: 60 }, s2: {} } }
        - { name: standby, backends: { s3: {} } }
";

fn config(lb_extra: &str, sync_interval: &str) -> Config {
    let text = format!(
        "maglev:
  vpp:
    lb:
      ipv4-src-address: 198.51.100.1
      ipv6-src-address: '2001:db8::1'
      sync-interval: {sync_interval}
{lb_extra}
  backends:
    s1: {{ address: 10.0.0.2 }}
    s2: {{ address: 10.0.0.10 }}
    s3: {{ address: 10.0.0.3 }}
  frontends:
{WWW}"
    );
    maglev_config::load_str(&text, "t.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .config
}

const NO_WARMUP: &str = "      startup-min-delay: 0\n      startup-max-delay: 0";

struct Rig {
    vpp: ModelVpp,
    checker: Checker,
    handle: ReconcilerHandle,
    key: maglev_vpp::VipKey,
    start: Instant,
}

fn rig(cfg: Config, vpp: ModelVpp) -> Rig {
    let start = Instant::now();
    let key = vip_key(&cfg.frontends["www"]);
    let checker = Checker::start(&cfg, CheckerOptions::default()).unwrap();
    let handle = spawn_with(
        Arc::new(cfg),
        checker.clone(),
        ReconcilerOptions {
            retry_interval: Duration::from_secs(2),
            ping_interval: Duration::from_secs(1),
            ..Default::default()
        },
        vpp.clone(),
    );
    Rig {
        vpp,
        checker,
        handle,
        key,
        start,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Waits (in virtual time, 10 ms steps) until `cond`; how long it took.
async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() <= limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    t.elapsed()
}

impl Rig {
    /// AS weights of www in the model VPP.
    fn weights(&self) -> Vec<(IpAddr, Option<u8>)> {
        self.vpp
            .state()
            .vips
            .get(&self.key)
            .map(|v| v.ases.iter().map(|(a, s)| (*a, s.weight)).collect())
            .unwrap_or_default()
    }

    fn programmed(&self) -> bool {
        self.weights()
            == vec![
                (ip("10.0.0.2"), Some(60)),
                (ip("10.0.0.3"), Some(0)),
                (ip("10.0.0.10"), Some(100)),
            ]
    }
}

#[tokio::test(start_paused = true)]
async fn nothing_is_written_before_the_warmup_ends_and_everything_after() {
    let r = rig(
        config(
            "      startup-min-delay: 5s\n      startup-max-delay: 30s",
            "1h",
        ),
        ModelVpp::new(true),
    );
    until("connected", Duration::from_secs(1), || {
        r.handle.status().vpp.is_some()
    })
    .await;
    assert!(r.vpp.conf().is_some(), "lb_conf is not held back");
    until("programmed", Duration::from_secs(10), || r.programmed()).await;
    let calls = r.vpp.calls();
    let first = calls[0].0 - r.start;
    // Static backends are known at once: released at the minimum delay.
    assert!(
        first >= Duration::from_secs(5) && first < Duration::from_millis(5100),
        "first write at {first:?}"
    );
    // VIP first, then the ASes in numeric order.
    assert!(matches!(calls[0].1, Op::VipAdd(_)), "{calls:?}");
    let ases: Vec<IpAddr> = calls[1..]
        .iter()
        .filter_map(|(_, op)| match op {
            Op::AsAdd { address, .. } => Some(*address),
            _ => None,
        })
        .collect();
    assert_eq!(ases, [ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.0.10")]);
}

#[tokio::test(start_paused = true)]
async fn a_transition_is_synced_from_the_cache_without_reading_vpp() {
    let r = rig(config(NO_WARMUP, "1h"), ModelVpp::new(true));
    until("programmed", Duration::from_secs(1), || r.programmed()).await;
    let reads = r.vpp.reads();
    let t = Instant::now();
    r.checker.disable("s2", "test").unwrap();
    until("s2 drained", Duration::from_secs(1), || {
        r.weights().contains(&(ip("10.0.0.10"), Some(0)))
    })
    .await;
    assert_eq!(r.vpp.reads(), reads, "a per-VIP sync read VPP");
    let (at, op) = *r.vpp.calls().last().unwrap();
    assert!(matches!(op, Op::AsSetWeight { weight: 0, .. }), "{op:?}");
    // No timer in between: the write follows the transition at once.
    assert_eq!(at - t, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_refused_call_is_retried_within_a_second_after_a_fresh_read() {
    let r = rig(config(NO_WARMUP, "1h"), ModelVpp::new(true));
    until("programmed", Duration::from_secs(1), || r.programmed()).await;
    let reads = r.vpp.reads();
    r.vpp.refuse_next_calls(1);
    r.checker.disable("s2", "test").unwrap();
    let took = until("s2 drained after the retry", Duration::from_secs(2), || {
        r.weights().contains(&(ip("10.0.0.10"), Some(0)))
    })
    .await;
    assert!(took <= Duration::from_secs(1), "retried after {took:?}");
    assert!(
        took > Duration::ZERO,
        "the first call cannot have succeeded"
    );
    assert!(
        r.vpp.reads() > reads,
        "the retry planned against a stale cache"
    );
    assert_eq!(r.handle.status().sync_failures.values().sum::<u64>(), 1);
}

#[tokio::test(start_paused = true)]
async fn drift_waits_for_the_periodic_full_sync() {
    let r = rig(config(NO_WARMUP, "30s"), ModelVpp::new(true));
    until("programmed", Duration::from_secs(1), || r.programmed()).await;
    let key = r.key;
    // The read for the new VIP's index comes and goes first.
    until("indexed", Duration::from_secs(2), || {
        r.handle.status().vip_indexes.contains_key(&key)
    })
    .await;
    r.vpp.tamper(|s| {
        s.vips.get_mut(&key).unwrap().ases.remove(&ip("10.0.0.3"));
    });
    let took = until("repaired", Duration::from_secs(31), || r.programmed()).await;
    // Not before: per-VIP syncs trust the record, only a full one reads.
    assert!(took >= Duration::from_secs(28), "repaired after {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_new_vips_stats_index_is_read_within_a_second() {
    let r = rig(config(NO_WARMUP, "1h"), ModelVpp::new(true));
    until("programmed", Duration::from_secs(1), || r.programmed()).await;
    let key = r.key;
    // Adding a VIP tells nothing of its index; only a read of VPP does,
    // and packet counters are found by it.
    assert!(!r.handle.status().vip_indexes.contains_key(&key));
    let reads = r.vpp.reads();
    let took = until("indexed", Duration::from_secs(2), || {
        r.handle.status().vip_indexes.contains_key(&key)
    })
    .await;
    assert!(
        took <= INDEX_READ_DELAY + Duration::from_millis(20),
        "{took:?}"
    );
    assert_eq!(r.vpp.reads(), reads + 1);
    // Nothing to add: no more reads until the periodic one.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(r.vpp.reads(), reads + 1);
}

#[tokio::test(start_paused = true)]
async fn reconnects_back_off_from_100_ms_doubling_to_the_retry_interval() {
    let vpp = ModelVpp::new(true);
    vpp.set_accepting(false);
    let r = rig(config(NO_WARMUP, "1h"), vpp);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let at: Vec<Duration> = r.vpp.connects().iter().map(|t| *t - r.start).collect();
    let gaps: Vec<u64> = at
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis() as u64)
        .collect();
    assert_eq!(at[0], Duration::ZERO, "first try at once: {at:?}");
    assert_eq!(&gaps[..5], [100, 200, 400, 800, 1600], "{gaps:?}");
    assert!(gaps[5..].iter().all(|g| *g == 2000), "capped: {gaps:?}");
    assert!(r.handle.status().vpp.is_none());
    // VPP comes up: the next try connects and programs.
    r.vpp.set_accepting(true);
    until("programmed", Duration::from_millis(2100), || r.programmed()).await;
}

#[tokio::test(start_paused = true)]
async fn a_vpp_restart_is_seen_at_once_and_everything_reprogrammed() {
    let r = rig(config(NO_WARMUP, "1h"), ModelVpp::new(true));
    until("programmed", Duration::from_secs(1), || r.programmed()).await;
    let pid = r.handle.status().vpp.unwrap().pid;
    r.vpp.restart();
    assert!(r.vpp.state().vips.is_empty());
    // The closed connection is noticed without waiting for a ping, and
    // the reconnect is tried at once.
    let took = until("reprogrammed", Duration::from_secs(1), || r.programmed()).await;
    assert_eq!(took, Duration::from_millis(10), "one wait step: {took:?}");
    assert_eq!(r.handle.status().vpp.unwrap().pid, pid + 1);
    assert!(r.vpp.conf().is_some(), "lb_conf pushed again");
}

#[tokio::test(start_paused = true)]
async fn old_vpp_without_weights_gets_no_weight_calls() {
    let r = rig(config(NO_WARMUP, "1h"), ModelVpp::new(false));
    until("connected", Duration::from_secs(1), || {
        r.handle.status().vpp.is_some()
    })
    .await;
    until("programmed", Duration::from_secs(1), || {
        r.weights().len() == 2
    })
    .await;
    // Weight 0 (standby) means absent on VPP without weights.
    let ases: Vec<IpAddr> = r.weights().into_iter().map(|(a, _)| a).collect();
    assert_eq!(ases, [ip("10.0.0.2"), ip("10.0.0.10")]);
    r.checker.disable("s2", "test").unwrap();
    until("s2 removed", Duration::from_secs(1), || {
        r.weights().len() == 1
    })
    .await;
    assert!(
        !r.vpp
            .calls()
            .iter()
            .any(|(_, op)| matches!(op, Op::AsSetWeight { .. })),
        "{:?}",
        r.vpp.calls()
    );
}
