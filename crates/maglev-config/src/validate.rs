//! Semantic validation: raw YAML types in, domain types out.
//!
//! Validation never stops at the first problem. Each section is checked on
//! its own and a best-effort domain value is still produced for a broken
//! entry, so later cross-references (a pool naming that backend, say) are
//! checked too and the operator sees every problem in one run.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::duration::format_duration;
use crate::error::Diagnostic;
use crate::locate::SourceIndex;
use crate::model::*;
use crate::raw::*;

// Defaults, each with the reason for its value.

/// Enough to see a flap pattern in `maglevc show backend`; matches the Go tool.
const DEFAULT_TRANSITION_HISTORY: i64 = 5;
/// Upper bound keeps the per-backend memory of the history small.
const MAX_TRANSITION_HISTORY: i64 = 10_000;
/// Matches the Go tool: drift is repaired within half a minute.
const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(30);
/// Matches the Go tool: long enough for a first probe of every backend.
const DEFAULT_STARTUP_MIN_DELAY: Duration = Duration::from_secs(5);
/// Matches the Go tool: a backend still unknown after 30 s is probably down.
const DEFAULT_STARTUP_MAX_DELAY: Duration = Duration::from_secs(30);
/// HAProxy's default `inter`.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// HAProxy's default `timeout check` is the interval; one second keeps a
/// dead backend from holding a probe slot for long.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// HAProxy's defaults: two passes up, three failures down.
const DEFAULT_RISE: i64 = 2;
const DEFAULT_FALL: i64 = 3;
/// Rise and fall beyond this are typos, and the counter must fit a u32.
const MAX_RISE_FALL: i64 = 1000;
/// Shorter intervals would turn a probe loop into a busy loop.
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// The longest interval, timeout or sync interval: a day. Beyond it, time
/// arithmetic at run time could overflow (`Instant + Duration`).
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The longest startup delay.
const MAX_STARTUP_DELAY: Duration = Duration::from_secs(3600);
/// VPP's own default table length (lb.api); 0 must never reach the wire.
const DEFAULT_TABLE_LENGTH: i64 = 1024;
/// 16 M slots (64 MiB per VIP in VPP) is far beyond any sane VIP.
const MAX_TABLE_LENGTH: i64 = 1 << 24;
/// Names end up in CLI words, metric labels and log fields.
const MAX_NAME_LEN: usize = 64;
/// Pool weights are VPP AS weights, 0..=100 (the lb CLI's range).
const MAX_WEIGHT: i64 = 100;

fn power_of_two_in(n: i64, max: i64) -> bool {
    (1..=max).contains(&n) && (n as u64).is_power_of_two()
}

/// Errors (and warnings) reported in full; the rest are counted.
pub const MAX_REPORTED: usize = 100;

pub(crate) struct Validated {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

pub(crate) struct Invalid {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

pub(crate) fn validate(raw: RawMaglev, index: &SourceIndex) -> Result<Validated, Invalid> {
    let mut v = Validator {
        index,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let healthchecker = v.healthchecker(raw.healthchecker.unwrap_or_default());
    let lb = v.lb(raw.vpp.and_then(|vpp| vpp.lb));
    let healthchecks = v.healthchecks(raw.healthchecks.unwrap_or_default());
    let backends = v.backends(raw.backends.unwrap_or_default(), &healthchecks);
    let frontends = v.frontends(raw.frontends.unwrap_or_default(), &backends);
    v.vip_conflicts(&frontends);
    v.unused(&healthchecks, &backends, &frontends);

    let sort = |d: &mut Vec<Diagnostic>| {
        // File order reads best; problems without a position go last.
        d.sort_by_key(|d| (d.location.is_none(), d.location));
    };
    sort(&mut v.errors);
    sort(&mut v.warnings);
    // A bounded report: the first problems in file order and a count of
    // the rest (a generated file can have thousands of one mistake).
    let cap = |d: &mut Vec<Diagnostic>, what: &str| {
        if d.len() > MAX_REPORTED {
            let more = d.len() - MAX_REPORTED;
            d.truncate(MAX_REPORTED);
            d.push(Diagnostic {
                path: String::new(),
                message: format!("{more} more {what} not shown"),
                location: None,
            });
        }
    };
    cap(&mut v.errors, "errors");
    cap(&mut v.warnings, "warnings");
    if v.errors.is_empty() {
        Ok(Validated {
            config: Config {
                healthchecker,
                lb,
                healthchecks,
                backends,
                frontends,
            },
            warnings: v.warnings,
        })
    } else {
        Err(Invalid {
            errors: v.errors,
            warnings: v.warnings,
        })
    }
}

struct Validator<'a> {
    index: &'a SourceIndex,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn diag(&self, path: &str, message: String) -> Diagnostic {
        Diagnostic {
            path: path.to_string(),
            message,
            location: self.index.locate(path),
        }
    }

    fn error(&mut self, path: &str, message: impl Into<String>) {
        let d = self.diag(path, message.into());
        self.errors.push(d);
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        let d = self.diag(path, message.into());
        self.warnings.push(d);
    }

    /// Checks an integer against an inclusive range; returns it clamped so
    /// validation can go on.
    fn ranged(&mut self, path: &str, value: i64, lo: i64, hi: i64) -> i64 {
        if value < lo || value > hi {
            self.error(path, format!("{value} is out of range {lo}..{hi}"));
        }
        value.clamp(lo, hi)
    }

    fn positive_duration(&mut self, path: &str, value: Duration) -> Duration {
        if value < MIN_INTERVAL {
            self.error(
                path,
                format!("must be at least 1ms, got {}", format_duration(value)),
            );
            return MIN_INTERVAL;
        }
        if value > MAX_INTERVAL {
            self.error(
                path,
                format!("{} is out of range 1ms..24h", format_duration(value)),
            );
            return MAX_INTERVAL;
        }
        value
    }

    /// A startup delay: 0..1h (the clock it is added to must not overflow,
    /// and an hour without writes is already more than anyone means).
    fn startup_delay(
        &mut self,
        path: &str,
        value: Option<RawDuration>,
        default: Duration,
    ) -> Duration {
        let Some(RawDuration(d)) = value else {
            return default;
        };
        if d > MAX_STARTUP_DELAY {
            self.error(
                path,
                format!("{} is out of range 0s..1h", format_duration(d)),
            );
            return MAX_STARTUP_DELAY;
        }
        d
    }

    fn name(&mut self, path: &str, what: &str, name: &str) {
        let valid_first = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let valid_rest = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if name.is_empty() {
            self.error(path, format!("{what} name must not be empty"));
        } else if !valid_first || !valid_rest || name.len() > MAX_NAME_LEN {
            self.error(
                path,
                format!(
                    "invalid {what} name {name:?}: use letters, digits, '_', '-' and '.', \
                     starting with a letter, digit or '_', at most {MAX_NAME_LEN} characters"
                ),
            );
        }
    }

    fn unicast(&mut self, path: &str, addr: IpAddr) {
        let bad = match addr {
            IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
            IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
        };
        if bad {
            self.error(path, format!("{addr} is not a unicast address"));
        }
    }

    fn healthchecker(&mut self, raw: RawHealthChecker) -> HealthChecker {
        let th = raw.transition_history.unwrap_or(DEFAULT_TRANSITION_HISTORY);
        let th = self.ranged(
            "healthchecker.transition-history",
            th,
            1,
            MAX_TRANSITION_HISTORY,
        );
        HealthChecker {
            transition_history: th as usize,
            netns: raw.netns.filter(|n| !n.is_empty()),
        }
    }

    fn lb(&mut self, raw: Option<RawLb>) -> LbSettings {
        let raw = raw.unwrap_or_default();
        let ipv4_src_address = match raw.ipv4_src_address {
            Some(IpAddr::V4(a)) => {
                self.unicast("vpp.lb.ipv4-src-address", IpAddr::V4(a));
                a
            }
            Some(other) => {
                self.error(
                    "vpp.lb.ipv4-src-address",
                    format!("{other} is not an IPv4 address"),
                );
                Ipv4Addr::UNSPECIFIED
            }
            None => {
                self.error(
                    "vpp.lb.ipv4-src-address",
                    "required: the outer source address of GRE4 packets",
                );
                Ipv4Addr::UNSPECIFIED
            }
        };
        let ipv6_src_address = match raw.ipv6_src_address {
            Some(IpAddr::V6(a)) => {
                self.unicast("vpp.lb.ipv6-src-address", IpAddr::V6(a));
                a
            }
            Some(other) => {
                self.error(
                    "vpp.lb.ipv6-src-address",
                    format!("{other} is not an IPv6 address"),
                );
                Ipv6Addr::UNSPECIFIED
            }
            None => {
                self.error(
                    "vpp.lb.ipv6-src-address",
                    "required: the outer source address of GRE6 packets",
                );
                Ipv6Addr::UNSPECIFIED
            }
        };
        let sync_interval = match raw.sync_interval {
            Some(RawDuration(d)) => self.positive_duration("vpp.lb.sync-interval", d),
            None => DEFAULT_SYNC_INTERVAL,
        };
        let sticky_buckets_per_core = raw.sticky_buckets_per_core.map(|n| {
            let path = "vpp.lb.sticky-buckets-per-core";
            if !power_of_two_in(n, 1 << 31) {
                self.error(
                    path,
                    format!("{n} is not a power of two between 1 and 2147483648"),
                );
                1024
            } else {
                n as u32
            }
        });
        let flow_timeout = raw.flow_timeout.map(|RawDuration(d)| {
            let path = "vpp.lb.flow-timeout";
            if d.subsec_nanos() != 0 {
                self.error(
                    path,
                    format!(
                        "{} is not a whole number of seconds (VPP counts in seconds)",
                        format_duration(d)
                    ),
                );
            } else if !(1..=120).contains(&d.as_secs()) {
                self.error(
                    path,
                    format!("{} is out of range 1s..120s", format_duration(d)),
                );
            }
            d
        });
        let startup_min_delay = self.startup_delay(
            "vpp.lb.startup-min-delay",
            raw.startup_min_delay,
            DEFAULT_STARTUP_MIN_DELAY,
        );
        let startup_max_delay = self.startup_delay(
            "vpp.lb.startup-max-delay",
            raw.startup_max_delay,
            DEFAULT_STARTUP_MAX_DELAY,
        );
        if startup_max_delay < startup_min_delay {
            let path = if raw.startup_max_delay.is_some() {
                "vpp.lb.startup-max-delay"
            } else {
                "vpp.lb.startup-min-delay"
            };
            self.error(
                path,
                format!(
                    "startup-max-delay ({}) must not be less than startup-min-delay ({})",
                    format_duration(startup_max_delay),
                    format_duration(startup_min_delay)
                ),
            );
        }
        LbSettings {
            ipv4_src_address,
            ipv6_src_address,
            sync_interval,
            sticky_buckets_per_core,
            flow_timeout,
            startup_min_delay,
            startup_max_delay,
        }
    }

    fn healthchecks(
        &mut self,
        raw: BTreeMap<String, RawHealthCheck>,
    ) -> BTreeMap<String, Arc<HealthCheck>> {
        raw.into_iter()
            .map(|(name, hc)| {
                let check = self.healthcheck(&name, hc);
                (name, Arc::new(check))
            })
            .collect()
    }

    fn healthcheck(&mut self, name: &str, raw: RawHealthCheck) -> HealthCheck {
        let base = format!("healthchecks.{name}");
        let at = |key: &str| format!("{base}.{key}");
        self.name(&base, "health check", name);

        let port = raw
            .port
            .map(|p| self.ranged(&at("port"), p, 1, u16::MAX.into()) as u16);
        let params = raw.params;
        if raw.grpc.is_some() && raw.kind != RawCheckType::Grpc {
            self.warn(&at("grpc"), "ignored: only grpc checks take it");
        }
        let spec = match raw.kind {
            RawCheckType::Http | RawCheckType::Https => {
                let https = raw.kind == RawCheckType::Https;
                let default_port = if https { 443 } else { 80 };
                self.http_check(&base, port.unwrap_or(default_port), https, params)
            }
            RawCheckType::Tcp => {
                if params.is_some() {
                    self.warn(&at("params"), "ignored: tcp checks take no params");
                }
                match port {
                    Some(port) => CheckSpec::Tcp { port },
                    None => {
                        self.error(&at("port"), "required for a tcp health check");
                        CheckSpec::Tcp { port: 1 }
                    }
                }
            }
            RawCheckType::Grpc => {
                if params.is_some() {
                    self.warn(
                        &at("params"),
                        "ignored: grpc checks take `grpc:`, not params",
                    );
                }
                let port = port.unwrap_or_else(|| {
                    self.error(&at("port"), "required for a grpc health check");
                    1
                });
                self.grpc_check(&base, port, raw.grpc.unwrap_or_default())
            }
            RawCheckType::Icmp => {
                if port.is_some() {
                    self.warn(&at("port"), "ignored: icmp checks have no port");
                }
                if params.is_some() {
                    self.warn(&at("params"), "ignored: icmp checks take no params");
                }
                CheckSpec::Icmp
            }
        };

        let mut dur = |key: &str, value: Option<RawDuration>, default: Duration| match value {
            Some(RawDuration(d)) => self.positive_duration(&at(key), d),
            None => default,
        };
        let interval = dur("interval", raw.interval, DEFAULT_INTERVAL);
        let fast_interval = dur("fast-interval", raw.fast_interval, interval);
        let down_interval = dur("down-interval", raw.down_interval, interval);
        let timeout = dur("timeout", raw.timeout, DEFAULT_TIMEOUT);
        let rise = raw.rise.unwrap_or(DEFAULT_RISE);
        let rise = self.ranged(&at("rise"), rise, 1, MAX_RISE_FALL) as u32;
        let fall = raw.fall.unwrap_or(DEFAULT_FALL);
        let fall = self.ranged(&at("fall"), fall, 1, MAX_RISE_FALL) as u32;
        let flap = raw.flap.and_then(|f| self.flap_rule(&base, f, interval));
        let agent = raw.agent.and_then(|a| {
            let port = match a.port {
                Some(p) => self.ranged(&format!("{base}.agent.port"), p, 1, u16::MAX.into()) as u16,
                None => {
                    self.error(&format!("{base}.agent.port"), "required");
                    return None;
                }
            };
            let interval = match a.interval {
                Some(RawDuration(d)) => {
                    self.positive_duration(&format!("{base}.agent.interval"), d)
                }
                None => interval,
            };
            let send = a.send.unwrap_or_default();
            if send.len() > 1024 {
                self.error(&format!("{base}.agent.send"), "longer than 1024 bytes");
            }
            Some(AgentCheck {
                port,
                interval,
                send,
            })
        });

        HealthCheck {
            name: name.to_string(),
            spec,
            interval,
            fast_interval,
            down_interval,
            timeout,
            rise,
            fall,
            flap,
            agent,
        }
    }

    fn flap_rule(&mut self, base: &str, f: RawFlap, interval: Duration) -> Option<FlapRule> {
        let at = |key: &str| format!("{base}.flap.{key}");
        let max_transitions = match f.max_transitions {
            Some(n) => self.ranged(&at("max-transitions"), n, 1, 1000) as u32,
            None => {
                self.error(&at("max-transitions"), "required");
                return None;
            }
        };
        let window = match f.window {
            Some(RawDuration(w)) => self.positive_duration(&at("window"), w),
            None => {
                self.error(&at("window"), "required");
                return None;
            }
        };
        if window < interval {
            self.error(
                &at("window"),
                format!(
                    "{} is shorter than the probe interval {}: no two transitions could fall in it",
                    format_duration(window),
                    format_duration(interval)
                ),
            );
        }
        let hold_down = match f.hold_down {
            Some(RawDuration(h)) => self.positive_duration(&at("hold-down"), h),
            None => {
                self.error(&at("hold-down"), "required");
                return None;
            }
        };
        Some(FlapRule {
            max_transitions,
            window,
            hold_down,
        })
    }

    fn grpc_check(&mut self, base: &str, port: u16, g: RawGrpc) -> CheckSpec {
        // `authority` names the host the call is for; its host part is
        // also the TLS server name.
        let at = |key: &str| format!("{base}.grpc.{key}");
        let service = g.service.unwrap_or_default();
        if service.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.error(
                &at("service"),
                format!("{service:?} is not a gRPC service name"),
            );
        }
        let authority = g.authority.filter(|a| !a.is_empty());
        // The probe puts it in the call's URI as it is: the URI's own
        // parser decides, so what loads is what a probe can send.
        let bad_authority = authority
            .as_deref()
            .filter(|a| a.contains('@') || a.parse::<http::uri::Authority>().is_err());
        if let Some(a) = bad_authority {
            self.error(&at("authority"), format!("{a:?} is not a host[:port]"));
        }
        let tls = g.tls.is_some_and(|b| b.0);
        let insecure = g.insecure.is_some_and(|b| b.0);
        if insecure && !tls {
            self.error(&at("insecure"), "needs `tls: true`");
        }
        let server_name = authority.as_deref().map(authority_host);
        if tls && bad_authority.is_none() {
            // One error per key: a bad authority has said its own.
            self.tls_server_name(&at("authority"), server_name.as_deref());
        }
        CheckSpec::Grpc(GrpcCheck {
            port,
            service,
            tls: tls.then_some(TlsOptions {
                server_name,
                insecure,
            }),
            authority,
        })
    }

    /// A TLS server name (SNI, and the name the certificate must carry)
    /// must be one TLS can send: a DNS name or an IP address. Anything
    /// else would fail every probe of the check instead of the load.
    fn tls_server_name(&mut self, path: &str, name: Option<&str>) {
        let Some(name) = name else { return };
        if rustls_pki_types::ServerName::try_from(name).is_err() {
            self.error(
                path,
                format!("{name:?} is not a TLS server name (a DNS name or an IP address)"),
            );
        }
    }

    fn http_check(
        &mut self,
        base: &str,
        port: u16,
        https: bool,
        params: Option<RawParams>,
    ) -> CheckSpec {
        let at = |key: &str| format!("{base}.params.{key}");
        let p = params.unwrap_or_default();
        let path = p.path.unwrap_or_else(|| "/".to_string());
        // What the probe can put on the request line and in the Host
        // header as they are: visible ASCII. Anything else passed here
        // would fail every probe of the check instead of the load.
        let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        if !path.starts_with('/') || !visible(&path) {
            self.error(
                &at("path"),
                format!(
                    "{path:?} must start with '/' and be visible ASCII: no spaces; \
                     percent-encode other characters"
                ),
            );
        }
        let host = p.host.filter(|h| !h.is_empty());
        let bad_host = host.as_deref().is_some_and(|h| !visible(h));
        if let Some(h) = &host {
            if bad_host {
                self.error(
                    &at("host"),
                    format!(
                        "{h:?} is not a valid Host header: visible ASCII only \
                         (an internationalized name in its xn-- form)"
                    ),
                );
            }
        }
        let method = match p.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("GET") => HttpMethod::Get,
            Some("HEAD") => HttpMethod::Head,
            Some(other) => {
                self.error(&at("method"), format!("{other:?} is not GET or HEAD"));
                HttpMethod::Get
            }
        };
        let response_codes = match p.response_codes {
            None => StatusCodes::default(),
            Some(StringOrInt(text)) => StatusCodes::parse(&text).unwrap_or_else(|why| {
                self.error(&at("response-codes"), why);
                StatusCodes::default()
            }),
        };
        let response_regex = p.response_regex.and_then(|re| match BodyRegex::new(&re) {
            Ok(re) => Some(re),
            Err(e) => {
                let first_line = e.to_string().lines().last().unwrap_or_default().to_string();
                self.error(
                    &at("response-regex"),
                    format!("invalid regex {re:?}: {}", first_line.trim()),
                );
                None
            }
        });
        let tls = if https {
            // The Host header may carry a port; the TLS name is its host.
            let key = if p.server_name.is_some() {
                "server-name"
            } else {
                "host"
            };
            let server_name = p
                .server_name
                .or_else(|| host.as_deref().map(authority_host));
            if key == "server-name" || !bad_host {
                // One error per key: a bad host has said its own.
                self.tls_server_name(&at(key), server_name.as_deref());
            }
            Some(TlsOptions {
                server_name,
                insecure: p.insecure.is_some_and(|b| b.0),
            })
        } else {
            if p.server_name.is_some() {
                self.error(&at("server-name"), "only valid for type https");
            }
            if p.insecure.is_some() {
                self.error(&at("insecure"), "only valid for type https");
            }
            None
        };
        CheckSpec::Http(HttpCheck {
            port,
            path,
            host,
            method,
            response_codes,
            response_regex,
            tls,
        })
    }

    fn backends(
        &mut self,
        raw: BTreeMap<String, RawBackend>,
        healthchecks: &BTreeMap<String, Arc<HealthCheck>>,
    ) -> BTreeMap<String, Backend> {
        let mut out = BTreeMap::new();
        for (name, b) in raw {
            let base = format!("backends.{name}");
            self.name(&base, "backend", &name);
            let address = match b.address {
                Some(a) => {
                    self.unicast(&format!("{base}.address"), a);
                    a
                }
                None => {
                    self.error(&format!("{base}.address"), "required");
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                }
            };
            let healthcheck = b.healthcheck.and_then(|hc| match healthchecks.get(&hc) {
                Some(check) => Some(Arc::clone(check)),
                None => {
                    self.error(
                        &format!("{base}.healthcheck"),
                        format!("no such health check {hc:?}"),
                    );
                    None
                }
            });
            let backend = Backend {
                name: name.clone(),
                address,
                healthcheck,
                enabled: b.enabled.is_none_or(|e| e.0),
            };
            out.insert(name, backend);
        }
        out
    }

    fn frontends(
        &mut self,
        raw: BTreeMap<String, RawFrontend>,
        backends: &BTreeMap<String, Backend>,
    ) -> BTreeMap<String, Frontend> {
        raw.into_iter()
            .map(|(name, f)| {
                let frontend = self.frontend(&name, f, backends);
                (name, frontend)
            })
            .collect()
    }

    fn frontend(
        &mut self,
        name: &str,
        raw: RawFrontend,
        backends: &BTreeMap<String, Backend>,
    ) -> Frontend {
        let base = format!("frontends.{name}");
        let at = |key: &str| format!("{base}.{key}");
        self.name(&base, "frontend", name);
        let address = match raw.address {
            Some(a) => {
                self.unicast(&at("address"), a);
                a
            }
            None => {
                self.error(&at("address"), "required: the VIP address");
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            }
        };
        let port = raw.port.map_or(0, |p| {
            self.ranged(&at("port"), p, 0, u16::MAX.into()) as u16
        });
        let protocol = match (raw.protocol, port) {
            (None | Some(RawProtocol::Any), 0) => Protocol::Any,
            (Some(RawProtocol::Any), _) => {
                self.error(
                    &at("protocol"),
                    format!("protocol any covers all ports and requires port 0, not {port}"),
                );
                Protocol::Any
            }
            (Some(written @ (RawProtocol::Tcp | RawProtocol::Udp)), 0) => {
                // VPP stores every port-0 VIP with protocol 255.
                let written = if written == RawProtocol::Tcp {
                    "tcp"
                } else {
                    "udp"
                };
                self.warn(
                    &at("protocol"),
                    format!("{written} with port 0 becomes an all-port, all-protocol VIP (any)"),
                );
                Protocol::Any
            }
            (None | Some(RawProtocol::Tcp), _) => Protocol::Tcp,
            (Some(RawProtocol::Udp), _) => Protocol::Udp,
        };
        let table = raw.new_flows_table_length.unwrap_or(DEFAULT_TABLE_LENGTH);
        let new_flows_table_length = if !power_of_two_in(table, MAX_TABLE_LENGTH) {
            self.error(
                &at("new-flows-table-length"),
                format!("{table} is not a power of two between 1 and {MAX_TABLE_LENGTH}"),
            );
            DEFAULT_TABLE_LENGTH as u32
        } else {
            table as u32
        };

        let panic_threshold = raw.panic_threshold.and_then(|Percent(p)| {
            let n = p.trim().strip_suffix('%').unwrap_or(p.trim()).trim();
            match n.parse::<u8>() {
                Ok(v @ 1..=100) => Some(v),
                _ => {
                    self.error(
                        &at("panic-threshold"),
                        format!("{p:?} is not a percentage from 1 to 100 (e.g. 50 or \"50%\")"),
                    );
                    None
                }
            }
        });
        let slow_start = raw.slow_start.and_then(|RawDuration(d)| {
            if (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&d) {
                Some(d)
            } else {
                self.error(
                    &at("slow-start"),
                    format!(
                        "{} is out of range 1s..1h (the ramp moves a step a second)",
                        format_duration(d)
                    ),
                );
                None
            }
        });
        let pools = self.pools(&base, raw.pools.unwrap_or_default(), backends);
        let backend_family = self.backend_family(&base, &pools, backends);

        let members: usize = pools.iter().map(|p| p.backends.len()).sum();
        if members as u64 * 100 > u64::from(new_flows_table_length) {
            self.warn(
                &at("new-flows-table-length"),
                format!(
                    "{new_flows_table_length} slots for {members} backends: under 100 slots per \
                     backend makes traffic shares uneven; consider {}",
                    (members as u64 * 100).next_power_of_two()
                ),
            );
        }

        Frontend {
            name: name.to_string(),
            description: raw.description.unwrap_or_default(),
            address,
            protocol,
            port,
            src_ip_sticky: raw.src_ip_sticky.is_some_and(|b| b.0),
            flush_on_down: raw.flush_on_down.is_none_or(|b| b.0),
            new_flows_table_length,
            panic_threshold,
            slow_start,
            backend_family,
            pools,
        }
    }

    fn pools(
        &mut self,
        base: &str,
        raw: Vec<RawPool>,
        backends: &BTreeMap<String, Backend>,
    ) -> Vec<Pool> {
        if raw.is_empty() {
            self.error(&format!("{base}.pools"), "at least one pool is required");
        }
        let mut pool_names: HashMap<String, usize> = HashMap::new();
        // backend name → (pool index, pool name) of its first membership
        let mut seen_backend: HashMap<String, (usize, String)> = HashMap::new();
        // address → backend name, within this frontend
        let mut seen_address: HashMap<IpAddr, String> = HashMap::new();
        let mut pools = Vec::with_capacity(raw.len());
        for (i, p) in raw.into_iter().enumerate() {
            let pbase = format!("{base}.pools[{i}]");
            let name = p.name.unwrap_or_default();
            if name.is_empty() {
                self.error(&format!("{pbase}.name"), "pool name is required");
            } else {
                self.name(&format!("{pbase}.name"), "pool", &name);
                if let Some(first) = pool_names.get(&name) {
                    self.error(
                        &format!("{pbase}.name"),
                        format!("duplicate pool name {name:?} (also pools[{first}])"),
                    );
                } else {
                    pool_names.insert(name.clone(), i);
                }
            }
            let members = p.backends.unwrap_or_default();
            if members.is_empty() {
                self.error(
                    &format!("{pbase}.backends"),
                    "a pool needs at least one backend",
                );
            }
            let mut out = Vec::with_capacity(members.len());
            for (bname, m) in members {
                let mpath = format!("{pbase}.backends.{bname}");
                let weight = m.weight.unwrap_or(MAX_WEIGHT);
                let weight = if (0..=MAX_WEIGHT).contains(&weight) {
                    weight as u8
                } else {
                    self.error(
                        &format!("{mpath}.weight"),
                        format!("{weight} is out of range 0..{MAX_WEIGHT}"),
                    );
                    0
                };
                match backends.get(&bname) {
                    None => self.error(&mpath, "no such backend"),
                    Some(b) => {
                        if let Some((_, pool)) = seen_backend.get(&bname) {
                            self.error(
                                &mpath,
                                format!(
                                    "backend already used by pool {pool:?} of this frontend; \
                                     a backend may appear once per frontend"
                                ),
                            );
                        } else if let Some(other) = seen_address.get(&b.address) {
                            self.error(
                                &mpath,
                                format!(
                                    "same address {} as backend {other:?}; VPP would see one \
                                     application server twice",
                                    b.address
                                ),
                            );
                        }
                        seen_backend
                            .entry(bname.clone())
                            .or_insert((i, name.clone()));
                        seen_address
                            .entry(b.address)
                            .or_insert_with(|| bname.clone());
                    }
                }
                out.push(PoolMember {
                    backend: bname,
                    weight,
                });
            }
            pools.push(Pool {
                name,
                backends: out,
            });
        }
        pools
    }

    /// All backends of one frontend must share a family: it decides the
    /// VIP's GRE4/GRE6 encap, and VPP rejects ASes of the other family.
    fn backend_family(
        &mut self,
        base: &str,
        pools: &[Pool],
        backends: &BTreeMap<String, Backend>,
    ) -> Family {
        let mut first: Option<(Family, &str)> = None;
        for (i, pool) in pools.iter().enumerate() {
            for m in &pool.backends {
                let Some(b) = backends.get(&m.backend) else {
                    continue;
                };
                let family = Family::of(&b.address);
                match first {
                    None => first = Some((family, &m.backend)),
                    Some((f, other)) if f != family => self.error(
                        &format!("{base}.pools[{i}].backends.{}", m.backend),
                        format!(
                            "{family} backend in a frontend whose backends are {f} \
                             (e.g. {other:?}); all backends of a frontend share one family"
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
        first.map_or(Family::V4, |(f, _)| f)
    }

    /// VPP keys VIPs by (prefix, protocol, port) and refuses some overlaps.
    /// Each frontend is checked against what came before it on its address
    /// (one error per frontend at most, and no all-pairs scan).
    fn vip_conflicts(&mut self, frontends: &BTreeMap<String, Frontend>) {
        #[derive(Default)]
        struct OnAddress<'a> {
            keys: HashMap<(String, u16), &'a str>,
            all_ports: Option<&'a str>,
            per_port: Option<(&'a str, Family)>,
        }
        let mut by_address: HashMap<IpAddr, OnAddress<'_>> = HashMap::new();
        for a in frontends.values() {
            let seen = by_address.entry(a.address).or_default();
            let path = format!("frontends.{}.address", a.name);
            let key = (a.protocol.to_string(), a.port);
            if let Some(b) = seen.keys.get(&key) {
                self.error(
                    &path,
                    format!(
                        "same VIP ({} {} port {}) as frontend {b:?}",
                        a.address, a.protocol, a.port
                    ),
                );
            } else if let Some(b) = (a.port == 0)
                .then(|| seen.per_port.map(|(n, _)| n))
                .flatten()
                .or(if a.port != 0 { seen.all_ports } else { None })
            {
                self.error(
                    &path,
                    format!(
                        "VPP cannot have an all-port VIP and a per-port VIP on one address \
                         ({} is also used by frontend {b:?})",
                        a.address
                    ),
                );
            } else if let Some((b, family)) = seen
                .per_port
                .filter(|(_, f)| a.port != 0 && *f != a.backend_family)
            {
                self.error(
                    &path,
                    format!(
                        "per-port VIPs on one address must share an encap, but this one has \
                         {} backends and frontend {b:?} has {family} backends",
                        a.backend_family
                    ),
                );
            }
            seen.keys.entry(key).or_insert(&a.name);
            if a.port == 0 {
                seen.all_ports.get_or_insert(&a.name);
            } else {
                seen.per_port.get_or_insert((&a.name, a.backend_family));
            }
        }
    }

    fn unused(
        &mut self,
        healthchecks: &BTreeMap<String, Arc<HealthCheck>>,
        backends: &BTreeMap<String, Backend>,
        frontends: &BTreeMap<String, Frontend>,
    ) {
        let used: std::collections::HashSet<&str> = frontends
            .values()
            .flat_map(Frontend::backend_names)
            .collect();
        for name in backends.keys() {
            if !used.contains(name.as_str()) {
                self.warn(
                    &format!("backends.{name}"),
                    "not used by any frontend; it will not be probed",
                );
            }
        }
        for name in healthchecks.keys() {
            let used = backends
                .values()
                .any(|b| b.healthcheck.as_ref().is_some_and(|h| h.name == *name));
            if !used {
                self.warn(&format!("healthchecks.{name}"), "not used by any backend");
            }
        }
    }
}

/// The host of an authority `host[:port]` (`[v6]:port` too).
fn authority_host(a: &str) -> String {
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    match a.split_once(':') {
        Some((h, port)) if !port.contains(':') => h.to_string(),
        _ => a.to_string(),
    }
}
