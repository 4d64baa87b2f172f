//! The dashboard's view of one maglevd: what the JSON API returns and the
//! page renders. Built from maglevd's gRPC messages, never the other way:
//! these shapes are documented in docs/dashboard.md and stay stable even
//! when the proto grows.

use std::collections::HashMap;

use maglev_proto as pb;
use serde::Serialize;

/// One maglevd as the dashboard knows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Maglevd {
    /// The tab name: `name=` from `--server`, else the address.
    pub name: String,
    /// The gRPC address.
    pub address: String,
    /// Whether the last call reached it.
    pub connected: bool,
    /// Why it is not connected (or the last call's error).
    pub error: Option<String>,
    /// When `connected` last changed (ms since the epoch).
    pub since_unix_ms: i64,
    /// VPP as maglevd sees it; `None` until first fetched.
    pub vpp: Option<Vpp>,
    /// Frontends in maglevd's (ListFrontends) order.
    pub frontends: Vec<Frontend>,
    /// Backends in maglevd's order.
    pub backends: Vec<Backend>,
    /// Health checks in maglevd's order.
    pub healthchecks: Vec<HealthCheck>,
    /// VPP's LB state (`None`: VPP unavailable or never read).
    pub lb: Option<Vec<Vip>>,
}

/// VPP's identity and link state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Vpp {
    /// Whether maglevd has a working API connection.
    pub connected: bool,
    /// Why not, when not.
    pub error: Option<String>,
    /// VPP's version string.
    pub version: String,
    /// VPP's build date.
    pub build_date: String,
    /// VPP's process id.
    pub pid: u32,
    /// When VPP booted (ms since the epoch, 0 unknown).
    pub boottime_unix_ms: i64,
    /// When maglevd connected (ms since the epoch, 0 unknown).
    pub connected_unix_ms: i64,
    /// Whether VPP has the v2 LB API (per-AS weights).
    pub lb_v2: bool,
}

/// A frontend (VIP) and its pools.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Frontend {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The VIP's address.
    pub address: String,
    /// tcp, udp or any.
    pub protocol: String,
    /// The port (0 for all).
    pub port: u32,
    /// up, down, unknown or panic.
    pub state: String,
    /// Index of the pool that serves.
    pub active_pool: u32,
    /// One line saying which pool serves and why.
    pub why: String,
    /// Whether flows stick to the source address.
    pub src_ip_sticky: bool,
    /// Whether a backend going down flushes its flows.
    pub flush_on_down: bool,
    /// Percent below which the pool fails open (0 none).
    pub panic_threshold: u32,
    /// Seconds of slow start (0 none).
    pub slow_start_seconds: f64,
    /// VPP's new-flow table length.
    pub table_length: u32,
    /// The pools in priority order.
    pub pools: Vec<Pool>,
}

/// A pool of a frontend.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pool {
    /// Its name.
    pub name: String,
    /// Its members.
    pub backends: Vec<PoolBackend>,
}

/// A backend as a member of one pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolBackend {
    /// The backend's name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Its health state.
    pub state: String,
    /// The weight configured (after any runtime override).
    pub configured_weight: u32,
    /// The weight VPP is given.
    pub effective_weight: u32,
    /// Whether an operator overrode the weight.
    pub weight_overridden: bool,
    /// Whether its flows are flushed.
    pub flush: bool,
    /// Slow-start percent while ramping (0 otherwise).
    pub slow_start_percent: u32,
    /// Buckets VPP gives it (`None`: unknown).
    pub buckets: Option<u32>,
}

/// A backend with its health.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Backend {
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Its health check (empty: static).
    pub healthcheck: String,
    /// http, https, tcp, icmp, grpc or static.
    pub check_type: String,
    /// Its state.
    pub state: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// The last transition, if any.
    pub last: Option<Transition>,
    /// Frontends that use it.
    pub frontends: Vec<String>,
}

/// A state change.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Transition {
    /// From this state.
    pub from: String,
    /// To this state.
    pub to: String,
    /// When (ms since the epoch).
    pub at_unix_ms: i64,
    /// The probe's result code (L4OK, L7STS, …).
    pub code: String,
    /// Its detail.
    pub detail: String,
}

/// A health check.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HealthCheck {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its port (0: the backend's).
    pub port: u32,
    /// Seconds between probes.
    pub interval_seconds: f64,
    /// Seconds a probe may take.
    pub timeout_seconds: f64,
    /// Passes to go up.
    pub rise: u32,
    /// Failures to go down.
    pub fall: u32,
    /// Backends using it.
    pub backends: Vec<String>,
}

/// A VIP as VPP holds it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Vip {
    /// The VIP prefix (`203.0.113.80/32`).
    pub prefix: String,
    /// IP protocol number (6 tcp, 17 udp, 255 any).
    pub protocol: u32,
    /// The port.
    pub port: u32,
    /// The configured frontend with this key, if any.
    pub frontend: String,
    /// The table length as VPP reports it.
    pub table_length: u32,
    /// Its application servers.
    pub ases: Vec<As>,
}

/// An application server of a VIP.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct As {
    /// Its address.
    pub address: String,
    /// Its weight (v2 API only).
    pub weight: Option<u32>,
    /// Its buckets in the table (when VPP says).
    pub buckets: Option<u32>,
}

fn ms(ns: i64) -> i64 {
    ns / 1_000_000
}

impl From<&pb::VppInfo> for Vpp {
    fn from(v: &pb::VppInfo) -> Vpp {
        Vpp {
            connected: true,
            error: None,
            version: v.version.clone(),
            build_date: v.build_date.clone(),
            pid: v.pid,
            boottime_unix_ms: ms(v.boottime_unix_ns),
            connected_unix_ms: ms(v.connected_unix_ns),
            lb_v2: v.lb_v2,
        }
    }
}

impl From<&pb::FrontendInfo> for Frontend {
    fn from(f: &pb::FrontendInfo) -> Frontend {
        let mut out = Frontend {
            name: f.name.clone(),
            description: f.description.clone(),
            address: f.address.clone(),
            protocol: f.protocol.clone(),
            port: f.port,
            state: f.state.clone(),
            active_pool: f.active_pool,
            why: String::new(),
            src_ip_sticky: f.src_ip_sticky,
            flush_on_down: f.flush_on_down,
            panic_threshold: f.panic_threshold,
            slow_start_seconds: f.slow_start_seconds,
            table_length: f.new_flows_table_length,
            pools: f
                .pools
                .iter()
                .map(|p| Pool {
                    name: p.name.clone(),
                    backends: p
                        .backends
                        .iter()
                        .map(|b| PoolBackend {
                            name: b.name.clone(),
                            address: b.address.clone(),
                            state: b.state.clone(),
                            configured_weight: b.configured_weight,
                            effective_weight: b.effective_weight,
                            weight_overridden: b.weight_overridden,
                            flush: b.flush,
                            slow_start_percent: b.slow_start_percent,
                            buckets: b.vpp_buckets,
                        })
                        .collect(),
                })
                .collect(),
        };
        out.why = why(&out);
        out
    }
}

impl From<&pb::BackendInfo> for Backend {
    fn from(b: &pb::BackendInfo) -> Backend {
        Backend {
            name: b.name.clone(),
            address: b.address.clone(),
            healthcheck: b.healthcheck.clone(),
            check_type: b.check_type.clone(),
            state: b.state.clone(),
            enabled: b.enabled,
            last: b.transitions.last().map(Transition::from),
            frontends: b.frontends.clone(),
        }
    }
}

impl From<&pb::Transition> for Transition {
    fn from(t: &pb::Transition) -> Transition {
        Transition {
            from: t.from.clone(),
            to: t.to.clone(),
            at_unix_ms: ms(t.at_unix_ns),
            code: t.code.clone(),
            detail: t.detail.clone(),
        }
    }
}

impl From<&pb::HealthCheckInfo> for HealthCheck {
    fn from(h: &pb::HealthCheckInfo) -> HealthCheck {
        HealthCheck {
            name: h.name.clone(),
            kind: h.r#type.clone(),
            port: h.port,
            interval_seconds: h.interval_seconds,
            timeout_seconds: h.timeout_seconds,
            rise: h.rise,
            fall: h.fall,
            backends: h.backends.clone(),
        }
    }
}

impl From<&pb::VppVip> for Vip {
    fn from(v: &pb::VppVip) -> Vip {
        Vip {
            prefix: v.prefix.clone(),
            protocol: v.protocol,
            port: v.port,
            frontend: v.frontend.clone(),
            table_length: v.table_length,
            ases: v
                .ases
                .iter()
                .map(|a| As {
                    address: a.address.clone(),
                    weight: a.weight,
                    buckets: a.buckets,
                })
                .collect(),
        }
    }
}

/// Fills each pool member's `buckets` from VPP's LB state (matched by the
/// frontend's VIP and the member's address); where that has no answer,
/// what maglevd said stays (its snapshot of VPP, or `None`).
pub fn merge_buckets(frontends: &mut [Frontend], lb: Option<&[Vip]>) {
    let by_frontend: HashMap<&str, &Vip> = lb
        .unwrap_or_default()
        .iter()
        .filter(|v| !v.frontend.is_empty())
        .map(|v| (v.frontend.as_str(), v))
        .collect();
    for f in frontends {
        let Some(vip) = by_frontend.get(f.name.as_str()) else {
            continue;
        };
        for p in &mut f.pools {
            for b in &mut p.backends {
                b.buckets = Some(
                    vip.ases
                        .iter()
                        .find(|a| a.address == b.address)
                        .map_or(0, |a| a.buckets.unwrap_or(0)),
                );
            }
        }
    }
}

/// The per-frontend "why": which pool serves and why, e.g. `primary: 2 of
/// 2 up` or `primary: 0 of 2 up → fallback: 1 of 1 up`.
pub fn why(f: &Frontend) -> String {
    let count = |p: &Pool| {
        let up = p.backends.iter().filter(|b| b.state == "up").count();
        format!("{}: {up} of {} up", p.name, p.backends.len())
    };
    if f.pools.is_empty() {
        return "no pools".to_string();
    }
    if f.state == "panic" {
        let p = f.pools.get(f.active_pool as usize).unwrap_or(&f.pools[0]);
        return format!(
            "{} → below the panic threshold of {}%: failing open",
            count(p),
            f.panic_threshold
        );
    }
    let active = f.active_pool as usize;
    let mut parts: Vec<String> = f.pools.iter().take(active + 1).map(count).collect();
    let serving = f
        .pools
        .get(active)
        .is_some_and(|p| p.backends.iter().any(|b| b.effective_weight > 0));
    if !serving {
        parts.push("nothing serves".to_string());
    }
    parts.join(" → ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, members: &[(&str, u32)]) -> Pool {
        Pool {
            name: name.to_string(),
            backends: members
                .iter()
                .map(|(state, w)| PoolBackend {
                    state: state.to_string(),
                    effective_weight: *w,
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn why_names_the_serving_pool_and_the_ones_skipped() {
        let mut f = Frontend {
            state: "up".into(),
            pools: vec![
                pool("primary", &[("up", 100), ("down", 0)]),
                pool("fallback", &[("up", 0)]),
            ],
            ..Default::default()
        };
        assert_eq!(why(&f), "primary: 1 of 2 up");
        f.pools[0] = pool("primary", &[("down", 0), ("down", 0)]);
        f.pools[1] = pool("fallback", &[("up", 100)]);
        f.active_pool = 1;
        assert_eq!(why(&f), "primary: 0 of 2 up → fallback: 1 of 1 up");
        f.pools[1] = pool("fallback", &[("down", 0)]);
        assert_eq!(
            why(&f),
            "primary: 0 of 2 up → fallback: 0 of 1 up → nothing serves"
        );
        f.state = "panic".into();
        f.panic_threshold = 50;
        f.active_pool = 0;
        assert_eq!(
            why(&f),
            "primary: 0 of 2 up → below the panic threshold of 50%: failing open"
        );
    }

    #[test]
    fn buckets_come_from_the_vip_of_the_frontend() {
        let mut fs = vec![Frontend {
            name: "www".into(),
            pools: vec![Pool {
                name: "p".into(),
                backends: vec![
                    PoolBackend {
                        address: "10.0.0.2".into(),
                        ..Default::default()
                    },
                    PoolBackend {
                        address: "10.0.0.3".into(),
                        ..Default::default()
                    },
                ],
            }],
            ..Default::default()
        }];
        fs[0].pools[0].backends[0].buckets = Some(7);
        merge_buckets(&mut fs, None);
        assert_eq!(
            fs[0].pools[0].backends[0].buckets,
            Some(7),
            "maglevd's own answer stays"
        );
        assert_eq!(fs[0].pools[0].backends[1].buckets, None);
        let lb = vec![Vip {
            frontend: "www".into(),
            ases: vec![As {
                address: "10.0.0.2".into(),
                weight: Some(100),
                buckets: Some(65537),
            }],
            ..Default::default()
        }];
        merge_buckets(&mut fs, Some(&lb));
        let b: Vec<Option<u32>> = fs[0].pools[0].backends.iter().map(|b| b.buckets).collect();
        assert_eq!(b, [Some(65537), Some(0)]);
    }
}
