//! VPP's Maglev new-flow table and flow hash, computed exactly as the lb
//! plugin does (`lb_vip_update_new_flow_table` in lb.c, `lb_node_get_hash`
//! in node.c; see `vpp-api/NOTES.md` §4.3), so a client can predict which
//! AS a new flow lands on. Pure and without dependencies, so tools that
//! only predict (maglevc) need neither the VPP client nor the reconciler.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::net::IpAddr;

/// A VIP's predicted table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    /// Slot → AS (`None`: no live AS, VPP drops the flow).
    pub slots: Vec<Option<IpAddr>>,
    /// Slots per AS with weight > 0.
    pub buckets: BTreeMap<IpAddr, u32>,
}

/// The table VPP builds for a VIP of `table_len` slots whose ASes have
/// these weights (those at 0 get no slot).
pub fn predict(table_len: u32, ases: &[(IpAddr, u8)]) -> Prediction {
    let live: Vec<(IpAddr, u8)> = ases.iter().copied().filter(|(_, w)| *w > 0).collect();
    let slots: Vec<Option<IpAddr>> = new_flow_table(table_len, &live)
        .into_iter()
        .map(|s| s.map(|i| live[i].0))
        .collect();
    let mut buckets: BTreeMap<IpAddr, u32> = live.iter().map(|(a, _)| (*a, 0)).collect();
    for a in slots.iter().flatten() {
        *buckets.entry(*a).or_default() += 1;
    }
    Prediction { slots, buckets }
}

/// Which AS a new flow from `src` (source port `src_port`) to `vip`'s
/// `dst_port` hits, and the slot. Ports are ignored for src-ip-sticky VIPs
/// and for protocols without ports (pass 0).
pub fn lookup(
    vip: IpAddr,
    src_ip_sticky: bool,
    prediction: &Prediction,
    src: IpAddr,
    src_port: u16,
    dst_port: u16,
) -> (usize, Option<IpAddr>) {
    let (sp, dp) = if src_ip_sticky {
        (0, 0)
    } else {
        (src_port, dst_port)
    };
    let hash = flow_hash(src, vip, sp, dp);
    let slot = (hash as usize) & (prediction.slots.len() - 1);
    (slot, prediction.slots[slot])
}

/// The 16-byte `ip46_address_t` form VPP stores: IPv4 as 12 zero bytes and
/// then the 4 address bytes.
pub fn ip46(addr: &IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[12..].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

/// `clib_xxhash` of one u64 (vppinfra/xxhash.h).
pub fn xxhash(key: u64) -> u64 {
    const P1: u64 = 11_400_714_785_074_694_791;
    const P2: u64 = 14_029_467_366_897_019_727;
    const P3: u64 = 1_609_587_929_392_839_161;
    const P4: u64 = 9_650_029_242_287_828_579;
    const P5: u64 = 2_870_177_450_012_600_261;
    let k1 = key.wrapping_mul(P2).rotate_left(31).wrapping_mul(P1);
    let mut h = 0x9e37_79b9_7f4a_7c13u64.wrapping_add(P5).wrapping_add(8) ^ k1;
    h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^= h >> 32;
    h
}

/// The new-flow table of a VIP: slot → index into `ases`, or `None` where
/// VPP would point at AS 0 (drop, "no server configured").
///
/// `ases` are the VIP's live ASes (used, weight > 0 or not: weight-0 ASes
/// simply get no entries) in any order; `table_len` must be a power of two.
/// The result does not depend on the order of `ases`.
pub fn new_flow_table(table_len: u32, ases: &[(IpAddr, u8)]) -> Vec<Option<usize>> {
    assert!(
        table_len.is_power_of_two(),
        "table length {table_len} is not a power of two"
    );
    let len = table_len as usize;
    let mask = u64::from(table_len - 1);
    let mut table: Vec<Option<usize>> = vec![None; len];
    // Entries (AS, r) for r in 0..weight, sorted by r, then by address:
    // round r lists, in address order, the ASes whose weight exceeds r.
    let mut order: Vec<usize> = (0..ases.len()).filter(|i| ases[*i].1 > 0).collect();
    order.sort_by_key(|i| ip46(&ases[*i].0));
    let total: usize = order.iter().map(|i| usize::from(ases[*i].1)).sum();
    if total == 0 {
        return table;
    }
    // With at least `len` entries the first round fills the table, so the
    // entries after the first `len` never get a slot and need no hash.
    let needed = total.min(len);
    let mut walk: Vec<(u64, u64, usize)> = Vec::with_capacity(needed);
    'rounds: for r in 0..=u8::MAX {
        for &i in &order {
            if ases[i].1 <= r {
                continue;
            }
            let addr = ip46(&ases[i].0);
            let lo = u64::from_le_bytes(addr[..8].try_into().expect("8 bytes"));
            let hi = u64::from_le_bytes(addr[8..].try_into().expect("8 bytes"));
            let seed = xxhash(lo ^ hi ^ u64::from(r));
            let skip = ((seed & 0xffff_ffff) | 1) & mask;
            let pos = (seed >> 32) & mask;
            walk.push((pos, skip, i));
            if walk.len() == needed {
                break 'rounds;
            }
        }
    }
    let mut filled = 0;
    loop {
        for (pos, skip, i) in walk.iter_mut() {
            loop {
                let p = *pos as usize;
                *pos = (*pos + *skip) & mask;
                if table[p].is_none() {
                    table[p] = Some(*i);
                    break;
                }
            }
            filled += 1;
            if filled == len {
                return table;
            }
        }
    }
}

/// Slots per AS of a table from [`new_flow_table`], indexed like `ases`.
pub fn bucket_counts(table: &[Option<usize>], n_ases: usize) -> Vec<u32> {
    let mut counts = vec![0u32; n_ases];
    for i in table.iter().flatten() {
        counts[*i] += 1;
    }
    counts
}

/// CRC32C (Castagnoli) of one u64 fed as 8 little-endian bytes, continuing
/// from `crc` with no pre- or post-inversion: the `_mm_crc32_u64` step VPP's
/// flow hash chains.
fn crc32c_u64(crc: u32, value: u64) -> u32 {
    let mut crc = crc;
    for byte in value.to_le_bytes() {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// VPP's flow hash for a new flow (x86 with SSE4.2 or ARM with CRC), the
/// index into the new-flow table being `hash & (len - 1)`. Ports are 0 for
/// protocols without ports and for src-ip-sticky VIPs.
pub fn flow_hash(src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16) -> u32 {
    // The node loads the network-order ports as raw u16s (on a little-endian
    // host that byte-swaps them) and combines them as (sport << 16) | dport.
    let sp = u64::from(src_port.swap_bytes());
    let dp = u64::from(dst_port.swap_bytes());
    let ports = (sp << 16) | dp;
    let keys: [u64; 5] = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&s.octets());
            b[4..].copy_from_slice(&d.octets());
            [u64::from_le_bytes(b), ports, 0, 0, 0]
        }
        _ => {
            let s = ip46(&src);
            let d = ip46(&dst);
            let half = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
            [
                half(&s[..8]),
                half(&s[8..]),
                half(&d[..8]),
                half(&d[8..]),
                ports,
            ]
        }
    };
    keys.iter().fold(0, |crc, k| crc32c_u64(crc, *k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ases(weights: &[u8]) -> Vec<(IpAddr, u8)> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("10.0.0.{}", i + 1).parse().unwrap(), *w))
            .collect()
    }

    /// The algorithm as NOTES.md §4.3 states it, without shortcuts.
    fn reference(table_len: u32, ases: &[(IpAddr, u8)]) -> Vec<Option<usize>> {
        let mask = u64::from(table_len - 1);
        let mut entries: Vec<(u8, [u8; 16], usize)> = Vec::new();
        for (i, (addr, w)) in ases.iter().enumerate() {
            for r in 0..*w {
                entries.push((r, ip46(addr), i));
            }
        }
        let mut table = vec![None; table_len as usize];
        if entries.is_empty() {
            return table;
        }
        entries.sort();
        let mut walk: Vec<(u64, u64, usize)> = entries
            .iter()
            .map(|(r, a, i)| {
                let lo = u64::from_le_bytes(a[..8].try_into().unwrap());
                let hi = u64::from_le_bytes(a[8..].try_into().unwrap());
                let seed = xxhash(lo ^ hi ^ u64::from(*r));
                ((seed >> 32) & mask, ((seed & 0xffff_ffff) | 1) & mask, *i)
            })
            .collect();
        let mut filled = 0;
        loop {
            for (pos, skip, i) in walk.iter_mut() {
                loop {
                    let p = *pos as usize;
                    *pos = (*pos + *skip) & mask;
                    if table[p].is_none() {
                        table[p] = Some(*i);
                        break;
                    }
                }
                filled += 1;
                if filled == table.len() {
                    return table;
                }
            }
        }
    }

    #[test]
    fn matches_the_reference_algorithm() {
        // Few entries (many rounds), about one round, and far more entries
        // than slots (the first round stops early); IPv4 and IPv6 mixed.
        let mut seed = 0x1234_5678u64;
        let mut next = || {
            seed = xxhash(seed);
            seed
        };
        for (len, n) in [(64u32, 3usize), (256, 10), (1024, 64), (16, 40), (4096, 7)] {
            let ases: Vec<(IpAddr, u8)> = (0..n)
                .map(|i| {
                    let r = next();
                    let addr: IpAddr = if r % 3 == 0 {
                        std::net::Ipv6Addr::from(u128::from(r) << 64 | i as u128).into()
                    } else {
                        std::net::Ipv4Addr::from((r as u32) ^ i as u32).into()
                    };
                    (addr, (next() % 101) as u8)
                })
                .collect();
            assert_eq!(
                new_flow_table(len, &ases),
                reference(len, &ases),
                "len {len}, {n} ASes"
            );
        }
    }

    #[test]
    fn xxhash_vectors() {
        assert_eq!(xxhash(0), 0x6f06_f901_bfa2_7892);
        assert_eq!(xxhash(1), 0x4a67_7953_7063_9ba2);
    }

    #[test]
    fn upstream_bucket_vectors() {
        // test_lb_as_set_weight in VPP's test_lb.py.
        for (weights, want) in [
            ([100, 100, 100, 100], [256, 256, 256, 256]),
            ([50, 100, 100, 100], [150, 292, 291, 291]),
            ([50, 0, 100, 100], [208, 0, 408, 408]),
        ] {
            let a = ases(&weights);
            let table = new_flow_table(1024, &a);
            assert_eq!(bucket_counts(&table, a.len()), want, "{weights:?}");
        }
    }

    #[test]
    fn first_slots_match_vpp() {
        let a = ases(&[50, 100, 100, 100]);
        let table = new_flow_table(1024, &a);
        let first: Vec<usize> = table[..16].iter().map(|s| s.unwrap() + 1).collect();
        assert_eq!(first, [4, 4, 4, 4, 3, 3, 2, 4, 1, 3, 3, 1, 4, 1, 2, 3]);
    }

    #[test]
    fn order_of_ases_does_not_matter() {
        let mut a = ases(&[10, 20, 30]);
        let t1 = new_flow_table(256, &a);
        a.reverse();
        let t2 = new_flow_table(256, &a);
        let name = |t: &[Option<usize>], a: &[(IpAddr, u8)]| -> Vec<IpAddr> {
            t.iter().map(|s| a[s.unwrap()].0).collect()
        };
        assert_eq!(name(&t1, &ases(&[10, 20, 30])), name(&t2, &a));
    }

    #[test]
    fn empty_and_zero_weight_tables_drop() {
        assert!(new_flow_table(64, &[]).iter().all(Option::is_none));
        assert!(new_flow_table(64, &ases(&[0, 0]))
            .iter()
            .all(Option::is_none));
    }

    #[test]
    fn flow_hash_check_value() {
        let h = flow_hash(
            "198.51.100.7".parse().unwrap(),
            "192.0.2.10".parse().unwrap(),
            40000,
            80,
        );
        assert_eq!(h, 0x4659_ebf1);
        assert_eq!(h & 1023, 1009);
    }
}
