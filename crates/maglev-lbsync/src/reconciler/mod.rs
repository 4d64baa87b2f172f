//! The reconciler: one task, the only writer to VPP.
//!
//! It owns the VPP connection (API and stats sockets as one unit: both
//! connect, or neither; checked with `control_ping` every `ping_interval`,
//! and dropped the moment VPP closes the API socket; reconnected at once,
//! then with a backoff from 100 ms doubling up to `retry_interval`) and
//! runs syncs when:
//! - a backend changes state: a per-VIP sync of the frontends using it;
//! - the periodic full sync is due (`sync-interval`);
//! - VPP (re)connects, possibly restarted (new pid or boot time): `lb_conf`
//!   if changed, then a full sync;
//! - the config is reloaded: `lb_conf` if changed, then a full sync;
//! - someone asks ([`ReconcilerHandle::sync`], optionally a dry run), or a
//!   runtime weight is set.
//!
//! The startup warmup ([`crate::warmup`]) gates all of these writes.
//! Per-VIP syncs plan against a cache of VPP's state (this task is the only
//! writer); a full sync, and any sync an operator asks for, reads VPP
//! afresh and so repairs drift. A failed call drops the cache and schedules
//! a full sync within a second (backing off, doubling up to the
//! sync-interval) instead of waiting for the next periodic one; every
//! failed sync is logged with its cause and counted.
//!
//! By concern: `handle` (the queue readers and operators talk through),
//! `link` (the VPP connection), `triggers` (the task loop and what wakes
//! it), `sync` (plan and apply), `snapshot` (what readers see).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use maglev_config::Config;
use maglev_health::{BackendEvent, Checker, State};
use maglev_vpp::stats::{StatsClient, VipCounters};
use maglev_vpp::LbConfig;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::actual::ActualState;
use crate::apply::apply;
use crate::desired::{
    desired_state, desired_subset, frontend_summary, vip_key, DesiredState, FrontendState,
    MemberCounts, Overrides, Ramps,
};
use crate::plan::{plan, Capabilities, FlushLedger, Plan, Scope, SyncStats};
use crate::port::{Hello, LbConnector, VppConnector, VppPort};
use crate::warmup::{Gate, Warmup};

mod handle;
mod link;
mod snapshot;
mod sync;
#[cfg(test)]
mod tests;
mod triggers;

use handle::Command;
pub use handle::ReconcilerHandle;
use link::Link;

/// How the reconciler reaches VPP.
#[derive(Clone)]
pub struct ReconcilerOptions {
    /// VPP's API socket; `None` runs without VPP (health checking only).
    pub api_socket: Option<PathBuf>,
    /// VPP's stats socket, connected together with the API socket.
    pub stats_socket: Option<PathBuf>,
    /// Name VPP shows for this client.
    pub client_name: String,
    /// The longest wait between connection attempts (the backoff starts
    /// at 100 ms and doubles up to this).
    pub retry_interval: Duration,
    /// Liveness check period of a connected VPP.
    pub ping_interval: Duration,
    /// Deadline of one VPP call.
    pub call_timeout: Duration,
    /// Optional observer of every VPP API message (metrics).
    pub api_observer: Option<Arc<dyn maglev_vpp::ApiObserver>>,
    /// The runtime the reconciler task (and with it the VPP connection)
    /// runs on; `None`: the caller's. maglevd gives it a current-thread
    /// runtime on a thread of its own, so a long sync (reading and planning
    /// 64,000 application servers) never delays an API read or a scrape.
    pub runtime: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for ReconcilerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconcilerOptions")
            .field("api_socket", &self.api_socket)
            .field("stats_socket", &self.stats_socket)
            .field("client_name", &self.client_name)
            .field("retry_interval", &self.retry_interval)
            .field("ping_interval", &self.ping_interval)
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for ReconcilerOptions {
    fn default() -> Self {
        ReconcilerOptions {
            api_socket: Some(PathBuf::from("/run/vpp/api.sock")),
            stats_socket: Some(PathBuf::from("/run/vpp/stats.sock")),
            client_name: "vpp-maglev".to_string(),
            retry_interval: Duration::from_secs(1),
            ping_interval: Duration::from_secs(10),
            call_timeout: Duration::from_secs(5),
            api_observer: None,
            runtime: None,
        }
    }
}

/// The connected VPP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VppInfo {
    /// Version string.
    pub version: String,
    /// Build date.
    pub build_date: String,
    /// Build directory.
    pub build_directory: String,
    /// VPP's pid (from `control_ping`).
    pub pid: u32,
    /// VPP's boot time, Unix seconds (from the stats segment).
    pub boottime: Option<u64>,
    /// When this connection was made.
    pub connected_at: SystemTime,
    /// Whether VPP has the lb v2 messages.
    pub lb_v2: bool,
}

/// A frontend's aggregate state changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendEvent {
    /// Frontend name.
    pub frontend: String,
    /// Before.
    pub from: FrontendState,
    /// After.
    pub to: FrontendState,
}

/// What the reconciler publishes for readers.
#[derive(Debug, Clone)]
pub struct Status {
    /// The connected VPP, if any.
    pub vpp: Option<VppInfo>,
    /// Whether VPP integration is configured at all.
    pub vpp_enabled: bool,
    /// Every frontend's aggregate state.
    pub frontends: BTreeMap<String, FrontendState>,
    /// Every frontend's backends by state, and how many VPP sends to.
    pub frontend_counts: BTreeMap<String, MemberCounts>,
    /// Whether the startup warmup is over.
    pub warmup_done: bool,
    /// Successful calls so far by (scope `all`/`vip`, kind).
    pub totals: BTreeMap<(&'static str, &'static str), u64>,
    /// Syncs that failed (could not read VPP, or a call failed) by scope.
    pub sync_failures: BTreeMap<&'static str, u64>,
    /// The config in force — the daemon's one copy of it — and the
    /// runtime weights: with the checker's states, everything a reader
    /// needs to compute weights without asking this task (which may be
    /// waiting for VPP).
    pub config: Arc<Config>,
    /// Runtime weight overrides.
    pub overrides: Overrides,
    /// Slow starts in progress, by (frontend, backend): the percent of
    /// its weight each gets now.
    pub ramps: Ramps,
    /// VPP's pool index of each VIP (the stats counters' index), as last
    /// read from VPP.
    pub vip_indexes: BTreeMap<maglev_vpp::VipKey, u32>,
    /// The stats segment, for readers of counters (a blocking read, on
    /// their own thread); `None` without one.
    pub stats: Option<StatsHandle>,
    /// A read-only view of VPP over the connection, for readers that must
    /// see VPP as it is now without queueing behind a sync; `None` while
    /// disconnected.
    pub reader: Option<VppReader>,
    /// VPP's buckets per AS of each VIP, so a read never waits for VPP:
    /// VPP's own counts from the last read, and for VIPs changed since,
    /// the table VPP builds from the weights it was given (exact on VPP
    /// with per-AS weights; VPP without them is read again after a change).
    pub buckets: Arc<BTreeMap<maglev_vpp::VipKey, crate::actual::Buckets>>,
}

/// Reads VPP's lb state over the reconciler's connection; it can only
/// read (the connection's writes stay the reconciler's).
#[derive(Clone)]
pub struct VppReader(pub(crate) maglev_vpp::LbApi);

impl std::fmt::Debug for VppReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VppReader")
    }
}

impl VppReader {
    /// VPP's lb state, read now (dumps and the CLI scrape).
    pub async fn read(&self) -> Result<ActualState, SyncError> {
        crate::actual::read(&self.0).await.map_err(SyncError::from)
    }
}

/// A shared handle on the stats segment.
#[derive(Clone)]
pub struct StatsHandle(pub Arc<Mutex<StatsClient>>);

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatsHandle")
    }
}

impl StatsHandle {
    /// The lb counters, read on a blocking thread (a bad segment costs that
    /// thread up to a second, never the caller's).
    pub async fn lb_vip_counters(&self) -> Result<Vec<VipCounters>, SyncError> {
        let s = Arc::clone(&self.0);
        match tokio::task::spawn_blocking(move || s.lock().expect("stats lock").lb_vip_counters())
            .await
        {
            Ok(r) => r.map_err(|e| SyncError::Stats(e.to_string())),
            Err(e) => Err(SyncError::Stats(e.to_string())),
        }
    }
}

/// Why a request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// VPP integration is off, or VPP is not connected.
    #[error("{0}")]
    Unavailable(String),
    /// No such frontend, pool or backend.
    #[error("{0}")]
    NotFound(String),
    /// A value out of range.
    #[error("{0}")]
    InvalidArgument(String),
    /// VPP refused or failed.
    #[error("VPP: {0}")]
    Vpp(#[from] maglev_vpp::Error),
    /// The stats segment could not be read.
    #[error("stats: {0}")]
    Stats(String),
    /// The reconciler is gone.
    #[error("reconciler stopped")]
    Stopped,
    /// VPP refused a write (the change stays wanted and is retried).
    #[error("VPP refused the change (retrying): {0}")]
    Rejected(String),
}

/// The outcome of a sync.
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// `all` or `vip`.
    pub scope: &'static str,
    /// The plan (for a dry run: what would be sent).
    pub plan: Plan,
    /// What was applied (`None` for a dry run).
    pub applied: Option<SyncStats>,
    /// Calls that failed.
    pub failures: Vec<String>,
}

struct Reconciler<C: VppConnector> {
    /// How VPP is reached; `None`: VPP integration is off.
    connector: Option<C>,
    config: Arc<Config>,
    /// backend → frontends using it, for the config in force.
    users: HashMap<String, Vec<String>>,
    checker: Checker,
    options: ReconcilerOptions,
    started: Instant,
    warmup: Warmup,
    overrides: Overrides,
    link: Link<C::Port>,
    cache: Option<ActualState>,
    /// VPP's buckets per VIP for readers: its counts as last read, or the
    /// table predicted from the weights for VIPs changed since.
    buckets: BTreeMap<maglev_vpp::VipKey, crate::actual::Buckets>,
    ledger: FlushLedger,
    conf_pushed: Option<LbConfig>,
    last_identity: Option<(u32, Option<u64>)>,
    degraded_logged: bool,
    next_full_sync: Instant,
    /// A full sync to retry after a failed one, and the backoff it used.
    retry: Option<Instant>,
    retry_backoff: Duration,
    frontend_states: BTreeMap<String, FrontendState>,
    frontend_counts: BTreeMap<String, MemberCounts>,
    status: watch::Sender<Status>,
    frontend_events: broadcast::Sender<FrontendEvent>,
    /// (frontend, backend) pairs ramping up after the backend came back,
    /// since when.
    ramp_start: HashMap<(String, String), Instant>,
    /// The percent each ramping (frontend, backend) gets now.
    ramps: Ramps,
    /// The next whole-second step of any ramp.
    next_ramp_step: Option<Instant>,
    slow_start_warned: bool,
}

fn users_of(config: &Config) -> HashMap<String, Vec<String>> {
    let mut users: HashMap<String, Vec<String>> = HashMap::new();
    for (name, f) in &config.frontends {
        for b in f.backend_names() {
            users.entry(b.to_string()).or_default().push(name.clone());
        }
    }
    users
}

/// Starts the reconciler on the current runtime (or on
/// `options.runtime`), reaching VPP through its API socket.
pub fn spawn(
    config: Arc<Config>,
    checker: Checker,
    options: ReconcilerOptions,
) -> ReconcilerHandle {
    let connector = options.api_socket.clone().map(|socket| LbConnector {
        socket,
        client_name: options.client_name.clone(),
        call_timeout: options.call_timeout,
        observer: options.api_observer.clone(),
    });
    start(config, checker, options, connector)
}

/// Starts the reconciler reaching VPP through `connector` (the tests' in-memory VPP).
#[cfg(test)]
pub(crate) fn spawn_with<C: VppConnector>(
    config: Arc<Config>,
    checker: Checker,
    options: ReconcilerOptions,
    connector: C,
) -> ReconcilerHandle {
    start(config, checker, options, Some(connector))
}

fn start<C: VppConnector>(
    config: Arc<Config>,
    checker: Checker,
    options: ReconcilerOptions,
    connector: Option<C>,
) -> ReconcilerHandle {
    let (tx, rx) = mpsc::channel(64);
    let runtime = options.runtime.clone();
    let (status_tx, status_rx) = watch::channel(Status {
        vpp: None,
        vpp_enabled: connector.is_some(),
        frontends: BTreeMap::new(),
        frontend_counts: BTreeMap::new(),
        warmup_done: false,
        totals: BTreeMap::new(),
        sync_failures: BTreeMap::new(),
        config: Arc::clone(&config),
        overrides: Overrides::new(),
        ramps: Ramps::new(),
        vip_indexes: BTreeMap::new(),
        stats: None,
        reader: None,
        buckets: Arc::default(),
    });
    let (fe_tx, _) = broadcast::channel(1024);
    let now = Instant::now();
    let link = if connector.is_some() {
        Link::Down {
            next_try: now,
            failures: 0,
        }
    } else {
        Link::Disabled
    };
    let r = Reconciler {
        connector,
        users: users_of(&config),
        warmup: Warmup::new(config.lb.startup_min_delay, config.lb.startup_max_delay),
        next_full_sync: now + config.lb.sync_interval,
        retry: None,
        retry_backoff: Duration::ZERO,
        config,
        checker: checker.clone(),
        options,
        started: now,
        overrides: Overrides::new(),
        link,
        cache: None,
        buckets: BTreeMap::new(),
        ledger: FlushLedger::default(),
        conf_pushed: None,
        last_identity: None,
        degraded_logged: false,
        frontend_states: BTreeMap::new(),
        frontend_counts: BTreeMap::new(),
        status: status_tx,
        frontend_events: fe_tx.clone(),
        ramp_start: HashMap::new(),
        ramps: Ramps::new(),
        next_ramp_step: None,
        slow_start_warned: false,
    };
    let task = r.run(rx, checker.subscribe());
    match runtime {
        Some(rt) => drop(rt.spawn(task)),
        None => drop(tokio::spawn(task)),
    }
    ReconcilerHandle {
        tx,
        status: status_rx,
        frontend_events: fe_tx,
    }
}
