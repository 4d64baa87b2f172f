//! WatchEvents: a slow subscriber is told what it missed, and never slows
//! the daemon down.

use std::time::Duration;

use maglev_daemon::{logs::LogBroadcast, Daemon};
use maglev_lbsync::reconciler::ReconcilerOptions;
use maglev_proto as pb;
use maglev_proto::maglev_server::Maglev;
use maglev_service::MaglevService;
use tokio_stream::StreamExt;

fn config() -> maglev_config::Config {
    maglev_config::load_str(
        "maglev:
  vpp: { lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' } }
  backends: { s1: { address: 127.0.0.1 } }
  frontends: { www: { address: 203.0.113.80, port: 80, pools: [ { name: p, backends: { s1: {} } } ] } }
",
        "t.yaml",
    )
    .unwrap()
    .config
}

#[tokio::test]
async fn a_slow_subscriber_is_told_how_many_events_it_missed() {
    let daemon = Daemon::start(
        "/nonexistent/maglev.yaml".into(),
        config(),
        ReconcilerOptions {
            api_socket: None,
            stats_socket: None,
            ..Default::default()
        },
        Default::default(),
        LogBroadcast::default(),
    )
    .unwrap();
    let svc = MaglevService::new(daemon.clone());
    let mut stream = svc
        .watch_events(tonic::Request::new(pb::WatchEventsRequest {
            backend: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    // Flood: 1,000 transitions while the subscriber reads nothing. The
    // actions return at once: the checker never waits for subscribers.
    let start = std::time::Instant::now();
    for _ in 0..500 {
        daemon.checker.pause("s1", "test").unwrap();
        daemon.checker.resume("s1", "test").unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut got = 0u64;
    let mut missed = 0u64;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        match ev.unwrap().event {
            Some(pb::event::Event::Missed(m)) => missed += m.count,
            Some(pb::event::Event::Backend(_)) => got += 1,
            _ => {}
        }
    }
    assert!(missed > 0, "the subscriber was told it missed events");
    // Every transition is either delivered or counted as missed (the
    // resume→up transitions of the probe loop may add a few).
    assert!(got + missed >= 1000, "got {got}, missed {missed}");
    assert!(got <= 1000 + 500, "got {got}");
}
