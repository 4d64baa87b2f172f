//! `cargo xtask bench maglevt`: the probe rate maglevt achieves for 100
//! VIPs at 100 ms (target: 1,000 probes/s, within 2 %), and its CPU share,
//! with a new connection per probe (the default) and with keep-alive.
//!
//! The 100 HTTP servers run in a child process (this binary again, with
//! `MAGLEVT_BENCH_SERVE=1`) so their CPU is not counted. The monitor runs
//! as in maglevt: probe loops on a one-worker runtime, and a screen thread
//! drawing every 250 ms (into ratatui's TestBackend, 200×60, so the cost
//! of building and laying out the frame is counted; writing to a real
//! terminal is not).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maglev_monitor::targets::{Kind, Target};
use maglev_monitor::{render, Monitor, ProbeOptions, Theme, Ui};
use nix::sys::resource::{getrusage, UsageWho};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VIPS: usize = 100;
const INTERVAL: Duration = Duration::from_millis(100);
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(10);

fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ports = Vec::new();
        for i in 0..VIPS {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            ports.push(l.local_addr().unwrap().port());
            let name = format!("be{}", i % 4);
            tokio::spawn(async move {
                loop {
                    let Ok((mut s, _)) = l.accept().await else {
                        continue;
                    };
                    let name = name.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 2048];
                        let mut have = 0;
                        loop {
                            while !buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                                match s.read(&mut buf[have..]).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => have += n,
                                }
                            }
                            have = 0;
                            let r = format!(
                                "HTTP/1.1 204 No Content\r\nX-IPng-Frontend: {name}\r\n\r\n"
                            );
                            if s.write_all(r.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
        }
        let line: Vec<String> = ports.iter().map(u16::to_string).collect();
        println!("{}", line.join(" "));
        std::io::stdout().flush().unwrap();
        std::future::pending::<()>().await;
    });
}

fn cpu() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

fn run(ports: &[u16], keepalive: bool) -> (f64, f64, u64) {
    let targets: Vec<Target> = ports
        .iter()
        .map(|p| Target {
            name: format!("vip{p}"),
            address: "127.0.0.1".parse().unwrap(),
            port: *p,
            kind: Kind::Http,
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let monitor = {
        let _g = rt.enter();
        Monitor::start(
            targets,
            INTERVAL,
            ProbeOptions {
                keepalive,
                ..ProbeOptions::default()
            },
        )
    };
    let monitor = Arc::new(monitor);
    let stop = Arc::new(AtomicBool::new(false));
    let screen = {
        let (m, stop) = (Arc::clone(&monitor), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut t = Terminal::new(TestBackend::new(200, 60)).unwrap();
            let mut ui = Ui::default();
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let view = m.view("bench", started.elapsed());
                t.draw(|f| render(f, &view, &mut ui, Theme { color: true }, "X-IPng-Frontend"))
                    .unwrap();
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let total = |m: &Monitor| -> (u64, u64) {
        let md = m.model();
        (
            md.stats.iter().map(|s| s.n).sum(),
            md.stats.iter().map(|s| s.fail).sum(),
        )
    };
    std::thread::sleep(WARMUP);
    let (n0, f0) = total(&monitor);
    let (c0, w0) = (cpu(), Instant::now());
    std::thread::sleep(MEASURE);
    let (n1, f1) = total(&monitor);
    let (c1, w1) = (cpu(), Instant::now());
    stop.store(true, Ordering::Relaxed);
    screen.join().unwrap();
    let wall = (w1 - w0).as_secs_f64();
    let rate = (n1 - n0) as f64 / wall;
    let cpu_share = (c1 - c0).as_secs_f64() / wall * 100.0;
    drop(monitor);
    rt.shutdown_timeout(Duration::from_secs(1));
    (rate, cpu_share, f1 - f0)
}

fn main() {
    if std::env::var_os("MAGLEVT_BENCH_SERVE").is_some() {
        serve();
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("MAGLEVT_BENCH_SERVE", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let target = VIPS as f64 * 1000.0 / INTERVAL.as_millis() as f64;
    println!(
        "maglevt probe rate: {VIPS} VIPs at {}ms, {}s measured after {}s warm-up",
        INTERVAL.as_millis(),
        MEASURE.as_secs(),
        WARMUP.as_secs()
    );
    println!("| mode | probes/s | target | achieved | CPU (% of one core) | failures |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, keepalive) in [("new connection per probe", false), ("keep-alive", true)] {
        let (rate, cpu, fails) = run(&ports, keepalive);
        println!(
            "| {label} | {rate:.1} | {target:.0} | {:.2} % | {cpu:.1} % | {fails} |",
            rate / target * 100.0
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
