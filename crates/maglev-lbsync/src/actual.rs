//! What VPP holds, assembled from `lb_vip_dump`, the unfiltered AS dump and
//! `show lb vips verbose` (the only place VPP reports a VIP's
//! `src_ip_sticky` and pool index). Assembly and parsing are pure;
//! [`read`] does the IO.

use std::collections::BTreeMap;
use std::net::IpAddr;

use maglev_vpp::{AsInfo, Encap, Error, LbApi, VipInfo, VipKey};

/// An active AS (removed-but-not-collected ones are left out: they are
/// not live).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActualAs {
    /// Weight (v2 VPP only).
    pub weight: Option<u8>,
    /// New-flow table slots (v2 VPP only).
    pub buckets: Option<u32>,
}

/// A VIP as VPP reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualVip {
    /// Key.
    pub key: VipKey,
    /// Encap.
    pub encap: Encap,
    /// The table length as VPP reports it: modulo 65536.
    pub table_len_u16: u16,
    /// From the CLI; `None` when the CLI output did not say.
    pub src_ip_sticky: Option<bool>,
    /// VPP's pool index (the stats counter index), from the CLI.
    pub index: Option<u32>,
    /// Active ASes by address.
    pub ases: BTreeMap<IpAddr, ActualAs>,
}

/// Every VIP VPP holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActualState {
    /// VIPs by key.
    pub vips: BTreeMap<VipKey, ActualVip>,
}

impl ActualState {
    /// Only the VIPs of `keys`.
    pub fn subset(&self, keys: &std::collections::BTreeSet<VipKey>) -> ActualState {
        ActualState {
            vips: keys
                .iter()
                .filter_map(|k| self.vips.get(k).map(|v| (*k, v.clone())))
                .collect(),
        }
    }

    /// What VPP holds once `op` succeeded, as the next dump would show it:
    /// the reconciler's cache between reads (it is VPP's only writer), and
    /// the model of the planner's tests. `v2` says whether dumps carry
    /// weights.
    pub fn apply(&mut self, op: &crate::plan::Op, v2: bool) {
        use crate::plan::Op;
        match op {
            Op::VipAdd(spec) => {
                self.vips.insert(
                    spec.key,
                    ActualVip {
                        key: spec.key,
                        encap: spec.encap,
                        table_len_u16: spec.new_flows_table_length as u16,
                        src_ip_sticky: Some(spec.src_ip_sticky),
                        index: None,
                        ases: BTreeMap::new(),
                    },
                );
            }
            Op::VipDel(key) => {
                self.vips.remove(key);
            }
            Op::AsAdd {
                vip,
                address,
                weight,
            } => {
                if let Some(v) = self.vips.get_mut(vip) {
                    v.ases.insert(
                        *address,
                        ActualAs {
                            weight: v2.then_some(*weight),
                            buckets: None,
                        },
                    );
                }
            }
            Op::AsDel { vip, address, .. } => {
                if let Some(v) = self.vips.get_mut(vip) {
                    v.ases.remove(address);
                }
            }
            Op::AsSetWeight {
                vip,
                address,
                weight,
                ..
            } => {
                if let Some(a) = self.vips.get_mut(vip).and_then(|v| v.ases.get_mut(address)) {
                    a.weight = Some(*weight);
                }
            }
        }
    }
}

/// One VIP of `show lb vips verbose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CliVip {
    /// Key (protocol 255 and port 0 for all-port VIPs).
    pub key: VipKey,
    /// Pool index.
    pub index: u32,
    /// `src_ip_sticky` shown.
    pub src_ip_sticky: bool,
    /// Marked ` removed`.
    pub removed: bool,
}

/// Parses `show lb vips verbose`. Each VIP block starts with
/// ` <type> [<index>] <prefix>[ src_ip_sticky][ removed]` and, for per-port
/// VIPs, has a `protocol:<p> port:<n>` line.
pub fn parse_show_vips(text: &str) -> Vec<CliVip> {
    let mut out: Vec<CliVip> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        let is_header = words.len() >= 3
            && (words[0].starts_with("ip4-") || words[0].starts_with("ip6-"))
            && words[1].starts_with('[')
            && words[1].ends_with(']');
        if is_header {
            let index = words[1].trim_matches(['[', ']']).parse().ok();
            let prefix = words[2]
                .split_once('/')
                .and_then(|(a, l)| Some((a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?)));
            if let (Some(index), Some((address, prefix_len))) = (index, prefix) {
                out.push(CliVip {
                    key: VipKey {
                        address,
                        prefix_len,
                        protocol: 255,
                        port: 0,
                    },
                    index,
                    src_ip_sticky: words[3..].contains(&"src_ip_sticky"),
                    removed: words[3..].contains(&"removed"),
                });
            }
            continue;
        }
        if let (Some(last), Some(p), Some(n)) = (
            out.last_mut(),
            t.strip_prefix("protocol:"),
            t.split_once(" port:").map(|(_, n)| n),
        ) {
            let proto = p.split_whitespace().next().and_then(|v| v.parse().ok());
            if let (Some(proto), Ok(port)) = (proto, n.trim().parse::<u16>()) {
                last.key.protocol = proto;
                last.key.port = port;
            }
        }
    }
    out
}

/// Puts the three sources together.
pub fn assemble(vips: &[VipInfo], ases: &[AsInfo], cli: &[CliVip]) -> ActualState {
    let mut state = ActualState::default();
    for v in vips {
        let c = cli.iter().find(|c| c.key == v.key && !c.removed);
        state.vips.insert(
            v.key,
            ActualVip {
                key: v.key,
                encap: v.encap,
                table_len_u16: v.flow_table_length,
                src_ip_sticky: c.map(|c| c.src_ip_sticky),
                index: c.map(|c| c.index),
                ases: BTreeMap::new(),
            },
        );
    }
    for a in ases.iter().filter(|a| a.used) {
        // ASes of deleted (hidden) VIPs are all unused; any other AS whose
        // VIP is not listed is ignored too.
        if let Some(v) = state.vips.get_mut(&a.vip) {
            v.ases.insert(
                a.address,
                ActualAs {
                    weight: a.weight,
                    buckets: a.num_buckets,
                },
            );
        }
    }
    state
}

/// Reads VPP's lb state. The CLI scrape is best effort: without it,
/// sticky changes cannot be seen and pool indexes are unknown.
pub async fn read(lb: &LbApi) -> Result<ActualState, Error> {
    let vips = lb.vip_dump().await?;
    let ases = lb.as_dump().await?;
    let cli = match lb.cli("show lb vips verbose").await {
        Ok(text) => parse_show_vips(&text),
        Err(e) if e.is_connection_error() => return Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read `show lb vips verbose`");
            Vec::new()
        }
    };
    Ok(assemble(&vips, &ases, &cli))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vpp_output() {
        let text = " ip4-gre4 [1] 192.0.2.10/32 src_ip_sticky\n  new_size:1024\n  protocol:6 port:80\n  counters:\n    packet from existing sessions: 0\n  #as:1\n    10.0.0.1 1024 buckets   0 flows  dpo:1 used\n\n ip6-gre6 [2] 2001:db8::/64\n  new_size:65536\n  counters:\n  #as:0\n\n ip4-gre4 [3] 192.0.2.11/32 removed\n  new_size:1024\n  protocol:17 port:53\n";
        let v = parse_show_vips(text);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].key, VipKey::host("192.0.2.10".parse().unwrap(), 6, 80));
        assert_eq!(
            (v[0].index, v[0].src_ip_sticky, v[0].removed),
            (1, true, false)
        );
        assert_eq!(
            v[1].key,
            VipKey {
                address: "2001:db8::".parse().unwrap(),
                prefix_len: 64,
                protocol: 255,
                port: 0
            }
        );
        assert!(!v[1].src_ip_sticky);
        assert!(v[2].removed);
        assert_eq!(v[2].key.port, 53);
    }
}
