//! What wakes the reconciler and what it does then: the task loop,
//! backend transitions, slow-start ramps, timers, and the warmup's end.

use super::*;

impl<C: VppConnector> Reconciler<C> {
    pub(super) async fn run(
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
                Link::Up { lb, .. } => Some(lb.closed()),
                _ => None,
            };
            let closed = async move {
                match api {
                    Some(closed) => closed.await,
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

    pub(super) fn next_wake(&self) -> Instant {
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
    pub(super) fn note_transition(&mut self, ev: &BackendEvent) {
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
    pub(super) fn recompute_ramps(&mut self) -> BTreeSet<String> {
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

    pub(super) async fn tick(&mut self) {
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

    pub(super) fn schedule_retry(&mut self) {
        self.retry_backoff = if self.retry_backoff.is_zero() {
            Duration::from_millis(250)
        } else {
            (self.retry_backoff * 2).min(self.config.lb.sync_interval)
        };
        self.retry = Some(Instant::now() + self.retry_backoff);
    }

    /// Backends of `names` changed state. Returns what VPP refused, if a
    /// write was tried and failed.
    pub(super) async fn on_change(&mut self, names: BTreeSet<String>) -> Option<String> {
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
    pub(super) fn release_known(&mut self, names: &BTreeSet<String>) -> BTreeSet<String> {
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

    pub(super) async fn final_warmup_sync(&mut self) {
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
}
