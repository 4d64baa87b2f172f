//! The running daemon's shared state, and the one reload path used by both
//! SIGHUP and the `ReloadConfig` RPC.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use maglev_config::{Config, LoadError};
use maglev_health::{Checker, CheckerOptions, SetupError};
use maglev_lbsync::reconciler::{self, ReconcilerHandle, ReconcilerOptions};
use tracing::{error, info, warn};

use crate::logs::LogBroadcast;

/// The result of checking or loading a config, split by error class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigOutcome {
    /// Valid.
    pub ok: bool,
    /// The parse error, if that is what failed.
    pub parse_error: String,
    /// Every semantic error, one per line.
    pub semantic_error: String,
    /// Warnings.
    pub warnings: Vec<String>,
}

impl ConfigOutcome {
    fn from_load(result: &Result<maglev_config::Loaded, LoadError>) -> ConfigOutcome {
        match result {
            Ok(l) => ConfigOutcome {
                ok: true,
                warnings: l.warnings.iter().map(ToString::to_string).collect(),
                ..Default::default()
            },
            Err(LoadError::Parse(p)) => ConfigOutcome {
                parse_error: p.to_string(),
                ..Default::default()
            },
            Err(LoadError::Semantic(s)) => ConfigOutcome {
                semantic_error: s.to_string(),
                warnings: s.warnings.iter().map(ToString::to_string).collect(),
                ..Default::default()
            },
        }
    }
}

/// Everything the API and the signal handlers share.
#[derive(Debug)]
pub struct Daemon {
    config_path: PathBuf,
    /// The health checker.
    pub checker: Checker,
    /// The reconciler (VPP's only writer).
    pub reconciler: ReconcilerHandle,
    /// Log records for `WatchEvents`.
    pub logs: LogBroadcast,
    /// Serialises reloads.
    reload_lock: tokio::sync::Mutex<()>,
    /// Set once the daemon is stopping.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Told the result of every reload.
    reload_observer: std::sync::OnceLock<ReloadObserver>,
}

struct ReloadObserver(Box<dyn Fn(bool) + Send + Sync>);

impl std::fmt::Debug for ReloadObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReloadObserver")
    }
}

impl Daemon {
    /// Starts health checking and the reconciler for `config`.
    pub fn start(
        config_path: PathBuf,
        config: Config,
        vpp: ReconcilerOptions,
        checker_options: CheckerOptions,
        logs: LogBroadcast,
    ) -> Result<Arc<Daemon>, SetupError> {
        raise_fd_limit();
        let checker = Checker::start(&config, checker_options)?;
        let config = Arc::new(config);
        let reconciler = reconciler::spawn(config, checker.clone(), vpp);
        Ok(Arc::new(Daemon {
            config_path,
            checker,
            reconciler,
            logs,
            reload_lock: tokio::sync::Mutex::new(()),
            stopping: tokio::sync::watch::Sender::new(false),
            reload_observer: std::sync::OnceLock::new(),
        }))
    }

    /// Begins the stop: probing ends (nothing moves VPP on the way out)
    /// and every `WatchEvents` stream is ended.
    pub fn stop(&self) {
        self.checker.stop();
        self.stopping.send_replace(true);
    }

    /// Resolves once [`Daemon::stop`] was called.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// The config in force: the reconciler's, the one copy (a reload
    /// returns once the reconciler has it, so a client that reloaded reads
    /// the new config).
    pub fn config(&self) -> Arc<Config> {
        self.reconciler.config()
    }

    /// The config file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Checks the daemon's own config file without applying it. (There is
    /// no way to check another path: a client must never make the daemon
    /// read a file it names.)
    pub fn check(&self) -> ConfigOutcome {
        ConfigOutcome::from_load(&maglev_config::load_file(&self.config_path))
    }

    /// Checks a config sent as text, without applying it.
    pub fn check_text(&self, text: &str) -> ConfigOutcome {
        ConfigOutcome::from_load(&maglev_config::load_str(text, "<content>"))
    }

    /// Re-reads the config file and, if it is valid, applies it; a bad file
    /// changes nothing. Used by SIGHUP and `ReloadConfig`.
    pub async fn reload(&self) -> ConfigOutcome {
        let outcome = self.reload_inner().await;
        if let Some(observe) = self.reload_observer.get() {
            (observe.0)(outcome.ok);
        }
        outcome
    }

    /// Tells `f` the result of every reload (metrics).
    pub fn on_reload(&self, f: impl Fn(bool) + Send + Sync + 'static) {
        let _ = self.reload_observer.set(ReloadObserver(Box::new(f)));
    }

    async fn reload_inner(&self) -> ConfigOutcome {
        let _one_at_a_time = self.reload_lock.lock().await;
        let loaded = maglev_config::load_file(&self.config_path);
        let mut outcome = ConfigOutcome::from_load(&loaded);
        let config = match loaded {
            Ok(l) => l.config,
            Err(e) => {
                let class = match e.class() {
                    maglev_config::ErrorClass::Parse => "parse",
                    maglev_config::ErrorClass::Semantic => "semantic",
                };
                error!(
                    event = "config-reload",
                    result = "rejected",
                    class,
                    error = %e,
                    "config reload refused ({class} error); the old config stays in force"
                );
                return outcome;
            }
        };
        match self.checker.apply(&config) {
            Ok(report) => info!(
                event = "config-reload",
                result = "ok",
                added = %report.added.join(","),
                removed = %report.removed.join(","),
                restarted = %report.restarted.join(","),
                "config reloaded"
            ),
            Err(e) => {
                warn!(event = "config-reload", result = "rejected", error = %e);
                outcome.ok = false;
                outcome.semantic_error = e.to_string();
                return outcome;
            }
        }
        if self.reconciler.reload(Arc::new(config)).await.is_err() {
            warn!("reconciler stopped; reload not applied to VPP");
        }
        outcome
    }
}

/// Raises the soft limit on open files to the hard limit: every probe, API
/// client and scrape holds a descriptor, and the usual soft limit (1,024)
/// is what an idle-connection flood used to exhaust.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(
                event = "fd-limit",
                from = soft,
                to = hard,
                "raised the open-file limit"
            ),
            Err(e) => {
                tracing::warn!(event = "fd-limit", soft, hard, error = %e, "cannot raise the open-file limit")
            }
        },
        Ok((soft, _)) => tracing::debug!(event = "fd-limit", soft),
        Err(e) => tracing::warn!(event = "fd-limit", error = %e),
    }
}
