//! A stop signal is obeyed within 2 s whatever clients are doing: it used
//! to take as long as any `WatchEvents` stream stayed open (620 s measured),
//! with probing and VPP writes going on meanwhile. VPP keeps what was
//! programmed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maglev_proto as pb;
use maglev_proto::maglev_client::MaglevClient;
use maglev_testkit::{eventually, free_port, Kill};
use maglev_vppsim::{SimOptions, Simulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_streams_open_exits_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api.sock");
    let sim = Simulator::start(SimOptions {
        api_socket: api.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let cfg = dir.path().join("maglev.yaml");
    std::fs::write(
        &cfg,
        "maglev:
  vpp:
    lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1', startup-min-delay: 0, startup-max-delay: 0 }
  backends:
    s1: { address: 127.0.10.1 }
  frontends:
    www: { address: 127.0.10.80, port: 80, pools: [ { name: p, backends: { s1: {} } } ] }
",
    )
    .unwrap();
    let grpc = free_port();
    let mut maglevd = Kill(
        Command::new(env!("CARGO_BIN_EXE_maglevd"))
            .arg("--config")
            .arg(&cfg)
            .args([
                "--grpc-addr",
                &format!("127.0.0.1:{grpc}"),
                "--insecure-admin-tcp",
            ])
            .args(["--metrics-addr", "", "--vpp-stats-addr", ""])
            .arg("--vpp-api-addr")
            .arg(&api)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let weights = || {
        let lb = sim.lb();
        let w: Vec<u8> = lb
            .live_vips()
            .flat_map(|v| v.ases.iter().map(|a| a.weight))
            .collect();
        w
    };
    eventually("programmed", Duration::from_secs(10), || weights() == [100]).await;
    let mut c = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(c) = MaglevClient::connect(format!("http://127.0.0.1:{grpc}")).await {
                break c;
            }
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // Three streams held open, as dashboards and `maglevc watch` do.
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(
            c.watch_events(pb::WatchEventsRequest {
                log: true,
                log_level: "debug".into(),
                backend: true,
                frontend: true,
            })
            .await
            .unwrap()
            .into_inner(),
        );
    }
    let calls = sim.call_count();
    let t = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &maglevd.0.id().to_string()])
        .status();
    let status = loop {
        if let Some(s) = maglevd.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "maglevd still running 2 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    // The streams ended; VPP was left as it was.
    for mut s in streams {
        while let Ok(Some(_)) = s.message().await {}
    }
    assert_eq!(weights(), [100]);
    let writes: Vec<_> = sim
        .calls_since(calls)
        .into_iter()
        .filter(|c| c.msg.starts_with("lb_add_del") || c.msg == "lb_as_set_weight")
        .collect();
    assert!(writes.is_empty(), "VPP writes on the way out: {writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_one_line_per_event_without_colour_or_debug_values() {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api.sock");
    let sim = Simulator::start(SimOptions {
        api_socket: api.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let cfg = dir.path().join("maglev.yaml");
    let good = "maglev:
  vpp:
    lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1', startup-min-delay: 0, startup-max-delay: 0 }
  backends:
    s1: { address: 127.0.10.2 }
  frontends:
    www: { address: 127.0.10.81, port: 80, pools: [ { name: p, backends: { s1: {} } } ] }
";
    std::fs::write(&cfg, good).unwrap();
    let log = dir.path().join("maglevd.log");
    let mut maglevd = Kill(
        Command::new(env!("CARGO_BIN_EXE_maglevd"))
            .arg("--config")
            .arg(&cfg)
            .args(["--grpc-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--metrics-addr", "", "--vpp-stats-addr", ""])
            .arg("--vpp-api-addr")
            .arg(&api)
            .env_remove("NO_COLOR")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    eventually("programmed", Duration::from_secs(10), || {
        sim.lb().live_vips().count() == 1
    })
    .await;
    // A reload with two semantic errors: one log line, not three.
    std::fs::write(
        &cfg,
        good.replace("127.0.10.2", "0.0.0.0")
            .replace("198.51.100.1", "224.0.0.1"),
    )
    .unwrap();
    let pid = maglevd.0.id().to_string();
    let _ = Command::new("kill").args(["-HUP", &pid]).status();
    eventually("the reload was refused", Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("config reload refused"))
    })
    .await;
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = maglevd.0.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\u{1b}'), "colour codes in a file:\n{text}");
    for line in text.lines() {
        assert!(
            line.starts_with("20") && line.contains("Z "),
            "a line that is not an event of its own: {line:?}\n{text}"
        );
    }
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("config reload refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{text}");
    assert!(refused[0].contains("\\n"), "{}", refused[0]);
    assert!(!text.contains("Some("), "{text}");
    assert!(text.contains(" event=stopping"), "plain key=value: {text}");
}
