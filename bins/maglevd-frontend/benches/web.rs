//! `cargo xtask bench web`: maglevd-frontend under load. 1,000 backends
//! (10 frontends × 100) are really probed over TCP by a release maglevd on
//! the simulator, and their listeners on 127.1.x.y come and go so each
//! backend flaps every few seconds; 200 event-stream clients stay attached
//! to a release maglevd-frontend. Reported: events delivered per second
//! (all clients), the latency of `transition` events from maglevd's
//! timestamp to a client's read (p50/p99), the frontend's CPU share and
//! RSS, and, when Chromium is installed, how long the page takes to show
//! all 1,000 rows.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use maglev_testkit::{free_port, Kill};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FRONTENDS: usize = 10;
const PER_FRONTEND: usize = 100;
const CLIENTS: usize = 200;
const PORT: u16 = 20_080;
const WINDOW: Duration = Duration::from_secs(20);
/// Each backend's listener is up this long, then down as long.
const HALF_PERIOD: Duration = Duration::from_secs(3);

fn sibling(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_maglevd-frontend")).with_file_name(name)
}

fn addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The backends: a listener per address, switched on and off.
    let n = FRONTENDS * PER_FRONTEND;
    let listeners: Arc<Mutex<Vec<Option<TcpListener>>>> = Arc::new(Mutex::new(
        (0..n)
            .map(|i| TcpListener::bind(SocketAddr::from((addr(i), PORT))).ok())
            .collect(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (l, stop) = (Arc::clone(&listeners), Arc::clone(&stop));
        std::thread::spawn(move || {
            // Spread the flips over the period: a few every 10 ms.
            let step = Duration::from_millis(10);
            let per_step =
                (n as f64 / (HALF_PERIOD.as_secs_f64() / step.as_secs_f64())).ceil() as usize;
            let mut next = 0usize;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(step);
                let mut l = l.lock().unwrap();
                for _ in 0..per_step {
                    let i = next % n;
                    next += 1;
                    l[i] = match l[i].take() {
                        Some(_) => None,
                        None => TcpListener::bind(SocketAddr::from((addr(i), PORT))).ok(),
                    };
                }
            }
        });
    }
    let api = d.join("api.sock");
    let _sim = Kill(
        Command::new(sibling("maglev-vppsim"))
            .arg("--api-socket")
            .arg(&api)
            .stderr(Stdio::null())
            .spawn()
            .expect("maglev-vppsim (cargo build --release -p maglev-vppsim)"),
    );
    let mut y = String::from(
        "maglev:\n  vpp:\n    lb: { ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1', startup-min-delay: 0, startup-max-delay: 0 }\n",
    );
    y.push_str(&format!("  healthchecks:\n    tcp: {{ type: tcp, port: {PORT}, interval: 1s, fast-interval: 1s, down-interval: 1s, timeout: 500ms, rise: 1, fall: 1 }}\n  backends:\n"));
    for i in 0..n {
        y.push_str(&format!(
            "    b{i}: {{ address: {}, healthcheck: tcp }}\n",
            addr(i)
        ));
    }
    y.push_str("  frontends:\n");
    for f in 0..FRONTENDS {
        y.push_str(&format!(
            "    f{f}:\n      address: 203.0.113.{}\n      port: 80\n      pools:\n        - name: p\n          backends:\n",
            f + 1
        ));
        for b in 0..PER_FRONTEND {
            y.push_str(&format!("            b{}: {{}}\n", f * PER_FRONTEND + b));
        }
    }
    let config = d.join("maglev.yaml");
    std::fs::write(&config, y).unwrap();
    let sock = d.join("maglevd.sock");
    let _daemon = Kill(
        Command::new(sibling("maglevd"))
            .arg("--config")
            .arg(&config)
            .arg("--grpc-addr")
            .arg(format!("unix:{}", sock.display()))
            .args([
                "--vpp-stats-addr",
                "",
                "--metrics-addr",
                "",
                "--log-level",
                "warn",
            ])
            .arg("--vpp-api-addr")
            .arg(&api)
            .stderr(Stdio::null())
            .spawn()
            .expect("maglevd (cargo build --release -p maglevd)"),
    );
    let port = free_port();
    let frontend = Kill(
        Command::new(env!("CARGO_BIN_EXE_maglevd-frontend"))
            .arg("--server")
            .arg(format!("lb=unix:{}", sock.display()))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--log-level", "warn"])
            .env_remove("MAGLEV_FRONTEND_USER")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = frontend.0.id();
    // Ready: every frontend known.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = get(port, "/view/api/maglevds");
        if body.contains("\"connected\":true") {
            break;
        }
        assert!(Instant::now() < deadline, "the frontend never connected");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let events = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let measuring = Arc::new(AtomicBool::new(false));
    for _ in 0..CLIENTS {
        let (events, bytes, lat, measuring) = (
            Arc::clone(&events),
            Arc::clone(&bytes),
            Arc::clone(&latencies),
            Arc::clone(&measuring),
        );
        rt.spawn(async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            s.write_all(
                format!("GET /view/api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut pending = String::new();
            loop {
                let Ok(k) = s.read(&mut buf).await else {
                    return;
                };
                if k == 0 {
                    return;
                }
                let on = measuring.load(Ordering::Relaxed);
                if on {
                    bytes.fetch_add(k as u64, Ordering::Relaxed);
                }
                pending.push_str(&String::from_utf8_lossy(&buf[..k]));
                while let Some(end) = pending.find("\n\n") {
                    let ev: String = pending.drain(..end + 2).collect();
                    if !on {
                        continue;
                    }
                    if ev.contains("\nevent: ") || ev.starts_with("event: ") {
                        events.fetch_add(1, Ordering::Relaxed);
                    }
                    if ev.contains("event: transition") {
                        if let Some(at) = ev
                            .split("\"at_unix_ms\":")
                            .nth(1)
                            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                            .and_then(|v| v.parse::<u64>().ok())
                        {
                            lat.lock().unwrap().push(now_ms().saturating_sub(at));
                        }
                    }
                }
            }
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    let mut rss_max = 0;
    while t0.elapsed() < WINDOW {
        std::thread::sleep(Duration::from_millis(500));
        rss_max = rss_max.max(status_kb(pid, "VmRSS:"));
    }
    measuring.store(false, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let mut lat = latencies.lock().unwrap().clone();
    let transitions = lat.len() as f64 / CLIENTS as f64;
    println!("maglevd-frontend, {n} backends ({FRONTENDS} × {PER_FRONTEND}) flapping every {}s, {CLIENTS} event-stream clients, {:.0} s window:", HALF_PERIOD.as_secs() * 2, secs);
    println!(
        "  transitions seen per client   {:.0}/s",
        transitions / secs
    );
    println!(
        "  events delivered (all)        {:.0}/s ({:.1} MB/s)",
        events.load(Ordering::Relaxed) as f64 / secs,
        bytes.load(Ordering::Relaxed) as f64 / secs / 1e6
    );
    println!(
        "  transition latency            p50 {} ms, p99 {} ms (maglevd's event time → client read)",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
    println!(
        "  frontend CPU                  {:.0} % of one core",
        cpu / secs * 100.0
    );
    println!(
        "  frontend RSS                  {:.1} MB (peak in window), VmHWM {:.1} MB",
        rss_max as f64 / 1024.0,
        status_kb(pid, "VmHWM:") as f64 / 1024.0
    );
    drop(rt);

    // The page with 1,000 rows in a real browser, when there is one.
    if let Some(browser) = maglev_testkit::browser::browser_or_skip("bench web (page)") {
        let start = Instant::now();
        browser.goto(&format!("http://127.0.0.1:{port}/view/"));
        browser.wait(
            "state loaded",
            Duration::from_secs(30),
            "return document.querySelectorAll('details.card').length === 10",
        );
        let loaded = start.elapsed();
        let t = Instant::now();
        let (_, _) = browser.wait(
            "all rows",
            Duration::from_secs(30),
            "document.querySelectorAll('details.card').forEach((d) => d.open = true); return document.querySelectorAll('tr[data-backend]').length === 1000",
        );
        let opened = t.elapsed();
        // How long the page's main thread is busy per second while it follows
        // the flapping: a long task would make it feel stuck.
        // Long tasks (> 50 ms of script, style or layout at once) are the
        // page's own work; a late timer without them is the machine's CPU
        // going elsewhere.
        let busy = browser.eval(
            "const t0 = performance.now(); let worst = 0, last = t0, long = 0, longest = 0;
             new PerformanceObserver((l) => { for (const e of l.getEntries()) { long += e.duration; longest = Math.max(longest, e.duration); } })
               .observe({ entryTypes: ['longtask'] });
             return new Promise((done) => {
               const tick = () => { const now = performance.now(); worst = Math.max(worst, now - last - 10); last = now;
                 if (now - t0 < 5000) setTimeout(tick, 10);
                 else done([Math.round(worst), Math.round(long), Math.round(longest), Math.round(now - t0)]); };
               setTimeout(tick, 10);
             });",
        );
        println!(
            "  page: state shown {:.0} ms after navigation; all 1,000 rows {:.0} ms after opening the cards",
            loaded.as_secs_f64() * 1e3,
            opened.as_secs_f64() * 1e3
        );
        println!(
            "  page while following, over {} ms: worst timer delay {} ms; long tasks {} ms in all, the longest {} ms",
            busy[3], busy[0], busy[1], busy[2]
        );
    }
    stop.store(true, Ordering::Relaxed);
    drop(frontend);
}

fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
