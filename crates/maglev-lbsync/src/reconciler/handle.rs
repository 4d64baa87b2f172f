//! The other side of the reconciler's queue: [`ReconcilerHandle`], the
//! commands it sends, and how the task answers them.

use super::*;

pub(super) enum Command {
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
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) status: watch::Receiver<Status>,
    pub(super) frontend_events: broadcast::Sender<FrontendEvent>,
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

    /// VPP's lb state, read now: over the published read-only view when
    /// connected (never queued behind a sync), else through the task
    /// (which answers why not).
    pub async fn vpp_state(&self) -> Result<ActualState, SyncError> {
        let reader = self.status.borrow().reader.clone();
        match reader {
            Some(r) => r.read().await,
            None => self.ask(Command::ReadActual).await?,
        }
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

    /// The config in force: the one the reconciler works from (a reload
    /// returns once it is), so API reads and VPP agree on it.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.status.borrow().config)
    }

    /// The last published status.
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

impl<C: VppConnector> Reconciler<C> {
    pub(super) async fn command(&mut self, cmd: Command) {
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
                    Link::Up { lb, .. } => lb.read().await.map_err(SyncError::from),
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

    pub(super) async fn set_weight(
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
