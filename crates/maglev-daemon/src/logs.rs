//! Log records for `WatchEvents` subscribers, at their own level,
//! independent of the daemon's `--log-level`.
//!
//! A tracing layer turns events into [`LogRecord`]s on a broadcast channel.
//! It does nothing while nobody subscribes. Also here: `--log-level`'s
//! words, and the one-event-per-line formatting the binary installs for
//! the process ([`OneLine`], [`CleanFields`]); a library never installs a
//! global subscriber.

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

/// The accepted `--log-level` words.
pub const LEVELS: &str = "error, warn (warning), info, debug, trace";

/// Parses `--log-level`: a level word, or a tracing filter (with `=` or
/// `,`, e.g. `info,maglev_lbsync=trace`). `debug` and `trace` open up
/// maglev's own targets only; the transport (h2, hyper, tonic) stays at
/// `info` unless a filter asks for it. Returns the filter to use, or an
/// error naming the accepted words.
pub fn parse_level(level: &str) -> Result<String, String> {
    let filter = match level.to_ascii_lowercase().as_str() {
        "error" => "error".to_string(),
        "warn" | "warning" => "warn".to_string(),
        "info" => "info".to_string(),
        "debug" => "info,maglev=debug".to_string(),
        "trace" => "info,maglev=trace".to_string(),
        _ if level.contains(['=', ',']) => {
            tracing_subscriber::EnvFilter::try_new(level)
                .map_err(|e| format!("bad log filter {level:?}: {e}"))?;
            level.to_string()
        }
        _ => {
            return Err(format!(
                "unknown log level {level:?}: use {LEVELS}, or a filter such as info,maglev_lbsync=debug"
            ))
        }
    };
    Ok(filter)
}

/// Writes each event on one line: a line break inside a value (a
/// multi-line error) becomes `\n`, so one event is one line for grep,
/// journald and log shippers. A `MakeWriter` for stderr.
#[derive(Debug, Clone, Copy)]
pub struct OneLine;

/// [`OneLine`]'s writer.
#[derive(Debug)]
pub struct OneLineWriter(std::io::Stderr);

impl std::io::Write for OneLineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The formatter hands over one whole event, ending in a newline.
        let body = buf.strip_suffix(b"\n").unwrap_or(buf);
        if body.contains(&b'\n') {
            let mut out = Vec::with_capacity(buf.len() + 8);
            for b in body {
                if *b == b'\n' {
                    out.extend_from_slice(b"\\n");
                } else {
                    out.push(*b);
                }
            }
            out.push(b'\n');
            self.0.write_all(&out)?;
        } else {
            self.0.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for OneLine {
    type Writer = OneLineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        OneLineWriter(std::io::stderr())
    }
}

/// Text fields as plain `key=value`: a string is written bare unless it
/// needs quotes (empty, or with spaces, quotes or `=`), so `event=starting`
/// rather than `event="starting"`; the message comes first, as is.
#[derive(Debug, Clone, Copy)]
pub struct CleanFields;

struct CleanVisitor<'a> {
    writer: tracing_subscriber::fmt::format::Writer<'a>,
    first: bool,
    result: std::fmt::Result,
}

impl CleanVisitor<'_> {
    fn sep(&mut self) -> std::fmt::Result {
        if self.first {
            self.first = false;
            Ok(())
        } else {
            self.writer.write_char(' ')
        }
    }

    fn pair(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.sep()?;
            if field.name() == "message" {
                return self.writer.write_str(value);
            }
            let bare = !value.is_empty()
                && !value
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '=');
            if bare {
                write!(self.writer, "{}={value}", field.name())
            } else {
                write!(self.writer, "{}={value:?}", field.name())
            }
        })();
    }
}

impl tracing::field::Visit for CleanVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // Numbers, bools and `%display` values arrive here already as text.
        self.pair(field, &format!("{value:?}"));
    }
}

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for CleanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut v = CleanVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_words_and_filters() {
        assert_eq!(parse_level("warning").unwrap(), "warn");
        assert_eq!(parse_level("WARN").unwrap(), "warn");
        assert_eq!(parse_level("debug").unwrap(), "info,maglev=debug");
        assert_eq!(
            parse_level("info,maglev_lbsync=trace").unwrap(),
            "info,maglev_lbsync=trace"
        );
        let e = parse_level("bogus").unwrap_err();
        assert!(
            e.contains("error, warn (warning), info, debug, trace"),
            "{e}"
        );
    }
}
