//! `cargo xtask bench access`: what a one-shot `maglevc show frontends`
//! costs over each kind of listener — plain TCP, TLS, TLS with a client
//! certificate (mTLS), and the unix socket — against a release maglevd
//! with the simulator. Two figures per kind: the whole process as a
//! runbook runs it, and connect + one RPC inside one process (no process
//! start), p50 and p99 over many runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maglev_access::tls::ClientTls;
use maglev_testkit::certs::Ca;
use maglev_testkit::{free_port, Kill};

const RUNS: usize = 200;

fn sibling(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_maglevc")).with_file_name(name)
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e3
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new(d, "bench");
    let server = ca.issue("server", "maglevd", &["localhost", "127.0.0.1"]);
    let client = ca.issue("client", "ops-bench", &[]);
    let api = d.join("api.sock");
    let _sim = Kill(
        Command::new(sibling("maglev-vppsim"))
            .arg("--api-socket")
            .arg(&api)
            .stderr(Stdio::null())
            .spawn()
            .expect("maglev-vppsim (cargo build --release -p maglev-vppsim)"),
    );
    let config = d.join("maglev.yaml");
    let mut y = String::from("maglev:\n  vpp:\n    lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1', startup-min-delay: 0, startup-max-delay: 0 }\n  backends:\n");
    for i in 0..20 {
        y.push_str(&format!("    b{i}: {{ address: 10.0.0.{} }}\n", i + 1));
    }
    y.push_str("  frontends:\n");
    for f in 0..10 {
        y.push_str(&format!(
            "    f{f}: {{ address: 192.0.2.{}, port: 80, pools: [ {{ name: p, backends: {{ b{}: {{}}, b{}: {{}} }} }} ] }}\n",
            f + 1,
            2 * f,
            2 * f + 1
        ));
    }
    std::fs::write(&config, y).unwrap();
    let (plain, tls, mtls) = (free_port(), free_port(), free_port());
    let socket = d.join("maglevd.sock");
    let p = |f: &Path| f.display().to_string();
    // Two daemons: one with TLS only (anonymous clients), one with mTLS.
    let start = |grpc: String, extra: Vec<String>| {
        Kill(
            Command::new(sibling("maglevd"))
                .arg("--config")
                .arg(&config)
                .args([
                    "--grpc-addr",
                    &grpc,
                    "--metrics-addr",
                    "",
                    "--vpp-stats-addr",
                    "",
                ])
                .arg("--vpp-api-addr")
                .arg(&api)
                .args(["--log-level", "warn"])
                .args(extra)
                .stderr(Stdio::null())
                .spawn()
                .expect("maglevd (cargo build --release -p maglevd)"),
        )
    };
    std::thread::sleep(Duration::from_millis(300));
    let tls_files = vec![
        "--tls-cert".to_string(),
        p(&server.cert),
        "--tls-key".to_string(),
        p(&server.key),
    ];
    let _a = start(
        format!(
            "unix:{},http://127.0.0.1:{plain},https://127.0.0.1:{tls}",
            p(&socket)
        ),
        tls_files.clone(),
    );
    let mut with_ca = tls_files;
    with_ca.extend([
        "--tls-client-ca".to_string(),
        p(&ca.cert()),
        "--admin-client".to_string(),
        "ops-*".to_string(),
    ]);
    let _b = start(format!("https://127.0.0.1:{mtls}"), with_ca);
    std::thread::sleep(Duration::from_millis(500));
    let anon = ClientTls {
        ca: Some(ca.cert()),
        ..Default::default()
    };
    let mutual = ClientTls {
        cert: Some(client.cert.clone()),
        key: Some(client.key.clone()),
        ..anon.clone()
    };
    let kinds: Vec<(&str, String, ClientTls)> = vec![
        (
            "plain TCP",
            format!("127.0.0.1:{plain}"),
            ClientTls::default(),
        ),
        ("TLS", format!("https://localhost:{tls}"), anon),
        ("mTLS", format!("https://localhost:{mtls}"), mutual),
        (
            "unix socket",
            format!("unix:{}", p(&socket)),
            ClientTls::default(),
        ),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| listener | maglevc process p50 | p99 | connect + ListFrontends p50 | p99 |");
    println!("|---|---|---|---|---|");
    for (name, addr, tls) in kinds {
        let mut args = vec!["--server".to_string(), addr.clone()];
        for (flag, v) in [
            ("--tls-ca", &tls.ca),
            ("--tls-cert", &tls.cert),
            ("--tls-key", &tls.key),
        ] {
            if let Some(v) = v {
                args.push(flag.to_string());
                args.push(p(v));
            }
        }
        let mut process = Vec::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            let o = Command::new(env!("CARGO_BIN_EXE_maglevc"))
                .args(&args)
                .args(["show", "frontends"])
                .output()
                .unwrap();
            process.push(t.elapsed());
            assert!(
                o.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let mut inproc = Vec::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            rt.block_on(async {
                let ch = maglev_access::dial::dial(&addr, &tls).await.unwrap();
                maglev_proto::maglev_client::MaglevClient::new(ch)
                    .list_frontends(maglev_proto::ListFrontendsRequest {})
                    .await
                    .unwrap();
            });
            inproc.push(t.elapsed());
        }
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            pct(process.clone(), 0.5),
            pct(process, 0.99),
            pct(inproc.clone(), 0.5),
            pct(inproc, 0.99)
        );
    }
}
