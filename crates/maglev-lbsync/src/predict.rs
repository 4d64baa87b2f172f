//! Predicts VPP's Maglev new-flow table for a desired VIP and which AS a
//! new flow lands on, with VPP's own algorithm (`maglev_vpp::maglev`).
//! Established flows follow VPP's sticky table instead.

use std::collections::BTreeMap;
use std::net::IpAddr;

use maglev_vpp::maglev::{flow_hash, new_flow_table};

use crate::desired::DesiredVip;

/// A VIP's predicted table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    /// Slot → AS (`None`: no live AS, VPP drops the flow).
    pub slots: Vec<Option<IpAddr>>,
    /// Slots per AS with weight > 0.
    pub buckets: BTreeMap<IpAddr, u32>,
}

/// The table VPP builds for `vip` once its ASes are as desired.
pub fn table(vip: &DesiredVip) -> Prediction {
    let live: Vec<(IpAddr, u8)> = vip
        .ases
        .iter()
        .filter(|(_, a)| a.weight > 0)
        .map(|(addr, a)| (*addr, a.weight))
        .collect();
    let slots: Vec<Option<IpAddr>> = new_flow_table(vip.table_len, &live)
        .into_iter()
        .map(|s| s.map(|i| live[i].0))
        .collect();
    let mut buckets: BTreeMap<IpAddr, u32> = live.iter().map(|(a, _)| (*a, 0)).collect();
    for a in slots.iter().flatten() {
        *buckets.entry(*a).or_default() += 1;
    }
    Prediction { slots, buckets }
}

/// Which AS a new flow from `src` (source port `src_port`) to the VIP's
/// `dst_port` hits, and the slot. Ports are ignored for src-ip-sticky VIPs
/// and for protocols without ports (pass 0).
pub fn lookup(
    vip: &DesiredVip,
    prediction: &Prediction,
    src: IpAddr,
    src_port: u16,
    dst_port: u16,
) -> (usize, Option<IpAddr>) {
    let (sp, dp) = if vip.src_ip_sticky {
        (0, 0)
    } else {
        (src_port, dst_port)
    };
    let hash = flow_hash(src, vip.key.address, sp, dp);
    let slot = (hash as usize) & (prediction.slots.len() - 1);
    (slot, prediction.slots[slot])
}
