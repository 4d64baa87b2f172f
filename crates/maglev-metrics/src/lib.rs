//! maglevd's Prometheus metrics: the families, the observers that feed the
//! counters (probes, VPP API messages, gRPC calls), the gauges computed at
//! scrape time, and the `/metrics` HTTP server.
//!
//! Label values come from the config (names, which are bounded and
//! validated), from fixed vocabularies (states, codes, message names) or
//! from VPP's version — never from client input.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod gauges;
mod grpc;
mod probes;
mod process;
mod renders;
mod scope;
mod sharded;
mod text;

pub use scope::{accepts_gzip, QueryError, Scopes};

pub use text::to_text_format;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use maglev_health::{BackendObserver, Checker, ProbeObserver, State};
use maglev_lbsync::desired::{effective_weights, vip_key};
use maglev_lbsync::reconciler::ReconcilerHandle;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use grpc::GrpcMetricsLayer;

use gauges::GaugeWriter;

type Labels = Vec<(&'static str, String)>;

/// The probe and lag histograms' buckets: 100 µs .. ~6.5 s.
fn histogram_bounds() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 17)
}

fn histogram() -> Histogram {
    Histogram::new(histogram_bounds())
}

/// The families, one registry per [`Scopes`] group so a scrape encodes
/// only what it asked for.
#[derive(Default)]
struct Registries {
    global: Registry,
    frontend: Registry,
    backend: Registry,
}

/// Every metric family of maglevd.
pub struct Metrics {
    registry: Mutex<Registries>,
    /// Scrape bodies with the per-backend scope, one render at a time
    /// (by scopes, format, gzip), and apart from them the small ones: a
    /// 15 s scrape of the daemon and frontends never waits behind a
    /// render of every backend.
    renders: renders::Renders<(Scopes, Format, bool)>,
    small_renders: renders::Renders<(Scopes, Format, bool)>,
    /// Handles on `probe_total` and `probe_duration` by backend.
    probe_series: Arc<probes::ProbeSeries>,
    /// Frontends with `vip_packets` series: those a reload removes lose
    /// them at the next scrape.
    vip_frontends: Mutex<std::collections::BTreeSet<String>>,
    probe_total: Family<Labels, Counter>,
    probe_duration: Family<Labels, Histogram, fn() -> Histogram>,
    probe_lag: sharded::ShardedHistogram,
    transitions: Family<Labels, Counter>,
    /// Backends with `transitions` series (what a sweep after lost
    /// events looks through).
    transitioned: Mutex<std::collections::HashSet<String>>,
    vpp_connected: Gauge,
    vpp_uptime: Gauge<f64, std::sync::atomic::AtomicU64>,
    vpp_info: Family<Labels, Gauge>,
    vpp_api: Family<Labels, Counter>,
    lbsync: Family<Labels, Counter>,
    lbsync_failed: Family<Labels, Counter>,
    vip_packets: Family<Labels, Counter>,
    build_info: Family<Labels, Gauge>,
    reloads: Family<Labels, Counter>,
    grpc_denied: Family<Labels, Counter>,
    reload_ok: Gauge,
    reload_ok_time: Gauge<f64, std::sync::atomic::AtomicU64>,
    process: process::Process,
    pub(crate) grpc_started: Family<Labels, Counter>,
    pub(crate) grpc_handled: Family<Labels, Counter>,
    pub(crate) grpc_seconds: Family<Labels, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every family, registered.
    pub fn new() -> Metrics {
        let probe_total = Family::default();
        let probe_duration = Family::new_with_constructor(histogram as fn() -> Histogram);
        let m = Metrics {
            registry: Mutex::new(Registries::default()),
            renders: renders::Renders::new(renders::BODY_BUDGET_KIB),
            small_renders: renders::Renders::new(renders::BODY_BUDGET_KIB),
            probe_series: probes::ProbeSeries::new(probe_total.clone(), probe_duration.clone()),
            vip_frontends: Mutex::default(),
            probe_total,
            probe_duration,
            probe_lag: sharded::ShardedHistogram::new(histogram_bounds()),
            transitions: Family::default(),
            transitioned: Mutex::default(),
            vpp_connected: Gauge::default(),
            vpp_uptime: Gauge::default(),
            vpp_info: Family::default(),
            vpp_api: Family::default(),
            lbsync: Family::default(),
            lbsync_failed: Family::default(),
            vip_packets: Family::default(),
            build_info: Family::default(),
            reloads: Family::default(),
            grpc_denied: Family::default(),
            reload_ok: Gauge::default(),
            reload_ok_time: Gauge::default(),
            process: process::Process::default(),
            grpc_started: Family::default(),
            grpc_handled: Family::default(),
            grpc_seconds: Family::new_with_constructor(histogram),
        };
        // Failure counters exist at 0 from the start: `increase()` over a
        // series that appears with its first failure misses that failure.
        for scope in maglev_lbsync::plan::Scope::LABELS {
            let _zero = m
                .lbsync_failed
                .get_or_create(&vec![("scope", scope.to_string())]);
        }
        {
            let mut registries = m.registry.lock().expect("registry");
            let r = registries.backend.sub_registry_with_prefix("maglev");
            r.register(
                "probe",
                "Health probes by result and code",
                m.probe_total.clone(),
            );
            r.register(
                "probe_duration_seconds",
                "Health probe durations",
                m.probe_duration.clone(),
            );
            r.register(
                "backend_transitions",
                "Backend state transitions",
                m.transitions.clone(),
            );
            let r = registries.frontend.sub_registry_with_prefix("maglev");
            r.register(
                "vip_packets",
                "Packets per VIP from VPP's lb counters, by kind (reset when VPP restarts)",
                m.vip_packets.clone(),
            );
            let r = registries.global.sub_registry_with_prefix("maglev");
            r.register(
                "probe_lag_seconds",
                "How late probes start after they were due (above a few ms: the checker is over capacity)",
                m.probe_lag.clone(),
            );
            r.register(
                "vpp_connected",
                "1 while VPP is connected",
                m.vpp_connected.clone(),
            );
            r.register(
                "vpp_uptime_seconds",
                "Seconds since VPP booted",
                m.vpp_uptime.clone(),
            );
            r.register("vpp_info", "The connected VPP", m.vpp_info.clone());
            r.register(
                "vpp_api",
                "VPP API messages by name, direction and result",
                m.vpp_api.clone(),
            );
            r.register(
                "vpp_lbsync",
                "Successful VPP writes by sync scope and kind",
                m.lbsync.clone(),
            );
            r.register(
                "vpp_lbsync_failed",
                "Syncs that failed (VPP could not be read or a call failed), by scope",
                m.lbsync_failed.clone(),
            );
            r.register(
                "build_info",
                "maglevd's version, git commit and build date",
                m.build_info.clone(),
            );
            r.register(
                "grpc_denied",
                "gRPC calls refused for want of a role, by method and the role needed",
                m.grpc_denied.clone(),
            );
            r.register(
                "config_reloads",
                "Config reloads (SIGHUP or ReloadConfig) by result",
                m.reloads.clone(),
            );
            r.register(
                "config_last_reload_successful",
                "1 if the last config load or reload succeeded",
                m.reload_ok.clone(),
            );
            r.register(
                "config_last_reload_success_timestamp_seconds",
                "When the config in force was loaded (Unix seconds)",
                m.reload_ok_time.clone(),
            );
        }
        m.process
            .register(&mut m.registry.lock().expect("registry").global);
        // The config maglevd started with was loaded successfully.
        m.config_reload(true);
        {
            let mut r = m.registry.lock().expect("registry");
            let r = r.global.sub_registry_with_prefix("grpc_server");
            r.register("started", "RPCs started", m.grpc_started.clone());
            r.register("handled", "RPCs completed, by code", m.grpc_handled.clone());
            r.register(
                "handling_seconds",
                "RPC handling time",
                m.grpc_seconds.clone(),
            );
        }
        m
    }

    /// Sets `maglev_build_info`.
    pub fn build_info(&self, version: &str, commit: &str, date: &str) {
        self.build_info
            .get_or_create(&vec![
                ("version", version.to_string()),
                ("commit", commit.to_string()),
                ("build_date", date.to_string()),
            ])
            .set(1);
    }

    /// Counts a call refused because its connection lacks `needed`.
    pub fn grpc_denied(&self, method: &str, needed: &str) {
        self.grpc_denied
            .get_or_create(&vec![
                ("method", method.to_string()),
                ("needed", needed.to_string()),
            ])
            .inc();
    }

    /// Records a config load or reload.
    pub fn config_reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
        self.reload_ok.set(i64::from(ok));
        if ok {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.reload_ok_time.set(now.as_secs_f64());
        }
    }

    /// Where a scrape of `scopes` takes its turn.
    fn renders_for(&self, scopes: Scopes) -> &renders::Renders<(Scopes, Format, bool)> {
        if scopes.backend {
            &self.renders
        } else {
            &self.small_renders
        }
    }

    /// Removes the series of a backend gone from the config (probe
    /// counters, durations, transitions); its gauges go with the
    /// checker's snapshot.
    pub fn forget_backend(&self, backend: &str) {
        self.probe_series.forget(backend);
        self.transitioned
            .lock()
            .expect("metrics lock")
            .remove(backend);
        for from in State::ALL {
            for to in State::ALL {
                self.transitions.remove(&vec![
                    ("backend", backend.to_string()),
                    ("from", from.to_string()),
                    ("to", to.to_string()),
                ]);
            }
        }
    }

    /// Counts a backend transition (fed from the checker's events).
    pub fn transition(&self, backend: &str, from: State, to: State) {
        self.transitions
            .get_or_create(&vec![
                ("backend", backend.to_string()),
                ("from", from.to_string()),
                ("to", to.to_string()),
            ])
            .inc();
        let mut known = self.transitioned.lock().expect("metrics lock");
        if !known.contains(backend) {
            known.insert(backend.to_string());
        }
    }

    /// Forgets the series of every backend `checker` no longer has: after
    /// events were lost, removals may have been among them. The names
    /// with series are read before the checker's, so a backend added in
    /// between (not in the first list) keeps its new series.
    pub fn forget_missing(&self, checker: &Checker) {
        let mut known = self.probe_series.backends();
        known.extend(
            self.transitioned
                .lock()
                .expect("metrics lock")
                .iter()
                .cloned(),
        );
        known.sort_unstable();
        known.dedup();
        let present = checker.states_of(known.iter().map(String::as_str));
        for gone in known.iter().filter(|n| !present.contains_key(*n)) {
            self.forget_backend(gone);
        }
    }

    /// Encodes the families of `scopes` in `format`: the registries'
    /// counters and histograms, then the gauges computed from the
    /// checker's and the reconciler's snapshots.
    pub async fn render(
        &self,
        checker: &Checker,
        reconciler: &ReconcilerHandle,
        format: Format,
        scopes: Scopes,
    ) -> String {
        let status = self.prepare(reconciler, scopes).await;
        self.encode(checker, &status, format, scopes)
    }

    /// Brings the counters that follow VPP and the reconciler up to date;
    /// the snapshot to encode the gauges from.
    async fn prepare(
        &self,
        reconciler: &ReconcilerHandle,
        scopes: Scopes,
    ) -> maglev_lbsync::reconciler::Status {
        // Everything from the reconciler's published snapshot: a scrape
        // never waits for it (it may be waiting for VPP) and never makes
        // VPP calls; counters come from the stats segment directly.
        let status = reconciler.status();
        if scopes.frontend {
            if let Ok(counters) = reconciler.counters().await {
                self.vip_counters(&status, &counters);
            }
        }
        if scopes.global {
            self.update_global(&status);
        }
        status
    }

    /// The CPU part of a render (most of a large body's time).
    fn encode(
        &self,
        checker: &Checker,
        status: &maglev_lbsync::reconciler::Status,
        format: Format,
        scopes: Scopes,
    ) -> String {
        let mut out = String::new();
        {
            let r = self.registry.lock().expect("registry");
            for (asked, registry) in [
                (scopes.global, &r.global),
                (scopes.frontend, &r.frontend),
                (scopes.backend, &r.backend),
            ] {
                if asked {
                    let _ = encode_registry(&mut out, registry);
                }
            }
        }
        // Only the registries' part differs between the formats; the
        // gauges (most of the bytes) are written once, in the end format.
        if format == Format::Text {
            out = to_text_format(&out);
        }
        let mut w = GaugeWriter::new(&mut out);
        if scopes.global {
            global_gauges(&mut w, checker);
        }
        if scopes.frontend {
            frontend_gauges(&mut w, status);
        }
        if scopes.backend {
            backend_gauges(&mut w, checker, status);
        }
        if format == Format::OpenMetrics {
            let _ = encode_eof(&mut out);
        }
        out
    }

    /// The global families that follow the reconciler's snapshot and the
    /// process.
    fn update_global(&self, status: &maglev_lbsync::reconciler::Status) {
        self.vpp_connected.set(i64::from(status.vpp.is_some()));
        self.vpp_info.clear();
        match &status.vpp {
            Some(v) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let up = v.boottime.map_or(0.0, |b| now.as_secs_f64() - b as f64);
                self.vpp_uptime.set(up.max(0.0));
                self.vpp_info
                    .get_or_create(&vec![
                        ("version", v.version.clone()),
                        ("build_date", v.build_date.clone()),
                        ("pid", v.pid.to_string()),
                    ])
                    .set(1);
            }
            None => {
                self.vpp_uptime.set(0.0);
            }
        }
        // The reconciler keeps the totals; the counter catches up to them.
        for ((scope, kind), n) in &status.totals {
            let c = self.lbsync.get_or_create(&vec![
                ("scope", scope.to_string()),
                ("kind", kind.to_string()),
            ]);
            let seen = c.get();
            if *n > seen {
                c.inc_by(n - seen);
            }
        }
        for (scope, n) in &status.sync_failures {
            let c = self
                .lbsync_failed
                .get_or_create(&vec![("scope", scope.to_string())]);
            let seen = c.get();
            if *n > seen {
                c.inc_by(n - seen);
            }
        }
        self.process.update();
    }

    fn vip_counters(
        &self,
        status: &maglev_lbsync::reconciler::Status,
        counters: &[maglev_vpp::stats::VipCounters],
    ) {
        {
            let mut seen = self.vip_frontends.lock().expect("vip frontends");
            let gone: Vec<String> = seen
                .iter()
                .filter(|n| !status.config.frontends.contains_key(*n))
                .cloned()
                .collect();
            for name in gone {
                for kind in VIP_PACKET_KINDS {
                    self.vip_packets.remove(&vec![
                        ("frontend", name.clone()),
                        ("kind", kind.to_string()),
                    ]);
                }
                seen.remove(&name);
            }
        }
        for f in status.config.frontends.values() {
            let Some(index) = status.vip_indexes.get(&vip_key(f)) else {
                continue;
            };
            let Some(c) = counters.get(*index as usize) else {
                continue;
            };
            self.vip_frontends
                .lock()
                .expect("vip frontends")
                .insert(f.name.clone());
            for (kind, v) in [
                ("existing_session", c.existing_session),
                ("first_packet", c.first_packet),
                ("untracked", c.untracked),
                ("no_server", c.no_server),
            ] {
                let labels = vec![("frontend", f.name.clone()), ("kind", kind.to_string())];
                // A counter following VPP's: it catches up, and
                // starts over when VPP's went back (a VPP restart).
                let seen = self.vip_packets.get_or_create(&labels).get();
                if v < seen {
                    self.vip_packets.remove(&labels);
                }
                let c = self.vip_packets.get_or_create(&labels);
                let seen = c.get();
                if v > seen {
                    c.inc_by(v - seen);
                }
            }
        }
    }
}

/// The kinds of `maglev_vip_packets_total`.
const VIP_PACKET_KINDS: [&str; 4] = ["existing_session", "first_packet", "untracked", "no_server"];

/// The two text formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, for whoever asks for it (Prometheus does).
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (promtool, curl, older
    /// scrapers).
    Text,
}

/// The probe engine's gauges.
fn global_gauges(w: &mut GaugeWriter<'_>, checker: &Checker) {
    let load = checker.probe_load();
    const IN_FLIGHT: &str = "maglev_probes_in_flight";
    w.family(IN_FLIGHT, "Health-check probes running now.");
    w.sample(IN_FLIGHT, &[], load.in_flight as i64);
    const LIMIT: &str = "maglev_probe_in_flight_limit";
    w.family(
        LIMIT,
        "How many probes may run at once: the open-file budget, lower while the probe threads are behind.",
    );
    w.sample(LIMIT, &[], load.limit as i64);
}

/// The per-frontend gauges, from the reconciler's snapshot.
fn frontend_gauges(w: &mut GaugeWriter<'_>, status: &maglev_lbsync::reconciler::Status) {
    const FRONTEND: &str = "maglev_frontend_state";
    w.family(FRONTEND, "1 for the state each frontend is in.");
    for (name, state) in &status.frontends {
        for s in ["up", "down", "unknown", "panic"] {
            w.sample(
                FRONTEND,
                &[("frontend", name), ("state", s)],
                state.as_str() == s,
            );
        }
    }
    const PANIC: &str = "maglev_frontend_panic";
    w.family(
        PANIC,
        "1 while the frontend is below its panic-threshold and fails open.",
    );
    for (name, state) in &status.frontends {
        let panic = *state == maglev_lbsync::FrontendState::Panic;
        w.sample(PANIC, &[("frontend", name)], panic);
    }
    // Enough to follow a frontend's health without the per-backend scope.
    const BACKENDS: &str = "maglev_frontend_backends";
    w.family(BACKENDS, "The frontend's backends by state.");
    for (name, counts) in &status.frontend_counts {
        for (s, n) in State::ALL.iter().zip(counts.by_state) {
            w.sample(
                BACKENDS,
                &[("frontend", name), ("state", s.as_str())],
                i64::from(n),
            );
        }
    }
    const SERVING: &str = "maglev_frontend_serving_backends";
    w.family(
        SERVING,
        "The frontend's backends VPP gives a weight above 0: where new flows go.",
    );
    for (name, counts) in &status.frontend_counts {
        w.sample(SERVING, &[("frontend", name)], i64::from(counts.serving));
    }
}

/// The per-backend and per-member gauges, from one look at each snapshot.
fn backend_gauges(
    w: &mut GaugeWriter<'_>,
    checker: &Checker,
    status: &maglev_lbsync::reconciler::Status,
) {
    let backends = checker.summaries();
    const STATE: &str = "maglev_backend_state";
    w.family(STATE, "1 for the state each backend is in.");
    for b in &backends {
        for s in State::ALL {
            w.sample(
                STATE,
                &[("backend", &b.name), ("state", s.as_str())],
                b.state == s,
            );
        }
    }
    const HEALTH: &str = "maglev_backend_health";
    w.family(HEALTH, "1 if the backend is up, else 0.");
    for b in &backends {
        w.sample(HEALTH, &[("backend", &b.name)], b.state == State::Up);
    }
    const ENABLED: &str = "maglev_backend_enabled";
    w.family(ENABLED, "Operator enabled flag.");
    for b in &backends {
        w.sample(ENABLED, &[("backend", &b.name)], b.enabled);
    }
    const AGENT_PERCENT: &str = "maglev_backend_agent_percent";
    w.family(
        AGENT_PERCENT,
        "Percent of its weight a backend's agent asks for (backends with an agent check).",
    );
    for b in &backends {
        if let Some(a) = &b.agent {
            w.sample(AGENT_PERCENT, &[("backend", &b.name)], i64::from(a.percent));
        }
    }
    const AGENT_STATE: &str = "maglev_backend_agent_state";
    w.family(
        AGENT_STATE,
        "1 for each state a backend's agent asks for: ready, drain or maint, and down.",
    );
    for b in &backends {
        if let Some(a) = &b.agent {
            let admin = match a.admin {
                maglev_health::AgentAdmin::Ready => "ready",
                maglev_health::AgentAdmin::Drain => "drain",
                maglev_health::AgentAdmin::Maint => "maint",
            };
            for s in ["ready", "drain", "maint"] {
                w.sample(
                    AGENT_STATE,
                    &[("backend", &b.name), ("state", s)],
                    admin == s,
                );
            }
            let down = a.oper == maglev_health::AgentOper::Down;
            w.sample(
                AGENT_STATE,
                &[("backend", &b.name), ("state", "down")],
                down,
            );
        }
    }
    const WEIGHT: &str = "maglev_frontend_pool_backend_weight";
    w.family(
        WEIGHT,
        "Pool member weight: kind=configured (after overrides) or effective (what VPP gets).",
    );
    let config = &status.config;
    let states = backends.iter().map(|b| (b.name.clone(), b.state)).collect();
    let agents = checker.agents();
    let merged = maglev_lbsync::desired::with_agents(config, &states, &status.overrides, &agents);
    let (states, overrides) = match &merged {
        Some((s, o)) => (s, o),
        None => (&states, &status.overrides),
    };
    for f in config.frontends.values() {
        let mut weights = effective_weights(config, f, states, overrides);
        maglev_lbsync::desired::apply_ramps_to(f, &mut weights, &status.ramps);
        for wt in weights {
            let pool = &f.pools[wt.pool].name;
            for (kind, v) in [("configured", wt.configured), ("effective", wt.weight)] {
                let labels = [
                    ("frontend", f.name.as_str()),
                    ("pool", pool.as_str()),
                    ("backend", wt.backend.as_str()),
                    ("kind", kind),
                ];
                w.sample(WEIGHT, &labels, i64::from(v));
            }
        }
    }
}

impl ProbeObserver for Metrics {
    fn backend(&self, backend: &str, check_type: &'static str) -> Arc<dyn BackendObserver> {
        self.probe_series.backend(backend, check_type)
    }

    fn probe_lag(&self, lag: Duration) {
        self.probe_lag.observe(lag.as_secs_f64());
    }
}

impl maglev_vpp::ApiObserver for Metrics {
    fn observe(&self, msg: &'static str, direction: maglev_vpp::Direction, ok: bool) {
        self.vpp_api
            .get_or_create(&vec![
                ("msg", msg.to_string()),
                ("direction", direction.as_str().to_string()),
                ("result", if ok { "success" } else { "failure" }.to_string()),
            ])
            .inc();
    }
}

/// Counts the checker's transitions into `metrics` until the checker goes.
pub fn count_transitions(metrics: Arc<Metrics>, checker: &Checker) -> tokio::task::JoinHandle<()> {
    let mut rx = checker.subscribe();
    let weak = checker.downgrade();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                // An agent's change moves no state: not a transition.
                Ok(ev) if ev.transition.from == ev.transition.to => {}
                // Gone from the config: so are its series.
                Ok(ev) if ev.transition.to == State::Removed => metrics.forget_backend(&ev.backend),
                Ok(ev) => metrics.transition(&ev.backend, ev.transition.from, ev.transition.to),
                // Some events were lost (a reload of thousands of backends
                // outran this task), maybe removals: sweep.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let Some(checker) = weak.upgrade() else {
                        return;
                    };
                    metrics.forget_missing(&checker);
                }
                Err(_) => return,
            }
        }
    })
}

/// A scrape body, gzipped at the fastest level: scrape bodies are
/// repetitive text, and even the fastest level takes 53 MB to a few.
fn gzip_body(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut z = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = z.write_all(body);
    z.finish().unwrap_or_default()
}

/// Connections the `/metrics` listener serves at once. More wait in the
/// kernel's backlog, costing this process no file descriptor: a flood of
/// idle connections cannot starve the probes of descriptors.
pub const MAX_CONNECTIONS: usize = 64;

/// How long one connection may live: a keep-alive scraper reconnects, an
/// idle or trickling one cannot hold a slot for longer.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Serves `GET /metrics` (OpenMetrics text) on an already-bound listener
/// until `shutdown` completes, at most [`MAX_CONNECTIONS`] at once.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<maglev_access::tls::ServerTls>>,
    metrics: Arc<Metrics>,
    checker: Checker,
    reconciler: ReconcilerHandle,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        // Not accepting while full leaves the rest in the backlog.
        let permit = tokio::select! {
            _ = &mut shutdown => return,
            p = Arc::clone(&slots).acquire_owned() => p.expect("never closed"),
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (metrics, checker, reconciler) =
            (Arc::clone(&metrics), checker.clone(), reconciler.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let (metrics, checker, reconciler) =
                    (Arc::clone(&metrics), checker.clone(), reconciler.clone());
                async move {
                    let arrived = tokio::time::Instant::now();
                    let scopes = Scopes::from_query(req.uri().query());
                    let response = if req.uri().path() != "/metrics" {
                        Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"see /metrics\n")))
                    } else if let Err(e) = scopes {
                        Response::builder()
                            .status(400)
                            .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                            .body(Full::new(Bytes::from(format!("{e}\n"))))
                    } else {
                        let scopes = scopes.unwrap_or(Scopes::ALL);
                        // OpenMetrics for whoever asks for it (Prometheus
                        // does); the classic text format for everyone else
                        // (promtool, curl, older scrapers).
                        let openmetrics = req
                            .headers()
                            .get_all(hyper::header::ACCEPT)
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .any(|v| v.contains("application/openmetrics-text"));
                        let (format, content_type) = if openmetrics {
                            (
                                Format::OpenMetrics,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )
                        } else {
                            (Format::Text, "text/plain; version=0.0.4; charset=utf-8")
                        };
                        let gzip = accepts_gzip(
                            req.headers()
                                .get_all(hyper::header::ACCEPT_ENCODING)
                                .iter()
                                .filter_map(|v| v.to_str().ok()),
                        );
                        let render = || {
                            let metrics = Arc::clone(&metrics);
                            async move {
                                let status = metrics.prepare(&reconciler, scopes).await;
                                // Encoding and compressing are CPU work
                                // (a sixth of a second at 64,000
                                // backends): off the runtime's threads,
                                // which serve the API.
                                tokio::task::spawn_blocking(move || {
                                    let text = metrics.encode(&checker, &status, format, scopes);
                                    // Prometheus asks for gzip: a large
                                    // body shrinks about twelvefold.
                                    if gzip {
                                        gzip_body(text.as_bytes())
                                    } else {
                                        text.into_bytes()
                                    }
                                })
                                .await
                                .unwrap_or_else(|e| {
                                    tracing::error!(error = %e, "metrics render failed");
                                    Vec::new()
                                })
                            }
                        };
                        let body = metrics
                            .renders_for(scopes)
                            .get((scopes, format, gzip), arrived, render)
                            .await;
                        let mut response = Response::builder()
                            .header(hyper::header::CONTENT_TYPE, content_type)
                            .header(hyper::header::VARY, "Accept-Encoding");
                        if gzip {
                            response = response.header(hyper::header::CONTENT_ENCODING, "gzip");
                        }
                        response.body(Full::new(body))
                    };
                    Ok::<_, std::convert::Infallible>(response.expect("valid response"))
                }
            });
            let http = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .clone();
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, async move {
                match tls {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    Some(tls) => {
                        let acceptor = tls.acceptor(&[b"http/1.1"]);
                        let handshake = tokio::time::timeout(
                            maglev_access::listen::HANDSHAKE_TIMEOUT,
                            acceptor.accept(stream),
                        );
                        if let Ok(Ok(s)) = handshake.await {
                            let _ = http.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                }
            })
            .await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload that removes more backends than the checker's event
    /// buffer holds (4,096) outruns the task that counts transitions: the
    /// removals it lost are swept, and no removed backend keeps a series.
    #[tokio::test]
    async fn removals_lost_to_a_lagging_counter_are_swept() {
        let config = |frontends| {
            let yaml = maglev_testkit::static_config(frontends, 64, "");
            maglev_config::load_str(&yaml, "test").unwrap().config
        };
        let m = Arc::new(Metrics::new());
        let checker = Checker::start(
            &config(100),
            maglev_health::CheckerOptions {
                observer: Some(Arc::clone(&m) as Arc<dyn ProbeObserver>),
                ..Default::default()
            },
        )
        .unwrap();
        let _counting = count_transitions(Arc::clone(&m), &checker);
        let named = |m: &Metrics| {
            let mut n = m.probe_series.backends();
            n.extend(m.transitioned.lock().unwrap().iter().cloned());
            n
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while m.probe_series.backends().len() < 6_400 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not every backend probed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // 6,336 removed at once; the counting task has not run since.
        checker.apply(&config(1)).unwrap();
        loop {
            let left = named(&m);
            if left.iter().all(|n| n.starts_with("b0-")) {
                assert!(left.len() >= 64, "{left:?}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} removed backends keep series",
                left.iter().filter(|n| !n.starts_with("b0-")).count()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_scrape_does_not_wait_behind_a_render_of_every_backend() {
        let m = Arc::new(Metrics::new());
        let small = Scopes {
            global: true,
            frontend: true,
            backend: false,
        };
        let key = |s| (s, Format::Text, false);
        let m2 = Arc::clone(&m);
        let whole = tokio::spawn(async move {
            m2.renders_for(Scopes::ALL)
                .get(key(Scopes::ALL), tokio::time::Instant::now(), || async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    b"all".to_vec()
                })
                .await
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        let start = tokio::time::Instant::now();
        let body = m
            .renders_for(small)
            .get(key(small), start, || async { b"small".to_vec() })
            .await;
        assert_eq!(&body[..], b"small");
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "waited behind the whole render"
        );
        // A backend scrape takes its turn behind the whole one.
        let backend = Scopes {
            global: false,
            frontend: false,
            backend: true,
        };
        let at = tokio::time::Instant::now();
        m.renders_for(backend)
            .get(key(backend), at, || async { b"b".to_vec() })
            .await;
        assert!(at.elapsed() >= Duration::from_secs(9), "{:?}", at.elapsed());
        assert_eq!(&whole.await.unwrap()[..], b"all");
    }
}
