//! The checker: one probe loop per backend, however many frontends use it.
//!
//! Each loop sleeps, probes, feeds the result to the backend's [`Health`]
//! and publishes any transition on a broadcast channel, which never blocks
//! the checker (a slow subscriber loses events and is told so by tokio).
//! Pause, disable and removal abort the loop, so no probe traffic is sent;
//! resume and enable start a fresh one. Every loop is tagged with an epoch,
//! so a loop that was replaced can never apply a stale result.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use maglev_config::{Backend, Config};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use tracing::{info, warn};

use crate::admission::Admission;
use crate::agent::AgentState;
use crate::probe::{Probe, Prober, SetupError};
use crate::result::{Code, ProbeResult};
use crate::slots::Slots;
use crate::state::{coalesce, jitter, ActionError, Health, State, Transition};

/// Static backends are re-evaluated this often (there is nothing to probe).
pub const STATIC_INTERVAL: Duration = Duration::from_secs(30);
/// Grace beyond a probe's own timeout before the checker gives up on it.
const OVERRUN_GRACE: Duration = Duration::from_millis(50);
/// Transitions buffered per subscriber before the slowest start to lose them.
const EVENT_BUFFER: usize = 4096;

/// One backend's entry and its lock.
type Cell = Arc<parking_lot::Mutex<Entry>>;

/// Sees every probe result (for metrics); must not block.
pub trait ProbeObserver: Send + Sync {
    /// What the probes of `backend` with a check of `check_type` report
    /// to, asked each time a loop starts for it (start, a new backend, a
    /// changed check or address, a resume). A backend's handle is found
    /// once here, not on every probe: a probe that touches a shared map
    /// and its cold keys costs more than one that touches only its own
    /// backend. Called with the backend's entry locked: must not call
    /// the checker.
    fn backend(&self, backend: &str, check_type: &'static str) -> Arc<dyn BackendObserver>;

    /// A probe started `lag` after it was due (the checker is behind:
    /// more probes per second than the machine can run).
    fn probe_lag(&self, _lag: Duration) {}
}

/// Sees one backend's probe results (see [`ProbeObserver::backend`]).
pub trait BackendObserver: Send + Sync {
    /// One probe finished and is applied. Called with the backend's
    /// entry locked (so its removal comes after its last report): must
    /// not call the checker.
    fn probe_done(&self, result: &ProbeResult);
}

/// A probe this late is worth a warning: the checker cannot keep up.
const LAG_WARNING: Duration = Duration::from_millis(500);

/// At most one lag warning per this long, whatever the number of backends.
const LAG_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Makes the probe for a health check, in place of the built-in ones (a
/// seam for tests and for probe kinds built elsewhere).
pub type ProbeFactory = Arc<dyn Fn(&maglev_config::HealthCheck) -> Arc<dyn Probe> + Send + Sync>;

/// How a checker runs.
#[derive(Clone)]
pub struct CheckerOptions {
    /// `User-Agent` of HTTP probes.
    pub user_agent: String,
    /// Optional observer of every probe.
    pub observer: Option<Arc<dyn ProbeObserver>>,
    /// Optional replacement of the built-in probes.
    pub probe_factory: Option<ProbeFactory>,
    /// The runtimes probe and agent loops run on, each backend's on one
    /// of them in turn (current-thread runtimes on threads of their own
    /// spread probing over cores, each with its own timers and sockets);
    /// empty: the caller's.
    pub runtimes: Vec<tokio::runtime::Handle>,
    /// The most probes in flight at once; `None`: what the open-file
    /// limit allows (less 1,024 descriptors kept for the rest). Shared
    /// evenly by the probe threads (at least 32 each), each of which
    /// lowers its share while it falls behind; probes over it wait their
    /// turn.
    pub max_in_flight: Option<usize>,
}

impl std::fmt::Debug for CheckerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckerOptions")
            .field("user_agent", &self.user_agent)
            .field("observer", &self.observer.is_some())
            .field("probe_factory", &self.probe_factory.is_some())
            .field("runtimes", &self.runtimes.len())
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

impl Default for CheckerOptions {
    fn default() -> Self {
        CheckerOptions {
            user_agent: Prober::default_user_agent(),
            observer: None,
            probe_factory: None,
            runtimes: Vec::new(),
            max_in_flight: None,
        }
    }
}

/// How busy probing is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeLoad {
    /// Probes running now.
    pub in_flight: usize,
    /// How many may run at once now: the open-file budget, or less while
    /// the probe threads are behind.
    pub limit: usize,
}

/// A backend's state changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendEvent {
    /// Backend name.
    pub backend: String,
    /// Its address.
    pub address: IpAddr,
    /// The change.
    pub transition: Transition,
}

/// Everything known about one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    /// Name.
    pub name: String,
    /// Address.
    pub address: IpAddr,
    /// Health check name; `None` for a static backend.
    pub healthcheck: Option<String>,
    /// `http`, `https`, `tcp`, `icmp` or `static`.
    pub check_type: &'static str,
    /// State.
    pub state: State,
    /// Operator flag.
    pub enabled: bool,
    /// The rise/fall counter.
    pub counter: u32,
    /// Rise threshold in force.
    pub rise: u32,
    /// Fall threshold in force.
    pub fall: u32,
    /// Last probe result, and when it finished.
    pub last: Option<(ProbeResult, SystemTime)>,
    /// Transitions, oldest first.
    pub history: Vec<Transition>,
    /// While `held` (flapping): when the hold-down ends.
    pub held_until: Option<SystemTime>,
    /// With an agent check: what the agent asks for now.
    pub agent: Option<AgentState>,
    /// The agent's last answer (its line, or why there was none), and when.
    pub agent_last: Option<(Result<String, String>, SystemTime)>,
}

/// What a scrape needs of a backend: [`BackendStatus`] without the
/// strings and history that copying 64,000 of would cost (under the lock
/// the probes take).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSummary {
    /// Name.
    pub name: String,
    /// State.
    pub state: State,
    /// Operator flag.
    pub enabled: bool,
    /// With an agent check: what the agent asks for now.
    pub agent: Option<AgentState>,
}

/// Why an operator action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckerError {
    /// No backend of that name is being checked.
    #[error("no such backend: {0}")]
    NotFound(String),
    /// The state does not allow the action.
    #[error("{backend}: {error}")]
    Action {
        /// Backend name.
        backend: String,
        /// The refusal.
        error: ActionError,
    },
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Backends that started being checked.
    pub added: Vec<String>,
    /// Backends no longer in use.
    pub removed: Vec<String>,
    /// Backends whose health check changed: fresh state and loop.
    pub restarted: Vec<String>,
    /// Backends kept as they were (address or pool changes taken over).
    pub kept: Vec<String>,
}

struct Entry {
    backend: Backend,
    probe: Option<Arc<dyn Probe>>,
    health: Health,
    last: Option<(ProbeResult, SystemTime)>,
    task: Option<AbortHandle>,
    agent_task: Option<AbortHandle>,
    epoch: u64,
    /// The last probe could not run for a local reason (logged once).
    local_error: bool,
    /// What the agent asks for (neutral without an agent check).
    agent: AgentState,
    agent_last: Option<(Result<String, String>, SystemTime)>,
    /// Where the current loop's probes are reported (with an observer).
    observer: Option<Arc<dyn BackendObserver>>,
}

impl Entry {
    fn thresholds(backend: &Backend) -> (u32, u32) {
        backend
            .healthcheck
            .as_ref()
            .map_or((1, 1), |hc| (hc.rise, hc.fall))
    }

    fn check_type(&self) -> &'static str {
        self.backend
            .healthcheck
            .as_ref()
            .map_or("static", |hc| hc.type_name())
    }

    fn status(&self) -> BackendStatus {
        let (rise, fall) = Entry::thresholds(&self.backend);
        BackendStatus {
            name: self.backend.name.clone(),
            address: self.backend.address,
            healthcheck: self.backend.healthcheck.as_ref().map(|h| h.name.clone()),
            check_type: self.check_type(),
            state: self.health.state(),
            enabled: self.health.enabled(),
            counter: self.health.counter(),
            rise,
            fall,
            last: self.last.clone(),
            history: self.health.history().cloned().collect(),
            held_until: self.health.held_until(),
            agent: self.agent_check().map(|_| self.agent),
            agent_last: self.agent_last.clone(),
        }
    }

    fn agent_check(&self) -> Option<&maglev_config::AgentCheck> {
        self.backend
            .healthcheck
            .as_ref()
            .and_then(|hc| hc.agent.as_ref())
    }

    /// How long until its next probe, from its state and check.
    fn next_interval(&self) -> Duration {
        match &self.backend.healthcheck {
            Some(hc) => self.health.next_interval(hc),
            None => STATIC_INTERVAL,
        }
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(t) = self.agent_task.take() {
            t.abort();
        }
        self.epoch += 1;
    }

    /// A new server or a new check: what its agent said is forgotten.
    fn reset_agent(&mut self) {
        self.agent = AgentState::default();
        self.agent_last = None;
    }
}

struct Shared {
    /// Where the slots probe starts are rounded to begin (see
    /// [`coalesce`]).
    origin: tokio::time::Instant,
    /// Which of `options.runtimes` the next loop goes to.
    next_runtime: AtomicUsize,
    /// The probe slots of each of `options.runtimes` (one set when
    /// loops run on the caller's runtime).
    slots: Vec<Arc<Slots>>,
    /// Probes take a permit to run, from their thread's share (beside
    /// `slots`): a probe writes nothing another probe thread writes,
    /// and a thread that falls behind holds back only its own probes.
    admissions: Vec<Arc<Admission>>,
    /// When the last lag warning was logged.
    lag_warned: Mutex<Option<tokio::time::Instant>>,
    /// Every backend's entry, each behind a lock of its own: a probe loop
    /// holds its entry's cell and never looks it up or takes this map's
    /// lock (which only a reload, an operator action and readers take).
    /// Lock order: this map, then a cell, then `agents`.
    entries: parking_lot::Mutex<BTreeMap<String, Cell>>,
    /// What agents ask for, of the backends whose agent asks for
    /// anything: readers (every GetFrontend, every reconciler input)
    /// copy this, not a scan of every entry.
    /// Written with the backend's cell held (that order).
    agents: Mutex<HashMap<String, AgentState>>,
    events: broadcast::Sender<BackendEvent>,
    prober: Mutex<Prober>,
    netns: Mutex<Option<String>>,
    options: CheckerOptions,
    history: Mutex<usize>,
}

impl Shared {
    /// Keeps `agents` in step with an entry's agent state (call with
    /// the backend's cell held).
    fn note_agent(&self, name: &str, state: AgentState) {
        let mut agents = self.agents.lock().expect("checker lock");
        if state.is_neutral() {
            agents.remove(name);
        } else if let Some(known) = agents.get_mut(name) {
            // Every answer lands here; most repeat the last.
            *known = state;
        } else {
            agents.insert(name.to_string(), state);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        for c in self.entries.get_mut().values() {
            c.lock().stop();
        }
    }
}

/// Health checking of every backend a config uses.
#[derive(Clone)]
pub struct Checker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker").finish_non_exhaustive()
    }
}

/// A handle on a [`Checker`] that does not keep it running: for tasks that
/// follow its events and must end when it goes.
#[derive(Clone)]
pub struct WeakChecker {
    shared: Weak<Shared>,
}

impl WeakChecker {
    /// The checker, while it runs.
    pub fn upgrade(&self) -> Option<Checker> {
        self.shared.upgrade().map(|shared| Checker { shared })
    }
}

impl std::fmt::Debug for WeakChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakChecker").finish_non_exhaustive()
    }
}

/// Backends any frontend references, in name order.
fn in_use(config: &Config) -> BTreeMap<String, Backend> {
    let users = config.backend_users();
    config
        .backends
        .iter()
        .filter(|(name, _)| users.contains_key(name.as_str()))
        .map(|(name, b)| (name.clone(), b.clone()))
        .collect()
}

impl Checker {
    /// Starts checking every backend `config` uses. First probes are spread
    /// over each health check's interval. Must run inside a tokio runtime.
    pub fn start(config: &Config, options: CheckerOptions) -> Result<Checker, SetupError> {
        let netns = config.healthchecker.netns.clone();
        let prober = Prober::new(netns.as_deref(), options.user_agent.clone())?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let max_in_flight = options
            .max_in_flight
            .unwrap_or_else(crate::admission::fd_budget);
        let threads = options.runtimes.len().max(1);
        let checker = Checker {
            shared: Arc::new(Shared {
                origin: tokio::time::Instant::now(),
                next_runtime: AtomicUsize::new(0),
                slots: (0..threads).map(|_| Arc::default()).collect(),
                admissions: crate::admission::shares(max_in_flight, threads)
                    .map(Admission::new)
                    .collect(),
                lag_warned: Mutex::new(None),
                entries: parking_lot::Mutex::new(BTreeMap::new()),
                agents: Mutex::new(HashMap::new()),
                events,
                prober: Mutex::new(prober),
                netns: Mutex::new(netns),
                options,
                history: Mutex::new(config.healthchecker.transition_history),
            }),
        };
        let backends = in_use(config);
        let n = backends.len().max(1);
        let mut entries = checker.shared.entries.lock();
        for (i, (name, backend)) in backends.into_iter().enumerate() {
            checker.add(&mut entries, name, backend, i as f64 / n as f64);
        }
        drop(entries);
        Ok(checker)
    }

    /// A new backend's entry, its first probe `spread` (0..1) into its
    /// health check's interval.
    fn add(
        &self,
        entries: &mut BTreeMap<String, Cell>,
        name: String,
        backend: Backend,
        spread: f64,
    ) {
        let cell = Arc::new(parking_lot::Mutex::new(self.new_entry(backend)));
        let mut entry = cell.lock();
        let delay = entry
            .backend
            .healthcheck
            .as_ref()
            .map_or(Duration::ZERO, |hc| hc.interval.mul_f64(spread));
        self.spawn(&name, &cell, &mut entry, delay);
        drop(entry);
        entries.insert(name, cell);
    }

    fn new_entry(&self, backend: Backend) -> Entry {
        let (rise, fall) = Entry::thresholds(&backend);
        let capacity = *self.shared.history.lock().expect("checker lock");
        let probe = backend.healthcheck.as_ref().map(|hc| self.probe_for(hc));
        Entry {
            health: Health::new(rise, fall, backend.enabled, capacity)
                .with_flap(backend.healthcheck.as_ref().and_then(|hc| hc.flap)),
            backend,
            probe,
            last: None,
            task: None,
            agent_task: None,
            epoch: 0,
            local_error: false,
            agent: AgentState::default(),
            agent_last: None,
            observer: None,
        }
    }

    fn probe_for(&self, hc: &maglev_config::HealthCheck) -> Arc<dyn Probe> {
        match &self.shared.options.probe_factory {
            Some(make) => make(hc),
            None => self
                .shared
                .prober
                .lock()
                .expect("checker lock")
                .probe_for(hc),
        }
    }

    /// Starts a fresh loop for `entry`, the content of `cell` (if its state
    /// wants probes).
    fn spawn(&self, name: &str, cell: &Cell, entry: &mut Entry, first_delay: Duration) {
        entry.stop();
        if !entry.health.is_probing() {
            return;
        }
        entry.observer = self
            .shared
            .options
            .observer
            .as_ref()
            .map(|o| o.backend(name, entry.check_type()));
        let runtimes = &self.shared.options.runtimes;
        let (rt, lane) = if runtimes.is_empty() {
            (tokio::runtime::Handle::current(), 0)
        } else {
            // In turn: as many backends on every thread.
            let next = self.shared.next_runtime.fetch_add(1, Ordering::Relaxed) % runtimes.len();
            (runtimes[next].clone(), next)
        };
        let slots = &self.shared.slots[lane];
        let of = || LoopOf {
            shared: Arc::downgrade(&self.shared),
            admission: Arc::clone(&self.shared.admissions[lane]),
            observer: self.shared.options.observer.clone(),
            cell: Arc::clone(cell),
            name: name.to_string(),
            epoch: entry.epoch,
        };
        // The threads' slots interleave: each thread's slots begin a
        // share of the longest slot after the previous thread's, so the
        // threads take turns waking (and their backends' answers come in
        // turns) instead of competing for the cores at the same moments.
        let phase = crate::state::MAX_SLOT.mul_f64(lane as f64 / self.shared.slots.len() as f64);
        let task = rt.spawn(probe_loop(
            of(),
            Arc::clone(slots),
            phase,
            // Fixed for an epoch: a changed health check restarts the loop.
            entry.probe.is_some(),
            first_delay,
        ));
        entry.task = Some(task.abort_handle());
        if entry.agent_check().is_some() {
            let sockets = self.shared.prober.lock().expect("checker lock").sockets();
            let task = rt.spawn(agent_loop(of(), first_delay, sockets));
            entry.agent_task = Some(task.abort_handle());
        }
    }

    /// A reload's restart of `entry` (the content of `cell`, its health
    /// already restarted with transition `t`): what was known of the old
    /// check or server is dropped, a fresh loop probes at once, and `t`
    /// is sent before the cell's lock goes, so the new loop's first
    /// transition comes after it.
    fn restart(&self, name: &str, cell: &Cell, entry: &mut Entry, t: Option<Transition>) {
        entry.last = None;
        entry.reset_agent();
        self.shared.note_agent(name, entry.agent);
        self.spawn(name, cell, entry, Duration::ZERO);
        self.publish(&entry.backend, t);
    }

    /// `name`'s cell (the map's lock only for the lookup).
    fn cell(&self, name: &str) -> Option<Cell> {
        self.shared.entries.lock().get(name).cloned()
    }

    /// A handle that does not keep the checker running.
    pub fn downgrade(&self) -> WeakChecker {
        WeakChecker {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// What each backend's agent asks for, for those where it changes
    /// something.
    pub fn agents(&self) -> HashMap<String, AgentState> {
        self.shared.agents.lock().expect("checker lock").clone()
    }

    /// Probes running now, and how many may run at once (all probe
    /// threads').
    pub fn probe_load(&self) -> ProbeLoad {
        let mut load = ProbeLoad::default();
        for a in &self.shared.admissions {
            load.in_flight += a.in_flight();
            load.limit += a.limit();
        }
        load
    }

    /// New transitions, as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<BackendEvent> {
        self.shared.events.subscribe()
    }

    fn publish(&self, backend: &Backend, transition: Option<Transition>) {
        publish(&self.shared, backend, transition);
    }

    /// Every checked backend, in name order. Each status is one
    /// backend's at one moment (see [`Checker::each_entry`]).
    pub fn backends(&self) -> Vec<BackendStatus> {
        self.each_entry(|_, e| e.status())
    }

    /// `f` of every entry in name order. The map's lock is held only to
    /// list the cells; each entry is then read under its own lock, so a
    /// copy of 64,000 statuses holds up no probe for longer than one
    /// entry's copy. A backend a reload adds or removes meanwhile may be
    /// in the list or not, as with any read just before or after it.
    fn each_entry<T>(&self, mut f: impl FnMut(&str, &Entry) -> T) -> Vec<T> {
        // Only the cells are copied under the map's lock (a backend's
        // name is its entry's, the key under `backends`).
        let cells: Vec<Cell> = self.shared.entries.lock().values().cloned().collect();
        cells
            .iter()
            .map(|c| {
                let e = c.lock();
                f(&e.backend.name, &e)
            })
            .collect()
    }

    /// Every checked backend's name, state, flag and agent, in name order:
    /// [`Checker::backends`] for readers of every backend that need no
    /// more (a third of the copying).
    pub fn summaries(&self) -> Vec<BackendSummary> {
        self.each_entry(|name, e| BackendSummary {
            name: name.to_string(),
            state: e.health.state(),
            enabled: e.health.enabled(),
            agent: e.agent_check().map(|_| e.agent),
        })
    }

    /// One backend.
    pub fn backend(&self, name: &str) -> Option<BackendStatus> {
        let cell = self.cell(name)?;
        let status = cell.lock().status();
        Some(status)
    }

    /// Every backend's state, without the rest of its status.
    pub fn states(&self) -> HashMap<String, State> {
        // Copied entry by entry, hashed after.
        let copied = self.each_entry(|n, e| (n.to_string(), e.health.state()));
        copied.into_iter().collect()
    }

    /// The states of some backends (those it knows), under one short lock:
    /// a read about one frontend need not copy every backend's state.
    pub fn states_of<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> HashMap<String, State> {
        let entries = self.shared.entries.lock();
        names
            .into_iter()
            .filter_map(|n| {
                entries
                    .get(n)
                    .map(|c| (n.to_string(), c.lock().health.state()))
            })
            .collect()
    }

    /// The state of one backend.
    pub fn state(&self, name: &str) -> Option<State> {
        let cell = self.cell(name)?;
        let state = cell.lock().health.state();
        Some(state)
    }

    fn act(
        &self,
        name: &str,
        action: impl FnOnce(&mut Health, SystemTime) -> Result<Option<Transition>, ActionError>,
    ) -> Result<BackendStatus, CheckerError> {
        // The map stays locked: a reload does not run beside an action.
        let entries = self.shared.entries.lock();
        let cell = entries
            .get(name)
            .ok_or_else(|| CheckerError::NotFound(name.to_string()))?;
        let mut entry = cell.lock();
        let t =
            action(&mut entry.health, SystemTime::now()).map_err(|error| CheckerError::Action {
                backend: name.to_string(),
                error,
            })?;
        if t.is_some() {
            if entry.health.is_probing() {
                self.spawn(name, cell, &mut entry, Duration::ZERO);
            } else {
                entry.stop();
            }
        }
        // Sent with the cell held: a loop this action started reports
        // after it.
        self.publish(&entry.backend, t);
        Ok(entry.status())
    }

    /// Pauses health checking of `name` (its loop stops).
    pub fn pause(&self, name: &str, who: &str) -> Result<BackendStatus, CheckerError> {
        self.act(name, |h, at| h.pause(at, who))
    }

    /// Resumes health checking of `name` from `unknown`.
    pub fn resume(&self, name: &str, who: &str) -> Result<BackendStatus, CheckerError> {
        self.act(name, |h, at| h.resume(at, who))
    }

    /// Disables `name` (its loop stops; VPP gets weight 0 with flush).
    pub fn disable(&self, name: &str, who: &str) -> Result<BackendStatus, CheckerError> {
        self.act(name, |h, at| h.disable(at, who))
    }

    /// Enables `name` again, from `unknown`.
    pub fn enable(&self, name: &str, who: &str) -> Result<BackendStatus, CheckerError> {
        self.act(name, |h, at| h.enable(at, who))
    }

    /// Stops every probe loop (maglevd is shutting down): no probe runs
    /// and no state changes after this, so nothing moves VPP on the way
    /// out.
    pub fn stop(&self) {
        let entries = self.shared.entries.lock();
        for c in entries.values() {
            if let Some(t) = c.lock().task.take() {
                t.abort();
            }
        }
    }

    /// Takes a reloaded config: new backends start `unknown`, removed ones
    /// go `removed` and stop, a changed health check restarts the loop with
    /// fresh state, and unchanged ones keep probing and their runtime state
    /// (operator disable included) but take a changed address. A changed
    /// `netns` that cannot be entered fails the whole reload, changing
    /// nothing.
    pub fn apply(&self, config: &Config) -> Result<ApplyReport, SetupError> {
        let netns = config.healthchecker.netns.clone();
        let new_prober = {
            let current = self.shared.netns.lock().expect("checker lock");
            if *current != netns {
                Some(Prober::new(
                    netns.as_deref(),
                    self.shared.options.user_agent.clone(),
                )?)
            } else {
                None
            }
        };
        if let Some(p) = new_prober.clone() {
            *self.shared.prober.lock().expect("checker lock") = p;
            *self.shared.netns.lock().expect("checker lock") = netns;
        }
        *self.shared.history.lock().expect("checker lock") =
            config.healthchecker.transition_history;

        let wanted = in_use(config);
        let mut report = ApplyReport::default();
        let mut entries = self.shared.entries.lock();
        let gone: Vec<String> = entries
            .keys()
            .filter(|n| !wanted.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(cell) = entries.remove(&name) {
                // Under the cell's lock: a loop that reports after this
                // finds its epoch gone (the removal follows its last
                // report and its last event).
                let mut e = cell.lock();
                e.stop();
                self.shared.note_agent(&name, AgentState::default());
                let t = e.health.remove(SystemTime::now());
                self.publish(&e.backend, t);
                report.removed.push(name);
            }
        }
        let n = wanted.len().max(1);
        for (i, (name, backend)) in wanted.into_iter().enumerate() {
            let Some(cell) = entries.get(&name).cloned() else {
                report.added.push(name.clone());
                self.add(&mut entries, name, backend, i as f64 / n as f64);
                continue;
            };
            let mut entry = cell.lock();
            if entry.backend.healthcheck != backend.healthcheck {
                let (rise, fall) = Entry::thresholds(&backend);
                entry
                    .health
                    .set_flap(backend.healthcheck.as_ref().and_then(|hc| hc.flap));
                let t = entry
                    .health
                    .restart(rise, fall, backend.enabled, SystemTime::now());
                entry.probe = backend.healthcheck.as_ref().map(|hc| self.probe_for(hc));
                entry.backend = backend;
                self.restart(&name, &cell, &mut entry, t);
                report.restarted.push(name);
            } else if entry.backend.address != backend.address && entry.health.is_probing() {
                // Another address is another server: what was known of the
                // old one says nothing about it. Back to unknown (weight 0)
                // and probed at once; an operator's disable or pause is
                // kept (they do not probe).
                let (rise, fall) = Entry::thresholds(&backend);
                let enabled = entry.health.enabled();
                let t = entry.health.restart(rise, fall, enabled, SystemTime::now());
                if new_prober.is_some() {
                    entry.probe = backend.healthcheck.as_ref().map(|hc| self.probe_for(hc));
                }
                entry.backend = Backend { enabled, ..backend };
                self.restart(&name, &cell, &mut entry, t);
                report.restarted.push(name);
            } else {
                // Same check: keep state and loop; take the new address.
                if new_prober.is_some() {
                    entry.probe = backend.healthcheck.as_ref().map(|hc| self.probe_for(hc));
                }
                entry.backend = Backend {
                    enabled: entry.health.enabled(),
                    ..backend
                };
                report.kept.push(name);
            }
        }
        let capacity = *self.shared.history.lock().expect("checker lock");
        for c in entries.values() {
            c.lock().health.set_capacity(capacity);
        }
        drop(entries);
        Ok(report)
    }
}

fn publish(shared: &Shared, backend: &Backend, transition: Option<Transition>) {
    let Some(t) = transition else { return };
    info!(
        event = "backend-transition",
        backend = %backend.name,
        address = %backend.address,
        from = %t.from,
        to = %t.to,
        code = %t.code,
        detail = %t.detail,
        "backend {} {} -> {}",
        backend.name,
        t.from,
        t.to
    );
    // No receivers is fine; a lagging one loses the oldest events.
    let _ = shared.events.send(BackendEvent {
        backend: backend.name.clone(),
        address: backend.address,
        transition: t,
    });
}

/// What a backend's loop works for: its checker (not kept alive by the
/// loop, and not upgraded on a probe's usual path: its count is a line
/// every probe thread would write), its thread's probe permits, the
/// observer, its entry and name, and the entry's epoch the loop belongs
/// to (a loop whose epoch has passed stops).
struct LoopOf {
    shared: Weak<Shared>,
    admission: Arc<Admission>,
    observer: Option<Arc<dyn ProbeObserver>>,
    cell: Cell,
    name: String,
    epoch: u64,
}

/// Asks a backend's agent every `agent.interval` (jittered) and applies
/// its answers; an agent that cannot be reached or says nothing valid
/// changes nothing. A change is published as an event whose state does
/// not move (code `AGENT`), so watchers and the reconciler see it.
/// Each ask holds a socket: it takes its turn with the probes.
async fn agent_loop(of: LoopOf, first_delay: Duration, sockets: crate::probe::Sockets) {
    let LoopOf {
        shared,
        admission,
        cell,
        name,
        epoch,
        ..
    } = of;
    let mut due = tokio::time::Instant::now() + jitter(first_delay, &mut rand::rng());
    loop {
        tokio::time::sleep_until(due).await;
        if shared.strong_count() == 0 {
            return;
        }
        let permit = admission.acquire(due).await;
        let Some(sh) = shared.upgrade() else { return };
        let (agent, address, timeout) = {
            let e = cell.lock();
            if e.epoch != epoch {
                return;
            }
            let Some(hc) = e.backend.healthcheck.as_ref() else {
                return;
            };
            let Some(agent) = hc.agent.clone() else {
                return;
            };
            (agent, e.backend.address, hc.timeout)
        };
        drop(sh);
        let addr = std::net::SocketAddr::new(address, agent.port);
        let answer = crate::agent::ask(&sockets, addr, &agent.send, timeout).await;
        drop(permit);
        let Some(sh) = shared.upgrade() else { return };
        {
            let mut e = cell.lock();
            if e.epoch != epoch {
                return;
            }
            let event = agent_answer(&mut e, &name, answer);
            sh.note_agent(&name, e.agent);
            // Under the entry's lock, as a probe's transition.
            if let Some((backend, t)) = event {
                info!(event = "agent-change", backend = %backend.name, agent = %t.detail);
                let _ = sh.events.send(BackendEvent {
                    backend: backend.name.clone(),
                    address: backend.address,
                    transition: t,
                });
            }
        }
        drop(sh);
        due = tokio::time::Instant::now() + jitter(agent.interval, &mut rand::rng());
    }
}

/// Applies one agent answer to an entry; the event to publish when what
/// the agent asks for changed.
fn agent_answer(
    e: &mut Entry,
    name: &str,
    answer: Result<String, String>,
) -> Option<(Backend, Transition)> {
    let now = SystemTime::now();
    let parsed = answer.and_then(|line| crate::agent::parse_reply(&line).map(|r| (line, r)));
    let mut changed = None;
    match &parsed {
        Ok((line, reply)) => {
            let next = e.agent.apply(reply);
            if next != e.agent {
                e.agent = next;
                changed = Some(line.clone());
            }
        }
        Err(why) => {
            if e.agent_last.as_ref().is_none_or(|(r, _)| r.is_ok()) {
                info!(event = "agent-unanswered", backend = %name, error = %why, "the agent's state stays as it was");
            }
        }
    }
    e.agent_last = Some((parsed.map(|(line, _)| line), now));
    changed.map(|line| {
        let state = e.health.state();
        (
            e.backend.clone(),
            Transition {
                from: state,
                to: state,
                at: now,
                code: "AGENT".to_string(),
                detail: format!("{} (agent said {line:?})", e.agent.describe()),
            },
        )
    })
}

async fn probe_loop(
    of: LoopOf,
    slots: Arc<Slots>,
    phase: Duration,
    probing: bool,
    first_delay: Duration,
) {
    let LoopOf {
        shared,
        admission,
        observer,
        cell,
        name,
        epoch,
    } = of;
    let Some(origin) = shared.upgrade().map(|sh| sh.origin + phase) else {
        return;
    };
    // The thread's generator, not one per loop: 320 bytes less in every
    // backend's task, which is read once a second and so always cold.
    let mut due = tokio::time::Instant::now() + jitter(first_delay, &mut rand::rng());
    if !first_delay.is_zero() {
        // The first probes of a start (spread over the interval) take
        // slots too, so a start of 50,000 backends waits on a hundred
        // timers, not 50,000; a probe asked for at once (a restart, a
        // resume) still starts at once.
        let interval = cell.lock().next_interval();
        due = coalesce(due, origin, interval);
    }
    let mut probe: Option<Arc<dyn Probe>> = None;
    loop {
        slots.sleep_until(due).await;
        if shared.strong_count() == 0 {
            return;
        }
        // A probe holds a socket and the threads' time: it waits its turn
        // (static backends have nothing to run). Shared is not held while
        // waiting, so a checker dropped meanwhile still stops this loop.
        let permit = if probing {
            Some(admission.acquire(due).await)
        } else {
            None
        };
        if shared.strong_count() == 0 {
            return;
        }
        // How late this probe starts: the timer's lag and the wait for a
        // permit.
        note_lag(
            observer.as_ref(),
            &shared,
            &name,
            tokio::time::Instant::now().saturating_duration_since(due),
        );
        let address = {
            let e = cell.lock();
            if e.epoch != epoch {
                return;
            }
            // The check's one probe, shared by its backends on every
            // thread: cloned only when it was replaced (a reload into
            // another netns), since its count is a line every probe
            // thread would write.
            let same = match (&probe, &e.probe) {
                (Some(mine), Some(now)) => Arc::ptr_eq(mine, now),
                (mine, now) => mine.is_none() && now.is_none(),
            };
            if !same {
                probe = e.probe.clone();
            }
            e.backend.address
        };
        let result = match &probe {
            Some(p) => {
                let limit = p.timeout() + OVERRUN_GRACE;
                match tokio::time::timeout(limit, p.check(address)).await {
                    Ok(r) => r,
                    Err(_) => {
                        warn!(backend = %name, "probe overran its timeout");
                        ProbeResult::new(Code::SockErr, "probe overran its timeout", limit)
                    }
                }
            }
            None => ProbeResult::new(Code::Static, "static backend", Duration::ZERO),
        };
        drop(permit);
        let next = {
            let mut e = cell.lock();
            if e.epoch != epoch {
                return;
            }
            // Reported under the entry's lock, and only for a loop still
            // current: a backend's removal (which stops the entry under
            // that lock) then comes after its last report, and the
            // metrics it clears stay cleared.
            if let Some(o) = &e.observer {
                o.probe_done(&result);
            }
            let now = SystemTime::now();
            let t = if result.code == Code::SockErr {
                // This host could not probe (out of fds, buffers, source
                // addresses…): that says nothing about the backend, so its
                // state stays where it is. Counted by the observer.
                if !e.local_error {
                    e.local_error = true;
                    warn!(
                        event = "probe-local-error",
                        backend = %name,
                        detail = %result.detail,
                        "a probe could not run for a local reason; the backend keeps its state"
                    );
                }
                None
            } else {
                if e.local_error {
                    e.local_error = false;
                    info!(event = "probe-local-error-cleared", backend = %name);
                }
                e.health
                    .record(result.pass, result.code.as_str(), &result.detail, now)
            };
            tracing::debug!(
                event = "probe",
                backend = %name,
                code = %result.code,
                detail = %result.detail,
                took_ms = result.duration.as_secs_f64() * 1000.0,
            );
            e.last = Some((result, now));
            let next = e.next_interval();
            // Published under the entry's lock, as the report above: a
            // reload that removes the backend takes that lock first, so
            // its `removed` comes after this transition, never before.
            if t.is_some() {
                let Some(sh) = shared.upgrade() else { return };
                publish(&sh, &e.backend, t);
            }
            drop(e);
            next
        };
        due = coalesce(
            tokio::time::Instant::now() + jitter(next, &mut rand::rng()),
            origin,
            next,
        );
    }
}

/// Reports a probe's lag to the observer, and warns (at most once a
/// minute) when probes run so late that the checker is over capacity.
fn note_lag(
    observer: Option<&Arc<dyn ProbeObserver>>,
    shared: &Weak<Shared>,
    backend: &str,
    lag: Duration,
) {
    if let Some(o) = observer {
        o.probe_lag(lag);
    }
    if lag < LAG_WARNING {
        return;
    }
    let Some(sh) = shared.upgrade() else { return };
    let now = tokio::time::Instant::now();
    let mut last = sh.lag_warned.lock().expect("checker lock");
    if last.is_none_or(|t| now.saturating_duration_since(t) >= LAG_WARNING_EVERY) {
        *last = Some(now);
        warn!(
            event = "probe-lag",
            backend,
            lag_ms = lag.as_secs_f64() * 1000.0,
            "probes start late: more probes per second than this machine runs (see maglev_probe_lag_seconds)"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::probe::BoxFuture;

    #[derive(Debug, Default)]
    struct Counted(AtomicUsize);

    impl Probe for Counted {
        fn check(&self, _: IpAddr) -> BoxFuture<'_, ProbeResult> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { ProbeResult::new(Code::L4Ok, "counted", Duration::ZERO) })
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(1)
        }
    }

    /// A checker of `cfg` whose every probe is counted, its loops on
    /// `runtimes` (empty: the caller's).
    fn counting(
        cfg: &maglev_config::Config,
        runtimes: Vec<tokio::runtime::Handle>,
    ) -> (Checker, Arc<Counted>) {
        let counted = Arc::new(Counted::default());
        let probe = Arc::clone(&counted);
        let checker = Checker::start(
            cfg,
            CheckerOptions {
                probe_factory: Some(Arc::new(move |_| Arc::clone(&probe) as Arc<dyn Probe>)),
                runtimes,
                ..Default::default()
            },
        )
        .unwrap();
        (checker, counted)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A current-thread runtime on a thread of its own, as maglevd's probe
    /// threads; what `setup` returns (a log subscriber's guard) lives as
    /// long as the thread.
    struct ProbeThread {
        handle: tokio::runtime::Handle,
        done: tokio::sync::oneshot::Sender<()>,
        thread: std::thread::JoinHandle<()>,
    }

    impl ProbeThread {
        fn start<G>(setup: impl FnOnce() -> G + Send + 'static) -> ProbeThread {
            let rt = runtime();
            let handle = rt.handle().clone();
            let (done, finished) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::spawn(move || {
                let _kept = setup();
                let _ = rt.block_on(finished);
            });
            ProbeThread {
                handle,
                done,
                thread,
            }
        }

        fn stop(self) {
            let _ = self.done.send(());
            self.thread.join().unwrap();
        }
    }

    /// A probe touches only its own entry: while the map of every backend
    /// is locked (a reload, an operator action, a read listing them all),
    /// probes go on.
    #[test]
    fn probes_go_on_while_the_map_of_backends_is_locked() {
        let probes = ProbeThread::start(|| ());
        let main = runtime();
        let _in = main.enter();
        let yaml = "maglev:
  vpp:
    lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }
  healthchecks:
    hc: { type: tcp, port: 80, interval: 50ms, fast-interval: 20ms, down-interval: 50ms, timeout: 200ms }
  backends:
    b: { address: 127.0.0.1, healthcheck: hc }
  frontends:
    f: { address: 203.0.113.1, port: 80, pools: [ { name: p, backends: { b: {} } } ] }
";
        let cfg = maglev_config::load_str(yaml, "test").unwrap().config;
        let (checker, counted) = counting(&cfg, vec![probes.handle.clone()]);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while counted.0.load(Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < deadline, "no first probe");
            std::thread::sleep(Duration::from_millis(5));
        }
        let held = checker.shared.entries.lock();
        let before = counted.0.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        let during = counted.0.load(Ordering::SeqCst) - before;
        drop(held);
        checker.stop();
        probes.stop();
        assert!(during >= 3, "{during} probes in 300 ms with the map locked");
    }

    /// Probes of one thread that start in the same slot wait on one timer:
    /// at 1,000 backends a second, each slot's first waiter leads and the
    /// rest follow it.
    #[test]
    fn probes_of_a_slot_share_one_timer() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let mut yaml = String::from(
                "maglev:
  vpp:
    lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }
  healthchecks:
    hc: { type: tcp, port: 80, interval: 1s, fast-interval: 1s, down-interval: 1s, timeout: 200ms }
  backends:
",
            );
            let n = 1000;
            for i in 0..n {
                yaml.push_str(&format!(
                    "    b{i}: {{ address: 10.0.{}.{}, healthcheck: hc }}\n",
                    i / 250,
                    i % 250 + 1
                ));
            }
            yaml.push_str("  frontends:\n    f: { address: 203.0.113.1, port: 80, pools: [ { name: p, backends: {");
            for i in 0..n {
                yaml.push_str(&format!(" b{i}: {{}},"));
            }
            yaml.push_str(" } } ] }\n");
            let cfg = maglev_config::load_str(&yaml, "test").unwrap().config;
            let (checker, counted) = counting(&cfg, Vec::new());
            // The first probes, spread over the interval, share slots too.
            tokio::time::sleep(Duration::from_millis(1)).await;
            let (leaders, followers) = checker.shared.slots[0].led();
            assert_eq!(leaders + followers, n, "every loop waits for a slot");
            assert!(leaders <= 120, "{leaders} timers for the first probes");
            // Every backend has probed once and waits for its next slot.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert!(counted.0.load(Ordering::SeqCst) >= n);
            let (leaders, followers) = checker.shared.slots[0].led();
            assert!(
                leaders + followers >= n * 9 / 10 && leaders * 5 < followers,
                "{leaders} timers for {followers} more waiting probes"
            );
            checker.stop();
        });
    }

    /// Stalls the first `backend-transition` log record of backend `b` on
    /// its thread until released: a probe is held inside the publishing
    /// of its transition.
    struct StallTransition {
        entered: Mutex<Option<std::sync::mpsc::Sender<()>>>,
        release: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl StallTransition {
        /// The subscriber, what tells that a record is held, and what
        /// releases it.
        fn new() -> (
            StallTransition,
            std::sync::mpsc::Receiver<()>,
            std::sync::mpsc::Sender<()>,
        ) {
            let (entered, held) = std::sync::mpsc::channel();
            let (release, released) = std::sync::mpsc::channel();
            let stall = StallTransition {
                entered: Mutex::new(Some(entered)),
                release: Mutex::new(released),
            };
            (stall, held, release)
        }
    }

    impl tracing::Subscriber for StallTransition {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            #[derive(Default)]
            struct Find {
                transition: bool,
                of_b: bool,
            }
            impl tracing::field::Visit for Find {
                fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                    self.transition |= f.name() == "event" && v == "backend-transition";
                }
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    self.of_b |= f.name() == "backend" && format!("{v:?}") == "b";
                }
            }
            let mut find = Find::default();
            event.record(&mut find);
            if !(find.transition && find.of_b) {
                return;
            }
            if let Some(entered) = self.entered.lock().unwrap().take() {
                let _ = entered.send(());
                let _ = self
                    .release
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(5));
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[derive(Debug)]
    struct Refused;

    impl Probe for Refused {
        fn check(&self, _: IpAddr) -> BoxFuture<'_, ProbeResult> {
            Box::pin(async { ProbeResult::new(Code::L4Con, "refused", Duration::ZERO) })
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(1)
        }
    }

    /// A checker of `config` on `probes`' thread whose every probe is
    /// refused.
    fn refusing(config: &Config, probes: &ProbeThread) -> Checker {
        Checker::start(
            config,
            CheckerOptions {
                probe_factory: Some(Arc::new(|_| Arc::new(Refused) as Arc<dyn Probe>)),
                runtimes: vec![probes.handle.clone()],
                ..Default::default()
            },
        )
        .unwrap()
    }

    /// A backend's transition is sent before a reload's `removed` of it,
    /// even when the reload comes while the probe is publishing it: the
    /// probe publishes under its entry's lock, which the removal takes.
    #[test]
    fn a_removal_comes_after_the_transition_being_published() {
        let (stall, entered, release) = StallTransition::new();
        // With one scoped subscriber in the process, tracing decides
        // whether a log line is wanted from the thread that reaches it
        // first (another test's, with none); with two it asks both.
        let _second =
            tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
        let probes = ProbeThread::start(move || tracing::subscriber::set_default(stall));
        let main = runtime();
        let _in = main.enter();
        let head = "maglev:
  vpp:
    lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }
  healthchecks:
    hc: { type: tcp, port: 80, interval: 50ms, rise: 1, fall: 1, timeout: 200ms }
  backends:
    b: { address: 127.0.0.1, healthcheck: hc }
    c: { address: 127.0.0.2 }
";
        let with_b = format!(
            "{head}  frontends:\n    f: {{ address: 203.0.113.1, port: 80, pools: [ {{ name: p, backends: {{ b: {{}}, c: {{}} }} }} ] }}\n"
        );
        let without_b = format!(
            "{head}  frontends:\n    f: {{ address: 203.0.113.1, port: 80, pools: [ {{ name: p, backends: {{ c: {{}} }} }} ] }}\n"
        );
        let checker = refusing(
            &maglev_config::load_str(&with_b, "test").unwrap().config,
            &probes,
        );
        let mut events = checker.subscribe();
        // b's first probe fails: unknown -> down, held while published.
        entered
            .recv_timeout(Duration::from_secs(5))
            .expect("b's transition is being published");
        let reload = {
            let checker = checker.clone();
            let config = maglev_config::load_str(&without_b, "test").unwrap().config;
            std::thread::spawn(move || checker.apply(&config).unwrap())
        };
        std::thread::sleep(Duration::from_millis(200));
        let _ = release.send(());
        let report = reload.join().unwrap();
        assert_eq!(report.removed, vec!["b".to_string()]);
        let mut of_b = Vec::new();
        while let Ok(ev) = events.try_recv() {
            if ev.backend == "b" {
                of_b.push(ev.transition.to);
            }
        }
        checker.stop();
        probes.stop();
        assert_eq!(of_b, vec![State::Down, State::Removed]);
    }

    /// A reload's restart of a backend is sent before anything the loop
    /// it starts reports, even when the loop's first probe is done while
    /// the restart is still being published.
    #[test]
    fn a_restart_comes_before_the_new_loops_transitions() {
        // See a_removal_comes_after_the_transition_being_published.
        let _second =
            tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
        let probes = ProbeThread::start(|| ());
        let main = runtime();
        let _in = main.enter();
        let config = |port: u16| {
            let yaml = format!(
                "maglev:
  vpp:
    lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }}
  healthchecks:
    hc: {{ type: tcp, port: {port}, interval: 10s, rise: 1, fall: 1, timeout: 200ms }}
  backends:
    b: {{ address: 127.0.0.1, healthcheck: hc }}
  frontends:
    f: {{ address: 203.0.113.1, port: 80, pools: [ {{ name: p, backends: {{ b: {{}} }} }} ] }}
"
            );
            maglev_config::load_str(&yaml, "test").unwrap().config
        };
        let checker = refusing(&config(80), &probes);
        let mut events = checker.subscribe();
        let next = |events: &mut broadcast::Receiver<BackendEvent>| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                if let Ok(ev) = events.try_recv() {
                    return ev.transition.to;
                }
                assert!(std::time::Instant::now() < deadline, "no event");
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        assert_eq!(next(&mut events), State::Down, "the first probe fails");
        // A new check: the loop restarts and probes at once, while the
        // reload is held inside the publishing of the restart.
        let (stall, entered, release) = StallTransition::new();
        let reload = {
            let checker = checker.clone();
            let config = config(81);
            std::thread::spawn(move || {
                let _log = tracing::subscriber::set_default(stall);
                checker.apply(&config).unwrap()
            })
        };
        entered
            .recv_timeout(Duration::from_secs(5))
            .expect("the restart is being published");
        std::thread::sleep(Duration::from_millis(200));
        let _ = release.send(());
        assert_eq!(reload.join().unwrap().restarted, vec!["b".to_string()]);
        let after = [next(&mut events), next(&mut events)];
        checker.stop();
        probes.stop();
        assert_eq!(after, [State::Unknown, State::Down]);
    }
}
