//! maglevd-frontend: the web dashboard over one or more maglevds.
//!
//! Thin: flags and credentials, logging, one watcher task per maglevd,
//! the HTTP server on an already-bound listener, and an exit code. The
//! dashboard itself lives in maglev-web.

#![forbid(unsafe_code)]

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use maglev_web::args::{credentials, Flags};
use maglev_web::auth::{hash_password, Gate};
use maglev_web::http::{serve, App};
use maglev_web::hub::Hub;
use maglev_web::watcher::watch;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

const EXIT_OK: u8 = 0;
const EXIT_FAIL: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let flags = match Flags::parse_args() {
        Ok(f) => f,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    if flags.hash_password {
        let mut password = String::new();
        if std::io::stdin().read_to_string(&mut password).is_err() {
            eprintln!("maglevd-frontend: cannot read the password on stdin");
            return ExitCode::from(EXIT_FAIL);
        }
        let password = password.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            eprintln!("maglevd-frontend: the password on stdin is empty");
            return ExitCode::from(EXIT_USAGE);
        }
        println!("{}", hash_password(password));
        return ExitCode::from(EXIT_OK);
    }
    let usage = |e: String| {
        eprintln!("maglevd-frontend: {e}");
        ExitCode::from(EXIT_USAGE)
    };
    let targets = match flags.targets() {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let creds = match credentials(|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&flags.log_level))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maglevd-frontend: cannot start: {e}");
            return ExitCode::from(EXIT_FAIL);
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&flags.listen).await {
            Ok(l) => l,
            Err(e) => {
                error!(event = "listen-failed", listen = %flags.listen, error = %e);
                eprintln!("maglevd-frontend: cannot listen on {}: {e}", flags.listen);
                return ExitCode::from(EXIT_FAIL);
            }
        };
        let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("maglevd-frontend: cannot install signal handlers");
            return ExitCode::from(EXIT_FAIL);
        };
        // SIGHUP is ignored (losing the terminal must not stop it).
        tokio::spawn(async move { while hup.recv().await.is_some() {} });
        let epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let hub = Hub::new(&targets, epoch);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        for i in 0..targets.len() {
            let mut stop = stop_rx.clone();
            tokio::spawn(watch(Arc::clone(&hub), i, flags.tls(), async move {
                let _ = stop.wait_for(|s| *s).await;
            }));
        }
        let (app, streams) = App::new(Arc::clone(&hub), Gate::new(creds));
        info!(
            event = "starting",
            listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            maglevds = targets.len(),
            version = maglev_web::args::VERSION,
        );
        serve(listener, app, streams, async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
        .await;
        let _ = stop_tx.send(true);
        info!(event = "stopping");
        tokio::time::sleep(Duration::from_millis(20)).await;
        ExitCode::from(EXIT_OK)
    })
}
