//! Log records for `WatchEvents` subscribers, at their own level,
//! independent of the daemon's `--log-level`.
//!
//! A tracing layer turns events into [`LogRecord`]s on a broadcast channel.
//! It does nothing while nobody subscribes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// One log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Level.
    pub level: Level,
    /// Target (module path).
    pub target: String,
    /// The message.
    pub message: String,
    /// Other fields, as text.
    pub fields: BTreeMap<String, String>,
    /// When.
    pub at: std::time::SystemTime,
}

/// The layer and its channel.
#[derive(Debug, Clone)]
pub struct LogBroadcast {
    tx: broadcast::Sender<LogRecord>,
}

impl Default for LogBroadcast {
    fn default() -> Self {
        LogBroadcast {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl LogBroadcast {
    /// A receiver of every record from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LogRecord> {
        self.tx.subscribe()
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<String, String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        if field.name() == "message" {
            self.message = s;
        } else {
            self.fields.insert(field.name().to_string(), s);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields
                .insert(field.name().to_string(), value.to_string());
        }
    }
}

impl<S: Subscriber> Layer<S> for LogBroadcast {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        // The daemon's own events only: the transport's (h2, hyper, tonic)
        // would feed on themselves, since sending a record to a subscriber
        // logs h2 frames at debug.
        if !is_ours(event.metadata().target()) {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let _ = self.tx.send(LogRecord {
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            message: f.message,
            fields: f.fields,
            at: std::time::SystemTime::now(),
        });
    }
}

/// Whether a tracing target is one of this workspace's crates or
/// binaries.
fn is_ours(target: &str) -> bool {
    target.starts_with("maglev")
}

/// Sets up logging for the process: one event per line on stderr, text or
/// JSON, filtered by `level` (a level or a tracing filter; an invalid one
/// falls back to `info`), plus the broadcast that `WatchEvents`
/// subscribers read at their own level. Returns the broadcast.
pub fn init(level: &str, json: bool) -> LogBroadcast {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};
    let logs = LogBroadcast::default();
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().flatten_event(true).boxed()
    } else {
        fmt.boxed()
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(logs.clone())
        .init();
    logs
}
