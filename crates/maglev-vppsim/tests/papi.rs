//! Cross-checks against VPP's own Python client, vpp_papi (PyPI `vpp-papi`):
//!
//! 1. encoding: for every message the project sends or decodes, the Rust
//!    encoder's bytes equal vpp_papi's for the same fields, and vpp_papi
//!    decodes the Rust bytes;
//! 2. protocol: vpp_papi, as a client, drives the simulator through its
//!    socket and gets what a real VPP answers.
//!
//! `cargo xtask test` creates the venv (`target/papi-venv`) and sets
//! `MAGLEV_PAPI_PYTHON`; with that set, a missing vpp_papi is a failure.
//! Run alone without the venv or an API dir, these tests say loudly that
//! they skip.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use maglev_vpp::binapi::*;
use maglev_vpp::wire::{encode_message, Header, Message, MsgHeader};
use maglev_vppsim::{SimOptions, Simulator};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn skip(why: &str) {
    eprintln!("\n*** SKIPPED vpp_papi cross-check: {why} ***\n");
}

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MAGLEV_PAPI_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = root().join("target/papi-venv/bin/python");
    if venv.exists() {
        Some(venv)
    } else {
        skip("no target/papi-venv; `cargo xtask test` creates it");
        None
    }
}

fn api_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("MAGLEV_VPP_API_DIR").map(PathBuf::from),
        Some(root().join("../shared/vpp-api")),
        Some(PathBuf::from("/usr/share/vpp/api")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("plugins/lb.api.json").is_file());
    if found.is_none() {
        skip("no VPP .api.json directory (../shared/vpp-api or /usr/share/vpp/api)");
    }
    found
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/papi")
        .join(name)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const REQ: MsgHeader = MsgHeader {
    msg_id: 0x0200,
    client_index: 0x8000_0001,
    context: 7,
};
const REP: MsgHeader = MsgHeader {
    msg_id: 0x0201,
    client_index: 0,
    context: 9,
};

struct Case {
    name: &'static str,
    args: Value,
    rust: Vec<u8>,
}

fn case<M: Message>(msg: M, fields: Value) -> Case {
    let (header, mut args) = match M::HEADER {
        Header::Request => (
            REQ,
            json!({"_vl_msg_id": REQ.msg_id, "client_index": REQ.client_index, "context": REQ.context}),
        ),
        Header::Reply => (
            REP,
            json!({"_vl_msg_id": REP.msg_id, "context": REP.context}),
        ),
        Header::Bare => (REP, json!({"_vl_msg_id": REP.msg_id})),
    };
    for (k, v) in fields.as_object().unwrap() {
        args[k] = v.clone();
    }
    Case {
        name: M::NAME,
        args,
        rust: encode_message(&msg, header).unwrap(),
    }
}

fn lb_vip(pfx: &str, len: u8, protocol: u8, port: u16) -> LbVip {
    LbVip {
        pfx: Prefix::new(ip(pfx), len),
        protocol: IpProto(protocol),
        port,
    }
}

/// Every message the project sends or decodes, with varied field values.
fn cases() -> Vec<Case> {
    let v4 = || Prefix::host(ip("192.0.2.10"));
    let v6 = || Prefix::new(ip("2001:db8::"), 64);
    vec![
        case(
            SockclntCreate {
                name: "lbctl".into(),
            },
            json!({"name": "lbctl"}),
        ),
        case(
            SockclntCreateReply {
                response: 0,
                index: 0x8000_0003,
                message_table: vec![
                    MessageTableEntry {
                        index: 15,
                        name: "sockclnt_create_455fb9c4".into(),
                    },
                    MessageTableEntry {
                        index: 300,
                        name: "lb_conf_56cd3261".into(),
                    },
                ],
            },
            json!({"response": 0, "index": 0x8000_0003u32, "count": 2,
                   "message_table": [{"index": 15, "name": "sockclnt_create_455fb9c4"},
                                     {"index": 300, "name": "lb_conf_56cd3261"}]}),
        ),
        case(
            SockclntDelete { index: 0x8000_0001 },
            json!({"index": 0x8000_0001u32}),
        ),
        case(SockclntDeleteReply { response: 1 }, json!({"response": 1})),
        case(ControlPing, json!({})),
        case(
            ControlPingReply {
                retval: 0,
                client_index: 0x8000_0001,
                vpe_pid: 4242,
            },
            json!({"retval": 0, "client_index": 0x8000_0001u32, "vpe_pid": 4242}),
        ),
        case(MemclntKeepalive, json!({})),
        case(MemclntKeepaliveReply { retval: 0 }, json!({"retval": 0})),
        case(ShowVersion, json!({})),
        case(
            ShowVersionReply {
                retval: 0,
                program: "vpe".into(),
                version: "26.10-rc0".into(),
                build_date: "2026-08-22".into(),
                build_directory: "/w/vpp".into(),
            },
            json!({"retval": 0, "program": "vpe", "version": "26.10-rc0",
                   "build_date": "2026-08-22", "build_directory": "/w/vpp"}),
        ),
        case(
            CliInband {
                cmd: "show lb vips verbose".into(),
            },
            json!({"cmd": "show lb vips verbose"}),
        ),
        case(
            CliInbandReply {
                retval: 0,
                reply: " ip4-gre4 [1] 192.0.2.10/32\n".into(),
            },
            json!({"retval": 0, "reply": " ip4-gre4 [1] 192.0.2.10/32\n"}),
        ),
        case(
            LbConf {
                ip4_src_address: [192, 0, 2, 1],
                ip6_src_address: "2001:db8::1"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
                sticky_buckets_per_core: 1024,
                flow_timeout: 40,
            },
            json!({"ip4_src_address": "192.0.2.1", "ip6_src_address": "2001:db8::1",
                   "sticky_buckets_per_core": 1024, "flow_timeout": 40}),
        ),
        case(
            LbConf {
                ip4_src_address: [198, 51, 100, 1],
                ..Default::default()
            },
            json!({"ip4_src_address": "198.51.100.1", "ip6_src_address": "::"}),
        ),
        case(LbConfReply { retval: -70 }, json!({"retval": -70})),
        case(LbConfGet, json!({})),
        case(
            LbConfGetReply {
                retval: 0,
                ip4_src_address: [192, 0, 2, 1],
                ip6_src_address: [0xff; 16],
                sticky_buckets_per_core: 65536,
                flow_timeout: 120,
            },
            json!({"retval": 0, "ip4_src_address": "192.0.2.1",
                   "ip6_src_address": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                   "sticky_buckets_per_core": 65536, "flow_timeout": 120}),
        ),
        case(
            LbAddDelVip {
                pfx: v4(),
                protocol: 17,
                port: 53,
                encap: LbEncapType(0),
                new_flows_table_length: 4096,
                ..Default::default()
            },
            json!({"pfx": "192.0.2.10/32", "protocol": 17, "port": 53, "encap": 0,
                   "new_flows_table_length": 4096}),
        ),
        case(
            LbAddDelVip {
                pfx: v4(),
                protocol: 6,
                port: 80,
                is_del: true,
                ..Default::default()
            },
            json!({"pfx": "192.0.2.10/32", "protocol": 6, "port": 80, "is_del": true}),
        ),
        case(LbAddDelVipReply { retval: -81 }, json!({"retval": -81})),
        case(
            LbAddDelVipV2 {
                pfx: v4(),
                protocol: 6,
                port: 80,
                encap: LbEncapType(0),
                new_flows_table_length: 1024,
                ..Default::default()
            },
            json!({"pfx": "192.0.2.10/32", "protocol": 6, "port": 80, "encap": 0,
                   "new_flows_table_length": 1024}),
        ),
        case(
            LbAddDelVipV2 {
                pfx: v6(),
                protocol: 255,
                port: 0,
                encap: LbEncapType(1),
                new_flows_table_length: 65536,
                src_ip_sticky: true,
                ..Default::default()
            },
            json!({"pfx": "2001:db8::/64", "protocol": 255, "port": 0, "encap": 1,
                   "new_flows_table_length": 65536, "src_ip_sticky": true}),
        ),
        case(LbAddDelVipV2Reply { retval: 0 }, json!({"retval": 0})),
        case(
            LbAddDelAs {
                pfx: v4(),
                protocol: 6,
                port: 80,
                as_address: ip("10.0.0.1").into(),
                is_del: true,
                is_flush: true,
            },
            json!({"pfx": "192.0.2.10/32", "protocol": 6, "port": 80, "as_address": "10.0.0.1",
                   "is_del": true, "is_flush": true}),
        ),
        case(LbAddDelAsReply { retval: -6 }, json!({"retval": -6})),
        case(
            LbAddDelAsV2 {
                pfx: v4(),
                protocol: 6,
                port: 80,
                as_address: ip("10.0.0.1").into(),
                weight: 50,
                is_del: false,
                is_flush: false,
            },
            json!({"pfx": "192.0.2.10/32", "protocol": 6, "port": 80, "as_address": "10.0.0.1",
                   "weight": 50}),
        ),
        case(
            LbAddDelAsV2 {
                pfx: v6(),
                protocol: 255,
                port: 0,
                as_address: ip("2001:db8:1::10").into(),
                weight: 100,
                is_del: false,
                is_flush: true,
            },
            json!({"pfx": "2001:db8::/64", "protocol": 255, "port": 0,
                   "as_address": "2001:db8:1::10", "is_flush": true}),
        ),
        case(LbAddDelAsV2Reply { retval: 0 }, json!({"retval": 0})),
        case(
            LbAsSetWeight {
                pfx: v4(),
                protocol: 6,
                port: 80,
                as_address: ip("10.0.0.1").into(),
                weight: 0,
                is_flush: true,
            },
            json!({"pfx": "192.0.2.10/32", "protocol": 6, "port": 80, "as_address": "10.0.0.1",
                   "weight": 0, "is_flush": true}),
        ),
        case(LbAsSetWeightReply { retval: 0 }, json!({"retval": 0})),
        case(
            LbFlushVip {
                pfx: v4(),
                protocol: 6,
                port: 80,
            },
            json!({"pfx": "192.0.2.10/32", "protocol": 6, "port": 80}),
        ),
        case(LbVipDump::default(), json!({})),
        case(
            LbVipDetails {
                vip: lb_vip("192.0.2.10", 32, 6, 80),
                encap: LbEncapType(0),
                dscp: IpDscp(0),
                srv_type: LbSrvType(0),
                target_port: 0,
                flow_table_length: 1024,
            },
            json!({"vip": {"pfx": "192.0.2.10/32", "protocol": 6, "port": 80}, "encap": 0,
                   "dscp": 0, "srv_type": 0, "target_port": 0, "flow_table_length": 1024}),
        ),
        case(
            LbAsDump {
                pfx: Prefix::new(ip("::"), 0),
                protocol: 0,
                port: 0,
            },
            json!({"pfx": "::/0", "protocol": 0, "port": 0}),
        ),
        case(
            LbAsDetails {
                vip: lb_vip("2001:db8::", 64, 255, 0),
                app_srv: ip("2001:db8:1::10").into(),
                flags: 1,
                in_use_since: 77,
            },
            json!({"vip": {"pfx": "2001:db8::/64", "protocol": 255, "port": 0},
                   "app_srv": "2001:db8:1::10", "flags": 1, "in_use_since": 77}),
        ),
        case(
            LbAsV2Dump {
                pfx: Prefix::new(ip("::"), 0),
                protocol: 0,
                port: 0,
            },
            json!({"pfx": "::/0", "protocol": 0, "port": 0}),
        ),
        case(
            LbAsV2Details {
                vip: lb_vip("192.0.2.10", 32, 6, 80),
                app_srv: ip("10.0.0.2").into(),
                flags: 0,
                in_use_since: 12,
                weight: 100,
                num_buckets: 292,
            },
            json!({"vip": {"pfx": "192.0.2.10/32", "protocol": 6, "port": 80},
                   "app_srv": "10.0.0.2", "flags": 0, "in_use_since": 12, "weight": 100,
                   "num_buckets": 292}),
        ),
    ]
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn rust_encoding_equals_vpp_papi() {
    let (Some(py), Some(api)) = (python(), api_dir()) else {
        return;
    };
    let cases = cases();
    let input: Vec<Value> = cases
        .iter()
        .map(|c| json!({"name": c.name, "args": c.args, "rust": hex(&c.rust)}))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_string(&input).unwrap()).unwrap();
    let out = Command::new(py)
        .arg(script("encode.py"))
        .arg(&api)
        .arg(&file)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "encode.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), cases.len());
    let mut failures = Vec::new();
    for (c, r) in cases.iter().zip(&results) {
        if r["papi"] != hex(&c.rust) {
            failures.push(format!(
                "{}: rust {} != papi {}",
                c.name,
                hex(&c.rust),
                r["papi"]
            ));
        }
        if r["papi_decodes_rust"] != json!(true) {
            failures.push(format!(
                "{}: vpp_papi cannot decode: {}",
                c.name, r["papi_decodes_rust"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The set covers every message of the lb plugin the project uses.
    let names: std::collections::HashSet<&str> = cases.iter().map(|c| c.name).collect();
    for used in [
        "lb_conf",
        "lb_conf_get",
        "lb_add_del_vip",
        "lb_add_del_vip_v2",
        "lb_add_del_as",
        "lb_add_del_as_v2",
        "lb_as_set_weight",
        "lb_vip_dump",
        "lb_vip_details",
        "lb_as_dump",
        "lb_as_details",
        "lb_as_v2_dump",
        "lb_as_v2_details",
    ] {
        assert!(names.contains(used), "no cross-check case for {used}");
    }
}

#[tokio::test]
async fn vpp_papi_drives_the_simulator() {
    let (Some(py), Some(api)) = (python(), api_dir()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    let sim = Simulator::start(SimOptions {
        api_socket: sock.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let out = tokio::process::Command::new(py)
        .arg(script("protocol.py"))
        .arg(&api)
        .arg(&sock)
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "protocol.py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["program"], "vpe");
    assert_eq!(seen["pid"], sim.pid());
    assert_eq!(seen["buckets_initial"], json!([256, 256, 256, 256]));
    assert_eq!(seen["buckets_50"], json!([150, 292, 291, 291]));
    assert_eq!(seen["buckets_0"], json!([208, 0, 408, 408]));
    assert_eq!(seen["ipv4_filtered_dump"], 0);
    assert_eq!(
        seen["vips"],
        json!(["192.0.2.0/24 6 80 0 1024", "2001:db8::/64 255 0 1 0"]),
        "encap, protocol and the u16 table length read back as from VPP"
    );
    assert_eq!(seen["cli_has_sticky"], true);
    let calls = sim.calls();
    assert_eq!(calls.first().unwrap().msg, "sockclnt_create");
    assert_eq!(calls.last().unwrap().msg, "sockclnt_delete");
    assert!(calls
        .iter()
        .any(|c| c.msg == "lb_as_set_weight" && c.retval == -6));
    sim.shutdown().await;
}
