//! The planner: (desired, actual) → the ordered VPP calls that make actual
//! equal desired. Pure.
//!
//! Rules:
//! - a full sync creates, updates and deletes; a per-VIP sync never deletes
//!   a VIP;
//! - a VIP whose immutable attributes differ (encap, `src_ip_sticky`,
//!   table length) is torn down (ASes deleted with flush, VIP deleted) and
//!   re-created;
//! - a stale VIP (full sync only): its ASes deleted with flush, then it;
//! - stale VIPs are deleted before anything is created;
//! - within a VIP, make before break: raises, then lowerings, then
//!   flushes, then removals; within each, numeric address order, IPv4
//!   before IPv6;
//! - a weight call whenever flush is wanted, even at the right weight;
//! - without VPP's v2 messages: weight 0 ⇒ delete the AS (flushing only
//!   when flush is wanted), weight > 0 ⇒ add it; weights cannot change.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::IpAddr;

use maglev_vpp::{Encap, VipKey, VipSpec};

use crate::actual::{ActualState, ActualVip};
use crate::desired::{DesiredState, DesiredVip};

/// One VPP call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Create a VIP.
    VipAdd(VipSpec),
    /// Delete a VIP.
    VipDel(VipKey),
    /// Add an AS.
    AsAdd {
        /// VIP.
        vip: VipKey,
        /// AS address.
        address: IpAddr,
        /// Weight (ignored by VPP without v2).
        weight: u8,
    },
    /// Delete an AS.
    AsDel {
        /// VIP.
        vip: VipKey,
        /// AS address.
        address: IpAddr,
        /// Evict its sticky entries.
        flush: bool,
    },
    /// Set an AS's weight (v2).
    AsSetWeight {
        /// VIP.
        vip: VipKey,
        /// AS address.
        address: IpAddr,
        /// New weight.
        weight: u8,
        /// Evict its sticky entries.
        flush: bool,
    },
}

impl Op {
    /// The VIP the call is about.
    pub fn vip(&self) -> VipKey {
        match self {
            Op::VipAdd(s) => s.key,
            Op::VipDel(k) => *k,
            Op::AsAdd { vip, .. } | Op::AsDel { vip, .. } | Op::AsSetWeight { vip, .. } => *vip,
        }
    }
}

fn encap_name(e: Encap) -> String {
    match e {
        Encap::Gre4 => "gre4".into(),
        Encap::Gre6 => "gre6".into(),
        Encap::L3dsr => "l3dsr".into(),
        Encap::Nat4 => "nat4".into(),
        Encap::Nat6 => "nat6".into(),
        Encap::Other(v) => format!("encap{v}"),
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::VipAdd(s) => write!(
                f,
                "vip-add {} encap {} src-ip-sticky {} table-length {}",
                s.key,
                encap_name(s.encap),
                s.src_ip_sticky,
                s.new_flows_table_length
            ),
            Op::VipDel(k) => write!(f, "vip-del {k}"),
            Op::AsAdd {
                vip,
                address,
                weight,
            } => write!(f, "as-add {vip} {address} weight {weight}"),
            Op::AsDel {
                vip,
                address,
                flush,
            } => write!(
                f,
                "as-del {vip} {address}{}",
                if *flush { " flush" } else { "" }
            ),
            Op::AsSetWeight {
                vip,
                address,
                weight,
                flush,
            } => write!(
                f,
                "as-set-weight {vip} {address} weight {weight}{}",
                if *flush { " flush" } else { "" }
            ),
        }
    }
}

/// Which VIPs a sync covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every VIP, stale ones deleted.
    All,
    /// These VIPs only; nothing is deleted but their ASes.
    Vips(BTreeSet<VipKey>),
}

impl Scope {
    /// Every value [`Scope::label`] takes.
    pub const LABELS: [&'static str; 2] = ["all", "vip"];

    /// The label used in statistics: `all` or `vip`.
    pub fn label(&self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Vips(_) => "vip",
        }
    }
}

/// What the connected VPP can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `lb_add_del_as_v2`, `lb_as_set_weight`, `lb_as_v2_dump`.
    pub v2: bool,
}

/// Counts of a plan (or of what was applied), by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// VIPs created.
    pub vip_added: u64,
    /// VIPs deleted.
    pub vip_removed: u64,
    /// ASes added.
    pub as_added: u64,
    /// ASes deleted.
    pub as_removed: u64,
    /// Weight calls.
    pub as_weight_updated: u64,
}

impl SyncStats {
    /// Counts one call.
    pub fn count(&mut self, op: &Op) {
        match op {
            Op::VipAdd(_) => self.vip_added += 1,
            Op::VipDel(_) => self.vip_removed += 1,
            Op::AsAdd { .. } => self.as_added += 1,
            Op::AsDel { .. } => self.as_removed += 1,
            Op::AsSetWeight { .. } => self.as_weight_updated += 1,
        }
    }

    /// (kind label, count) pairs, for metrics.
    pub fn kinds(&self) -> [(&'static str, u64); 5] {
        [
            ("vip_added", self.vip_added),
            ("vip_removed", self.vip_removed),
            ("as_added", self.as_added),
            ("as_removed", self.as_removed),
            ("as_weight_updated", self.as_weight_updated),
        ]
    }
}

/// An ordered list of calls, with notes on decisions worth logging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The calls, in order.
    pub ops: Vec<Op>,
    /// Why VIPs are re-created, what cannot be done on this VPP…
    pub notes: Vec<String>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Counts by kind.
    pub fn stats(&self) -> SyncStats {
        let mut s = SyncStats::default();
        for op in &self.ops {
            s.count(op);
        }
        s
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.notes {
            writeln!(f, "# {n}")?;
        }
        for op in &self.ops {
            writeln!(f, "{op}")?;
        }
        Ok(())
    }
}

/// Which weight-0 ASes have had their flush delivered.
///
/// Flush is wanted for as long as a backend is down (or disabled), but it
/// only needs to happen once per episode: after it, no new flow can pick a
/// weight-0 AS. The ledger remembers delivered flushes, so a second sync
/// sends nothing, until the AS gets weight again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushLedger(HashSet<(VipKey, IpAddr)>);

impl FlushLedger {
    /// Drops wanted flushes that were delivered already, and forgets ASes
    /// that no longer want one (they got weight back, or drain instead).
    pub fn settle(&mut self, desired: &mut DesiredState) {
        self.0.retain(|(vip, address)| {
            desired
                .vips
                .get(vip)
                .and_then(|v| v.ases.get(address))
                .is_some_and(|a| a.weight == 0 && a.flush)
        });
        for (key, vip) in desired.vips.iter_mut() {
            for (address, want) in vip.ases.iter_mut() {
                if want.flush && self.0.contains(&(*key, *address)) {
                    want.flush = false;
                }
            }
        }
    }

    /// Records a call that succeeded.
    pub fn record(&mut self, op: &Op) {
        match op {
            // A fresh AS at weight 0 has nothing to flush either.
            Op::AsSetWeight {
                vip,
                address,
                weight: 0,
                flush: true,
            }
            | Op::AsDel {
                vip,
                address,
                flush: true,
            }
            | Op::AsAdd {
                vip,
                address,
                weight: 0,
            } => {
                self.0.insert((*vip, *address));
            }
            Op::AsSetWeight { vip, address, .. } | Op::AsAdd { vip, address, .. } => {
                self.0.remove(&(*vip, *address));
            }
            Op::VipDel(key) => self.0.retain(|(vip, _)| vip != key),
            _ => {}
        }
    }

    /// Forgets everything (a restarted VPP has no sticky state to flush,
    /// and flushing again is harmless).
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

fn spec(d: &DesiredVip) -> VipSpec {
    VipSpec {
        key: d.key,
        encap: d.encap,
        src_ip_sticky: d.src_ip_sticky,
        new_flows_table_length: d.table_len,
    }
}

/// Why an existing VIP must be re-created, if it must.
fn immutable_mismatch(d: &DesiredVip, a: &ActualVip) -> Option<String> {
    if a.encap != d.encap {
        return Some(format!(
            "encap {} -> {}",
            encap_name(a.encap),
            encap_name(d.encap)
        ));
    }
    if let Some(sticky) = a.src_ip_sticky {
        if sticky != d.src_ip_sticky {
            return Some(format!("src-ip-sticky {sticky} -> {}", d.src_ip_sticky));
        }
    }
    // The CLI's new_size is the true length; the API's field is 16 bits
    // (65536 and 131072 both read 0), so it is the fallback only.
    match a.table_len {
        Some(len) if len != d.table_len => {
            return Some(format!("table length {len} -> {}", d.table_len));
        }
        None if a.table_len_u16 != d.table_len as u16 => {
            return Some(format!(
                "table length {} -> {}",
                a.table_len_u16, d.table_len
            ));
        }
        _ => {}
    }
    None
}

fn create(d: &DesiredVip, caps: Capabilities, plan: &mut Plan) {
    plan.ops.push(Op::VipAdd(spec(d)));
    for (address, want) in &d.ases {
        // A new AS has no sticky entries: nothing to flush.
        if caps.v2 || want.weight > 0 {
            plan.ops.push(Op::AsAdd {
                vip: d.key,
                address: *address,
                weight: want.weight,
            });
        }
    }
}

fn update(d: &DesiredVip, a: &ActualVip, caps: Capabilities, plan: &mut Plan) {
    // Make before break: VPP rebuilds the table after every call, so every
    // raise goes first, then the lowerings (flushing ones last, once the
    // table already points elsewhere), then removals. Failing over the
    // other way round leaves a moment with no server at all.
    let mut raises = Vec::new();
    let mut lowers = Vec::new();
    let mut flushes = Vec::new();
    for (address, want) in &d.ases {
        match a.ases.get(address) {
            None if caps.v2 || want.weight > 0 => raises.push(Op::AsAdd {
                vip: d.key,
                address: *address,
                weight: want.weight,
            }),
            None => {}
            Some(have) if caps.v2 && (have.weight != Some(want.weight) || want.flush) => {
                let op = Op::AsSetWeight {
                    vip: d.key,
                    address: *address,
                    weight: want.weight,
                    flush: want.flush,
                };
                if want.flush {
                    flushes.push(op);
                } else if have.weight.is_some_and(|w| want.weight < w) {
                    lowers.push(op);
                } else {
                    raises.push(op);
                }
            }
            Some(_) if caps.v2 => {}
            Some(_) if want.weight == 0 => {
                let op = Op::AsDel {
                    vip: d.key,
                    address: *address,
                    flush: want.flush,
                };
                if want.flush {
                    flushes.push(op);
                } else {
                    lowers.push(op);
                }
            }
            Some(_) => {}
        }
    }
    plan.ops.extend(raises);
    plan.ops.extend(lowers);
    plan.ops.extend(flushes);
    for address in a.ases.keys().filter(|x| !d.ases.contains_key(*x)) {
        plan.ops.push(Op::AsDel {
            vip: d.key,
            address: *address,
            flush: false,
        });
    }
}

fn tear_down(a: &ActualVip, plan: &mut Plan) {
    for address in a.ases.keys() {
        plan.ops.push(Op::AsDel {
            vip: a.key,
            address: *address,
            flush: true,
        });
    }
    plan.ops.push(Op::VipDel(a.key));
}

/// The calls that make VPP match `desired` within `scope`.
pub fn plan(
    desired: &DesiredState,
    actual: &ActualState,
    scope: &Scope,
    caps: Capabilities,
) -> Plan {
    let mut plan = Plan::default();
    let in_scope = |k: &VipKey| match scope {
        Scope::All => true,
        Scope::Vips(keys) => keys.contains(k),
    };
    // Stale VIPs go first: VPP refuses a per-port VIP while an all-port
    // one holds the address (-81), and mixed encaps on one address (-73).
    // `apply` keeps the calls of one address in this order.
    if *scope == Scope::All {
        for (key, a) in &actual.vips {
            if !desired.vips.contains_key(key) {
                plan.notes.push(format!("delete stale VIP {key}"));
                tear_down(a, &mut plan);
            }
        }
    }
    for (key, d) in desired.vips.iter().filter(|(k, _)| in_scope(k)) {
        match actual.vips.get(key) {
            None => create(d, caps, &mut plan),
            Some(a) => match immutable_mismatch(d, a) {
                Some(why) => {
                    plan.notes
                        .push(format!("re-create VIP {key} of {}: {why}", d.frontend));
                    tear_down(a, &mut plan);
                    create(d, caps, &mut plan);
                }
                None => update(d, a, caps, &mut plan),
            },
        }
    }
    plan
}

#[cfg(test)]
mod labels {
    use super::Scope;

    #[test]
    fn scope_labels_list_every_label() {
        // Metrics create a zero series per entry of LABELS; a scope whose
        // label is missing there would appear only with its first failure.
        for scope in [Scope::All, Scope::Vips(Default::default())] {
            assert!(Scope::LABELS.contains(&scope.label()), "{scope:?}");
        }
        assert_eq!(Scope::LABELS.len(), 2);
    }
}
