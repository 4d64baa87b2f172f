//! What VPP holds, assembled from `lb_vip_dump`, the unfiltered AS dump and
//! `show lb vips verbose` (the only place VPP reports a VIP's
//! `src_ip_sticky` and pool index). Assembly and parsing are pure;
//! [`read`] does the IO.

use std::collections::BTreeMap;
use std::net::IpAddr;

use maglev_vpp::lbcli::CliVip;
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
    /// The table length as the API reports it: modulo 65536.
    pub table_len_u16: u16,
    /// The true table length (`new_size` in the CLI); `None` when the CLI
    /// could not be read.
    pub table_len: Option<u32>,
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
                        table_len: Some(spec.new_flows_table_length),
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

/// A VIP's buckets per AS, for readers: VPP's own counts as last read.
pub type Buckets = std::sync::Arc<BTreeMap<IpAddr, u32>>;

impl ActualVip {
    /// Buckets per AS as VPP reported them (ASes without a count left
    /// out).
    pub fn read_buckets(&self) -> Buckets {
        std::sync::Arc::new(
            self.ases
                .iter()
                .filter_map(|(a, s)| s.buckets.map(|b| (*a, b)))
                .collect(),
        )
    }

    /// Buckets per AS as VPP builds them from the weights it holds now
    /// (VPP with per-AS weights builds exactly the predicted table; the
    /// real-VPP tests hold the prediction to it). `None` when a weight or
    /// the table length is unknown.
    pub fn predicted_buckets(&self) -> Option<Buckets> {
        let len = self.table_len?;
        let ases: Vec<(IpAddr, u8)> = self
            .ases
            .iter()
            .map(|(a, s)| s.weight.map(|w| (*a, w)))
            .collect::<Option<_>>()?;
        let p = maglev_table::predict(len, &ases);
        Some(std::sync::Arc::new(
            ases.iter()
                .map(|(a, _)| (*a, p.buckets.get(a).copied().unwrap_or(0)))
                .collect(),
        ))
    }
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
                table_len: c.and_then(|c| c.table_len),
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
            // Without the v2 dump the CLI still counts the buckets.
            let cli_buckets = || {
                cli.iter()
                    .find(|c| c.key == a.vip && !c.removed)?
                    .ases
                    .iter()
                    .find(|x| x.address == a.address && x.used)
                    .map(|x| x.buckets)
            };
            v.ases.insert(
                a.address,
                ActualAs {
                    weight: a.weight,
                    buckets: a.num_buckets.or_else(cli_buckets),
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
    let keys: Vec<VipKey> = vips.iter().map(|v| v.key).collect();
    let ases = lb.as_dump_of(&keys).await?;
    let cli = match lb.show_vips().await {
        Ok(cli) => cli,
        Err(e) if e.is_connection_error() => return Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read `show lb vips verbose`");
            Vec::new()
        }
    };
    Ok(assemble(&vips, &ases, &cli))
}
