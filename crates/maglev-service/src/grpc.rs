//! The `maglev.Maglev` gRPC service.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use maglev_config::{CheckSpec, Config, Frontend};
use maglev_health::{BackendStatus, CheckerError, State};
use maglev_lbsync::desired::{
    active_pool, apply_ramps_to, effective_weights, override_of, ramp_of, summarize, vip_key,
    with_agents, Agents, Overrides, Ramps,
};
use maglev_lbsync::reconciler::SyncError;
use maglev_proto as pb;
use maglev_proto::maglev_server::Maglev;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use maglev_daemon::{ConfigOutcome, Daemon};

/// Events buffered per `WatchEvents` subscriber; beyond that it is told how
/// many it missed.
const SUBSCRIBER_BUFFER: usize = 256;

/// Reads that copy every frontend or backend (ListFrontends,
/// ListBackends) running at once, and apart from them, dumps of VPP
/// (GetVPPLBState). At 64,000 backends a copy costs a tenth of a second
/// or more of CPU and megabytes: 32 read-only clients asking at once
/// stalled every other call for seconds; 32 dumps side by side would
/// keep VPP's API, which the writer shares, busy for seconds. The rest
/// wait their turn; a dump waiting on a hung VPP holds up only dumps.
pub const HEAVY_READS: usize = 1;

/// The service over a running daemon.
#[derive(Debug, Clone)]
pub struct MaglevService {
    daemon: Arc<Daemon>,
    heavy: Arc<tokio::sync::Semaphore>,
    dumps: Arc<tokio::sync::Semaphore>,
}

impl MaglevService {
    /// Serves `daemon`.
    pub fn new(daemon: Arc<Daemon>) -> MaglevService {
        MaglevService {
            daemon,
            heavy: Arc::new(tokio::sync::Semaphore::new(HEAVY_READS)),
            dumps: Arc::new(tokio::sync::Semaphore::new(HEAVY_READS)),
        }
    }

    /// Runs `build` as a heavy read: in turn, and on a blocking thread,
    /// so the runtime's threads stay free for every other call.
    async fn heavy<T: Send + 'static>(
        &self,
        build: impl FnOnce(MaglevService) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let _turn = self
            .heavy
            .acquire()
            .await
            .map_err(|_| Status::unavailable("shutting down"))?;
        let svc = self.clone();
        tokio::task::spawn_blocking(move || build(svc))
            .await
            .map_err(|e| Status::internal(format!("read failed: {e}")))
    }
}

fn unix_ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn sync_status(e: SyncError) -> Status {
    match e {
        SyncError::Unavailable(m) => Status::unavailable(m),
        SyncError::NotFound(m) => Status::not_found(m),
        SyncError::InvalidArgument(m) => Status::invalid_argument(m),
        SyncError::Vpp(e) if e.is_connection_error() => Status::unavailable(format!("VPP: {e}")),
        SyncError::Vpp(e) => Status::internal(format!("VPP: {e}")),
        SyncError::Stats(m) => Status::unavailable(format!("stats: {m}")),
        SyncError::Stopped => Status::internal("reconciler stopped"),
        SyncError::Rejected(m) => {
            Status::aborted(format!("VPP refused the change (retrying): {m}"))
        }
    }
}

fn checker_status(e: CheckerError) -> Status {
    match e {
        CheckerError::NotFound(_) => Status::not_found(e.to_string()),
        CheckerError::Action { .. } => Status::failed_precondition(e.to_string()),
    }
}

fn transition(t: &maglev_health::Transition) -> pb::Transition {
    pb::Transition {
        from: t.from.to_string(),
        to: t.to.to_string(),
        at_unix_ns: unix_ns(t.at),
        code: t.code.clone(),
        detail: t.detail.clone(),
    }
}

/// `frontends`: the frontends whose pools reference the backend.
fn backend_info(b: &BackendStatus, frontends: &[&str]) -> pb::BackendInfo {
    pb::BackendInfo {
        name: b.name.clone(),
        address: b.address.to_string(),
        healthcheck: b.healthcheck.clone().unwrap_or_default(),
        check_type: b.check_type.to_string(),
        state: b.state.to_string(),
        enabled: b.enabled,
        counter: b.counter,
        rise: b.rise,
        fall: b.fall,
        last_result: b.last.as_ref().map(|(r, at)| pb::ProbeResult {
            pass: r.pass,
            code: r.code.to_string(),
            detail: r.detail.to_string(),
            duration_seconds: r.duration.as_secs_f64(),
            at_unix_ns: unix_ns(*at),
        }),
        transitions: b.history.iter().map(transition).collect(),
        frontends: frontends.iter().map(|f| f.to_string()).collect(),
        held_until_unix_ns: b.held_until.map_or(0, unix_ns),
        agent: b.agent.map(|a| a.describe()).unwrap_or_default(),
        agent_last: b
            .agent_last
            .as_ref()
            .map(|(r, _)| match r {
                Ok(line) => line.clone(),
                Err(why) => format!("no answer: {why}"),
            })
            .unwrap_or_default(),
        agent_last_unix_ns: b.agent_last.as_ref().map_or(0, |(_, at)| unix_ns(*at)),
    }
}

fn frontend_info(
    config: &Config,
    f: &Frontend,
    states: &HashMap<String, State>,
    (operator, ramps, agents): &(Overrides, Ramps, Agents),
    buckets: &BTreeMap<IpAddr, u32>,
) -> pb::FrontendInfo {
    // What VPP gets folds in the agents' wishes; `weight_overridden` stays
    // the operator's.
    let merged = with_agents(config, states, operator, agents);
    let (states, overrides) = match &merged {
        Some((s, o)) => (s, o),
        None => (states, operator),
    };
    let mut weights = effective_weights(config, f, states, overrides);
    let (state, _) = summarize(f, &weights, states, overrides);
    apply_ramps_to(f, &mut weights, ramps);
    let pools = f
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| pb::PoolInfo {
            name: p.name.clone(),
            backends: weights
                .iter()
                .filter(|w| w.pool == i)
                .map(|w| pb::PoolBackendInfo {
                    name: w.backend.clone(),
                    address: w.address.to_string(),
                    state: w.state.to_string(),
                    configured_weight: u32::from(w.configured),
                    effective_weight: u32::from(w.weight),
                    flush: w.flush,
                    weight_overridden: override_of(operator, &f.name, &p.name, &w.backend)
                        .is_some(),
                    vpp_buckets: buckets.get(&w.address).copied(),
                    slow_start_percent: ramp_of(ramps, &f.name, &w.backend).map_or(0, u32::from),
                })
                .collect(),
        })
        .collect();
    pb::FrontendInfo {
        name: f.name.clone(),
        description: f.description.clone(),
        address: f.address.to_string(),
        protocol: f.protocol.to_string(),
        port: u32::from(f.port),
        src_ip_sticky: f.src_ip_sticky,
        flush_on_down: f.flush_on_down,
        new_flows_table_length: f.new_flows_table_length,
        state: state.to_string(),
        active_pool: active_pool(f, states, overrides) as u32,
        panic_threshold: u32::from(f.panic_threshold.unwrap_or(0)),
        slow_start_seconds: f.slow_start.map_or(0.0, |d| d.as_secs_f64()),
        pools,
    }
}

fn healthcheck_info(config: &Config, hc: &maglev_config::HealthCheck) -> pb::HealthCheckInfo {
    let mut info = pb::HealthCheckInfo {
        name: hc.name.clone(),
        r#type: hc.type_name().to_string(),
        port: u32::from(hc.port().unwrap_or(0)),
        interval_seconds: hc.interval.as_secs_f64(),
        fast_interval_seconds: hc.fast_interval.as_secs_f64(),
        down_interval_seconds: hc.down_interval.as_secs_f64(),
        timeout_seconds: hc.timeout.as_secs_f64(),
        rise: hc.rise,
        fall: hc.fall,
        backends: config
            .backends
            .values()
            .filter(|b| b.healthcheck.as_ref().is_some_and(|h| h.name == hc.name))
            .map(|b| b.name.clone())
            .collect(),
        ..Default::default()
    };
    if let Some(f) = &hc.flap {
        info.flap_max_transitions = f.max_transitions;
        info.flap_window_seconds = f.window.as_secs_f64();
        info.flap_hold_down_seconds = f.hold_down.as_secs_f64();
    }
    if let CheckSpec::Grpc(g) = &hc.spec {
        info.grpc_service = g.service.clone();
        info.authority = g.authority.clone().unwrap_or_default();
        info.tls = g.tls.is_some();
        if let Some(t) = &g.tls {
            info.server_name = t.server_name.clone().unwrap_or_default();
            info.insecure = t.insecure;
        }
    }
    if let CheckSpec::Http(h) = &hc.spec {
        info.tls = h.tls.is_some();
        info.path = h.path.clone();
        info.host = h.host.clone().unwrap_or_default();
        info.method = h.method.as_str().to_string();
        info.response_codes = h.response_codes.to_string();
        info.response_regex = h
            .response_regex
            .as_ref()
            .map(|r| r.as_str().to_string())
            .unwrap_or_default();
        if let Some(t) = &h.tls {
            info.server_name = t.server_name.clone().unwrap_or_default();
            info.insecure = t.insecure;
        }
    }
    info
}

fn find_frontend<'a>(config: &'a Config, name: &str) -> Result<&'a Frontend, Status> {
    config
        .frontends
        .get(name)
        .ok_or_else(|| Status::not_found(format!("no such frontend: {name}")))
}

/// Frontend names by VIP, to label what VPP reports.
fn frontend_names(config: &Config) -> HashMap<maglev_vpp::VipKey, String> {
    config
        .frontends
        .values()
        .map(|f| (vip_key(f), f.name.clone()))
        .collect()
}

fn prefix(key: &maglev_vpp::VipKey) -> String {
    format!("{}/{}", key.address, key.prefix_len)
}

fn config_result(o: ConfigOutcome) -> pb::ConfigResult {
    pb::ConfigResult {
        ok: o.ok,
        parse_error: o.parse_error,
        semantic_error: o.semantic_error,
        warnings: o.warnings,
    }
}

impl MaglevService {
    /// One operator action on a backend, answered with its new state.
    fn act(
        &self,
        request: Request<pb::BackendActionRequest>,
        action: fn(&maglev_health::Checker, &str, &str) -> Result<BackendStatus, CheckerError>,
    ) -> Result<Response<pb::BackendInfo>, Status> {
        let name = request.into_inner().name;
        let b = action(&self.daemon.checker, &name, "grpc").map_err(checker_status)?;
        Ok(Response::new(backend_info(
            &b,
            &self.daemon.config().frontends_using(&b.name),
        )))
    }

    /// The runtime weights and slow starts, from the reconciler's
    /// published status (a read never waits behind a sync that waits for
    /// VPP), and what the backends' agents ask for.
    fn runtime_weights(&self) -> (Overrides, Ramps, Agents) {
        let s = self.daemon.reconciler.status();
        (s.overrides, s.ramps, self.daemon.checker.agents())
    }

    /// The states `frontend_info` needs for `f`: its members', or every
    /// backend's when agents may change them (they fold in across pools).
    fn states_for(&self, f: &Frontend, agents: &Agents) -> HashMap<String, State> {
        if !agents.is_empty() {
            return self.daemon.checker.states();
        }
        self.daemon.checker.states_of(
            f.pools
                .iter()
                .flat_map(|p| p.backends.iter().map(|m| m.backend.as_str())),
        )
    }

    /// VPP's bucket counts for the VIP of `f`, from the reconciler's
    /// published snapshot: a read never waits for VPP or for a sync.
    fn buckets(&self, f: &Frontend) -> BTreeMap<IpAddr, u32> {
        self.daemon
            .reconciler
            .buckets(&vip_key(f))
            .map(|b| (*b).clone())
            .unwrap_or_default()
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

/// The largest config `CheckConfig` takes inline (a bigger one is checked
/// with `maglevd --check` where it lies).
const MAX_CHECK_CONTENT: usize = 1 << 20;

/// Whether `a` names the file `b` does (after resolving links); a path
/// that cannot be resolved names nothing.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[tonic::async_trait]
impl Maglev for MaglevService {
    async fn list_frontends(
        &self,
        _: Request<pb::ListFrontendsRequest>,
    ) -> Result<Response<pb::ListFrontendsResponse>, Status> {
        self.heavy(|svc| {
            let config = svc.daemon.config();
            let states = svc.daemon.checker.states();
            let overrides = svc.runtime_weights();
            let buckets = svc.daemon.reconciler.status().buckets;
            let none = BTreeMap::new();
            pb::ListFrontendsResponse {
                frontends: config
                    .frontends
                    .values()
                    .map(|f| {
                        let b = buckets.get(&vip_key(f)).map_or(&none, |b| &**b);
                        frontend_info(&config, f, &states, &overrides, b)
                    })
                    .collect(),
            }
        })
        .await
        .map(Response::new)
    }

    async fn get_frontend(
        &self,
        request: Request<pb::GetFrontendRequest>,
    ) -> Result<Response<pb::FrontendInfo>, Status> {
        let name = request.into_inner().name;
        let config = self.daemon.config();
        let f = find_frontend(&config, &name)?;
        let buckets = self.buckets(f);
        let overrides = self.runtime_weights();
        Ok(Response::new(frontend_info(
            &config,
            f,
            &self.states_for(f, &overrides.2),
            &overrides,
            &buckets,
        )))
    }

    async fn list_backends(
        &self,
        _: Request<pb::ListBackendsRequest>,
    ) -> Result<Response<pb::ListBackendsResponse>, Status> {
        self.heavy(|svc| {
            let config = svc.daemon.config();
            let users = config.backend_users();
            pb::ListBackendsResponse {
                backends: svc
                    .daemon
                    .checker
                    .backends()
                    .iter()
                    .map(|b| {
                        let frontends = users.get(b.name.as_str()).map_or(&[][..], Vec::as_slice);
                        backend_info(b, frontends)
                    })
                    .collect(),
            }
        })
        .await
        .map(Response::new)
    }

    async fn get_backend(
        &self,
        request: Request<pb::GetBackendRequest>,
    ) -> Result<Response<pb::BackendInfo>, Status> {
        let name = request.into_inner().name;
        let b = self
            .daemon
            .checker
            .backend(&name)
            .ok_or_else(|| Status::not_found(format!("no such backend: {name}")))?;
        Ok(Response::new(backend_info(
            &b,
            &self.daemon.config().frontends_using(&b.name),
        )))
    }

    async fn pause_backend(
        &self,
        request: Request<pb::BackendActionRequest>,
    ) -> Result<Response<pb::BackendInfo>, Status> {
        self.act(request, maglev_health::Checker::pause)
    }

    async fn resume_backend(
        &self,
        request: Request<pb::BackendActionRequest>,
    ) -> Result<Response<pb::BackendInfo>, Status> {
        self.act(request, maglev_health::Checker::resume)
    }

    async fn enable_backend(
        &self,
        request: Request<pb::BackendActionRequest>,
    ) -> Result<Response<pb::BackendInfo>, Status> {
        self.act(request, maglev_health::Checker::enable)
    }

    async fn disable_backend(
        &self,
        request: Request<pb::BackendActionRequest>,
    ) -> Result<Response<pb::BackendInfo>, Status> {
        self.act(request, maglev_health::Checker::disable)
    }

    async fn list_health_checks(
        &self,
        _: Request<pb::ListHealthChecksRequest>,
    ) -> Result<Response<pb::ListHealthChecksResponse>, Status> {
        let config = self.daemon.config();
        Ok(Response::new(pb::ListHealthChecksResponse {
            healthchecks: config
                .healthchecks
                .values()
                .map(|hc| healthcheck_info(&config, hc))
                .collect(),
        }))
    }

    async fn get_health_check(
        &self,
        request: Request<pb::GetHealthCheckRequest>,
    ) -> Result<Response<pb::HealthCheckInfo>, Status> {
        let name = request.into_inner().name;
        let config = self.daemon.config();
        let hc = config
            .healthchecks
            .get(&name)
            .ok_or_else(|| Status::not_found(format!("no such health check: {name}")))?;
        Ok(Response::new(healthcheck_info(&config, hc)))
    }

    async fn set_frontend_pool_backend_weight(
        &self,
        request: Request<pb::SetWeightRequest>,
    ) -> Result<Response<pb::FrontendInfo>, Status> {
        let r = request.into_inner();
        // The wire value itself is range-checked: 2^32 + 5 is not 5.
        let weight = u32::try_from(r.weight)
            .ok()
            .filter(|w| *w <= 100)
            .ok_or_else(|| {
                Status::invalid_argument(format!("weight: {} is out of range 0..100", r.weight))
            })?;
        self.daemon
            .reconciler
            .set_weight(&r.frontend, &r.pool, &r.backend, weight)
            .await
            .map_err(sync_status)?;
        let config = self.daemon.config();
        let overrides = self.runtime_weights();
        // A reload may have removed it since the weight was set.
        let f = find_frontend(&config, &r.frontend)?;
        // VPP's buckets after the change, as GetFrontend reports them.
        let buckets = self.buckets(f);
        Ok(Response::new(frontend_info(
            &config,
            f,
            &self.states_for(f, &overrides.2),
            &overrides,
            &buckets,
        )))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let r = request.into_inner();
        let level = match r.log_level.to_ascii_lowercase().as_str() {
            "" | "info" => tracing::Level::INFO,
            "debug" => tracing::Level::DEBUG,
            "trace" => tracing::Level::TRACE,
            "warn" | "warning" => tracing::Level::WARN,
            "error" => tracing::Level::ERROR,
            other => {
                return Err(Status::invalid_argument(format!(
                    "log_level {other:?}: use debug, info, warn or error"
                )))
            }
        };
        let none = !r.log && !r.backend && !r.frontend;
        let (want_backend, want_frontend) = (r.backend || none, r.frontend || none);
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let mut backends = self.daemon.checker.subscribe();
        let mut frontends = self.daemon.reconciler.frontend_events();
        let mut logs = r.log.then(|| self.daemon.logs.subscribe());

        // The current state of every frontend first.
        let now = unix_ns(SystemTime::now());
        for (name, state) in self.daemon.reconciler.status().frontends {
            let ev = pb::Event {
                at_unix_ns: now,
                event: Some(pb::event::Event::Frontend(pb::FrontendEvent {
                    frontend: name,
                    from: state.to_string(),
                    to: state.to_string(),
                })),
            };
            let _ = tx.try_send(Ok(ev));
        }

        let stopped = self.daemon.stopped();
        tokio::spawn(async move {
            let mut missed: u64 = 0;
            tokio::pin!(stopped);
            loop {
                let event = tokio::select! {
                    _ = tx.closed() => return,
                    // The daemon stops: the stream ends (dropping `tx`).
                    () = &mut stopped => return,
                    // Tell a slow subscriber what it lost as soon as it has
                    // room again, even if nothing else happens.
                    permit = tx.reserve(), if missed > 0 => {
                        if let Ok(permit) = permit {
                            permit.send(Ok(pb::Event {
                                at_unix_ns: unix_ns(SystemTime::now()),
                                event: Some(pb::event::Event::Missed(pb::MissedEvents { count: missed })),
                            }));
                            missed = 0;
                        }
                        None
                    }
                    ev = backends.recv() => match ev {
                        Ok(ev) if want_backend => Some(pb::event::Event::Backend(pb::BackendEvent {
                            backend: ev.backend,
                            address: ev.address.to_string(),
                            transition: Some(transition(&ev.transition)),
                        })),
                        Ok(_) => None,
                        Err(broadcast::error::RecvError::Lagged(n)) => { missed += n; None }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    ev = frontends.recv() => match ev {
                        Ok(ev) if want_frontend => Some(pb::event::Event::Frontend(pb::FrontendEvent {
                            frontend: ev.frontend,
                            from: ev.from.to_string(),
                            to: ev.to.to_string(),
                        })),
                        Ok(_) => None,
                        Err(broadcast::error::RecvError::Lagged(n)) => { missed += n; None }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    rec = async { match logs.as_mut() { Some(l) => l.recv().await, None => std::future::pending().await } } => match rec {
                        Ok(rec) if rec.level <= level => Some(pb::event::Event::Log(pb::LogEvent {
                            level: rec.level.to_string().to_ascii_lowercase(),
                            target: rec.target,
                            message: rec.message,
                            fields: rec.fields.into_iter().collect(),
                        })),
                        Ok(_) => None,
                        Err(broadcast::error::RecvError::Lagged(n)) => { missed += n; None }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                };
                let Some(event) = event else { continue };
                let at = unix_ns(SystemTime::now());
                if missed > 0 {
                    let note = pb::Event {
                        at_unix_ns: at,
                        event: Some(pb::event::Event::Missed(pb::MissedEvents { count: missed })),
                    };
                    if tx.try_send(Ok(note)).is_ok() {
                        missed = 0;
                    }
                }
                // Never wait for a slow subscriber: count what it misses.
                if tx
                    .try_send(Ok(pb::Event {
                        at_unix_ns: at,
                        event: Some(event),
                    }))
                    .is_err()
                {
                    missed += 1;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn check_config(
        &self,
        request: Request<pb::CheckConfigRequest>,
    ) -> Result<Response<pb::ConfigResult>, Status> {
        let r = request.into_inner();
        if !r.content.is_empty() {
            if !r.path.is_empty() {
                return Err(Status::invalid_argument(
                    "path and content: send one or the other",
                ));
            }
            if r.content.len() > MAX_CHECK_CONTENT {
                return Err(Status::invalid_argument(format!(
                    "content: {} bytes; the limit is {MAX_CHECK_CONTENT}",
                    r.content.len()
                )));
            }
            let text = String::from_utf8(r.content)
                .map_err(|_| Status::invalid_argument("content: not UTF-8 text"))?;
            return Ok(Response::new(config_result(self.daemon.check_text(&text))));
        }
        // Never a file the client names: reading any path as root and
        // echoing its errors would disclose it (or block on a FIFO).
        if !r.path.is_empty() && !same_file(Path::new(&r.path), self.daemon.config_path()) {
            return Err(Status::permission_denied(
                "path: CheckConfig reads only the daemon's own config file; send any other config as content",
            ));
        }
        Ok(Response::new(config_result(self.daemon.check())))
    }

    async fn reload_config(
        &self,
        _: Request<pb::ReloadConfigRequest>,
    ) -> Result<Response<pb::ConfigResult>, Status> {
        Ok(Response::new(config_result(self.daemon.reload().await)))
    }

    async fn get_vpp_info(
        &self,
        _: Request<pb::GetVppInfoRequest>,
    ) -> Result<Response<pb::VppInfo>, Status> {
        let status = self.daemon.reconciler.status();
        let info = match status.vpp {
            Some(i) => i,
            None if !status.vpp_enabled => {
                return Err(Status::unavailable("VPP integration is disabled"))
            }
            None => return Err(Status::unavailable("VPP is not connected")),
        };
        Ok(Response::new(pb::VppInfo {
            version: info.version,
            build_date: info.build_date,
            build_directory: info.build_directory,
            pid: info.pid,
            boottime_unix_ns: info
                .boottime
                .map_or(0, |s| (s as i64).saturating_mul(1_000_000_000)),
            connected_unix_ns: unix_ns(info.connected_at),
            lb_v2: info.lb_v2,
        }))
    }

    async fn get_vpplb_state(
        &self,
        _: Request<pb::GetVpplbStateRequest>,
    ) -> Result<Response<pb::VpplbState>, Status> {
        // One dump at a time: a crowd of readers must not keep VPP's API
        // busy for the writer.
        let _turn = self
            .dumps
            .acquire()
            .await
            .map_err(|_| Status::unavailable("shutting down"))?;
        let state = self
            .daemon
            .reconciler
            .vpp_state()
            .await
            .map_err(sync_status)?;
        let names = frontend_names(&self.daemon.config());
        Ok(Response::new(pb::VpplbState {
            vips: state
                .vips
                .values()
                .map(|v| pb::VppVip {
                    prefix: prefix(&v.key),
                    protocol: u32::from(v.key.protocol),
                    port: u32::from(v.key.port),
                    encap: format!("{:?}", v.encap).to_ascii_lowercase(),
                    table_length: v.table_len.unwrap_or(u32::from(v.table_len_u16)),
                    src_ip_sticky: v.src_ip_sticky,
                    index: v.index,
                    frontend: names.get(&v.key).cloned().unwrap_or_default(),
                    ases: v
                        .ases
                        .iter()
                        .map(|(a, s)| pb::VppAs {
                            address: a.to_string(),
                            weight: s.weight.map(u32::from),
                            buckets: s.buckets,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn sync_vpplb_state(
        &self,
        request: Request<pb::SyncVpplbStateRequest>,
    ) -> Result<Response<pb::SyncVpplbStateResponse>, Status> {
        let r = request.into_inner();
        let frontend = (!r.frontend.is_empty()).then_some(r.frontend);
        let report = self
            .daemon
            .reconciler
            .sync(frontend, r.dry_run)
            .await
            .map_err(sync_status)?;
        let stats = report.applied.unwrap_or_default();
        Ok(Response::new(pb::SyncVpplbStateResponse {
            scope: report.scope.to_string(),
            dry_run: r.dry_run,
            plan: report.plan.ops.iter().map(ToString::to_string).collect(),
            notes: report.plan.notes.clone(),
            applied: report.applied.map(|_| pb::SyncStats {
                vip_added: stats.vip_added,
                vip_removed: stats.vip_removed,
                as_added: stats.as_added,
                as_removed: stats.as_removed,
                as_weight_updated: stats.as_weight_updated,
            }),
            failures: report.failures,
        }))
    }

    async fn get_vpplb_counters(
        &self,
        _: Request<pb::GetVpplbCountersRequest>,
    ) -> Result<Response<pb::VpplbCounters>, Status> {
        let counters = self
            .daemon
            .reconciler
            .counters()
            .await
            .map_err(sync_status)?;
        let state = self
            .daemon
            .reconciler
            .vpp_state()
            .await
            .map_err(sync_status)?;
        let names = frontend_names(&self.daemon.config());
        let vips = state
            .vips
            .values()
            .filter_map(|v| {
                let i = v.index?;
                let c = counters.get(i as usize).copied().unwrap_or_default();
                Some(pb::VipCounters {
                    frontend: names.get(&v.key).cloned().unwrap_or_default(),
                    prefix: prefix(&v.key),
                    protocol: u32::from(v.key.protocol),
                    port: u32::from(v.key.port),
                    index: i,
                    existing_session_packets: c.existing_session,
                    first_packets: c.first_packet,
                    untracked_packets: c.untracked,
                    no_server_packets: c.no_server,
                })
            })
            .collect();
        Ok(Response::new(pb::VpplbCounters { vips }))
    }
}
