//! The API socket: framing, the `sockclnt_create` handshake, and dispatch of
//! every message to its handler, with VPP's silent drops (unknown id, short
//! message, unresolvable client_index).

use std::sync::Arc;

use maglev_vpp::binapi::*;
use maglev_vpp::frame::{put_frame, FrameReader};
use maglev_vpp::wire::{decode_message, encode_message, peek_msg_id, Message, MsgHeader};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tracing::{debug, warn};

use crate::lb::{Fatal, VipArgs};
use crate::{CallRecord, Inner};

/// Registration handles have bit 31 set (`SOCK_API_REG_HANDLE_BIT`).
const HANDLE_BIT: u32 = 0x8000_0000;

pub(crate) async fn serve_connection(inner: Arc<Inner>, stream: UnixStream) {
    let mut generation = inner.generation.subscribe();
    let (rd, mut wr) = stream.into_split();
    // VPP's main loop polls; so does the simulator, briefly, after each message.
    let mut rd = FrameReader::new(rd, std::time::Duration::from_micros(200));
    let mut handle: Option<u32> = None;
    loop {
        let payload = tokio::select! {
            r = rd.next() => match r {
                Ok(Some(p)) => p,
                _ => break,
            },
            _ = generation.changed() => break,
        };
        if inner.is_stalled() {
            // A hung VPP: reads, never answers.
            continue;
        }
        let mut out = Vec::new();
        let keep_going = match handle {
            None => handshake(&inner, &payload, &mut out).map(|h| handle = Some(h)),
            Some(h) => dispatch(&inner, h, &payload, &mut out),
        };
        if !out.is_empty() && wr.write_all(&out).await.is_err() {
            break;
        }
        if keep_going.is_none() {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

fn reply<M: Message>(inner: &Inner, out: &mut Vec<u8>, context: u32, msg: &M) {
    let Some(id) = inner.ids.id(M::NAME_CRC) else {
        return;
    };
    let header = MsgHeader {
        msg_id: id,
        client_index: 0,
        context,
    };
    match encode_message(msg, header) {
        Ok(bytes) => put_frame(out, &bytes),
        Err(e) => warn!(msg = M::NAME, error = %e, "cannot encode reply"),
    }
}

/// The first message must be `sockclnt_create`; anything else is dropped.
fn handshake(inner: &Inner, payload: &[u8], out: &mut Vec<u8>) -> Option<u32> {
    if peek_msg_id(payload) != inner.ids.id(SockclntCreate::NAME_CRC) {
        debug!("message before sockclnt_create dropped");
        return None;
    }
    let (h, create) = decode_message::<SockclntCreate>(payload).ok()?;
    let handle = HANDLE_BIT | inner.next_client();
    let message_table = inner
        .ids
        .entries()
        .map(|(index, name)| MessageTableEntry {
            index,
            name: name.to_string(),
        })
        .collect();
    reply(
        inner,
        out,
        h.context,
        &SockclntCreateReply {
            response: 0,
            index: handle,
            message_table,
        },
    );
    inner.record(CallRecord::new(
        SockclntCreate::NAME,
        format!("{create:?}"),
        0,
        handle,
    ));
    Some(handle)
}

/// Decodes a request addressed to this connection; VPP drops short
/// messages and those whose client_index does not resolve, silently.
fn request<M: Message>(payload: &[u8], handle: u32) -> Option<(u32, M)> {
    let (h, m) = decode_message::<M>(payload).ok()?;
    (h.client_index == handle).then_some((h.context, m))
}

/// Handles one message; `None` closes the connection.
fn dispatch(inner: &Inner, handle: u32, payload: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let id = peek_msg_id(payload)?;
    let Some(name) = inner.ids.name(id) else {
        debug!(id, "no handler for message id; dropped");
        return Some(());
    };
    macro_rules! simple {
        ($req:ty, |$m:ident, $state:ident| $body:expr) => {{
            let Some((ctx, $m)) = request::<$req>(payload, handle) else {
                return Some(());
            };
            let detail = format!("{:?}", $m);
            let (rv, rep) = {
                #[allow(unused_mut)]
                let mut $state = inner.state.lock().expect("sim state");
                $body
            };
            inner.record(CallRecord::new(<$req>::NAME, detail, rv, handle));
            reply(inner, out, ctx, &rep);
        }};
    }
    match name {
        "control_ping" => simple!(ControlPing, |_m, st| (
            0,
            ControlPingReply {
                retval: 0,
                client_index: handle,
                vpe_pid: st.pid,
            }
        )),
        "show_version" => simple!(ShowVersion, |_m, st| {
            let _ = &st;
            (
                0,
                ShowVersionReply {
                    retval: 0,
                    program: "vpe".to_string(),
                    version: inner.options.version.clone(),
                    build_date: "2026-08-22T03:00:55".to_string(),
                    build_directory: "/maglev-vppsim".to_string(),
                },
            )
        }),
        "cli_inband" => simple!(CliInband, |m, st| (
            0,
            CliInbandReply {
                retval: 0,
                reply: crate::cli::run(&st.lb, &inner.options.version, &m.cmd),
            }
        )),
        "show_threads" => simple!(ShowThreads, |_m, st| (
            0,
            // No workers: the main thread alone, as VPP reports it.
            ShowThreadsReply {
                retval: 0,
                thread_data: vec![ThreadData {
                    id: 0,
                    name: "vpp_main".to_string(),
                    r#type: String::new(),
                    pid: st.pid,
                    cpu_id: 0,
                    core: 0,
                    cpu_socket: 0,
                }],
            }
        )),
        // Both 26.06 and master answer an empty list on the socket
        // transport (seen by the real-VPP differential test): plugin API
        // versions cannot be read this way.
        "api_versions" => simple!(ApiVersions, |_m, st| {
            let _ = &st;
            (
                0,
                ApiVersionsReply {
                    retval: 0,
                    api_versions: Vec::new(),
                },
            )
        }),
        "show_vpe_system_time" => simple!(ShowVpeSystemTime, |_m, st| {
            let _ = &st;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            (
                0,
                ShowVpeSystemTimeReply {
                    retval: 0,
                    vpe_system_time: now,
                },
            )
        }),
        "memclnt_keepalive_reply" => {}
        "sockclnt_delete" => {
            let (ctx, m) = request::<SockclntDelete>(payload, handle)?;
            let ok = m.index == handle;
            let response = if ok { 1 } else { -1 };
            inner.record(CallRecord::new(
                SockclntDelete::NAME,
                format!("{m:?}"),
                response,
                handle,
            ));
            reply(inner, out, ctx, &SockclntDeleteReply { response });
            if ok {
                return None;
            }
        }
        "lb_conf" => simple!(LbConf, |m, st| {
            let rv = st.lb.conf(
                m.ip4_src_address,
                m.ip6_src_address,
                m.sticky_buckets_per_core,
                m.flow_timeout,
            );
            (rv, LbConfReply { retval: rv })
        }),
        "lb_conf_get" => simple!(LbConfGet, |_m, st| {
            let c = st.lb.conf;
            (
                0,
                LbConfGetReply {
                    retval: 0,
                    ip4_src_address: c.ip4_src,
                    ip6_src_address: c.ip6_src,
                    sticky_buckets_per_core: c.buckets,
                    flow_timeout: c.timeout,
                },
            )
        }),
        "lb_add_del_vip" | "lb_add_del_vip_v2" => {
            let (ctx, args, detail, v2) = if name == "lb_add_del_vip" {
                let (ctx, m) = request::<LbAddDelVip>(payload, handle)?;
                let a = VipArgs {
                    pfx: m.pfx,
                    protocol: m.protocol,
                    port: m.port,
                    encap: m.encap.0,
                    dscp: m.dscp,
                    srv_type: m.r#type.0,
                    target_port: m.target_port,
                    table_len: m.new_flows_table_length,
                    src_ip_sticky: false,
                    is_del: m.is_del,
                };
                (ctx, a, format!("{m:?}"), false)
            } else {
                let (ctx, m) = request::<LbAddDelVipV2>(payload, handle)?;
                let a = VipArgs {
                    pfx: m.pfx,
                    protocol: m.protocol,
                    port: m.port,
                    encap: m.encap.0,
                    dscp: m.dscp,
                    srv_type: m.r#type.0,
                    target_port: m.target_port,
                    table_len: m.new_flows_table_length,
                    src_ip_sticky: m.src_ip_sticky,
                    is_del: m.is_del,
                };
                (ctx, a, format!("{m:?}"), true)
            };
            let mut args = args;
            if !inner.options.v2 {
                args.pfx = legacy_prefix(&args.pfx);
                args.encap = args.encap.swap_bytes();
            }
            let result = {
                let mut st = inner.state.lock().expect("sim state");
                let now = st.uptime();
                st.lb.collect_garbage(now, false);
                st.lb.add_del_vip(args, now)
            };
            let rv = match result {
                Ok(rv) => rv,
                Err(Fatal::Crash(why)) => {
                    inner.record(CallRecord::new(
                        name_static(v2, "lb_add_del_vip"),
                        detail,
                        0,
                        handle,
                    ));
                    inner.crash(why);
                    return None;
                }
            };
            inner.record(CallRecord::new(
                name_static(v2, "lb_add_del_vip"),
                detail,
                rv,
                handle,
            ));
            // A new VIP index grows the counter vectors.
            inner.publish_stats();
            if v2 {
                reply(inner, out, ctx, &LbAddDelVipV2Reply { retval: rv });
            } else {
                reply(inner, out, ctx, &LbAddDelVipReply { retval: rv });
            }
        }
        "lb_add_del_as" => simple!(LbAddDelAs, |m, st| {
            let now = st.uptime();
            st.lb.collect_garbage(now, false);
            // v1 adds carry no weight: VPP uses the default, 100.
            let pfx = if inner.options.v2 {
                m.pfx
            } else {
                legacy_prefix(&m.pfx)
            };
            let rv = st.lb.add_del_as(
                &pfx,
                m.protocol,
                m.port,
                &m.as_address,
                100,
                m.is_del,
                m.is_flush,
                now,
            );
            (rv, LbAddDelAsReply { retval: rv })
        }),
        "lb_add_del_as_v2" => simple!(LbAddDelAsV2, |m, st| {
            let now = st.uptime();
            st.lb.collect_garbage(now, false);
            let rv = st.lb.add_del_as(
                &m.pfx,
                m.protocol,
                m.port,
                &m.as_address,
                m.weight,
                m.is_del,
                m.is_flush,
                now,
            );
            (rv, LbAddDelAsV2Reply { retval: rv })
        }),
        "lb_as_set_weight" => simple!(LbAsSetWeight, |m, st| {
            let rv = st.lb.set_weight(
                &m.pfx,
                m.protocol,
                m.port,
                &m.as_address,
                m.weight,
                m.is_flush,
            );
            (rv, LbAsSetWeightReply { retval: rv })
        }),
        // Always 0, even for an unknown VIP, as in VPP.
        "lb_flush_vip" => simple!(LbFlushVip, |_m, st| {
            let _ = &st;
            (0, LbFlushVipReply { retval: 0 })
        }),
        "lb_vip_dump" => {
            let (ctx, m) = request::<LbVipDump>(payload, handle)?;
            let st = inner.state.lock().expect("sim state");
            let legacy = !inner.options.v2;
            // The filter fields are ignored: every live VIP is returned
            // (26.06: every VIP, deleted ones too).
            let vips: Vec<&crate::lb::Vip> = if legacy {
                st.lb.all_vips().collect()
            } else {
                st.lb.live_vips().collect()
            };
            for v in vips {
                let (vip, encap, flow_table_length) = if legacy {
                    (
                        legacy_vip(v),
                        // htonl(vip->type): the internal type.
                        LbEncapType(v.vtype as u32),
                        // htonl(mask + 1) into a u16, written unswapped.
                        ((v.table_len >> 24) << 8 | ((v.table_len >> 16) & 0xff)) as u16,
                    )
                } else {
                    (
                        LbVip {
                            pfx: Prefix {
                                address: encode_any(&v.address),
                                len: v.plen,
                            },
                            protocol: IpProto(v.protocol),
                            port: v.port,
                        },
                        LbEncapType(v.vtype.api_encap()),
                        // A u16 field: 65536 and up wrap.
                        v.table_len as u16,
                    )
                };
                reply(
                    inner,
                    out,
                    ctx,
                    &LbVipDetails {
                        vip,
                        encap,
                        dscp: IpDscp(v.dscp),
                        // u8 written into the u32 without htonl.
                        srv_type: LbSrvType(u32::from(v.srv_type) << 24),
                        // Stored in network order, then swapped again on the way out:
                        // the client reads the port byte-swapped.
                        target_port: v.target_port_raw,
                        flow_table_length,
                    },
                );
            }
            drop(st);
            inner.record(CallRecord::new(
                LbVipDump::NAME,
                format!("{m:?}"),
                0,
                handle,
            ));
        }
        "lb_as_dump" | "lb_as_v2_dump" => {
            // Both requests have the same layout.
            let (ctx, m) = request::<LbAsV2Dump>(payload, handle)?;
            let st = inner.state.lock().expect("sim state");
            let legacy = !inner.options.v2;
            // 26.06 compares the port without ntohs.
            let port = if legacy { m.port.swap_bytes() } else { m.port };
            for v in st.lb.as_dump_vips(&m.pfx, m.protocol, port) {
                let vip = if legacy {
                    legacy_vip(v)
                } else {
                    LbVip {
                        pfx: Prefix {
                            address: encode_any(&v.address),
                            len: v.plen,
                        },
                        protocol: IpProto(v.protocol),
                        port: v.port,
                    }
                };
                for (i, a) in v.ases.iter().enumerate() {
                    let app_srv = encode_any(&a.address);
                    let flags = u8::from(a.used);
                    if name == "lb_as_dump" {
                        let d = LbAsDetails {
                            vip,
                            app_srv,
                            flags,
                            in_use_since: a.last_used,
                        };
                        reply(inner, out, ctx, &d);
                    } else {
                        let d = LbAsV2Details {
                            vip,
                            app_srv,
                            flags,
                            in_use_since: a.last_used,
                            weight: a.weight,
                            num_buckets: v.buckets(i),
                        };
                        reply(inner, out, ctx, &d);
                    }
                }
            }
            drop(st);
            let n = if name == "lb_as_dump" {
                LbAsDump::NAME
            } else {
                LbAsV2Dump::NAME
            };
            inner.record(CallRecord::new(n, format!("{m:?}"), 0, handle));
        }
        other => debug!(
            msg = other,
            "message without a handler in the simulator; dropped"
        ),
    }
    Some(())
}

fn name_static(v2: bool, base: &'static str) -> &'static str {
    match (base, v2) {
        ("lb_add_del_vip", true) => LbAddDelVipV2::NAME,
        _ => base,
    }
}

/// How 26.06's handlers read a VIP prefix: the length as an `ip46` length,
/// so an IPv4 prefix is IPv4 only with a length of 96 or more (and then
/// has 96 bits too many); shorter, the address is an IPv6 one,
/// `::a.b.c.d`.
fn legacy_prefix(p: &Prefix) -> Prefix {
    let raw = maglev_vpp::maglev::ip46(&p.address.to_ip());
    let ip4_form = raw[..12].iter().all(|b| *b == 0);
    if ip4_form && p.len >= 96 {
        let v4 = std::net::Ipv4Addr::new(raw[12], raw[13], raw[14], raw[15]);
        Prefix::new(v4.into(), p.len - 96)
    } else {
        Prefix::new(std::net::Ipv6Addr::from(raw).into(), p.len)
    }
}

/// A VIP as 26.06's dumps describe it: the internal (`ip46`) prefix length
/// and the protocol truncated to 0 (`htonl` into a u8).
fn legacy_vip(v: &crate::lb::Vip) -> LbVip {
    let plen = if v.address.is_ipv4() {
        v.plen + 96
    } else {
        v.plen
    };
    LbVip {
        pfx: Prefix {
            address: encode_any(&v.address),
            len: plen,
        },
        protocol: IpProto(0),
        port: v.port,
    }
}

/// `ip_address_encode (…, IP46_TYPE_ANY, …)`: an address whose first 12
/// bytes are zero (`::a.b.c.d`, `::`) goes out as IPv4.
fn encode_any(a: &std::net::IpAddr) -> Address {
    let raw = maglev_vpp::maglev::ip46(a);
    if raw[..12].iter().all(|b| *b == 0) {
        std::net::IpAddr::from([raw[12], raw[13], raw[14], raw[15]]).into()
    } else {
        (*a).into()
    }
}
