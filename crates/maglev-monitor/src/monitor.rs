//! The model (every VIP's statistics and the error log) and the probe
//! loops that feed it. The screen only ever takes a snapshot of the model
//! under a short lock, so a slow probe never holds up the screen and the
//! screen never holds up a probe.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::probe::{ProbeOptions, Prober};
use crate::stats::{fmt_latency, Class, Probe, VipStats};
use crate::targets::Target;
use crate::view::{ErrorLine, Row, TallyRow, View};

/// Entries the error log keeps; older ones are dropped.
pub const ERROR_CAP: usize = 1000;
/// A repeat of one of the newest `MERGE_WINDOW` entries (same VIP, class
/// and detail) is counted on that entry rather than added, so one dead VIP
/// does not push every other error off the panel.
pub const MERGE_WINDOW: usize = 16;

/// One entry of the error log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorEntry {
    /// Wall-clock time.
    pub at: SystemTime,
    /// Index of the VIP.
    pub vip: usize,
    /// Class.
    pub class: Class,
    /// Detail.
    pub detail: String,
    /// Occurrences merged into this entry (1 for a single one).
    pub count: u64,
}

/// Every VIP's statistics and the error log.
#[derive(Debug, Clone)]
pub struct Model {
    /// The VIPs, in screen order.
    pub targets: Vec<Target>,
    /// Their statistics (same order).
    pub stats: Vec<VipStats>,
    /// Newest last.
    pub errors: VecDeque<ErrorEntry>,
}

impl Model {
    /// A model of `targets`, nothing recorded.
    pub fn new(targets: Vec<Target>) -> Model {
        let stats = vec![VipStats::default(); targets.len()];
        Model {
            targets,
            stats,
            errors: VecDeque::new(),
        }
    }

    /// Records a probe of VIP `vip`, made at wall-clock `wall`.
    pub fn record(&mut self, vip: usize, wall: SystemTime, probe: &Probe) {
        let Some(stats) = self.stats.get_mut(vip) else {
            return;
        };
        let Some(a) = stats.record(probe) else {
            return;
        };
        let len = self.errors.len();
        let repeat = (len.saturating_sub(MERGE_WINDOW)..len).rev().find(|&i| {
            let e = &self.errors[i];
            e.vip == vip && e.class == a.class && e.detail == a.detail
        });
        let entry = match repeat.and_then(|i| self.errors.remove(i)) {
            Some(mut e) => {
                e.count += 1;
                e.at = wall;
                e
            }
            None => ErrorEntry {
                at: wall,
                vip,
                class: a.class,
                detail: a.detail,
                count: 1,
            },
        };
        if self.errors.len() == ERROR_CAP {
            self.errors.pop_front();
        }
        self.errors.push_back(entry);
    }

    /// Forgets every statistic and error (the `r` key).
    pub fn reset(&mut self) {
        for s in &mut self.stats {
            *s = VipStats::default();
        }
        self.errors.clear();
    }

    /// What the screen shows at `now`.
    pub fn view(&self, now: Instant, header: Header) -> View {
        let rows = self
            .targets
            .iter()
            .zip(&self.stats)
            .map(|(t, s)| {
                let p = s.percentiles();
                let lat = |f: fn(&crate::stats::Percentiles) -> Duration| {
                    p.as_ref().map_or("-".to_string(), |p| fmt_latency(f(p)))
                };
                Row {
                    name: t.name.clone(),
                    address: t.label(),
                    kind: t.kind.as_str().to_string(),
                    ok: s.ok_percent(),
                    p50: lat(|p| p.p50),
                    p95: lat(|p| p.p95),
                    p99: lat(|p| p.p99),
                    max: lat(|p| p.max),
                    n: s.n,
                    fail: s.fail,
                    last: s.last.clone().unwrap_or_else(|| "-".to_string()),
                    last_ok: s.last_ok,
                }
            })
            .collect();
        let tallies = self
            .targets
            .iter()
            .zip(&self.stats)
            .map(|(t, s)| TallyRow {
                name: t.name.clone(),
                entries: s
                    .tally(now)
                    .into_iter()
                    .map(|e| (e.value, e.count, e.active))
                    .collect(),
            })
            .collect();
        let errors = self
            .errors
            .iter()
            .rev()
            .map(|e| ErrorLine {
                at: e.at,
                vip: self
                    .targets
                    .get(e.vip)
                    .map_or(String::new(), |t| t.name.clone()),
                class: e.class,
                detail: e.detail.clone(),
                count: e.count,
            })
            .collect();
        View {
            host: header.host,
            uptime: header.uptime,
            interval: header.interval,
            timeout: header.timeout,
            paused: header.paused,
            rows,
            tallies,
            errors,
        }
    }
}

/// The header's facts that are not in the model.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// The host's FQDN.
    pub host: String,
    /// Time since start.
    pub uptime: Duration,
    /// Probe interval.
    pub interval: Duration,
    /// Probe timeout.
    pub timeout: Duration,
    /// Probing paused.
    pub paused: bool,
}

/// The probe loops and their shared model.
#[derive(Debug)]
pub struct Monitor {
    model: Arc<Mutex<Model>>,
    paused: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    interval: Duration,
    timeout: Duration,
}

/// `d` ±10 %, uniformly.
pub fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::rng().random_range(0.9..=1.1))
}

impl Monitor {
    /// Starts one probe loop per target on the current runtime. Each loop
    /// starts at a random point of its first interval (so 100 VIPs do not
    /// fire together) and then keeps a cadence of `interval` ±10 % between
    /// scheduled starts; a probe slower than that is followed by the next
    /// at once, with no catching up.
    pub fn start(targets: Vec<Target>, interval: Duration, opts: ProbeOptions) -> Monitor {
        let opts = Arc::new(opts);
        let model = Arc::new(Mutex::new(Model::new(targets.clone())));
        let (paused, _) = watch::channel(false);
        let tasks = targets
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let prober = Prober::new(t, Arc::clone(&opts));
                tokio::spawn(probe_loop(
                    i,
                    prober,
                    interval,
                    Arc::clone(&model),
                    paused.subscribe(),
                ))
            })
            .collect();
        Monitor {
            model,
            paused,
            tasks,
            interval,
            timeout: opts.timeout,
        }
    }

    /// The model, locked. Hold it briefly.
    pub fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pauses or resumes probing.
    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Whether probing is paused.
    pub fn paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// What the screen shows now, with `host` and the run time in the
    /// header.
    pub fn view(&self, host: &str, uptime: Duration) -> View {
        let header = Header {
            host: host.to_string(),
            uptime,
            interval: self.interval,
            timeout: self.timeout,
            paused: self.paused(),
        };
        self.model().view(Instant::now(), header)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn probe_loop(
    vip: usize,
    mut prober: Prober,
    interval: Duration,
    model: Arc<Mutex<Model>>,
    mut paused: watch::Receiver<bool>,
) {
    let first = interval.mul_f64(rand::rng().random_range(0.0..1.0));
    let mut next = tokio::time::Instant::now() + first;
    loop {
        tokio::time::sleep_until(next).await;
        while *paused.borrow_and_update() {
            if paused.changed().await.is_err() {
                return;
            }
        }
        let wall = SystemTime::now();
        let probe = prober.probe().await;
        model
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(vip, wall, &probe);
        // From the scheduled time, not from when the timer fired, so the
        // timer's millisecond rounding does not slow the cadence down.
        next = (next + jitter(interval)).max(tokio::time::Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Outcome;

    #[test]
    fn error_log_is_bounded_newest_first_and_reset_clears() {
        let t = Target {
            name: "www".into(),
            address: "192.0.2.1".parse().unwrap(),
            port: 80,
            kind: crate::targets::Kind::Http,
        };
        let mut m = Model::new(vec![t]);
        let now = Instant::now();
        for i in 0..(ERROR_CAP + 5) {
            m.record(
                0,
                SystemTime::UNIX_EPOCH + Duration::from_secs(i as u64),
                &Probe {
                    at: now,
                    latency: Duration::from_millis(1),
                    outcome: Outcome::NetErr(format!("e{i}")),
                },
            );
        }
        assert_eq!(m.errors.len(), ERROR_CAP);
        let v = m.view(now, Header::default());
        assert_eq!(v.errors[0].detail, format!("e{}", ERROR_CAP + 4));
        assert_eq!(v.errors[0].vip, "www");
        assert_eq!(v.rows[0].n, (ERROR_CAP + 5) as u64);
        m.reset();
        assert!(m.errors.is_empty());
        assert_eq!(m.stats[0].n, 0);
        // A VIP index out of range is ignored, not a panic.
        m.record(
            7,
            SystemTime::now(),
            &Probe {
                at: now,
                latency: Duration::ZERO,
                outcome: Outcome::Timeout,
            },
        );
    }

    #[test]
    fn repeats_merge_into_one_entry() {
        let t = |name: &str| Target {
            name: name.into(),
            address: "192.0.2.1".parse().unwrap(),
            port: 80,
            kind: crate::targets::Kind::Http,
        };
        let mut m = Model::new(vec![t("dead"), t("www")]);
        let now = Instant::now();
        let refused = Probe {
            at: now,
            latency: Duration::from_millis(1),
            outcome: Outcome::NetErr("connection refused".into()),
        };
        let slow = Probe {
            at: now,
            latency: Duration::from_secs(2),
            outcome: Outcome::Timeout,
        };
        m.record(1, SystemTime::UNIX_EPOCH, &slow);
        for i in 0..50 {
            m.record(0, SystemTime::UNIX_EPOCH + Duration::from_secs(i), &refused);
        }
        let v = m.view(now, Header::default());
        assert_eq!(v.errors.len(), 2);
        assert_eq!((v.errors[0].vip.as_str(), v.errors[0].count), ("dead", 50));
        assert_eq!(
            v.errors[0].at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(49)
        );
        assert_eq!((v.errors[1].vip.as_str(), v.errors[1].count), ("www", 1));
        assert_eq!(v.rows[0].fail, 50, "merged entries still count as failures");
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let j = jitter(Duration::from_millis(100));
            assert!((90..=110).contains(&j.as_millis()), "{j:?}");
        }
    }
}
