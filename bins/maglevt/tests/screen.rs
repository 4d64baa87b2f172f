//! maglevt as a process on a pseudo-terminal, read back through a VT100
//! emulator (what tmux's capture-pane shows): every VIP in the table, the
//! tally, pause, quit and SIGTERM with the terminal restored. When tmux is
//! installed the same is checked in a real tmux pane at 80×24.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use maglev_testkit::Pty;

/// A local HTTP server answering with `X-IPng-Frontend: <names in turn>`.
fn http_server(names: &'static [&'static str]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (i, s) in l.incoming().enumerate() {
            let Ok(mut s) = s else { continue };
            let name = names[i % names.len()];
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 204 No Content\r\nX-IPng-Frontend: {name}\r\nConnection: close\r\n\r\n"
                );
            });
        }
    });
    port
}

/// A config with three VIPs on loopback: two HTTP servers and a plain TCP
/// listener (probed by connect: `--kind` is not needed, its backend has
/// no HTTP check).
fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let web = http_server(&["nginx0", "nginx1"]);
    let api = http_server(&["api0"]);
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    std::thread::spawn(move || for _ in tcp.incoming() {});
    let path = dir.join("maglev.yaml");
    std::fs::write(
        &path,
        format!(
            "maglev:
  vpp:
    lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }}
  healthchecks:
    web: {{ type: http, port: 80 }}
    conn: {{ type: tcp, port: 25 }}
  backends:
    b1: {{ address: 10.0.0.1, healthcheck: web }}
    c1: {{ address: 10.0.0.2, healthcheck: conn }}
  frontends:
    web:
      address: 127.0.0.1
      port: {web}
      pools: [{{ name: p, backends: {{ b1: {{}} }} }}]
    api:
      address: 127.0.0.1
      port: {api}
      pools: [{{ name: p, backends: {{ b1: {{}} }} }}]
    plain-tcp:
      address: 127.0.0.1
      port: {tcp_port}
      pools: [{{ name: p, backends: {{ c1: {{}} }} }}]
"
        ),
    )
    .unwrap();
    path
}

/// maglevt on a 100×30 terminal, read through a VT100 emulator.
struct Tui {
    pty: Pty,
    vt: vt100::Parser,
}

impl Tui {
    fn spawn(args: &[&str]) -> Tui {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_maglevt"));
        cmd.args(args)
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR");
        Tui {
            pty: Pty::spawn(cmd, 100, 30),
            vt: vt100::Parser::new(30, 100, 0),
        }
    }

    /// Waits until the screen satisfies `ok`; returns the screen.
    fn until(&mut self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let chunk = self.pty.recv(Duration::from_millis(50));
            self.vt.process(&chunk);
            let screen = self.vt.screen().contents();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {what}; screen:\n{screen}"
            );
        }
    }

    fn exit(&mut self) -> Option<i32> {
        let vt = &mut self.vt;
        self.pty
            .wait_exit(Duration::from_secs(10), |b| vt.process(b))
    }
}

/// The table row of `name` shows a positive N (third column from the end:
/// N, FAIL, LAST).
fn probed(screen: &str, name: &str) -> bool {
    screen.lines().any(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        cols.first() == Some(&name)
            && cols.len() >= 10
            && cols[cols.len() - 3].parse::<u64>().is_ok_and(|n| n > 0)
    })
}

#[test]
fn every_vip_on_screen_pause_and_quit_restore_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let udp = dir.path().join("udp.yaml");
    std::fs::write(
        &udp,
        "maglev:
  vpp:
    lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }
  backends:
    d1: { address: 10.0.0.53 }
  frontends:
    dns:
      address: 127.0.0.1
      protocol: udp
      port: 53
      pools: [{ name: p, backends: { d1: {} } }]
",
    )
    .unwrap();
    let both = format!("{},{}", cfg.display(), udp.display());
    let mut t = Tui::spawn(&["--config", &both, "--interval", "50ms"]);
    let screen = t.until("every VIP probed", |s| {
        ["api", "plain-tcp", "web"].iter().all(|n| probed(s, n)) && s.contains("nginx1")
    });
    assert!(t.vt.screen().alternate_screen());
    assert!(screen.contains("3 VIPs"), "{screen}");
    assert!(screen.contains("Answered by (X-IPng-Frontend)"), "{screen}");
    assert!(screen.contains("api0 "), "{screen}");
    assert!(screen.contains("Errors: none"), "{screen}");
    let kinds: Vec<&str> = screen
        .lines()
        .filter(|l| probed(l, "plain-tcp") || probed(l, "web"))
        .map(|l| l.split_whitespace().nth(2).unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["tcp", "http"], "{screen}");
    t.pty.send(b"p");
    t.until("PAUSED", |s| {
        s.lines().next().is_some_and(|l| l.contains("PAUSED"))
    });
    // Reset while paused: every counter back to 0, the tally empty.
    t.pty.send(b"r");
    t.until("counters reset", |s| {
        s.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.first() == Some(&"web") && cols.len() >= 10 && cols[cols.len() - 3] == "0"
        }) && !s.contains("nginx1")
    });
    t.pty.send(b"q");
    assert_eq!(t.exit(), Some(0));
    assert!(!t.vt.screen().alternate_screen(), "alternate screen left");
    // The skipped UDP VIP is reported once the screen is gone.
    let after = t.vt.screen().contents();
    assert!(after.contains("not probing dns: udp VIP"), "{after}");
}

#[test]
fn sigterm_restores_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut t = Tui::spawn(&["--config", cfg.to_str().unwrap()]);
    t.until("the table", |s| s.contains("NAME"));
    assert!(t.vt.screen().alternate_screen());
    let pid = nix::unistd::Pid::from_raw(i32::try_from(t.pty.child.0.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(t.exit(), Some(0));
    assert!(!t.vt.screen().alternate_screen());
}

#[test]
fn bad_input_is_named_before_the_screen() {
    let o = Command::new(env!("CARGO_BIN_EXE_maglevt"))
        .args(["--config", "/nonexistent/maglev.yaml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/nonexistent/maglev.yaml") && err.contains("cannot read file"),
        "{err}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_maglevt"))
        .args(["--interval", "fast"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--interval"));
}

/// Kills its tmux server when dropped, also when the test fails.
struct TmuxServer(std::path::PathBuf);

impl TmuxServer {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.0)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for TmuxServer {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The same screen in a real tmux pane at 80×24, when tmux is installed;
/// and when tmux goes away (its terminal hangs up) maglevt exits instead
/// of lingering.
#[test]
fn in_tmux_when_available() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("tmux not installed: the pty test covers the screen");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let tmux = TmuxServer(dir.path().join("tmux.sock"));
    let cmd = format!(
        "exec {} --config {}",
        env!("CARGO_BIN_EXE_maglevt"),
        cfg.display()
    );
    let o = tmux.run(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-x",
        "80",
        "-y",
        "24",
        &cmd,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pid = String::from_utf8_lossy(&tmux.run(&["list-panes", "-F", "#{pane_pid}"]).stdout)
        .trim()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pane = String::from_utf8_lossy(&tmux.run(&["capture-pane", "-p"]).stdout).into_owned();
        if ["api", "plain-tcp", "web"].iter().all(|n| probed(&pane, n)) {
            assert!(pane.contains("q quit"), "{pane}");
            assert!(pane.lines().all(|l| l.chars().count() <= 80), "{pane}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tmux pane never showed every VIP:\n{pane}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists(), "pane pid {pid}");
    tmux.run(&["kill-server"]);
    // Gone, or a zombie waiting for whoever adopted it to reap it.
    let running = || {
        std::fs::read_to_string(proc_dir.join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while running() {
        assert!(
            Instant::now() < deadline,
            "maglevt (pid {pid}) is still running after its terminal went away"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn version_names_commit_and_date() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_maglevt"))
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with(concat!("maglevt ", env!("CARGO_PKG_VERSION"), " (commit "))
            && text.contains(", built 20"),
        "{text}"
    );
}
