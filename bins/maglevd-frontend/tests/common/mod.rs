//! The dashboard's rig: per maglevd a simulator (with its call log) and
//! the real maglevd, a loopback backend the test can kill, and the real
//! maglevd-frontend over them.

#![allow(dead_code)] // each test binary uses part of it

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub use maglev_testkit::{free_port, Kill};

pub fn frontend_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_maglevd-frontend"))
}

fn sibling(name: &str) -> PathBuf {
    let p = frontend_bin().with_file_name(name);
    assert!(
        p.exists(),
        "{}: build it (cargo build --workspace)",
        p.display()
    );
    p
}

/// A TCP backend on loopback that accepts until killed.
pub struct Backend {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Backend {
    pub fn start() -> Backend {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => drop(c),
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Backend {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Closes the listening socket: connects are refused from now on.
    pub fn kill(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One simulator and its maglevd.
pub struct Daemon {
    _sim: Kill,
    daemon: Option<Kill>,
    /// maglevd's unix socket (admin), as an address.
    pub socket: String,
    /// The simulator's call log.
    pub calls: PathBuf,
    pub log: PathBuf,
}

/// The config every maglevd of the rig gets: `s1` checked over TCP on
/// `port`, `s2` static, frontend `www` whose description is markup.
pub fn config(port: u16) -> String {
    format!(
        "maglev:
  vpp:
    lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1', startup-min-delay: 0, startup-max-delay: 0 }}
  healthchecks:
    web: {{ type: tcp, port: {port}, interval: 200ms, fast-interval: 200ms, down-interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }}
  backends:
    s1: {{ address: 127.0.0.1, healthcheck: web }}
    s2: {{ address: 10.0.0.10 }}
  frontends:
    www:
      description: '<img src=x onerror=alert(1)>'
      address: 203.0.113.80
      port: 443
      pools:
        - {{ name: primary, backends: {{ s1: {{ weight: 60 }}, s2: {{}} }} }}
"
    )
}

impl Daemon {
    pub fn start(dir: &Path, tag: &str, backend_port: u16) -> Daemon {
        let api = dir.join(format!("{tag}-api.sock"));
        let calls = dir.join(format!("{tag}-calls.log"));
        let sim = Kill(
            Command::new(sibling("maglev-vppsim"))
                .arg("--api-socket")
                .arg(&api)
                .arg("--call-log")
                .arg(&calls)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let cfg = dir.join(format!("{tag}.yaml"));
        std::fs::write(&cfg, config(backend_port)).unwrap();
        let sock = dir.join(format!("{tag}.sock"));
        let log = dir.join(format!("{tag}-maglevd.log"));
        let daemon = Kill(
            Command::new(sibling("maglevd"))
                .arg("--config")
                .arg(&cfg)
                .arg("--grpc-addr")
                .arg(format!("unix:{}", sock.display()))
                .args(["--vpp-stats-addr", "", "--metrics-addr", ""])
                .arg("--vpp-api-addr")
                .arg(&api)
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "maglevd {tag} never listened");
            thread::sleep(Duration::from_millis(50));
        }
        Daemon {
            _sim: sim,
            daemon: Some(daemon),
            socket: format!("unix:{}", sock.display()),
            calls,
            log,
        }
    }

    /// Kills maglevd (the simulator stays).
    pub fn kill(&mut self) {
        self.daemon = None;
    }

    pub fn calls(&self) -> String {
        std::fs::read_to_string(&self.calls).unwrap_or_default()
    }

    /// The calls that change VPP (reads and pings left out).
    pub fn writes(&self) -> Vec<String> {
        self.calls()
            .lines()
            .filter(|l| {
                let op = l.split('\t').next().unwrap_or("");
                !(op.ends_with("_dump")
                    || op.ends_with("_get")
                    || matches!(
                        op,
                        "control_ping" | "cli_inband" | "show_version" | "sockclnt_create"
                    ))
            })
            .map(str::to_string)
            .collect()
    }

    /// The writes after the first `from` once `done` holds for them. The
    /// simulator appends its call log every 50 ms, so a write VPP has
    /// already answered can reach the log after the page shows its effect.
    pub fn writes_after(&self, from: usize, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let new = self.writes().get(from..).unwrap_or_default().join("\n");
            if done(&new) {
                return new;
            }
            assert!(Instant::now() < deadline, "{what}: {new}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// A gRPC client over the admin socket.
    pub async fn client(
        &self,
    ) -> maglev_proto::maglev_client::MaglevClient<tonic::transport::Channel> {
        maglev_proto::maglev_client::MaglevClient::new(
            maglev_access::dial::dial(&self.socket, &Default::default())
                .await
                .unwrap(),
        )
    }
}

/// maglevd-frontend as a process.
pub struct Frontend {
    child: Option<Kill>,
    pub port: u16,
    pub log: PathBuf,
    servers: String,
    env: Vec<(String, String)>,
}

impl Frontend {
    pub fn start(dir: &Path, servers: &str, env: &[(&str, &str)]) -> Frontend {
        let mut f = Frontend {
            child: None,
            port: free_port(),
            log: dir.join("frontend.log"),
            servers: servers.to_string(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        f.spawn();
        f
    }

    fn spawn(&mut self) {
        let mut c = Command::new(frontend_bin());
        c.args(["-server", &self.servers])
            .arg("-listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .env_remove("MAGLEV_FRONTEND_USER")
            .env_remove("MAGLEV_FRONTEND_PASSWORD")
            .env_remove("MAGLEV_FRONTEND_PASSWORD_HASH")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .unwrap(),
            );
        self.child = Some(Kill(c.spawn().unwrap()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "maglevd-frontend never listened");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it and starts it again on the same port.
    pub fn restart(&mut self) {
        self.child = None;
        self.spawn();
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |k| k.0.id())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One HTTP request: status, lower-cased headers, body.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        Reply::parse(&String::from_utf8_lossy(&out))
    }

    /// The JSON of a GET.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let r = self.request("GET", path, &[], "");
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    fn parse(text: &str) -> Reply {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            let mut b = String::new();
            let mut r = body;
            while let Some((len, tail)) = r.split_once("\r\n") {
                let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
                if n == 0 {
                    break;
                }
                b.push_str(&tail[..n.min(tail.len())]);
                r = tail.get(n + 2..).unwrap_or("");
            }
            b
        } else {
            body.to_string()
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Polls the frontend's state until `cond` holds on it.
pub fn until_state(
    f: &Frontend,
    what: &str,
    within: Duration,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let s = f.json("/view/api/state");
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}: {s}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}
