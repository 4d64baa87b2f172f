//! The reference vectors of `vpp-api/NOTES.md` §7 (produced with vpp_papi):
//! the generated encoders must produce exactly these bytes.

use maglev_vpp::binapi::*;
use maglev_vpp::wire::{decode_message, encode_message, Message, MsgHeader};

const H: MsgHeader = MsgHeader {
    msg_id: 0x0200,
    client_index: 0x8000_0001,
    context: 7,
};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

fn check<M: Message + PartialEq>(msg: &M, want: &str) {
    let bytes = encode_message(msg, H).unwrap();
    assert_eq!(hex(&bytes), want, "{}", M::NAME);
    let (h, back) = decode_message::<M>(&bytes).unwrap();
    assert_eq!(&back, msg, "{} round trip", M::NAME);
    assert_eq!(h.context, 7);
}

fn vip4() -> (Prefix, u8, u16) {
    (Prefix::new(ip("192.0.2.10"), 32), 6, 80)
}

#[test]
fn lb_add_del_vip_v2_gre4() {
    let (pfx, protocol, port) = vip4();
    check(
        &LbAddDelVipV2 {
            pfx,
            protocol,
            port,
            encap: LbEncapType::LB_API_ENCAP_TYPE_GRE4,
            new_flows_table_length: 1024,
            ..Default::default()
        },
        "0200800000010000000700c000020a0000000000000000000000002006005000000000000000000000000000000004000000",
    );
}

#[test]
fn lb_add_del_vip_v2_gre6_all_port_sticky() {
    check(
        &LbAddDelVipV2 {
            pfx: Prefix::new(ip("2001:db8::"), 64),
            protocol: 255,
            port: 0,
            encap: LbEncapType::LB_API_ENCAP_TYPE_GRE6,
            new_flows_table_length: 65536,
            src_ip_sticky: true,
            ..Default::default()
        },
        "020080000001000000070120010db800000000000000000000000040ff000000000001000000000000000000000100000100",
    );
}

#[test]
fn lb_add_del_as_v2_weight() {
    let (pfx, protocol, port) = vip4();
    check(
        &LbAddDelAsV2 {
            pfx,
            protocol,
            port,
            as_address: ip("10.0.0.1").into(),
            weight: 50,
            is_del: false,
            is_flush: false,
        },
        "0200800000010000000700c000020a00000000000000000000000020060050000a000001000000000000000000000000320000",
    );
}

#[test]
fn lb_as_set_weight_flush() {
    let (pfx, protocol, port) = vip4();
    check(
        &LbAsSetWeight {
            pfx,
            protocol,
            port,
            as_address: ip("10.0.0.1").into(),
            weight: 0,
            is_flush: true,
        },
        "0200800000010000000700c000020a00000000000000000000000020060050000a0000010000000000000000000000000001",
    );
}

#[test]
fn lb_as_v2_dump_all() {
    check(
        &LbAsV2Dump {
            pfx: Prefix::new(ip("::"), 0),
            protocol: 0,
            port: 0,
        },
        "02008000000100000007010000000000000000000000000000000000000000",
    );
}

#[test]
fn lb_conf() {
    check(
        &LbConf {
            ip4_src_address: [192, 0, 2, 1],
            ip6_src_address: "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
            sticky_buckets_per_core: 1024,
            flow_timeout: 40,
        },
        "02008000000100000007c000020120010db80000000000000000000000010000040000000028",
    );
}

#[test]
fn header_only_requests() {
    check(&ControlPing, "02008000000100000007");
    check(&LbConfGet, "02008000000100000007");
}

#[test]
fn sockclnt_delete() {
    check(
        &SockclntDelete { index: 0x8000_0001 },
        "0200800000010000000780000001",
    );
}

#[test]
fn sockclnt_create_has_no_client_index() {
    let bytes = encode_message(
        &SockclntCreate {
            name: "lbctl".to_string(),
        },
        MsgHeader {
            msg_id: 15,
            client_index: 0,
            context: 124,
        },
    )
    .unwrap();
    assert_eq!(bytes.len(), 2 + 4 + 64);
    assert_eq!(hex(&bytes[..11]), "000f0000007c6c6263746c");
    assert!(bytes[11..].iter().all(|&b| b == 0));
}

#[test]
fn names_and_crcs() {
    assert_eq!(LbAddDelVipV2::NAME_CRC, "lb_add_del_vip_v2_7c520e0f");
    assert_eq!(LbAsV2Details::CRC, 0x90064aae);
    assert_eq!(SockclntCreate::NAME_CRC, "sockclnt_create_455fb9c4");
    // memclnt comes first, in VPP's static order: sockclnt_create is 15.
    assert_eq!(MESSAGES[14].1, "sockclnt_create");
    assert_eq!(MESSAGES[22].1, "control_ping");
}
