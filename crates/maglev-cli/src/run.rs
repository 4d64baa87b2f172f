//! Runs a resolved [`Command`] against maglevd and renders the answer as
//! text and as JSON (the `-o json` shapes, documented in
//! docs/maglevc.md).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use maglev_proto as pb;
use maglev_proto::maglev_client::MaglevClient;
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::render::{block, duration, table, Style};
use crate::tree::Command;

/// What a command printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// For `-o text`.
    pub text: String,
    /// For `-o json`.
    pub json: Value,
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// maglevd answered with an error (exit 1): its message only.
    #[error("{0}")]
    Server(String),
    /// maglevd could not be reached (exit 1).
    #[error("cannot reach maglevd at {server}: {why}")]
    Connect {
        /// Address.
        server: String,
        /// Cause.
        why: String,
    },
    /// The command itself is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// maglevd answered, and the answer is a failure (exit 1) that also
    /// has an output: `-o json` prints its JSON, the text mode the message.
    #[error("{message}")]
    Failed {
        /// What went wrong, for the text mode.
        message: String,
        /// The whole answer.
        json: Value,
    },
}

/// An error with its chain of causes ("transport error" alone says
/// nothing; "transport error: tcp connect error: Connection refused" does).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A VIP protocol number as the config writes it.
fn protocol_name(p: u32) -> String {
    match p {
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        255 => "any".to_string(),
        n => n.to_string(),
    }
}

pub(crate) fn server(s: tonic::Status) -> CliError {
    // A status made by the transport ("transport error") carries its
    // cause: say what it was.
    let mut message = s.message().to_string();
    let mut source = std::error::Error::source(&s);
    while let Some(e) = source {
        let text = e.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = e.source();
    }
    CliError::Server(message)
}

/// Where maglevd is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `host:port`, `https://host:port` or `unix:/path`.
    pub addr: String,
    /// TLS settings; none given means plain TCP.
    pub tls: maglev_access::tls::ClientTls,
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.addr)
    }
}

/// Connects to maglevd.
pub async fn connect(server: &Server) -> Result<MaglevClient<Channel>, CliError> {
    maglev_access::dial::dial(&server.addr, &server.tls)
        .await
        .map(|ch| MaglevClient::new(ch).max_decoding_message_size(maglev_proto::MAX_MESSAGE))
        .map_err(|e| CliError::Connect {
            server: server.addr.clone(),
            why: with_causes(&e),
        })
}

/// The agent line of `show backend`: what it asks for and its last answer.
fn agent_text(b: &pb::BackendInfo) -> String {
    if b.agent.is_empty() {
        return "-".to_string();
    }
    if b.agent_last.is_empty() {
        return b.agent.clone();
    }
    format!(
        "{} (last: {:?}, {})",
        b.agent,
        b.agent_last,
        since(b.agent_last_unix_ns)
    )
}

/// How long until a wall-clock time given in ns since the epoch.
fn until(ns: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    duration(Duration::from_nanos(ns.max(0) as u64).saturating_sub(now))
}

fn since(ns: i64) -> String {
    if ns <= 0 {
        return "-".to_string();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let t = Duration::from_nanos(ns as u64);
    format!("{} ago", duration(now.saturating_sub(t)))
}

/// A frontend state as the text output shows it: `PANIC` stands out.
fn state_word(state: &str) -> String {
    if state == "panic" {
        "PANIC".to_string()
    } else {
        state.to_string()
    }
}

fn frontend_text(style: Style, f: &pb::FrontendInfo) -> String {
    let mut pairs = vec![
        ("name", f.name.clone()),
        (
            "address",
            format!("{} {}:{}", f.address, f.protocol, f.port),
        ),
        ("state", state_word(&f.state)),
        ("src-ip-sticky", f.src_ip_sticky.to_string()),
        ("flush-on-down", f.flush_on_down.to_string()),
        ("table-length", f.new_flows_table_length.to_string()),
    ];
    if f.panic_threshold > 0 {
        pairs.push(("panic-threshold", format!("{}%", f.panic_threshold)));
    }
    if f.slow_start_seconds > 0.0 {
        pairs.push((
            "slow-start",
            duration(Duration::from_secs_f64(f.slow_start_seconds)),
        ));
    }
    if !f.description.is_empty() {
        pairs.push(("description", f.description.clone()));
    }
    let mut out = block(style, &pairs);
    let mut rows = Vec::new();
    for (i, p) in f.pools.iter().enumerate() {
        let active = if i as u32 == f.active_pool {
            " (active)"
        } else {
            ""
        };
        rows.push(vec![
            format!("{}{active}", p.name),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        for b in &p.backends {
            rows.push(vec![
                format!("  {}", b.name),
                b.address.clone(),
                if b.slow_start_percent > 0 {
                    format!("{} (slow start {}%)", b.state, b.slow_start_percent)
                } else {
                    b.state.clone()
                },
                format!(
                    "{}{}",
                    b.configured_weight,
                    if b.weight_overridden { "*" } else { "" }
                ),
                format!(
                    "{}{}",
                    b.effective_weight,
                    if b.flush { " flush" } else { "" }
                ),
                b.vpp_buckets.map_or("-".to_string(), |n| n.to_string()),
            ]);
        }
    }
    out.push('\n');
    out.push_str(&table(
        style,
        &[
            "POOL/BACKEND",
            "ADDRESS",
            "STATE",
            "WEIGHT",
            "EFFECTIVE",
            "BUCKETS",
        ],
        &rows,
    ));
    out
}

fn frontend_json(f: &pb::FrontendInfo) -> Value {
    json!({
        "name": f.name, "description": f.description, "address": f.address,
        "protocol": f.protocol, "port": f.port, "state": f.state,
        "src_ip_sticky": f.src_ip_sticky, "flush_on_down": f.flush_on_down,
        "new_flows_table_length": f.new_flows_table_length, "active_pool": f.active_pool,
        "panic_threshold": f.panic_threshold, "slow_start_seconds": f.slow_start_seconds,
        "pools": f.pools.iter().map(|p| json!({
            "name": p.name,
            "backends": p.backends.iter().map(|b| json!({
                "name": b.name, "address": b.address, "state": b.state,
                "configured_weight": b.configured_weight, "effective_weight": b.effective_weight,
                "flush": b.flush, "weight_overridden": b.weight_overridden, "vpp_buckets": b.vpp_buckets,
                "slow_start_percent": b.slow_start_percent,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn backend_text(style: Style, b: &pb::BackendInfo) -> String {
    let last = b.last_result.as_ref().map_or("-".to_string(), |r| {
        format!(
            "{} {} ({}, {:.1} ms)",
            r.code,
            r.detail,
            since(r.at_unix_ns),
            r.duration_seconds * 1000.0
        )
    });
    let mut out = block(
        style,
        &[
            ("name", b.name.clone()),
            ("address", b.address.clone()),
            (
                "state",
                if b.held_until_unix_ns > 0 {
                    format!(
                        "{} (flapping; hold-down ends in {})",
                        b.state,
                        until(b.held_until_unix_ns)
                    )
                } else {
                    b.state.clone()
                },
            ),
            ("enabled", b.enabled.to_string()),
            (
                "healthcheck",
                if b.healthcheck.is_empty() {
                    format!("({})", b.check_type)
                } else {
                    format!("{} ({})", b.healthcheck, b.check_type)
                },
            ),
            (
                "counter",
                format!("{} (rise {}, fall {})", b.counter, b.rise, b.fall),
            ),
            ("last probe", last),
            ("agent", agent_text(b)),
            ("frontends", b.frontends.join(", ")),
        ],
    );
    let rows: Vec<Vec<String>> = b
        .transitions
        .iter()
        .map(|t| {
            vec![
                since(t.at_unix_ns),
                format!("{} -> {}", t.from, t.to),
                t.code.clone(),
                t.detail.clone(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push('\n');
        out.push_str(&table(
            style,
            &["WHEN", "TRANSITION", "CODE", "DETAIL"],
            &rows,
        ));
    }
    out
}

fn backend_json(b: &pb::BackendInfo) -> Value {
    json!({
        "name": b.name, "address": b.address, "healthcheck": b.healthcheck, "check_type": b.check_type,
        "state": b.state, "enabled": b.enabled, "counter": b.counter, "rise": b.rise, "fall": b.fall,
        "held_until_unix_ns": b.held_until_unix_ns,
        "agent": b.agent, "agent_last": b.agent_last, "agent_last_unix_ns": b.agent_last_unix_ns,
        "last_result": b.last_result.as_ref().map(|r| json!({
            "pass": r.pass, "code": r.code, "detail": r.detail,
            "duration_seconds": r.duration_seconds, "at_unix_ns": r.at_unix_ns,
        })),
        "transitions": b.transitions.iter().map(|t| json!({
            "from": t.from, "to": t.to, "at_unix_ns": t.at_unix_ns, "code": t.code, "detail": t.detail,
        })).collect::<Vec<_>>(),
        "frontends": b.frontends,
    })
}

/// What a prediction of a frontend's table needs, as maglevd reports it:
/// the VIP, whether it is src-ip-sticky, the table length and the ASes
/// with the weights VPP is given.
struct PredictInput {
    vip: IpAddr,
    sticky: bool,
    table_len: u32,
    ases: Vec<(IpAddr, u8)>,
}

fn predict_input(f: &pb::FrontendInfo) -> Result<PredictInput, CliError> {
    let vip: IpAddr = f
        .address
        .parse()
        .map_err(|_| CliError::Server(format!("bad address {}", f.address)))?;
    // Numeric order, as VPP has them (and maglevd programs them).
    let ases: BTreeMap<IpAddr, u8> = f
        .pools
        .iter()
        .flat_map(|p| p.backends.iter())
        .filter_map(|b| {
            let a = b.address.parse::<IpAddr>().ok()?;
            Some((a, b.effective_weight.min(255) as u8))
        })
        .collect();
    Ok(PredictInput {
        vip,
        sticky: f.src_ip_sticky,
        table_len: f.new_flows_table_length.max(1).next_power_of_two(),
        ases: ases.into_iter().collect(),
    })
}

fn name_of(f: &pb::FrontendInfo, addr: IpAddr) -> String {
    f.pools
        .iter()
        .flat_map(|p| p.backends.iter())
        .find(|b| b.address.parse::<IpAddr>().ok() == Some(addr))
        .map_or(addr.to_string(), |b| b.name.clone())
}

/// The answer of a command that needs no server (`show version`).
pub fn local(cmd: &Command) -> Option<Output> {
    match cmd {
        Command::ShowVersion => Some(version()),
        _ => None,
    }
}

fn version() -> Output {
    Output {
        text: format!("maglevc {}\n", crate::args::VERSION),
        json: json!({
            "version": env!("CARGO_PKG_VERSION"),
            "commit": env!("MAGLEV_GIT_COMMIT"),
            "build_date": env!("MAGLEV_BUILD_DATE"),
        }),
    }
}

/// Runs `cmd`. `Quit` and `WatchEvents` are the caller's (they are about
/// the terminal, not a request and a reply).
pub async fn run(
    client: &mut MaglevClient<Channel>,
    cmd: &Command,
    style: Style,
) -> Result<Output, CliError> {
    let out = |text: String, json: Value| Ok(Output { text, json });
    match cmd {
        Command::ShowVersion => Ok(version()),
        Command::ShowFrontends => {
            let r = client
                .list_frontends(pb::ListFrontendsRequest {})
                .await
                .map_err(server)?
                .into_inner();
            let rows: Vec<Vec<String>> = r
                .frontends
                .iter()
                .map(|f| {
                    let pool = f
                        .pools
                        .get(f.active_pool as usize)
                        .map_or("-".into(), |p| p.name.clone());
                    vec![
                        f.name.clone(),
                        f.address.clone(),
                        f.protocol.clone(),
                        f.port.to_string(),
                        state_word(&f.state),
                        pool,
                    ]
                })
                .collect();
            out(
                table(
                    style,
                    &[
                        "NAME",
                        "ADDRESS",
                        "PROTOCOL",
                        "PORT",
                        "STATE",
                        "ACTIVE POOL",
                    ],
                    &rows,
                ),
                json!({ "frontends": r.frontends.iter().map(frontend_json).collect::<Vec<_>>() }),
            )
        }
        Command::ShowFrontend { name, buckets } => {
            let f = client
                .get_frontend(pb::GetFrontendRequest { name: name.clone() })
                .await
                .map_err(server)?
                .into_inner();
            if !buckets {
                return out(frontend_text(style, &f), frontend_json(&f));
            }
            let d = predict_input(&f)?;
            let p = maglev_table::predict(d.table_len, &d.ases);
            let rows: Vec<Vec<String>> = p
                .buckets
                .iter()
                .map(|(a, n)| {
                    vec![
                        name_of(&f, *a),
                        a.to_string(),
                        n.to_string(),
                        format!("{:.1}%", *n as f64 * 100.0 / p.slots.len() as f64),
                    ]
                })
                .collect();
            let json = json!({
                "frontend": f.name, "table_length": p.slots.len(),
                "buckets": p.buckets.iter().map(|(a, n)| json!({"backend": name_of(&f, *a), "address": a.to_string(), "buckets": n})).collect::<Vec<_>>(),
            });
            out(
                table(style, &["BACKEND", "ADDRESS", "BUCKETS", "SHARE"], &rows),
                json,
            )
        }
        Command::ShowBackends => {
            let r = client
                .list_backends(pb::ListBackendsRequest {})
                .await
                .map_err(server)?
                .into_inner();
            let rows: Vec<Vec<String>> = r
                .backends
                .iter()
                .map(|b| {
                    let last = b
                        .last_result
                        .as_ref()
                        .map_or("-".into(), |r| r.code.clone());
                    vec![
                        b.name.clone(),
                        b.address.clone(),
                        b.state.clone(),
                        b.enabled.to_string(),
                        b.check_type.clone(),
                        last,
                    ]
                })
                .collect();
            out(
                table(
                    style,
                    &["NAME", "ADDRESS", "STATE", "ENABLED", "CHECK", "LAST"],
                    &rows,
                ),
                json!({ "backends": r.backends.iter().map(backend_json).collect::<Vec<_>>() }),
            )
        }
        Command::ShowBackend { name } => {
            let b = client
                .get_backend(pb::GetBackendRequest { name: name.clone() })
                .await
                .map_err(server)?
                .into_inner();
            out(backend_text(style, &b), backend_json(&b))
        }
        Command::ShowHealthChecks | Command::ShowHealthCheck { .. } => {
            let list = match cmd {
                Command::ShowHealthCheck { name } => vec![client
                    .get_health_check(pb::GetHealthCheckRequest { name: name.clone() })
                    .await
                    .map_err(server)?
                    .into_inner()],
                _ => {
                    client
                        .list_health_checks(pb::ListHealthChecksRequest {})
                        .await
                        .map_err(server)?
                        .into_inner()
                        .healthchecks
                }
            };
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|h| {
                    vec![
                        h.name.clone(),
                        match (h.r#type.as_str(), h.grpc_service.as_str(), h.tls) {
                            ("grpc", "", tls) => format!("grpc{}", if tls { "+tls" } else { "" }),
                            ("grpc", svc, tls) => {
                                format!("grpc{} {svc}", if tls { "+tls" } else { "" })
                            }
                            (t, _, _) => t.to_string(),
                        },
                        if h.port == 0 {
                            "-".into()
                        } else {
                            h.port.to_string()
                        },
                        format!(
                            "{}/{}/{}",
                            duration(Duration::from_secs_f64(h.interval_seconds)),
                            duration(Duration::from_secs_f64(h.fast_interval_seconds)),
                            duration(Duration::from_secs_f64(h.down_interval_seconds))
                        ),
                        duration(Duration::from_secs_f64(h.timeout_seconds)),
                        format!("{}/{}", h.rise, h.fall),
                        h.backends.join(","),
                    ]
                })
                .collect();
            let json = json!({ "healthchecks": list.iter().map(|h| json!({
                "name": h.name, "type": h.r#type, "port": h.port, "interval_seconds": h.interval_seconds,
                "fast_interval_seconds": h.fast_interval_seconds, "down_interval_seconds": h.down_interval_seconds,
                "timeout_seconds": h.timeout_seconds, "rise": h.rise, "fall": h.fall, "path": h.path,
                "host": h.host, "method": h.method, "response_codes": h.response_codes,
                "response_regex": h.response_regex, "server_name": h.server_name, "insecure": h.insecure,
                "grpc_service": h.grpc_service, "authority": h.authority, "tls": h.tls,
                "flap_max_transitions": h.flap_max_transitions,
                "flap_window_seconds": h.flap_window_seconds,
                "flap_hold_down_seconds": h.flap_hold_down_seconds,
                "backends": h.backends,
            })).collect::<Vec<_>>() });
            out(
                table(
                    style,
                    &[
                        "NAME",
                        "TYPE",
                        "PORT",
                        "INTERVALS",
                        "TIMEOUT",
                        "RISE/FALL",
                        "BACKENDS",
                    ],
                    &rows,
                ),
                json,
            )
        }
        Command::ShowVppInfo => {
            let v = client
                .get_vpp_info(pb::GetVppInfoRequest {})
                .await
                .map_err(server)?
                .into_inner();
            out(
                block(
                    style,
                    &[
                        ("version", v.version.clone()),
                        ("build-date", v.build_date.clone()),
                        ("build-dir", v.build_directory.clone()),
                        ("vpp-pid", v.pid.to_string()),
                        ("vpp-boottime", since(v.boottime_unix_ns)),
                        ("connected", since(v.connected_unix_ns)),
                        ("lb-v2", v.lb_v2.to_string()),
                    ],
                ),
                json!({
                    "version": v.version, "build_date": v.build_date, "build_directory": v.build_directory,
                    "pid": v.pid, "boottime_unix_ns": v.boottime_unix_ns,
                    "connected_unix_ns": v.connected_unix_ns, "lb_v2": v.lb_v2,
                }),
            )
        }
        Command::ShowVppLbState => {
            let s = client
                .get_vpplb_state(pb::GetVpplbStateRequest {})
                .await
                .map_err(server)?
                .into_inner();
            let mut rows = Vec::new();
            for v in &s.vips {
                let sticky = v.src_ip_sticky.map_or("?".into(), |b| b.to_string());
                rows.push(vec![
                    format!("{} {}:{}", v.prefix, protocol_name(v.protocol), v.port),
                    v.frontend.clone(),
                    v.encap.clone(),
                    sticky,
                    String::new(),
                    String::new(),
                ]);
                for a in &v.ases {
                    rows.push(vec![
                        format!("  {}", a.address),
                        String::new(),
                        String::new(),
                        String::new(),
                        a.weight.map_or("-".into(), |w| w.to_string()),
                        a.buckets.map_or("-".into(), |b| b.to_string()),
                    ]);
                }
            }
            let json = json!({ "vips": s.vips.iter().map(|v| json!({
                "prefix": v.prefix, "protocol": v.protocol, "port": v.port, "encap": v.encap,
                "table_length": v.table_length, "src_ip_sticky": v.src_ip_sticky, "index": v.index,
                "frontend": v.frontend,
                "ases": v.ases.iter().map(|a| json!({"address": a.address, "weight": a.weight, "buckets": a.buckets})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>() });
            out(
                table(
                    style,
                    &["VIP/AS", "FRONTEND", "ENCAP", "STICKY", "WEIGHT", "BUCKETS"],
                    &rows,
                ),
                json,
            )
        }
        Command::ShowVppLbCounters => {
            let c = client
                .get_vpplb_counters(pb::GetVpplbCountersRequest {})
                .await
                .map_err(server)?
                .into_inner();
            let rows: Vec<Vec<String>> = c
                .vips
                .iter()
                .map(|v| {
                    vec![
                        v.frontend.clone(),
                        format!("{} {}:{}", v.prefix, protocol_name(v.protocol), v.port),
                        v.existing_session_packets.to_string(),
                        v.first_packets.to_string(),
                        v.untracked_packets.to_string(),
                        v.no_server_packets.to_string(),
                    ]
                })
                .collect();
            let json = json!({ "vips": c.vips.iter().map(|v| json!({
                "frontend": v.frontend, "prefix": v.prefix, "protocol": v.protocol, "port": v.port,
                "index": v.index, "existing_session_packets": v.existing_session_packets,
                "first_packets": v.first_packets, "untracked_packets": v.untracked_packets,
                "no_server_packets": v.no_server_packets,
            })).collect::<Vec<_>>() });
            out(
                table(
                    style,
                    &[
                        "FRONTEND",
                        "VIP",
                        "EXISTING",
                        "FIRST",
                        "UNTRACKED",
                        "NO-SERVER",
                    ],
                    &rows,
                ),
                json,
            )
        }
        Command::SyncVppLbState { frontend, dry_run } => {
            let r = client
                .sync_vpplb_state(pb::SyncVpplbStateRequest {
                    frontend: frontend.clone().unwrap_or_default(),
                    dry_run: *dry_run,
                })
                .await
                .map_err(server)?
                .into_inner();
            let mut text = String::new();
            for n in &r.notes {
                text.push_str(&format!("# {n}\n"));
            }
            for op in &r.plan {
                text.push_str(op);
                text.push('\n');
            }
            if r.plan.is_empty() {
                text.push_str("in sync: nothing to do\n");
            }
            for f in &r.failures {
                text.push_str(&style.error(&format!("failed: {f}")));
                text.push('\n');
            }
            let json = json!({
                "scope": r.scope, "dry_run": r.dry_run, "plan": r.plan, "notes": r.notes, "failures": r.failures,
                "applied": r.applied.map(|a| json!({
                    "vip_added": a.vip_added, "vip_removed": a.vip_removed, "as_added": a.as_added,
                    "as_removed": a.as_removed, "as_weight_updated": a.as_weight_updated,
                })),
            });
            if !r.failures.is_empty() {
                return Err(CliError::Server(r.failures.join("; ")));
            }
            out(text, json)
        }
        Command::SetBackend { name, action } => {
            let req = pb::BackendActionRequest { name: name.clone() };
            let b = match action.as_str() {
                "pause" => client.pause_backend(req).await,
                "resume" => client.resume_backend(req).await,
                "enable" => client.enable_backend(req).await,
                "disable" => client.disable_backend(req).await,
                other => return Err(CliError::Usage(format!("unknown action {other}"))),
            }
            .map_err(server)?
            .into_inner();
            out(
                format!("{}: {} (enabled {})\n", b.name, b.state, b.enabled),
                backend_json(&b),
            )
        }
        Command::SetWeight {
            frontend,
            pool,
            backend,
            weight,
        } => {
            let f = client
                .set_frontend_pool_backend_weight(pb::SetWeightRequest {
                    frontend: frontend.clone(),
                    pool: pool.clone(),
                    backend: backend.clone(),
                    weight: u64::from(*weight),
                })
                .await
                .map_err(server)?
                .into_inner();
            out(frontend_text(style, &f), frontend_json(&f))
        }
        Command::ConfigCheck | Command::ConfigReload => {
            let r = if *cmd == Command::ConfigCheck {
                client.check_config(pb::CheckConfigRequest::default()).await
            } else {
                client.reload_config(pb::ReloadConfigRequest {}).await
            }
            .map_err(server)?
            .into_inner();
            let json = json!({ "ok": r.ok, "parse_error": r.parse_error, "semantic_error": r.semantic_error, "warnings": r.warnings });
            if !r.ok {
                let message = if r.parse_error.is_empty() {
                    r.semantic_error
                } else {
                    r.parse_error
                };
                return Err(CliError::Failed { message, json });
            }
            let mut text = String::from("config ok\n");
            for w in &r.warnings {
                text.push_str(&format!("warning: {w}\n"));
            }
            out(text, json)
        }
        Command::Lookup {
            frontend,
            source,
            dst_port,
        } => {
            let f = client
                .get_frontend(pb::GetFrontendRequest {
                    name: frontend.clone(),
                })
                .await
                .map_err(server)?
                .into_inner();
            let (ip, port) = parse_source(source)?;
            let d = predict_input(&f)?;
            let p = maglev_table::predict(d.table_len, &d.ases);
            let dport = dst_port.unwrap_or(f.port as u16);
            let (slot, hit) = maglev_table::lookup(d.vip, d.sticky, &p, ip, port, dport);
            let backend = hit.map(|a| name_of(&f, a));
            let text = match (&backend, hit) {
                (Some(b), Some(a)) => format!(
                    "{source} -> {}:{dport}: slot {slot} -> {b} ({a})\n",
                    f.address
                ),
                _ => format!(
                    "{source} -> {}:{dport}: slot {slot} -> no backend (dropped)\n",
                    f.address
                ),
            };
            out(
                text,
                json!({ "frontend": f.name, "source": source, "dst_port": dport, "slot": slot,
                        "backend": backend, "address": hit.map(|a| a.to_string()) }),
            )
        }
        Command::WatchEvents { .. } | Command::Quit => {
            Err(CliError::Usage("not a request/reply command".to_string()))
        }
    }
}

fn parse_source(s: &str) -> Result<(IpAddr, u16), CliError> {
    let bad = || CliError::Usage(format!("{s:?} is not ADDRESS or ADDRESS:PORT"));
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((ip, 0));
    }
    let sa: std::net::SocketAddr = s.parse().map_err(|_| bad())?;
    Ok((sa.ip(), sa.port()))
}
