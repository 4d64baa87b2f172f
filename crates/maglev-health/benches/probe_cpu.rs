//! `cargo xtask bench probe`: the CPU one probe costs, without the noise
//! of a whole checker. One thread runs probes back to back on a
//! current-thread runtime against a loopback HTTP server on another
//! thread; that thread's own user and system time (`/proc/thread-self`)
//! over 40,000 probes, per probe. The system part is the kernel's TCP work
//! (connect, send, receive, reset) charged to the probing thread; the user
//! part is the probe's own code.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROBES: u32 = 40_000;

/// (user, system) seconds of the calling thread.
fn thread_cpu() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (ticks(11), ticks(12))
}

fn main() {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = server
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    server.spawn(async move {
        loop {
            // A connection reset before it was accepted (a TCP check's)
            // is an error here, not the end.
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut b, mut n) = (vec![0u8; 2048], 0);
                while !b[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                let _ = s.read(&mut b).await;
            });
        }
    });
    println!("| probe | wall µs | user µs | system µs | user + system µs |");
    println!("|---|---|---|---|---|");
    for (name, check) in [
        (
            "http",
            format!("{{ type: http, port: {port}, params: {{ path: /healthz }} }}"),
        ),
        (
            "http + regex",
            format!(
                "{{ type: http, port: {port}, params: {{ path: /healthz, response-regex: ok }} }}"
            ),
        ),
    ] {
        let yaml = format!(
            "maglev:
  vpp:
    lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }}
  healthchecks:
    hc: {check}
  backends:
    b: {{ address: 127.0.0.1, healthcheck: hc }}
  frontends:
    f: {{ address: 203.0.113.1, port: 80, pools: [ {{ name: p, backends: {{ b: {{}} }} }} ] }}
"
        );
        let config = maglev_config::load_str(&yaml, "bench.yaml").unwrap().config;
        let probe = maglev_health::Prober::new(None, maglev_health::Prober::default_user_agent())
            .unwrap()
            .probe_for(&config.healthchecks["hc"]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let target = "127.0.0.1".parse().unwrap();
        let run = |n: u32| {
            rt.block_on(async {
                for i in 0..n {
                    let r = probe.check(target).await;
                    assert!(r.pass, "{name}, probe {i}: {r:?}");
                }
            })
        };
        run(1_000);
        let (u0, s0, t) = {
            let (u, s) = thread_cpu();
            (u, s, Instant::now())
        };
        run(PROBES);
        let wall = t.elapsed().as_secs_f64();
        let (u1, s1) = thread_cpu();
        let per = |x: f64| x * 1e6 / f64::from(PROBES);
        println!(
            "| {name} | {:.1} | {:.2} | {:.2} | {:.2} |",
            per(wall),
            per(u1 - u0),
            per(s1 - s0),
            per((u1 - u0) + (s1 - s0))
        );
    }
}
