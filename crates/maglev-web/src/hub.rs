//! What the dashboard knows of every maglevd, and the events that tell
//! browsers when it changes. Watchers write here; HTTP handlers read a
//! copy and never wait for a maglevd.

use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use maglev_proto::maglev_client::MaglevClient;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;
use tonic::transport::Channel;

use crate::broker::{Audience, Broker};
use crate::consistency::{carry_since, compare, VipConsistency};
use crate::model::{merge_buckets, Backend, Frontend, HealthCheck, Maglevd, Vip, Vpp};

/// One maglevd to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its tab name.
    pub name: String,
    /// Its gRPC address.
    pub address: String,
}

impl Target {
    /// Parses one `--server` item: `addr` or `name=addr`.
    pub fn parse(item: &str) -> Result<Target, String> {
        let item = item.trim();
        let (name, address) = match item.split_once('=') {
            Some((n, a)) if !n.contains(':') && !n.contains('/') => (n.trim(), a.trim()),
            _ => (item, item),
        };
        if address.is_empty() || name.is_empty() {
            return Err(format!("--server: empty maglevd address in {item:?}"));
        }
        maglev_access::Endpoint::parse(address).map_err(|e| format!("--server {item}: {e}"))?;
        Ok(Target {
            name: name.to_string(),
            address: address.to_string(),
        })
    }
}

/// One maglevd's link: its client while connected and a doorbell that
/// asks its watcher to refresh now.
#[derive(Debug, Default)]
pub struct Link {
    client: Mutex<Option<MaglevClient<Channel>>>,
    /// Rung after an admin action.
    pub poke: Notify,
}

/// The shared state.
#[derive(Debug)]
pub struct Hub {
    /// The event broker.
    pub broker: Broker,
    state: RwLock<State>,
    links: Vec<Link>,
}

#[derive(Debug, Default)]
struct State {
    maglevds: Vec<Maglevd>,
    /// Frontends as maglevd sent them, before VPP's buckets are merged in.
    raw_frontends: Vec<Vec<Frontend>>,
    consistency: Vec<VipConsistency>,
}

/// A copy of the whole state, with the id of the last event it includes.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// The id of the last event already reflected here (`<epoch>-<seq>`).
    pub last_event_id: String,
    /// Every maglevd, in `--server` order.
    pub maglevds: Vec<Maglevd>,
    /// VIPs two or more maglevds serve, and whether they agree.
    pub consistency: Vec<VipConsistency>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What changed in one update, for [`Hub::update`].
#[derive(Debug, Default)]
pub struct Update {
    /// New connection state (`Some(None)`: connected).
    pub link: Option<Option<String>>,
    /// New VPP state.
    pub vpp: Option<Option<Vpp>>,
    /// New frontends (as maglevd lists them).
    pub frontends: Option<Vec<Frontend>>,
    /// New backends.
    pub backends: Option<Vec<Backend>>,
    /// New health checks.
    pub healthchecks: Option<Vec<HealthCheck>>,
    /// New LB state (`Some(None)`: VPP unavailable).
    pub lb: Option<Option<Vec<Vip>>>,
}

impl Hub {
    /// A hub for these maglevds; `epoch` starts the event ids.
    pub fn new(targets: &[Target], epoch: u64) -> Arc<Hub> {
        let now = now_ms();
        Arc::new(Hub {
            broker: Broker::new(epoch),
            state: RwLock::new(State {
                maglevds: targets
                    .iter()
                    .map(|t| Maglevd {
                        name: t.name.clone(),
                        address: t.address.clone(),
                        error: Some("connecting".into()),
                        since_unix_ms: now,
                        ..Default::default()
                    })
                    .collect(),
                raw_frontends: vec![Vec::new(); targets.len()],
                consistency: Vec::new(),
            }),
            links: targets.iter().map(|_| Link::default()).collect(),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of everything.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.read();
        Snapshot {
            last_event_id: self.broker.last_id(),
            maglevds: s.maglevds.clone(),
            consistency: s.consistency.clone(),
        }
    }

    /// A copy of one maglevd, by name.
    pub fn maglevd(&self, name: &str) -> Option<(String, Maglevd)> {
        let s = self.read();
        let m = s.maglevds.iter().find(|m| m.name == name)?.clone();
        Some((self.broker.last_id(), m))
    }

    /// Names, addresses and link state of every maglevd.
    pub fn list(&self) -> serde_json::Value {
        let s = self.read();
        json!(s
            .maglevds
            .iter()
            .map(|m| json!({
                "name": m.name, "address": m.address, "connected": m.connected,
                "error": m.error, "since_unix_ms": m.since_unix_ms,
            }))
            .collect::<Vec<_>>())
    }

    /// The name and address of maglevd `i`.
    pub fn target(&self, i: usize) -> Target {
        let s = self.read();
        let m = &s.maglevds[i];
        Target {
            name: m.name.clone(),
            address: m.address.clone(),
        }
    }

    /// The index of a maglevd by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.read().maglevds.iter().position(|m| m.name == name)
    }

    /// The link of maglevd `i`.
    pub fn link(&self, i: usize) -> &Link {
        &self.links[i]
    }

    /// The client of maglevd `i`, while connected.
    pub fn client(&self, i: usize) -> Option<MaglevClient<Channel>> {
        self.links[i]
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_client(&self, i: usize, c: Option<MaglevClient<Channel>>) {
        *self.links[i]
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = c;
    }

    /// Applies an update to maglevd `i` and publishes what changed: under
    /// one lock, so a snapshot's `last_event_id` matches its content.
    pub fn update(&self, i: usize, u: Update) {
        let mut guard = self.state.write().unwrap_or_else(|e| e.into_inner());
        let s = &mut *guard;
        let Some(m) = s.maglevds.get_mut(i) else {
            return;
        };
        let name = m.name.clone();
        let mut link_changed = false;
        let mut structure = false;
        if let Some(err) = u.link {
            let connected = err.is_none();
            if connected != m.connected {
                m.since_unix_ms = now_ms();
            }
            link_changed |= connected != m.connected || err != m.error;
            m.connected = connected;
            m.error = err;
        }
        if let Some(vpp) = u.vpp {
            link_changed |= vpp != m.vpp;
            m.vpp = vpp;
        }
        if link_changed {
            self.broker.publish(
                "link",
                json!({
                    "maglevd": name, "connected": m.connected, "error": m.error,
                    "since_unix_ms": m.since_unix_ms, "vpp": m.vpp,
                })
                .to_string(),
                Audience::Everyone,
            );
        }
        if let Some(h) = u.healthchecks {
            structure |= h
                .iter()
                .map(|x| &x.name)
                .ne(m.healthchecks.iter().map(|x| &x.name));
            m.healthchecks = h;
        }
        if let Some(backends) = u.backends {
            if backends
                .iter()
                .map(|b| &b.name)
                .ne(m.backends.iter().map(|b| &b.name))
            {
                structure = true;
            } else if !structure {
                for (new, old) in backends.iter().zip(&m.backends) {
                    if new != old {
                        self.broker.publish(
                            "backend",
                            json!({ "maglevd": name, "backend": new }).to_string(),
                            Audience::Everyone,
                        );
                    }
                }
            }
            m.backends = backends;
        }
        if let Some(lb) = u.lb {
            m.lb = lb;
        }
        if let Some(f) = u.frontends {
            s.raw_frontends[i] = f;
        }
        let mut merged = s.raw_frontends[i].clone();
        merge_buckets(&mut merged, m.lb.as_deref());
        let mut consistency_may_change = link_changed;
        if merged
            .iter()
            .map(|f| &f.name)
            .ne(m.frontends.iter().map(|f| &f.name))
        {
            structure = true;
            consistency_may_change = true;
        } else {
            for (new, old) in merged.iter().zip(&m.frontends) {
                if new != old {
                    consistency_may_change = true;
                    if !structure {
                        let (event, data) = frontend_change(&name, new, old);
                        self.broker.publish(event, data, Audience::Everyone);
                    }
                }
            }
        }
        m.frontends = merged;
        if structure {
            // Names came or went (first contact, a reload): the whole
            // maglevd, so the page rebuilds its tab.
            self.broker.publish(
                "maglevd",
                json!({ "maglevd": name, "state": m }).to_string(),
                Audience::Everyone,
            );
        }
        if consistency_may_change {
            let mut c = compare(&s.maglevds);
            carry_since(&mut c, &s.consistency, now_ms());
            if c != s.consistency {
                self.broker.publish(
                    "consistency",
                    serde_json::to_string(&c).unwrap_or_default(),
                    Audience::Everyone,
                );
                s.consistency = c;
            }
        }
    }
}

/// The event for a changed frontend: only the members that changed
/// (`members`) when its pools kept their shape, the whole frontend
/// (`frontend`) otherwise. With 100 backends a frontend is ~15 KB of JSON,
/// one member ~200 bytes: a flapping backend must not resend its pool.
fn frontend_change(maglevd: &str, new: &Frontend, old: &Frontend) -> (&'static str, String) {
    let same_shape = new.pools.len() == old.pools.len()
        && new.pools.iter().zip(&old.pools).all(|(a, b)| {
            a.name == b.name
                && a.backends.len() == b.backends.len()
                && a.backends
                    .iter()
                    .zip(&b.backends)
                    .all(|(x, y)| x.name == y.name)
        });
    // What a `members` event does not carry changes only on a reload.
    let rest = |f: &Frontend| Frontend {
        pools: Vec::new(),
        state: String::new(),
        why: String::new(),
        active_pool: 0,
        ..f.clone()
    };
    if !same_shape || rest(new) != rest(old) {
        return (
            "frontend",
            json!({ "maglevd": maglevd, "frontend": new }).to_string(),
        );
    }
    let members: Vec<serde_json::Value> = new
        .pools
        .iter()
        .zip(&old.pools)
        .flat_map(|(p, q)| {
            p.backends
                .iter()
                .zip(&q.backends)
                .filter(|(a, b)| a != b)
                .map(move |(a, _)| json!({ "pool": p.name, "backend": a }))
        })
        .collect();
    (
        "members",
        json!({
            "maglevd": maglevd, "frontend": new.name, "state": new.state,
            "why": new.why, "active_pool": new.active_pool, "members": members,
        })
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Start;

    #[test]
    fn a_member_change_sends_only_that_member() {
        let member = |name: &str, state: &str| crate::model::PoolBackend {
            name: name.into(),
            state: state.into(),
            ..Default::default()
        };
        let pool = |states: [&str; 3]| crate::model::Pool {
            name: "p".into(),
            backends: vec![
                member("a", states[0]),
                member("b", states[1]),
                member("c", states[2]),
            ],
        };
        let old = Frontend {
            name: "www".into(),
            pools: vec![pool(["up", "up", "up"])],
            ..Default::default()
        };
        let new = Frontend {
            pools: vec![pool(["up", "down", "up"])],
            ..old.clone()
        };
        let (event, data) = frontend_change("lb1", &new, &old);
        assert_eq!(event, "members");
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(v["members"].as_array().unwrap().len(), 1);
        assert_eq!(v["members"][0]["backend"]["name"], "b");
        assert_eq!(v["members"][0]["pool"], "p");
        // A member more or less: the whole frontend.
        let mut grown = new.clone();
        grown.pools[0].backends.push(member("d", "up"));
        assert_eq!(frontend_change("lb1", &grown, &old).0, "frontend");
    }

    #[test]
    fn targets() {
        let t = Target::parse("lb1=10.0.0.1:9090").unwrap();
        assert_eq!(
            (t.name.as_str(), t.address.as_str()),
            ("lb1", "10.0.0.1:9090")
        );
        let t = Target::parse("unix:/run/m.sock").unwrap();
        assert_eq!(t.name, "unix:/run/m.sock");
        assert!(Target::parse("").is_err());
        assert!(Target::parse("x=").is_err());
    }

    #[test]
    fn updates_publish_only_what_changed() {
        let hub = Hub::new(&[Target::parse("a=127.0.0.1:1").unwrap()], 5);
        let (_, mut rx) = hub.broker.subscribe(None);
        let f = Frontend {
            name: "www".into(),
            state: "up".into(),
            ..Default::default()
        };
        hub.update(
            0,
            Update {
                link: Some(None),
                frontends: Some(vec![f.clone()]),
                ..Default::default()
            },
        );
        let names: Vec<&str> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["link", "maglevd"]);
        // The same again: nothing. A state change: one frontend event.
        hub.update(
            0,
            Update {
                frontends: Some(vec![f.clone()]),
                ..Default::default()
            },
        );
        assert!(rx.try_recv().is_err());
        let down = Frontend {
            state: "down".into(),
            ..f
        };
        hub.update(
            0,
            Update {
                frontends: Some(vec![down]),
                ..Default::default()
            },
        );
        let ev = rx.try_recv().unwrap();
        assert_eq!(ev.name, "members");
        assert!(ev.data.contains("\"state\":\"down\""), "{}", ev.data);
        // A description (a reload) resends the whole frontend.
        let described = Frontend {
            description: "new".into(),
            state: "down".into(),
            name: "www".into(),
            ..Default::default()
        };
        hub.update(
            0,
            Update {
                frontends: Some(vec![described]),
                ..Default::default()
            },
        );
        assert_eq!(rx.try_recv().unwrap().name, "frontend");
        // The snapshot names the last event it holds.
        let snap = hub.snapshot();
        assert_eq!(snap.last_event_id, "5-4");
        assert!(matches!(hub.broker.subscribe(Some("5-4")).0, Start::Replay(v) if v.is_empty()));
    }
}
