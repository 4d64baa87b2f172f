//! maglevd: health checks backends and programs VPP's Maglev load balancer.
//!
//! This binary only wires crates together: flags, logging, runtimes, exit
//! codes. The work is in maglev-health, maglev-lbsync, maglev-metrics,
//! maglev-service (the gRPC API) and maglev-daemon (the composition root
//! and the reload path).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use maglev_config::{CheckReport, ErrorClass, LoadError};
use maglev_daemon::args::{Flags, VERSION};
use maglev_daemon::logs::LogBroadcast;
use maglev_daemon::runtimes::{ProbeThreads, VppThread};
use maglev_daemon::Daemon;
use maglev_health::CheckerOptions;
use maglev_lbsync::reconciler::ReconcilerOptions;
use maglev_metrics::Metrics;
use maglev_service::ApiOptions;
use tracing::{error, info};

const EXIT_OK: u8 = 0;
const EXIT_PARSE: u8 = 1;
const EXIT_SEMANTIC: u8 = 2;
/// sysexits EX_USAGE: a bad flag must not look like a config verdict.
const EXIT_USAGE: u8 = 64;
/// sysexits EX_UNAVAILABLE: cannot start (listen address, namespace).
const EXIT_UNAVAILABLE: u8 = 69;

fn main() -> ExitCode {
    let flags = match Flags::parse_args() {
        Ok(flags) => flags,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    if flags.version {
        println!("maglevd {}", VERSION);
        return ExitCode::from(EXIT_OK);
    }
    let loaded = maglev_config::load_file(&flags.config);
    if flags.check {
        return ExitCode::from(report(&flags.config, &loaded, true));
    }
    let logs = init_logging(&flags.log_level, flags.log_format == "json");
    let config = match loaded {
        Ok(l) => l.config,
        Err(_) => return ExitCode::from(report(&flags.config, &loaded, false)),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maglevd: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let probes = match ProbeThreads::start(flags.probe_threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maglevd: cannot start the probe threads: {e}");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let vpp = match VppThread::start() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("maglevd: cannot start the VPP thread: {e}");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let code = runtime.block_on(run(flags, config, logs, probes.handles(), vpp.handle()));
    // Whatever still runs (a blocking read of a bad stats segment, a probe)
    // does not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    probes.stop();
    vpp.stop();
    ExitCode::from(code)
}

/// Logging for the process: one event per line on stderr, text or JSON,
/// filtered by `filter` (from `--log-level`), colour only on a terminal,
/// plus the broadcast `WatchEvents` subscribers read at their own level.
fn init_logging(filter: &str, json: bool) -> LogBroadcast {
    use maglev_daemon::logs::{CleanFields, OneLine};
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};
    let logs = LogBroadcast::default();
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(OneLine)
        .with_ansi(std::io::stderr().is_terminal());
    let fmt = if json {
        fmt.json().flatten_event(true).boxed()
    } else {
        fmt.fmt_fields(CleanFields).boxed()
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(logs.clone())
        .init();
    logs
}

async fn run(
    flags: Flags,
    config: maglev_config::Config,
    logs: LogBroadcast,
    probes: Vec<tokio::runtime::Handle>,
    writer: tokio::runtime::Handle,
) -> u8 {
    info!(event = "starting", version = %VERSION, config = %flags.config.display());
    let path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
    let metrics = Arc::new(Metrics::new());
    metrics.build_info(
        env!("CARGO_PKG_VERSION"),
        env!("MAGLEV_GIT_COMMIT"),
        env!("MAGLEV_BUILD_DATE"),
    );
    let vpp = ReconcilerOptions {
        api_socket: path(&flags.vpp_api_addr),
        stats_socket: path(&flags.vpp_stats_addr),
        api_observer: Some(metrics.clone()),
        runtime: Some(writer),
        ..Default::default()
    };
    let probes = CheckerOptions {
        observer: Some(metrics.clone()),
        runtimes: probes,
        ..Default::default()
    };
    let daemon = match Daemon::start(flags.config.clone(), config, vpp, probes, logs) {
        Ok(d) => d,
        Err(e) => {
            error!(event = "start-failed", error = %e);
            return EXIT_UNAVAILABLE;
        }
    };
    let api = match maglev_daemon::api::bind(&flags).await {
        Ok(api) => api,
        Err(e) => {
            error!(event = "start-failed", error = %e);
            return EXIT_UNAVAILABLE;
        }
    };
    let (m, tls) = (metrics.clone(), api.tls.clone());
    daemon.on_reload(move |ok| {
        m.config_reload(ok);
        // New certificates on SIGHUP, whatever the config's fate.
        if let Some(tls) = &tls {
            maglev_daemon::api::reload_tls(tls);
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    if !flags.metrics_addr.is_empty() {
        let Some(ml) = listen(&flags.metrics_addr, "metrics-listen").await else {
            return EXIT_UNAVAILABLE;
        };
        maglev_metrics::count_transitions(metrics.clone(), &daemon.checker);
        let (c, r) = (daemon.checker.clone(), daemon.reconciler.clone());
        tokio::spawn(maglev_metrics::serve(
            ml,
            api.tls.clone().filter(|_| flags.metrics_tls),
            metrics.clone(),
            c,
            r,
            stopped(stop_rx.clone()),
        ));
    }
    let options = ApiOptions {
        reflection: flags.reflection,
        metrics: Some(metrics),
        admission: api.admission,
    };
    let api = maglev_service::serve(api.listeners, daemon.clone(), options, stopped(stop_rx));
    let server = tokio::spawn(async move {
        let _ = api.await;
    });
    match maglev_daemon::signals::run_until_stopped(daemon, stop_tx, vec![server]).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            error!(error = %e, "cannot install signal handlers");
            EXIT_UNAVAILABLE
        }
    }
}

/// Binds `addr` for `event`, logging a failure.
async fn listen(addr: &str, event: &str) -> Option<tokio::net::TcpListener> {
    maglev_daemon::api::listen(addr, event)
        .await
        .map_err(|e| error!(event = "start-failed", addr, error = %e))
        .ok()
}

/// Prints a load result like `--check` does and returns its exit code.
fn report(
    path: &std::path::Path,
    loaded: &Result<maglev_config::Loaded, LoadError>,
    verdict: bool,
) -> u8 {
    let r = CheckReport::new(&path.display().to_string(), loaded);
    r.lines.iter().for_each(|l| eprintln!("{l}"));
    match (verdict, r.class) {
        (true, _) => println!("{}", r.verdict),
        (false, Some(_)) => eprintln!("maglevd: {}; not starting", r.verdict),
        (false, None) => {}
    }
    match r.class {
        None => EXIT_OK,
        Some(ErrorClass::Parse) => EXIT_PARSE,
        Some(ErrorClass::Semantic) => EXIT_SEMANTIC,
    }
}
