//! `maglev-vppsim`: the VPP stand-in as a process, for tests and the demo.
//!
//! Runs until killed and removes its sockets on exit. With `--dataplane`
//! it also proxies connections to loopback VIPs like VPP would forward
//! them. Faults on signals:
//! SIGUSR1 drops every client connection, SIGUSR2 toggles "stop answering",
//! SIGHUP restarts VPP (new pid and boot time, empty lb state).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use maglev_vppsim::{SimOptions, Simulator};
use tokio::signal::unix::{signal, SignalKind};

/// A test double of VPP's binary-API socket (lb plugin) and stats segment.
#[derive(Debug, Parser)]
#[command(name = "maglev-vppsim", version)]
struct Flags {
    /// API socket to serve (required: the simulator never defaults to a real
    /// VPP's path, and never replaces a live socket).
    #[arg(long, value_name = "PATH")]
    api_socket: PathBuf,
    /// Stats socket to serve (none if omitted).
    #[arg(long, value_name = "PATH")]
    stats_socket: Option<PathBuf>,
    /// Act as VPP 26.06 (lb API 1.1.0): no lb v2 messages (weights,
    /// set-weight, v2 dump, conf get), no weights in the Maglev table, and
    /// 26.06's handler bugs (prefix length, encap byte order, truncated
    /// dumps), as the real-VPP differential test holds it to.
    #[arg(long)]
    no_v2: bool,
    /// Version string `show_version` reports.
    #[arg(
        long = "vpp-version",
        value_name = "STR",
        default_value = "26.10-rc0~374-gb575ec2c56d"
    )]
    vpp_version: String,
    /// Also stand in for the data plane: TCP VIPs on loopback are served by
    /// a proxy that sends each connection to the AS VPP's Maglev table
    /// picks (for demos and end-to-end tests; loopback only).
    #[arg(long)]
    dataplane: bool,
    /// Append every received request to this file, one line each:
    /// `msg<TAB>retval<TAB>detail`.
    #[arg(long, value_name = "FILE")]
    call_log: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let sim = match Simulator::start(SimOptions {
        api_socket: flags.api_socket.clone(),
        stats_socket: flags.stats_socket.clone(),
        v2: !flags.no_v2,
        version: flags.vpp_version.clone(),
    })
    .await
    {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!(
                "maglev-vppsim: cannot serve {}: {e}",
                flags.api_socket.display()
            );
            return ExitCode::from(1);
        }
    };
    if flags.dataplane {
        sim.serve_dataplane();
    }
    let (Ok(mut term), Ok(mut int), Ok(mut usr1), Ok(mut usr2), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("maglev-vppsim: cannot install signal handlers");
        return ExitCode::from(1);
    };
    let mut stalled = false;
    let mut logged = 0;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = usr1.recv() => sim.drop_connections(),
            _ = usr2.recv() => {
                stalled = !stalled;
                sim.set_stalled(stalled);
            }
            _ = hup.recv() => sim.restart(),
            _ = tick.tick() => {
                if let Some(path) = &flags.call_log {
                    logged = append_calls(&sim, path, logged);
                }
                if let Some(why) = sim.crashed() {
                    eprintln!("maglev-vppsim: simulated crash: {why}");
                    sim.shutdown().await;
                    return ExitCode::from(134);
                }
            }
        }
    }
    if let Some(path) = &flags.call_log {
        append_calls(&sim, path, logged);
    }
    sim.shutdown().await;
    ExitCode::SUCCESS
}

fn append_calls(sim: &Simulator, path: &std::path::Path, from: usize) -> usize {
    use std::io::Write as _;
    let calls = sim.calls();
    if calls.len() > from {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            for c in &calls[from..] {
                let _ = writeln!(f, "{}\t{}\t{}", c.msg, c.retval, c.detail);
            }
        }
    }
    calls.len()
}
