//! The daemon's life after start: SIGHUP reloads; SIGTERM or SIGINT stops
//! it within a bounded time whatever a client, VPP or the stats socket is
//! doing.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::Daemon;

/// How long the servers get to drain after a stop signal; `WatchEvents`
/// streams are ended at once, so this is for RPCs in flight.
pub const STOP_GRACE: Duration = Duration::from_millis(1500);

/// Reloads on SIGHUP until SIGTERM or SIGINT, then: probing stops (nothing
/// moves VPP on the way out; VPP keeps what was programmed), `stop` is set
/// (listeners close, streams end), and the servers get [`STOP_GRACE`] to
/// finish. A second stop signal ends the wait at once.
pub async fn run_until_stopped(
    daemon: Arc<Daemon>,
    stop: watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<()>>,
) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // Config loaded, listeners bound, signals handled: ready.
    crate::notify::ready();
    loop {
        tokio::select! {
            _ = hup.recv() => { daemon.reload().await; }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    info!(event = "stopping", "VPP keeps what was programmed");
    crate::notify::stopping();
    daemon.stop();
    let _ = stop.send(true);
    let drained = async {
        for s in servers {
            let _ = s.await;
        }
    };
    tokio::select! {
        () = drained => {}
        () = tokio::time::sleep(STOP_GRACE) => warn!(event = "stop-grace-over", "not everything drained in time; exiting anyway"),
        _ = term.recv() => info!(event = "stop-now", "second signal"),
        _ = int.recv() => info!(event = "stop-now", "second signal"),
    }
    Ok(())
}
