//! Real FD.io VPP for the real-VPP tests: finds the builds `cargo xtask vpp
//! build` left in the cache (or an installed VPP named by `MAGLEV_VPP_BIN`),
//! starts one instance per test group in its own run directory with its
//! own sockets, drives its CLI with `vppctl`, and stops it by PID.
//!
//! No DPDK and no hugepages: the packet generator (`pg`) is the only
//! interface, so the tests need nothing but root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Kill;

/// One VPP build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// `26.06`, `master`, or `installed`.
    pub name: String,
    /// The `vpp` binary.
    pub vpp: PathBuf,
    /// The `vppctl` binary.
    pub vppctl: PathBuf,
    /// The folder holding `lb_plugin.so`.
    pub plugins: PathBuf,
}

/// The cache `cargo xtask vpp build` fills (`MAGLEV_VPP_CACHE`, else
/// `~/.cache/maglev/vpp`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MAGLEV_VPP_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("maglev/vpp")
}

fn parse_ready(text: &str) -> Option<Install> {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    Some(Install {
        name: get("name")?,
        vpp: get("vpp")?.into(),
        vppctl: get("vppctl")?.into(),
        plugins: get("plugins")?.into(),
    })
}

/// Every usable VPP: the installed one when `MAGLEV_VPP_BIN` is set
/// (plugins from `MAGLEV_VPP_PLUGINS`, else next to it as Debian lays them
/// out), else each build in the cache.
pub fn installs() -> Vec<Install> {
    if let Some(bin) = std::env::var_os("MAGLEV_VPP_BIN").filter(|b| !b.is_empty()) {
        let vpp = PathBuf::from(bin);
        let dir = vpp.parent().unwrap_or(Path::new("/usr/bin")).to_path_buf();
        let plugins = std::env::var_os("MAGLEV_VPP_PLUGINS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                dir.parent()
                    .unwrap_or(Path::new("/usr"))
                    .join("lib/x86_64-linux-gnu/vpp_plugins")
            });
        return vec![Install {
            name: "installed".to_string(),
            vppctl: dir.join("vppctl"),
            vpp,
            plugins,
        }];
    }
    let mut out: Vec<Install> = std::fs::read_dir(cache_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("ready")).ok())
        .filter_map(|t| parse_ready(&t))
        .filter(|i| i.vpp.exists() && i.plugins.join("lb_plugin.so").exists())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The VPP called `name` (`26.06`, `master`; `installed` matches any name
/// when `MAGLEV_VPP_BIN` is set), or `None` after printing one loud
/// SKIPPED line. With `MAGLEV_REQUIRE_REAL_VPP=1` (CI) a missing VPP fails
/// the test instead.
pub fn install_or_skip(name: &str, test: &str) -> Option<Install> {
    let all = installs();
    if let Some(i) = all.iter().find(|i| i.name == name || i.name == "installed") {
        return Some(i.clone());
    }
    let why = format!(
        "no real VPP {name} (cache {}; run `cargo xtask vpp build` or set MAGLEV_VPP_BIN)",
        cache_dir().display()
    );
    if std::env::var("MAGLEV_REQUIRE_REAL_VPP").is_ok_and(|v| v == "1") {
        panic!("{test}: {why}, and MAGLEV_REQUIRE_REAL_VPP=1");
    }
    eprintln!("*** SKIPPED {test}: {why} ***");
    None
}

/// A running VPP.
#[derive(Debug)]
pub struct Vpp {
    /// Which build.
    pub install: Install,
    /// The run directory: sockets, `startup.conf`, `vpp.log`.
    pub dir: PathBuf,
    child: Option<Kill>,
    lb_plugin: bool,
}

impl Vpp {
    /// Starts `install` with its run directory under `parent` and waits
    /// for its API, stats and CLI sockets.
    pub fn start(install: &Install, parent: &Path) -> Vpp {
        Vpp::start_with(install, parent, true)
    }

    /// [`Vpp::start`], with or without the lb plugin.
    pub fn start_with(install: &Install, parent: &Path, lb_plugin: bool) -> Vpp {
        let dir = parent.join(format!("vpp-{}", install.name));
        std::fs::create_dir_all(&dir).expect("VPP run dir");
        let mut vpp = Vpp {
            install: install.clone(),
            dir,
            child: None,
            lb_plugin,
        };
        vpp.launch();
        vpp
    }

    /// The binary API socket.
    pub fn api_socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }

    /// The stats socket.
    pub fn stats_socket(&self) -> PathBuf {
        self.dir.join("stats.sock")
    }

    /// The debug CLI socket.
    pub fn cli_socket(&self) -> PathBuf {
        self.dir.join("cli.sock")
    }

    /// VPP's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|k| k.0.id())
    }

    fn launch(&mut self) {
        for s in [self.api_socket(), self.stats_socket(), self.cli_socket()] {
            let _ = std::fs::remove_file(s);
        }
        // A unique shared-memory prefix: several VPPs run side by side.
        let prefix = format!(
            "maglev-{}-{}",
            std::process::id(),
            self.dir
                .to_string_lossy()
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        );
        let d = self.dir.display();
        let conf = format!(
            "unix {{ nodaemon nosyslog cli-listen {d}/cli.sock log {d}/vpp.log runtime-dir {d} }}
api-segment {{ prefix {prefix} }}
socksvr {{ socket-name {d}/api.sock }}
statseg {{ socket-name {d}/stats.sock size 32m page-size 4k }}
memory {{ main-heap-size 1G main-heap-page-size 4k }}
buffers {{ buffers-per-numa 16384 default data-size 2048 page-size 4k }}
plugins {{ path {plugins} plugin default {{ disable }} plugin lb_plugin.so {{ {lb} }} }}
",
            plugins = self.install.plugins.display(),
            lb = if self.lb_plugin { "enable" } else { "disable" },
        );
        let conf_path = self.dir.join("startup.conf");
        std::fs::write(&conf_path, conf).expect("startup.conf");
        let out = std::fs::File::create(self.dir.join("vpp.stdout")).expect("vpp.stdout");
        let child = Command::new(&self.install.vpp)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.install.vpp.display()));
        self.child = Some(Kill(child));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.api_socket().exists()
                && self.stats_socket().exists()
                && self.cli_socket().exists()
            {
                // The CLI answers once the main loop runs.
                if self.try_ctl("show version").is_some() {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|k| k.0.try_wait().ok().flatten())
            {
                panic!(
                    "VPP {} exited at start ({status}): {}",
                    self.install.name,
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "VPP {} did not open its sockets within 30 s: {}",
                self.install.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of VPP's own output and log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        for f in ["vpp.stdout", "vpp.log"] {
            if let Ok(t) = std::fs::read_to_string(self.dir.join(f)) {
                let lines: Vec<&str> = t.lines().collect();
                let from = lines.len().saturating_sub(20);
                s.push_str(&format!("\n--- {f} ---\n{}", lines[from..].join("\n")));
            }
        }
        s
    }

    fn try_ctl(&self, cmd: &str) -> Option<String> {
        let out = Command::new(&self.install.vppctl)
            .arg("-s")
            .arg(self.cli_socket())
            .args(cmd.split_whitespace())
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a debug CLI command through `vppctl` and returns its output.
    pub fn ctl(&self, cmd: &str) -> String {
        self.try_ctl(cmd)
            .unwrap_or_else(|| panic!("vppctl {cmd:?} failed: {}", self.log_tail()))
    }

    /// Kills VPP (SIGKILL) and reaps it: its sockets stay behind, dead.
    pub fn kill(&mut self) {
        self.child = None;
    }

    /// Kills VPP and starts it again in the same run directory: a new
    /// process with empty lb state, as after a crash.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// VPP's CPU time so far (user + system, from /proc): what VPP itself
    /// spent, for benchmarks that compare a client's wall time with it.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th of the whole line.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        let hz = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        Some(ticks / hz)
    }

    /// Sends `sig` to VPP (e.g. SIGSTOP/SIGCONT).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    }

    /// A packet-generator interface `pg0` with 198.51.100.1/24 and
    /// 2001:db8:ffff::1/64, up: the side packets come in from.
    pub fn pg_interface(&self) {
        self.ctl("create packet-generator interface pg0");
        self.ctl("set interface ip address pg0 198.51.100.1/24");
        self.ctl("set interface ip address pg0 2001:db8:ffff::1/64");
        self.ctl("set interface state pg0 up");
    }

    /// Sends the bare IP packets of `pcap` (link type RAW) into `ip4-input`
    /// or `ip6-input` at `rate` packets/s and waits until all are sent.
    pub fn pg_send(&self, name: &str, pcap: &Path, count: usize, rate: u64, ipv6: bool) {
        let node = if ipv6 { "ip6-input" } else { "ip4-input" };
        self.ctl(&format!(
            "packet-generator new name {name} limit {count} rate {rate} node {node} interface pg0 pcap {}",
            pcap.display()
        ));
        self.ctl(&format!("packet-generator enable-stream {name}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        // `show packet-generator` lists a stream as Yes while it sends.
        while self.ctl("show packet-generator").lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.first() == Some(&name) && w.get(1) == Some(&"Yes")
        }) {
            assert!(Instant::now() < deadline, "pg stream {name} never ended");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.ctl(&format!("packet-generator delete {name}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_files() {
        let i = parse_ready(
            "name=26.06\nstem=vpp-26.06\nvpp=/c/b/bin/vpp\nvppctl=/c/b/bin/vppctl\nplugins=/c/p\n",
        )
        .unwrap();
        assert_eq!(i.name, "26.06");
        assert_eq!(i.plugins, PathBuf::from("/c/p"));
        assert!(parse_ready("name=x\n").is_none());
    }
}
