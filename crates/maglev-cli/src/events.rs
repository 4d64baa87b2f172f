//! `watch events` output: one compact JSON object per event.

use maglev_proto as pb;
use serde_json::{json, Value};

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
