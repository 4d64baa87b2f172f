//! The VPP link: connecting (API and stats sockets as one unit), the
//! liveness ping, dropping the connection, and pushing `lb_conf`.

use super::*;

pub(super) enum Link<P> {
    Disabled,
    Down {
        next_try: Instant,
        failures: u32,
    },
    Up {
        lb: P,
        stats: Option<StatsHandle>,
        info: VppInfo,
        next_ping: Instant,
    },
}

impl<C: VppConnector> Reconciler<C> {
    pub(super) async fn connect(&mut self) {
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
    pub(super) fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        (Duration::from_millis(100) * (1u32 << exp)).min(self.options.retry_interval)
    }

    pub(super) async fn try_connect(
        &self,
    ) -> Result<(C::Port, Option<StatsHandle>, VppInfo), String> {
        let connector = self
            .connector
            .as_ref()
            .ok_or("VPP integration is disabled")?;
        let (lb, hello) = connector.connect().await?;
        let Hello {
            version,
            build_date,
            build_directory,
            pid,
            lb_v2,
        } = hello;
        // Stats are optional to programming: without them there are no
        // counters and no boot time, and the link works all the same.
        let (stats, boottime) = match self.connect_stats(false).await {
            Some((s, boot)) => (Some(s), Some(boot)),
            None => (None, None),
        };
        let info = VppInfo {
            version,
            build_date,
            build_directory,
            pid,
            boottime,
            connected_at: SystemTime::now(),
            lb_v2,
        };
        Ok((lb, stats, info))
    }

    /// Connects the stats segment, if one is configured and answers;
    /// failures are logged (at debug when `quiet`: a retry), never fatal.
    pub(super) async fn connect_stats(&self, quiet: bool) -> Option<(StatsHandle, u64)> {
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

    pub(super) async fn ping(&mut self) {
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
        match lb.ping().await {
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

    pub(super) fn disconnect(&mut self, why: &str) {
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

    pub(super) fn wanted_conf(&self) -> LbConfig {
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
    pub(super) async fn push_conf(&mut self) {
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
}

/// `lb_conf`'s "leave as it is" value (`u32::MAX`) as a word for logs.
fn keep_or(v: u32) -> String {
    if v == u32::MAX {
        "keep".to_string()
    } else {
        v.to_string()
    }
}
