//! The lb plugin's state and handler semantics, as in VPP master's
//! `src/plugins/lb/{api.c,lb.c}` (see `vpp-api/NOTES.md` §4): VIP keying and
//! the port-0 rule, encap and family checks, lazy AS deletion, garbage
//! collection, the Maglev table, and the byte-order quirks of the dumps.
//!
//! No IO here: the server decodes messages, calls these handlers with VPP's
//! uptime in seconds, and encodes what they return.

use std::net::IpAddr;

use maglev_vpp::binapi::{Address, AddressFamily, Prefix};
use maglev_vpp::maglev::{ip46, new_flow_table};

/// VPP's `VNET_API_ERROR_*` values used by lb.
pub mod rv {
    /// No such VIP or AS.
    pub const NO_SUCH_ENTRY: i32 = -6;
    /// Not a power of two.
    pub const INVALID_MEMORY_SIZE: i32 = -70;
    /// Per-port VIP type mismatch.
    pub const INVALID_ARGUMENT: i32 = -73;
    /// Already exists.
    pub const VALUE_EXIST: i32 = -81;
    /// Family does not fit the encap.
    pub const INVALID_ADDRESS_FAMILY: i32 = -97;
}

/// Seconds an unused AS must stay idle before collection (`LB_CONCURRENCY_TIMEOUT`).
pub const CONCURRENCY_TIMEOUT: u32 = 10;
/// Seconds between garbage-collection runs of one VIP (`LB_GARBAGE_RUN`).
pub const GARBAGE_RUN: u32 = 60;

/// `lb_vip_type_t`, in VPP's order (0 = IP6_GRE6 is also the fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VipType {
    /// ip6-gre6
    Ip6Gre6,
    /// ip6-gre4
    Ip6Gre4,
    /// ip4-gre6
    Ip4Gre6,
    /// ip4-gre4
    Ip4Gre4,
    /// ip4-l3dsr
    Ip4L3dsr,
    /// ip4-nat4
    Ip4Nat4,
    /// ip6-nat6
    Ip6Nat6,
}

impl VipType {
    /// The CLI name (`format_lb_vip_type`).
    pub fn name(&self) -> &'static str {
        match self {
            VipType::Ip6Gre6 => "ip6-gre6",
            VipType::Ip6Gre4 => "ip6-gre4",
            VipType::Ip4Gre6 => "ip4-gre6",
            VipType::Ip4Gre4 => "ip4-gre4",
            VipType::Ip4L3dsr => "ip4-l3dsr",
            VipType::Ip4Nat4 => "ip4-nat4",
            VipType::Ip6Nat6 => "ip6-nat6",
        }
    }

    fn is_ip4_vip(&self) -> bool {
        matches!(
            self,
            VipType::Ip4Gre6 | VipType::Ip4Gre4 | VipType::Ip4L3dsr | VipType::Ip4Nat4
        )
    }

    /// Whether ASes must be IPv4 (`lb_encap_is_ip4`).
    pub fn wants_ip4_as(&self) -> bool {
        matches!(
            self,
            VipType::Ip6Gre4 | VipType::Ip4Gre4 | VipType::Ip4L3dsr | VipType::Ip4Nat4
        )
    }

    /// The API encap value `lb_vip_dump` reports.
    pub fn api_encap(&self) -> u32 {
        match self {
            VipType::Ip6Gre4 | VipType::Ip4Gre4 => 0,
            VipType::Ip6Gre6 | VipType::Ip4Gre6 => 1,
            VipType::Ip4L3dsr => 2,
            VipType::Ip4Nat4 => 3,
            VipType::Ip6Nat6 => 4,
        }
    }
}

/// An application server of one VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct As {
    /// Address.
    pub address: IpAddr,
    /// Weight 0..=255 (the API does not range-check it).
    pub weight: u8,
    /// `LB_AS_FLAGS_USED`; false once deleted, until collected.
    pub used: bool,
    /// Uptime second of the deletion (`in_use_since` in dumps).
    pub last_used: u32,
    /// Global AS pool index (shown as `dpo:` in the CLI).
    pub index: u32,
    /// How many times its sticky entries were flushed.
    pub flushes: u32,
}

/// A VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    /// Pool index (the index of its stats counters).
    pub index: u32,
    /// Prefix address, host bits cleared.
    pub address: IpAddr,
    /// Prefix length as the API gives it (0..=32 for IPv4).
    pub plen: u8,
    /// 255 for all-port VIPs.
    pub protocol: u8,
    /// 0 = all ports.
    pub port: u16,
    /// Internal type (from family and encap).
    pub vtype: VipType,
    /// `src_ip_sticky`.
    pub src_ip_sticky: bool,
    /// New-flow table length.
    pub table_len: u32,
    /// False once deleted, until its ASes are collected.
    pub used: bool,
    /// ASes in pool order.
    pub ases: Vec<As>,
    /// The new-flow table (slot → index into `ases`), built on first use
    /// after a change. VPP rebuilds eagerly on every change; nothing can
    /// observe the difference, and bulk loads stay fast.
    table: std::cell::OnceCell<Vec<Option<usize>>>,
    /// Uptime second of the last GC run.
    pub last_gc: u32,
    /// DSCP (L3DSR only), masked to 6 bits.
    pub dscp: u8,
    /// srv_type as the buggy handler stores it.
    pub srv_type: u8,
    /// target_port as received (network order, never converted).
    pub target_port_raw: u16,
    /// The four per-VIP counters: existing session, first packet,
    /// untracked, no server.
    pub counters: [u64; 4],
    /// 26.06's table: every used AS one share, whatever its weight.
    pub legacy: bool,
}

impl Vip {
    /// Slots of the new-flow table pointing at `ases[i]`.
    pub fn buckets(&self, i: usize) -> u32 {
        self.table().iter().filter(|s| **s == Some(i)).count() as u32
    }

    /// The new-flow table: slot → index into `ases`; `None` is AS 0 (drop).
    pub fn table(&self) -> &[Option<usize>] {
        self.table.get_or_init(|| {
            let live: Vec<(usize, (IpAddr, u8))> = self
                .ases
                .iter()
                .enumerate()
                .filter(|(_, a)| a.used && a.weight > 0)
                .map(|(i, a)| (i, (a.address, if self.legacy { 1 } else { a.weight })))
                .collect();
            let input: Vec<(IpAddr, u8)> = live.iter().map(|(_, x)| *x).collect();
            new_flow_table(self.table_len, &input)
                .into_iter()
                .map(|slot| slot.map(|j| live[j].0))
                .collect()
        })
    }

    fn rebuild(&mut self) {
        self.table = std::cell::OnceCell::new();
    }

    fn find_as(&self, addr: &IpAddr) -> Option<usize> {
        self.ases.iter().position(|a| a.address == *addr)
    }
}

/// Global lb settings (`lb_conf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conf {
    /// GRE4 source.
    pub ip4_src: [u8; 4],
    /// GRE6 source.
    pub ip6_src: [u8; 16],
    /// Sticky buckets per worker.
    pub buckets: u32,
    /// Flow timeout in seconds.
    pub timeout: u32,
}

impl Default for Conf {
    /// VPP's values at start.
    fn default() -> Self {
        Conf {
            ip4_src: [255; 4],
            ip6_src: [255; 16],
            buckets: 1024,
            timeout: 40,
        }
    }
}

/// What a handler asks the server to do besides replying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fatal {
    /// Real VPP would die here (e.g. a 4-G-entry allocation).
    Crash(&'static str),
}

/// The lb plugin's state.
#[derive(Debug, Clone, Default)]
pub struct LbState {
    /// VIP pool; slot 0 is VPP's placeholder and stays `None`.
    pub vips: Vec<Option<Vip>>,
    free_vips: Vec<u32>,
    next_as_index: u32,
    /// Uptime second of the last GC scan: nothing can change within one.
    last_scan: Option<u32>,
    /// Global settings.
    pub conf: Conf,
    /// Acting as VPP 26.06 (lb API 1.1.0): no weights in the table.
    pub legacy: bool,
}

/// A VIP request's fields, as decoded.
#[derive(Debug, Clone)]
pub struct VipArgs {
    /// Prefix.
    pub pfx: Prefix,
    /// Protocol.
    pub protocol: u8,
    /// Port.
    pub port: u16,
    /// API encap value.
    pub encap: u32,
    /// DSCP.
    pub dscp: u8,
    /// srv type as the raw u32.
    pub srv_type: u32,
    /// target_port.
    pub target_port: u16,
    /// Table length.
    pub table_len: u32,
    /// src_ip_sticky (v2).
    pub src_ip_sticky: bool,
    /// Delete instead of add.
    pub is_del: bool,
}

fn decode_prefix(pfx: &Prefix) -> (IpAddr, u8) {
    let addr = pfx.address.to_ip();
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let plen = pfx.len.min(max);
    (mask(addr, plen), plen)
}

/// `ip46_prefix_normalize`: clears host bits.
fn mask(addr: IpAddr, plen: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if plen == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(plen))
            };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if plen == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(plen))
            };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

impl LbState {
    /// An empty lb plugin, as after VPP starts.
    pub fn new() -> LbState {
        LbState {
            vips: vec![None],
            free_vips: Vec::new(),
            next_as_index: 1,
            last_scan: None,
            conf: Conf::default(),
            legacy: false,
        }
    }

    /// Live VIPs (not deleted), in pool order.
    pub fn live_vips(&self) -> impl Iterator<Item = &Vip> {
        self.vips.iter().flatten().filter(|v| v.used)
    }

    /// Every VIP in the pool, deleted ones included.
    pub fn all_vips(&self) -> impl Iterator<Item = &Vip> {
        self.vips.iter().flatten()
    }

    fn find_vip(&self, addr: IpAddr, plen: u8, protocol: u8, port: u16) -> Option<usize> {
        self.vips.iter().position(|v| {
            v.as_ref().is_some_and(|v| {
                v.used
                    && v.address == addr
                    && v.plen == plen
                    && v.protocol == protocol
                    && v.port == port
            })
        })
    }

    fn lookup(&self, pfx: &Prefix, protocol: u8, port: u16) -> Option<usize> {
        let (addr, plen) = decode_prefix(pfx);
        let protocol = if port == 0 { 255 } else { protocol };
        self.find_vip(addr, plen, protocol, port)
    }

    /// `lb_conf`.
    pub fn conf(&mut self, ip4: [u8; 4], ip6: [u8; 16], buckets: u32, timeout: u32) -> i32 {
        let buckets = if buckets == u32::MAX {
            self.conf.buckets
        } else {
            buckets
        };
        let timeout = if timeout == u32::MAX {
            self.conf.timeout
        } else {
            timeout
        };
        // is_pow2(0) is true in vppinfra, so 0 gets through, as in VPP.
        if buckets != 0 && !buckets.is_power_of_two() {
            return rv::INVALID_MEMORY_SIZE;
        }
        self.conf = Conf {
            ip4_src: ip4,
            ip6_src: ip6,
            buckets,
            timeout,
        };
        0
    }

    /// `lb_add_del_vip` / `lb_add_del_vip_v2`.
    pub fn add_del_vip(&mut self, a: VipArgs, now: u32) -> Result<i32, Fatal> {
        let (addr, plen) = decode_prefix(&a.pfx);
        let protocol = if a.port == 0 { 255 } else { a.protocol };
        if a.is_del {
            let Some(i) = self.find_vip(addr, plen, protocol, a.port) else {
                return Ok(rv::NO_SUCH_ENTRY);
            };
            let vip = self.vips[i].as_mut().expect("found");
            // Deletion marks every AS unused, without flush.
            for asx in vip.ases.iter_mut().filter(|x| x.used) {
                asx.used = false;
                asx.last_used = now;
            }
            vip.used = false;
            vip.rebuild();
            return Ok(0);
        }
        let is_ip4 = a.pfx.address.af == AddressFamily::ADDRESS_IP4;
        let vtype = match (is_ip4, a.encap) {
            (true, 0) => VipType::Ip4Gre4,
            (true, 1) => VipType::Ip4Gre6,
            (true, 2) => VipType::Ip4L3dsr,
            (true, 3) => VipType::Ip4Nat4,
            (false, 0) => VipType::Ip6Gre4,
            (false, 4) => VipType::Ip6Nat6,
            // Anything else stays at type 0, IP6_GRE6.
            _ => VipType::Ip6Gre6,
        };
        if is_ip4 && !vtype.is_ip4_vip() {
            return Ok(rv::INVALID_ADDRESS_FAMILY);
        }
        if a.table_len == 0 {
            // is_pow2(0) passes and VPP allocates mask+1 = 2^32 entries.
            return Err(Fatal::Crash(
                "new_flows_table_length 0: VPP allocates a 4G-entry table and dies",
            ));
        }
        if !a.table_len.is_power_of_two() {
            return Ok(rv::INVALID_MEMORY_SIZE);
        }
        if self.find_vip(addr, plen, protocol, a.port).is_some() {
            return Ok(rv::VALUE_EXIST);
        }
        let same_prefix: Vec<&Vip> = self
            .live_vips()
            .filter(|v| v.address == addr && v.plen == plen)
            .collect();
        if a.port != 0 {
            if same_prefix.iter().any(|v| v.port == 0) {
                return Ok(rv::VALUE_EXIST);
            }
            if same_prefix.iter().any(|v| v.vtype != vtype) {
                return Ok(rv::INVALID_ARGUMENT);
            }
        } else if !same_prefix.is_empty() {
            return Ok(rv::VALUE_EXIST);
        }
        let index = self.free_vips.pop().unwrap_or_else(|| {
            self.vips.push(None);
            (self.vips.len() - 1) as u32
        });
        let mut vip = Vip {
            index,
            address: addr,
            plen,
            protocol,
            port: a.port,
            vtype,
            src_ip_sticky: a.src_ip_sticky,
            table_len: a.table_len,
            used: true,
            ases: Vec::new(),
            table: std::cell::OnceCell::new(),
            last_gc: now,
            dscp: a.dscp & 0x3f,
            // The handler copies the raw big-endian u32 into a u8.
            srv_type: (a.srv_type >> 24) as u8,
            target_port_raw: a.target_port.swap_bytes(),
            counters: [0; 4],
            legacy: self.legacy,
        };
        vip.rebuild();
        self.vips[index as usize] = Some(vip);
        Ok(0)
    }

    /// `lb_add_del_as` (`weight` = 100) / `lb_add_del_as_v2`.
    #[allow(clippy::too_many_arguments)]
    pub fn add_del_as(
        &mut self,
        pfx: &Prefix,
        protocol: u8,
        port: u16,
        address: &Address,
        weight: u8,
        is_del: bool,
        is_flush: bool,
        now: u32,
    ) -> i32 {
        let Some(vi) = self.lookup(pfx, protocol, port) else {
            return rv::NO_SUCH_ENTRY;
        };
        let addr = address.to_ip();
        let next_index = self.next_as_index;
        let vip = self.vips[vi].as_mut().expect("found");
        if is_del {
            let Some(i) = vip.find_as(&addr) else {
                return rv::NO_SUCH_ENTRY;
            };
            let asx = &mut vip.ases[i];
            if asx.used {
                asx.used = false;
                asx.last_used = now;
            }
            if is_flush {
                asx.flushes += 1;
            }
            vip.rebuild();
            return 0;
        }
        match vip.find_as(&addr) {
            Some(i) if vip.ases[i].used => return rv::VALUE_EXIST,
            Some(i) => {
                // A removed-but-not-collected AS comes back as the same object.
                let asx = &mut vip.ases[i];
                asx.used = true;
                asx.weight = weight;
                if is_flush {
                    asx.flushes += 1;
                }
            }
            None => {
                if addr.is_ipv4() != vip.vtype.wants_ip4_as() {
                    return rv::INVALID_ADDRESS_FAMILY;
                }
                vip.ases.push(As {
                    address: addr,
                    weight,
                    used: true,
                    last_used: 0,
                    index: next_index,
                    flushes: 0,
                });
                self.next_as_index += 1;
            }
        }
        vip.rebuild();
        0
    }

    /// `lb_as_set_weight`.
    #[allow(clippy::too_many_arguments)]
    pub fn set_weight(
        &mut self,
        pfx: &Prefix,
        protocol: u8,
        port: u16,
        address: &Address,
        weight: u8,
        is_flush: bool,
    ) -> i32 {
        let Some(vi) = self.lookup(pfx, protocol, port) else {
            return rv::NO_SUCH_ENTRY;
        };
        let addr = address.to_ip();
        let vip = self.vips[vi].as_mut().expect("found");
        let Some(i) = vip.find_as(&addr).filter(|i| vip.ases[*i].used) else {
            return rv::NO_SUCH_ENTRY;
        };
        vip.ases[i].weight = weight;
        if is_flush {
            vip.ases[i].flushes += 1;
        }
        vip.rebuild();
        0
    }

    /// Which VIPs an AS dump with this filter returns. An all-zero union
    /// means all; otherwise the raw union bytes are compared with VPP's
    /// internal form, where IPv4 sits at bytes 12..16, so an IPv4 filter
    /// never matches.
    pub fn as_dump_vips(&self, pfx: &Prefix, protocol: u8, port: u16) -> Vec<&Vip> {
        let raw = pfx.address.un.0;
        let all = raw.iter().all(|b| *b == 0);
        self.all_vips()
            .filter(|v| {
                all || (raw == ip46(&v.address) && protocol == v.protocol && port == v.port)
            })
            .collect()
    }

    /// Garbage collection: per VIP at most every [`GARBAGE_RUN`] s, drop ASes
    /// unused for over [`CONCURRENCY_TIMEOUT`] s; then free deleted VIPs
    /// without ASes. `force` ignores both timers.
    pub fn collect_garbage(&mut self, now: u32, force: bool) {
        if !force && self.last_scan == Some(now) {
            return;
        }
        self.last_scan = Some(now);
        for slot in self.vips.iter_mut() {
            let Some(vip) = slot else { continue };
            if !force && now <= vip.last_gc.wrapping_add(GARBAGE_RUN) {
                continue;
            }
            vip.last_gc = now;
            vip.ases.retain(|a| {
                a.used || !(force || now > a.last_used.wrapping_add(CONCURRENCY_TIMEOUT))
            });
            vip.rebuild();
        }
        for i in 1..self.vips.len() {
            if self.vips[i]
                .as_ref()
                .is_some_and(|v| !v.used && v.ases.is_empty())
            {
                self.vips[i] = None;
                self.free_vips.push(i as u32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pfx(s: &str, len: u8) -> Prefix {
        Prefix::new(s.parse().unwrap(), len)
    }

    fn addr(s: &str) -> Address {
        s.parse::<IpAddr>().unwrap().into()
    }

    fn vip(p: Prefix, protocol: u8, port: u16, encap: u32) -> VipArgs {
        VipArgs {
            pfx: p,
            protocol,
            port,
            encap,
            dscp: 0,
            srv_type: 0,
            target_port: 0,
            table_len: 1024,
            src_ip_sticky: false,
            is_del: false,
        }
    }

    #[test]
    fn upstream_weight_sequence() {
        let mut lb = LbState::new();
        let p = pfx("192.0.2.0", 24);
        assert_eq!(lb.add_del_vip(vip(p, 6, 80, 0), 0), Ok(0));
        for i in 1..=4 {
            let a = addr(&format!("10.0.0.{i}"));
            assert_eq!(lb.add_del_as(&p, 6, 80, &a, 100, false, false, 0), 0);
        }
        let counts = |lb: &LbState| -> Vec<u32> {
            let v = lb.live_vips().next().unwrap();
            (0..4).map(|i| v.buckets(i)).collect()
        };
        assert_eq!(counts(&lb), [256, 256, 256, 256]);
        assert_eq!(lb.set_weight(&p, 6, 80, &addr("10.0.0.1"), 50, false), 0);
        assert_eq!(counts(&lb), [150, 292, 291, 291]);
        assert_eq!(lb.set_weight(&p, 6, 80, &addr("10.0.0.2"), 0, false), 0);
        assert_eq!(counts(&lb), [208, 0, 408, 408]);
    }

    #[test]
    fn error_codes() {
        let mut lb = LbState::new();
        let p = pfx("192.0.2.10", 32);
        assert_eq!(
            lb.add_del_vip(vip(p, 6, 80, 4), 0),
            Ok(rv::INVALID_ADDRESS_FAMILY)
        );
        let mut bad = vip(p, 6, 80, 0);
        bad.table_len = 1000;
        assert_eq!(lb.add_del_vip(bad.clone(), 0), Ok(rv::INVALID_MEMORY_SIZE));
        bad.table_len = 0;
        assert!(lb.add_del_vip(bad, 0).is_err());
        assert_eq!(lb.add_del_vip(vip(p, 6, 80, 0), 0), Ok(0));
        assert_eq!(lb.add_del_vip(vip(p, 6, 80, 0), 0), Ok(rv::VALUE_EXIST));
        // UDP beside TCP is fine; all-port beside per-port is not.
        assert_eq!(lb.add_del_vip(vip(p, 17, 53, 0), 0), Ok(0));
        assert_eq!(lb.add_del_vip(vip(p, 0, 0, 0), 0), Ok(rv::VALUE_EXIST));
        // Per-port VIPs of one prefix share a type.
        assert_eq!(
            lb.add_del_vip(vip(p, 6, 443, 1), 0),
            Ok(rv::INVALID_ARGUMENT)
        );
        // AS family must match the encap.
        assert_eq!(
            lb.add_del_as(&p, 6, 80, &addr("2001:db8::1"), 100, false, false, 0),
            rv::INVALID_ADDRESS_FAMILY
        );
        assert_eq!(
            lb.add_del_as(&p, 6, 80, &addr("10.0.0.1"), 100, false, false, 0),
            0
        );
        assert_eq!(
            lb.add_del_as(&p, 6, 80, &addr("10.0.0.1"), 100, false, false, 0),
            rv::VALUE_EXIST
        );
        assert_eq!(
            lb.add_del_as(&p, 6, 81, &addr("10.0.0.1"), 100, false, false, 0),
            rv::NO_SUCH_ENTRY
        );
        // IPv6 VIP with NAT4 silently becomes GRE6.
        let p6 = pfx("2001:db8::80", 128);
        assert_eq!(lb.add_del_vip(vip(p6, 6, 80, 3), 0), Ok(0));
        assert_eq!(lb.live_vips().last().unwrap().vtype, VipType::Ip6Gre6);
    }

    #[test]
    fn lazy_deletion_and_gc() {
        let mut lb = LbState::new();
        let p = pfx("192.0.2.10", 32);
        lb.add_del_vip(vip(p, 6, 80, 0), 0).unwrap();
        let a = addr("10.0.0.1");
        assert_eq!(lb.add_del_as(&p, 6, 80, &a, 100, false, false, 0), 0);
        assert_eq!(lb.add_del_as(&p, 6, 80, &a, 0, true, false, 5), 0);
        // Removed but not collected: still listed, deleting again is a no-op,
        // set_weight fails, re-adding revives it.
        assert_eq!(lb.add_del_as(&p, 6, 80, &a, 0, true, false, 6), 0);
        assert_eq!(lb.set_weight(&p, 6, 80, &a, 10, false), rv::NO_SUCH_ENTRY);
        let v = lb.live_vips().next().unwrap();
        assert!(!v.ases[0].used);
        assert_eq!(v.buckets(0), 0);
        lb.collect_garbage(30, false); // GC interval not reached
        assert_eq!(lb.live_vips().next().unwrap().ases.len(), 1);
        lb.collect_garbage(61, false);
        assert!(lb.live_vips().next().unwrap().ases.is_empty());
        // VIP deletion: hidden at once, freed once its ASes are collected.
        assert_eq!(lb.add_del_as(&p, 6, 80, &a, 100, false, false, 61), 0);
        assert_eq!(
            lb.add_del_vip(
                VipArgs {
                    is_del: true,
                    ..vip(p, 6, 80, 0)
                },
                62
            ),
            Ok(0)
        );
        assert_eq!(lb.live_vips().count(), 0);
        assert_eq!(lb.all_vips().count(), 1);
        assert_eq!(
            lb.add_del_as(&p, 6, 80, &a, 100, false, false, 63),
            rv::NO_SUCH_ENTRY
        );
        lb.collect_garbage(200, false);
        assert_eq!(lb.all_vips().count(), 0);
    }

    #[test]
    fn as_dump_filter_quirk() {
        let mut lb = LbState::new();
        let p4 = pfx("192.0.2.10", 32);
        let p6 = pfx("2001:db8::80", 128);
        lb.add_del_vip(vip(p4, 6, 80, 0), 0).unwrap();
        lb.add_del_vip(vip(p6, 6, 80, 1), 0).unwrap();
        assert_eq!(lb.as_dump_vips(&pfx("::", 0), 0, 0).len(), 2);
        assert_eq!(
            lb.as_dump_vips(&p4, 6, 80).len(),
            0,
            "IPv4 filter never matches"
        );
        assert_eq!(lb.as_dump_vips(&p6, 6, 80).len(), 1);
    }

    #[test]
    fn port_zero_forces_any() {
        let mut lb = LbState::new();
        let p = pfx("192.0.2.10", 32);
        lb.add_del_vip(vip(p, 6, 0, 0), 0).unwrap();
        assert_eq!(lb.live_vips().next().unwrap().protocol, 255);
        assert_eq!(
            lb.add_del_as(&p, 17, 0, &addr("10.0.0.1"), 100, false, false, 0),
            0
        );
    }
}
