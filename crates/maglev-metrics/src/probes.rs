//! Each backend's probe counters and histogram, found by its name
//! without building label sets: maglevd observes every probe (tens of
//! thousands a second at scale), and building six label strings and
//! hashing them cost 850 ns a probe at 50,000 backends.

use std::collections::HashMap;
use std::sync::RwLock;

use maglev_health::{Code, ProbeResult};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::Labels;

/// The series one backend's probes have fed so far.
struct Series {
    /// The `type` label they carry: a reload that changes the check
    /// starts over.
    check_type: String,
    /// By (code, result).
    counters: Vec<(Code, bool, Counter)>,
    /// `None` for a static backend (nothing is timed).
    duration: Option<Histogram>,
    /// Every (type, code, result) it has a counter series of, and every
    /// type it has a histogram of, this type's and earlier ones': what
    /// to remove when the backend goes.
    created: Vec<(String, Code, bool)>,
    timed: Vec<String>,
}

/// Handles on the families' series, by backend.
#[derive(Default)]
pub(crate) struct ProbeSeries {
    by_backend: RwLock<HashMap<String, Series>>,
}

impl ProbeSeries {
    /// Counts `result` in `total` and times it in `durations`.
    pub(crate) fn observe(
        &self,
        total: &Family<Labels, Counter>,
        durations: &Family<Labels, Histogram, fn() -> Histogram>,
        backend: &str,
        check_type: &str,
        result: &ProbeResult,
    ) {
        {
            let map = self.by_backend.read().expect("probe series lock");
            if let Some(s) = map.get(backend).filter(|s| s.check_type == check_type) {
                let found = s
                    .counters
                    .iter()
                    .find(|(code, pass, _)| *code == result.code && *pass == result.pass);
                if let Some((_, _, counter)) = found {
                    counter.inc();
                    if let Some(h) = &s.duration {
                        h.observe(result.duration.as_secs_f64());
                    }
                    return;
                }
            }
        }
        // First of its kind: the series by their labels, as before.
        let counter = total
            .get_or_create(&counter_labels(
                backend,
                check_type,
                result.code,
                result.pass,
            ))
            .clone();
        // A static backend is not probed: a histogram of its "probes"
        // would be 20 series per backend of nothing (1.2 million lines at
        // 64,000 backends).
        let duration = (check_type != "static").then(|| {
            durations
                .get_or_create(&duration_labels(backend, check_type))
                .clone()
        });
        counter.inc();
        if let Some(h) = &duration {
            h.observe(result.duration.as_secs_f64());
        }
        let mut map = self.by_backend.write().expect("probe series lock");
        let s = map.entry(backend.to_string()).or_insert_with(|| Series {
            check_type: check_type.to_string(),
            counters: Vec::new(),
            duration: None,
            created: Vec::new(),
            timed: Vec::new(),
        });
        if s.check_type != check_type {
            s.check_type = check_type.to_string();
            s.counters.clear();
        }
        if duration.is_some() && !s.timed.iter().any(|t| t == check_type) {
            s.timed.push(check_type.to_string());
        }
        s.duration = duration;
        if !s
            .created
            .iter()
            .any(|(t, code, pass)| t == check_type && *code == result.code && *pass == result.pass)
        {
            s.created
                .push((check_type.to_string(), result.code, result.pass));
        }
        if !s
            .counters
            .iter()
            .any(|(code, pass, _)| *code == result.code && *pass == result.pass)
        {
            s.counters.push((result.code, result.pass, counter));
        }
    }

    /// The backends with series.
    pub(crate) fn backends(&self) -> Vec<String> {
        let map = self.by_backend.read().expect("probe series lock");
        map.keys().cloned().collect()
    }

    /// Removes every series of `backend` (gone from the config): a
    /// config that churns backends must not grow the scrape forever.
    pub(crate) fn forget(
        &self,
        total: &Family<Labels, Counter>,
        durations: &Family<Labels, Histogram, fn() -> Histogram>,
        backend: &str,
    ) {
        let Some(s) = self
            .by_backend
            .write()
            .expect("probe series lock")
            .remove(backend)
        else {
            return;
        };
        for (check_type, code, pass) in &s.created {
            total.remove(&counter_labels(backend, check_type, *code, *pass));
        }
        for check_type in &s.timed {
            durations.remove(&duration_labels(backend, check_type));
        }
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

    #[test]
    fn counts_land_in_the_labelled_series() {
        let total = Family::<Labels, Counter>::default();
        let durations =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(crate::histogram);
        let s = ProbeSeries::default();
        let ok = ProbeResult::new(Code::L7Ok, "HTTP 200", Duration::from_millis(2));
        let sts = ProbeResult::new(Code::L7Sts, "HTTP 503", Duration::from_millis(3));
        for _ in 0..3 {
            s.observe(&total, &durations, "web1", "http", &ok);
        }
        s.observe(&total, &durations, "web1", "http", &sts);
        s.observe(&total, &durations, "web2", "http", &ok);
        assert_eq!(value(&total, "web1", "http", "pass", "L7OK"), 3);
        assert_eq!(value(&total, "web1", "http", "fail", "L7STS"), 1);
        assert_eq!(value(&total, "web2", "http", "pass", "L7OK"), 1);
        // A reload makes web1 a tcp check: new series, the old ones stay.
        let tcp = ProbeResult::new(Code::L4Ok, "connected", Duration::from_millis(1));
        s.observe(&total, &durations, "web1", "tcp", &tcp);
        s.observe(&total, &durations, "web1", "tcp", &tcp);
        assert_eq!(value(&total, "web1", "tcp", "pass", "L4OK"), 2);
        assert_eq!(value(&total, "web1", "http", "pass", "L7OK"), 3);
        // Durations: one histogram per backend and type, none for static.
        let st = ProbeResult::new(Code::Static, "static backend", Duration::ZERO);
        s.observe(&total, &durations, "s1", "static", &st);
        assert_eq!(value(&total, "s1", "static", "pass", "STATIC"), 1);
        let mut text = String::new();
        let mut r = prometheus_client::registry::Registry::default();
        r.register("d", "d", durations.clone());
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(
            text.contains("d_count{backend=\"web1\",type=\"http\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("d_count{backend=\"web1\",type=\"tcp\"} 2"),
            "{text}"
        );
        assert!(!text.contains("s1"), "{text}");
        // web1 goes: all its series, of both types, go with it.
        s.forget(&total, &durations, "web1");
        let mut r = prometheus_client::registry::Registry::default();
        r.register("d", "d", durations.clone());
        r.register("p", "p", total.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(!text.contains("web1"), "{text}");
        assert!(text.contains("backend=\"web2\""), "{text}");
        // Back again later: counted from zero.
        s.observe(&total, &durations, "web1", "http", &ok);
        assert_eq!(value(&total, "web1", "http", "pass", "L7OK"), 1);
    }
}
