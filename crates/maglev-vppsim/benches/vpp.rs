//! `cargo xtask bench vpp`: the Rust VPP client against the simulator, with
//! vpp_papi running the same sequence in the same run.
//!
//! usage (xtask passes these): vpp SIM_BINARY [PYTHON API_DIR]
//!
//! Every measurement runs against a fresh `maglev-vppsim` process (release
//! build) on a unix socket in a temp dir:
//! - sequential: control_ping, one at a time (round trips/s);
//! - pipelined: control_ping with up to 256 in flight on one connection;
//! - bulk: 1,000 VIPs × 64 ASes from empty, pipelined (what a cold full
//!   sync of a large config costs).
//!
//! Prints a Markdown table for docs/benchmarks.md.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use maglev_vpp::{Client, ClientOptions, Encap, LbApi, VipKey, VipSpec};

const SEQ_N: usize = 20_000;
const PIPE_N: usize = 200_000;
const IN_FLIGHT: usize = 256;
const PAPI_N: usize = 5_000;
const VIPS: u32 = 1_000;
const ASES: u32 = 64;

struct Sim {
    child: Child,
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Sim {
    fn start(binary: &Path) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let child = Command::new(binary)
            .arg("--api-socket")
            .arg(&socket)
            .stderr(Stdio::null())
            .spawn()
            .expect("start maglev-vppsim");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "simulator did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Sim {
            child,
            _dir: dir,
            socket,
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(sim: &Sim) -> Client {
    Client::connect(
        &sim.socket,
        ClientOptions {
            name: "bench".to_string(),
            timeout: Duration::from_secs(30),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Runs `n` calls of `call` with at most `in_flight` outstanding.
async fn pipelined<F, Fut>(n: usize, in_flight: usize, call: F) -> Duration
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    let t = Instant::now();
    for i in 0..n {
        let permit = std::sync::Arc::clone(&slots).acquire_owned().await.unwrap();
        let fut = call(i);
        tasks.spawn(async move {
            fut.await;
            drop(permit);
        });
        while let Some(done) = tasks.try_join_next() {
            done.unwrap();
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    t.elapsed()
}

async fn ping_rates(sim: &Sim) -> (f64, f64) {
    let c = connect(sim).await;
    for _ in 0..1000 {
        c.ping().await.unwrap();
    }
    let t = Instant::now();
    for _ in 0..SEQ_N {
        c.ping().await.unwrap();
    }
    let seq = SEQ_N as f64 / t.elapsed().as_secs_f64();
    let took = pipelined(PIPE_N, IN_FLIGHT, |_| {
        let c = c.clone();
        async move {
            c.ping().await.unwrap();
        }
    })
    .await;
    (seq, PIPE_N as f64 / took.as_secs_f64())
}

fn vip_key(i: u32) -> VipKey {
    let a = 0x0a00_0000 | i; // 10.0.x.y, one /32 per VIP
    VipKey::host(IpAddr::V4(Ipv4Addr::from(a)), 6, 443)
}

fn as_addr(i: u32, j: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xac10_0000 | (i << 6) | j)) // 172.16.0.0/12
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(sim_bin) = args.first().map(PathBuf::from) else {
        eprintln!("usage: vpp SIM_BINARY [PYTHON API_DIR]  (run it with `cargo xtask bench vpp`)");
        std::process::exit(2);
    };
    // The client and its callers on one current-thread runtime (how
    // maglevd's reconciler drives VPP), and on the multi-threaded runtime
    // for comparison: there every round trip pays cross-thread wakeups.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sim = Sim::start(&sim_bin);
    let (seq, pipe) = rt.block_on(ping_rates(&sim));
    let (mt_seq, mt_pipe) = mt.block_on(ping_rates(&sim));
    drop(sim);

    // Bulk load from empty.
    let sim = Sim::start(&sim_bin);
    let (bulk, bulk_calls) = rt.block_on(async {
        let lb = LbApi::new(connect(&sim).await);
        let t = Instant::now();
        pipelined(VIPS as usize, IN_FLIGHT, |i| {
            let lb = lb.clone();
            async move {
                lb.vip_add(&VipSpec {
                    key: vip_key(i as u32),
                    encap: Encap::Gre4,
                    src_ip_sticky: false,
                    new_flows_table_length: 1024,
                })
                .await
                .unwrap();
            }
        })
        .await;
        pipelined((VIPS * ASES) as usize, IN_FLIGHT, |n| {
            let lb = lb.clone();
            let (i, j) = (n as u32 / ASES, n as u32 % ASES);
            async move {
                lb.as_add(&vip_key(i), as_addr(i, j), 100).await.unwrap();
            }
        })
        .await;
        let took = t.elapsed();
        let ases = lb.as_dump().await.unwrap();
        assert_eq!(ases.len(), (VIPS * ASES) as usize, "every AS arrived");
        (took, VIPS + VIPS * ASES)
    });
    drop(sim);

    // vpp_papi, same simulator build, same sequence.
    let papi = match (args.get(1), args.get(2)) {
        (Some(py), Some(api)) => {
            let sim = Sim::start(&sim_bin);
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/papi_bench.py");
            let out = Command::new(py)
                .arg(script)
                .arg(api)
                .arg(&sim.socket)
                .arg(PAPI_N.to_string())
                .output()
                .expect("python runs");
            drop(sim);
            if out.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                Some((
                    v["sequential_rt_per_s"].as_f64().unwrap(),
                    v["pipelined_msgs_per_s"].as_f64().unwrap(),
                ))
            } else {
                eprintln!(
                    "papi bench failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                None
            }
        }
        _ => None,
    };

    println!("| measurement | Rust client | vpp_papi | ratio |");
    println!("|---|---|---|---|");
    match papi {
        Some((pseq, ppipe)) => {
            println!(
                "| sequential control_ping round trips/s | {seq:.0} | {pseq:.0} | {:.1}× |",
                seq / pseq
            );
            println!(
                "| pipelined control_ping msgs/s | {pipe:.0} | {ppipe:.0} | {:.1}× |",
                pipe / ppipe
            );
        }
        None => {
            println!("| sequential control_ping round trips/s | {seq:.0} | n/a | |");
            println!("| pipelined control_ping msgs/s | {pipe:.0} | n/a | |");
        }
    }
    println!(
        "| same, client on a multi-threaded runtime: sequential / pipelined | {mt_seq:.0} / {mt_pipe:.0} | | |"
    );
    println!(
        "| bulk load {VIPS} VIPs × {ASES} ASes from empty ({bulk_calls} calls) | {:.2} s ({:.0} calls/s) | | |",
        bulk.as_secs_f64(),
        bulk_calls as f64 / bulk.as_secs_f64()
    );
}
