//! The per-backend health state machine. Pure: no IO, no clocks of its
//! own; the caller passes the time of every event.
//!
//! HAProxy's counter model (`set_server_check_status`): one counter in
//! `[0, rise + fall − 1]`, up while `counter ≥ rise`. A pass adds 1 and,
//! once the counter reaches `rise`, snaps it to the top; a failure takes 1
//! and, once it falls below `rise`, snaps it to 0. So `rise` consecutive
//! passes bring a down backend up and `fall` consecutive failures take an
//! up one down; a single result in between restarts the count. Entering
//! `unknown` preloads `rise − 1`, so the first pass decides up, and any
//! failure while unknown decides down at once.
//!
//! Flap damping (a health check's `flap:`): each up/down transition is
//! remembered for `window`; the one that makes more than
//! `max-transitions` puts the backend in `held` (treated as down) until
//! `hold-down` has passed. Probing goes on; the first result after that
//! decides up or down from the counter, and the count starts afresh.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, SystemTime};

use maglev_config::{FlapRule, HealthCheck};

/// Health of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Not decided yet: after start, resume, enable or a new health check.
    Unknown,
    /// Healthy: gets traffic.
    Up,
    /// Failed enough probes.
    Down,
    /// Flapping: held down (treated as down) until its hold-down ends,
    /// while probes go on.
    Held,
    /// Health checking stopped by an operator.
    Paused,
    /// Taken out of service by an operator.
    Disabled,
    /// Gone from the config.
    Removed,
}

impl State {
    /// The lowercase name used in the API, logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
            State::Held => "held",
            State::Paused => "paused",
            State::Disabled => "disabled",
            State::Removed => "removed",
        }
    }

    /// Every state, for metrics that list them all.
    pub const ALL: [State; 7] = [
        State::Unknown,
        State::Up,
        State::Down,
        State::Held,
        State::Paused,
        State::Disabled,
        State::Removed,
    ];
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// When it happened.
    pub at: SystemTime,
    /// The probe code that caused it (`L7STS`…) or the operator action
    /// (`pause`, `resume`, `disable`, `enable`, `removed`, `restart`).
    pub code: String,
    /// Details: the probe's message, or who did it.
    pub detail: String,
}

/// An operator action that cannot be done in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// Pause and resume do not apply to a disabled backend: enable it first.
    #[error("backend is disabled; enable it first")]
    Disabled,
    /// The backend is gone from the config.
    #[error("backend was removed from the config")]
    Removed,
}

/// The health of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    state: State,
    counter: u32,
    rise: u32,
    fall: u32,
    enabled: bool,
    history: VecDeque<Transition>,
    capacity: usize,
    flap: Option<FlapRule>,
    /// Times of recent up/down transitions, for flap damping.
    flaps: VecDeque<SystemTime>,
    held_until: Option<SystemTime>,
}

impl Health {
    /// A backend entering service: `unknown`, or `disabled` when its
    /// initial operator state says so. `capacity` bounds the history.
    pub fn new(rise: u32, fall: u32, enabled: bool, capacity: usize) -> Health {
        let rise = rise.max(1);
        Health {
            state: if enabled {
                State::Unknown
            } else {
                State::Disabled
            },
            counter: rise - 1,
            rise,
            fall: fall.max(1),
            enabled,
            history: VecDeque::with_capacity(capacity.min(64)),
            capacity: capacity.max(1),
            flap: None,
            flaps: VecDeque::new(),
            held_until: None,
        }
    }

    /// With flap damping (`None`: without).
    pub fn with_flap(mut self, rule: Option<FlapRule>) -> Health {
        self.flap = rule;
        self
    }

    /// Changes the flap rule (a reload); what was counted is forgotten.
    pub fn set_flap(&mut self, rule: Option<FlapRule>) {
        self.flap = rule;
        self.flaps.clear();
    }

    /// Until when a flapping backend is held down.
    pub fn held_until(&self) -> Option<SystemTime> {
        self.held_until.filter(|_| self.state == State::Held)
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The counter, `0..=rise+fall−1`.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// The operator's enabled flag.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Transitions, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &Transition> {
        self.history.iter()
    }

    /// Whether probes should run: unknown, up, down or held.
    pub fn is_probing(&self) -> bool {
        matches!(
            self.state,
            State::Unknown | State::Up | State::Down | State::Held
        )
    }

    fn max(&self) -> u32 {
        self.rise + self.fall - 1
    }

    fn set(&mut self, to: State, at: SystemTime, code: &str, detail: &str) -> Option<Transition> {
        if to == self.state {
            return None;
        }
        let t = Transition {
            from: self.state,
            to,
            at,
            code: code.to_string(),
            detail: detail.to_string(),
        };
        if to != State::Held {
            self.held_until = None;
        }
        self.state = to;
        if self.history.len() == self.capacity {
            self.history.pop_front();
        }
        self.history.push_back(t.clone());
        Some(t)
    }

    fn enter_unknown(&mut self, at: SystemTime, code: &str, detail: &str) -> Option<Transition> {
        self.counter = self.rise - 1;
        self.flaps.clear();
        self.set(State::Unknown, at, code, detail)
    }

    /// Applies a probe result. Results are ignored unless the backend is
    /// being probed (a late result after pause, disable or removal).
    pub fn record(
        &mut self,
        pass: bool,
        code: &str,
        detail: &str,
        at: SystemTime,
    ) -> Option<Transition> {
        if !self.is_probing() {
            return None;
        }
        if pass {
            self.counter = (self.counter + 1).min(self.max());
            if self.counter >= self.rise {
                self.counter = self.max();
            }
        } else if self.state == State::Unknown {
            // Expedited: one failure decides an unknown backend.
            self.counter = 0;
        } else {
            self.counter = self.counter.saturating_sub(1);
            if self.counter < self.rise {
                self.counter = 0;
            }
        }
        // From unknown the preload makes one pass reach `rise`.
        let to = if self.counter >= self.rise {
            State::Up
        } else {
            State::Down
        };
        if self.state == State::Held {
            if self.held_until.is_some_and(|until| at < until) {
                return None;
            }
            // The hold is over: the counter decides, the count restarts.
            self.flaps.clear();
            return self.set(to, at, code, &format!("{detail} (flap hold-down over)"));
        }
        let flapped = matches!(
            (self.state, to),
            (State::Up, State::Down) | (State::Down, State::Up)
        );
        if let (true, Some(rule)) = (flapped, self.flap) {
            self.flaps.push_back(at);
            while self
                .flaps
                .front()
                .is_some_and(|t| at.duration_since(*t).unwrap_or_default() > rule.window)
            {
                self.flaps.pop_front();
            }
            if self.flaps.len() > rule.max_transitions as usize {
                let until = at + rule.hold_down;
                let held = format!(
                    "{} transitions within {:?}: held down for {:?} ({detail})",
                    self.flaps.len(),
                    rule.window,
                    rule.hold_down
                );
                let t = self.set(State::Held, at, "FLAP", &held);
                self.held_until = Some(until);
                return t;
            }
        }
        self.set(to, at, code, detail)
    }

    /// The probe interval for the current counter: `interval` when fully
    /// up, `down_interval` when fully down (or held), `fast_interval` in
    /// between (unknown included).
    pub fn next_interval(&self, hc: &HealthCheck) -> Duration {
        if self.counter >= self.max() && self.state == State::Up {
            hc.interval
        } else if self.state == State::Held || (self.counter == 0 && self.state == State::Down) {
            hc.down_interval
        } else {
            hc.fast_interval
        }
    }

    /// Operator pause: stop probing. Idempotent; an error when disabled.
    pub fn pause(&mut self, at: SystemTime, who: &str) -> Result<Option<Transition>, ActionError> {
        match self.state {
            State::Disabled => Err(ActionError::Disabled),
            State::Removed => Err(ActionError::Removed),
            State::Paused => Ok(None),
            _ => Ok(self.set(State::Paused, at, "pause", who)),
        }
    }

    /// Operator resume: back to `unknown` with a fresh probe loop.
    /// Idempotent (no-op unless paused); an error when disabled.
    pub fn resume(&mut self, at: SystemTime, who: &str) -> Result<Option<Transition>, ActionError> {
        match self.state {
            State::Disabled => Err(ActionError::Disabled),
            State::Removed => Err(ActionError::Removed),
            State::Paused => Ok(self.enter_unknown(at, "resume", who)),
            _ => Ok(None),
        }
    }

    /// Operator disable. Keyed on the state: when already disabled only the
    /// flag is synced, so an inconsistent (flag, state) pair heals.
    pub fn disable(
        &mut self,
        at: SystemTime,
        who: &str,
    ) -> Result<Option<Transition>, ActionError> {
        if self.state == State::Removed {
            return Err(ActionError::Removed);
        }
        self.enabled = false;
        Ok(self.set(State::Disabled, at, "disable", who))
    }

    /// Operator enable: from disabled back to `unknown`. When not disabled
    /// only the flag is synced.
    pub fn enable(&mut self, at: SystemTime, who: &str) -> Result<Option<Transition>, ActionError> {
        match self.state {
            State::Removed => Err(ActionError::Removed),
            State::Disabled => {
                self.enabled = true;
                Ok(self.enter_unknown(at, "enable", who))
            }
            _ => {
                self.enabled = true;
                Ok(None)
            }
        }
    }

    /// The backend left the config.
    pub fn remove(&mut self, at: SystemTime) -> Option<Transition> {
        self.set(State::Removed, at, "removed", "config reload")
    }

    /// A new health check definition: fresh counters with the new rise and
    /// fall, and the config's `enabled` as the operator state again.
    pub fn restart(
        &mut self,
        rise: u32,
        fall: u32,
        enabled: bool,
        at: SystemTime,
    ) -> Option<Transition> {
        self.rise = rise.max(1);
        self.fall = fall.max(1);
        self.enabled = enabled;
        if enabled {
            self.enter_unknown(at, "restart", "health check changed")
        } else {
            self.counter = self.rise - 1;
            self.set(State::Disabled, at, "restart", "health check changed")
        }
    }

    /// Changes the history bound (a reload may change it), keeping the
    /// newest entries.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.history.len() > self.capacity {
            self.history.pop_front();
        }
    }
}

/// `d` with ±10 % random jitter, so probes of many backends (and of several
/// maglevds) do not fire in lock-step.
pub fn jitter(d: Duration, rng: &mut impl rand::Rng) -> Duration {
    d.mul_f64(rng.random_range(0.9..=1.1))
}

/// The widest slot [`coalesce`] rounds a start time up to.
pub const MAX_SLOT: Duration = Duration::from_millis(10);

/// `due` rounded to the nearest slot boundary counted from `origin`: the
/// slot is a fiftieth of the `interval` (at most [`MAX_SLOT`], nothing
/// below the timer's millisecond). Probes that start in the same slot
/// start in one wake-up of their thread, and their answers come back
/// together: at a thousand backends a second the threads wake a few times
/// per slot instead of twice per probe, a share of a probe's CPU that the
/// kernel spends parking and waking. A probe moves by at most 1 % of its
/// interval, and by nothing on average (the interval keeps its length);
/// the jitter's ±10 % still spreads backends over the interval. A `due`
/// before `origin` (another runtime's clock) is left as it is.
pub fn coalesce(
    due: tokio::time::Instant,
    origin: tokio::time::Instant,
    interval: Duration,
) -> tokio::time::Instant {
    let slot = (interval / 50).min(MAX_SLOT).as_nanos();
    if slot < 1_000_000 || due < origin {
        return due;
    }
    let since = (due - origin).as_nanos();
    let rounded = (since + slot / 2) / slot * slot;
    origin + Duration::from_nanos(u64::try_from(rounded).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use maglev_config::{CheckSpec, HealthCheck};

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    fn hc(rise: u32, fall: u32) -> HealthCheck {
        HealthCheck {
            name: "hc".into(),
            spec: CheckSpec::Tcp { port: 80 },
            flap: None,
            agent: None,
            interval: Duration::from_secs(2),
            fast_interval: Duration::from_millis(500),
            down_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            rise,
            fall,
        }
    }

    /// Feeds results ('+' pass, '-' fail) and returns (state, counter)
    /// after each.
    fn run(h: &mut Health, results: &str) -> Vec<(State, u32)> {
        results
            .chars()
            .map(|c| {
                h.record(c == '+', if c == '+' { "L4OK" } else { "L4CON" }, "", t0());
                (h.state(), h.counter())
            })
            .collect()
    }

    #[test]
    fn counter_model_table() {
        use State::*;
        // (rise, fall, results, expected (state, counter) after each)
        type Case<'a> = (u32, u32, &'a str, &'a [(State, u32)]);
        let cases: &[Case<'_>] = &[
            // One pass decides an unknown backend up (to the top)…
            (2, 3, "+", &[(Up, 4)]),
            // …and one failure decides it down.
            (2, 3, "-", &[(Down, 0)]),
            // From the top, fall=3 consecutive failures to go down; below
            // rise the counter snaps to 0.
            (
                2,
                3,
                "+++---",
                &[(Up, 4), (Up, 4), (Up, 4), (Up, 3), (Up, 2), (Down, 0)],
            ),
            // One failure from the top keeps it up.
            (2, 3, "+-", &[(Up, 4), (Up, 3)]),
            // Just gone down: rise=2 passes, not one, bring it back.
            (
                2,
                3,
                "+---++",
                &[(Up, 4), (Up, 3), (Up, 2), (Down, 0), (Down, 1), (Up, 4)],
            ),
            // Fully down needs rise passes to come back.
            (
                2,
                3,
                "---++",
                &[(Down, 0), (Down, 0), (Down, 0), (Down, 1), (Up, 4)],
            ),
            // Failures that are not consecutive never take it down: a pass
            // snaps back to the top.
            (
                2,
                3,
                "+--+--+",
                &[
                    (Up, 4),
                    (Up, 3),
                    (Up, 2),
                    (Up, 4),
                    (Up, 3),
                    (Up, 2),
                    (Up, 4),
                ],
            ),
            // Passes that are not consecutive never bring it up: a failure
            // snaps back to 0.
            (
                3,
                2,
                "-++-++",
                &[
                    (Down, 0),
                    (Down, 1),
                    (Down, 2),
                    (Down, 0),
                    (Down, 1),
                    (Down, 2),
                ],
            ),
            // Alternating stays up without flapping.
            (
                2,
                3,
                "++-+-+-+",
                &[
                    (Up, 4),
                    (Up, 4),
                    (Up, 3),
                    (Up, 4),
                    (Up, 3),
                    (Up, 4),
                    (Up, 3),
                    (Up, 4),
                ],
            ),
            // rise=fall=1: every result decides.
            (1, 1, "+-+", &[(Up, 1), (Down, 0), (Up, 1)]),
            // Clamped at both ends.
            (3, 2, "++++", &[(Up, 4), (Up, 4), (Up, 4), (Up, 4)]),
            (3, 2, "----", &[(Down, 0), (Down, 0), (Down, 0), (Down, 0)]),
        ];
        for (rise, fall, results, want) in cases {
            let mut h = Health::new(*rise, *fall, true, 10);
            assert_eq!(h.state(), Unknown);
            assert_eq!(
                &run(&mut h, results),
                want,
                "rise {rise} fall {fall} {results}"
            );
        }
    }

    #[test]
    fn transitions_are_recorded_with_code_and_bounded() {
        let mut h = Health::new(1, 1, true, 3);
        run(&mut h, "+-+-+");
        let hist: Vec<(State, State, &str)> = h
            .history()
            .map(|t| (t.from, t.to, t.code.as_str()))
            .collect();
        assert_eq!(
            hist,
            [
                (State::Down, State::Up, "L4OK"),
                (State::Up, State::Down, "L4CON"),
                (State::Down, State::Up, "L4OK"),
            ],
            "the oldest dropped first"
        );
        // A result that changes nothing records nothing.
        let before = h.history().count();
        h.record(false, "L4CON", "", t0());
        assert_eq!(h.history().count(), before);
    }

    #[test]
    fn intervals_follow_the_counter() {
        let c = hc(2, 3);
        let mut h = Health::new(2, 3, true, 5);
        assert_eq!(h.next_interval(&c), c.fast_interval, "unknown");
        run(&mut h, "+");
        assert_eq!(h.next_interval(&c), c.interval, "up snaps to the top");
        run(&mut h, "-");
        assert_eq!(h.next_interval(&c), c.fast_interval, "degraded");
        run(&mut h, "----");
        assert_eq!(h.next_interval(&c), c.down_interval, "fully down");
        run(&mut h, "+");
        assert_eq!(h.next_interval(&c), c.fast_interval, "recovering");
    }

    #[test]
    fn operator_actions() {
        use State::*;
        let mut h = Health::new(2, 3, true, 10);
        run(&mut h, "+");
        // pause / resume
        assert_eq!(h.pause(t0(), "op").unwrap().unwrap().to, Paused);
        assert_eq!(h.pause(t0(), "op"), Ok(None), "idempotent");
        assert!(
            h.record(true, "L4OK", "", t0()).is_none(),
            "results ignored while paused"
        );
        assert_eq!(h.resume(t0(), "op").unwrap().unwrap().to, Unknown);
        assert_eq!(h.counter(), 1, "resume preloads rise-1");
        assert_eq!(
            h.resume(t0(), "op"),
            Ok(None),
            "resume when not paused is a no-op"
        );
        // disable / enable
        let t = h.disable(t0(), "op").unwrap().unwrap();
        assert_eq!(
            (t.from, t.to, t.code.as_str()),
            (Unknown, Disabled, "disable")
        );
        assert!(!h.enabled());
        assert_eq!(h.disable(t0(), "op"), Ok(None), "idempotent");
        assert_eq!(h.pause(t0(), "op"), Err(ActionError::Disabled));
        assert_eq!(h.resume(t0(), "op"), Err(ActionError::Disabled));
        assert!(h.record(true, "L4OK", "", t0()).is_none());
        assert_eq!(h.enable(t0(), "op").unwrap().unwrap().to, Unknown);
        assert!(h.enabled());
        assert_eq!(
            h.enable(t0(), "op"),
            Ok(None),
            "enable when enabled syncs only"
        );
        // disable from paused works; history survives it all
        h.pause(t0(), "op").unwrap();
        assert_eq!(h.disable(t0(), "op").unwrap().unwrap().from, Paused);
        let codes: Vec<&str> = h.history().map(|t| t.code.as_str()).collect();
        assert_eq!(
            codes,
            ["L4OK", "pause", "resume", "disable", "enable", "pause", "disable"]
        );
        // removal is final
        assert_eq!(h.remove(t0()).unwrap().to, Removed);
        assert_eq!(h.enable(t0(), "op"), Err(ActionError::Removed));
        assert_eq!(h.pause(t0(), "op"), Err(ActionError::Removed));
    }

    #[test]
    fn enable_heals_an_inconsistent_flag() {
        // Keyed on state: a disabled state with enabled=true still enables.
        let mut h = Health::new(2, 3, false, 5);
        assert_eq!(h.state(), State::Disabled);
        assert!(h.enable(t0(), "op").unwrap().is_some());
    }

    #[test]
    fn restart_takes_new_thresholds_and_config_enabled() {
        let mut h = Health::new(2, 3, true, 5);
        run(&mut h, "+++");
        h.disable(t0(), "op").unwrap();
        let t = h.restart(3, 1, true, t0()).unwrap();
        assert_eq!((t.from, t.to), (State::Disabled, State::Unknown));
        assert_eq!(h.counter(), 2);
        assert_eq!(run(&mut h, "+-"), [(State::Up, 3), (State::Down, 0)]);
    }

    #[test]
    fn starts_round_to_a_shared_slot() {
        let origin = tokio::time::Instant::now();
        let ms = Duration::from_millis;
        let at = |d: Duration| origin + d;
        // 1 s interval: 10 ms slots, to the nearest.
        assert_eq!(coalesce(at(ms(4)), origin, ms(1000)), origin);
        assert_eq!(coalesce(at(ms(5)), origin, ms(1000)), at(ms(10)));
        assert_eq!(coalesce(at(ms(10)), origin, ms(1000)), at(ms(10)));
        assert_eq!(coalesce(at(ms(14)), origin, ms(1000)), at(ms(10)));
        // At most MAX_SLOT, however long the interval.
        assert_eq!(coalesce(at(ms(1006)), origin, ms(60_000)), at(ms(1010)));
        // A fiftieth of a short interval: 100 ms → 2 ms slots.
        assert_eq!(coalesce(at(ms(3)), origin, ms(100)), at(ms(4)));
        assert_eq!(coalesce(at(ms(7)), origin, ms(100)), at(ms(8)));
        // Below the timer's resolution, or before the origin: unchanged.
        assert_eq!(coalesce(at(ms(3)), origin, ms(20)), at(ms(3)));
        assert_eq!(coalesce(origin, at(ms(5)), ms(1000)), origin);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let mut rng = rand::rng();
        let d = Duration::from_millis(1000);
        let (mut lo, mut hi) = (d, d);
        for _ in 0..10_000 {
            let j = jitter(d, &mut rng);
            assert!(
                j >= Duration::from_millis(900) && j <= Duration::from_millis(1100),
                "{j:?}"
            );
            lo = lo.min(j);
            hi = hi.max(j);
        }
        assert!(
            lo < Duration::from_millis(920) && hi > Duration::from_millis(1080),
            "spread {lo:?}..{hi:?}"
        );
    }

    #[test]
    fn flapping_is_held_down_then_judged_afresh() {
        // rise 1, fall 1: every result can flip the state.
        let rule = FlapRule {
            max_transitions: 2,
            window: Duration::from_secs(10),
            hold_down: Duration::from_secs(5),
        };
        let mut h = Health::new(1, 1, true, 20).with_flap(Some(rule));
        let at = |s: u64| t0() + Duration::from_secs(s);
        // unknown → up does not count: it is no flap.
        assert_eq!(h.record(true, "L4OK", "", at(0)).unwrap().to, State::Up);
        // 1 and 2: allowed.
        assert_eq!(h.record(false, "L4CON", "", at(1)).unwrap().to, State::Down);
        assert_eq!(h.record(true, "L4OK", "", at(2)).unwrap().to, State::Up);
        // 3 within 10 s: held, as its own state with the reason.
        let t = h.record(false, "L4CON", "refused", at(3)).unwrap();
        assert_eq!(
            (t.from, t.to, t.code.as_str()),
            (State::Up, State::Held, "FLAP")
        );
        assert!(t.detail.contains("3 transitions"), "{}", t.detail);
        assert_eq!(h.held_until(), Some(at(8)));
        assert!(h.is_probing(), "probes go on while held");
        // Passes during the hold change nothing.
        assert_eq!(h.record(true, "L4OK", "", at(4)), None);
        assert_eq!(h.record(true, "L4OK", "", at(7)), None);
        assert_eq!(h.state(), State::Held);
        // The first result after the hold decides from the counter.
        let t = h.record(true, "L4OK", "", at(9)).unwrap();
        assert_eq!((t.from, t.to), (State::Held, State::Up));
        assert!(t.detail.contains("hold-down over"), "{}", t.detail);
        assert_eq!(h.held_until(), None);
        // The count started afresh: two more flips are allowed.
        assert_eq!(
            h.record(false, "L4CON", "", at(10)).unwrap().to,
            State::Down
        );
        assert_eq!(h.record(true, "L4OK", "", at(11)).unwrap().to, State::Up);
        // Transitions older than the window are forgotten: spread out,
        // any number of flips is fine.
        let mut h = Health::new(1, 1, true, 20).with_flap(Some(rule));
        h.record(true, "L4OK", "", at(0));
        for i in 1..10 {
            let t = h.record(i % 2 == 0, "x", "", at(i * 6)).unwrap();
            assert_ne!(t.to, State::Held, "flip {i}");
        }
        // A failing backend when the hold ends goes down, not up.
        let mut h = Health::new(1, 1, true, 20).with_flap(Some(rule));
        h.record(true, "L4OK", "", at(0));
        h.record(false, "x", "", at(1));
        h.record(true, "x", "", at(2));
        assert_eq!(h.record(false, "x", "", at(3)).unwrap().to, State::Held);
        let t = h.record(false, "x", "", at(9)).unwrap();
        assert_eq!((t.from, t.to), (State::Held, State::Down));
        // Operator actions work from held, and clear it.
        let mut h = Health::new(1, 1, true, 20).with_flap(Some(rule));
        h.record(true, "L4OK", "", at(0));
        h.record(false, "x", "", at(1));
        h.record(true, "x", "", at(2));
        h.record(false, "x", "", at(3));
        assert_eq!(h.disable(at(4), "op").unwrap().unwrap().to, State::Disabled);
        assert_eq!(h.held_until(), None);
        assert_eq!(h.enable(at(5), "op").unwrap().unwrap().to, State::Unknown);
        // Without a rule nothing is ever held.
        let mut h = Health::new(1, 1, true, 20);
        for i in 0..20 {
            assert_ne!(
                h.record(i % 2 == 0, "x", "", at(i)).map(|t| t.to),
                Some(State::Held)
            );
        }
    }
}
