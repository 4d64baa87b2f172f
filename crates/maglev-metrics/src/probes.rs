//! Each backend's probe counters and histogram, held by its probe loop.
//! maglevd observes every probe (tens of thousands a second at scale):
//! building six label strings and hashing them cost 850 ns a probe at
//! 50,000 backends, and finding the series by name in a map shared by
//! every probe thread still took that map's lock and its cold keys on
//! every probe. A loop asks for its backend's handle once
//! ([`ProbeSeries::backend`]) and then touches only that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use maglev_health::{Code, ProbeResult};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::Labels;

pub(crate) type Totals = Family<Labels, Counter>;
pub(crate) type Durations = Family<Labels, Histogram, fn() -> Histogram>;

/// What a backend has in the families, for its removal, and the handles
/// its loops hold, which lose their series with it.
#[derive(Default)]
struct Record {
    /// Every (type, code, result) it has a counter series of, and every
    /// type it has a histogram of: this check's and earlier ones'.
    created: Vec<(&'static str, Code, bool)>,
    timed: Vec<&'static str>,
    handles: Vec<Weak<BackendSeries>>,
}

/// The probe families and, by backend, what is in them.
pub(crate) struct ProbeSeries {
    total: Totals,
    durations: Durations,
    by_backend: Mutex<HashMap<Arc<str>, Record>>,
}

impl ProbeSeries {
    pub(crate) fn new(total: Totals, durations: Durations) -> Arc<ProbeSeries> {
        Arc::new(ProbeSeries {
            total,
            durations,
            by_backend: Mutex::default(),
        })
    }

    /// The handle one loop of `backend`, checked by `check_type`, reports
    /// to. Its series are made at its first probe of each kind.
    pub(crate) fn backend(
        self: &Arc<Self>,
        backend: &str,
        check_type: &'static str,
    ) -> Arc<BackendSeries> {
        let mut map = self.by_backend.lock().expect("probe series lock");
        // The record's name, when there is one: one copy per backend.
        let backend: Arc<str> = map
            .get_key_value(backend)
            .map_or_else(|| Arc::from(backend), |(k, _)| Arc::clone(k));
        let handle = Arc::new_cyclic(|me| BackendSeries {
            me: me.clone(),
            owner: Arc::clone(self),
            backend,
            check_type,
            found: Mutex::default(),
        });
        Self::enrol_in(&mut map, &handle, None, false);
        handle
    }

    /// Puts `handle` on its backend's record (a removal then reaches it)
    /// with the series it just made.
    fn enrol(&self, handle: &BackendSeries, created: Option<(Code, bool)>, timed: bool) {
        let mut map = self.by_backend.lock().expect("probe series lock");
        Self::enrol_in(&mut map, handle, created, timed);
    }

    fn enrol_in(
        map: &mut HashMap<Arc<str>, Record>,
        handle: &BackendSeries,
        created: Option<(Code, bool)>,
        timed: bool,
    ) {
        let r = map.entry(Arc::clone(&handle.backend)).or_default();
        r.handles.retain(|h| h.strong_count() > 0);
        if !r.handles.iter().any(|h| h.ptr_eq(&handle.me)) {
            r.handles.push(handle.me.clone());
        }
        let t = handle.check_type;
        if let Some((code, pass)) = created {
            if !r.created.contains(&(t, code, pass)) {
                r.created.push((t, code, pass));
            }
        }
        if timed && !r.timed.contains(&t) {
            r.timed.push(t);
        }
    }

    /// The backends with series or handles.
    pub(crate) fn backends(&self) -> Vec<String> {
        let map = self.by_backend.lock().expect("probe series lock");
        map.keys().map(|k| k.to_string()).collect()
    }

    /// Removes every series of `backend` (gone from the config): a
    /// config that churns backends must not grow the scrape forever. A
    /// handle still held (the backend came back before its removal was
    /// counted) makes its series again at its next probe.
    pub(crate) fn forget(&self, backend: &str) {
        let Some(r) = self
            .by_backend
            .lock()
            .expect("probe series lock")
            .remove(backend)
        else {
            return;
        };
        for (check_type, code, pass) in &r.created {
            self.total
                .remove(&counter_labels(backend, check_type, *code, *pass));
        }
        for check_type in &r.timed {
            self.durations.remove(&duration_labels(backend, check_type));
        }
        for h in r.handles.iter().filter_map(Weak::upgrade) {
            *h.found.lock().expect("probe series lock") = Found::default();
        }
    }
}

/// One loop's handle on its backend's series.
pub(crate) struct BackendSeries {
    me: Weak<BackendSeries>,
    owner: Arc<ProbeSeries>,
    backend: Arc<str>,
    check_type: &'static str,
    /// Only this backend's probes take it (one at a time): never waited on.
    found: Mutex<Found>,
}

/// The series found so far.
#[derive(Default)]
struct Found {
    /// By (code, result).
    counters: Vec<(Code, bool, Counter)>,
    duration: Option<Histogram>,
}

impl BackendSeries {
    /// Counts `result` and times it.
    pub(crate) fn observe(&self, result: &ProbeResult) {
        let mut found = self.found.lock().expect("probe series lock");
        let kind = (result.code, result.pass);
        match found.counters.iter().find(|c| (c.0, c.1) == kind) {
            Some((_, _, counter)) => {
                counter.inc();
            }
            None => {
                // First of its kind: the series by its labels.
                let labels = counter_labels(&self.backend, self.check_type, kind.0, kind.1);
                let counter = self.owner.total.get_or_create(&labels).clone();
                counter.inc();
                found.counters.push((kind.0, kind.1, counter));
                self.owner.enrol(self, Some(kind), false);
            }
        }
        // A static backend is not probed: a histogram of its "probes"
        // would be 20 series per backend of nothing (1.2 million lines at
        // 64,000 backends).
        if self.check_type == "static" {
            return;
        }
        if found.duration.is_none() {
            let labels = duration_labels(&self.backend, self.check_type);
            found.duration = Some(self.owner.durations.get_or_create(&labels).clone());
            self.owner.enrol(self, None, true);
        }
        if let Some(h) = &found.duration {
            h.observe(result.duration.as_secs_f64());
        }
    }
}

impl maglev_health::BackendObserver for BackendSeries {
    fn probe_done(&self, result: &ProbeResult) {
        self.observe(result);
    }
}

/// `maglev_probe_total`'s labels.
fn counter_labels(backend: &str, check_type: &str, code: Code, pass: bool) -> Labels {
    vec![
        ("backend", backend.to_string()),
        ("type", check_type.to_string()),
        ("result", if pass { "pass" } else { "fail" }.to_string()),
        ("code", code.to_string()),
    ]
}

/// `maglev_probe_duration_seconds`'s labels.
fn duration_labels(backend: &str, check_type: &str) -> Labels {
    vec![
        ("backend", backend.to_string()),
        ("type", check_type.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn value(total: &Family<Labels, Counter>, b: &str, t: &str, r: &str, c: &str) -> u64 {
        total
            .get_or_create(&vec![
                ("backend", b.to_string()),
                ("type", t.to_string()),
                ("result", r.to_string()),
                ("code", c.to_string()),
            ])
            .get()
    }

    fn encoded(total: &Totals, durations: &Durations) -> String {
        let mut r = prometheus_client::registry::Registry::default();
        r.register("d", "d", durations.clone());
        r.register("p", "p", total.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        text
    }

    #[test]
    fn counts_land_in_the_labelled_series() {
        let total = Totals::default();
        let durations = Durations::new_with_constructor(crate::histogram);
        let s = ProbeSeries::new(total.clone(), durations.clone());
        let ok = ProbeResult::new(Code::L7Ok, "HTTP 200", Duration::from_millis(2));
        let sts = ProbeResult::new(Code::L7Sts, "HTTP 503", Duration::from_millis(3));
        let web1 = s.backend("web1", "http");
        for _ in 0..3 {
            web1.observe(&ok);
        }
        web1.observe(&sts);
        s.backend("web2", "http").observe(&ok);
        assert_eq!(value(&total, "web1", "http", "pass", "L7OK"), 3);
        assert_eq!(value(&total, "web1", "http", "fail", "L7STS"), 1);
        assert_eq!(value(&total, "web2", "http", "pass", "L7OK"), 1);
        // A reload makes web1 a tcp check: a new loop, new series, the
        // old ones stay.
        drop(web1);
        let tcp = ProbeResult::new(Code::L4Ok, "connected", Duration::from_millis(1));
        let web1 = s.backend("web1", "tcp");
        web1.observe(&tcp);
        web1.observe(&tcp);
        assert_eq!(value(&total, "web1", "tcp", "pass", "L4OK"), 2);
        assert_eq!(value(&total, "web1", "http", "pass", "L7OK"), 3);
        // Durations: one histogram per backend and type, none for static.
        let st = ProbeResult::new(Code::Static, "static backend", Duration::ZERO);
        s.backend("s1", "static").observe(&st);
        assert_eq!(value(&total, "s1", "static", "pass", "STATIC"), 1);
        let text = encoded(&total, &durations);
        assert!(
            text.contains("d_count{backend=\"web1\",type=\"http\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("d_count{backend=\"web1\",type=\"tcp\"} 2"),
            "{text}"
        );
        assert!(!text.contains("d_count{backend=\"s1\""), "{text}");
        // web1 goes: all its series, of both types, go with it.
        drop(web1);
        s.forget("web1");
        let text = encoded(&total, &durations);
        assert!(!text.contains("web1"), "{text}");
        assert!(text.contains("backend=\"web2\""), "{text}");
        assert!(!s.backends().contains(&"web1".to_string()));
        // Back again later: counted from zero.
        s.backend("web1", "http").observe(&ok);
        assert_eq!(value(&total, "web1", "http", "pass", "L7OK"), 1);
    }

    /// A backend removed and added back before its removal was counted:
    /// the new loop's handle, made first, loses its series with the old
    /// backend's and makes them again at its next probe, so they are
    /// neither lost for good nor kept detached from the scrape.
    #[test]
    fn a_held_handle_makes_its_series_again_after_a_removal() {
        let total = Totals::default();
        let durations = Durations::new_with_constructor(crate::histogram);
        let s = ProbeSeries::new(total.clone(), durations.clone());
        let ok = ProbeResult::new(Code::L7Ok, "HTTP 200", Duration::from_millis(2));
        let h = s.backend("web1", "http");
        h.observe(&ok);
        h.observe(&ok);
        s.forget("web1");
        assert!(!encoded(&total, &durations).contains("web1"));
        h.observe(&ok);
        let text = encoded(&total, &durations);
        assert!(
            text.contains(
                "p_total{backend=\"web1\",type=\"http\",result=\"pass\",code=\"L7OK\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("d_count{backend=\"web1\",type=\"http\"} 1"),
            "{text}"
        );
        // And they are on the record again: the next removal takes them.
        s.forget("web1");
        assert!(!encoded(&total, &durations).contains("web1"));
    }
}
