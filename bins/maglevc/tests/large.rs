//! maglevc against a large config: answers past tonic's default 4 MiB
//! message limit (a `ListBackends` of 64,000 backends is 8.8 MB), which
//! refused `show backends` at that size.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, maglevd_bin, Kill};

const FRONTENDS: usize = 1000;
const PER_FRONTEND: usize = 64;

#[test]
fn show_backends_of_sixty_four_thousand() {
    let dir = tempfile::tempdir().unwrap();
    let y = maglev_testkit::static_config(FRONTENDS, PER_FRONTEND, "");
    let config = dir.path().join("maglev.yaml");
    std::fs::write(&config, y).unwrap();
    let port = free_port();
    let _daemon = Kill(
        Command::new(maglevd_bin())
            .arg("--config")
            .arg(&config)
            .args(["--grpc-addr", &format!("127.0.0.1:{port}")])
            .args(["--vpp-api-addr", "", "--vpp-stats-addr", ""])
            .args(["--metrics-addr", ""])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let server = format!("127.0.0.1:{port}");
    let maglevc = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_maglevc"))
            .args(["--server", &server, "-o", "json"])
            .args(args)
            .output()
            .unwrap()
    };
    // Every backend up, with its first result and transition (each adds
    // to the answer's size).
    let last = format!("b{}-{}", FRONTENDS - 1, PER_FRONTEND - 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = maglevc(&["show", "backend", &last]);
        if String::from_utf8_lossy(&o.stdout).contains("\"state\":\"up\"") {
            break;
        }
        assert!(Instant::now() < deadline, "{last} never came up");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The last backend's loop need not be the last to run (the probe
    // threads take backends in turn): the answer is awaited whole.
    let all_up = |v: &serde_json::Value| {
        v["backends"].as_array().is_some_and(|b| {
            b.iter()
                .all(|b| b["state"] == "up" && b["last_result"].is_object())
        })
    };
    let v = loop {
        let out = maglevc(&["show", "backends"]);
        assert!(
            out.status.success(),
            "show backends failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if all_up(&v) {
            break v;
        }
        assert!(Instant::now() < deadline, "not every backend came up");
        std::thread::sleep(Duration::from_millis(200));
    };
    let n = v
        .as_array()
        .or_else(|| v["backends"].as_array())
        .map_or(0, Vec::len);
    assert_eq!(n, FRONTENDS * PER_FRONTEND, "{}", &v.to_string()[..200]);
}
