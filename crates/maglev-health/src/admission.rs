//! How many probes run at once.
//!
//! Every probe holds a socket and, while it runs, a share of the probe
//! threads' time. Without a bound, a config that asks for more probes per
//! second than the machine runs piles them all up: each in-flight probe
//! waits longer for the runtime, replies sit unread until the probe's
//! timeout fires, and healthy backends are failed for the checker's own
//! slowness (measured: 50,000 backends on one thread failed one probe in
//! ten, `L7TOUT`, and ran out of descriptors). So probes take a permit
//! first, in the order they fell due (a FIFO semaphore: late, but evenly,
//! and no backend starves), and the number of permits follows the runtime:
//!
//! - at most `max` (derived from the open-file limit: one descriptor per
//!   probe, some kept for the API, VPP and scrapes);
//! - when a window of probe starts saw timers fire late (the threads are
//!   behind), the limit falls to three quarters of what was in flight on
//!   average;
//! - when probes were waiting for permits and timers fired on time, it
//!   grows by an eighth per window.
//!
//! Probes blocked on a dead network cost no CPU and do not make timers
//! late, so a rack of silent backends does not shrink the limit; only work
//! the threads cannot keep up with does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Decisions are taken once per window of probe starts.
pub(crate) const WINDOW: Duration = Duration::from_millis(100);
/// A timer this late means the probe threads are behind.
pub(crate) const BEHIND: Duration = Duration::from_millis(50);
/// Timers at most this late are on time.
pub(crate) const ON_TIME: Duration = Duration::from_millis(10);
/// The limit never falls below this many probes in flight.
pub(crate) const MIN_LIMIT: usize = 32;
/// Descriptors kept for everything but probes (API clients, VPP, scrapes,
/// agent checks, logs).
const RESERVED_FDS: u64 = 1024;

/// The most probes in flight the open-file limit allows.
pub(crate) fn fd_budget() -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    budget_for(getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft))
}

/// `max` probes in flight shared by `threads` probe threads: as even as
/// whole numbers allow, summing to `max` (each is still at least
/// [`MIN_LIMIT`] once it is a controller's).
pub(crate) fn shares(max: usize, threads: usize) -> impl Iterator<Item = usize> {
    let threads = threads.max(1);
    (0..threads).map(move |i| max / threads + usize::from(i < max % threads))
}

/// Probes in flight a soft open-file limit of `soft` leaves room for.
fn budget_for(soft: u64) -> usize {
    let budget = if soft > 2 * RESERVED_FDS {
        soft - RESERVED_FDS
    } else {
        soft / 2
    };
    usize::try_from(budget)
        .unwrap_or(usize::MAX)
        .clamp(MIN_LIMIT, Semaphore::MAX_PERMITS)
}

/// The pure part: what the limit should be, from what probe starts saw.
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    limit: usize,
    max: usize,
    window_start: Instant,
    /// The latest a timer fired in this window.
    worst: Duration,
    /// Probes waited for a permit in this window.
    full: bool,
    /// Probes in flight, summed over this window's observations, and how
    /// many observations: their mean is what the threads actually ran.
    in_flight_sum: usize,
    observations: usize,
    /// The previous window lowered the limit: its backlog is still
    /// draining, so this one does not judge.
    cooling: bool,
}

impl Controller {
    /// Starts at `max`: nothing is known to be too much yet.
    pub(crate) fn new(max: usize, now: Instant) -> Controller {
        let max = max.max(MIN_LIMIT);
        Controller {
            limit: max,
            max,
            window_start: now,
            worst: Duration::ZERO,
            full: false,
            in_flight_sum: 0,
            observations: 0,
            cooling: false,
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// A probe is about to start: its timer fired `late` after it was due,
    /// `in_flight` probes run now, `full`: it has to wait for a permit.
    /// Returns the new limit when the window closes with a change.
    pub(crate) fn observe(
        &mut self,
        late: Duration,
        in_flight: usize,
        full: bool,
        now: Instant,
    ) -> Option<usize> {
        self.worst = self.worst.max(late);
        self.full |= full;
        self.in_flight_sum = self.in_flight_sum.saturating_add(in_flight);
        self.observations += 1;
        if now.saturating_duration_since(self.window_start) < WINDOW {
            return None;
        }
        let before = self.limit;
        if self.cooling {
            self.cooling = false;
        } else if self.worst >= BEHIND {
            // From what ran on average, not at the peak: after a stall the
            // threads start a burst of overdue probes at once, and a limit
            // at the burst's size lets the next one through (memory
            // follows the bursts).
            let mean = self.in_flight_sum / self.observations.max(1);
            let base = self.limit.min(mean.max(1));
            self.limit = (base - base / 4).max(MIN_LIMIT);
            self.cooling = self.limit < before;
        } else if self.worst <= ON_TIME && self.full {
            self.limit = (self.limit + (self.limit / 8).max(1)).min(self.max);
        }
        self.window_start = now;
        self.worst = Duration::ZERO;
        self.full = false;
        self.in_flight_sum = 0;
        self.observations = 0;
        (self.limit != before).then_some(self.limit)
    }
}

/// The permits, and the controller that sizes them.
#[derive(Debug)]
pub(crate) struct Admission {
    permits: Arc<Semaphore>,
    in_flight: AtomicUsize,
    control: Mutex<Sizing>,
}

#[derive(Debug)]
struct Sizing {
    controller: Controller,
    /// Permits in use that are to be forgotten when returned (the limit
    /// fell below what was in flight).
    debt: usize,
}

/// A running probe's permit; returned (or forgotten, when the limit fell)
/// on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    admission: Arc<Admission>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.in_flight.fetch_sub(1, Ordering::Relaxed);
        let mut sizing = self.admission.control.lock().expect("admission lock");
        if sizing.debt > 0 {
            sizing.debt -= 1;
            if let Some(p) = self.permit.take() {
                p.forget();
            }
        }
        // Otherwise the permit goes back to the semaphore as it drops.
    }
}

impl Admission {
    pub(crate) fn new(max: usize) -> Arc<Admission> {
        let controller = Controller::new(max, Instant::now());
        Arc::new(Admission {
            permits: Arc::new(Semaphore::new(controller.limit())),
            in_flight: AtomicUsize::new(0),
            control: Mutex::new(Sizing {
                controller,
                debt: 0,
            }),
        })
    }

    /// Probes running now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// How many may run at once now.
    pub(crate) fn limit(&self) -> usize {
        self.control
            .lock()
            .expect("admission lock")
            .controller
            .limit()
    }

    /// Waits for a permit, in turn, for a probe that was due at `due`.
    /// What the controller learns is how late the runtime ran the probe:
    /// the time from `due` to the permit when none had to be waited for,
    /// else up to when it asked (the wait for a turn is the limit's doing,
    /// not the runtime's).
    pub(crate) async fn acquire(self: &Arc<Self>, due: Instant) -> Permit {
        let asked = Instant::now();
        let full = self.permits.available_permits() == 0;
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the probe semaphore is never closed");
        let late = if full { asked } else { Instant::now() }.saturating_duration_since(due);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.resize(late, full);
        Permit {
            permit: Some(permit),
            admission: Arc::clone(self),
        }
    }

    fn resize(&self, late: Duration, full: bool) {
        let mut sizing = self.control.lock().expect("admission lock");
        let before = sizing.controller.limit();
        let Some(after) = sizing
            .controller
            .observe(late, self.in_flight(), full, Instant::now())
        else {
            return;
        };
        if after > before {
            let mut grow = after - before;
            let repaid = grow.min(sizing.debt);
            sizing.debt -= repaid;
            grow -= repaid;
            if grow > 0 {
                self.permits.add_permits(grow);
            }
        } else {
            let shrink = before - after;
            let gone = self.permits.forget_permits(shrink);
            sizing.debt += shrink - gone;
        }
        tracing::debug!(
            event = "probe-limit",
            from = before,
            to = after,
            in_flight = self.in_flight(),
            "probes in flight at once"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn threads_share_the_budget_evenly() {
        let v = |max, n| shares(max, n).collect::<Vec<_>>();
        assert_eq!(v(64_512, 1), [64_512]);
        assert_eq!(v(64_512, 16), [4_032; 16]);
        assert_eq!(v(100, 3), [34, 33, 33]);
        assert_eq!(v(5, 0), [5]);
        for (max, n) in [(18_976, 7), (1, 4), (0, 2)] {
            assert_eq!(shares(max, n).sum::<usize>(), max);
        }
    }

    #[test]
    fn late_timers_lower_the_limit_to_three_quarters_of_what_ran_on_average() {
        let t = Instant::now();
        let mut c = Controller::new(10_000, t);
        assert_eq!(c.observe(60 * MS, 2_000, false, at(t, 10)), None);
        // The window closes: 2,200 ran on average (a burst of 2,400 at
        // the end), timers were 60 ms late.
        assert_eq!(
            c.observe(Duration::ZERO, 2_400, false, at(t, 100)),
            Some(1_650)
        );
        // The next window drains the backlog and does not judge.
        assert_eq!(c.observe(80 * MS, 1_500, true, at(t, 200)), None);
        assert_eq!(c.observe(80 * MS, 1_500, true, at(t, 300)), Some(1_125));
    }

    #[test]
    fn on_time_with_probes_waiting_grows_by_an_eighth_up_to_max() {
        let t = Instant::now();
        let mut c = Controller::new(1_000, t);
        c.limit = 800;
        assert_eq!(c.observe(2 * MS, 800, true, at(t, 100)), Some(900));
        assert_eq!(c.observe(2 * MS, 900, true, at(t, 200)), Some(1_000));
        assert_eq!(c.observe(2 * MS, 1_000, true, at(t, 300)), None);
    }

    #[test]
    fn nothing_changes_without_a_reason() {
        let t = Instant::now();
        let mut c = Controller::new(1_000, t);
        c.limit = 500;
        // On time but nobody waited: no need for more.
        assert_eq!(c.observe(MS, 100, false, at(t, 100)), None);
        // Waiting, but timers between on time and behind: hold.
        assert_eq!(c.observe(30 * MS, 500, true, at(t, 200)), None);
        assert_eq!(c.limit(), 500);
    }

    #[test]
    fn the_budget_keeps_descriptors_for_the_rest() {
        assert_eq!(budget_for(65_536), 64_512);
        assert_eq!(budget_for(20_000), 18_976);
        // Small limits: half for probes.
        assert_eq!(budget_for(1_024), 512);
        assert_eq!(budget_for(40), MIN_LIMIT);
        assert_eq!(budget_for(u64::MAX), Semaphore::MAX_PERMITS);
    }

    #[test]
    fn the_limit_stays_within_min_and_max() {
        let t = Instant::now();
        let mut c = Controller::new(10, t);
        assert_eq!(c.limit(), MIN_LIMIT);
        for w in 1..20 {
            c.observe(Duration::from_secs(1), 0, true, at(t, w * 100));
        }
        assert_eq!(c.limit(), MIN_LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lowered_limit_takes_effect_as_running_probes_finish() {
        let a = Admission::new(MIN_LIMIT + 8);
        let mut running = Vec::new();
        for _ in 0..MIN_LIMIT + 8 {
            running.push(a.acquire(Instant::now()).await);
        }
        assert_eq!(a.in_flight(), MIN_LIMIT + 8);
        // Behind, the window closes: the limit falls below what runs.
        tokio::time::sleep(WINDOW).await;
        a.resize(BEHIND, true);
        assert_eq!(a.limit(), MIN_LIMIT);
        // 8 of the permits in use are forgotten as they come back.
        running.truncate(MIN_LIMIT);
        assert_eq!(a.permits.available_permits(), 0);
        running.pop();
        assert_eq!(a.permits.available_permits(), 1);
        assert_eq!(a.in_flight(), MIN_LIMIT - 1);
    }

    #[tokio::test]
    async fn waiting_probes_start_in_the_order_they_asked() {
        let a = Admission::new(MIN_LIMIT);
        let mut held = Vec::new();
        for _ in 0..MIN_LIMIT {
            held.push(a.acquire(Instant::now()).await);
        }
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (a, order) = (Arc::clone(&a), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let p = a.acquire(Instant::now()).await;
                order.lock().unwrap().push(i);
                drop(p);
            }));
            // Let each queue before the next asks.
            tokio::task::yield_now().await;
        }
        // One permit comes back: each waiter in turn runs and hands it on.
        held.pop();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }
}
