//! Fuzz targets: each takes arbitrary bytes and must neither panic, hang
//! nor grow without bound, whatever they are. `main.rs` drives them.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::Write as _;

use maglev_vpp::binapi::*;
use maglev_vpp::wire::{decode_message, peek_msg_id, Message};

/// A fuzz target: a name (its corpus folder), the function, and seeds
/// made in code (binary formats) besides the corpus files.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Corpus folder under `fuzz/corpus`.
    pub name: &'static str,
    /// Runs one input.
    pub run: fn(&[u8]),
    /// Seeds built from the real encoders.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

fn no_seeds() -> Vec<Vec<u8>> {
    Vec::new()
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "config",
        run: config,
        seeds: no_seeds,
    },
    Target {
        name: "frame",
        run: frame,
        seeds: frame_seeds,
    },
    Target {
        name: "stats",
        run: stats,
        seeds: stats_seeds,
    },
    Target {
        name: "lbcli",
        run: lbcli,
        seeds: no_seeds,
    },
    Target {
        name: "agent",
        run: agent,
        seeds: no_seeds,
    },
    Target {
        name: "http",
        run: http,
        seeds: no_seeds,
    },
];

/// `maglev_config::load_str` on the bytes as text.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = maglev_config::load_str(&text, "fuzz.yaml");
}

fn decode_as<M: Message + std::fmt::Debug>(payload: &[u8]) {
    if let Ok((_, m)) = decode_message::<M>(payload) {
        let _ = format!("{m:?}");
    }
}

/// Splits the bytes into frames as the client does, and decodes every
/// payload as each message the client reads.
pub fn frame(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((payload, used))) = maglev_vpp::frame::next_frame(rest) {
        let _ = peek_msg_id(payload);
        decode_as::<SockclntCreateReply>(payload);
        decode_as::<ControlPingReply>(payload);
        decode_as::<ShowVersionReply>(payload);
        decode_as::<CliInbandReply>(payload);
        decode_as::<LbVipDetails>(payload);
        decode_as::<LbAsDetails>(payload);
        decode_as::<LbAsV2Details>(payload);
        decode_as::<LbConfGetReply>(payload);
        decode_as::<ShowThreadsReply>(payload);
        decode_as::<ApiVersionsReply>(payload);
        decode_as::<MemclntKeepalive>(payload);
        rest = &rest[used..];
    }
}

/// Reads the bytes as a stats segment (written to a file, as VPP's memfd
/// is) and asks for what maglevd reads.
pub fn stats(data: &[u8]) {
    let Ok(mut f) = tempfile::tempfile() else {
        return;
    };
    if f.write_all(data).is_err() {
        return;
    }
    if let Ok(mut c) = maglev_vpp::stats::StatsClient::from_file(f) {
        let _ = c.boottime();
        let _ = c.lb_vip_counters();
        let _ = c.combined_counter("/if/rx");
    }
}

/// An agent check's reply (it comes from the backend), parsed and applied.
pub fn agent(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    if let Ok(r) = maglev_health::agent::parse_reply(&line) {
        let s = maglev_health::AgentState::default().apply(&r);
        assert!(s.percent <= 100, "{line:?} gave {s:?}");
        let _ = s.describe();
    }
}

/// A backend's answer to an HTTP check, read as the probe reads it, with
/// and without the body.
pub fn http(data: &[u8]) {
    let _ = maglev_health::probe::read_http_reply(data, false);
    if let Ok((_, Some(kept))) = maglev_health::probe::read_http_reply(data, true) {
        assert!(kept <= 64 * 1024, "kept {kept} bytes of body");
    }
}

/// `show lb vips verbose` output, parsed.
pub fn lbcli(data: &[u8]) {
    let _ = maglev_vpp::lbcli::parse_show_vips(&String::from_utf8_lossy(data));
}

fn encoded<M: Message>(msg: &M, id: u16) -> Vec<u8> {
    let h = maglev_vpp::wire::MsgHeader {
        msg_id: id,
        client_index: 0,
        context: 7,
    };
    maglev_vpp::frame::frame(&maglev_vpp::wire::encode_message(msg, h).expect("encodes"))
}

/// A stream of real replies, framed.
pub fn frame_seeds() -> Vec<Vec<u8>> {
    let ip = |s: &str| -> std::net::IpAddr { s.parse().expect("address") };
    let vip = LbVip {
        pfx: Prefix::new(ip("192.0.2.80"), 32),
        protocol: IpProto(6),
        port: 80,
    };
    let replies = [
        encoded(
            &SockclntCreateReply {
                response: 0,
                index: 0x8000_0001,
                message_table: vec![MessageTableEntry {
                    index: 16,
                    name: LbVipDump::NAME_CRC.to_string(),
                }],
            },
            16,
        ),
        encoded(
            &ControlPingReply {
                retval: 0,
                client_index: 1,
                vpe_pid: 42,
            },
            17,
        ),
        encoded(
            &LbVipDetails {
                vip,
                flow_table_length: 1024,
                ..Default::default()
            },
            18,
        ),
        encoded(
            &LbAsV2Details {
                vip,
                app_srv: ip("10.0.0.1").into(),
                flags: 1,
                in_use_since: 0,
                weight: 100,
                num_buckets: 1024,
            },
            19,
        ),
        encoded(
            &CliInbandReply {
                retval: 0,
                reply: " ip4-gre4 [1] 192.0.2.80/32\n".to_string(),
            },
            20,
        ),
    ];
    let all: Vec<u8> = replies.iter().flatten().copied().collect();
    let mut seeds: Vec<Vec<u8>> = replies.to_vec();
    seeds.push(all);
    seeds
}

/// A small valid stats segment: a scalar and one simple counter.
pub fn stats_seeds() -> Vec<Vec<u8>> {
    const BASE: u64 = 0x7f00_0000_0000;
    let mut seg = vec![0u8; 8192];
    let put = |seg: &mut Vec<u8>, at: usize, v: &[u8]| seg[at..at + v.len()].copy_from_slice(v);
    put(&mut seg, 0, &2u64.to_ne_bytes());
    put(&mut seg, 8, &BASE.to_ne_bytes());
    put(&mut seg, 16, &1u64.to_ne_bytes());
    // Directory of two entries at 4096.
    put(&mut seg, 4096 - 8, &2u32.to_ne_bytes());
    put(&mut seg, 32, &(BASE + 4096).to_ne_bytes());
    put(&mut seg, 4096, &1u32.to_ne_bytes());
    put(&mut seg, 4096 + 8, &1_700_000_000u64.to_ne_bytes());
    put(&mut seg, 4096 + 16, b"/sys/boottime");
    // "no server configured": one thread, two counters.
    put(&mut seg, 4096 + 144, &2u32.to_ne_bytes());
    put(&mut seg, 4096 + 144 + 8, &(BASE + 6000).to_ne_bytes());
    put(&mut seg, 4096 + 144 + 16, b"no server configured");
    put(&mut seg, 6000 - 8, &1u32.to_ne_bytes());
    put(&mut seg, 6000, &(BASE + 7000).to_ne_bytes());
    put(&mut seg, 7000 - 8, &2u32.to_ne_bytes());
    put(&mut seg, 7000, &5u64.to_ne_bytes());
    put(&mut seg, 7008, &9u64.to_ne_bytes());
    vec![seg]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_valid_inputs() {
        let seg = &stats_seeds()[0];
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(seg).unwrap();
        let mut c = maglev_vpp::stats::StatsClient::from_file(f).unwrap();
        assert_eq!(c.boottime().unwrap(), 1_700_000_000);
        assert_eq!(c.simple_counter("no server configured").unwrap(), [5, 9]);
        let frames = frame_seeds();
        let mut rest = frames.last().unwrap().as_slice();
        let mut n = 0;
        while let Ok(Some((_, used))) = maglev_vpp::frame::next_frame(rest) {
            rest = &rest[used..];
            n += 1;
        }
        assert_eq!(n, 5);
    }
}
