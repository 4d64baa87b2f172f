//! `cargo xtask bench vpp`: the Rust VPP client against the simulator, with
//! vpp_papi running the same sequence in the same run.
//!
//! usage (xtask passes these): vpp SIM_BINARY [PYTHON API_DIR] [--real]
//!
//! Every measurement runs against a fresh `maglev-vppsim` process (release
//! build) on a unix socket in a temp dir and, with `--real`, against a
//! fresh real VPP of each version `cargo xtask vpp build` left (26.06,
//! master):
//! - sequential: control_ping, one at a time (round trips/s);
//! - pipelined: control_ping with up to 256 in flight on one connection;
//! - bulk: 1,000 VIPs × 64 ASes from empty, pipelined (what a cold full
//!   sync of a large config costs); against real VPP also VPP's own CPU
//!   time for those calls (its process's user + system time over the
//!   load, from /proc), the floor any client can reach.
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

/// What the measurements run against.
enum Target {
    Sim(Sim),
    Real {
        vpp: maglev_testkit::vpp::Vpp,
        _dir: tempfile::TempDir,
    },
}

impl Target {
    fn start(sim_bin: &Path, real: Option<&maglev_testkit::vpp::Install>) -> Target {
        match real {
            None => Target::Sim(Sim::start(sim_bin)),
            Some(install) => {
                let dir = tempfile::tempdir().unwrap();
                let vpp = maglev_testkit::vpp::Vpp::start(install, dir.path());
                Target::Real { vpp, _dir: dir }
            }
        }
    }

    fn socket(&self) -> PathBuf {
        match self {
            Target::Sim(s) => s.socket.clone(),
            Target::Real { vpp, .. } => vpp.api_socket(),
        }
    }

    /// The VPP process's CPU time so far (user + system), real VPP only.
    fn cpu_seconds(&self) -> Option<f64> {
        match self {
            Target::Sim(_) => None,
            Target::Real { vpp, .. } => vpp.cpu_seconds(),
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(target: &Target) -> Client {
    Client::connect(
        target.socket(),
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

async fn ping_rates(sim: &Target) -> (f64, f64) {
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

/// One column of the table.
struct Column {
    name: String,
    seq: f64,
    pipe: f64,
    mt: (f64, f64),
    papi: Option<(f64, f64)>,
    bulk: Duration,
    bulk_cpu: Option<f64>,
    bulk_calls: u32,
}

fn measure(
    name: &str,
    sim_bin: &Path,
    real: Option<&maglev_testkit::vpp::Install>,
    papi_args: Option<(&String, &String)>,
) -> Column {
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
    let target = Target::start(sim_bin, real);
    let (seq, pipe) = rt.block_on(ping_rates(&target));
    let mt_rates = mt.block_on(ping_rates(&target));
    drop(target);

    // Bulk load from empty.
    let target = Target::start(sim_bin, real);
    let (bulk, bulk_cpu, bulk_calls) = rt.block_on(async {
        let lb = LbApi::new(connect(&target).await);
        let cpu0 = target.cpu_seconds();
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
        let cpu = cpu0.zip(target.cpu_seconds()).map(|(a, b)| b - a);
        let ases = lb.as_dump().await.unwrap();
        assert_eq!(ases.len(), (VIPS * ASES) as usize, "every AS arrived");
        (took, cpu, VIPS + VIPS * ASES)
    });
    drop(target);

    // vpp_papi, same target, same sequence.
    let papi = papi_args.and_then(|(py, api)| {
        let target = Target::start(sim_bin, real);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/papi_bench.py");
        let out = Command::new(py)
            .arg(script)
            .arg(api)
            .arg(target.socket())
            .arg(PAPI_N.to_string())
            .output()
            .expect("python runs");
        drop(target);
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
    });
    Column {
        name: name.to_string(),
        seq,
        pipe,
        mt: mt_rates,
        papi,
        bulk,
        bulk_cpu,
        bulk_calls,
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let real = args.iter().any(|a| a == "--real");
    let args: Vec<String> = args.into_iter().filter(|a| a != "--real").collect();
    let Some(sim_bin) = args.first().map(PathBuf::from) else {
        eprintln!(
            "usage: vpp SIM_BINARY [PYTHON API_DIR] [--real]  (run it with `cargo xtask bench vpp [--real]`)"
        );
        std::process::exit(2);
    };
    let papi_args = args.get(1).zip(args.get(2));
    let mut columns = vec![measure("simulator", &sim_bin, None, papi_args)];
    if real {
        let installs = maglev_testkit::vpp::installs();
        if installs.is_empty() {
            eprintln!("--real: no VPP build (run `cargo xtask vpp build`)");
            std::process::exit(2);
        }
        for i in installs.iter().rev() {
            columns.push(measure(
                &format!("VPP {}", i.name),
                &sim_bin,
                Some(i),
                papi_args,
            ));
        }
    }

    let header: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    println!("| measurement | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(columns.len()));
    let row = |label: &str, cell: &dyn Fn(&Column) -> String| {
        let cells: Vec<String> = columns.iter().map(cell).collect();
        println!("| {label} | {} |", cells.join(" | "));
    };
    row(
        "sequential control_ping round trips/s: Rust / vpp_papi (ratio)",
        &|c| match c.papi {
            Some((pseq, _)) => format!("{:.0} / {pseq:.0} ({:.1}×)", c.seq, c.seq / pseq),
            None => format!("{:.0} / n/a", c.seq),
        },
    );
    row(
        "pipelined control_ping msgs/s: Rust / vpp_papi (ratio)",
        &|c| match c.papi {
            Some((_, ppipe)) => format!("{:.0} / {ppipe:.0} ({:.1}×)", c.pipe, c.pipe / ppipe),
            None => format!("{:.0} / n/a", c.pipe),
        },
    );
    row(
        "same, client on a multi-threaded runtime: sequential / pipelined",
        &|c| format!("{:.0} / {:.0}", c.mt.0, c.mt.1),
    );
    row(
        &format!("bulk load {VIPS} VIPs × {ASES} ASes from empty: wall time (calls/s)"),
        &|c| {
            format!(
                "{:.2} s ({:.0}/s)",
                c.bulk.as_secs_f64(),
                f64::from(c.bulk_calls) / c.bulk.as_secs_f64()
            )
        },
    );
    row(
        "same: VPP's own CPU time for those calls (wall / CPU)",
        &|c| match c.bulk_cpu {
            Some(cpu) => format!("{cpu:.2} s ({:.2}×)", c.bulk.as_secs_f64() / cpu),
            None => "simulator-only column".to_string(),
        },
    );
}
