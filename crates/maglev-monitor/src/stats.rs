//! Per-VIP statistics: pure functions of the probes recorded and of the
//! time asked about, so tests need no clock.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

/// Samples kept for OK% and the latency percentiles.
pub const WINDOW: usize = 100;
/// A tally value that answered within this long is active (highlighted);
/// older ones have drained (grey).
pub const ACTIVE_FOR: Duration = Duration::from_secs(5);
/// A spike needs at least this many latencies in the window to compare.
pub const SPIKE_MIN_SAMPLES: usize = 20;
/// A spike is slower than `SPIKE_FACTOR` × the window's median…
pub const SPIKE_FACTOR: u32 = 4;
/// …and than the median plus this much.
pub const SPIKE_FLOOR: Duration = Duration::from_millis(20);

/// What one probe got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An answer: the HTTP status (none for a TCP connect) and the tallied
    /// header's value, if present.
    Answer {
        /// HTTP status.
        status: Option<u16>,
        /// Value of the tallied response header.
        tally: Option<String>,
    },
    /// No answer within the timeout.
    Timeout,
    /// Refused, reset, unreachable, TLS or protocol failure.
    NetErr(String),
}

/// One probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// When it started.
    pub at: Instant,
    /// How long it took (the timeout for a timeout).
    pub latency: Duration,
    /// What it got.
    pub outcome: Outcome,
}

/// The error panel's classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// No answer within `--timeout`.
    Timeout,
    /// An HTTP status of 400 or more.
    HttpErr,
    /// Refused, reset, unreachable, TLS or protocol failure.
    NetErr,
    /// An answer much slower than usual (see [`SPIKE_FACTOR`]).
    Spike,
}

impl Class {
    /// `timeout`, `http-err`, `net-err`, `spike`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Class::Timeout => "timeout",
            Class::HttpErr => "http-err",
            Class::NetErr => "net-err",
            Class::Spike => "spike",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry for the error panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Its class.
    pub class: Class,
    /// Human detail (`503`, `connection refused`, `41ms vs median 0.4ms`).
    pub detail: String,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    ok: bool,
    /// Latency of an answer; none for timeouts and network errors.
    latency: Option<Duration>,
}

/// Latency percentiles over the window (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    /// Median.
    pub p50: Duration,
    /// 95th.
    pub p95: Duration,
    /// 99th.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

/// One tally value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyEntry {
    /// The header value (a backend's name).
    pub value: String,
    /// Answers carrying it since start or reset.
    pub count: u64,
    /// Answered within [`ACTIVE_FOR`].
    pub active: bool,
}

#[derive(Debug, Clone)]
struct Tally {
    count: u64,
    last_seen: Instant,
}

/// Statistics of one VIP.
#[derive(Debug, Clone, Default)]
pub struct VipStats {
    window: VecDeque<Sample>,
    /// Probes since start or reset.
    pub n: u64,
    /// Failed probes (timeouts, network and HTTP errors) since start or
    /// reset.
    pub fail: u64,
    /// The last probe's status: `200`, `ok` (a TCP connect), `timeout`,
    /// `net-err`.
    pub last: Option<String>,
    /// Whether the last probe succeeded.
    pub last_ok: bool,
    tally: BTreeMap<String, Tally>,
}

fn nearest_rank(sorted: &[Duration], pct: usize) -> Duration {
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

impl VipStats {
    /// Records `p`; returns what the error panel should show, if anything.
    pub fn record(&mut self, p: &Probe) -> Option<Anomaly> {
        self.n += 1;
        let (ok, latency, last, anomaly) = match &p.outcome {
            Outcome::Answer { status, tally } => {
                if let Some(v) = tally {
                    let t = self.tally.entry(v.clone()).or_insert(Tally {
                        count: 0,
                        last_seen: p.at,
                    });
                    t.count += 1;
                    t.last_seen = t.last_seen.max(p.at);
                }
                match status {
                    Some(s) if *s >= 400 => (
                        false,
                        Some(p.latency),
                        s.to_string(),
                        Some(Anomaly {
                            class: Class::HttpErr,
                            detail: format!("HTTP {s}"),
                        }),
                    ),
                    Some(s) => (true, Some(p.latency), s.to_string(), self.spike(p.latency)),
                    None => (
                        true,
                        Some(p.latency),
                        "ok".to_string(),
                        self.spike(p.latency),
                    ),
                }
            }
            Outcome::Timeout => (
                false,
                None,
                "timeout".to_string(),
                Some(Anomaly {
                    class: Class::Timeout,
                    detail: format!("no answer in {}", fmt_latency(p.latency)),
                }),
            ),
            Outcome::NetErr(why) => (
                false,
                None,
                "net-err".to_string(),
                Some(Anomaly {
                    class: Class::NetErr,
                    detail: why.clone(),
                }),
            ),
        };
        if !ok {
            self.fail += 1;
        }
        if self.window.len() == WINDOW {
            self.window.pop_front();
        }
        self.window.push_back(Sample { ok, latency });
        self.last = Some(last);
        self.last_ok = ok;
        anomaly
    }

    /// A spike, judged against the window before this sample.
    fn spike(&self, latency: Duration) -> Option<Anomaly> {
        let mut lat: Vec<Duration> = self.window.iter().filter_map(|s| s.latency).collect();
        if lat.len() < SPIKE_MIN_SAMPLES {
            return None;
        }
        lat.sort_unstable();
        let median = nearest_rank(&lat, 50);
        let limit = (median * SPIKE_FACTOR).max(median + SPIKE_FLOOR);
        (latency > limit).then(|| Anomaly {
            class: Class::Spike,
            detail: format!("{} vs median {}", fmt_latency(latency), fmt_latency(median)),
        })
    }

    /// Successes in the window, in percent; `None` before the first probe.
    pub fn ok_percent(&self) -> Option<f64> {
        if self.window.is_empty() {
            return None;
        }
        let ok = self.window.iter().filter(|s| s.ok).count();
        Some(ok as f64 * 100.0 / self.window.len() as f64)
    }

    /// Latency percentiles of the answers in the window (timeouts and
    /// network errors have no latency to count).
    pub fn percentiles(&self) -> Option<Percentiles> {
        let mut lat: Vec<Duration> = self.window.iter().filter_map(|s| s.latency).collect();
        if lat.is_empty() {
            return None;
        }
        lat.sort_unstable();
        Some(Percentiles {
            p50: nearest_rank(&lat, 50),
            p95: nearest_rank(&lat, 95),
            p99: nearest_rank(&lat, 99),
            max: lat[lat.len() - 1],
        })
    }

    /// The tally at `now`, by value.
    pub fn tally(&self, now: Instant) -> Vec<TallyEntry> {
        self.tally
            .iter()
            .map(|(v, t)| TallyEntry {
                value: v.clone(),
                count: t.count,
                active: now.saturating_duration_since(t.last_seen) < ACTIVE_FOR,
            })
            .collect()
    }
}

/// A latency in at most 5 characters where it can: `0.31ms`→`0.3ms`,
/// `12ms`, `1.50s`.
pub fn fmt_latency(d: Duration) -> String {
    let us = d.as_micros();
    if us < 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else if us < 1_000_000 {
        format!("{}ms", us / 1000)
    } else if us < 10_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else {
        format!("{}s", us / 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn answer(at: Instant, latency: Duration, status: u16, tally: &str) -> Probe {
        Probe {
            at,
            latency,
            outcome: Outcome::Answer {
                status: Some(status),
                tally: Some(tally.to_string()),
            },
        }
    }

    #[test]
    fn percentiles_ok_percent_and_counters() {
        let t0 = Instant::now();
        let mut s = VipStats::default();
        assert_eq!(s.ok_percent(), None);
        assert_eq!(s.percentiles(), None);
        // 1..=100 ms: nearest-rank p50 = 50, p95 = 95, p99 = 99, max = 100.
        for i in 1..=100 {
            s.record(&answer(t0, ms(i), 200, "s1"));
        }
        assert_eq!(
            s.percentiles(),
            Some(Percentiles {
                p50: ms(50),
                p95: ms(95),
                p99: ms(99),
                max: ms(100)
            })
        );
        assert_eq!(s.ok_percent(), Some(100.0));
        // Ten failures push ten samples out of the window.
        for _ in 0..5 {
            let a = s.record(&Probe {
                at: t0,
                latency: ms(2000),
                outcome: Outcome::Timeout,
            });
            assert_eq!(a.unwrap().class, Class::Timeout);
        }
        for _ in 0..5 {
            let a = s.record(&answer(t0, ms(3), 503, "s2"));
            assert_eq!(
                a,
                Some(Anomaly {
                    class: Class::HttpErr,
                    detail: "HTTP 503".into()
                })
            );
        }
        assert_eq!((s.n, s.fail), (110, 10));
        assert_eq!(s.ok_percent(), Some(90.0));
        assert_eq!(s.last.as_deref(), Some("503"));
        assert!(!s.last_ok);
        // Window now: 11..=100 ms (90 answers) and five 3 ms answers; the
        // timeouts have no latency.
        let p = s.percentiles().unwrap();
        assert_eq!(p.max, ms(100));
        assert_eq!(p.p50, ms(53));
    }

    #[test]
    fn tally_activity_turns_grey_after_five_seconds() {
        let t0 = Instant::now();
        let mut s = VipStats::default();
        s.record(&answer(t0, ms(1), 200, "s1"));
        s.record(&answer(t0 + ms(1000), ms(1), 200, "s2"));
        s.record(&answer(t0 + ms(2000), ms(1), 200, "s2"));
        let at = |d: u64| -> Vec<(String, u64, bool)> {
            s.tally(t0 + ms(d))
                .into_iter()
                .map(|e| (e.value, e.count, e.active))
                .collect()
        };
        assert_eq!(at(4999), [("s1".into(), 1, true), ("s2".into(), 2, true)]);
        assert_eq!(at(5000), [("s1".into(), 1, false), ("s2".into(), 2, true)]);
        assert_eq!(at(7000), [("s1".into(), 1, false), ("s2".into(), 2, false)]);
    }

    #[test]
    fn spikes_against_the_median() {
        let t0 = Instant::now();
        let mut s = VipStats::default();
        for _ in 0..(SPIKE_MIN_SAMPLES - 1) {
            assert_eq!(s.record(&answer(t0, ms(1), 200, "a")), None);
        }
        // Too few samples to judge yet.
        assert_eq!(s.record(&answer(t0, ms(500), 200, "a")), None);
        // Median 1 ms: the limit is max(4 ms, 21 ms) = 21 ms.
        assert_eq!(s.record(&answer(t0, ms(21), 200, "a")), None);
        let a = s.record(&answer(t0, ms(22), 200, "a")).unwrap();
        assert_eq!(a.class, Class::Spike);
        assert_eq!(a.detail, "22ms vs median 1.0ms");
        // A spike is still a success.
        assert!(s.last_ok);
        assert_eq!(s.fail, 0);
    }

    #[test]
    fn net_errors_and_tcp_answers() {
        let t0 = Instant::now();
        let mut s = VipStats::default();
        let a = s.record(&Probe {
            at: t0,
            latency: ms(1),
            outcome: Outcome::NetErr("connection refused".into()),
        });
        assert_eq!(a.unwrap().class, Class::NetErr);
        assert_eq!(s.last.as_deref(), Some("net-err"));
        s.record(&Probe {
            at: t0,
            latency: ms(1),
            outcome: Outcome::Answer {
                status: None,
                tally: None,
            },
        });
        assert_eq!(s.last.as_deref(), Some("ok"));
        assert_eq!((s.n, s.fail), (2, 1));
        assert!(s.tally(t0).is_empty());
    }

    #[test]
    fn latency_format() {
        assert_eq!(fmt_latency(Duration::from_micros(312)), "0.3ms");
        assert_eq!(fmt_latency(ms(12)), "12ms");
        assert_eq!(fmt_latency(ms(1500)), "1.50s");
        assert_eq!(fmt_latency(ms(12_000)), "12s");
    }
}
