//! The checker with real servers: transitions, operator actions stopping
//! probe traffic, reloads.

mod common;

use std::time::Duration;

use common::*;
use maglev_health::{BackendEvent, Checker, CheckerError, CheckerOptions, State};
use tokio::sync::broadcast;

const FAST: &str = "interval: 50ms, fast-interval: 20ms, down-interval: 50ms, timeout: 200ms";

async fn next_event(rx: &mut broadcast::Receiver<BackendEvent>) -> BackendEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("channel open")
}

async fn wait_state(c: &Checker, name: &str, want: State) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while c.state(name) != Some(want) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stuck in {:?}, wanted {want}",
            c.state(name)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn up_then_down_after_fall_with_l7sts() {
    let s = http_server("127.0.0.1").await;
    let cfg = config(
        &format!(
            "    web: {{ type: http, port: {}, rise: 2, fall: 3, {FAST} }}",
            s.addr.port()
        ),
        "    b1: { address: 127.0.0.1, healthcheck: web }",
        &["b1"],
    );
    let c = Checker::start(&cfg, CheckerOptions::default()).unwrap();
    let mut rx = c.subscribe();
    let ev = next_event(&mut rx).await;
    assert_eq!(
        (ev.backend.as_str(), ev.transition.from, ev.transition.to),
        ("b1", State::Unknown, State::Up)
    );
    assert_eq!(ev.transition.code, "L7OK");
    // Let it reach the top of the counter, then break the server.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while c.backend("b1").unwrap().counter < 4 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.set_status(503);
    let hits_before = s.hits();
    let ev = next_event(&mut rx).await;
    assert_eq!(
        (ev.transition.from, ev.transition.to),
        (State::Up, State::Down)
    );
    assert_eq!(ev.transition.code, "L7STS");
    assert_eq!(ev.transition.detail, "HTTP 503");
    assert_eq!(s.hits() - hits_before, 3, "exactly fall=3 failures");
    let st = c.backend("b1").unwrap();
    assert_eq!(st.check_type, "http");
    assert_eq!(st.last.as_ref().unwrap().0.detail, "HTTP 503");
    assert_eq!(st.history.len(), 2);
}

#[tokio::test]
async fn pause_and_disable_stop_probe_traffic() {
    let s = http_server("127.0.0.1").await;
    let cfg = config(
        &format!("    web: {{ type: http, port: {}, {FAST} }}", s.addr.port()),
        "    b1: { address: 127.0.0.1, healthcheck: web }",
        &["b1"],
    );
    let c = Checker::start(&cfg, CheckerOptions::default()).unwrap();
    wait_state(&c, "b1", State::Up).await;

    let st = c.pause("b1", "test").unwrap();
    assert_eq!(st.state, State::Paused);
    let h = s.hits();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.hits(), h, "no probe while paused");

    let st = c.resume("b1", "test").unwrap();
    assert_eq!(st.state, State::Unknown);
    wait_state(&c, "b1", State::Up).await;
    assert!(s.hits() > h, "probing again after resume");

    c.disable("b1", "test").unwrap();
    let h = s.hits();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.hits(), h, "no probe while disabled");
    let err = c.pause("b1", "test").unwrap_err();
    assert!(matches!(err, CheckerError::Action { .. }), "{err}");
    assert_eq!(err.to_string(), "b1: backend is disabled; enable it first");
    assert_eq!(
        c.resume("b1", "test").unwrap_err().to_string(),
        "b1: backend is disabled; enable it first"
    );
    c.enable("b1", "test").unwrap();
    wait_state(&c, "b1", State::Up).await;
    assert!(matches!(
        c.pause("nope", "t"),
        Err(CheckerError::NotFound(_))
    ));
    let codes: Vec<String> = c
        .backend("b1")
        .unwrap()
        .history
        .iter()
        .map(|t| t.code.clone())
        .collect();
    assert_eq!(codes.last().unwrap(), "L7OK");
    assert!(codes.contains(&"disable".to_string()) && codes.contains(&"enable".to_string()));
}

#[tokio::test]
async fn reload_rules() {
    let servers = http_servers(&[
        "127.0.1.1",
        "127.0.1.2",
        "127.0.1.3",
        "127.0.1.4",
        "127.0.1.9",
    ])
    .await;
    let port = servers[0].addr.port();
    let checks = format!(
        "    web: {{ type: http, port: {port}, {FAST} }}\n    tcp: {{ type: tcp, port: {port}, {FAST} }}"
    );
    let cfg = config(
        &checks,
        "    keep: { address: 127.0.1.1, healthcheck: web }\n    \
         change: { address: 127.0.1.2, healthcheck: web }\n    \
         gone: { address: 127.0.1.3, healthcheck: web }\n    \
         moved: { address: 127.0.1.4, healthcheck: web }",
        &["keep", "change", "gone", "moved"],
    );
    let c = Checker::start(&cfg, CheckerOptions::default()).unwrap();
    for b in ["keep", "change", "gone", "moved"] {
        wait_state(&c, b, State::Up).await;
    }
    c.disable("keep", "operator").unwrap();
    let mut rx = c.subscribe();

    let cfg2 = config(
        &checks,
        "    keep: { address: 127.0.1.1, healthcheck: web }\n    \
         change: { address: 127.0.1.2, healthcheck: tcp }\n    \
         moved: { address: 127.0.1.9, healthcheck: web }\n    \
         new: { address: 127.0.1.5 }",
        &["keep", "change", "moved", "new"],
    );
    let report = c.apply(&cfg2).unwrap();
    assert_eq!(report.added, ["new"]);
    assert_eq!(report.removed, ["gone"]);
    assert_eq!(report.restarted, ["change", "moved"]);
    assert_eq!(report.kept, ["keep"]);

    let st = c.backend("keep").unwrap();
    assert_eq!(
        (st.state, st.enabled),
        (State::Disabled, false),
        "operator disable survives"
    );
    assert!(c.backend("gone").is_none());
    let st = c.backend("moved").unwrap();
    assert_eq!(
        st.address,
        "127.0.1.9".parse::<std::net::IpAddr>().unwrap(),
        "new address taken"
    );
    let moved_hits = servers[4].hits();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        servers[4].hits() > moved_hits,
        "probes follow the new address"
    );
    // Another address is another server: it starts unknown (weight 0),
    // is probed at once, and is up only once it answered.
    wait_state(&c, "moved", State::Up).await;
    let st = c.backend("change").unwrap();
    assert_eq!(st.check_type, "tcp");
    wait_state(&c, "change", State::Up).await;
    wait_state(&c, "new", State::Up).await;
    assert_eq!(c.backend("new").unwrap().check_type, "static");

    let mut seen = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        seen.push((
            ev.backend,
            ev.transition.from,
            ev.transition.to,
            ev.transition.code,
        ));
    }
    assert!(
        seen.contains(&("gone".into(), State::Up, State::Removed, "removed".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("change".into(), State::Up, State::Unknown, "restart".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("moved".into(), State::Up, State::Unknown, "restart".into())),
        "an address change restarts the backend: {seen:?}"
    );
}

#[tokio::test]
async fn static_backends_are_up_at_once_and_disabled_ones_wait() {
    let cfg = config(
        "    unused: { type: icmp }",
        "    s1: { address: 127.0.0.1 }\n    s2: { address: 127.0.0.2, enabled: false }\n    \
         x: { address: 127.0.0.3, healthcheck: unused }",
        &["s1", "s2", "x"],
    );
    let c = Checker::start(&cfg, CheckerOptions::default()).unwrap();
    wait_state(&c, "s1", State::Up).await;
    assert_eq!(c.state("s2"), Some(State::Disabled));
    let st = c.backend("s1").unwrap();
    assert_eq!(st.last.unwrap().0.code, maglev_health::Code::Static);
    // The scrape's lean copy says what the full one says.
    let full: Vec<_> = c
        .backends()
        .into_iter()
        .map(|b| (b.name, b.state, b.enabled, b.agent))
        .collect();
    let lean: Vec<_> = c
        .summaries()
        .into_iter()
        .map(|b| (b.name, b.state, b.enabled, b.agent))
        .collect();
    assert_eq!(lean, full);
    assert_eq!(lean.len(), 3);
    assert!(lean.iter().any(|b| b.0 == "s2" && !b.2));
}

#[tokio::test]
async fn agent_checks_take_their_turn_with_the_probes() {
    // 32 permits (the least there are). 16 backends whose HTTP check and
    // agent both talk to a server that accepts and never answers: each
    // probe and each ask holds its permit until the 5 s timeout. Only
    // with the asks counted do they fill all 32, and then the HTTP probe
    // of b0, due every 50 ms, waits its turn (nobody gives a permit back
    // for seconds).
    let s = http_server("127.0.0.1").await;
    let first = tokio::net::TcpListener::bind("127.0.44.1:0").await.unwrap();
    let port = first.local_addr().unwrap().port();
    let mut listeners = vec![first];
    for i in 2..=16 {
        listeners.push(
            tokio::net::TcpListener::bind(format!("127.0.44.{i}:{port}"))
                .await
                .unwrap(),
        );
    }
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut servers = Vec::new();
    for l in listeners {
        let held = std::sync::Arc::clone(&held);
        servers.push(tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                held.lock().unwrap().push(c);
            }
        }));
    }
    let backends: String = (1..=16)
        .map(|i| format!("    a{i}: {{ address: 127.0.44.{i}, healthcheck: ag }}\n"))
        .collect();
    let names: Vec<String> = (1..=16).map(|i| format!("a{i}")).collect();
    let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
    names.push("b0");
    let cfg = config(
        &format!(
            "    web: {{ type: http, port: {}, interval: 50ms, timeout: 2s, rise: 1, fall: 1 }}\n    \
             ag: {{ type: http, port: {port}, interval: 1s, timeout: 5s, rise: 1, fall: 1, agent: {{ port: {port}, interval: 50ms }} }}",
            s.addr.port()
        ),
        &format!("    b0: {{ address: 127.0.0.1, healthcheck: web }}\n{backends}"),
        &names,
    );
    let c = Checker::start(
        &cfg,
        CheckerOptions {
            max_in_flight: Some(32),
            ..Default::default()
        },
    )
    .unwrap();
    // All 32 connected: each took its permit first, so all 32 are held
    // (without the asks' permits b0 probes on beside them).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while held.lock().unwrap().len() < 32 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "16 probes and 16 agents' asks never connected: {:?}",
            c.probe_load()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let hits = s.hits();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.hits(), hits, "a probe ran beside 32 held permits");
    assert_eq!(c.probe_load().in_flight, 32);
    for t in servers {
        t.abort();
    }
}

/// Reads of every backend list the entries, then copy each under its own
/// lock: each backend is there once, in name order.
#[tokio::test]
async fn reads_of_every_backend_see_each_once_in_order() {
    for n in [1, 1_025] {
        let names: Vec<String> = (0..n).map(|i| format!("b{i:04}")).collect();
        let backends: String = names
            .iter()
            .enumerate()
            .map(|(i, b)| format!("    {b}: {{ address: 10.0.{}.{} }}\n", i / 250, i % 250 + 1))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let cfg = config("    {}", backends.trim_end(), &refs);
        let c = Checker::start(&cfg, CheckerOptions::default()).unwrap();
        let listed: Vec<String> = c.backends().into_iter().map(|b| b.name).collect();
        assert_eq!(listed, names, "backends() of {n}");
        let summed: Vec<String> = c.summaries().into_iter().map(|b| b.name).collect();
        assert_eq!(summed, names, "summaries() of {n}");
        assert_eq!(c.states().len(), n);
        c.stop();
    }
}
