//! The in-process pub/sub behind `/view/api/events`: every event gets an
//! id `<epoch>-<seq>`, the last 30 s (at most 2,000 events) are kept so a
//! browser that reconnects with `Last-Event-ID` gets what it missed, and
//! one whose gap is older, or from another run of this process (another
//! epoch), is told to `resync` instead.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

/// How long events stay replayable.
pub const REPLAY_AGE: Duration = Duration::from_secs(30);
/// How many events stay replayable.
pub const REPLAY_COUNT: usize = 2_000;
/// Live events a subscriber may fall behind before it is told to resync.
const LIVE_BACKLOG: usize = 4_096;

/// Who may see an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The read-only view and admins.
    Everyone,
    /// Admins only (log records).
    Admin,
}

/// One server-sent event.
#[derive(Debug)]
pub struct Event {
    /// `<epoch>-<seq>`; `None` for ephemeral events (probe heartbeats, API
    /// pulses) that are never replayed.
    pub id: Option<String>,
    seq: u64,
    /// The SSE event name.
    pub name: &'static str,
    /// The JSON data (one line).
    pub data: String,
    /// The SSE wire text, made once for every subscriber.
    wire: bytes::Bytes,
    /// Who may see it.
    pub audience: Audience,
    at: Instant,
}

impl Event {
    /// The event as SSE wire text (shared, not copied).
    pub fn wire(&self) -> bytes::Bytes {
        self.wire.clone()
    }

    fn encode(id: Option<&str>, name: &str, data: &str) -> bytes::Bytes {
        let mut s = String::with_capacity(data.len() + 48);
        if let Some(id) = id {
            s.push_str("id: ");
            s.push_str(id);
            s.push('\n');
        }
        s.push_str("event: ");
        s.push_str(name);
        s.push_str("\ndata: ");
        s.push_str(data);
        s.push_str("\n\n");
        bytes::Bytes::from(s)
    }
}

/// What a new subscriber starts with.
#[derive(Debug)]
pub enum Start {
    /// Events it missed (possibly none), then live ones.
    Replay(Vec<Arc<Event>>),
    /// Its `Last-Event-ID` cannot be served: it must refetch the state.
    Resync,
}

struct Ring {
    seq: u64,
    events: VecDeque<Arc<Event>>,
}

/// The broker.
pub struct Broker {
    epoch: u64,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<Event>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl Broker {
    /// A broker whose ids start with `epoch` (this process's start time is
    /// a good one: another run never reuses it).
    pub fn new(epoch: u64) -> Broker {
        Broker {
            epoch,
            ring: Mutex::new(Ring {
                seq: 0,
                events: VecDeque::new(),
            }),
            live: broadcast::channel(LIVE_BACKLOG).0,
        }
    }

    /// This run's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The id of the last event kept (`<epoch>-0` before any).
    pub fn last_id(&self) -> String {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        format!("{}-{}", self.epoch, ring.seq)
    }

    /// Publishes an event that is kept for replay.
    pub fn publish(&self, name: &'static str, data: String, audience: Audience) {
        self.send(name, data, audience, true);
    }

    /// Publishes an event that is only sent live (never replayed).
    pub fn flash(&self, name: &'static str, data: String) {
        self.send(name, data, Audience::Everyone, false);
    }

    fn send(&self, name: &'static str, data: String, audience: Audience, keep: bool) {
        let now = Instant::now();
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let seq = if keep {
            ring.seq += 1;
            ring.seq
        } else {
            ring.seq
        };
        let id = keep.then(|| format!("{}-{seq}", self.epoch));
        let ev = Arc::new(Event {
            wire: Event::encode(id.as_deref(), name, &data),
            id,
            seq,
            name,
            data,
            audience,
            at: now,
        });
        if keep {
            ring.events.push_back(Arc::clone(&ev));
            while ring.events.len() > REPLAY_COUNT
                || ring
                    .events
                    .front()
                    .is_some_and(|e| now.duration_since(e.at) > REPLAY_AGE)
            {
                ring.events.pop_front();
            }
        }
        // Sent under the lock, so a subscriber never sees an event twice
        // (in its replay and live) nor misses one between the two.
        let _ = self.live.send(ev);
    }

    /// Subscribes; `last_id` is the browser's `Last-Event-ID`, if any.
    pub fn subscribe(&self, last_id: Option<&str>) -> (Start, broadcast::Receiver<Arc<Event>>) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.live.subscribe();
        let now = Instant::now();
        while ring
            .events
            .front()
            .is_some_and(|e| now.duration_since(e.at) > REPLAY_AGE)
        {
            ring.events.pop_front();
        }
        let Some(last) = last_id.filter(|s| !s.is_empty()) else {
            return (Start::Replay(Vec::new()), rx);
        };
        let parsed = last
            .split_once('-')
            .and_then(|(e, s)| Some((e.parse::<u64>().ok()?, s.parse::<u64>().ok()?)));
        let Some((epoch, seq)) = parsed else {
            return (Start::Resync, rx);
        };
        // The oldest event the browser may have missed must still be here.
        let oldest = ring.events.front().map_or(ring.seq + 1, |e| e.seq);
        if epoch != self.epoch || seq > ring.seq || seq + 1 < oldest {
            return (Start::Resync, rx);
        }
        let missed = ring
            .events
            .iter()
            .filter(|e| e.seq > seq)
            .cloned()
            .collect();
        (Start::Replay(missed), rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(start: &Start) -> Vec<String> {
        match start {
            Start::Replay(v) => v.iter().map(|e| e.data.clone()).collect(),
            Start::Resync => vec!["RESYNC".into()],
        }
    }

    #[test]
    fn replays_what_was_missed_and_resyncs_otherwise() {
        let b = Broker::new(7);
        b.publish("x", "1".into(), Audience::Everyone);
        b.publish("x", "2".into(), Audience::Everyone);
        b.flash("probe", "p".into());
        b.publish("x", "3".into(), Audience::Everyone);
        assert_eq!(names(&b.subscribe(Some("7-1")).0), ["2", "3"]);
        assert_eq!(names(&b.subscribe(Some("7-3")).0), Vec::<String>::new());
        assert_eq!(names(&b.subscribe(None).0), Vec::<String>::new());
        // Another run, a future id, garbage.
        for id in ["8-1", "7-9", "junk", "7-"] {
            assert_eq!(names(&b.subscribe(Some(id)).0), ["RESYNC"], "{id}");
        }
        // Overflow: the oldest are gone, so an id before them resyncs.
        for i in 0..REPLAY_COUNT {
            b.publish("x", format!("n{i}"), Audience::Everyone);
        }
        assert_eq!(names(&b.subscribe(Some("7-1")).0), ["RESYNC"]);
        let last = format!("7-{}", REPLAY_COUNT + 2);
        assert_eq!(names(&b.subscribe(Some(&last)).0), ["n1999"]);
    }

    #[tokio::test]
    async fn live_events_follow_the_replay_without_gap() {
        let b = Broker::new(1);
        b.publish("x", "1".into(), Audience::Everyone);
        let (start, mut rx) = b.subscribe(Some("1-0"));
        assert_eq!(names(&start), ["1"]);
        b.publish("x", "2".into(), Audience::Admin);
        let ev = rx.recv().await.unwrap();
        assert_eq!(
            (ev.id.as_deref(), ev.data.as_str(), ev.audience),
            (Some("1-2"), "2", Audience::Admin)
        );
        assert_eq!(&ev.wire()[..], b"id: 1-2\nevent: x\ndata: 2\n\n");
    }
}
