//! A real Prometheus scrapes maglevd with the scrape config and the alert
//! rules docs/operations.md recommends: both jobs come up (OpenMetrics,
//! gzip, `?scope=` as Prometheus sends them), each job holds its scope's
//! series and no others, and every rule evaluates without error.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use maglev_testkit::{free_port, Kill};
use maglev_vppsim::{SimOptions, Simulator};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The first ```yaml block of docs/operations.md that starts with `head`.
fn doc_block(head: &str) -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/operations.md"
    ))
    .unwrap();
    let start = doc
        .find(&format!("```yaml\n{head}"))
        .unwrap_or_else(|| panic!("docs/operations.md has no ```yaml block starting {head}"));
    let block = &doc[start + "```yaml\n".len()..];
    block[..block.find("```").unwrap()].to_string()
}

/// `GET path` on Prometheus's API, the JSON `data`.
async fn api(addr: &str, path: &str) -> Option<Value> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    // HTTP/1.0: the body as it is, not chunked.
    let req = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let (_, body) = out.split_once("\r\n\r\n")?;
    let v: Value = serde_json::from_str(body).ok()?;
    (v["status"] == "success").then(|| v["data"].clone())
}

/// The value of `query` by series, as `job/backend-or-frontend`.
async fn series(addr: &str, query: &str) -> Vec<String> {
    let q: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect();
    let data = api(addr, &format!("/api/v1/query?query={q}"))
        .await
        .unwrap_or_else(|| panic!("query {query} failed"));
    let mut out: Vec<String> = data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let m = &r["metric"];
            let what = m["backend"]
                .as_str()
                .or(m["frontend"].as_str())
                .unwrap_or("");
            format!("{}/{what}", m["job"].as_str().unwrap())
        })
        .collect();
    out.sort();
    out
}

fn prometheus() -> Option<String> {
    let p = std::env::var("MAGLEV_PROMETHEUS").unwrap_or_else(|_| "prometheus".to_string());
    let runs = Command::new(&p)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        return Some(p);
    }
    assert!(
        std::env::var("MAGLEV_REQUIRE_PROMTOOL").map_or(true, |v| v != "1"),
        "prometheus (Debian package prometheus) required but {p} does not run"
    );
    eprintln!("*** SKIPPED: no runnable {p} (Debian package prometheus) ***");
    None
}

fn write_config(path: &Path, targets: &str, rules: &Path) {
    let scrape = doc_block("scrape_configs:")
        .replace("lb1.example.net:9091", targets)
        .replace("scrape_interval: 60s", "scrape_interval: 2s")
        .replace("scrape_timeout: 30s", "scrape_timeout: 2s");
    assert!(
        scrape.contains(targets) && !scrape.contains("60s"),
        "{scrape}"
    );
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n{scrape}",
        rules.display()
    );
    std::fs::write(path, config).unwrap();
}

#[tokio::test]
async fn prometheus_scrapes_both_scopes_and_evaluates_the_rules() {
    let Some(prometheus) = prometheus() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let api_sock = dir.path().join("api.sock");
    let stats = dir.path().join("stats.sock");
    let _sim = Simulator::start(SimOptions {
        api_socket: api_sock.clone(),
        stats_socket: Some(stats.clone()),
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
    s1: { address: 127.0.11.1 }
    s2: { address: 127.0.11.2 }
  frontends:
    www: { address: 127.0.11.80, port: 80, pools: [ { name: p, backends: { s1: {}, s2: {} } } ] }
",
    )
    .unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let _maglevd = Kill(
        Command::new(env!("CARGO_BIN_EXE_maglevd"))
            .arg("--config")
            .arg(&cfg)
            .args(["--grpc-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--metrics-addr", &metrics])
            .arg("--vpp-api-addr")
            .arg(&api_sock)
            .arg("--vpp-stats-addr")
            .arg(&stats)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, doc_block("groups:")).unwrap();
    let config = dir.path().join("prometheus.yml");
    write_config(&config, &metrics, &rules);
    let web = format!("127.0.0.1:{}", free_port());
    let log = dir.path().join("prometheus.log");
    let _prometheus = Kill(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );

    // Both jobs up: Prometheus took the body (gzipped, OpenMetrics) and
    // sent the params the docs give. (Its discovery hands targets over
    // after 5 s.)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let targets = api(&web, "/api/v1/targets").await;
        let active = targets
            .as_ref()
            .and_then(|t| t["activeTargets"].as_array().cloned())
            .unwrap_or_default();
        let up = active.iter().filter(|t| t["health"] == "up").count();
        if active.len() == 2 && up == 2 {
            for t in &active {
                let url = t["scrapeUrl"].as_str().unwrap();
                assert!(url.contains("scope="), "{url}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "targets not up: {active:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each job has its scope's series and no others (once maglevd has
    // programmed VPP and a scrape after that has landed).
    let checks: [(&str, &[&str]); 6] = [
        (
            "maglev_backend_health",
            &["maglev-backends/s1", "maglev-backends/s2"],
        ),
        ("maglev_frontend_serving_backends == 2", &["maglev/www"]),
        ("maglev_frontend_state{state=\"up\"}", &["maglev/www"]),
        ("maglev_vpp_connected", &["maglev/"]),
        (
            "maglev_vip_packets_total{kind=\"no_server\"}",
            &["maglev/www"],
        ),
        ("process_open_fds", &["maglev/"]),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    for (q, want) in checks {
        loop {
            let got = series(&web, q).await;
            if got == want {
                break;
            }
            assert!(Instant::now() < deadline, "{q}: {got:?}, want {want:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Every recommended rule evaluated, without error, on what was scraped.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let groups = api(&web, "/api/v1/rules").await.unwrap_or_default();
        let rules: Vec<Value> = groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let bad: Vec<&Value> = rules.iter().filter(|r| r["health"] == "err").collect();
        assert!(bad.is_empty(), "rules failed: {bad:?}");
        let evaluated = rules.iter().filter(|r| r["health"] == "ok").count();
        if !rules.is_empty() && evaluated == rules.len() {
            assert!(evaluated >= 8, "{rules:?}");
            // A healthy daemon: nothing fires.
            let firing: Vec<&Value> = rules.iter().filter(|r| r["state"] == "firing").collect();
            assert!(firing.is_empty(), "{firing:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rules never evaluated: {rules:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
