//! Startup warmup: restart neutrality. Pure; the caller passes the time
//! since the process started.
//!
//! Right after a start every backend is `unknown` (weight 0): writing that
//! to VPP would drop every new flow until the first probes answer. So:
//! - before `startup-min-delay` nothing is written;
//! - between min and max, a frontend is written once all its backends have
//!   left `unknown` ("released");
//! - at `startup-max-delay` one full sync covers the rest, and normal
//!   operation starts.
//!
//! Both delays 0 switch it off. A reload changes the delays but not the
//! clock.

use std::collections::BTreeSet;
use std::time::Duration;

/// What may be written now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Nothing.
    Closed,
    /// Released frontends only.
    PerVip,
    /// Everything (the final full sync may still be due).
    Open,
}

/// The warmup state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warmup {
    min: Duration,
    max: Duration,
    released: BTreeSet<String>,
    done: bool,
}

impl Warmup {
    /// A warmup with these delays.
    pub fn new(min: Duration, max: Duration) -> Warmup {
        Warmup {
            min,
            max,
            released: BTreeSet::new(),
            done: min.is_zero() && max.is_zero(),
        }
    }

    /// New delays from a reload; the clock keeps running.
    pub fn set_delays(&mut self, min: Duration, max: Duration) {
        self.min = min;
        self.max = max;
        if min.is_zero() && max.is_zero() {
            self.done = true;
        }
    }

    /// The gate at `elapsed` since start.
    pub fn gate(&self, elapsed: Duration) -> Gate {
        if self.done || elapsed >= self.max {
            Gate::Open
        } else if elapsed < self.min {
            Gate::Closed
        } else {
            Gate::PerVip
        }
    }

    /// Whether the final full sync is due (and not done yet).
    pub fn final_sync_due(&self, elapsed: Duration) -> bool {
        !self.done && elapsed >= self.max
    }

    /// Marks the final full sync as done: warmup over.
    pub fn finish(&mut self) {
        self.done = true;
    }

    /// Whether warmup is over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Releases `frontend` (all its backends are known).
    pub fn release(&mut self, frontend: &str) -> bool {
        self.released.insert(frontend.to_string())
    }

    /// Whether `frontend` may be written now.
    pub fn may_write(&self, frontend: &str, elapsed: Duration) -> bool {
        match self.gate(elapsed) {
            Gate::Open => true,
            Gate::PerVip => self.released.contains(frontend),
            Gate::Closed => false,
        }
    }

    /// The next instant (as elapsed time) at which the gate changes.
    pub fn next_deadline(&self, elapsed: Duration) -> Option<Duration> {
        if self.done {
            None
        } else if elapsed < self.min {
            Some(self.min)
        } else {
            Some(self.max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn phases() {
        let mut w = Warmup::new(S(5), S(30));
        assert_eq!(w.gate(S(0)), Gate::Closed);
        assert!(!w.may_write("www", S(4)));
        assert_eq!(w.gate(S(5)), Gate::PerVip);
        assert!(!w.may_write("www", S(6)), "not released yet");
        assert!(w.release("www"));
        assert!(w.may_write("www", S(6)));
        assert!(!w.may_write("api", S(6)));
        assert!(!w.final_sync_due(S(29)));
        assert!(w.final_sync_due(S(30)));
        assert_eq!(w.gate(S(30)), Gate::Open);
        w.finish();
        assert!(!w.final_sync_due(S(31)));
        assert!(w.may_write("api", S(31)));
        assert_eq!(w.next_deadline(S(31)), None);
    }

    #[test]
    fn zero_delays_disable_it() {
        let w = Warmup::new(S(0), S(0));
        assert!(w.is_done());
        assert_eq!(w.gate(S(0)), Gate::Open);
    }

    #[test]
    fn reload_keeps_the_clock() {
        let mut w = Warmup::new(S(5), S(30));
        w.set_delays(S(2), S(10));
        assert_eq!(w.gate(S(3)), Gate::PerVip);
        assert!(w.final_sync_due(S(10)));
        assert_eq!(w.next_deadline(S(1)), Some(S(2)));
        assert_eq!(w.next_deadline(S(3)), Some(S(10)));
    }
}
