//! The desired-state table and the planner, pure.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use maglev_config::Config;
use maglev_health::State;
use maglev_lbsync::actual::ActualState;
use maglev_lbsync::desired::{
    desired_state, effective_weights, frontend_state, frontend_summary, vip_key, MemberCounts,
    Overrides,
};
use maglev_lbsync::{plan, Capabilities, FlushLedger, FrontendState, Op, Scope};
use maglev_vpp::{Encap, VipKey};

const V2: Capabilities = Capabilities { v2: true };
const V1: Capabilities = Capabilities { v2: false };

fn config(extra_frontend: &str, flush_on_down: bool) -> Config {
    let text = format!(
        "maglev:
  vpp: {{ lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }} }}
  backends:
    a1: {{ address: 10.0.0.2 }}
    a2: {{ address: 10.0.0.10 }}
    b1: {{ address: 10.0.0.3 }}
    v6: {{ address: '2001:db8:1::1' }}
  frontends:
    www:
      address: 203.0.113.80
      port: 443
      flush-on-down: {flush_on_down}
      pools:
        - name: primary
          backends: {{ a1: {{ weight: 60 }}, a2: {{}} }}
        - name: standby
          backends: {{ b1: {{}} }}
{extra_frontend}"
    );
    maglev_config::load_str(&text, "t.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

fn states(pairs: &[(&str, State)]) -> HashMap<String, State> {
    pairs.iter().map(|(n, s)| (n.to_string(), *s)).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn www() -> VipKey {
    VipKey::host(ip("203.0.113.80"), 6, 443)
}

/// Plans from `actual` (with the flush ledger, as the reconciler does),
/// applies to it, and checks the next plan is empty.
fn converge_with(
    cfg: &Config,
    st: &HashMap<String, State>,
    actual: &mut ActualState,
    ledger: &mut FlushLedger,
    caps: Capabilities,
) -> Vec<Op> {
    let mut desired = desired_state(cfg, st, &Overrides::new());
    ledger.settle(&mut desired);
    let p = plan(&desired, actual, &Scope::All, caps);
    for op in &p.ops {
        actual.apply(op, caps.v2);
        ledger.record(op);
    }
    let mut desired = desired_state(cfg, st, &Overrides::new());
    ledger.settle(&mut desired);
    let again = plan(&desired, actual, &Scope::All, caps);
    assert!(again.is_empty(), "not idempotent: {again}");
    p.ops
}

fn converge(
    cfg: &Config,
    st: &HashMap<String, State>,
    actual: &mut ActualState,
    caps: Capabilities,
) -> Vec<Op> {
    converge_with(cfg, st, actual, &mut FlushLedger::default(), caps)
}

#[test]
fn effective_weight_table() {
    use State::*;
    let cfg = config("", true);
    let f = &cfg.frontends["www"];
    // (a1, a2, b1 states) → (a1, a2, b1) (weight, flush)
    type Case = ([State; 3], [(u8, bool); 3]);
    let cases: Vec<Case> = vec![
        // up in the active pool: configured weight; standby up: 0, no flush
        ([Up, Up, Up], [(60, false), (100, false), (0, false)]),
        // down: 0 with flush-on-down
        ([Up, Down, Up], [(60, false), (0, true), (0, false)]),
        // disabled: 0 with flush, always
        ([Up, Disabled, Up], [(60, false), (0, true), (0, false)]),
        // unknown and paused: 0, no flush
        ([Up, Unknown, Paused], [(60, false), (0, false), (0, false)]),
        // primary all down: standby becomes active
        ([Down, Down, Up], [(0, true), (0, true), (100, false)]),
        // nothing up anywhere: all 0
        ([Down, Paused, Down], [(0, true), (0, false), (0, true)]),
    ];
    for (st, want) in cases {
        let s = states(&[("a1", st[0]), ("a2", st[1]), ("b1", st[2])]);
        let got: Vec<(u8, bool)> = effective_weights(&cfg, f, &s, &Overrides::new())
            .iter()
            .map(|w| (w.weight, w.flush))
            .collect();
        assert_eq!(got, want, "{st:?}");
    }
    // flush-on-down: false drains instead.
    let cfg = config("", false);
    let s = states(&[("a1", Up), ("a2", Down), ("b1", Up)]);
    let w = effective_weights(&cfg, &cfg.frontends["www"], &s, &Overrides::new());
    assert_eq!((w[1].weight, w[1].flush), (0, false));
}

#[test]
fn overrides_and_ramps_are_found_by_names() {
    use maglev_lbsync::desired::{override_of, ramp_of, Ramps};
    let mut o = Overrides::new();
    assert_eq!(override_of(&o, "www", "primary", "a2"), None);
    o.insert(("www".into(), "primary".into(), "a2".into()), 5);
    assert_eq!(override_of(&o, "www", "primary", "a2"), Some(5));
    assert_eq!(override_of(&o, "www", "standby", "a2"), None);
    assert_eq!(override_of(&o, "www", "primary", "a1"), None);
    let mut r = Ramps::new();
    assert_eq!(ramp_of(&r, "www", "a1"), None);
    r.insert(("www".into(), "a1".into()), 30);
    assert_eq!(ramp_of(&r, "www", "a1"), Some(30));
    assert_eq!(ramp_of(&r, "other", "a1"), None);
}

#[test]
fn runtime_override_replaces_the_configured_weight() {
    let cfg = config("", true);
    let s = states(&[("a1", State::Up), ("a2", State::Up), ("b1", State::Up)]);
    let mut o = Overrides::new();
    o.insert(("www".into(), "primary".into(), "a2".into()), 5);
    let w = effective_weights(&cfg, &cfg.frontends["www"], &s, &o);
    assert_eq!((w[1].configured, w[1].weight), (5, 5));
}

#[test]
fn frontend_state_aggregate() {
    use State::*;
    let cfg = config("", true);
    let f = &cfg.frontends["www"];
    let o = Overrides::new();
    let fs = |a, b, c| frontend_state(&cfg, f, &states(&[("a1", a), ("a2", b), ("b1", c)]), &o);
    assert_eq!(fs(Unknown, Unknown, Unknown), FrontendState::Unknown);
    assert_eq!(fs(Unknown, Up, Unknown), FrontendState::Up);
    assert_eq!(fs(Down, Unknown, Unknown), FrontendState::Down);
    assert_eq!(fs(Down, Down, Up), FrontendState::Up, "standby serving");
}

#[test]
fn frontend_summary_counts_backends_by_state_and_serving() {
    use FrontendState as F;
    use State::*;
    let cfg = config("", true);
    let f = &cfg.frontends["www"];
    let o = Overrides::new();
    let counts = |a1, a2, b1| {
        let s = states(&[("a1", a1), ("a2", a2), ("b1", b1)]);
        let (fs, c) = frontend_summary(&cfg, f, &s, &o);
        assert_eq!(fs, frontend_state(&cfg, f, &s, &o));
        assert_eq!(c.by_state.iter().sum::<u32>(), 3, "every member once");
        let by = |st: State| c.by_state[State::ALL.iter().position(|x| *x == st).unwrap()];
        (fs, by(Up), by(Down), by(Unknown), by(Disabled), c.serving)
    };
    // Primary up: the standby is up but gets nothing.
    assert_eq!(counts(Up, Up, Up), (F::Up, 3, 0, 0, 0, 2));
    assert_eq!(counts(Down, Disabled, Up), (F::Up, 1, 1, 0, 1, 1));
    assert_eq!(
        counts(Unknown, Unknown, Unknown),
        (F::Unknown, 0, 0, 3, 0, 0)
    );
    assert_eq!(counts(Down, Down, Down), (F::Down, 0, 3, 0, 0, 0));
    let none = frontend_summary(&cfg, f, &states(&[]), &o).1;
    assert_ne!(
        none,
        MemberCounts::default(),
        "unknown to the checker: unknown"
    );
}

/// A frontend `p` with a panic threshold: primary c1..c4 (weights 10, 20,
/// 30, 40), standby s1.
fn panic_config(threshold: &str) -> Config {
    let text = format!(
        "maglev:
  vpp: {{ lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }} }}
  backends:
    c1: {{ address: 10.0.1.1 }}
    c2: {{ address: 10.0.1.2 }}
    c3: {{ address: 10.0.1.3 }}
    c4: {{ address: 10.0.1.4 }}
    s1: {{ address: 10.0.1.9 }}
  frontends:
    p:
      address: 203.0.113.81
      port: 80
      panic-threshold: {threshold}
      pools:
        - name: primary
          backends: {{ c1: 10, c2: 20, c3: 30, c4: 40 }}
        - name: standby
          backends: {{ s1: {{}} }}
"
    );
    maglev_config::load_str(&text, "t.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

#[test]
fn panic_threshold_table() {
    use State::*;
    let cfg = panic_config("'50%'");
    let f = &cfg.frontends["p"];
    assert_eq!(f.panic_threshold, Some(50));
    // (c1..c4, s1 states) → weights (c1..c4, s1), frontend state
    type Case = ([State; 5], [u8; 5], FrontendState);
    let cases: Vec<Case> = vec![
        // 2 of 4 up: 50 % is not below 50 %: the dead are removed
        (
            [Up, Up, Down, Down, Up],
            [10, 20, 0, 0, 0],
            FrontendState::Up,
        ),
        // 1 of 4 up: panic, every judged member keeps its weight
        (
            [Up, Down, Down, Down, Up],
            [10, 20, 30, 40, 0],
            FrontendState::Panic,
        ),
        // unknown members are not judged (1 of 2 judged up: 50 %)
        (
            [Up, Down, Unknown, Unknown, Up],
            [10, 0, 0, 0, 0],
            FrontendState::Up,
        ),
        // disabled and paused are not judged, and stay out even in panic
        (
            [Up, Down, Down, Disabled, Down],
            [10, 20, 30, 0, 0],
            FrontendState::Panic,
        ),
        (
            [Up, Down, Paused, Paused, Up],
            [10, 0, 0, 0, 0],
            FrontendState::Up,
        ),
        // primary all down, standby up: the standby takes over, no panic
        (
            [Down, Down, Down, Down, Up],
            [0, 0, 0, 0, 100],
            FrontendState::Up,
        ),
        // nothing up anywhere: no pool can take over, the first fails open
        (
            [Down, Down, Down, Down, Down],
            [10, 20, 30, 40, 0],
            FrontendState::Panic,
        ),
        // nothing known yet: nothing judged, no panic
        (
            [Unknown, Unknown, Unknown, Unknown, Unknown],
            [0; 5],
            FrontendState::Unknown,
        ),
    ];
    let o = Overrides::new();
    for (st, want, fs) in cases {
        let s = states(&[
            ("c1", st[0]),
            ("c2", st[1]),
            ("c3", st[2]),
            ("c4", st[3]),
            ("s1", st[4]),
        ]);
        let w = effective_weights(&cfg, f, &s, &o);
        let got: Vec<u8> = w.iter().map(|w| w.weight).collect();
        assert_eq!(got, want, "{st:?}");
        // Failing open never flushes the members it keeps.
        assert!(
            w.iter().filter(|w| w.weight > 0).all(|w| !w.flush),
            "{st:?}"
        );
        assert_eq!(frontend_state(&cfg, f, &s, &o), fs, "{st:?}");
        // Serving: what VPP sends new flows to, down members kept open
        // in panic among them.
        let serving = w.iter().filter(|w| w.weight > 0).count() as u32;
        assert_eq!(
            frontend_summary(&cfg, f, &s, &o).1.serving,
            serving,
            "{st:?}"
        );
    }
    // An override of 0 takes a member out of the count.
    let s = states(&[
        ("c1", Up),
        ("c2", Down),
        ("c3", Down),
        ("c4", Up),
        ("s1", Up),
    ]);
    let mut o = Overrides::new();
    o.insert(("p".into(), "primary".into(), "c4".into()), 0);
    assert_eq!(
        frontend_state(&cfg, f, &s, &o),
        FrontendState::Panic,
        "1 of 3"
    );
    // Without a threshold there is no panic.
    let cfg = config("", true);
    let s = states(&[("a1", Down), ("a2", Down), ("b1", Down)]);
    assert_eq!(
        frontend_state(&cfg, &cfg.frontends["www"], &s, &Overrides::new()),
        FrontendState::Down
    );
    // A threshold of 100: any dead member panics the pool.
    let cfg = panic_config("100");
    let s = states(&[("c1", Up), ("c2", Up), ("c3", Up), ("c4", Down), ("s1", Up)]);
    let w = effective_weights(&cfg, &cfg.frontends["p"], &s, &Overrides::new());
    assert_eq!(w[3].weight, 40);
}

#[test]
fn panic_threshold_must_be_a_percentage() {
    for bad in ["0", "101", "'50 %%'", "half", "-5"] {
        let text = format!(
            "maglev:
  vpp: {{ lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }} }}
  backends: {{ c1: {{ address: 10.0.1.1 }} }}
  frontends:
    p: {{ address: 203.0.113.81, port: 80, panic-threshold: {bad}, pools: [ {{ name: x, backends: {{ c1: {{}} }} }} ] }}
"
        );
        let e = maglev_config::load_str(&text, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("frontends.p.panic-threshold") && e.contains("percentage from 1 to 100"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn cold_start_creates_everything_in_numeric_order() {
    use State::*;
    let cfg = config("", true);
    let st = states(&[("a1", Up), ("a2", Up), ("b1", Up)]);
    let mut actual = ActualState::default();
    let ops = converge(&cfg, &st, &mut actual, V2);
    let text: Vec<String> = ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "vip-add 203.0.113.80/32 tcp:443 encap gre4 src-ip-sticky false table-length 1024",
            // 10.0.0.2 before 10.0.0.3 before 10.0.0.10: numeric, not lexical
            "as-add 203.0.113.80/32 tcp:443 10.0.0.2 weight 60",
            "as-add 203.0.113.80/32 tcp:443 10.0.0.3 weight 0",
            "as-add 203.0.113.80/32 tcp:443 10.0.0.10 weight 100",
        ]
    );
}

#[test]
fn failover_to_standby_and_back() {
    use State::*;
    let cfg = config("", true);
    let mut actual = ActualState::default();
    converge(
        &cfg,
        &states(&[("a1", Up), ("a2", Up), ("b1", Up)]),
        &mut actual,
        V2,
    );
    // Primary dies: standby takes over; the dead get 0 with flush. Make
    // before break: the standby rises before the dead are lowered, so
    // VPP's table is never empty in between.
    let ops = converge(
        &cfg,
        &states(&[("a1", Down), ("a2", Down), ("b1", Up)]),
        &mut actual,
        V2,
    );
    let text: Vec<String> = ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "as-set-weight 203.0.113.80/32 tcp:443 10.0.0.3 weight 100",
            "as-set-weight 203.0.113.80/32 tcp:443 10.0.0.2 weight 0 flush",
            "as-set-weight 203.0.113.80/32 tcp:443 10.0.0.10 weight 0 flush",
        ]
    );
    // Primary recovers: standby drains gracefully (0, no flush), after
    // the primaries are back.
    let ops = converge(
        &cfg,
        &states(&[("a1", Up), ("a2", Up), ("b1", Up)]),
        &mut actual,
        V2,
    );
    let text: Vec<String> = ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "as-set-weight 203.0.113.80/32 tcp:443 10.0.0.2 weight 60",
            "as-set-weight 203.0.113.80/32 tcp:443 10.0.0.10 weight 100",
            "as-set-weight 203.0.113.80/32 tcp:443 10.0.0.3 weight 0",
        ]
    );
}

#[test]
fn a_delivered_flush_is_not_repeated() {
    use State::*;
    let cfg = config("", true);
    let mut actual = ActualState::default();
    let mut ledger = FlushLedger::default();
    let up = states(&[("a1", Up), ("a2", Up), ("b1", Up)]);
    let down = states(&[("a1", Up), ("a2", Down), ("b1", Up)]);
    converge_with(&cfg, &up, &mut actual, &mut ledger, V2);
    let ops = converge_with(&cfg, &down, &mut actual, &mut ledger, V2);
    assert_eq!(ops.len(), 1, "one flush: {ops:?}");
    // Recovery clears the ledger; the next failure flushes again.
    converge_with(&cfg, &up, &mut actual, &mut ledger, V2);
    let ops = converge_with(&cfg, &down, &mut actual, &mut ledger, V2);
    assert!(
        matches!(
            ops[..],
            [Op::AsSetWeight {
                weight: 0,
                flush: true,
                ..
            }]
        ),
        "{ops:?}"
    );
}

#[test]
fn flush_is_sent_even_when_the_weight_is_already_zero() {
    use State::*;
    let cfg = config("", true);
    let mut actual = ActualState::default();
    // b1 drained as standby (weight 0, no flush)…
    converge(
        &cfg,
        &states(&[("a1", Up), ("a2", Up), ("b1", Up)]),
        &mut actual,
        V2,
    );
    // …then disabled: the weight call goes out for the flush.
    let desired = desired_state(
        &cfg,
        &states(&[("a1", Up), ("a2", Up), ("b1", Disabled)]),
        &Overrides::new(),
    );
    let p = plan(&desired, &actual, &Scope::All, V2);
    let text: Vec<String> = p.ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        ["as-set-weight 203.0.113.80/32 tcp:443 10.0.0.3 weight 0 flush"]
    );
}

#[test]
fn family_flip_recreates_the_vip() {
    use State::*;
    let cfg = config("", true);
    let mut actual = ActualState::default();
    converge(
        &cfg,
        &states(&[("a1", Up), ("a2", Up), ("b1", Up)]),
        &mut actual,
        V2,
    );
    let text = maglev_config::load_str(
        "maglev:
  vpp: { lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' } }
  backends:
    v6: { address: '2001:db8:1::1' }
  frontends:
    www: { address: 203.0.113.80, port: 443, pools: [ { name: p, backends: { v6: {} } } ] }
",
        "t.yaml",
    )
    .unwrap()
    .config;
    let desired = desired_state(&text, &states(&[("v6", Up)]), &Overrides::new());
    let p = plan(&desired, &actual, &Scope::All, V2);
    let ops: Vec<String> = p.ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        ops,
        [
            "as-del 203.0.113.80/32 tcp:443 10.0.0.2 flush",
            "as-del 203.0.113.80/32 tcp:443 10.0.0.3 flush",
            "as-del 203.0.113.80/32 tcp:443 10.0.0.10 flush",
            "vip-del 203.0.113.80/32 tcp:443",
            "vip-add 203.0.113.80/32 tcp:443 encap gre6 src-ip-sticky false table-length 1024",
            "as-add 203.0.113.80/32 tcp:443 2001:db8:1::1 weight 100",
        ]
    );
    assert!(p.notes[0].contains("encap gre4 -> gre6"), "{:?}", p.notes);
}

#[test]
fn sticky_change_recreates_and_table_length_too() {
    use State::*;
    let cfg = config("", true);
    let st = states(&[("a1", Up), ("a2", Up), ("b1", Up)]);
    let mut actual = ActualState::default();
    converge(&cfg, &st, &mut actual, V2);
    let mut desired = desired_state(&cfg, &st, &Overrides::new());
    desired.vips.get_mut(&www()).unwrap().src_ip_sticky = true;
    let p = plan(&desired, &actual, &Scope::All, V2);
    assert!(
        p.notes[0].contains("src-ip-sticky false -> true"),
        "{:?}",
        p.notes
    );
    assert!(
        matches!(p.ops[3], Op::VipDel(_)) && matches!(p.ops[4], Op::VipAdd(s) if s.src_ip_sticky)
    );
    // Unknown stickiness (no CLI output) does not trigger a re-create.
    actual.vips.get_mut(&www()).unwrap().src_ip_sticky = None;
    assert!(plan(&desired, &actual, &Scope::All, V2).is_empty());
    // A 65536-slot table reads back as 0 (u16): no endless re-create.
    let mut desired = desired_state(&cfg, &st, &Overrides::new());
    desired.vips.get_mut(&www()).unwrap().table_len = 65536;
    let p = plan(&desired, &actual, &Scope::All, V2);
    assert!(p.notes[0].contains("table length 1024 -> 65536"));
    for op in &p.ops {
        actual.apply(op, true);
    }
    assert_eq!(actual.vips[&www()].table_len_u16, 0);
    assert!(plan(&desired, &actual, &Scope::All, V2).is_empty());
    // 65536 -> 131072: both read 0 through the u16, but the true length
    // (the CLI's new_size) differs, so the VIP is re-created.
    desired.vips.get_mut(&www()).unwrap().table_len = 131072;
    let p = plan(&desired, &actual, &Scope::All, V2);
    assert!(
        p.notes[0].contains("table length 65536 -> 131072"),
        "{:?}",
        p.notes
    );
    for op in &p.ops {
        actual.apply(op, true);
    }
    assert_eq!(actual.vips[&www()].table_len, Some(131072));
    assert!(plan(&desired, &actual, &Scope::All, V2).is_empty());
}

#[test]
fn a_pool_drained_to_weight_zero_is_not_active() {
    use State::*;
    let cfg = config("", true);
    let f = &cfg.frontends["www"];
    let st = states(&[("a1", Up), ("a2", Up), ("b1", Up)]);
    // Both primaries up but drained by the operator: the standby serves.
    let mut o = Overrides::new();
    o.insert(("www".into(), "primary".into(), "a1".into()), 0);
    o.insert(("www".into(), "primary".into(), "a2".into()), 0);
    let w: Vec<(u8, bool)> = effective_weights(&cfg, f, &st, &o)
        .iter()
        .map(|w| (w.weight, w.flush))
        .collect();
    assert_eq!(w, [(0, false), (0, false), (100, false)]);
    assert_eq!(frontend_state(&cfg, f, &st, &o), FrontendState::Up);
    assert_eq!(maglev_lbsync::desired::active_pool(f, &st, &o), 1);
    // One primary back at weight > 0: the primary pool is active again.
    o.insert(("www".into(), "primary".into(), "a2".into()), 1);
    assert_eq!(maglev_lbsync::desired::active_pool(f, &st, &o), 0);
}

#[test]
fn stale_vips_are_deleted_before_anything_is_created() {
    use State::*;
    // An all-port VIP on the address the new config serves per port: VPP
    // refuses the per-port VIP (-81) until the all-port one is gone.
    let all_ports = config(
        "    any:\n      address: 203.0.113.99\n      pools: [ { name: p, backends: { b1: {} } } ]\n",
        true,
    );
    let st = states(&[("a1", Up), ("a2", Up), ("b1", Up)]);
    let mut actual = ActualState::default();
    converge(&all_ports, &st, &mut actual, V2);
    let per_port = config(
        "    tcp:\n      address: 203.0.113.99\n      port: 80\n      pools: [ { name: p, backends: { b1: {} } } ]\n",
        true,
    );
    let ops = converge(&per_port, &st, &mut actual, V2);
    let text: Vec<String> = ops.iter().map(ToString::to_string).collect();
    let del = text
        .iter()
        .position(|o| o.starts_with("vip-del 203.0.113.99/32 any:0"))
        .unwrap();
    let add = text
        .iter()
        .position(|o| o.starts_with("vip-add 203.0.113.99/32 tcp:80"))
        .unwrap();
    assert!(del < add, "{text:#?}");
}

#[test]
fn stale_vips_go_only_in_a_full_sync() {
    use State::*;
    let cfg = config(
        "    api:\n      address: 203.0.113.81\n      port: 80\n      pools: [ { name: p, backends: { b1: {} } } ]\n",
        true,
    );
    let st = states(&[("a1", Up), ("a2", Up), ("b1", Up)]);
    let mut actual = ActualState::default();
    converge(&cfg, &st, &mut actual, V2);
    let smaller = config("", true);
    let desired = desired_state(&smaller, &st, &Overrides::new());
    let per_vip = Scope::Vips(BTreeSet::from([
        www(),
        VipKey::host(ip("203.0.113.81"), 6, 80),
    ]));
    assert!(
        plan(&desired, &actual, &per_vip, V2).is_empty(),
        "a per-VIP sync never deletes VIPs"
    );
    let p = plan(&desired, &actual, &Scope::All, V2);
    let ops: Vec<String> = p.ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        ops,
        [
            "as-del 203.0.113.81/32 tcp:80 10.0.0.3 flush",
            "vip-del 203.0.113.81/32 tcp:80"
        ]
    );
}

#[test]
fn removed_backend_is_deleted_without_flush() {
    use State::*;
    let cfg = config("", true);
    let st = states(&[("a1", Up), ("a2", Up), ("b1", Up)]);
    let mut actual = ActualState::default();
    converge(&cfg, &st, &mut actual, V2);
    let text = "maglev:
  vpp: { lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' } }
  backends: { a1: { address: 10.0.0.2 } }
  frontends:
    www: { address: 203.0.113.80, port: 443, pools: [ { name: primary, backends: { a1: { weight: 60 } } } ] }
";
    let cfg2 = maglev_config::load_str(text, "t.yaml").unwrap().config;
    let p = plan(
        &desired_state(&cfg2, &st, &Overrides::new()),
        &actual,
        &Scope::All,
        V2,
    );
    let ops: Vec<String> = p.ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        ops,
        [
            "as-del 203.0.113.80/32 tcp:443 10.0.0.3",
            "as-del 203.0.113.80/32 tcp:443 10.0.0.10"
        ]
    );
}

#[test]
fn old_vpp_fallback() {
    use State::*;
    let cfg = config("", true);
    let mut actual = ActualState::default();
    let ops = converge(
        &cfg,
        &states(&[("a1", Up), ("a2", Up), ("b1", Up)]),
        &mut actual,
        V1,
    );
    let text: Vec<String> = ops.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "weight-0 standby not added: {text:?}");
    // a2 down (flush-on-down): deleted with flush; b1 still standby.
    let ops = converge(
        &cfg,
        &states(&[("a1", Up), ("a2", Down), ("b1", Up)]),
        &mut actual,
        V1,
    );
    let text: Vec<String> = ops.iter().map(ToString::to_string).collect();
    assert_eq!(text, ["as-del 203.0.113.80/32 tcp:443 10.0.0.10 flush"]);
    // back up: added again.
    let ops = converge(
        &cfg,
        &states(&[("a1", Up), ("a2", Up), ("b1", Up)]),
        &mut actual,
        V1,
    );
    let text: Vec<String> = ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        ["as-add 203.0.113.80/32 tcp:443 10.0.0.10 weight 100"]
    );
}

#[test]
fn vip_keys_follow_the_config() {
    let cfg = config(
        "    dns:\n      address: 203.0.113.53\n      pools: [ { name: p, backends: { b1: {} } } ]\n",
        true,
    );
    let k = vip_key(&cfg.frontends["dns"]);
    assert_eq!((k.protocol, k.port, k.prefix_len), (255, 0, 32));
    let d = desired_state(&cfg, &HashMap::new(), &Overrides::new());
    assert_eq!(d.vips[&www()].encap, Encap::Gre4);
}

mod property {
    use super::*;
    use proptest::prelude::*;

    fn state_strategy() -> impl Strategy<Value = State> {
        prop_oneof![
            Just(State::Unknown),
            Just(State::Up),
            Just(State::Down),
            Just(State::Paused),
            Just(State::Disabled),
        ]
    }

    proptest! {
        /// From any starting point, through any sequence of health states:
        /// plan, apply, plan again → nothing left to do, for v2 and v1 VPP.
        #[test]
        fn plan_apply_plan_is_empty(
            steps in proptest::collection::vec(proptest::collection::vec(state_strategy(), 3), 1..8),
            v2 in any::<bool>(),
        ) {
            let cfg = config(
                "    api:\n      address: 203.0.113.81\n      port: 80\n      pools: [ { name: p, backends: { b1: {}, a2: {} } } ]\n",
                true,
            );
            let caps = Capabilities { v2 };
            let mut actual = ActualState::default();
            let mut ledger = FlushLedger::default();
            for st in steps {
                let s = states(&[("a1", st[0]), ("a2", st[1]), ("b1", st[2])]);
                converge_with(&cfg, &s, &mut actual, &mut ledger, caps);
            }
        }
    }
}

#[test]
fn slow_start_ramp() {
    use maglev_lbsync::desired::{apply_ramps, ramp_percent, ramped, Ramps};
    use std::time::Duration;
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    // 10 % at once, then a step a second towards 100 %, then over.
    let total = s(10);
    let got: Vec<Option<u8>> = [ms(0), ms(900), s(1), s(5), ms(9_990), s(10), s(60)]
        .iter()
        .map(|e| ramp_percent(*e, total))
        .collect();
    assert_eq!(
        got,
        [Some(10), Some(10), Some(19), Some(55), Some(91), None, None]
    );
    let three: Vec<Option<u8>> = (0..4).map(|k| ramp_percent(s(k), s(3))).collect();
    assert_eq!(three, [Some(10), Some(40), Some(70), None]);
    // Rounded up, never 0 for a weight above 0, never above the weight.
    assert_eq!(ramped(100, 10), 10);
    assert_eq!(ramped(60, 40), 24);
    assert_eq!(ramped(1, 10), 1);
    assert_eq!(ramped(0, 50), 0);
    assert_eq!(ramped(100, 99), 99);
    // Applied to the desired state by (frontend, backend).
    let cfg = config("", true);
    let st = states(&[("a1", State::Up), ("a2", State::Up), ("b1", State::Up)]);
    let mut d = desired_state(&cfg, &st, &Overrides::new());
    let mut ramps = Ramps::new();
    ramps.insert(("www".into(), "a1".into()), 40);
    ramps.insert(("nope".into(), "a2".into()), 40);
    apply_ramps(&cfg, &mut d, &ramps);
    let ases = &d.vips[&www()].ases;
    assert_eq!(ases[&ip("10.0.0.2")].weight, 24, "a1: 60 at 40 %");
    assert_eq!(ases[&ip("10.0.0.10")].weight, 100, "a2 untouched");
}

#[test]
fn slow_start_is_checked() {
    for (bad, why) in [
        ("500ms", "out of range 1s..1h"),
        ("2h", "out of range 1s..1h"),
    ] {
        let text = format!(
            "maglev:
  vpp: {{ lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }} }}
  backends: {{ c1: {{ address: 10.0.1.1 }} }}
  frontends:
    p: {{ address: 203.0.113.81, port: 80, slow-start: {bad}, pools: [ {{ name: x, backends: {{ c1: {{}} }} }} ] }}
"
        );
        let e = maglev_config::load_str(&text, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("frontends.p.slow-start") && e.contains(why),
            "{bad}: {e}"
        );
    }
}

#[test]
fn agents_fold_into_the_weights() {
    use maglev_health::{AgentAdmin, AgentOper, AgentState};
    use maglev_lbsync::desired::{with_agents, Agents};
    use State::*;
    let cfg = config("", true);
    let f = &cfg.frontends["www"];
    let st = states(&[("a1", Up), ("a2", Up), ("b1", Up)]);
    let o = Overrides::new();
    let agent = |admin, oper, percent| AgentState {
        admin,
        oper,
        percent,
    };
    let weights = |agents: &Agents| -> Vec<(u8, bool)> {
        let (s, o) = with_agents(&cfg, &st, &o, agents).unwrap();
        effective_weights(&cfg, f, &s, &o)
            .iter()
            .map(|w| (w.weight, w.flush))
            .collect()
    };
    assert!(with_agents(&cfg, &st, &o, &Agents::new()).is_none());
    // (a1 60, a2 100 in primary; b1 standby)
    let one = |a: AgentState| Agents::from([("a2".to_string(), a)]);
    // N %: scales the configured weight.
    assert_eq!(
        weights(&one(agent(AgentAdmin::Ready, AgentOper::Up, 50))),
        [(60, false), (50, false), (0, false)]
    );
    // drain: weight 0, existing flows stay (no flush).
    assert_eq!(
        weights(&one(agent(AgentAdmin::Drain, AgentOper::Up, 100))),
        [(60, false), (0, false), (0, false)]
    );
    // maint: as an operator disable (flush).
    assert_eq!(
        weights(&one(agent(AgentAdmin::Maint, AgentOper::Up, 100))),
        [(60, false), (0, true), (0, false)]
    );
    // down: as a health failure (flush-on-down).
    assert_eq!(
        weights(&one(agent(AgentAdmin::Ready, AgentOper::Down, 100))),
        [(60, false), (0, true), (0, false)]
    );
    // The whole primary drained: the standby takes over.
    let both = Agents::from([
        (
            "a1".to_string(),
            agent(AgentAdmin::Drain, AgentOper::Up, 100),
        ),
        ("a2".to_string(), agent(AgentAdmin::Ready, AgentOper::Up, 0)),
    ]);
    assert_eq!(weights(&both), [(0, false), (0, false), (100, false)]);
    // A percentage applies after the operator's override.
    let mut op = Overrides::new();
    op.insert(("www".into(), "primary".into(), "a2".into()), 40);
    let (s, o2) = with_agents(
        &cfg,
        &st,
        &op,
        &one(agent(AgentAdmin::Ready, AgentOper::Up, 50)),
    )
    .unwrap();
    assert_eq!(effective_weights(&cfg, f, &s, &o2)[1].weight, 20);
    // An operator's disable or pause is never undone by an agent.
    let st2 = states(&[("a1", Up), ("a2", Paused), ("b1", Up)]);
    let (s, _) = with_agents(
        &cfg,
        &st2,
        &o,
        &one(agent(AgentAdmin::Maint, AgentOper::Down, 100)),
    )
    .unwrap();
    assert_eq!(s["a2"], Paused);
}
