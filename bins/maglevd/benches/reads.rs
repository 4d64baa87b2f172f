//! `cargo xtask bench daemon` (second part): do reads wait for the
//! writer? maglevd with 1,000 frontends × 64 static backends on the
//! simulator; GetFrontend (a random frontend each time), ListFrontends,
//! a `/metrics` scrape (whole, whole gzipped, and `?scope=global,frontend`)
//! and GetVPPLBState (a read of all of VPP) are timed
//! one after another, first with maglevd
//! idle, then while full syncs run back to back (each one reads all of
//! VPP's 64,000 application servers and plans). p50/p99/max per read.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maglev_proto as pb;
use maglev_proto::maglev_client::MaglevClient;
use maglev_testkit::{free_port, Kill};
use maglev_vppsim::{SimOptions, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VIPS: usize = 1000;
const ASES: usize = 64;
const READS: usize = 200;
const SCRAPES: usize = 5;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// A whole scrape of `path`, gzipped if `gzip`: the bytes received.
async fn scrape(port: u16, path: &str, gzip: bool) -> usize {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let accept = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    out.len()
}

struct Figures {
    get: Vec<f64>,
    list: Vec<f64>,
    scrape: Vec<f64>,
    scrape_gzip: Vec<f64>,
    scrape_small: Vec<f64>,
    vpp_state: Vec<f64>,
    bytes: usize,
    bytes_gzip: usize,
    bytes_small: usize,
}

async fn measure(c: &mut MaglevClient<tonic::transport::Channel>, metrics: u16) -> Figures {
    let mut f = Figures {
        get: Vec::new(),
        list: Vec::new(),
        scrape: Vec::new(),
        scrape_gzip: Vec::new(),
        scrape_small: Vec::new(),
        vpp_state: Vec::new(),
        bytes: 0,
        bytes_gzip: 0,
        bytes_small: 0,
    };
    for i in 0..READS {
        let name = format!("f{}", (i * 379) % VIPS);
        let t = Instant::now();
        c.get_frontend(pb::GetFrontendRequest { name })
            .await
            .unwrap();
        f.get.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // The small scopes, as often as GetFrontend.
    for _ in 0..READS {
        let t = Instant::now();
        f.bytes_small = scrape(metrics, "/metrics?scope=global,frontend", true).await;
        f.scrape_small.push(t.elapsed().as_secs_f64() * 1e3);
    }
    for _ in 0..SCRAPES {
        let t = Instant::now();
        c.list_frontends(pb::ListFrontendsRequest {}).await.unwrap();
        f.list.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        f.bytes = scrape(metrics, "/metrics", false).await;
        f.scrape.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        f.bytes_gzip = scrape(metrics, "/metrics", true).await;
        f.scrape_gzip.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        c.get_vpplb_state(pb::GetVpplbStateRequest {})
            .await
            .unwrap();
        f.vpp_state.push(t.elapsed().as_secs_f64() * 1e3);
    }
    f
}

fn row(what: &str, v: &mut [f64]) {
    println!(
        "| {what} | {:.1} ms | {:.1} ms | {:.1} ms |",
        pct(v, 0.5),
        pct(v, 0.99),
        pct(v, 1.0)
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api.sock");
    let _sim = Simulator::start_on_thread(SimOptions {
        api_socket: api.clone(),
        ..Default::default()
    })
    .unwrap();
    let y = maglev_testkit::static_config(
        VIPS,
        ASES,
        ", sync-interval: 1h, startup-min-delay: 0, startup-max-delay: 0",
    );
    let config = dir.path().join("maglev.yaml");
    std::fs::write(&config, y).unwrap();
    let (grpc, metrics) = (free_port(), free_port());
    let _d = Kill(
        Command::new(env!("CARGO_BIN_EXE_maglevd"))
            .arg("--config")
            .arg(&config)
            .args([
                "--grpc-addr",
                &format!("127.0.0.1:{grpc}"),
                "--insecure-admin-tcp",
            ])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .arg("--vpp-api-addr")
            .arg(&api)
            .args(["--vpp-stats-addr", "", "--log-level", "warn"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = loop {
            if let Ok(ch) = maglev_access::dial::dial(&format!("127.0.0.1:{grpc}"), &Default::default()).await {
                break MaglevClient::new(ch);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // Programmed: a full sync that has nothing left to do.
        let t = Instant::now();
        loop {
            let r = c
                .sync_vpplb_state(pb::SyncVpplbStateRequest {
                    frontend: String::new(),
                    dry_run: true,
                })
                .await;
            if r.is_ok_and(|r| r.get_ref().plan.is_empty()) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(300), "never programmed");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!("programmed in {:.1} s", t.elapsed().as_secs_f64());
        // The reconciler reads VPP once more a second after adding VIPs
        // (for their stats indexes): idle means after that.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut idle = measure(&mut c, metrics).await;
        // Full syncs back to back on a second connection.
        let busy = Arc::new(AtomicBool::new(true));
        let syncs = Arc::new(AtomicU64::new(0));
        let mut s = c.clone();
        let (b, n) = (Arc::clone(&busy), Arc::clone(&syncs));
        let syncer = tokio::spawn(async move {
            let mut took = Vec::new();
            while b.load(Ordering::Relaxed) {
                let t = Instant::now();
                s.sync_vpplb_state(pb::SyncVpplbStateRequest {
                    frontend: String::new(),
                    dry_run: false,
                })
                .await
                .unwrap();
                took.push(t.elapsed().as_secs_f64() * 1e3);
                n.fetch_add(1, Ordering::Relaxed);
            }
            took
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = Instant::now();
        let mut during = measure(&mut c, metrics).await;
        let window = t.elapsed();
        busy.store(false, Ordering::Relaxed);
        let mut sync_ms = syncer.await.unwrap();
        println!(
            "maglevd, {VIPS} frontends × {ASES} static backends on the simulator; /metrics is {:.1} MB ({:.1} MB gzipped); ?scope=global,frontend {:.0} KB gzipped",
            idle.bytes as f64 / 1e6,
            idle.bytes_gzip as f64 / 1e6,
            idle.bytes_small as f64 / 1e3
        );
        println!();
        println!("| read | p50 | p99 | max |");
        println!("|---|---|---|---|");
        row("GetFrontend, idle", &mut idle.get);
        row("ListFrontends, idle", &mut idle.list);
        row("/metrics scrape, idle", &mut idle.scrape);
        row("/metrics scrape gzipped, idle", &mut idle.scrape_gzip);
        row("/metrics?scope=global,frontend gzipped, idle", &mut idle.scrape_small);
        row("GetVPPLBState (reads VPP), idle", &mut idle.vpp_state);
        row(
            &format!(
                "GetFrontend, full syncs running ({} in {:.1} s)",
                syncs.load(Ordering::Relaxed),
                window.as_secs_f64()
            ),
            &mut during.get,
        );
        row("ListFrontends, full syncs running", &mut during.list);
        row("/metrics scrape, full syncs running", &mut during.scrape);
        row("/metrics scrape gzipped, full syncs running", &mut during.scrape_gzip);
        row(
            "/metrics?scope=global,frontend gzipped, full syncs running",
            &mut during.scrape_small,
        );
        row("GetVPPLBState (reads VPP), full syncs running", &mut during.vpp_state);
        row("(a full sync itself)", &mut sync_ms);
    });
}
