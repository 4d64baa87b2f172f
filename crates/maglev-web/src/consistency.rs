//! Whether maglevds that serve the same VIP (ECMP or anycast peers) hand
//! VPP the same Maglev table: a flow that lands on either must reach the
//! same backend. Compared per VIP by the buckets each application server
//! holds: VPP's own counts where VPP answers, else the table predicted from
//! the weights maglevd gives VPP.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::model::{Frontend, Maglevd};

/// One VIP served by two or more maglevds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VipConsistency {
    /// `prefix protocol port`, e.g. `203.0.113.80/32 tcp 443`.
    pub vip: String,
    /// The frontend name on each maglevd (maglevd → frontend).
    pub frontends: BTreeMap<String, String>,
    /// Where each maglevd's buckets came from: `vpp` or `predicted`.
    pub sources: BTreeMap<String, &'static str>,
    /// Whether every maglevd has the same buckets per server.
    pub consistent: bool,
    /// The servers whose buckets differ, each with its count per maglevd.
    pub differing: Vec<Difference>,
    /// Since when they differ (ms since the epoch). Peers catch up with a
    /// change within about a second; the page calls a divergence that
    /// young "settling", not "diverged".
    pub diverged_since_unix_ms: Option<i64>,
}

/// One application server whose buckets differ between maglevds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// Its address.
    pub address: String,
    /// The backend name(s) it has on the maglevds.
    pub backend: String,
    /// Buckets per maglevd (0: none or absent).
    pub buckets: BTreeMap<String, u32>,
}

fn protocol_name(p: u32) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        255 => "any".into(),
        n => n.to_string(),
    }
}

fn protocol_number(p: &str) -> u32 {
    match p {
        "tcp" => 6,
        "udp" => 17,
        _ => 255,
    }
}

/// A frontend's VIP key, as VPP's dump spells it.
fn key_of(f: &Frontend) -> String {
    let len = match f.address.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => 128,
        _ => 32,
    };
    let prefix = if f.address.contains('/') {
        f.address.clone()
    } else {
        format!("{}/{len}", f.address)
    };
    format!(
        "{prefix} {} {}",
        protocol_name(protocol_number(&f.protocol)),
        f.port
    )
}

/// The buckets each server gets on one maglevd for one frontend.
fn buckets_of(m: &Maglevd, f: &Frontend) -> (BTreeMap<String, u32>, &'static str) {
    if let Some(vip) =
        m.lb.as_deref()
            .and_then(|lb| lb.iter().find(|v| v.frontend == f.name))
    {
        if vip.ases.iter().all(|a| a.buckets.is_some()) {
            let b = vip
                .ases
                .iter()
                .filter(|a| a.buckets.unwrap_or(0) > 0)
                .map(|a| (a.address.clone(), a.buckets.unwrap_or(0)))
                .collect();
            return (b, "vpp");
        }
    }
    let mut ases: Vec<(IpAddr, u8)> = Vec::new();
    for b in f.pools.iter().flat_map(|p| &p.backends) {
        let Ok(ip) = b.address.parse::<IpAddr>() else {
            continue;
        };
        let w = b.effective_weight.min(100) as u8;
        match ases.iter_mut().find(|(a, _)| *a == ip) {
            Some(e) => e.1 = e.1.max(w),
            None => ases.push((ip, w)),
        }
    }
    // VPP is handed its servers in numeric order (the invariant that makes
    // peers agree), so predict in that order too.
    ases.sort_by_key(|(a, _)| *a);
    let len = if f.table_length == 0 {
        65_536
    } else {
        f.table_length
    };
    let p = maglev_table::predict(len, &ases);
    (
        p.buckets
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(a, n)| (a.to_string(), n))
            .collect(),
        "predicted",
    )
}

/// Compares every VIP that two or more connected maglevds serve.
pub fn compare(maglevds: &[Maglevd]) -> Vec<VipConsistency> {
    // VIP → (maglevd, frontend, buckets, source, names by address).
    type Seen<'a> = Vec<(
        &'a str,
        &'a str,
        BTreeMap<String, u32>,
        &'static str,
        BTreeMap<String, String>,
    )>;
    let mut by_vip: BTreeMap<String, Seen<'_>> = BTreeMap::new();
    for m in maglevds.iter().filter(|m| m.connected) {
        for f in &m.frontends {
            let (buckets, source) = buckets_of(m, f);
            let names = f
                .pools
                .iter()
                .flat_map(|p| &p.backends)
                .map(|b| (b.address.clone(), b.name.clone()))
                .collect();
            by_vip
                .entry(key_of(f))
                .or_default()
                .push((&m.name, &f.name, buckets, source, names));
        }
    }
    by_vip
        .into_iter()
        .filter(|(_, seen)| seen.len() > 1)
        .map(|(vip, seen)| {
            let mut addresses: Vec<&String> = seen.iter().flat_map(|s| s.2.keys()).collect();
            addresses.sort();
            addresses.dedup();
            let differing: Vec<Difference> = addresses
                .into_iter()
                .filter_map(|addr| {
                    let counts: BTreeMap<String, u32> = seen
                        .iter()
                        .map(|s| (s.0.to_string(), s.2.get(addr).copied().unwrap_or(0)))
                        .collect();
                    let first = counts.values().next().copied();
                    if counts.values().all(|n| Some(*n) == first) {
                        return None;
                    }
                    let mut names: Vec<&str> = seen
                        .iter()
                        .filter_map(|s| s.4.get(addr).map(String::as_str))
                        .collect();
                    names.sort();
                    names.dedup();
                    Some(Difference {
                        address: addr.clone(),
                        backend: names.join(","),
                        buckets: counts,
                    })
                })
                .collect();
            VipConsistency {
                diverged_since_unix_ms: None,
                consistent: differing.is_empty(),
                frontends: seen
                    .iter()
                    .map(|s| (s.0.to_string(), s.1.to_string()))
                    .collect(),
                sources: seen.iter().map(|s| (s.0.to_string(), s.3)).collect(),
                vip,
                differing,
            }
        })
        .collect()
}

/// Carries each divergence's start over from the previous comparison
/// (`now` for one that just began).
pub fn carry_since(new: &mut [VipConsistency], old: &[VipConsistency], now: i64) {
    for c in new.iter_mut().filter(|c| !c.consistent) {
        c.diverged_since_unix_ms = Some(
            old.iter()
                .find(|o| o.vip == c.vip)
                .and_then(|o| o.diverged_since_unix_ms)
                .unwrap_or(now),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{As, Pool, PoolBackend, Vip};

    fn maglevd(name: &str, weights: &[(&str, u32)], lb: bool) -> Maglevd {
        let f = Frontend {
            name: "www".into(),
            address: "203.0.113.80".into(),
            protocol: "tcp".into(),
            port: 443,
            table_length: 1024,
            pools: vec![Pool {
                name: "p".into(),
                backends: weights
                    .iter()
                    .map(|(a, w)| PoolBackend {
                        name: format!("b{a}"),
                        address: a.to_string(),
                        effective_weight: *w,
                        ..Default::default()
                    })
                    .collect(),
            }],
            ..Default::default()
        };
        let lb = lb.then(|| {
            let ases: Vec<(IpAddr, u8)> = weights
                .iter()
                .map(|(a, w)| (a.parse().unwrap(), *w as u8))
                .collect();
            let p = maglev_table::predict(1024, &ases);
            vec![Vip {
                frontend: "www".into(),
                prefix: "203.0.113.80/32".into(),
                protocol: 6,
                port: 443,
                table_length: 1024,
                ases: weights
                    .iter()
                    .map(|(a, _)| As {
                        address: a.to_string(),
                        weight: None,
                        buckets: Some(
                            p.buckets
                                .get(&a.parse::<IpAddr>().unwrap())
                                .copied()
                                .unwrap_or(0),
                        ),
                    })
                    .collect(),
            }]
        });
        Maglevd {
            name: name.into(),
            connected: true,
            frontends: vec![f],
            lb,
            ..Default::default()
        }
    }

    #[test]
    fn peers_with_the_same_weights_agree_and_an_override_is_named() {
        let same = [("10.0.0.2", 100), ("10.0.0.3", 100)];
        // One from VPP, one predicted: the same table.
        let c = compare(&[maglevd("a", &same, true), maglevd("b", &same, false)]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].vip, "203.0.113.80/32 tcp 443");
        assert!(c[0].consistent, "{c:?}");
        assert_eq!(c[0].sources["a"], "vpp");
        assert_eq!(c[0].sources["b"], "predicted");
        let c = compare(&[
            maglevd("a", &same, true),
            maglevd("b", &[("10.0.0.2", 100), ("10.0.0.3", 50)], true),
        ]);
        assert!(!c[0].consistent);
        let mut again = c.clone();
        carry_since(&mut again, &[], 5);
        assert_eq!(again[0].diverged_since_unix_ms, Some(5));
        let mut later = c.clone();
        carry_since(&mut later, &again, 9);
        assert_eq!(
            later[0].diverged_since_unix_ms,
            Some(5),
            "the start is kept"
        );
        let names: Vec<&str> = c[0].differing.iter().map(|d| d.backend.as_str()).collect();
        assert_eq!(names, ["b10.0.0.2", "b10.0.0.3"]);
        let d = &c[0].differing[1];
        assert!(d.buckets["a"] > d.buckets["b"], "{d:?}");
        // A VIP on one maglevd only, or a peer that is down: nothing to say.
        let mut down = maglevd("b", &same, true);
        down.connected = false;
        assert!(compare(&[maglevd("a", &same, true), down]).is_empty());
    }
}
