//! maglevc one-shot against a real maglevd (static backends) and the
//! simulator: text output with colour off, JSON shapes, exit codes.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn maglevd_bin() -> PathBuf {
    // maglevd is a sibling binary in the same target directory.
    let me = PathBuf::from(env!("CARGO_BIN_EXE_maglevc"));
    me.with_file_name("maglevd")
}

struct Rig {
    _dir: tempfile::TempDir,
    _sim: Kill,
    _daemon: Kill,
    server: String,
}

fn rig() -> Rig {
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
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_maglevc"));
        c.args(["--server", &self.server, "--color", "false"]);
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn one_shot_commands() {
    let r = rig();
    let o = r.run(&["show", "frontends"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        text(&o),
        "NAME  ADDRESS       PROTOCOL  PORT  STATE  ACTIVE POOL\nwww   203.0.113.80  tcp       443   up     primary\n"
    );
    // Prefixes.
    let o = r.run(&["sh", "ba"]);
    let t = text(&o);
    assert!(
        t.starts_with("NAME  ADDRESS    STATE  ENABLED  CHECK   LAST\n"),
        "{t}"
    );
    assert!(
        t.contains("s1    10.0.0.2   up     true     static  STATIC"),
        "{t}"
    );

    let o = r.run(&["show", "frontend", "www"]);
    let t = text(&o);
    assert!(
        t.contains("  s1              10.0.0.2   up     60      60         392"),
        "{t}"
    );
    assert!(t.contains("primary (active)"), "{t}");

    // The predicted table matches VPP's buckets (392/632 for 60/100 of 1024).
    let t = text(&r.run(&["show", "frontend", "www", "buckets"]));
    assert!(t.contains("s1       10.0.0.2   392      38.3%"), "{t}");
    assert!(t.contains("s2       10.0.0.10  632      61.7%"), "{t}");
    let t = text(&r.run(&["lookup", "frontend", "www", "198.51.100.7:40000"]));
    assert!(
        t.starts_with("198.51.100.7:40000 -> 203.0.113.80:443: slot "),
        "{t}"
    );

    // JSON shape.
    let o = r.run(&["-o", "json", "show", "backend", "s2"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "s2");
    assert_eq!(v["state"], "up");
    assert_eq!(v["check_type"], "static");
    assert!(v["transitions"].is_array() && v["frontends"][0] == "www");

    // Writes and dry runs.
    let o = r.run(&[
        "set", "frontend", "www", "pool", "primary", "backend", "s1", "weight", "100",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = r.run(&["sync", "vpp", "lb", "state", "--dry-run"]);
    assert_eq!(text(&o), "in sync: nothing to do\n");
    let o = r.run(&["-o", "json", "config", "check"]);
    assert_eq!(o.status.code(), Some(0));

    // Exit codes: 1 with the server's message only, 2 for usage.
    let o = r.run(&["show", "backend", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "no such backend: nope\n"
    );
    let o = r.run(&["set", "backend", "s1", "pause"]);
    assert_eq!(o.status.code(), Some(0));
    let o = r.run(&["set", "backend", "s1", "dis"]);
    assert_eq!(o.status.code(), Some(0));
    let o = r.run(&["set", "backend", "s1", "pause"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "s1: backend is disabled; enable it first\n"
    );
    let o = r.run(&["show", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown word \"bogus\""));
    let o = r.run(&["--output", "yaml", "show", "frontends"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn watch_events_num_3_returns_after_three_events() {
    let r = rig();
    let watcher = r
        .cmd()
        .args(["watch", "events", "num", "3", "backend", "frontend"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        r.run(&["set", "backend", "s1", "disable"]).status.code(),
        Some(0)
    );
    assert_eq!(
        r.run(&["set", "backend", "s1", "enable"]).status.code(),
        Some(0)
    );
    let out = watcher.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["type"], "frontend", "the current state first");
    assert_eq!(
        (&lines[1]["type"], &lines[1]["to"]),
        (&"backend".into(), &"disabled".into())
    );
}

#[test]
fn unreachable_server_is_exit_1() {
    let o = Command::new(env!("CARGO_BIN_EXE_maglevc"))
        .args([
            "--server",
            &format!("127.0.0.1:{}", free_port()),
            "--color",
            "false",
            "show",
            "frontends",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("cannot reach maglevd at 127.0.0.1:"));
}
