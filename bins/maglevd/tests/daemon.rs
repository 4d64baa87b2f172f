//! maglevd as a real process with real HTTP backends and the VPP simulator.

use maglev_testkit::{eventually, free_port};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use maglev_proto as pb;
use maglev_proto::maglev_client::MaglevClient;
use maglev_vppsim::{SimOptions, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// A minimal HTTP backend that counts requests; abort the task to kill it.
struct Backend {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

async fn backend(ip: &str, port: u16) -> Backend {
    let l = tokio::net::TcpListener::bind((ip, port)).await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            let h = Arc::clone(&h);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                h.fetch_add(1, Ordering::SeqCst);
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    Backend { addr, hits, task }
}

struct Daemon {
    child: Child,
    grpc: String,
    metrics: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(config: &Path, api: &Path, stats: &Path) -> Daemon {
    let port = free_port();
    let metrics = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_maglevd"))
        .arg("--config")
        .arg(config)
        .arg("--grpc-addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--insecure-admin-tcp")
        .arg("--metrics-addr")
        .arg(&metrics)
        .arg("--vpp-api-addr")
        .arg(api)
        .arg("--vpp-stats-addr")
        .arg(stats)
        .arg("--log-level")
        .arg("info")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Daemon {
        child,
        grpc: format!("http://127.0.0.1:{port}"),
        metrics,
    }
}

async fn client(d: &Daemon) -> MaglevClient<tonic::transport::Channel> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(c) = MaglevClient::connect(d.grpc.clone()).await {
            return c;
        }
        assert!(Instant::now() < deadline, "maglevd did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /metrics`, the body.
async fn scrape(addr: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// `GET path` with extra header lines: the status, the header block
/// (lower case) and the body.
async fn get(addr: &str, path: &str, headers: &str) -> (u16, String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&out[..split]).to_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, out[split + 4..].to_vec())
}

/// `GET /metrics` asking for OpenMetrics, the body.
async fn scrape_openmetrics(addr: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text; version=1.0.0\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// `promtool check metrics` on a scrape's body: the Prometheus project's
/// own linter. `MAGLEV_PROMTOOL` (set by `cargo xtask test`) names it; a
/// `promtool` on PATH is used otherwise; without one the check is skipped,
/// loudly, unless `MAGLEV_REQUIRE_PROMTOOL=1`.
fn promtool_check(response: &str) {
    let body = response.split_once("\r\n\r\n").map_or(response, |(_, b)| b);
    let promtool = std::env::var("MAGLEV_PROMTOOL").unwrap_or_else(|_| "promtool".to_string());
    let child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("MAGLEV_REQUIRE_PROMTOOL").map_or(true, |v| v != "1"),
                "promtool required but not runnable: {e}"
            );
            eprintln!("*** SKIPPED promtool check metrics: {promtool}: {e} ***");
            return;
        }
    };
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n---\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// docs/user-guide.md's metrics table against the families each scope
/// served (name → scope): every family is in the table, every name in
/// the table is served, in the scope the table gives.
fn user_guide_metrics_check(served: &std::collections::BTreeMap<String, &str>) {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/user-guide.md"
    ))
    .unwrap();
    let table = &doc[doc
        .find("| metric | type | labels | scope | meaning |")
        .expect("the metrics table")..];
    let mut documented = std::collections::BTreeMap::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let scope = cells[4];
        for name in cells[1].split(", ") {
            documented.insert(name.trim_matches('`').to_string(), scope);
        }
    }
    for (name, scope) in served {
        assert_eq!(
            documented.get(name),
            Some(scope),
            "/metrics?scope={scope} serves {name}: docs/user-guide.md's metrics table must list it with scope {scope}"
        );
    }
    // Families whose series appear with their first event, which this
    // test does not cause.
    let on_first_event = ["maglev_grpc_denied_total"];
    let missing: Vec<&String> = documented
        .keys()
        .filter(|n| !served.contains_key(*n) && !on_first_event.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/user-guide.md lists {missing:?}, which no scope of /metrics serves"
    );
}

/// The alert rules docs/operations.md recommends: every metric they name
/// is in a real scrape (a renamed metric would leave an alert that never
/// fires), and `promtool check rules` accepts them.
fn alert_rules_check(scrape: &str) {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/operations.md"
    ))
    .unwrap();
    let start = doc.find("```yaml\ngroups:").expect("the alert rules block");
    let block = &doc[start + "```yaml\n".len()..];
    let rules = &block[..block.find("```").unwrap()];
    let mut named = 0;
    for expr in rules.lines().filter_map(|l| l.trim().strip_prefix("expr:")) {
        let metrics = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("maglev_") || w.starts_with("process_"));
        for metric in metrics {
            named += 1;
            // A sample, or the family's TYPE line when it has none yet
            // (a counter's family is named without `_total` there).
            let family = metric.strip_suffix("_total").unwrap_or(metric);
            let exported = scrape.lines().any(|l| {
                l.starts_with(metric)
                    || l.strip_prefix("# TYPE ")
                        .and_then(|t| t.split_whitespace().next())
                        .is_some_and(|name| name == metric || name == family)
            });
            assert!(
                exported,
                "docs/operations.md alerts on {metric}, which /metrics does not have:\n{}",
                scrape
                    .lines()
                    .filter(|l| l.contains(family))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    assert!(named >= 8, "{named} metrics named in the alert rules");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, rules).unwrap();
    let promtool = std::env::var("MAGLEV_PROMTOOL").unwrap_or_else(|_| "promtool".to_string());
    match Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool check rules failed on docs/operations.md's rules:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            assert!(
                std::env::var("MAGLEV_REQUIRE_PROMTOOL").map_or(true, |v| v != "1"),
                "promtool required but not runnable: {e}"
            );
            eprintln!("*** SKIPPED promtool check rules: {promtool}: {e} ***");
        }
    }
}

/// Weight of `as_ip` in the simulator's live VIPs, if present.
fn weight(sim: &Simulator, as_ip: &str) -> Option<u8> {
    let ip: std::net::IpAddr = as_ip.parse().unwrap();
    let lb = sim.lb();
    let found = lb
        .live_vips()
        .flat_map(|v| v.ases.iter().filter(|a| a.used && a.address == ip))
        .map(|a| a.weight)
        .next();
    found
}

fn write_config(path: &Path, port: u16, extra: &str) {
    let text = format!(
        "maglev:
  vpp:
    lb:
      ipv4-src-address: 198.51.100.1
      ipv6-src-address: '2001:db8::1'
      sync-interval: 1s
      startup-min-delay: 0
      startup-max-delay: 0
  healthchecks:
    web: {{ type: http, port: {port}, interval: 200ms, fast-interval: 100ms, down-interval: 200ms, timeout: 300ms, rise: 2, fall: 3 }}
  backends:
    web1: {{ address: 127.0.3.1, healthcheck: web }}
    web2: {{ address: 127.0.3.2, healthcheck: web }}
  frontends:
    www:
      address: 203.0.113.80
      port: 80
      pools:
        - name: primary
          backends: {{ web1: {{}}, web2: {{}} }}
{extra}"
    );
    std::fs::write(path, text).unwrap();
}

struct Rig {
    dir: tempfile::TempDir,
    sim: Simulator,
    backends: Vec<Backend>,
    config: PathBuf,
    daemon: Daemon,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api.sock");
    let stats = dir.path().join("stats.sock");
    let sim = Simulator::start(SimOptions {
        api_socket: api.clone(),
        stats_socket: Some(stats.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let b1 = backend("127.0.3.1", 0).await;
    let port = b1.addr.port();
    let b2 = backend("127.0.3.2", port).await;
    let config = dir.path().join("maglev.yaml");
    write_config(&config, port, "");
    let daemon = start(&config, &api, &stats);
    Rig {
        dir,
        sim,
        backends: vec![b1, b2],
        config,
        daemon,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_reload_removes_leaves_no_series() {
    let r = rig().await;
    let mut c = client(&r.daemon).await;
    let port = r.backends[0].addr.port();
    let reload = |c: &mut MaglevClient<tonic::transport::Channel>| {
        let mut c = c.clone();
        async move {
            let res = c
                .reload_config(pb::ReloadConfigRequest {})
                .await
                .unwrap()
                .into_inner();
            assert!(res.ok, "{res:?}");
        }
    };
    // A second frontend, www2, on web1.
    write_config(
        &r.config,
        port,
        "    www2:\n      address: 203.0.113.81\n      port: 80\n      pools:\n        - { name: p, backends: { web1: {} } }\n",
    );
    reload(&mut c).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(&r.daemon.metrics).await;
        if m.contains("maglev_probe_total{backend=\"web2\",type=\"http\",result=\"pass\"")
            && m.contains("maglev_backend_transitions_total{backend=\"web2\"")
            && m.contains("maglev_vip_packets_total{frontend=\"www2\"")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "web2 or www2 never counted:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // web2 leaves the pool and the config, www2 the config.
    write_config(&r.config, port, "");
    let text = std::fs::read_to_string(&r.config).unwrap();
    let without = text
        .replace("    web2: { address: 127.0.3.2, healthcheck: web }\n", "")
        .replace("{ web1: {}, web2: {} }", "{ web1: {} }");
    assert_ne!(without, text);
    std::fs::write(&r.config, &without).unwrap();
    reload(&mut c).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(&r.daemon.metrics).await;
        let left: Vec<&str> = m
            .lines()
            .filter(|l| l.contains("\"web2\"") || l.contains("\"www2\""))
            .collect();
        if left.is_empty() {
            assert!(m.contains("maglev_probe_total{backend=\"web1\""), "{m}");
            assert!(
                m.contains("maglev_vip_packets_total{frontend=\"www\""),
                "{m}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "series outlived what they count:\n{}",
            left.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end() {
    let r = rig().await;
    let mut c = client(&r.daemon).await;
    eventually("both ASes up in VPP", Duration::from_secs(10), || {
        weight(&r.sim, "127.0.3.1") == Some(100) && weight(&r.sim, "127.0.3.2") == Some(100)
    })
    .await;
    assert_eq!(r.sim.lb().conf.ip4_src, [198, 51, 100, 1]);

    // The API sees it too.
    let f = c
        .get_frontend(pb::GetFrontendRequest { name: "www".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.state, "up");
    assert_eq!(f.pools[0].backends.len(), 2);
    assert_eq!(f.pools[0].backends[0].vpp_buckets, Some(512));
    let info = c
        .get_vpp_info(pb::GetVppInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.pid, r.sim.pid());

    // Kill web2: weight 0 with flush within fall × fast-interval + 2 s.
    r.backends[1].task.abort();
    let took = eventually(
        "web2 at weight 0",
        // fall × fast-interval + 2 s
        Duration::from_millis(3 * 100 + 2000),
        || weight(&r.sim, "127.0.3.2") == Some(0),
    )
    .await;
    let flushed = r.sim.calls().iter().any(|c| {
        c.msg == "lb_as_set_weight"
            && c.detail.contains("[127, 0, 3, 2,")
            && c.detail.contains("is_flush: true")
    });
    assert!(flushed, "weight 0 came with a flush (after {took:?})");

    // Disable over gRPC: probe traffic stops, VPP gets weight 0.
    let b = c
        .disable_backend(pb::BackendActionRequest {
            name: "web1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((b.state.as_str(), b.enabled), ("disabled", false));
    eventually("web1 at weight 0", Duration::from_secs(5), || {
        weight(&r.sim, "127.0.3.1") == Some(0)
    })
    .await;
    let hits = r.backends[0].hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        r.backends[0].hits.load(Ordering::SeqCst),
        hits,
        "no probes while disabled"
    );
    let e = c
        .pause_backend(pb::BackendActionRequest {
            name: "web1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    let e = c
        .get_backend(pb::GetBackendRequest {
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    c.enable_backend(pb::BackendActionRequest {
        name: "web1".into(),
    })
    .await
    .unwrap();
    eventually("web1 back", Duration::from_secs(5), || {
        weight(&r.sim, "127.0.3.1") == Some(100)
    })
    .await;

    // A runtime weight reaches VPP, and the reply shows VPP's buckets
    // after the change (not `-`, which means "VPP lacks the VIP").
    let reply = c
        .set_frontend_pool_backend_weight(pb::SetWeightRequest {
            frontend: "www".into(),
            pool: "primary".into(),
            backend: "web1".into(),
            weight: 42,
        })
        .await
        .unwrap()
        .into_inner();
    let web1 = reply.pools[0]
        .backends
        .iter()
        .find(|b| b.name == "web1")
        .unwrap();
    assert!(
        web1.vpp_buckets.is_some_and(|b| b > 0),
        "no buckets in the reply: {reply:?}"
    );
    // The override is marked on its member only; nothing ramps here.
    let marked: Vec<(&str, bool, u32)> = reply.pools[0]
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.weight_overridden, b.slow_start_percent))
        .collect();
    assert_eq!(marked, [("web1", true, 0), ("web2", false, 0)]);
    eventually("weight 42", Duration::from_secs(5), || {
        weight(&r.sim, "127.0.3.1") == Some(42)
    })
    .await;
    let e = c
        .set_frontend_pool_backend_weight(pb::SetWeightRequest {
            frontend: "www".into(),
            pool: "primary".into(),
            backend: "web1".into(),
            weight: 101,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // The wire value is checked, not a truncation of it (2^32 + 5 is not 5).
    let e = c
        .set_frontend_pool_backend_weight(pb::SetWeightRequest {
            frontend: "www".into(),
            pool: "primary".into(),
            backend: "web1".into(),
            weight: (1 << 32) + 5,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    // A dry run shows the plan and sends nothing.
    let report = c
        .sync_vpplb_state(pb::SyncVpplbStateRequest {
            frontend: String::new(),
            dry_run: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(report.dry_run && report.applied.is_none());

    // Metrics: every family, with the values of the moment.
    let m = scrape(&r.daemon.metrics).await;
    let backend_scope = [
        "maglev_backend_state{backend=\"web1\",state=\"up\"} 1",
        "maglev_backend_state{backend=\"web2\",state=\"down\"} 1",
        "maglev_backend_health{backend=\"web1\"} 1",
        "maglev_backend_enabled{backend=\"web1\"} 1",
        "maglev_frontend_pool_backend_weight{frontend=\"www\",pool=\"primary\",backend=\"web1\",kind=\"effective\"} 42",
        "maglev_backend_transitions_total{backend=\"web2\",from=\"up\",to=\"down\"} 1",
        "maglev_probe_total{backend=\"web1\",type=\"http\",result=\"pass\",code=\"L7OK\"}",
        "maglev_probe_duration_seconds_bucket{",
    ];
    let frontend_scope = [
        "maglev_frontend_state{frontend=\"www\",state=\"up\"} 1",
        "maglev_frontend_panic{frontend=\"www\"} 0",
        "maglev_frontend_backends{frontend=\"www\",state=\"up\"} 1",
        "maglev_frontend_backends{frontend=\"www\",state=\"down\"} 1",
        "maglev_frontend_backends{frontend=\"www\",state=\"removed\"} 0",
        "maglev_frontend_serving_backends{frontend=\"www\"} 1",
        "maglev_vip_packets_total{frontend=\"www\",kind=\"first_packet\"} 0",
    ];
    let global_scope = [
        "maglev_vpp_connected 1",
        "maglev_vpp_lbsync_total{scope=\"vip\",kind=\"as_weight_updated\"}",
        "maglev_vpp_api_total{msg=\"lb_as_set_weight\",direction=\"send\",result=\"success\"}",
        "maglev_vpp_info{version=",
        "maglev_vpp_uptime_seconds ",
        "maglev_build_info{version=",
        "maglev_config_last_reload_successful 1",
        "maglev_config_reloads_total{result=\"success\"} 1",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_start_time_seconds ",
        "grpc_server_handled_total{grpc_service=\"maglev.Maglev\",grpc_method=\"PauseBackend\",grpc_code=\"FailedPrecondition\"} 1",
        "grpc_server_started_total{grpc_service=\"maglev.Maglev\",grpc_method=\"GetFrontend\"}",
        "grpc_server_handling_seconds_bucket{",
        "maglev_probes_in_flight ",
        "maglev_probe_in_flight_limit ",
        "maglev_probe_lag_seconds_bucket{",
    ];
    let scopes = [
        ("global", &global_scope[..]),
        ("frontend", &frontend_scope[..]),
        ("backend", &backend_scope[..]),
    ];
    for line in scopes.iter().flat_map(|(_, lines)| lines.iter()) {
        assert!(m.contains(line), "/metrics lacks {line}\n{m}");
    }
    alert_rules_check(&m);
    // The classic text format without an Accept header (promtool reads
    // it), OpenMetrics when asked for.
    promtool_check(&m);
    // `?scope=` serves its families and no others, in both formats.
    let mut families = std::collections::BTreeMap::new();
    for (name, lines) in scopes {
        let path = format!("/metrics?scope={name}");
        let (status, _, body) = get(&r.daemon.metrics, &path, "").await;
        let text = String::from_utf8(body).unwrap();
        assert_eq!(status, 200, "{path}: {text}");
        for (other, others) in scopes {
            for line in others {
                assert_eq!(
                    text.contains(line),
                    other == name,
                    "{path} and {line} (scope {other})\n{text}"
                );
            }
        }
        promtool_check(&text);
        for family in text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|t| t.split_whitespace().next())
        {
            families.insert(family.to_string(), name);
        }
        let (_, _, om) = get(
            &r.daemon.metrics,
            &path,
            "Accept: application/openmetrics-text; version=1.0.0\r\n",
        )
        .await;
        let om = String::from_utf8(om).unwrap();
        assert!(om.ends_with("# EOF\n") && om.contains(lines[0]), "{om}");
    }
    user_guide_metrics_check(&families);
    let (status, _, body) = get(&r.daemon.metrics, "/metrics?scope=global,pools", "").await;
    assert_eq!(
        (status, String::from_utf8(body).unwrap()),
        (
            400,
            "/metrics?scope=: unknown scope \"pools\": expected global, frontend, backend\n"
                .to_string()
        )
    );
    // Gzip for whoever takes it (Prometheus does).
    let (status, headers, body) = get(
        &r.daemon.metrics,
        "/metrics?scope=global&scope=backend",
        "Accept-Encoding: gzip\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.contains("content-encoding: gzip"), "{headers}");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text).unwrap();
    assert!(
        text.contains(global_scope[0]) && text.contains(backend_scope[2]),
        "{text}"
    );
    assert!(!text.contains(frontend_scope[0]), "{text}");
    assert!(
        body.len() < text.len(),
        "{} gzipped to {}",
        text.len(),
        body.len()
    );
    promtool_check(&text);
    // A scrape never waits for VPP: with VPP hung and a sync stuck on it,
    // /metrics still answers at once (it used to wait up to the call
    // timeout, and made VPP calls of its own).
    r.sim.set_stalled(true);
    let mut stuck = c.clone();
    let sync = tokio::spawn(async move {
        let _ = stuck
            .sync_vpplb_state(pb::SyncVpplbStateRequest {
                frontend: String::new(),
                dry_run: true,
            })
            .await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let m = scrape(&r.daemon.metrics).await;
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "a scrape waited {:?} for a hung VPP",
        t.elapsed()
    );
    assert!(
        m.contains("maglev_backend_health{backend=\"web1\"} 1"),
        "{m}"
    );
    // Nor do the list reads, while a dump of VPP hangs with them (dumps
    // and lists take their turns apart).
    let mut dumper = c.clone();
    let dump = tokio::spawn(async move {
        let _ = dumper.get_vpplb_state(pb::GetVpplbStateRequest {}).await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let lists = (
        c.list_frontends(pb::ListFrontendsRequest {}).await.unwrap(),
        c.list_backends(pb::ListBackendsRequest {}).await.unwrap(),
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "lists waited {:?} for a hung VPP",
        t.elapsed()
    );
    assert_eq!(
        (
            lists.0.get_ref().frontends.len(),
            lists.1.get_ref().backends.len()
        ),
        (1, 2)
    );
    r.sim.set_stalled(false);
    dump.abort();
    sync.abort();
    let om = scrape_openmetrics(&r.daemon.metrics).await;
    assert!(
        om.contains("# TYPE maglev_probe counter") && om.trim_end().ends_with("# EOF"),
        "{om}"
    );

    // Reflection lists the service.
    let channel = tonic::transport::Channel::from_shared(r.daemon.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut refl =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut resp = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let listed = format!("{:?}", resp.message().await.unwrap().unwrap());
    assert!(
        listed.contains("maglev.Maglev") && listed.contains("grpc.health.v1.Health"),
        "{listed}"
    );
    // And v1alpha, which grpcui, Postman and Python's client still ask.
    let channel = tonic::transport::Channel::from_shared(r.daemon.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut refl =
        tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient::new(
            channel,
        );
    let req = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut resp = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let listed = format!("{:?}", resp.message().await.unwrap().unwrap());
    assert!(listed.contains("maglev.Maglev"), "v1alpha: {listed}");

    // Watch: the current state of every frontend comes first.
    let mut stream = c
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    match first.event {
        Some(pb::event::Event::Frontend(f)) => {
            assert_eq!((f.frontend.as_str(), f.from == f.to), ("www", true))
        }
        other => panic!("{other:?}"),
    }

    // Log records at the subscriber's own level, with backend transitions.
    let mut watch = c
        .watch_events(pb::WatchEventsRequest {
            log: true,
            log_level: "info".into(),
            backend: true,
            frontend: false,
        })
        .await
        .unwrap()
        .into_inner();
    c.pause_backend(pb::BackendActionRequest {
        name: "web1".into(),
    })
    .await
    .unwrap();
    let (mut saw_log, mut saw_backend) = (false, false);
    while !(saw_log && saw_backend) {
        let ev = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .expect("events arrive")
            .unwrap()
            .unwrap();
        match ev.event {
            Some(pb::event::Event::Log(l)) => {
                assert_ne!(l.level, "debug", "below the subscriber's level");
                if l.fields.get("event").map(String::as_str) == Some("backend-transition") {
                    saw_log = true;
                }
            }
            Some(pb::event::Event::Backend(b)) => {
                assert_eq!(
                    (b.backend.as_str(), b.transition.unwrap().to.as_str()),
                    ("web1", "paused")
                );
                saw_backend = true;
            }
            Some(pb::event::Event::Frontend(f)) => {
                assert_eq!(f.from, f.to, "only the initial states")
            }
            other => panic!("{other:?}"),
        }
    }
    let e = c
        .watch_events(pb::WatchEventsRequest {
            log: true,
            log_level: "loud".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // At debug a subscriber gets the daemon's own records, never the
    // transport's: those fed on themselves (every record sent logged h2
    // frames, ~4,500 records/s and 80 % CPU per subscriber).
    let mut watch = c
        .watch_events(pb::WatchEventsRequest {
            log: true,
            log_level: "debug".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut records = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(Ok(ev))) = tokio::time::timeout_at(until, watch.message())
        .await
        .map(|m| m.transpose())
    {
        if let Some(pb::event::Event::Log(l)) = ev.event {
            assert!(l.target.starts_with("maglev"), "transport record: {l:?}");
            records += 1;
        }
    }
    assert!(records < 500, "{records} records in a second at debug");
    drop(watch);
    c.resume_backend(pb::BackendActionRequest {
        name: "web1".into(),
    })
    .await
    .unwrap();

    // A broken file on SIGHUP changes nothing; ReloadConfig says why.
    std::fs::write(&r.config, "maglev: [ broken\n").unwrap();
    let pid = r.daemon.child.id();
    Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = c
        .reload_config(pb::ReloadConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        !res.ok && !res.parse_error.is_empty() && res.semantic_error.is_empty(),
        "{res:?}"
    );
    let f = c
        .get_frontend(pb::GetFrontendRequest { name: "www".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.pools[0].backends.len(), 2, "old config still in force");
    std::fs::write(&r.config, "maglev:\n  backends: {}\n").unwrap();
    let res = c
        .reload_config(pb::ReloadConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        !res.ok && res.parse_error.is_empty() && !res.semantic_error.is_empty(),
        "{res:?}"
    );

    // CheckConfig never reads a file the client names: a secret next to
    // the config is refused without a word of its contents, and so is a
    // FIFO (which used to freeze the daemon).
    let secret = r.dir.path().join("secret.key");
    std::fs::write(&secret, "TOP-SECRET-KEY-MATERIAL\n").unwrap();
    let fifo = r.dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for path in [&secret, &fifo] {
        let e = c
            .check_config(pb::CheckConfigRequest {
                path: path.display().to_string(),
                content: Vec::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        assert!(!e.message().contains("TOP-SECRET"), "{e:?}");
    }
    // Its own path, given explicitly, is fine (the broken file above).
    let own = c
        .check_config(pb::CheckConfigRequest {
            path: r.config.display().to_string(),
            content: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!own.ok && !own.semantic_error.is_empty(), "{own:?}");
    // Another config is sent as content.
    let sent = c
        .check_config(pb::CheckConfigRequest {
            path: String::new(),
            content: b"maglev:\n  vpp: { lb: { ipv4-src-address: 192.0.2.1, ipv6-src-address: '2001:db8::1' } }\n  backends: { a: { address: 127.0.0.1 } }\n".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(sent.ok, "{sent:?}");
    let e = c
        .check_config(pb::CheckConfigRequest {
            path: String::new(),
            content: vec![b'#'; (1 << 20) + 1],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    // A restarted VPP gets everything again.
    r.sim.restart();
    eventually(
        "resynced after a VPP restart",
        Duration::from_secs(10),
        || weight(&r.sim, "127.0.3.1") == Some(42),
    )
    .await;
    let _ = &r.dir;
}
