//! What readers see: the published [`Status`] and the frontend states
//! it carries, recomputed from the reconciler's inputs after each change.

use super::*;

impl<C: VppConnector> Reconciler<C> {
    pub(super) fn states(&self) -> HashMap<String, State> {
        self.checker.states()
    }

    /// States of the backends of `frontends` only: a transition touches a
    /// few frontends, and large configs have tens of thousands of backends.
    pub(super) fn states_for(&self, frontends: &BTreeSet<String>) -> HashMap<String, State> {
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

    pub(super) fn publish(&self) {
        let (vpp, stats, reader) = match &self.link {
            Link::Up {
                info, stats, lb, ..
            } => (Some(info.clone()), stats.clone(), lb.reader()),
            _ => (None, None, None),
        };
        let frontends = self.frontend_states.clone();
        let counts = self.frontend_counts.clone();
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
            s.frontend_counts = counts;
            s.warmup_done = done;
            s.config = config;
            s.overrides = overrides;
            s.ramps = ramps;
            s.stats = stats;
            s.reader = reader;
            if let Some(indexes) = indexes {
                s.vip_indexes = indexes;
            }
        });
    }

    /// Recomputes every frontend's aggregate state, announcing changes.
    pub(super) fn refresh_frontends(&mut self) {
        let all: BTreeSet<String> = self.config.frontends.keys().cloned().collect();
        self.frontend_states.retain(|n, _| all.contains(n));
        self.frontend_counts.retain(|n, _| all.contains(n));
        self.refresh_some(&all);
    }

    /// The checker's `states` and the operator's overrides with the
    /// backends' agents folded in: what the desired state is computed from.
    pub(super) fn inputs(
        &self,
        states: HashMap<String, State>,
    ) -> (HashMap<String, State>, Overrides) {
        let agents = self.checker.agents();
        match crate::desired::with_agents(&self.config, &states, &self.overrides, &agents) {
            Some(merged) => merged,
            None => (states, self.overrides.clone()),
        }
    }

    /// Recomputes the aggregate state of `names`, announcing changes.
    pub(super) fn refresh_some(&mut self, names: &BTreeSet<String>) {
        let (states, overrides) = self.inputs(self.states_for(names));
        let mut next = std::mem::take(&mut self.frontend_states);
        for (name, f) in names
            .iter()
            .filter_map(|n| self.config.frontends.get_key_value(n))
        {
            let (to, counts) = frontend_summary(&self.config, f, &states, &overrides);
            self.frontend_counts.insert(name.clone(), counts);
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
}
