//! The checker's timing under tokio's paused clock, with a scripted probe:
//! first probes spread over the interval, the interval chosen from the
//! counter, ±10 % jitter on every sleep.

mod common;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::config;
use maglev_health::probe::BoxFuture;
use maglev_health::{Checker, CheckerOptions, Code, Probe, ProbeResult, State};
use tokio::time::Instant;

/// Answers from a script per target ('+' pass, '-' fail, '!' a local
/// failure; then passes) and records when it was called.
#[derive(Debug, Default)]
struct Scripted {
    script: Mutex<HashMap<IpAddr, VecDeque<Code>>>,
    calls: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl Probe for Scripted {
    fn check(&self, target: IpAddr) -> BoxFuture<'_, ProbeResult> {
        Box::pin(async move {
            self.calls
                .lock()
                .unwrap()
                .entry(target)
                .or_default()
                .push(Instant::now());
            let code = self
                .script
                .lock()
                .unwrap()
                .get_mut(&target)
                .and_then(VecDeque::pop_front)
                .unwrap_or(Code::L4Ok);
            ProbeResult::new(code, "scripted", Duration::ZERO)
        })
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
}

fn script(s: &str) -> VecDeque<Code> {
    s.chars()
        .map(|c| match c {
            '+' => Code::L4Ok,
            '-' => Code::L4Con,
            _ => Code::SockErr,
        })
        .collect()
}

/// A checker whose every probe is `fake`, optionally observed.
fn start_scripted(
    cfg: &maglev_config::Config,
    fake: &Arc<Scripted>,
    observer: Option<Arc<dyn maglev_health::ProbeObserver>>,
) -> Checker {
    let f = Arc::clone(fake);
    Checker::start(
        cfg,
        CheckerOptions {
            probe_factory: Some(Arc::new(move |_| Arc::clone(&f) as Arc<dyn Probe>)),
            observer,
            ..Default::default()
        },
    )
    .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// ±10 % jitter, and the start rounded to its slot (at most 1 % of the
/// interval either way).
fn within_jitter(got: Duration, want: Duration) -> bool {
    got >= want.mul_f64(0.89).saturating_sub(Duration::from_millis(1))
        && got <= want.mul_f64(1.11) + Duration::from_millis(1)
}

#[tokio::test(start_paused = true)]
async fn intervals_follow_the_counter_with_jitter() {
    let cfg = config(
        "    hc: { type: tcp, port: 80, interval: 10s, fast-interval: 1s, down-interval: 30s, rise: 2, fall: 3 }",
        "    b: { address: 127.0.0.1, healthcheck: hc }",
        &["b"],
    );
    let fake = Arc::new(Scripted::default());
    // up (snapped to the top), then down to 0, then back up.
    fake.script
        .lock()
        .unwrap()
        .insert(ip("127.0.0.1"), script("+++----++"));
    let t0 = Instant::now();
    let checker = start_scripted(&cfg, &fake, None);
    let mut rx = checker.subscribe();
    tokio::time::sleep(Duration::from_secs(200)).await;

    let calls = fake.calls.lock().unwrap()[&ip("127.0.0.1")].clone();
    // Every start after the first lies on the checker's 10 ms grid (the
    // slot of 1 s and longer intervals), where other backends' probes
    // due about then start in the same wake-up.
    for c in &calls[1..] {
        let since = (*c - t0).as_nanos();
        assert_eq!(since % 10_000_000, 0, "{:?} after start", *c - t0);
    }
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
    // Interval after each result: the first pass snaps to the top
    // (interval) ×3, then 3 fast, 2 fast, below rise snaps to 0
    // (down-interval) ×2, 1 fast, 2 snaps to the top (interval)…
    let s = Duration::from_secs;
    let want = [
        s(10),
        s(10),
        s(10),
        s(1),
        s(1),
        s(30),
        s(30),
        s(1),
        s(10),
        s(10),
    ];
    for (i, (got, want)) in gaps.iter().zip(want).enumerate() {
        assert!(
            within_jitter(*got, want),
            "gap {i}: {got:?}, want {want:?} ±10%; all {gaps:?}"
        );
    }
    assert!(gaps.len() >= want.len(), "{gaps:?}");
    // Jitter really varies the sleeps.
    let tens: Vec<&Duration> = gaps
        .iter()
        .filter(|g| g.as_secs() >= 9 && g.as_secs() <= 11)
        .collect();
    assert!(
        tens.windows(2).any(|w| w[0] != w[1]),
        "no jitter seen: {tens:?}"
    );

    let mut trans = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        trans.push((ev.transition.from, ev.transition.to));
    }
    assert_eq!(
        trans,
        [
            (State::Unknown, State::Up),
            (State::Up, State::Down),
            (State::Down, State::Up)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn first_probes_are_spread_over_the_interval() {
    let names = ["b0", "b1", "b2", "b3"];
    let backends: String = (0..4)
        .map(|i| {
            format!(
                "    b{i}: {{ address: 127.0.0.{}, healthcheck: hc }}\n",
                i + 1
            )
        })
        .collect();
    let cfg = config(
        "    hc: { type: tcp, port: 80, interval: 8s }",
        backends.trim_end(),
        &names,
    );
    let fake = Arc::new(Scripted::default());
    let start = Instant::now();
    let _checker = start_scripted(&cfg, &fake, None);
    tokio::time::sleep(Duration::from_secs(9)).await;
    let calls = fake.calls.lock().unwrap().clone();
    for i in 0..4u64 {
        let first = calls[&ip(&format!("127.0.0.{}", i + 1))][0] - start;
        let want = Duration::from_secs(2 * i);
        assert!(
            within_jitter(first, want),
            "b{i} first probe at {first:?}, want {want:?} ±10%"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_local_failure_never_moves_the_state() {
    let cfg = config(
        "    hc: { type: tcp, port: 80, interval: 1s, fast-interval: 1s, down-interval: 1s, rise: 2, fall: 2 }",
        "    b: { address: 127.0.0.1, healthcheck: hc }",
        &["b"],
    );
    let fake = Arc::new(Scripted::default());
    // Up; then ten probes this host could not run (out of fds…): still up;
    // then two real failures: down; ten more local ones: still down.
    fake.script
        .lock()
        .unwrap()
        .insert(ip("127.0.0.1"), script("+!!!!!!!!!!--!!!!!!!!!!"));
    let checker = start_scripted(&cfg, &fake, None);
    let mut rx = checker.subscribe();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        fake.calls.lock().unwrap()[&ip("127.0.0.1")].len() >= 24,
        "every scripted probe ran"
    );
    let mut trans = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        trans.push((ev.transition.from, ev.transition.to));
    }
    assert_eq!(
        trans,
        [
            (State::Unknown, State::Up),
            (State::Up, State::Down),
            (State::Down, State::Up)
        ],
        "only real results move the state"
    );
}

#[tokio::test]
async fn a_flapping_backend_is_held_down_and_still_probed() {
    // Real time (the hold is on the wall clock): probes every 20 ms, a
    // flip on every result, at most 2 flips in 10 s, held for 400 ms.
    let cfg = config(
        "    hc: { type: tcp, port: 80, interval: 20ms, rise: 1, fall: 1, flap: { max-transitions: 2, window: 10s, hold-down: 400ms } }",
        "    b: { address: 127.0.0.1, healthcheck: hc }",
        &["b"],
    );
    let fake = Arc::new(Scripted::default());
    // up, down, up, down (held), then passes only.
    fake.script
        .lock()
        .unwrap()
        .insert(ip("127.0.0.1"), script("+-+-"));
    let checker = start_scripted(&cfg, &fake, None);
    let mut rx = checker.subscribe();
    let mut trans = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while trans.last().map(|t: &(State, State, String)| t.1) != Some(State::Up) || trans.len() < 5 {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the hold never ended")
            .unwrap();
        if ev.transition.to == State::Held {
            let b = checker.backend("b").unwrap();
            assert!(b.held_until.is_some(), "{b:?}");
            let probes = fake.calls.lock().unwrap()[&ip("127.0.0.1")].len();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let later = fake.calls.lock().unwrap()[&ip("127.0.0.1")].len();
            assert!(later > probes + 3, "probing goes on while held");
            assert_eq!(
                checker.state("b"),
                Some(State::Held),
                "passes do not end the hold"
            );
        }
        trans.push((ev.transition.from, ev.transition.to, ev.transition.code));
    }
    let states: Vec<(State, State)> = trans.iter().map(|t| (t.0, t.1)).collect();
    assert_eq!(
        states,
        [
            (State::Unknown, State::Up),
            (State::Up, State::Down),
            (State::Down, State::Up),
            (State::Up, State::Held),
            (State::Held, State::Up),
        ]
    );
    assert_eq!(trans[3].2, "FLAP");
}

/// Records the largest lag reported.
#[derive(Default)]
struct Lags(Mutex<Duration>);

/// Takes probe results and does nothing with them.
struct Ignore;

impl maglev_health::BackendObserver for Ignore {
    fn probe_done(&self, _: &ProbeResult) {}
}

impl maglev_health::ProbeObserver for Lags {
    fn backend(&self, _: &str, _: &str) -> Arc<dyn maglev_health::BackendObserver> {
        Arc::new(Ignore)
    }
    fn probe_lag(&self, lag: Duration) {
        let mut m = self.0.lock().unwrap();
        *m = (*m).max(lag);
    }
}

#[tokio::test]
async fn late_probes_are_measured() {
    // Real time on the test's one thread: probes every 20 ms, then the
    // thread is blocked for 600 ms (a machine over capacity looks the
    // same to the checker): the probes due meanwhile start late, and
    // the observer is told by how much.
    let cfg = config(
        "    hc: { type: tcp, port: 80, interval: 20ms, rise: 1, fall: 1 }",
        "    b: { address: 127.0.0.1, healthcheck: hc }",
        &["b"],
    );
    let fake = Arc::new(Scripted::default());
    let lags = Arc::new(Lags::default());
    let _checker = start_scripted(
        &cfg,
        &fake,
        Some(Arc::clone(&lags) as Arc<dyn maglev_health::ProbeObserver>),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = *lags.0.lock().unwrap();
    assert!(
        before < Duration::from_millis(100),
        "{before:?} before the stall"
    );
    std::thread::sleep(Duration::from_millis(600));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = *lags.0.lock().unwrap();
    assert!(after >= Duration::from_millis(450), "lag seen: {after:?}");
}

#[test]
fn local_errors_are_told_from_backend_errors() {
    use maglev_health::probe::is_local_error;
    use std::io::Error;
    for local in [24, 23, 105, 12, 99, 11] {
        // EMFILE ENFILE ENOBUFS ENOMEM EADDRNOTAVAIL EAGAIN
        assert!(is_local_error(&Error::from_raw_os_error(local)), "{local}");
    }
    for remote in [111, 113, 101, 110, 104] {
        // ECONNREFUSED EHOSTUNREACH ENETUNREACH ETIMEDOUT ECONNRESET
        assert!(
            !is_local_error(&Error::from_raw_os_error(remote)),
            "{remote}"
        );
    }
}

/// Takes a second per probe; counts probes per target and how many ran at
/// once.
#[derive(Debug, Default)]
struct Slow {
    running: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
    calls: Mutex<HashMap<IpAddr, usize>>,
}

impl Probe for Slow {
    fn check(&self, target: IpAddr) -> BoxFuture<'_, ProbeResult> {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            let now = self.running.fetch_add(1, SeqCst) + 1;
            self.peak.fetch_max(now, SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.running.fetch_sub(1, SeqCst);
            *self.calls.lock().unwrap().entry(target).or_default() += 1;
            ProbeResult::new(Code::L4Ok, "slow", Duration::from_secs(1))
        })
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
}

#[tokio::test(start_paused = true)]
async fn over_capacity_probes_wait_their_turn_and_none_starves() {
    // 200 backends probed every second, each probe taking a second, at
    // most 50 at once: a quarter of the schedule fits. Probes wait for a
    // turn in the order they fell due, so every backend is probed about
    // as often as any other, and the lag says how far behind it is.
    let n = 200;
    let backends: String = (0..n)
        .map(|i| {
            format!(
                "    b{i}: {{ address: 127.0.{}.{}, healthcheck: hc }}\n",
                i / 200,
                i % 200 + 1
            )
        })
        .collect();
    let names: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let cfg = config(
        "    hc: { type: tcp, port: 80, interval: 1s, fast-interval: 1s, down-interval: 1s, timeout: 5s }",
        backends.trim_end(),
        &names,
    );
    let slow = Arc::new(Slow::default());
    let lags = Arc::new(Lags::default());
    let f = Arc::clone(&slow);
    let _checker = Checker::start(
        &cfg,
        CheckerOptions {
            probe_factory: Some(Arc::new(move |_| Arc::clone(&f) as Arc<dyn Probe>)),
            observer: Some(Arc::clone(&lags) as Arc<dyn maglev_health::ProbeObserver>),
            max_in_flight: Some(50),
            ..Default::default()
        },
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(40)).await;

    let peak = slow.peak.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(peak, 50, "at most 50 at once, and all 50 used");
    let calls = slow.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), n, "every backend was probed");
    let (fewest, most) = (calls.values().min().unwrap(), calls.values().max().unwrap());
    assert!(
        most - fewest <= 1,
        "evenly: {fewest}..{most} probes per backend"
    );
    let total: usize = calls.values().sum();
    assert!(
        (1_900..=2_000).contains(&total),
        "50 a second for 40 s: {total}"
    );
    let lag = *lags.0.lock().unwrap();
    assert!(
        lag >= Duration::from_secs(2),
        "the lag shows the backlog: {lag:?}"
    );
}

/// Records the thread each probe ran on, per target.
#[derive(Debug, Default)]
struct Where(Mutex<HashMap<IpAddr, std::collections::BTreeSet<String>>>);

impl Probe for Where {
    fn check(&self, target: IpAddr) -> BoxFuture<'_, ProbeResult> {
        Box::pin(async move {
            let thread = std::thread::current().name().unwrap_or("?").to_string();
            self.0
                .lock()
                .unwrap()
                .entry(target)
                .or_default()
                .insert(thread);
            ProbeResult::new(Code::L4Ok, "here", Duration::ZERO)
        })
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
}

#[tokio::test]
async fn backends_are_shared_out_among_the_probe_runtimes_and_stay_there() {
    // Two current-thread runtimes on threads of their own, as maglevd's
    // probe threads: ten backends, five on each, every probe of a backend
    // on the same thread.
    let handles: Vec<tokio::runtime::Handle> = ["probe-a", "probe-b"]
        .into_iter()
        .map(|name| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let handle = rt.handle().clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || rt.block_on(std::future::pending::<()>()))
                .unwrap();
            handle
        })
        .collect();
    let backends: String = (0..10)
        .map(|i| {
            format!(
                "    b{i}: {{ address: 127.0.0.{}, healthcheck: hc }}\n",
                i + 1
            )
        })
        .collect();
    let names: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let cfg = config(
        "    hc: { type: tcp, port: 80, interval: 20ms, fast-interval: 20ms, down-interval: 20ms }",
        backends.trim_end(),
        &names,
    );
    let seen = Arc::new(Where::default());
    let f = Arc::clone(&seen);
    let _checker = Checker::start(
        &cfg,
        CheckerOptions {
            probe_factory: Some(Arc::new(move |_| Arc::clone(&f) as Arc<dyn Probe>)),
            runtimes: handles,
            ..Default::default()
        },
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 10, "every backend probed: {seen:?}");
    let mut per_thread: HashMap<String, usize> = HashMap::new();
    for threads in seen.values() {
        assert_eq!(
            threads.len(),
            1,
            "a backend stays on its thread: {threads:?}"
        );
        *per_thread
            .entry(threads.iter().next().unwrap().clone())
            .or_default() += 1;
    }
    assert_eq!(per_thread.get("probe-a"), Some(&5), "{per_thread:?}");
    assert_eq!(per_thread.get("probe-b"), Some(&5), "{per_thread:?}");
}

#[tokio::test(start_paused = true)]
async fn backends_removed_while_waiting_for_a_turn_give_it_away() {
    // 64 backends, a second per probe, 32 at once: half wait at any time.
    // A reload keeps 16: their probes no longer wait (every second each),
    // and nothing the removed ones held or queued for is lost.
    let n = 64;
    let (backends, names) = numbered(n);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let hc = "    hc: { type: tcp, port: 80, interval: 1s, fast-interval: 1s, down-interval: 1s, timeout: 5s }";
    let cfg = config(hc, &backends, &names);
    let slow = Arc::new(Slow::default());
    let f = Arc::clone(&slow);
    let checker = Checker::start(
        &cfg,
        CheckerOptions {
            probe_factory: Some(Arc::new(move |_| Arc::clone(&f) as Arc<dyn Probe>)),
            max_in_flight: Some(32),
            ..Default::default()
        },
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(checker.probe_load().in_flight, 32, "all permits in use");

    let report = checker.apply(&config(hc, &backends, &names[..16])).unwrap();
    assert_eq!(report.removed.len(), 48);
    let before = slow.calls.lock().unwrap().clone();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let after = slow.calls.lock().unwrap().clone();
    for name in &names[..16] {
        let i: u8 = name[1..].parse().unwrap();
        let target = ip(&format!("127.0.0.{}", i + 1));
        let done = after[&target] - before.get(&target).copied().unwrap_or(0);
        // A probe (1 s) and the interval (1 s ± 10 %) each time: 9–11.
        assert!((9..=11).contains(&done), "{name}: {done} probes in 20 s");
    }
    let load = checker.probe_load();
    assert!(load.in_flight <= 16, "{load:?}");
    assert_eq!(load.limit, 32);
}

/// Hands each loop a handle of its own and counts what reaches each.
#[derive(Default)]
struct Handles(Mutex<Vec<(String, String, Arc<Counted>)>>);

#[derive(Default)]
struct Counted(std::sync::atomic::AtomicUsize);

impl maglev_health::BackendObserver for Counted {
    fn probe_done(&self, _: &ProbeResult) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl maglev_health::ProbeObserver for Handles {
    fn backend(
        &self,
        backend: &str,
        check_type: &'static str,
    ) -> Arc<dyn maglev_health::BackendObserver> {
        let h = Arc::new(Counted::default());
        self.0
            .lock()
            .unwrap()
            .push((backend.to_string(), check_type.to_string(), Arc::clone(&h)));
        h
    }
}

impl Handles {
    /// (backend, type, probes reported) of every handle given, in order.
    fn given(&self) -> Vec<(String, String, usize)> {
        let given = self.0.lock().unwrap();
        given
            .iter()
            .map(|(b, t, h)| {
                let n = h.0.load(std::sync::atomic::Ordering::SeqCst);
                (b.clone(), t.clone(), n)
            })
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn each_loop_reports_to_the_handle_it_was_given() {
    // The observer is asked for a backend's handle when its loop starts,
    // not on every probe; a changed check starts a new loop with a new
    // handle of the new type, and the old one hears nothing more.
    let checks = "    hc: { type: tcp, port: 80, interval: 1s, fast-interval: 1s, down-interval: 1s }\n    web: { type: http, port: 80, interval: 1s, fast-interval: 1s, down-interval: 1s }";
    let backends = |a_check: &str| {
        format!(
            "    a: {{ address: 127.0.0.1, healthcheck: {a_check} }}\n    b: {{ address: 127.0.0.2, healthcheck: hc }}"
        )
    };
    let fake = Arc::new(Scripted::default());
    let handles = Arc::new(Handles::default());
    let checker = start_scripted(
        &config(checks, &backends("hc"), &["a", "b"]),
        &fake,
        Some(Arc::clone(&handles) as Arc<dyn maglev_health::ProbeObserver>),
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let probes = |target: &str| fake.calls.lock().unwrap()[&ip(target)].len();
    let given = handles.given();
    assert_eq!(
        given,
        [
            ("a".into(), "tcp".into(), probes("127.0.0.1")),
            ("b".into(), "tcp".into(), probes("127.0.0.2")),
        ],
        "one handle per backend, every probe reported to it"
    );
    assert!(given[0].2 >= 9, "{given:?}");

    checker
        .apply(&config(checks, &backends("web"), &["a", "b"]))
        .unwrap();
    let a_before = probes("127.0.0.1");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let given = handles.given();
    assert_eq!(given.len(), 3, "a new handle for a only: {given:?}");
    assert_eq!(given[0].2, a_before, "the old loop's handle hears no more");
    assert_eq!((given[2].0.as_str(), given[2].1.as_str()), ("a", "http"));
    assert_eq!(given[2].2, probes("127.0.0.1") - a_before);
    assert!(given[2].2 >= 9, "{given:?}");
    assert_eq!(given[1].2, probes("127.0.0.2"), "b kept its handle");
}

/// A probe thread of its own: a current-thread runtime, stopped on drop.
struct ProbeThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ProbeThread {
    fn start() -> ProbeThread {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = rt.block_on(stopped);
        });
        ProbeThread {
            handle,
            stop: Some(stop),
        }
    }
}

impl Drop for ProbeThread {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// `n` backends `b0`… on 127.0.0.1… checked by `hc`: their YAML and
/// their names.
fn numbered(n: usize) -> (String, Vec<String>) {
    let backends: String = (0..n)
        .map(|i| {
            format!(
                "    b{i}: {{ address: 127.0.0.{}, healthcheck: hc }}\n",
                i + 1
            )
        })
        .collect();
    let names = (0..n).map(|i| format!("b{i}")).collect();
    (backends.trim_end().to_string(), names)
}

/// `n` backends `b0`… checked by `hc` every `interval`.
fn every(n: usize, interval: &str) -> maglev_config::Config {
    let (backends, names) = numbered(n);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    config(
        &format!("    hc: {{ type: tcp, port: 80, interval: {interval}, fast-interval: {interval}, down-interval: {interval} }}"),
        &backends,
        &names,
    )
}

/// Runs `body` on a runtime of the test's own with a checker of `cfg`
/// whose every probe is `fake`, its loops on two probe threads.
fn on_two_threads<T>(
    cfg: &maglev_config::Config,
    fake: &Arc<Scripted>,
    max_in_flight: Option<usize>,
    body: impl AsyncFnOnce(&Checker, &[ProbeThread]) -> T,
) -> T {
    let threads = [ProbeThread::start(), ProbeThread::start()];
    let f = Arc::clone(fake);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let checker = Checker::start(
            cfg,
            CheckerOptions {
                probe_factory: Some(Arc::new(move |_| Arc::clone(&f) as Arc<dyn Probe>)),
                runtimes: threads.iter().map(|t| t.handle.clone()).collect(),
                max_in_flight,
                ..Default::default()
            },
        )
        .unwrap();
        body(&checker, &threads).await
    })
}

#[test]
fn a_thread_that_falls_behind_holds_back_only_its_own_probes() {
    // Two probe threads share 2,000 probes in flight, 1,000 each. The
    // first is stalled again and again (its timers fire 120 ms late): it
    // lowers its own share to the floor of 32, and the second, on time,
    // keeps its 1,000. With one shared budget the first thread's lateness
    // would have lowered everyone's.
    let n = 40;
    let fake = Arc::new(Scripted::default());
    on_two_threads(
        &every(n, "20ms"),
        &fake,
        Some(2_000),
        async |checker, threads| {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(checker.probe_load().limit, 2_000, "nobody behind yet");
            let stall = threads[0].handle.spawn(async {
                for _ in 0..8 {
                    std::thread::sleep(Duration::from_millis(120));
                    tokio::task::yield_now().await;
                }
            });
            stall.await.unwrap();
            let load = checker.probe_load();
            assert_eq!(load.limit, 32 + 1_000, "{load:?}");
            let probed = fake.calls.lock().unwrap().len();
            assert_eq!(probed, n, "every backend probed");
        },
    );
}

/// A network namespace of the test's own, deleted on drop.
struct Netns(String);

impl Netns {
    fn add() -> Netns {
        let name = format!("maglev-schedule-{}", std::process::id());
        let ok = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "`ip netns add {name}` failed (the tests run as root)");
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

#[tokio::test(start_paused = true)]
async fn a_reload_into_another_netns_probes_with_the_new_probe() {
    // The same check in another namespace keeps its loop (and state) and
    // takes the check's new probe; the loop holds its own reference to
    // the probe and must notice that it was replaced.
    let cfg = config(
        "    hc: { type: tcp, port: 80, interval: 1s, fast-interval: 1s, down-interval: 1s }",
        "    b: { address: 127.0.0.1, healthcheck: hc }",
        &["b"],
    );
    let made: Arc<Mutex<Vec<Arc<Scripted>>>> = Arc::default();
    let m = Arc::clone(&made);
    let checker = Checker::start(
        &cfg,
        CheckerOptions {
            probe_factory: Some(Arc::new(move |_| {
                let p = Arc::new(Scripted::default());
                m.lock().unwrap().push(Arc::clone(&p));
                p as Arc<dyn Probe>
            })),
            ..Default::default()
        },
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let calls = |i: usize| -> usize {
        let probe = Arc::clone(&made.lock().unwrap()[i]);
        let calls = probe.calls.lock().unwrap();
        calls.values().map(Vec::len).sum()
    };
    assert!(calls(0) >= 4, "{}", calls(0));

    let ns = Netns::add();
    let mut moved = cfg.clone();
    moved.healthchecker.netns = Some(ns.0.clone());
    let report = checker.apply(&moved).unwrap();
    assert_eq!(report.kept, ["b"]);
    let old = calls(0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        made.lock().unwrap().len(),
        2,
        "a new probe for the new netns"
    );
    assert_eq!(calls(0), old, "the old probe is no longer used");
    assert!(calls(1) >= 4, "the new probe is: {}", calls(1));
}

#[test]
fn probe_threads_start_in_slots_of_their_own() {
    // Two probe threads: each thread's starts lie on the 10 ms grid, the
    // second's half a slot after the first's, so the threads do not wake
    // at the same moments. Each backend's start times, taken modulo the
    // slot, fall in one of two places 5 ms apart, and both are used.
    let n = 8;
    let fake = Arc::new(Scripted::default());
    let start = Instant::now();
    on_two_threads(&every(n, "500ms"), &fake, None, async |_, _| {
        tokio::time::sleep(Duration::from_millis(2_600)).await;
    });
    let slot = 10_000u128; // µs
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), n);
    // Each backend's usual phase in the slot (the median of its starts
    // after the first), in µs.
    let phases: Vec<u128> = calls
        .values()
        .map(|starts| {
            let mut p: Vec<u128> = starts[1..]
                .iter()
                .map(|t| (*t - start).as_micros() % slot)
                .collect();
            assert!(p.len() >= 3, "{starts:?}");
            p.sort_unstable();
            p[p.len() / 2]
        })
        .collect();
    // Relative to the first backend's; a wake-up may come a little late.
    let near = |d: u128, to: u128| {
        let d = (d + slot - to) % slot;
        d <= 2_000 || d >= slot - 2_000
    };
    let first = phases[0];
    let same = phases.iter().filter(|p| near(**p, first)).count();
    let half = phases
        .iter()
        .filter(|p| near(**p, (first + slot / 2) % slot))
        .count();
    assert_eq!(same + half, n, "{phases:?}");
    assert_eq!((same, half), (n / 2, n / 2), "{phases:?}");
}
