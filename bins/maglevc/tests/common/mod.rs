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
    dir: tempfile::TempDir,
    _sim: Kill,
    daemon: Kill,
    /// The unix socket (admin).
    pub server: String,
    /// The TCP address (read-only).
    pub tcp: String,
    /// maglevd's config file.
    pub config: PathBuf,
    /// Flags every maglevc call gets after --server.
    pub client: Vec<String>,
}

/// How maglevd listens and maglevc connects; `{dir}` (the rig's
/// directory) and `{port}` (a free TCP port) are filled in.
pub struct Setup {
    /// maglevd's --grpc-addr.
    pub grpc_addr: String,
    /// More maglevd flags.
    pub extra: Vec<String>,
    /// maglevc's --server.
    pub server: String,
    /// More maglevc flags.
    pub client: Vec<String>,
}

impl Default for Setup {
    fn default() -> Self {
        // The unix socket makes this user admin; TCP stays read-only.
        Setup {
            grpc_addr: "unix:{dir}/maglevd.sock,127.0.0.1:{port}".to_string(),
            extra: Vec::new(),
            server: "unix:{dir}/maglevd.sock".to_string(),
            client: Vec::new(),
        }
    }
}

pub fn rig() -> Rig {
    rig_with(Setup::default())
}

pub fn rig_with(setup: Setup) -> Rig {
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
    let fill = |s: &str| {
        s.replace("{dir}", &dir.path().display().to_string())
            .replace("{port}", &port.to_string())
    };
    let daemon = Kill(
        Command::new(maglevd_bin())
            .arg("--config")
            .arg(&config)
            .args([
                "--grpc-addr",
                &fill(&setup.grpc_addr),
                "--vpp-stats-addr",
                "",
            ])
            .args(
                (!setup.extra.iter().any(|a| a == "--metrics-addr"))
                    .then_some(["--metrics-addr", ""])
                    .into_iter()
                    .flatten(),
            )
            .args(setup.extra.iter().map(|a| fill(a)))
            .arg("--vpp-api-addr")
            .arg(&api)
            .stderr(std::fs::File::create(dir.path().join("maglevd.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let rig = Rig {
        server: fill(&setup.server),
        tcp: format!("127.0.0.1:{port}"),
        client: setup.client.iter().map(|a| fill(a)).collect(),
        dir,
        _sim: sim,
        daemon,
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
        c.args(&self.client);
        c
    }

    /// The rig's directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// maglevd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maglevd.log")).unwrap_or_default()
    }

    /// Sends maglevd a signal (`-HUP`, `-TERM`).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.daemon.0.id().to_string()])
            .status();
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
}
