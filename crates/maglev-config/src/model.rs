//! Validated configuration: the types the rest of the workspace uses.
//!
//! Every value here has passed validation: references resolve, ranges hold,
//! defaults are applied. Code that holds a [`Config`] can index
//! `config.backends[name]` for any name a pool mentions without checking.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

/// A complete, valid `maglev.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Global health-checker settings (`maglev.healthchecker`).
    pub healthchecker: HealthChecker,
    /// VPP load-balancer settings (`maglev.vpp.lb`).
    pub lb: LbSettings,
    /// Reusable probe definitions by name (`maglev.healthchecks`).
    pub healthchecks: BTreeMap<String, Arc<HealthCheck>>,
    /// Real servers by name (`maglev.backends`).
    pub backends: BTreeMap<String, Backend>,
    /// VIPs by name (`maglev.frontends`).
    pub frontends: BTreeMap<String, Frontend>,
}

impl Config {
    /// Names of the frontends that reference `backend` in any pool, sorted.
    pub fn frontends_using(&self, backend: &str) -> Vec<&str> {
        self.frontends
            .iter()
            .filter(|(_, f)| f.member(backend).is_some())
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Whether any frontend references `backend`. Only referenced backends
    /// are probed. (Linear in the pool members: for every backend at once,
    /// use [`Config::backend_users`].)
    pub fn backend_in_use(&self, backend: &str) -> bool {
        self.frontends.values().any(|f| f.member(backend).is_some())
    }

    /// For every backend some pool references, the frontends that do
    /// (sorted, each once), in one pass over the pools: asking
    /// [`Config::frontends_using`] per backend would be quadratic.
    pub fn backend_users(&self) -> HashMap<&str, Vec<&str>> {
        let mut users: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, f) in &self.frontends {
            for b in f.backend_names() {
                let list = users.entry(b).or_default();
                // Frontends come in name order, so a repeat is the last.
                if list.last() != Some(&name.as_str()) {
                    list.push(name);
                }
            }
        }
        users
    }
}

/// `maglev.healthchecker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChecker {
    /// How many state transitions are kept per backend (≥ 1; default 5).
    pub transition_history: usize,
    /// Network namespace the probes run in; `None` = the daemon's own.
    pub netns: Option<String>,
}

/// `maglev.vpp.lb`: what goes into VPP's `lb_conf` plus the sync timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbSettings {
    /// Outer source address of GRE4 packets.
    pub ipv4_src_address: Ipv4Addr,
    /// Outer source address of GRE6 packets.
    pub ipv6_src_address: Ipv6Addr,
    /// Period of the full drift-reconciliation sync (default 30 s).
    pub sync_interval: Duration,
    /// Sticky-table buckets per worker, a power of two; `None` leaves VPP's
    /// current value alone.
    pub sticky_buckets_per_core: Option<u32>,
    /// Idle timeout of sticky entries, whole seconds 1..=120; `None` leaves
    /// VPP's current value alone.
    pub flow_timeout: Option<Duration>,
    /// Warmup: nothing is written to VPP before this much time after start.
    pub startup_min_delay: Duration,
    /// Warmup: a final full sync runs at this point after start.
    pub startup_max_delay: Duration,
}

impl LbSettings {
    /// Whether the startup warmup is switched off (both delays 0).
    pub fn warmup_disabled(&self) -> bool {
        self.startup_min_delay.is_zero() && self.startup_max_delay.is_zero()
    }
}

/// A named probe definition (`maglev.healthchecks.<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The key under `healthchecks`.
    pub name: String,
    /// What the probe does.
    pub spec: CheckSpec,
    /// Probe period while the backend is fully up.
    pub interval: Duration,
    /// Probe period while the counter is between the ends (also in unknown).
    pub fast_interval: Duration,
    /// Probe period while the backend is fully down.
    pub down_interval: Duration,
    /// Deadline of one probe.
    pub timeout: Duration,
    /// Consecutive passes needed to go up.
    pub rise: u32,
    /// Consecutive failures needed to go down.
    pub fall: u32,
    /// Flap damping: a backend that flaps is held down for a while.
    pub flap: Option<FlapRule>,
    /// An agent check beside the probe (HAProxy's agent protocol).
    pub agent: Option<AgentCheck>,
}

/// `agent:` of a health check: a TCP exchange with an agent on the
/// backend whose one-line reply (`up`, `down`, `drain`, `maint`, `ready`,
/// `N%`…) sets an administrative state and a weight percentage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCheck {
    /// The agent's TCP port on the backend's address.
    pub port: u16,
    /// How often it is asked (default: the check's `interval`).
    pub interval: Duration,
    /// Sent after connecting (empty: nothing).
    pub send: String,
}

/// `flap:` of a health check: more than `max_transitions` up/down
/// transitions within `window` hold the backend down for `hold_down`
/// (it keeps being probed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapRule {
    /// Transitions allowed within the window.
    pub max_transitions: u32,
    /// The sliding window they are counted in.
    pub window: Duration,
    /// How long a flapping backend is held down.
    pub hold_down: Duration,
}

impl HealthCheck {
    /// The type as written in the config: `http`, `https`, `tcp`, `icmp`
    /// or `grpc`.
    pub fn type_name(&self) -> &'static str {
        self.spec.type_name()
    }

    /// The probed port, if the type has one.
    pub fn port(&self) -> Option<u16> {
        match &self.spec {
            CheckSpec::Http(h) => Some(h.port),
            CheckSpec::Tcp { port } => Some(*port),
            CheckSpec::Grpc(g) => Some(g.port),
            CheckSpec::Icmp => None,
        }
    }
}

/// What a health check does on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckSpec {
    /// An HTTP request (`type: http`), or HTTP over TLS (`type: https`)
    /// when [`HttpCheck::tls`] is set.
    Http(HttpCheck),
    /// A TCP connect to `port`.
    Tcp {
        /// Port to connect to.
        port: u16,
    },
    /// An ICMP or ICMPv6 echo request.
    Icmp,
    /// A `grpc.health.v1.Health/Check` call.
    Grpc(GrpcCheck),
}

/// Parameters of a `grpc` probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCheck {
    /// TCP port (required: gRPC has no standard port).
    pub port: u16,
    /// The service to ask about; empty asks about the server as a whole.
    pub service: String,
    /// `:authority` of the call (and the TLS server name); `None` = the
    /// backend address and port.
    pub authority: Option<String>,
    /// TLS settings; `None` for plaintext HTTP/2.
    pub tls: Option<TlsOptions>,
}

impl CheckSpec {
    /// The type as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckSpec::Http(h) if h.tls.is_some() => "https",
            CheckSpec::Http(_) => "http",
            CheckSpec::Tcp { .. } => "tcp",
            CheckSpec::Icmp => "icmp",
            CheckSpec::Grpc(_) => "grpc",
        }
    }
}

/// Parameters of an `http`/`https` probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// TCP port (default 80 for http, 443 for https).
    pub port: u16,
    /// Request path, starting with `/` (default `/`).
    pub path: String,
    /// `Host` header; `None` = the backend address.
    pub host: Option<String>,
    /// Request method.
    pub method: HttpMethod,
    /// Status codes that count as a pass (default 200-399).
    pub response_codes: StatusCodes,
    /// Optional regex the first 64 KiB of the body must match.
    pub response_regex: Option<BodyRegex>,
    /// TLS settings; `Some` for `type: https`.
    pub tls: Option<TlsOptions>,
}

/// TLS settings of an `https` probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// SNI server name; `None` sends no SNI (default: the `host` param).
    pub server_name: Option<String>,
    /// Skip certificate verification.
    pub insecure: bool,
}

/// HTTP method of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
}

impl HttpMethod {
    /// The method as sent on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
        }
    }
}

/// A set of HTTP status codes, written as `200-299,301`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCodes(Vec<RangeInclusive<u16>>);

impl StatusCodes {
    /// Parses `200`, `200-299` or a comma-separated list of those. Codes must
    /// be in 100..=599.
    pub fn parse(text: &str) -> Result<StatusCodes, String> {
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!("empty entry in status code list {text:?}"));
            }
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (lo.trim(), hi.trim()),
                None => (part, part),
            };
            let code = |s: &str| -> Result<u16, String> {
                match s.parse::<u16>() {
                    Ok(c) if (100..=599).contains(&c) => Ok(c),
                    _ => Err(format!("{s:?} is not an HTTP status code (100-599)")),
                }
            };
            let (lo, hi) = (code(lo)?, code(hi)?);
            if lo > hi {
                return Err(format!("range {part:?} is backwards"));
            }
            ranges.push(lo..=hi);
        }
        Ok(StatusCodes(ranges))
    }

    /// Whether `code` is in the set.
    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|r| r.contains(&code))
    }
}

impl Default for StatusCodes {
    /// 200-399: success and redirects, like HAProxy's `http-check expect` default.
    fn default() -> Self {
        StatusCodes(vec![200..=399])
    }
}

impl fmt::Display for StatusCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

/// A compiled body regex that compares equal by its source text, so two
/// configs with the same pattern are the same health check.
#[derive(Debug, Clone)]
pub struct BodyRegex(regex::Regex);

impl BodyRegex {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<BodyRegex, regex::Error> {
        regex::Regex::new(pattern).map(BodyRegex)
    }

    /// The compiled regex.
    pub fn regex(&self) -> &regex::Regex {
        &self.0
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for BodyRegex {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for BodyRegex {}

/// A real server (`maglev.backends.<name>`), which becomes a VPP AS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The key under `backends`.
    pub name: String,
    /// Address; the VPP AS address.
    pub address: IpAddr,
    /// The resolved health check; `None` makes a static backend (always up).
    pub healthcheck: Option<Arc<HealthCheck>>,
    /// Initial operator state.
    pub enabled: bool,
}

/// VIP protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
    /// Every protocol (VPP's 255); only with port 0.
    Any,
}

impl Protocol {
    /// The IP protocol number VPP uses (6, 17, 255).
    pub fn number(&self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Any => 255,
        }
    }

    /// The name as written in the config.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Any => "any",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4
    V4,
    /// IPv6
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// A VIP (`maglev.frontends.<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    /// The key under `frontends`.
    pub name: String,
    /// Free text shown by the API and CLI.
    pub description: String,
    /// The VIP address (a /32 or /128 in VPP).
    pub address: IpAddr,
    /// Protocol; always [`Protocol::Any`] when `port` is 0.
    pub protocol: Protocol,
    /// Port; 0 = all ports.
    pub port: u16,
    /// Hash on the source address only.
    pub src_ip_sticky: bool,
    /// Flush existing flows of a backend that goes down.
    pub flush_on_down: bool,
    /// Size of VPP's Maglev new-flow table, a power of two (never 0).
    pub new_flows_table_length: u32,
    /// Fail open below this share of healthy backends (percent, 1..=100):
    /// the serving pool's down backends keep their weight.
    pub panic_threshold: Option<u8>,
    /// A backend that comes back (from down, disabled or paused) ramps from
    /// 10 % of its weight to all of it over this long, a step a second.
    pub slow_start: Option<Duration>,
    /// The family shared by all backends; it selects GRE4 or GRE6.
    pub backend_family: Family,
    /// Priority tiers in order; the first is preferred.
    pub pools: Vec<Pool>,
}

impl Frontend {
    /// Finds `backend` in this frontend's pools: (pool index, membership).
    pub fn member(&self, backend: &str) -> Option<(usize, &PoolMember)> {
        self.pools.iter().enumerate().find_map(|(i, pool)| {
            pool.backends
                .iter()
                .find(|m| m.backend == backend)
                .map(|m| (i, m))
        })
    }

    /// Every backend name of every pool, in pool order.
    pub fn backend_names(&self) -> impl Iterator<Item = &str> {
        self.pools
            .iter()
            .flat_map(|p| p.backends.iter().map(|m| m.backend.as_str()))
    }
}

/// One priority tier of a frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Unique within the frontend.
    pub name: String,
    /// Members, sorted by backend name.
    pub backends: Vec<PoolMember>,
}

/// A backend's membership in a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMember {
    /// Name of a backend in [`Config::backends`].
    pub backend: String,
    /// Configured weight 0..=100.
    pub weight: u8,
}
