//! The test rig: the simulator and maglevd as processes, static backends
//! s1 (weight 60) and s2 (weight 100) behind frontend www.

#![allow(dead_code)] // each test binary uses part of it

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use maglev_testkit::{free_port, Kill};

pub fn maglevd_bin() -> PathBuf {
    // maglevd is a sibling binary in the same target directory.
    let me = PathBuf::from(env!("CARGO_BIN_EXE_maglevc"));
    me.with_file_name("maglevd")
}

pub struct Rig {
    _dir: tempfile::TempDir,
    _sim: Kill,
    _daemon: Kill,
    pub server: String,
    /// maglevd's config file.
    pub config: PathBuf,
}

pub fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api.sock");
    let sim_bin = maglevd_bin().with_file_name("maglev-vppsim");
    let sim = Kill(
        Command::new(&sim_bin)
            .arg("--api-socket")
            .arg(&api)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (build it: cargo build -p maglev-vppsim)",
                    sim_bin.display()
                )
            }),
    );
    let config = dir.path().join("maglev.yaml");
    std::fs::write(
        &config,
        "maglev:
  vpp:
    lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1', startup-min-delay: 0, startup-max-delay: 0 }
  backends:
    s1: { address: 10.0.0.2 }
    s2: { address: 10.0.0.10 }
  frontends:
    www:
      address: 203.0.113.80
      port: 443
      pools:
        - { name: primary, backends: { s1: { weight: 60 }, s2: {} } }
",
    )
    .unwrap();
    let port = free_port();
    let daemon = Kill(
        Command::new(maglevd_bin())
            .arg("--config")
            .arg(&config)
            .args([
                "--grpc-addr",
                &format!("127.0.0.1:{port}"),
                "--metrics-addr",
                "",
                "--vpp-stats-addr",
                "",
            ])
            .arg("--vpp-api-addr")
            .arg(&api)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rig = Rig {
        _dir: dir,
        _sim: sim,
        _daemon: daemon,
        server: format!("127.0.0.1:{port}"),
        config,
    };
    // Ready when VPP has the VIP's buckets.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let o = rig.run(&["-o", "json", "show", "frontend", "www"]);
        if o.status.success() && String::from_utf8_lossy(&o.stdout).contains("\"vpp_buckets\":392")
        {
            break;
        }
        assert!(Instant::now() < deadline, "maglevd never programmed VPP");
        std::thread::sleep(Duration::from_millis(100));
    }
    rig
}

impl Rig {
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_maglevc"));
        c.args(["--server", &self.server, "--color", "false"]);
        c
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
}
