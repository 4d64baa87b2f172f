//! The debug CLI commands `cli_inband` answers, in VPP's own output format
//! (`format_lb_vip_detailed` / `format_lb_vip` in lb.c).

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::lb::{LbState, Vip};

/// The counter names VPP registers for every VIP, in index order.
pub const VIP_COUNTER_NAMES: [&str; 4] = [
    "packet from existing sessions",
    "first session packet",
    "untracked packet",
    "no server configured",
];

fn prefix(v: &Vip) -> String {
    format!("{}/{}", v.address, v.plen)
}

fn address(a: &IpAddr) -> String {
    a.to_string()
}

/// `show lb vips [verbose]`.
pub fn show_lb_vips(lb: &LbState, verbose: bool) -> String {
    let mut s = String::new();
    for v in lb.all_vips() {
        if verbose {
            let _ = write!(
                s,
                " {} [{}] {}{}{}\n  new_size:{}\n",
                v.vtype.name(),
                v.index,
                prefix(v),
                if v.src_ip_sticky {
                    " src_ip_sticky"
                } else {
                    ""
                },
                if v.used { "" } else { " removed" },
                v.table_len
            );
            if v.port != 0 {
                let _ = writeln!(s, "  protocol:{} port:{}", v.protocol, v.port);
            }
            let _ = writeln!(s, "  counters:");
            for (name, value) in VIP_COUNTER_NAMES.iter().zip(v.counters) {
                let _ = writeln!(s, "    {name}: {value}");
            }
            let _ = writeln!(s, "  #as:{}", v.ases.len());
            for (i, a) in v.ases.iter().enumerate() {
                let state = if a.used { "used" } else { " removed" };
                // 26.06's line, and master's with the weight.
                let _ = if lb.legacy {
                    writeln!(
                        s,
                        "    {} {} buckets   0 flows  dpo:{} {state}",
                        address(&a.address),
                        v.buckets(i),
                        a.index,
                    )
                } else {
                    writeln!(
                        s,
                        "    {} weight:{} buckets:{} flows:0 dpo:{} {state}",
                        address(&a.address),
                        a.weight,
                        v.buckets(i),
                        a.index,
                    )
                };
            }
        } else {
            let _ = write!(
                s,
                "{} {} new_size:{} #as:{}{}",
                v.vtype.name(),
                prefix(v),
                v.table_len,
                v.ases.len(),
                if v.used { "" } else { " removed" }
            );
            if v.port != 0 {
                let _ = write!(s, "  protocol:{} port:{} ", v.protocol, v.port);
            }
        }
        // vlib_cli_output(vm, "%U\n", ...)
        s.push('\n');
    }
    s
}

/// Runs one CLI command the simulator knows.
pub fn run(lb: &LbState, version: &str, command: &str) -> String {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["show", "lb", "vips"] => show_lb_vips(lb, false),
        ["show", "lb", "vips", "verbose"] => show_lb_vips(lb, true),
        ["show", "lb"] => {
            let c = &lb.conf;
            format!(
                " ip4-src-address: {}\n ip6-src-address: {}\n #vips: {}\n",
                std::net::Ipv4Addr::from(c.ip4_src),
                std::net::Ipv6Addr::from(c.ip6_src),
                lb.live_vips().count()
            )
        }
        ["show", "version"] => format!("vpp {version} built by maglev-vppsim (simulator)\n"),
        _ => format!("unknown input `{command}'\n"),
    }
}
