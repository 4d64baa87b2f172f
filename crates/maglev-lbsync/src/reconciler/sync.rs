//! Syncs: plan against VPP (a fresh read or the cache), apply, record.

use super::*;

/// How soon after adding VIPs the reconciler reads VPP for their stats
/// indexes.
pub(super) const INDEX_READ_DELAY: Duration = Duration::from_secs(1);

impl<C: VppConnector> Reconciler<C> {
    pub(super) async fn sync_frontends(&mut self, names: BTreeSet<String>) -> Option<String> {
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
    pub(super) async fn sync_logged(&mut self, scope: Scope) -> Option<String> {
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

    /// After a connect or reload: everything warmup allows.
    pub(super) async fn resync_after_change(&mut self) {
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

    pub(super) async fn sync(
        &mut self,
        scope: Scope,
        dry_run: bool,
    ) -> Result<SyncReport, SyncError> {
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
            _ => match lb.read().await {
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
            if let Ok(now) = lb.read().await {
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
        if applied
            .done
            .iter()
            .any(|op| matches!(op, crate::plan::Op::VipAdd(_)))
        {
            // A new VIP's stats-counter index is only in VPP's CLI
            // listing, which a full read takes: read again soon (once for
            // a burst of adds), so its packet counters show within a
            // second rather than a sync-interval later.
            let soon = Instant::now() + INDEX_READ_DELAY;
            self.retry = Some(self.retry.map_or(soon, |at| at.min(soon)));
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
    pub(super) fn predict_buckets(&mut self, model: &ActualState, done: &[crate::plan::Op]) {
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
}
