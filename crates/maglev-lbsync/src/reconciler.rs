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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use maglev_config::Config;
use maglev_health::{BackendEvent, Checker, State};
use maglev_vpp::stats::{StatsClient, VipCounters};
use maglev_vpp::{Client, ClientOptions, LbApi, LbConfig};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::actual::{self, ActualState};
use crate::apply::apply;
use crate::desired::{
    desired_state, desired_subset, frontend_state, vip_key, DesiredState, FrontendState, Overrides,
    Ramps,
};
use crate::plan::{plan, Capabilities, FlushLedger, Plan, Scope, SyncStats};
use crate::warmup::{Gate, Warmup};

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
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The connected VPP, if any.
    pub vpp: Option<VppInfo>,
    /// Whether VPP integration is configured at all.
    pub vpp_enabled: bool,
    /// Every frontend's aggregate state.
    pub frontends: BTreeMap<String, FrontendState>,
    /// Whether the startup warmup is over.
    pub warmup_done: bool,
    /// Successful calls so far by (scope `all`/`vip`, kind).
    pub totals: BTreeMap<(&'static str, &'static str), u64>,
    /// Syncs that failed (could not read VPP, or a call failed) by scope.
    pub sync_failures: BTreeMap<&'static str, u64>,
    /// The config in force and the runtime weights: with the checker's
    /// states, everything a reader needs to compute weights without asking
    /// this task (which may be waiting for VPP).
    pub config: Option<Arc<Config>>,
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
    /// VPP's buckets per AS of each VIP, so a read never waits for VPP:
    /// VPP's own counts from the last read, and for VIPs changed since,
    /// the table VPP builds from the weights it was given (exact on VPP
    /// with per-AS weights; VPP without them is read again after a change).
    pub buckets: Arc<BTreeMap<maglev_vpp::VipKey, crate::actual::Buckets>>,
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

enum Command {
    Reload(Arc<Config>, oneshot::Sender<()>),
    Sync {
        frontend: Option<String>,
        dry_run: bool,
        reply: oneshot::Sender<Result<SyncReport, SyncError>>,
    },
    SetWeight {
        frontend: String,
        pool: String,
        backend: String,
        weight: u32,
        reply: oneshot::Sender<Result<(), SyncError>>,
    },
    ReadActual(oneshot::Sender<Result<ActualState, SyncError>>),
    Desired(oneshot::Sender<(Arc<Config>, DesiredState, Overrides)>),
}

/// Talks to the reconciler task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReconcilerHandle {
    tx: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
    frontend_events: broadcast::Sender<FrontendEvent>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl ReconcilerHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SyncError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| SyncError::Stopped)?;
        rx.await.map_err(|_| SyncError::Stopped)
    }

    /// Takes a new (validated) config: overrides are dropped, `lb_conf` is
    /// pushed if it changed, and a full sync runs (warmup permitting).
    pub async fn reload(&self, config: Arc<Config>) -> Result<(), SyncError> {
        self.ask(|tx| Command::Reload(config, tx)).await
    }

    /// A full sync, or a per-VIP sync of `frontend`; `dry_run` only plans.
    /// Explicit requests are not held back by the warmup.
    pub async fn sync(
        &self,
        frontend: Option<String>,
        dry_run: bool,
    ) -> Result<SyncReport, SyncError> {
        self.ask(|reply| Command::Sync {
            frontend,
            dry_run,
            reply,
        })
        .await?
    }

    /// Overrides a pool member's weight until the next reload, and syncs
    /// its VIP.
    pub async fn set_weight(
        &self,
        frontend: &str,
        pool: &str,
        backend: &str,
        weight: u32,
    ) -> Result<(), SyncError> {
        self.ask(|reply| Command::SetWeight {
            frontend: frontend.to_string(),
            pool: pool.to_string(),
            backend: backend.to_string(),
            weight,
            reply,
        })
        .await?
    }

    /// VPP's lb state, read now.
    pub async fn vpp_state(&self) -> Result<ActualState, SyncError> {
        self.ask(Command::ReadActual).await?
    }

    /// lb's per-VIP counters from the stats segment, by VIP pool index.
    /// Read through the published handle: never queued behind a sync.
    pub async fn counters(&self) -> Result<Vec<VipCounters>, SyncError> {
        let status = self.status();
        match status.stats {
            Some(s) => s.lb_vip_counters().await,
            None if !status.vpp_enabled => {
                Err(SyncError::Unavailable("VPP integration is disabled".into()))
            }
            None if status.vpp.is_none() => {
                Err(SyncError::Unavailable("VPP is not connected".into()))
            }
            None => Err(SyncError::Unavailable(
                "no VPP stats segment (no socket configured, or it does not answer)".into(),
            )),
        }
    }

    /// The config in force, the desired state and the weight overrides.
    pub async fn desired(&self) -> Result<(Arc<Config>, DesiredState, Overrides), SyncError> {
        self.ask(Command::Desired).await
    }

    /// VPP's buckets per AS of one VIP, from the published snapshot
    /// (see [`Status::buckets`]); no copy of the rest of the status.
    pub fn buckets(&self, key: &maglev_vpp::VipKey) -> Option<crate::actual::Buckets> {
        self.status.borrow().buckets.get(key).cloned()
    }

    /// The latest status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver of status changes.
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Frontend state changes, as they happen.
    pub fn frontend_events(&self) -> broadcast::Receiver<FrontendEvent> {
        self.frontend_events.subscribe()
    }
}

enum Link {
    Disabled,
    Down {
        next_try: Instant,
        failures: u32,
    },
    Up {
        lb: LbApi,
        stats: Option<StatsHandle>,
        info: VppInfo,
        next_ping: Instant,
    },
}

struct Reconciler {
    config: Arc<Config>,
    /// backend → frontends using it, for the config in force.
    users: HashMap<String, Vec<String>>,
    checker: Checker,
    options: ReconcilerOptions,
    started: Instant,
    warmup: Warmup,
    overrides: Overrides,
    link: Link,
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

/// Starts the reconciler on the current runtime.
pub fn spawn(
    config: Arc<Config>,
    checker: Checker,
    options: ReconcilerOptions,
) -> ReconcilerHandle {
    let (tx, rx) = mpsc::channel(64);
    let runtime = options.runtime.clone();
    let (status_tx, status_rx) = watch::channel(Status::default());
    let (fe_tx, _) = broadcast::channel(1024);
    let now = Instant::now();
    let link = if options.api_socket.is_some() {
        Link::Down {
            next_try: now,
            failures: 0,
        }
    } else {
        Link::Disabled
    };
    let r = Reconciler {
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

impl Reconciler {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: broadcast::Receiver<BackendEvent>,
    ) {
        self.refresh_frontends();
        self.publish();
        let mut events_open = true;
        loop {
            let wake = self.next_wake();
            let api = match &self.link {
                Link::Up { lb, .. } => Some(lb.client().clone()),
                _ => None,
            };
            let closed = async move {
                match api {
                    Some(c) => c.closed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = closed => self.disconnect("VPP closed the API socket"),
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => return,
                },
                ev = events.recv(), if events_open => match ev {
                    Ok(ev) => {
                        let mut names = BTreeSet::new();
                        let mut add = |backend: &str| {
                            if let Some(users) = self.users.get(backend) {
                                names.extend(users.iter().cloned());
                            }
                        };
                        add(&ev.backend);
                        let mut seen = vec![ev];
                        // Coalesce a burst of transitions into one sync.
                        while let Ok(more) = events.try_recv() {
                            add(&more.backend);
                            seen.push(more);
                        }
                        for ev in &seen {
                            self.note_transition(ev);
                        }
                        names.extend(self.recompute_ramps());
                        self.on_change(names).await;
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(missed = n, "missed backend transitions; resyncing every frontend");
                        let all = self.config.frontends.keys().cloned().collect();
                        self.on_change(all).await;
                    }
                    Err(broadcast::error::RecvError::Closed) => events_open = false,
                },
                _ = tokio::time::sleep_until(wake) => self.tick().await,
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.next_full_sync;
        match &self.link {
            Link::Down { next_try, .. } => wake = wake.min(*next_try),
            Link::Up { next_ping, .. } => wake = wake.min(*next_ping),
            Link::Disabled => {}
        }
        if let Some(d) = self.warmup.next_deadline(self.started.elapsed()) {
            wake = wake.min(self.started + d);
        }
        if let Some(at) = self.retry {
            wake = wake.min(at);
        }
        if let Some(at) = self.next_ramp_step {
            wake = wake.min(at);
        }
        wake
    }

    /// Starts or ends a backend's slow starts on its transition: it ramps
    /// in each frontend with `slow-start` when it comes back up from down,
    /// disabled or paused — not from unknown (a starting maglevd must not
    /// throttle a running pool), not in a frontend in panic (it was
    /// serving all along), and not on a VPP without AS weights.
    fn note_transition(&mut self, ev: &BackendEvent) {
        let t = &ev.transition;
        if t.to != State::Up {
            self.ramp_start.retain(|(_, b), _| *b != ev.backend);
            return;
        }
        let back = matches!(
            t.from,
            State::Down | State::Held | State::Disabled | State::Paused
        );
        let weights = !matches!(&self.link, Link::Up { info, .. } if !info.lb_v2);
        if !(back && weights) {
            return;
        }
        let now = Instant::now();
        for name in self.users.get(&ev.backend).into_iter().flatten() {
            let Some(f) = self.config.frontends.get(name) else {
                continue;
            };
            let panic = self.frontend_states.get(name) == Some(&FrontendState::Panic);
            if let (Some(total), false) = (f.slow_start, panic) {
                info!(
                    event = "slow-start",
                    frontend = %name,
                    backend = %ev.backend,
                    seconds = total.as_secs_f64()
                );
                self.ramp_start
                    .insert((name.clone(), ev.backend.clone()), now);
            }
        }
    }

    /// Recomputes every ramp's percent; ended ramps are dropped. Returns
    /// the frontends whose ramps changed (to sync), and schedules the next
    /// whole-second step.
    fn recompute_ramps(&mut self) -> BTreeSet<String> {
        let now = Instant::now();
        let mut next = Ramps::new();
        let mut step: Option<Instant> = None;
        let config = &self.config;
        self.ramp_start.retain(|key, start| {
            let elapsed = now.saturating_duration_since(*start);
            // A reload may have removed the frontend or its slow-start.
            let Some(total) = config.frontends.get(&key.0).and_then(|f| f.slow_start) else {
                return false;
            };
            let Some(pct) = crate::desired::ramp_percent(elapsed, total) else {
                return false;
            };
            next.insert(key.clone(), pct);
            let at = *start + Duration::from_secs(elapsed.as_secs() + 1);
            step = Some(step.map_or(at, |s| s.min(at)));
            true
        });
        let mut changed = BTreeSet::new();
        for (key, pct) in &next {
            if self.ramps.get(key) != Some(pct) {
                changed.insert(key.0.clone());
            }
        }
        for key in self.ramps.keys() {
            if !next.contains_key(key) {
                changed.insert(key.0.clone());
            }
        }
        self.ramps = next;
        self.next_ramp_step = step;
        changed
    }

    fn states(&self) -> HashMap<String, State> {
        self.checker.states()
    }

    /// States of the backends of `frontends` only: a transition touches a
    /// few frontends, and large configs have tens of thousands of backends.
    fn states_for(&self, frontends: &BTreeSet<String>) -> HashMap<String, State> {
        let mut out = HashMap::new();
        for f in frontends
            .iter()
            .filter_map(|n| self.config.frontends.get(n))
        {
            for b in f.backend_names() {
                if !out.contains_key(b) {
                    if let Some(s) = self.checker.state(b) {
                        out.insert(b.to_string(), s);
                    }
                }
            }
        }
        out
    }

    fn publish(&self) {
        let (vpp, stats) = match &self.link {
            Link::Up { info, stats, .. } => (Some(info.clone()), stats.clone()),
            _ => (None, None),
        };
        let frontends = self.frontend_states.clone();
        let done = self.warmup.is_done();
        let enabled = !matches!(self.link, Link::Disabled);
        let config = Arc::clone(&self.config);
        let overrides = self.overrides.clone();
        let ramps = self.ramps.clone();
        // Indexes come from reads of VPP (the record); without a record
        // (after a failure, before a reconnect) the last ones stay.
        let indexes: Option<BTreeMap<maglev_vpp::VipKey, u32>> = self.cache.as_ref().map(|c| {
            c.vips
                .iter()
                .filter_map(|(k, v)| v.index.map(|i| (*k, i)))
                .collect()
        });
        let buckets = Arc::new(self.buckets.clone());
        self.status.send_modify(|s| {
            s.buckets = buckets;
            s.vpp = vpp;
            s.vpp_enabled = enabled;
            s.frontends = frontends;
            s.warmup_done = done;
            s.config = Some(config);
            s.overrides = overrides;
            s.ramps = ramps;
            s.stats = stats;
            if let Some(indexes) = indexes {
                s.vip_indexes = indexes;
            }
        });
    }

    /// Recomputes every frontend's aggregate state, announcing changes.
    fn refresh_frontends(&mut self) {
        let all: BTreeSet<String> = self.config.frontends.keys().cloned().collect();
        self.frontend_states.retain(|n, _| all.contains(n));
        self.refresh_some(&all);
    }

    /// The checker's `states` and the operator's overrides with the
    /// backends' agents folded in: what the desired state is computed from.
    fn inputs(&self, states: HashMap<String, State>) -> (HashMap<String, State>, Overrides) {
        let agents = self.checker.agents();
        match crate::desired::with_agents(&self.config, &states, &self.overrides, &agents) {
            Some(merged) => merged,
            None => (states, self.overrides.clone()),
        }
    }

    /// Recomputes the aggregate state of `names`, announcing changes.
    fn refresh_some(&mut self, names: &BTreeSet<String>) {
        let (states, overrides) = self.inputs(self.states_for(names));
        let mut next = std::mem::take(&mut self.frontend_states);
        for (name, f) in names
            .iter()
            .filter_map(|n| self.config.frontends.get_key_value(n))
        {
            let to = frontend_state(&self.config, f, &states, &overrides);
            let from = next.get(name).copied();
            if from != Some(to) {
                let from = from.unwrap_or(FrontendState::Unknown);
                if from != to {
                    info!(event = "frontend-transition", frontend = %name, from = %from, to = %to);
                }
                if let Some(p) = crate::desired::panic_check(f, &states, &overrides) {
                    let threshold = f.panic_threshold.unwrap_or_default();
                    let pool = &f.pools[p.pool].name;
                    if to == FrontendState::Panic {
                        warn!(
                            event = "frontend-panic",
                            frontend = %name,
                            pool = %pool,
                            healthy = p.healthy,
                            judged = p.judged,
                            threshold,
                            "fewer healthy backends than the panic threshold: failing open, down backends keep their weight"
                        );
                    } else if from == FrontendState::Panic {
                        info!(
                            event = "frontend-panic-over",
                            frontend = %name,
                            pool = %pool,
                            healthy = p.healthy,
                            judged = p.judged,
                            threshold
                        );
                    }
                }
                let _ = self.frontend_events.send(FrontendEvent {
                    frontend: name.clone(),
                    from,
                    to,
                });
            }
            next.insert(name.clone(), to);
        }
        self.frontend_states = next;
    }

    /// Backends of `names` changed state. Returns what VPP refused, if a
    /// write was tried and failed.
    async fn on_change(&mut self, names: BTreeSet<String>) -> Option<String> {
        self.refresh_some(&names);
        self.publish();
        let elapsed = self.started.elapsed();
        match self.warmup.gate(elapsed) {
            Gate::Closed => {
                debug!(frontends = ?names, "warmup: write suppressed");
                None
            }
            Gate::PerVip => {
                let released = self.release_known(&names);
                self.sync_frontends(released).await
            }
            Gate::Open if self.warmup.final_sync_due(elapsed) => {
                self.final_warmup_sync().await;
                None
            }
            Gate::Open => self.sync_frontends(names).await,
        }
    }

    /// Releases those of `names` whose backends all left `unknown`, and
    /// returns every released frontend among them.
    fn release_known(&mut self, names: &BTreeSet<String>) -> BTreeSet<String> {
        let states = self.states_for(names);
        let mut out = BTreeSet::new();
        for name in names {
            let Some(f) = self.config.frontends.get(name) else {
                continue;
            };
            let known = f
                .backend_names()
                .all(|b| states.get(b).is_some_and(|s| *s != State::Unknown));
            if known && self.warmup.release(name) {
                info!(event = "warmup-release", frontend = %name, "all backends known; writing to VPP");
            }
            if self.warmup.may_write(name, self.started.elapsed()) {
                out.insert(name.clone());
            }
        }
        out
    }

    async fn final_warmup_sync(&mut self) {
        if matches!(self.link, Link::Up { .. }) {
            info!(
                event = "warmup-done",
                "startup-max-delay reached: final full sync"
            );
            self.sync_logged(Scope::All).await;
        }
        // Without VPP the next connect does the full sync.
        self.warmup.finish();
        self.publish();
    }

    async fn sync_frontends(&mut self, names: BTreeSet<String>) -> Option<String> {
        let keys: BTreeSet<_> = names
            .iter()
            .filter_map(|n| self.config.frontends.get(n))
            .map(vip_key)
            .collect();
        if keys.is_empty() || !matches!(self.link, Link::Up { .. }) {
            return None;
        }
        self.sync_logged(Scope::Vips(keys)).await
    }

    /// A sync nobody waits for: its failure is logged with the cause and
    /// counted, and a full sync retried soon. Returns what failed.
    async fn sync_logged(&mut self, scope: Scope) -> Option<String> {
        let label = scope.label();
        match self.sync(scope, false).await {
            Ok(report) if report.failures.is_empty() => None,
            Ok(report) => Some(report.failures.join("; ")),
            Err(e) => {
                warn!(event = "vpp-lbsync-failed", scope = label, error = %e, "sync failed");
                self.status.send_modify(|s| {
                    *s.sync_failures.entry(label).or_default() += 1;
                });
                if matches!(self.link, Link::Up { .. }) {
                    self.schedule_retry();
                }
                Some(e.to_string())
            }
        }
    }

    fn schedule_retry(&mut self) {
        self.retry_backoff = if self.retry_backoff.is_zero() {
            Duration::from_millis(250)
        } else {
            (self.retry_backoff * 2).min(self.config.lb.sync_interval)
        };
        self.retry = Some(Instant::now() + self.retry_backoff);
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        // The connection first.
        match &self.link {
            Link::Down { next_try, .. } if *next_try <= now => self.connect().await,
            Link::Up { next_ping, .. } if *next_ping <= now => self.ping().await,
            _ => {}
        }
        let elapsed = self.started.elapsed();
        if self.warmup.final_sync_due(elapsed) {
            self.final_warmup_sync().await;
        } else if self.warmup.gate(elapsed) == Gate::PerVip {
            let all: BTreeSet<String> = self.config.frontends.keys().cloned().collect();
            let released = self.release_known(&all);
            let fresh: BTreeSet<String> = released.into_iter().collect();
            if !fresh.is_empty() {
                self.sync_frontends(fresh).await;
            }
        }
        if self.next_ramp_step.is_some_and(|at| at <= Instant::now()) {
            let changed = self.recompute_ramps();
            if !changed.is_empty() {
                self.on_change(changed).await;
            }
        }
        let retry_due = self.retry.is_some_and(|at| at <= Instant::now());
        if retry_due || Instant::now() >= self.next_full_sync {
            self.retry = None;
            self.next_full_sync = Instant::now() + self.config.lb.sync_interval;
            if self.warmup.is_done() && matches!(self.link, Link::Up { .. }) {
                self.sync_logged(Scope::All).await;
            }
        }
    }

    async fn connect(&mut self) {
        let failures = match self.link {
            Link::Down { failures, .. } => failures,
            _ => 0,
        };
        match self.try_connect().await {
            Ok((lb, stats, info)) => {
                info!(
                    event = "vpp-connect",
                    version = %info.version,
                    pid = info.pid,
                    boottime = %info.boottime.map_or("unknown".to_string(), |b| b.to_string()),
                    lb_v2 = info.lb_v2,
                    "connected to VPP"
                );
                let identity = (info.pid, info.boottime);
                if self.last_identity.is_some_and(|old| old != identity) {
                    info!(
                        event = "vpp-restart",
                        pid = info.pid,
                        "VPP restarted; full resync"
                    );
                }
                self.last_identity = Some(identity);
                if !info.lb_v2 && !self.degraded_logged {
                    self.degraded_logged = true;
                    warn!(
                        event = "vpp-degraded",
                        "VPP lacks the lb v2 messages: AS weights stay 100, weight 0 \
                         removes the AS, and VPP's lb settings cannot be read back"
                    );
                }
                let slow: Vec<&str> = self
                    .config
                    .frontends
                    .values()
                    .filter(|f| f.slow_start.is_some())
                    .map(|f| f.name.as_str())
                    .collect();
                if !info.lb_v2 && !slow.is_empty() && !self.slow_start_warned {
                    self.slow_start_warned = true;
                    warn!(
                        event = "vpp-degraded",
                        frontends = %slow.join(","),
                        "slow-start has no effect on this VPP: it has no AS weights to ramp"
                    );
                }
                if !info.lb_v2 {
                    // No weights to ramp: ramps in progress end at once.
                    self.ramp_start.clear();
                    self.recompute_ramps();
                }
                self.link = Link::Up {
                    lb,
                    stats,
                    info,
                    next_ping: Instant::now() + self.options.ping_interval,
                };
                self.cache = None;
                self.ledger.clear();
                self.conf_pushed = None;
                self.publish();
                self.push_conf().await;
                self.resync_after_change().await;
            }
            Err(e) => {
                if failures == 0 {
                    warn!(event = "vpp-connect-failed", error = %e, "cannot connect to VPP; retrying");
                } else {
                    debug!(event = "vpp-connect-failed", error = %e);
                }
                self.link = Link::Down {
                    next_try: Instant::now() + self.backoff(failures + 1),
                    failures: failures + 1,
                };
            }
        }
    }

    /// The wait after `failures` failed attempts: 100 ms doubling, at most
    /// `retry_interval`.
    fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        (Duration::from_millis(100) * (1u32 << exp)).min(self.options.retry_interval)
    }

    async fn try_connect(&self) -> Result<(LbApi, Option<StatsHandle>, VppInfo), String> {
        let api = self
            .options
            .api_socket
            .clone()
            .ok_or("VPP integration is disabled")?;
        let client = Client::connect(
            &api,
            ClientOptions {
                name: self.options.client_name.clone(),
                timeout: self.options.call_timeout,
                observer: self.options.api_observer.clone(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        let lb = LbApi::new(client);
        let version = lb.show_version().await.map_err(|e| e.to_string())?;
        if !lb.has_lb_plugin() {
            return Err(format!(
                "VPP {} has no lb plugin (lb_add_del_vip is not in its message table): \
                 enable lb_plugin.so in VPP's startup.conf",
                version.version
            ));
        }
        let pid = lb.client().ping().await.map_err(|e| e.to_string())?;
        // Stats are optional to programming: without them there are no
        // counters and no boot time, and the link works all the same.
        let (stats, boottime) = match self.connect_stats(false).await {
            Some((s, boot)) => (Some(s), Some(boot)),
            None => (None, None),
        };
        let info = VppInfo {
            version: version.version,
            build_date: version.build_date,
            build_directory: version.build_directory,
            pid,
            boottime,
            connected_at: SystemTime::now(),
            lb_v2: lb.has_v2(),
        };
        Ok((lb, stats, info))
    }

    /// Connects the stats segment, if one is configured and answers;
    /// failures are logged (at debug when `quiet`: a retry), never fatal.
    async fn connect_stats(&self, quiet: bool) -> Option<(StatsHandle, u64)> {
        let path = self.options.stats_socket.clone()?;
        let shown = path.display().to_string();
        let connected = tokio::task::spawn_blocking(move || {
            let mut s = StatsClient::connect(path)?;
            let boot = s.boottime()?;
            Ok::<_, maglev_vpp::stats::StatsError>((s, boot))
        })
        .await;
        match connected {
            Ok(Ok((s, boot))) => Some((StatsHandle(Arc::new(Mutex::new(s))), boot)),
            Ok(Err(e)) if quiet => {
                debug!(event = "vpp-stats-unavailable", socket = %shown, error = %e);
                None
            }
            Ok(Err(e)) => {
                warn!(event = "vpp-stats-unavailable", socket = %shown, error = %e, "no VPP counters; programming goes on without them, retried at every ping");
                None
            }
            Err(e) => {
                warn!(event = "vpp-stats-unavailable", socket = %shown, error = %e);
                None
            }
        }
    }

    async fn ping(&mut self) {
        // A stats segment missing at connect is tried again at every ping.
        let stats_missing = matches!(&self.link, Link::Up { stats: None, .. })
            && self.options.stats_socket.is_some();
        if stats_missing {
            if let Some((s, boot)) = self.connect_stats(true).await {
                if let Link::Up { stats, info, .. } = &mut self.link {
                    info!(event = "vpp-stats-connected");
                    *stats = Some(s);
                    info.boottime = Some(boot);
                }
                self.publish();
            }
        }
        let Link::Up {
            lb,
            info,
            next_ping,
            ..
        } = &mut self.link
        else {
            return;
        };
        match lb.client().ping().await {
            Ok(pid) if pid == info.pid => {
                *next_ping = Instant::now() + self.options.ping_interval;
            }
            Ok(pid) => {
                // Cannot happen on one connection, but a new pid means a
                // new VPP: start over.
                warn!(old = info.pid, new = pid, "VPP pid changed");
                self.disconnect("VPP pid changed");
            }
            Err(e) => self.disconnect(&e.to_string()),
        }
    }

    fn disconnect(&mut self, why: &str) {
        if matches!(self.link, Link::Up { .. }) {
            warn!(
                event = "vpp-disconnect",
                reason = why,
                "lost VPP; reconnecting"
            );
        }
        // VPP may be back already (a restart): try at once, then back off.
        self.link = Link::Down {
            next_try: Instant::now(),
            failures: 0,
        };
        self.cache = None;
        // Buckets of a VPP we no longer see are nobody's.
        self.buckets.clear();
        self.retry = None;
        self.publish();
    }

    fn wanted_conf(&self) -> LbConfig {
        let lb = &self.config.lb;
        LbConfig {
            ip4_src_address: lb.ipv4_src_address,
            ip6_src_address: lb.ipv6_src_address,
            sticky_buckets_per_core: lb.sticky_buckets_per_core.unwrap_or(u32::MAX),
            flow_timeout: lb.flow_timeout.map_or(u32::MAX, |d| d.as_secs() as u32),
        }
    }

    /// Pushes `lb_conf` when it differs from VPP's (or, on VPP without
    /// `lb_conf_get`, from what was pushed on this connection).
    async fn push_conf(&mut self) {
        let want = self.wanted_conf();
        let Link::Up { lb, .. } = &self.link else {
            return;
        };
        let differs = if lb.has_conf_get() {
            match lb.conf_get().await {
                Ok(have) => {
                    have.ip4_src_address != want.ip4_src_address
                        || have.ip6_src_address != want.ip6_src_address
                        || (want.sticky_buckets_per_core != u32::MAX
                            && have.sticky_buckets_per_core != want.sticky_buckets_per_core)
                        || (want.flow_timeout != u32::MAX && have.flow_timeout != want.flow_timeout)
                }
                Err(e) => {
                    warn!(error = %e, "lb_conf_get failed");
                    true
                }
            }
        } else {
            self.conf_pushed != Some(want)
        };
        if !differs {
            return;
        }
        match lb.conf_set(&want).await {
            Ok(()) => {
                info!(
                    event = "vpp-lb-conf-set",
                    ip4 = %want.ip4_src_address,
                    ip6 = %want.ip6_src_address,
                    sticky_buckets_per_core = %keep_or(want.sticky_buckets_per_core),
                    flow_timeout = %keep_or(want.flow_timeout),
                );
                self.conf_pushed = Some(want);
            }
            Err(e) => {
                warn!(event = "vpp-lb-conf-error", error = %e);
                if e.is_connection_error() {
                    self.disconnect(&e.to_string());
                }
            }
        }
    }

    /// After a connect or reload: everything warmup allows.
    async fn resync_after_change(&mut self) {
        if self.warmup.is_done() {
            self.sync_logged(Scope::All).await;
        } else {
            let all: BTreeSet<String> = self.config.frontends.keys().cloned().collect();
            let elapsed = self.started.elapsed();
            if self.warmup.final_sync_due(elapsed) {
                self.final_warmup_sync().await;
            } else if self.warmup.gate(elapsed) == Gate::PerVip {
                let released = self.release_known(&all);
                self.sync_frontends(released).await;
            }
        }
    }

    async fn sync(&mut self, scope: Scope, dry_run: bool) -> Result<SyncReport, SyncError> {
        let (lb, v2) = match &self.link {
            Link::Up { lb, info, .. } => (lb.clone(), info.lb_v2),
            Link::Down { .. } => return Err(SyncError::Unavailable("VPP is not connected".into())),
            Link::Disabled => {
                return Err(SyncError::Unavailable("VPP integration is disabled".into()))
            }
        };
        let mut desired = match &scope {
            Scope::All => {
                let (states, overrides) = self.inputs(self.states());
                desired_state(&self.config, &states, &overrides)
            }
            Scope::Vips(keys) => {
                let names: BTreeSet<String> = self
                    .config
                    .frontends
                    .iter()
                    .filter(|(_, f)| keys.contains(&vip_key(f)))
                    .map(|(n, _)| n.clone())
                    .collect();
                let (states, overrides) = self.inputs(self.states_for(&names));
                desired_subset(&self.config, &names, &states, &overrides)
            }
        };
        crate::desired::apply_ramps(&self.config, &mut desired, &self.ramps);
        let mut ledger = self.ledger.clone();
        ledger.settle(&mut desired);
        let fresh = !matches!((&scope, &self.cache), (Scope::Vips(_), Some(_)));
        let actual = match (&scope, &self.cache) {
            // Per-VIP syncs plan against the cache: only the VIPs in scope.
            (Scope::Vips(keys), Some(cache)) => cache.subset(keys),
            _ => match actual::read(&lb).await {
                Ok(a) => a,
                Err(e) => {
                    if e.is_connection_error() {
                        self.disconnect(&e.to_string());
                    }
                    return Err(e.into());
                }
            },
        };
        let caps = Capabilities { v2 };
        let p = plan(&desired, &actual, &scope, caps);
        if dry_run {
            return Ok(SyncReport {
                scope: scope.label(),
                plan: p,
                applied: None,
                failures: Vec::new(),
            });
        }
        for note in &p.notes {
            info!(event = "vpp-lbsync-note", "{note}");
        }
        let applied = apply(&lb, &p).await;
        for op in &applied.done {
            ledger.record(op);
        }
        self.ledger = ledger;
        if !applied.failures.is_empty() {
            // Something is not as we think: read VPP next time, soon.
            self.cache = None;
            self.status.send_modify(|s| {
                *s.sync_failures.entry(scope.label()).or_default() += 1;
            });
            self.schedule_retry();
        } else if fresh {
            // VPP's own counts for every VIP it holds…
            self.buckets = actual
                .vips
                .iter()
                .map(|(k, v)| (*k, v.read_buckets()))
                .collect();
            let mut model = actual;
            for op in &applied.done {
                model.apply(op, v2);
            }
            self.predict_buckets(&model, &applied.done);
            self.cache = Some(model);
        } else if let Some(mut cache) = self.cache.take() {
            for op in &applied.done {
                cache.apply(op, v2);
            }
            self.predict_buckets(&cache, &applied.done);
            self.cache = Some(cache);
        }
        if !v2 && !applied.done.is_empty() {
            // Without per-AS weights there is nothing to predict from: ask
            // VPP for the changed VIPs' buckets before anyone reads them.
            if let Ok(now) = actual::read(&lb).await {
                for key in applied.done.iter().map(|op| op.vip()) {
                    match now.vips.get(&key) {
                        Some(v) => self.buckets.insert(key, v.read_buckets()),
                        None => self.buckets.remove(&key),
                    };
                }
            }
        }
        if applied.failures.is_empty() && scope == Scope::All {
            self.retry_backoff = Duration::ZERO;
        }
        self.publish();
        let stats = applied.stats();
        let label = scope.label();
        self.status.send_modify(|s| {
            for (kind, n) in stats.kinds() {
                if n > 0 {
                    *s.totals.entry((label, kind)).or_default() += n;
                }
            }
        });
        if p.is_empty() {
            debug!(event = "vpp-lbsync", scope = label, "in sync");
        } else {
            info!(
                event = if label == "all" {
                    "vpp-lbsync-all"
                } else {
                    "vpp-lbsync-vip"
                },
                vip_added = stats.vip_added,
                vip_removed = stats.vip_removed,
                as_added = stats.as_added,
                as_removed = stats.as_removed,
                as_weight_updated = stats.as_weight_updated,
                failures = applied.failures.len(),
            );
        }
        let failures = applied
            .failures
            .iter()
            .map(|(op, e)| format!("{op}: {e}"))
            .collect();
        if applied.lost_connection() {
            self.disconnect("a call failed on the connection");
        }
        Ok(SyncReport {
            scope: label,
            plan: p,
            applied: Some(stats),
            failures,
        })
    }

    /// …and the predicted table for those changed since (or none, where
    /// VPP has no weights to predict from: `sync` then reads them).
    fn predict_buckets(&mut self, model: &ActualState, done: &[crate::plan::Op]) {
        let touched: BTreeSet<maglev_vpp::VipKey> = done.iter().map(|op| op.vip()).collect();
        for key in touched {
            match model.vips.get(&key).and_then(|v| v.predicted_buckets()) {
                Some(b) => {
                    self.buckets.insert(key, b);
                }
                None => {
                    self.buckets.remove(&key);
                }
            }
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Reload(config, reply) => {
                self.users = users_of(&config);
                self.config = config;
                self.overrides.clear();
                // Ramps of frontends gone or without slow-start end now.
                self.recompute_ramps();
                self.warmup.set_delays(
                    self.config.lb.startup_min_delay,
                    self.config.lb.startup_max_delay,
                );
                self.next_full_sync = Instant::now() + self.config.lb.sync_interval;
                self.refresh_frontends();
                self.publish();
                self.push_conf().await;
                self.resync_after_change().await;
                let _ = reply.send(());
            }
            Command::Sync {
                frontend,
                dry_run,
                reply,
            } => {
                let scope = match frontend {
                    None => Ok(Scope::All),
                    Some(name) => match self.config.frontends.get(&name) {
                        Some(f) => Ok(Scope::Vips(BTreeSet::from([vip_key(f)]))),
                        None => Err(SyncError::NotFound(format!("no such frontend: {name}"))),
                    },
                };
                // Asked for explicitly: plan against VPP as it is now, not
                // against the cache.
                self.cache = None;
                let result = match scope {
                    Ok(scope) => self.sync(scope, dry_run).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Command::SetWeight {
                frontend,
                pool,
                backend,
                weight,
                reply,
            } => {
                let result = self.set_weight(frontend, pool, backend, weight).await;
                let _ = reply.send(result);
            }
            Command::ReadActual(reply) => {
                let result = match &self.link {
                    Link::Up { lb, .. } => actual::read(lb).await.map_err(SyncError::from),
                    Link::Down { .. } => Err(SyncError::Unavailable("VPP is not connected".into())),
                    Link::Disabled => {
                        Err(SyncError::Unavailable("VPP integration is disabled".into()))
                    }
                };
                let _ = reply.send(result);
            }
            Command::Desired(reply) => {
                let (states, overrides) = self.inputs(self.states());
                let mut desired = desired_state(&self.config, &states, &overrides);
                crate::desired::apply_ramps(&self.config, &mut desired, &self.ramps);
                let _ = reply.send((Arc::clone(&self.config), desired, self.overrides.clone()));
            }
        }
    }

    async fn set_weight(
        &mut self,
        frontend: String,
        pool: String,
        backend: String,
        weight: u32,
    ) -> Result<(), SyncError> {
        let f = self
            .config
            .frontends
            .get(&frontend)
            .ok_or_else(|| SyncError::NotFound(format!("no such frontend: {frontend}")))?;
        let p = f.pools.iter().find(|p| p.name == pool).ok_or_else(|| {
            SyncError::NotFound(format!("frontend {frontend} has no pool {pool}"))
        })?;
        if !p.backends.iter().any(|m| m.backend == backend) {
            return Err(SyncError::NotFound(format!(
                "pool {pool} of frontend {frontend} has no backend {backend}"
            )));
        }
        let weight = u8::try_from(weight)
            .ok()
            .filter(|w| *w <= 100)
            .ok_or_else(|| {
                SyncError::InvalidArgument(format!("weight {weight} is out of range 0..100"))
            })?;
        info!(event = "weight-override", frontend = %frontend, pool = %pool, backend = %backend, weight);
        self.overrides
            .insert((frontend.clone(), pool, backend), weight);
        self.publish();
        // Answer the truth: a write VPP refused is not a success.
        match self.on_change(BTreeSet::from([frontend])).await {
            Some(failed) => Err(SyncError::Rejected(failed)),
            None => Ok(()),
        }
    }
}

/// `lb_conf`'s "leave as it is" value (`u32::MAX`) as a word for logs.
fn keep_or(v: u32) -> String {
    if v == u32::MAX {
        "keep".to_string()
    } else {
        v.to_string()
    }
}
