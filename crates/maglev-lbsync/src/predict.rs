//! Predicts VPP's Maglev new-flow table for a desired VIP and which AS a
//! new flow lands on, with VPP's own algorithm (the `maglev-table` crate).
//! Established flows follow VPP's sticky table instead.

use std::net::IpAddr;

pub use maglev_table::Prediction;

use crate::desired::DesiredVip;

/// The table VPP builds for `vip` once its ASes are as desired.
pub fn table(vip: &DesiredVip) -> Prediction {
    let ases: Vec<(IpAddr, u8)> = vip.ases.iter().map(|(a, d)| (*a, d.weight)).collect();
    maglev_table::predict(vip.table_len, &ases)
}

/// Which AS a new flow from `src` (source port `src_port`) to the VIP's
/// `dst_port` hits, and the slot.
pub fn lookup(
    vip: &DesiredVip,
    prediction: &Prediction,
    src: IpAddr,
    src_port: u16,
    dst_port: u16,
) -> (usize, Option<IpAddr>) {
    maglev_table::lookup(
        vip.key.address,
        vip.src_ip_sticky,
        prediction,
        src,
        src_port,
        dst_port,
    )
}
