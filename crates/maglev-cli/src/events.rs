//! `watch events` output: one compact JSON object per event.

use maglev_proto as pb;
use maglev_proto::maglev_client::MaglevClient;
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::run::{server, CliError};
use crate::term::until_interrupted;
use crate::tree::Command;

/// Runs a `watch events …` command as typed: one JSON line per event on
/// stdout until its `num`, any key (stdin a terminal) or Ctrl-C, with the
/// terminal restored. The one path for the one-shot CLI and the shell.
pub async fn watch_command(
    client: &mut MaglevClient<Channel>,
    cmd: &Command,
) -> Result<(), CliError> {
    let num = match cmd {
        Command::WatchEvents { num, .. } => *num,
        _ => None,
    };
    let stream = watch(client, request(cmd), num, |v| println!("{v}"));
    until_interrupted(stream, true).await.unwrap_or(Ok(()))
}

/// The request of a `watch events` command (an empty one for any other
/// command).
fn request(cmd: &Command) -> pb::WatchEventsRequest {
    match cmd {
        Command::WatchEvents {
            log,
            level,
            backend,
            frontend,
            ..
        } => pb::WatchEventsRequest {
            log: *log,
            log_level: level.clone().unwrap_or_default(),
            backend: *backend,
            frontend: *frontend,
        },
        _ => pb::WatchEventsRequest::default(),
    }
}

/// Streams events as JSON lines to `emit` until `num` events have been
/// seen or the server ends the stream. Stopping on a key or Ctrl-C is
/// [`crate::term::until_interrupted`]'s.
pub async fn watch(
    client: &mut MaglevClient<Channel>,
    req: pb::WatchEventsRequest,
    num: Option<u64>,
    mut emit: impl FnMut(Value),
) -> Result<(), CliError> {
    let mut stream = client.watch_events(req).await.map_err(server)?.into_inner();
    let mut seen = 0u64;
    loop {
        let Some(ev) = stream.message().await.map_err(server)? else {
            return Ok(());
        };
        emit(to_json(&ev));
        seen += 1;
        if num.is_some_and(|n| seen >= n) {
            return Ok(());
        }
    }
}

/// The JSON line of one event.
pub fn to_json(ev: &pb::Event) -> Value {
    let body = match &ev.event {
        Some(pb::event::Event::Log(l)) => json!({
            "type": "log", "level": l.level, "target": l.target, "message": l.message, "fields": l.fields,
        }),
        Some(pb::event::Event::Backend(b)) => {
            let t = b.transition.clone().unwrap_or_default();
            json!({
                "type": "backend", "backend": b.backend, "address": b.address,
                "from": t.from, "to": t.to, "code": t.code, "detail": t.detail,
            })
        }
        Some(pb::event::Event::Frontend(f)) => json!({
            "type": "frontend", "frontend": f.frontend, "from": f.from, "to": f.to,
        }),
        Some(pb::event::Event::Missed(m)) => json!({ "type": "missed", "count": m.count }),
        None => json!({ "type": "unknown" }),
    };
    let mut v = body;
    v["at_unix_ns"] = json!(ev.at_unix_ns);
    v
}
