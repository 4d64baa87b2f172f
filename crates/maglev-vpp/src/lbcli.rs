//! `show lb vips verbose`, parsed. The one place VPP reports a VIP's
//! `src_ip_sticky`, pool index and true table length (`new_size`; the API's
//! field is 16 bits), and on releases up to 26.06 the only place that
//! reports a VIP's protocol (their `lb_vip_dump` truncates it to 0).
//!
//! Both formats of the AS lines are understood:
//! - up to 26.06: `<addr> <n> buckets   <n> flows  dpo:<n> used|removed`
//! - master: `<addr> weight:<w> buckets:<n> flows:<n> dpo:<n> used|removed`

use std::net::IpAddr;

use crate::lb::{Encap, VipKey};

/// One AS line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CliAs {
    /// Address.
    pub address: IpAddr,
    /// Weight (master only).
    pub weight: Option<u8>,
    /// New-flow table slots pointing at it.
    pub buckets: u32,
    /// Sticky-table entries pointing at it.
    pub flows: u64,
    /// False once deleted (kept until garbage-collected).
    pub used: bool,
}

/// One VIP block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliVip {
    /// Key (protocol 255 and port 0 for all-port VIPs).
    pub key: VipKey,
    /// Encapsulation, from the VIP type (`ip4-gre4`, …).
    pub encap: Encap,
    /// Pool index (the stats counter index).
    pub index: u32,
    /// `src_ip_sticky` shown.
    pub src_ip_sticky: bool,
    /// Marked ` removed` (deleted, awaiting garbage collection).
    pub removed: bool,
    /// `new_size`: the true new-flow table length.
    pub table_len: Option<u32>,
    /// The per-VIP counters by name (`no server configured`, …).
    pub counters: Vec<(String, u64)>,
    /// AS lines.
    pub ases: Vec<CliAs>,
}

impl CliVip {
    /// A counter by its VPP name.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

fn encap_of_type(word: &str) -> Option<Encap> {
    Some(match word {
        "ip4-gre4" | "ip6-gre4" => Encap::Gre4,
        "ip4-gre6" | "ip6-gre6" => Encap::Gre6,
        "ip4-l3dsr" => Encap::L3dsr,
        "ip4-nat4" => Encap::Nat4,
        "ip6-nat6" => Encap::Nat6,
        _ => return None,
    })
}

fn parse_as(words: &[&str]) -> Option<CliAs> {
    let address: IpAddr = words.first()?.parse().ok()?;
    let field = |name: &str| {
        words
            .iter()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix(':'))
    };
    let used = match *words.last()? {
        "used" => true,
        "removed" => false,
        _ => return None,
    };
    let (weight, buckets, flows) = if let Some(b) = field("buckets") {
        (
            field("weight").and_then(|w| w.parse().ok()),
            b.parse().ok()?,
            field("flows")?.parse().ok()?,
        )
    } else {
        // `<n> buckets <n> flows`
        let at = |name: &str| {
            let i = words.iter().position(|w| *w == name)?;
            words.get(i.checked_sub(1)?)
        };
        (
            None,
            at("buckets")?.parse().ok()?,
            at("flows")?.parse().ok()?,
        )
    };
    Some(CliAs {
        address,
        weight,
        buckets,
        flows,
        used,
    })
}

/// Parses `show lb vips verbose`. Each VIP block starts with
/// ` <type> [<index>] <prefix>[ src_ip_sticky][ removed]`; per-port VIPs
/// have a `protocol:<p> port:<n>` line.
pub fn parse_show_vips(text: &str) -> Vec<CliVip> {
    let mut out: Vec<CliVip> = Vec::new();
    let mut in_counters = false;
    for line in text.lines() {
        let t = line.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        let header = (words.len() >= 3 && words[1].starts_with('[') && words[1].ends_with(']'))
            .then(|| encap_of_type(words[0]))
            .flatten();
        if let Some(encap) = header {
            in_counters = false;
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
                    encap,
                    index,
                    src_ip_sticky: words[3..].contains(&"src_ip_sticky"),
                    removed: words[3..].contains(&"removed"),
                    table_len: None,
                    counters: Vec::new(),
                    ases: Vec::new(),
                });
            }
            continue;
        }
        let Some(last) = out.last_mut() else {
            continue;
        };
        if let Some(n) = t.strip_prefix("new_size:") {
            last.table_len = n.trim().parse().ok();
        } else if let (Some(p), Some(n)) = (
            t.strip_prefix("protocol:"),
            t.split_once(" port:").map(|(_, n)| n),
        ) {
            let proto = p.split_whitespace().next().and_then(|v| v.parse().ok());
            if let (Some(proto), Ok(port)) = (proto, n.trim().parse::<u16>()) {
                last.key.protocol = proto;
                last.key.port = port;
            }
        } else if t == "counters:" {
            in_counters = true;
        } else if t.starts_with("#as:") {
            in_counters = false;
        } else if in_counters {
            if let Some((name, v)) = t.rsplit_once(": ") {
                if let Ok(v) = v.trim().parse() {
                    last.counters.push((name.to_string(), v));
                }
            }
        } else if let Some(a) = parse_as(&words) {
            last.ases.push(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_26_06_output() {
        let text = " ip4-gre4 [1] 192.0.2.10/32 src_ip_sticky\n  new_size:1024\n  protocol:6 port:80\n  counters:\n    packet from existing sessions: 0\n    first session packet: 7\n    untracked packet: 0\n    no server configured: 3\n  #as:2\n    10.0.0.1 1024 buckets   5 flows  dpo:1 used\n    10.0.0.2 0 buckets   0 flows  dpo:2  removed\n\n ip6-gre6 [2] 2001:db8::/64\n  new_size:65536\n  counters:\n  #as:0\n\n ip4-gre4 [3] 192.0.2.11/32 removed\n  new_size:1024\n  protocol:17 port:53\n";
        let v = parse_show_vips(text);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].key, VipKey::host("192.0.2.10".parse().unwrap(), 6, 80));
        assert_eq!(
            (v[0].index, v[0].src_ip_sticky, v[0].removed, v[0].encap),
            (1, true, false, Encap::Gre4)
        );
        assert_eq!(v[0].table_len, Some(1024));
        assert_eq!(v[0].counter("no server configured"), Some(3));
        assert_eq!(v[0].counter("first session packet"), Some(7));
        assert_eq!(
            v[0].ases,
            vec![
                CliAs {
                    address: "10.0.0.1".parse().unwrap(),
                    weight: None,
                    buckets: 1024,
                    flows: 5,
                    used: true
                },
                CliAs {
                    address: "10.0.0.2".parse().unwrap(),
                    weight: None,
                    buckets: 0,
                    flows: 0,
                    used: false
                }
            ]
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
        assert_eq!((v[1].encap, v[1].table_len), (Encap::Gre6, Some(65536)));
        assert!(!v[1].src_ip_sticky);
        assert!(v[2].removed);
        assert_eq!(v[2].key.port, 53);
    }

    #[test]
    fn parses_master_as_lines() {
        let text = " ip6-gre6 [0] 2001:db8::80/128\n  new_size:131072\n  protocol:6 port:443\n  counters:\n    no server configured: 0\n  #as:1\n    2001:db8::11 weight:100 buckets:131072 flows:2 dpo:3 used\n";
        let v = parse_show_vips(text);
        assert_eq!(v[0].table_len, Some(131072));
        assert_eq!(
            v[0].ases[0],
            CliAs {
                address: "2001:db8::11".parse().unwrap(),
                weight: Some(100),
                buckets: 131072,
                flows: 2,
                used: true
            }
        );
    }
}
