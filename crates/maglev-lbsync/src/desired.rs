//! What VPP should hold, computed from the config and live backend states.
//! Pure: no IO, no clocks.
//!
//! Per frontend × pool × backend, the effective (weight, flush):
//!
//! | state | in active pool | weight | flush |
//! |---|---|---|---|
//! | up | yes | configured weight (or runtime override) | no |
//! | up | no (standby tier) | 0 | no (graceful drain) |
//! | down, held (flapping) | any | 0 | frontend `flush-on-down` |
//! | disabled | any | 0 | yes |
//! | unknown, paused | any | 0 | no |
//! | removed | — | AS deleted | — |
//!
//! The active pool is the first pool with at least one backend up.
//!
//! **Panic** (frontend `panic-threshold`, Envoy's panic mode): when fewer
//! than that percentage of the serving pool's judged members (up or down,
//! with a configured weight above 0) are up — the active pool, or the
//! first pool when none has a backend up, so no lower pool can take over —
//! that pool fails open: its down members keep their configured weight
//! (no flush), as if they were up. Unknown, paused and disabled members
//! stay at 0, and the frontend's state is `panic`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use maglev_config::{Config, Family, Frontend};
use maglev_health::{AgentAdmin, AgentOper, AgentState, State};
use maglev_vpp::{Encap, VipKey};

/// Runtime weight overrides: (frontend, pool, backend) → weight.
pub type Overrides = HashMap<(String, String, String), u8>;

/// Slow starts in progress: (frontend, backend) → the percent of its
/// weight the backend gets now (10..=99).
pub type Ramps = HashMap<(String, String), u8>;

/// What backends' agents ask for (only those that change something).
pub type Agents = HashMap<String, AgentState>;

/// `states` and `overrides` with the agents' wishes folded in: `maint` is
/// an operator disable (weight 0, flush), an agent's `down` is down,
/// `drain` is weight 0 in every pool without flush (so a fully drained
/// pool hands over to the next, as an override of 0 does), and `N%`
/// scales the weight (after any operator override). `None` when no agent
/// changes anything: use the inputs as they are.
pub fn with_agents(
    config: &Config,
    states: &HashMap<String, State>,
    overrides: &Overrides,
    agents: &Agents,
) -> Option<(HashMap<String, State>, Overrides)> {
    if agents.is_empty() {
        return None;
    }
    let mut states = states.clone();
    for (backend, a) in agents {
        if let Some(s) = states.get_mut(backend) {
            let working = matches!(*s, State::Up | State::Unknown | State::Down | State::Held);
            if a.admin == AgentAdmin::Maint && working {
                *s = State::Disabled;
            } else if a.oper == AgentOper::Down && matches!(*s, State::Up | State::Unknown) {
                *s = State::Down;
            }
        }
    }
    // One pass over the pool members (not one per agent): configs reach
    // tens of thousands of members.
    let mut overrides = overrides.clone();
    for f in config.frontends.values() {
        for p in &f.pools {
            for m in &p.backends {
                let Some(a) = agents.get(&m.backend) else {
                    continue;
                };
                let drain = a.admin == AgentAdmin::Drain;
                if !drain && a.percent >= 100 {
                    continue;
                }
                let key = (f.name.clone(), p.name.clone(), m.backend.clone());
                let base = overrides.get(&key).copied().unwrap_or(m.weight);
                let w = if drain || a.percent == 0 {
                    0
                } else {
                    ramped(base, a.percent)
                };
                overrides.insert(key, w);
            }
        }
    }
    Some((states, overrides))
}

/// The percent of its weight a backend gets `elapsed` into a slow start of
/// `total`: 10 % at once, then linearly towards 100 % in whole-second
/// steps; `None` once the ramp is over.
pub fn ramp_percent(elapsed: Duration, total: Duration) -> Option<u8> {
    if elapsed >= total {
        return None;
    }
    let step = elapsed.as_secs() as u128 * 1000;
    let pct = 10 + 90 * step / total.as_millis().max(1);
    Some(pct.min(99) as u8)
}

/// `weight` scaled to `percent`, rounded up, never 0 for a weight above 0
/// (a ramping backend always gets some traffic).
pub fn ramped(weight: u8, percent: u8) -> u8 {
    if weight == 0 {
        return 0;
    }
    let w = (u32::from(weight) * u32::from(percent)).div_ceil(100);
    w.clamp(1, u32::from(weight)) as u8
}

/// Scales the weights of ramping backends in `desired`.
pub fn apply_ramps(config: &Config, desired: &mut DesiredState, ramps: &Ramps) {
    for ((frontend, backend), pct) in ramps {
        let (Some(f), Some(b)) = (config.frontends.get(frontend), config.backends.get(backend))
        else {
            continue;
        };
        if let Some(a) = desired
            .vips
            .get_mut(&vip_key(f))
            .and_then(|v| v.ases.get_mut(&b.address))
        {
            a.weight = ramped(a.weight, *pct);
        }
    }
}

/// Scales the effective weights of `f`'s ramping backends (what the API
/// and metrics show is what VPP gets).
pub fn apply_ramps_to(f: &Frontend, weights: &mut [EffectiveWeight], ramps: &Ramps) {
    for w in weights {
        if let Some(pct) = ramp_of(ramps, &f.name, &w.backend) {
            w.weight = ramped(w.weight, pct);
        }
    }
}

/// One AS as it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DesiredAs {
    /// Weight 0..=100.
    pub weight: u8,
    /// Evict its sticky entries (sent with the weight, even when the weight
    /// is already right).
    pub flush: bool,
}

/// One VIP as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredVip {
    /// The frontend it comes from.
    pub frontend: String,
    /// VPP's key.
    pub key: VipKey,
    /// GRE4 or GRE6, from the backends' family.
    pub encap: Encap,
    /// Source-IP stickiness.
    pub src_ip_sticky: bool,
    /// New-flow table length (never 0).
    pub table_len: u32,
    /// ASes by address; `IpAddr`'s order is numeric with IPv4 first, which
    /// is the order calls are made in.
    pub ases: BTreeMap<IpAddr, DesiredAs>,
}

/// Every VIP VPP should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// VIPs by key.
    pub vips: BTreeMap<VipKey, DesiredVip>,
}

/// A frontend's aggregate state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrontendState {
    /// Some AS has weight > 0.
    Up,
    /// No backend has left `unknown` yet.
    Unknown,
    /// Otherwise.
    Down,
    /// Below its panic threshold: serving on every judged member of the
    /// serving pool, healthy or not.
    Panic,
}

impl FrontendState {
    /// Lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            FrontendState::Up => "up",
            FrontendState::Unknown => "unknown",
            FrontendState::Down => "down",
            FrontendState::Panic => "panic",
        }
    }
}

impl fmt::Display for FrontendState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One backend's effective weight in a frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveWeight {
    /// Pool index.
    pub pool: usize,
    /// Backend name.
    pub backend: String,
    /// Its address.
    pub address: IpAddr,
    /// Its state.
    pub state: State,
    /// Configured weight (after any runtime override).
    pub configured: u8,
    /// What VPP gets.
    pub weight: u8,
    /// Whether VPP is told to flush.
    pub flush: bool,
}

/// The VIP key of a frontend.
pub fn vip_key(f: &Frontend) -> VipKey {
    VipKey::host(f.address, f.protocol.number(), f.port)
}

fn state_of(states: &HashMap<String, State>, backend: &str) -> State {
    // A backend the checker does not know (yet) has not left unknown.
    states.get(backend).copied().unwrap_or(State::Unknown)
}

/// Index of the active pool: the first with a backend that is up with a
/// configured weight (after overrides) above 0 — a pool whose up backends
/// are all drained to weight 0 would serve nothing (0 if none).
pub fn active_pool(f: &Frontend, states: &HashMap<String, State>, overrides: &Overrides) -> usize {
    f.pools
        .iter()
        .position(|p| {
            p.backends.iter().any(|m| {
                state_of(states, &m.backend) == State::Up
                    && configured_weight(f, &p.name, m, overrides) > 0
            })
        })
        .unwrap_or(0)
}

fn configured_weight(
    f: &Frontend,
    pool: &str,
    m: &maglev_config::PoolMember,
    overrides: &Overrides,
) -> u8 {
    override_of(overrides, &f.name, pool, &m.backend).unwrap_or(m.weight)
}

/// The runtime weight of a pool member, if an operator set one. The key
/// is three owned strings: built only when there is something to find
/// (this runs for every member of every frontend on every full sync,
/// scrape and ListFrontends).
pub fn override_of(overrides: &Overrides, frontend: &str, pool: &str, backend: &str) -> Option<u8> {
    if overrides.is_empty() {
        return None;
    }
    overrides
        .get(&(frontend.to_string(), pool.to_string(), backend.to_string()))
        .copied()
}

/// The percent of its weight a backend gets in `frontend` while it ramps
/// up (slow start), if it does; the key is built only when any ramp runs.
pub fn ramp_of(ramps: &Ramps, frontend: &str, backend: &str) -> Option<u8> {
    if ramps.is_empty() {
        return None;
    }
    ramps
        .get(&(frontend.to_string(), backend.to_string()))
        .copied()
}

/// How a frontend stands against its panic threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PanicCheck {
    /// The pool judged (the one serving, or the first).
    pub pool: usize,
    /// Its members that are up (with a weight above 0).
    pub healthy: usize,
    /// Its members that are up or down (with a weight above 0).
    pub judged: usize,
    /// Whether it is below the threshold: failing open.
    pub panic: bool,
}

/// The panic verdict of `f`; `None` without a `panic-threshold`.
pub fn panic_check(
    f: &Frontend,
    states: &HashMap<String, State>,
    overrides: &Overrides,
) -> Option<PanicCheck> {
    let threshold = usize::from(f.panic_threshold?);
    // active_pool is the first pool when none has a backend up.
    let pool = active_pool(f, states, overrides);
    let p = f.pools.get(pool)?;
    let (mut healthy, mut judged) = (0, 0);
    for m in &p.backends {
        if configured_weight(f, &p.name, m, overrides) == 0 {
            continue;
        }
        match state_of(states, &m.backend) {
            State::Up => {
                healthy += 1;
                judged += 1;
            }
            State::Down | State::Held => judged += 1,
            _ => {}
        }
    }
    Some(PanicCheck {
        pool,
        healthy,
        judged,
        panic: judged > 0 && healthy * 100 < threshold * judged,
    })
}

/// The effective weight of every member of every pool of `f`.
pub fn effective_weights(
    config: &Config,
    f: &Frontend,
    states: &HashMap<String, State>,
    overrides: &Overrides,
) -> Vec<EffectiveWeight> {
    let active = active_pool(f, states, overrides);
    let panic_pool = panic_check(f, states, overrides)
        .filter(|p| p.panic)
        .map(|p| p.pool);
    let mut out = Vec::new();
    for (i, pool) in f.pools.iter().enumerate() {
        for m in &pool.backends {
            let state = state_of(states, &m.backend);
            let configured = configured_weight(f, &pool.name, m, overrides);
            let (weight, flush) = match state {
                // Failing open: the judged pool serves on all its members.
                State::Up | State::Down | State::Held if panic_pool == Some(i) => {
                    (configured, false)
                }
                State::Up if i == active => (configured, false),
                State::Up => (0, false),
                State::Down | State::Held => (0, f.flush_on_down),
                State::Disabled => (0, true),
                State::Unknown | State::Paused | State::Removed => (0, false),
            };
            out.push(EffectiveWeight {
                pool: i,
                backend: m.backend.clone(),
                address: config.backends[&m.backend].address,
                state,
                configured,
                weight,
                flush,
            });
        }
    }
    out
}

/// A frontend's aggregate state.
pub fn frontend_state(
    config: &Config,
    f: &Frontend,
    states: &HashMap<String, State>,
    overrides: &Overrides,
) -> FrontendState {
    frontend_summary(config, f, states, overrides).0
}

/// How a frontend's backends stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberCounts {
    /// Backends by state, in [`State::ALL`] order.
    pub by_state: [u32; State::ALL.len()],
    /// Backends VPP gives a weight above 0: where new flows go (in panic,
    /// down ones too).
    pub serving: u32,
}

/// A frontend's aggregate state and its backends' counts, from one
/// computation of its weights.
pub fn frontend_summary(
    config: &Config,
    f: &Frontend,
    states: &HashMap<String, State>,
    overrides: &Overrides,
) -> (FrontendState, MemberCounts) {
    let weights = effective_weights(config, f, states, overrides);
    summarize(f, &weights, states, overrides)
}

/// [`frontend_summary`] from weights already computed (before ramps).
pub fn summarize(
    f: &Frontend,
    weights: &[EffectiveWeight],
    states: &HashMap<String, State>,
    overrides: &Overrides,
) -> (FrontendState, MemberCounts) {
    let state = if panic_check(f, states, overrides).is_some_and(|p| p.panic) {
        FrontendState::Panic
    } else if weights.iter().any(|w| w.weight > 0) {
        FrontendState::Up
    } else if weights.iter().all(|w| w.state == State::Unknown) {
        FrontendState::Unknown
    } else {
        FrontendState::Down
    };
    // A backend is a member of one pool of a frontend at most (the config
    // refuses more): members are backends.
    let mut counts = MemberCounts::default();
    for w in weights {
        if let Some(i) = State::ALL.iter().position(|s| *s == w.state) {
            counts.by_state[i] += 1;
        }
        counts.serving += u32::from(w.weight > 0);
    }
    (state, counts)
}

/// The VIP of one frontend.
pub fn desired_vip(
    config: &Config,
    f: &Frontend,
    states: &HashMap<String, State>,
    overrides: &Overrides,
) -> DesiredVip {
    let ases = effective_weights(config, f, states, overrides)
        .into_iter()
        .filter(|w| w.state != State::Removed)
        .map(|w| {
            (
                w.address,
                DesiredAs {
                    weight: w.weight,
                    flush: w.flush,
                },
            )
        })
        .collect();
    DesiredVip {
        frontend: f.name.clone(),
        key: vip_key(f),
        encap: match f.backend_family {
            Family::V4 => Encap::Gre4,
            Family::V6 => Encap::Gre6,
        },
        src_ip_sticky: f.src_ip_sticky,
        table_len: f.new_flows_table_length,
        ases,
    }
}

/// Every VIP of `config`.
pub fn desired_state(
    config: &Config,
    states: &HashMap<String, State>,
    overrides: &Overrides,
) -> DesiredState {
    DesiredState {
        vips: config
            .frontends
            .values()
            .map(|f| {
                let v = desired_vip(config, f, states, overrides);
                (v.key, v)
            })
            .collect(),
    }
}

/// The VIPs of the named frontends only (unknown names are skipped).
pub fn desired_subset<'a>(
    config: &Config,
    frontends: impl IntoIterator<Item = &'a String>,
    states: &HashMap<String, State>,
    overrides: &Overrides,
) -> DesiredState {
    DesiredState {
        vips: frontends
            .into_iter()
            .filter_map(|n| config.frontends.get(n))
            .map(|f| {
                let v = desired_vip(config, f, states, overrides);
                (v.key, v)
            })
            .collect(),
    }
}
