//! `cargo xtask bench health`: maglev-health against HAProxy, probing the
//! same HTTP backends every second, side by side in one run.
//!
//! Everything runs inside a network namespace the bench creates (only `lo`
//! in it): one HTTP server answers on every address of 127.0.0.0/8 there,
//! and each checker probes N distinct ones (127.1.0.1 …). For each N
//! (default 1,000 and 5,000) and each checker: a warm-up, then a measured
//! window; CPU seconds are read from `/proc/<pid>/stat` (the checker's,
//! and the server's: this process), peak RSS from `VmHWM`, and the number
//! of probes from the server's request count. Needs root (for `ip netns`)
//! and HAProxy (`apt-get install haproxy`). Where the host caps open files
//! below what HAProxy asks for (a container), HAProxy runs under `no
//! strict-limits` with the cap, and the bench prints its warning.
//!
//! The checker reports every probe to maglevd's own observer (the
//! Prometheus series of `maglev-metrics`), as maglevd does, unless
//! `--without-metrics`.
//!
//! Modes (the bench re-executes itself): `run [--seconds S] [--backends
//! N,N] [--threads T,T] [--without-haproxy] [--without-metrics]`
//! (default), `inside …` (in the namespace), `checker N PORT THREADS
//! METRICS` (it writes its own counts to stdout each time a line comes on
//! stdin, so the window is measured without the bench's bookkeeping
//! running inside the checker between the two reads).

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WARMUP: Duration = Duration::from_secs(5);
/// How long a checker may take to send its first probe.
const LOAD_LIMIT: Duration = Duration::from_secs(300);

/// Backend `i`'s address: 127.1.0.1, …, 127.1.0.250, 127.1.1.1, …; past
/// 64,000 backends on into 127.2.0.0/16 and up.
fn addr(i: usize) -> Ipv4Addr {
    let (net, host) = (i / 64_000, i % 64_000);
    Ipv4Addr::new(
        127,
        1 + net as u8,
        (host / 250) as u8,
        (host % 250 + 1) as u8,
    )
}

fn args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect()
}

fn main() {
    let a = args();
    match a.first().map(String::as_str) {
        Some("checker") => checker(
            a[1].parse().unwrap(),
            a[2].parse().unwrap(),
            a[3].parse().unwrap(),
            a[4] == "metrics",
        ),
        Some("inside") => inside(&a[1..]),
        _ => outside(&a),
    }
}

fn opt(a: &[String], name: &str, default: &str) -> String {
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// Creates the namespace and re-runs this binary inside it.
fn outside(a: &[String]) {
    if Command::new("haproxy").arg("-v").output().is_err() {
        eprintln!("HAProxy is not installed: `apt-get install haproxy` (Debian package haproxy), then rerun.");
        std::process::exit(2);
    }
    let ns = format!("maglev-bench-{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("ip")
            .args(["-n", &ns, "link", "set", "lo", "up"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("cannot create network namespace {ns}: the bench needs root (ip netns)");
        std::process::exit(2);
    }
    let me = std::env::current_exe().unwrap();
    // Tens of thousands of probes in flight need descriptors (HAProxy's
    // too): a high limit inside, else the highest this host allows (a
    // container may cap it; HAProxy then runs under `no strict-limits`).
    let mut inner = format!(
        "ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; \
         exec {} inside",
        me.display()
    );
    for x in a.iter().filter(|x| *x != "run") {
        inner.push(' ');
        inner.push_str(x);
    }
    let status = Command::new("ip")
        .args(["netns", "exec", &ns, "sh", "-c", &inner])
        .status();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    std::process::exit(status.map_or(1, |s| s.code().unwrap_or(1)));
}

fn ticks_per_sec() -> f64 {
    // CLK_TCK is 100 on every Linux port maglev targets.
    100.0
}

/// (user, system) CPU seconds of `pid`, all threads.
fn cpu_seconds(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14, 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let stime: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (utime / ticks_per_sec(), stime / ticks_per_sec())
}

/// `field` (`VmHWM`: peak, `VmRSS`: now) of `pid`'s resident memory, MB.
fn rss_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Measured {
    probes_per_s: f64,
    cpu_per_1000: f64,
    /// The user-space part of it (the rest is the kernel's TCP work).
    user_per_1000: f64,
    rss_mb: f64,
    /// Resident memory at the window's start and end (flat, or growing?).
    rss_start_mb: f64,
    rss_end_mb: f64,
    /// maglev-health's own count of its results in the window.
    results: Option<Results>,
    /// The server's CPU seconds per 1,000 probes in the window (this
    /// process: the server and the bench's sleeping main thread). On a
    /// machine the server shares with the checker it bounds what the
    /// checker can reach.
    server_per_1000: f64,
}

/// What the checker child counts itself (HAProxy tells nothing).
#[derive(Debug, Clone, Copy, Default)]
struct Results {
    pass: u64,
    fail: u64,
    /// Probes that could not run (descriptors, buffers): no verdict.
    local: u64,
    /// Probes that started 100 ms or more after they were due.
    late: u64,
    max_lag_ms: u64,
    /// Of the failures: connect timeouts, refused connects, reply timeouts.
    l4tout: u64,
    l4con: u64,
    l7tout: u64,
    /// At the window's end: probes running, and how many may.
    in_flight: u64,
    limit: u64,
}

/// The checker child's counts, asked for over its stdin and stdout.
struct Asker {
    ask: std::process::ChildStdin,
    answers: std::io::BufReader<std::process::ChildStdout>,
}

impl Asker {
    fn of(child: &mut Child) -> Asker {
        Asker {
            ask: child.stdin.take().expect("piped stdin"),
            answers: std::io::BufReader::new(child.stdout.take().expect("piped stdout")),
        }
    }

    fn results(&mut self) -> Option<Results> {
        use std::io::BufRead as _;
        self.ask.write_all(b"\n").ok()?;
        self.ask.flush().ok()?;
        let mut line = String::new();
        self.answers.read_line(&mut line).ok()?;
        Results::parse(&line)
    }
}

impl Results {
    const FIELDS: usize = 10;

    fn parse(text: &str) -> Option<Results> {
        let v: Vec<u64> = text
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (v.len() == Self::FIELDS).then(|| Results {
            pass: v[0],
            fail: v[1],
            local: v[2],
            late: v[3],
            max_lag_ms: v[4],
            l4tout: v[5],
            l4con: v[6],
            l7tout: v[7],
            in_flight: v[8],
            limit: v[9],
        })
    }

    fn since(self, before: Results) -> Results {
        Results {
            pass: self.pass - before.pass,
            fail: self.fail - before.fail,
            local: self.local - before.local,
            late: self.late - before.late,
            // The child keeps the maximum since it started; the window's
            // own maximum is not separable, this is an upper bound.
            max_lag_ms: self.max_lag_ms,
            l4tout: self.l4tout - before.l4tout,
            l4con: self.l4con - before.l4con,
            l7tout: self.l7tout - before.l7tout,
            in_flight: self.in_flight,
            limit: self.limit,
        }
    }
}

fn measure(
    child: &mut Child,
    hits: &AtomicU64,
    window: Duration,
    mut stats: Option<&mut Asker>,
) -> Measured {
    let pid = child.id();
    // Warm-up starts with the first probe: HAProxy 2.6 takes about a
    // minute to load 50,000 servers before it checks any.
    let first = hits.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    while hits.load(Ordering::SeqCst) == first
        && started.elapsed() < LOAD_LIMIT
        && matches!(child.try_wait(), Ok(None))
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    if !matches!(child.try_wait(), Ok(None)) {
        // It gave up (the caller prints why): nothing to measure.
        return Measured {
            probes_per_s: 0.0,
            cpu_per_1000: f64::NAN,
            user_per_1000: f64::NAN,
            rss_mb: 0.0,
            rss_start_mb: 0.0,
            rss_end_mb: 0.0,
            results: None,
            server_per_1000: f64::NAN,
        };
    }
    std::thread::sleep(WARMUP);
    let (c0, h0) = (cpu_seconds(pid), hits.load(Ordering::SeqCst));
    let s0 = cpu_seconds(std::process::id());
    let r0 = stats.as_mut().and_then(|s| s.results());
    let rss_start_mb = rss_mb(pid, "VmRSS");
    std::thread::sleep(window);
    let (c1, h1) = (cpu_seconds(pid), hits.load(Ordering::SeqCst));
    let s1 = cpu_seconds(std::process::id());
    let r1 = stats.as_mut().and_then(|s| s.results());
    let rss_end_mb = rss_mb(pid, "VmRSS");
    let rss = rss_mb(pid, "VmHWM");
    let _ = child.kill();
    let _ = child.wait();
    let probes = (h1 - h0) as f64;
    let per_1000 = |s: f64| {
        if probes > 0.0 {
            s / probes * 1000.0
        } else {
            f64::NAN
        }
    };
    Measured {
        probes_per_s: probes / window.as_secs_f64(),
        cpu_per_1000: per_1000((c1.0 + c1.1) - (c0.0 + c0.1)),
        user_per_1000: per_1000(c1.0 - c0.0),
        rss_mb: rss,
        rss_start_mb,
        rss_end_mb,
        results: r0.zip(r1).map(|(a, b)| b.since(a)),
        server_per_1000: per_1000((s1.0 + s1.1) - (s0.0 + s0.1)),
    }
}

/// Inside the namespace: the server, then each checker in turn.
fn inside(a: &[String]) {
    let window = Duration::from_secs(opt(a, "--seconds", "20").parse().unwrap());
    let sizes: Vec<usize> = opt(a, "--backends", "1000,5000")
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let hits = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The server stands for tens of thousands of machines: its accept
    // queue must not be what fails a probe (a full queue drops SYNs, and
    // the connect times out). These sysctls are the namespace's own.
    for knob in ["net/core/somaxconn", "net/ipv4/tcp_max_syn_backlog"] {
        let _ = std::fs::write(format!("/proc/sys/{knob}"), "65535");
    }
    // The namespace holds only lo: the wildcard address is loopback here.
    let listener = rt
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from(([0, 0, 0, 0], 0)))?;
            socket.listen(65535)
        })
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(serve(listener, Arc::clone(&hits)));

    let me = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 0: a current-thread runtime (the figures before probe threads).
    let threads: Vec<usize> = opt(a, "--threads", "0")
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    println!("| backends | checker | threads | probes/s | CPU s per 1,000 probes | of it user space | peak RSS | RSS at window start → end | server CPU s per 1,000 | own results in window: pass / fail / no verdict (local) / late ≥ 100 ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let row = |n: usize, who: &str, t: String, m: &Measured| {
        let results = m.results.map_or("—".to_string(), |r| {
            format!(
                "{} / {} (L4TOUT {}, L4CON {}, L7TOUT {}) / {} / {} (max lag {} ms); at the end {} in flight, limit {}",
                r.pass,
                r.fail,
                r.l4tout,
                r.l4con,
                r.l7tout,
                r.local,
                r.late,
                r.max_lag_ms,
                r.in_flight,
                r.limit
            )
        });
        println!(
            "| {n} | {who} | {t} | {:.0} | {:.3} | {:.3} | {:.1} MB | {:.1} → {:.1} MB | {:.3} | {results} |",
            m.probes_per_s,
            m.cpu_per_1000,
            m.user_per_1000,
            m.rss_mb,
            m.rss_start_mb,
            m.rss_end_mb,
            m.server_per_1000
        );
    };
    for &n in &sizes {
        for &t in &threads {
            let metrics = if a.iter().any(|x| x == "--without-metrics") {
                "bare"
            } else {
                "metrics"
            };
            let mut ours = Command::new(&me)
                .args(["checker", &n.to_string(), &port.to_string(), &t.to_string()])
                .arg(metrics)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut asker = Asker::of(&mut ours);
            let m = measure(&mut ours, &hits, window, Some(&mut asker));
            row(n, "maglev-health", t.to_string(), &m);
            if a.iter().any(|x| x == "--without-haproxy") {
                continue;
            }
            let cfg = haproxy_config(&dir.path().join(format!("haproxy-{n}-{t}.cfg")), n, port, t);
            let log = dir.path().join(format!("haproxy-{n}-{t}.log"));
            let mut hap = Command::new("haproxy")
                .args(["-f"])
                .arg(&cfg)
                .args(["-db"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let m = measure(&mut hap, &hits, window, None);
            let t = if t == 0 {
                "default".to_string()
            } else {
                t.to_string()
            };
            row(n, "HAProxy", t, &m);
            // Say why instead of a row of zeros, and say when HAProxy ran
            // under a lower descriptor limit than it asked for.
            let why = std::fs::read_to_string(&log).unwrap_or_default();
            let said =
                |l: &&str| (m.probes_per_s == 0.0 && l.contains("ALERT")) || l.contains("FD limit");
            for line in why.lines().filter(said).take(3) {
                println!("  (HAProxy: {})", line.trim());
            }
        }
    }
}

fn haproxy_config(path: &std::path::Path, n: usize, port: u16, threads: usize) -> PathBuf {
    let mut f = std::fs::File::create(path).unwrap();
    let nbthread = if threads == 0 {
        String::new()
    } else {
        format!("  nbthread {threads}\n")
    };
    writeln!(
        f,
        "global\n  maxconn 4096\n  no strict-limits\n{nbthread}\ndefaults\n  mode http\n  timeout connect 1s\n  timeout check 1s\n\
         \x20 timeout client 10s\n  timeout server 10s\n\n\
         # HAProxy refuses to run without a listener; this one gets no traffic.\n\
         frontend fe\n  bind 127.0.0.1:{}\n  default_backend be\n\n\
         backend be\n  option httpchk GET /healthz\n\
         \x20 default-server inter 1s fastinter 1s downinter 1s rise 2 fall 3",
        port + 1
    )
    .unwrap();
    for i in 0..n {
        writeln!(f, "  server b{i} {}:{port} check", addr(i)).unwrap();
    }
    path.to_path_buf()
}

async fn serve(listener: tokio::net::TcpListener, hits: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let hits = Arc::clone(&hits);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut got = 0;
            // Read the request head, answer, close.
            while got < buf.len() {
                match s.read(&mut buf[got..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n,
                }
                if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            hits.fetch_add(1, Ordering::Relaxed);
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        });
    }
}

/// Counts the checker's own results for the bench.
#[derive(Default)]
struct Counts {
    pass: AtomicU64,
    fail: AtomicU64,
    local: AtomicU64,
    late: AtomicU64,
    max_lag_ms: AtomicU64,
    l4tout: AtomicU64,
    l4con: AtomicU64,
    l7tout: AtomicU64,
    in_flight: AtomicU64,
    limit: AtomicU64,
}

/// What the checker reports to: the bench's counts, and maglevd's own
/// observer when it is measured with it.
struct Observer {
    counts: Arc<Counts>,
    metrics: Option<maglev_metrics::Metrics>,
}

/// One backend's: the counts and its metrics handle.
struct BackendCounts {
    counts: Arc<Counts>,
    metrics: Option<Arc<dyn maglev_health::BackendObserver>>,
}

impl maglev_health::ProbeObserver for Observer {
    fn backend(
        &self,
        backend: &str,
        check_type: &'static str,
    ) -> Arc<dyn maglev_health::BackendObserver> {
        Arc::new(BackendCounts {
            counts: Arc::clone(&self.counts),
            metrics: self
                .metrics
                .as_ref()
                .map(|m| m.backend(backend, check_type)),
        })
    }

    fn probe_lag(&self, lag: Duration) {
        self.counts.lag(lag);
        if let Some(m) = &self.metrics {
            m.probe_lag(lag);
        }
    }
}

impl maglev_health::BackendObserver for BackendCounts {
    fn probe_done(&self, result: &maglev_health::ProbeResult) {
        if let Some(m) = &self.metrics {
            m.probe_done(result);
        }
        self.counts.done(result);
    }
}

impl Counts {
    fn done(&self, result: &maglev_health::ProbeResult) {
        let c = if result.code == maglev_health::Code::SockErr {
            &self.local
        } else if result.pass {
            &self.pass
        } else {
            &self.fail
        };
        c.fetch_add(1, Ordering::Relaxed);
        let why = match result.code {
            maglev_health::Code::L4Tout => Some(&self.l4tout),
            maglev_health::Code::L4Con => Some(&self.l4con),
            maglev_health::Code::L7Tout => Some(&self.l7tout),
            _ => None,
        };
        if let Some(c) = why {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn lag(&self, lag: Duration) {
        let ms = lag.as_millis() as u64;
        if ms >= 100 {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        self.max_lag_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Answers each line on stdin with the counts, one line on stdout;
    /// nothing runs between questions.
    fn answer(&self, checker: &maglev_health::Checker) {
        use std::io::BufRead as _;
        let mut out = std::io::stdout();
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                return;
            }
            let load = checker.probe_load();
            self.in_flight
                .store(load.in_flight as u64, Ordering::Relaxed);
            self.limit.store(load.limit as u64, Ordering::Relaxed);
            let counts = [
                &self.pass,
                &self.fail,
                &self.local,
                &self.late,
                &self.max_lag_ms,
                &self.l4tout,
                &self.l4con,
                &self.l7tout,
                &self.in_flight,
                &self.limit,
            ]
            .map(|c| c.load(Ordering::Relaxed).to_string())
            .join(" ");
            if writeln!(out, "{counts}")
                .and_then(|()| out.flush())
                .is_err()
            {
                return;
            }
        }
    }
}

/// maglev-health probing `n` backends, until killed.
fn checker(n: usize, port: u16, threads: usize, metrics: bool) {
    let mut yaml = String::from(
        "maglev:\n  vpp: { lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' } }\n",
    );
    yaml.push_str(&format!(
        "  healthchecks:\n    web: {{ type: http, port: {port}, interval: 1s, fast-interval: 1s, down-interval: 1s, timeout: 1s, rise: 2, fall: 3, params: {{ path: /healthz }} }}\n  backends:\n"
    ));
    for i in 0..n {
        yaml.push_str(&format!(
            "    b{i}: {{ address: {}, healthcheck: web }}\n",
            addr(i)
        ));
    }
    yaml.push_str(
        "  frontends:\n    f:\n      address: 203.0.113.1\n      port: 80\n      new-flows-table-length: 1048576\n      pools:\n        - name: p\n          backends:\n",
    );
    for i in 0..n {
        yaml.push_str(&format!("            b{i}: {{}}\n"));
    }
    let config = maglev_config::load_str(&yaml, "bench.yaml").unwrap().config;
    // 0: everything on one current-thread runtime; N: probes on N threads
    // with a current-thread runtime each, as maglevd runs them
    // (--probe-threads).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtimes: Vec<tokio::runtime::Handle> = (0..threads)
        .map(|_| {
            let probe_rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .unwrap();
            let handle = probe_rt.handle().clone();
            std::thread::spawn(move || probe_rt.block_on(std::future::pending::<()>()));
            handle
        })
        .collect();
    let counts = Arc::new(Counts::default());
    let options = maglev_health::CheckerOptions {
        runtimes,
        observer: Some(Arc::new(Observer {
            counts: Arc::clone(&counts),
            metrics: metrics.then(maglev_metrics::Metrics::new),
        }) as Arc<dyn maglev_health::ProbeObserver>),
        ..Default::default()
    };
    let checker = rt.block_on(async { maglev_health::Checker::start(&config, options).unwrap() });
    std::thread::spawn(move || {
        counts.answer(&checker);
        // Stdin closed: the bench is gone.
        std::process::exit(0);
    });
    // With no probe threads the probes run here.
    rt.block_on(std::future::pending::<()>());
}
