//! One task per maglevd: a long-lived `WatchEvents` stream (all kinds, log
//! records from debug up), a full refresh every 30 s as a guard against
//! anything missed, a 5 s liveness call, and VPP's LB state re-read at
//! most once a second, on the leading and the trailing edge of a burst.
//! Every call has a deadline and each maglevd has its own task, so one
//! that is down or slow never holds up another.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use maglev_access::tls::ClientTls;
use maglev_proto as pb;
use maglev_proto::maglev_client::MaglevClient;
use serde_json::json;
use tokio::time::{sleep_until, Instant};
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::broker::Audience;
use crate::hub::{Hub, Update};
use crate::model::{Backend, Frontend, HealthCheck, Vip, Vpp};

/// How often everything is re-read.
pub const FULL_REFRESH: Duration = Duration::from_secs(30);
/// How often the link is checked.
pub const LIVENESS: Duration = Duration::from_secs(5);
/// The least time between two LB-state reads.
pub const LB_DEBOUNCE: Duration = Duration::from_secs(1);
/// How long after an event frontends and backends are re-read (bursts of
/// transitions coalesce into one read).
const SETTLE: Duration = Duration::from_millis(50);
/// How often probe heartbeats and API pulses are sent (coalesced).
const PULSE: Duration = Duration::from_millis(250);
/// The longest any one call may take.
const CALL: Duration = Duration::from_secs(5);
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

type Client = MaglevClient<Channel>;

/// Why a session with a maglevd ended.
type Lost = String;

/// An error with its causes, each said once.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        src = s.source();
    }
    text
}

fn why(s: &tonic::Status) -> String {
    let text = causes(s);
    if text.is_empty() {
        format!("{:?}", s.code())
    } else {
        text
    }
}

async fn call<T>(
    f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(CALL, f).await {
        Ok(r) => r.map(tonic::Response::into_inner),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer within 5 s")),
    }
}

/// Watches maglevd `i` of the hub until `shutdown` completes.
pub async fn watch(hub: Arc<Hub>, i: usize, tls: ClientTls, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let address = hub.target(i).address;
    let mut backoff = BACKOFF_MIN;
    let mut was_lost: Option<String> = None;
    loop {
        let dialed = tokio::select! {
            () = &mut shutdown => return,
            d = maglev_access::dial::dial(&address, &tls) => d,
        };
        let lost = match dialed {
            Ok(channel) => {
                let client =
                    MaglevClient::new(channel).max_decoding_message_size(maglev_proto::MAX_MESSAGE);
                hub.set_client(i, Some(client.clone()));
                let r = tokio::select! {
                    () = &mut shutdown => return,
                    r = session(&hub, i, client, &mut backoff) => r,
                };
                hub.set_client(i, None);
                match r {
                    Err(lost) => lost,
                    Ok(never) => match never {},
                }
            }
            Err(e) => causes(&e),
        };
        if was_lost.as_deref() != Some(lost.as_str()) {
            warn!(event = "maglevd-lost", maglevd = %address, error = %lost, retry_ms = backoff.as_millis() as u64);
            was_lost = Some(lost.clone());
        }
        hub.update(
            i,
            Update {
                link: Some(Some(lost)),
                ..Default::default()
            },
        );
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Reads the frontends and backends.
async fn quick(hub: &Hub, i: usize, c: &mut Client) -> Result<(), tonic::Status> {
    let f = call(c.list_frontends(pb::ListFrontendsRequest {})).await?;
    let b = call(c.list_backends(pb::ListBackendsRequest {})).await?;
    hub.update(
        i,
        Update {
            link: Some(None),
            frontends: Some(f.frontends.iter().map(Frontend::from).collect()),
            backends: Some(b.backends.iter().map(Backend::from).collect()),
            ..Default::default()
        },
    );
    Ok(())
}

/// Reads everything but the LB state.
async fn full(hub: &Hub, i: usize, c: &mut Client) -> Result<(), tonic::Status> {
    let h = call(c.list_health_checks(pb::ListHealthChecksRequest {})).await?;
    let vpp = match call(c.get_vpp_info(pb::GetVppInfoRequest {})).await {
        Ok(v) => Some(Vpp::from(&v)),
        Err(s) if s.code() == tonic::Code::Unavailable => Some(Vpp {
            connected: false,
            error: Some(why(&s)),
            ..Default::default()
        }),
        Err(s) => return Err(s),
    };
    hub.update(
        i,
        Update {
            healthchecks: Some(h.healthchecks.iter().map(HealthCheck::from).collect()),
            vpp: Some(vpp),
            ..Default::default()
        },
    );
    quick(hub, i, c).await
}

/// Reads VPP's LB state.
async fn lb(hub: &Hub, i: usize, c: &mut Client) -> Result<(), tonic::Status> {
    let lb = match call(c.get_vpplb_state(pb::GetVpplbStateRequest {})).await {
        Ok(s) => Some(s.vips.iter().map(Vip::from).collect()),
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::Unavailable | tonic::Code::FailedPrecondition
            ) =>
        {
            None
        }
        Err(s) => return Err(s),
    };
    hub.update(
        i,
        Update {
            lb: Some(lb),
            ..Default::default()
        },
    );
    Ok(())
}

/// The LB-state reader's debounce: at most one read per
/// [`LB_DEBOUNCE`], the first of a burst at once, the last one after.
#[derive(Debug)]
struct Debounce {
    last: Option<Instant>,
    due: Option<Instant>,
}

impl Debounce {
    fn trigger(&mut self, now: Instant) {
        let earliest = self.last.map_or(now, |l| (l + LB_DEBOUNCE).max(now));
        self.due = Some(self.due.map_or(earliest, |d| d.min(earliest)));
    }
    fn fired(&mut self, now: Instant) {
        self.last = Some(now);
        self.due = None;
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// One connected stretch: returns why it ended.
async fn session(
    hub: &Hub,
    i: usize,
    mut c: Client,
    backoff: &mut Duration,
) -> Result<std::convert::Infallible, Lost> {
    let target = hub.target(i);
    let name = target.name;
    let req = pb::WatchEventsRequest {
        log: true,
        log_level: "debug".into(),
        backend: true,
        frontend: true,
    };
    let mut stream = call(c.watch_events(req)).await.map_err(|s| why(&s))?;
    full(hub, i, &mut c).await.map_err(|s| why(&s))?;
    info!(event = "maglevd-connected", maglevd = %target.address);
    *backoff = BACKOFF_MIN;
    let mut debounce = Debounce {
        last: None,
        due: Some(Instant::now()),
    };
    let mut settle: Option<Instant> = None;
    let mut refresh = tokio::time::interval_at(Instant::now() + FULL_REFRESH, FULL_REFRESH);
    let mut live = tokio::time::interval_at(Instant::now() + LIVENESS, LIVENESS);
    let mut pulse = tokio::time::interval(PULSE);
    pulse.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probed: BTreeSet<String> = BTreeSet::new();
    let mut api = false;
    loop {
        tokio::select! {
            msg = stream.message() => {
                let ev = match msg {
                    Ok(Some(ev)) => ev,
                    Ok(None) => return Err("maglevd ended the event stream".into()),
                    Err(s) => return Err(why(&s)),
                };
                let now = Instant::now();
                match ev.event {
                    Some(pb::event::Event::Backend(b)) => {
                        let t = b.transition.unwrap_or_default();
                        hub.broker.publish("transition", json!({
                            "maglevd": name, "backend": b.backend, "address": b.address,
                            "from": t.from, "to": t.to, "code": t.code, "detail": t.detail,
                            "at_unix_ms": ev.at_unix_ns / 1_000_000,
                        }).to_string(), Audience::Everyone);
                        settle.get_or_insert(now + SETTLE);
                        debounce.trigger(now);
                    }
                    // The replay on subscribe (from == to) changes nothing.
                    Some(pb::event::Event::Frontend(f)) if f.from != f.to => {
                        settle.get_or_insert(now + SETTLE);
                        debounce.trigger(now);
                    }
                    Some(pb::event::Event::Frontend(_)) => {}
                    Some(pb::event::Event::Log(l)) => {
                        let event = l.fields.get("event").map(String::as_str).unwrap_or("");
                        match event {
                            "probe" => {
                                if let Some(b) = l.fields.get("backend") {
                                    probed.insert(b.clone());
                                }
                                continue;
                            }
                            "vpp-api-send" | "vpp-api-recv" | "vpp-api-send-multi" | "vpp-api-recv-multi" => {
                                api = true;
                                continue;
                            }
                            // Already in the log as a `transition` event.
                            "backend-transition" => continue,
                            "vpp-connect" | "vpp-disconnect" | "vpp-restart" => {
                                if let Err(s) = full(hub, i, &mut c).await {
                                    return Err(why(&s));
                                }
                                debounce.trigger(now);
                            }
                            e if e.starts_with("vpp-lbsync") || e == "config-reload" => {
                                settle.get_or_insert(now + SETTLE);
                                debounce.trigger(now);
                            }
                            _ => {}
                        }
                        hub.broker.publish("log", json!({
                            "maglevd": name, "level": l.level, "message": l.message,
                            "fields": l.fields, "at_unix_ms": ev.at_unix_ns / 1_000_000,
                        }).to_string(), Audience::Admin);
                    }
                    Some(pb::event::Event::Missed(m)) => {
                        // Events were lost on maglevd's side: re-read all.
                        warn!(event = "maglevd-events-missed", maglevd = %name, count = m.count);
                        full(hub, i, &mut c).await.map_err(|s| why(&s))?;
                        debounce.trigger(now);
                    }
                    None => {}
                }
            }
            () = sleep_until(settle.unwrap_or_else(far)), if settle.is_some() => {
                settle = None;
                quick(hub, i, &mut c).await.map_err(|s| why(&s))?;
            }
            () = sleep_until(debounce.due.unwrap_or_else(far)), if debounce.due.is_some() => {
                debounce.fired(Instant::now());
                lb(hub, i, &mut c).await.map_err(|s| why(&s))?;
            }
            _ = refresh.tick() => {
                full(hub, i, &mut c).await.map_err(|s| why(&s))?;
                debounce.trigger(Instant::now());
            }
            _ = live.tick() => {
                call(c.list_health_checks(pb::ListHealthChecksRequest {})).await.map_err(|s| why(&s))?;
            }
            () = hub.link(i).poke.notified() => {
                quick(hub, i, &mut c).await.map_err(|s| why(&s))?;
                debounce.trigger(Instant::now());
            }
            _ = pulse.tick() => {
                if !probed.is_empty() {
                    let b: Vec<String> = std::mem::take(&mut probed).into_iter().collect();
                    hub.broker.flash("probes", json!({ "maglevd": name, "backends": b }).to_string());
                }
                if std::mem::take(&mut api) {
                    hub.broker.flash("vpp-api", json!({ "maglevd": name }).to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn lb_reads_are_debounced_on_both_edges() {
        let t0 = Instant::now();
        let mut d = Debounce {
            last: None,
            due: None,
        };
        d.trigger(t0);
        assert_eq!(d.due, Some(t0), "the first of a burst at once");
        d.fired(t0);
        let t1 = t0 + Duration::from_millis(200);
        d.trigger(t1);
        d.trigger(t1 + Duration::from_millis(100));
        assert_eq!(d.due, Some(t0 + LB_DEBOUNCE), "the rest once, a second on");
        d.fired(t0 + LB_DEBOUNCE);
        let t2 = t0 + Duration::from_secs(5);
        d.trigger(t2);
        assert_eq!(d.due, Some(t2), "quiet long enough: at once again");
    }
}
