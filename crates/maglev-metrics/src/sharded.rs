//! A histogram that every probe thread observes: each thread counts into
//! a shard of its own, on cache lines no other thread writes, and a
//! scrape adds the shards up. prometheus-client's histogram is one
//! mutex: observed by every probe of every thread, it cost 60–150 ns a
//! probe on one thread and 400 ns on two (the lock's line moving between
//! the cores on every probe).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// The most shards: threads beyond this many share them (still correct,
/// only no longer apart).
const MAX_SHARDS: usize = 64;

/// Cumulative-free bucket counts, their sum and the observations' sum,
/// per thread; encoded as prometheus-client encodes its own histogram.
#[derive(Clone, Debug)]
pub(crate) struct ShardedHistogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Finite upper bounds, ascending; the last bucket (+Inf) is implicit.
    bounds: Vec<f64>,
    shards: Box<[Shard]>,
}

/// One thread's counts, alone on its cache lines.
#[derive(Debug)]
#[repr(align(128))]
struct Shard {
    /// `f64` bits.
    sum: AtomicU64,
    /// One per bound, then +Inf.
    buckets: Box<[AtomicU64]>,
}

/// Which shard this thread counts into: threads in turn.
fn shard_of_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SHARD.with(|s| *s)
}

impl ShardedHistogram {
    /// Buckets at `bounds` (finite, ascending) and +Inf, a shard per
    /// core.
    pub(crate) fn new(bounds: impl IntoIterator<Item = f64>) -> ShardedHistogram {
        let bounds: Vec<f64> = bounds.into_iter().filter(|b| b.is_finite()).collect();
        let n = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, MAX_SHARDS);
        let shards = (0..n)
            .map(|_| Shard {
                sum: AtomicU64::new(0f64.to_bits()),
                buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            })
            .collect();
        ShardedHistogram(Arc::new(Inner { bounds, shards }))
    }

    pub(crate) fn observe(&self, v: f64) {
        let inner = &*self.0;
        let shard = &inner.shards[shard_of_this_thread() % inner.shards.len()];
        // The first bucket whose bound is not below `v` (NaN: +Inf).
        let i = if v.is_nan() {
            inner.bounds.len()
        } else {
            inner.bounds.partition_point(|b| *b < v)
        };
        shard.buckets[i].fetch_add(1, Ordering::Relaxed);
        // Threads beyond the shards may share one: add, do not store.
        let _ = shard
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some((f64::from_bits(s) + v).to_bits())
            });
    }

    /// (sum, count, (bound, count) per bucket, +Inf last), the shards
    /// added up. The count is the buckets' sum, so a scrape during an
    /// observation never shows a count the buckets do not add up to.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let inner = &*self.0;
        let mut sum = 0.0;
        let mut buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .map(|b| (b, 0))
            .collect();
        for shard in &inner.shards {
            sum += f64::from_bits(shard.sum.load(Ordering::Relaxed));
            for (b, c) in buckets.iter_mut().zip(shard.buckets.iter()) {
                b.1 += c.load(Ordering::Relaxed);
            }
        }
        let count = buckets.iter().map(|b| b.1).sum();
        (sum, count, buckets)
    }
}

impl TypedMetric for ShardedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ShardedHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    fn text(register: impl FnOnce(&mut Registry)) -> String {
        let mut r = Registry::default();
        register(&mut r);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        out
    }

    /// Observed from several threads, it reads as prometheus-client's
    /// own histogram fed the same values reads.
    #[test]
    fn encodes_as_the_plain_histogram_does() {
        let sharded = ShardedHistogram::new(crate::histogram_bounds());
        let plain = crate::histogram();
        // Between the bounds, beyond the last, and on each bound (which
        // belongs to the bucket it bounds).
        let mut values: Vec<f64> = (0..3_983)
            .map(|i| f64::from(i % 97) * 0.000_37 + if i % 500 == 0 { 9.0 } else { 0.0 })
            .collect();
        values.extend(crate::histogram_bounds());
        std::thread::scope(|s| {
            for part in values.chunks(1_000) {
                let sharded = sharded.clone();
                s.spawn(move || part.iter().for_each(|v| sharded.observe(*v)));
            }
        });
        values.iter().for_each(|v| plain.observe(*v));
        let a = text(|r| r.register("lag", "Lag", sharded.clone()));
        let b = text(|r| r.register("lag", "Lag", plain.clone()));
        // The sums were added in other orders: compare them as numbers.
        let sum = |t: &str| -> f64 {
            let line = t.lines().find(|l| l.starts_with("lag_sum ")).unwrap();
            line["lag_sum ".len()..].parse().unwrap()
        };
        assert!((sum(&a) - sum(&b)).abs() < 1e-9, "{a}\n{b}");
        let rest = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with("lag_sum "))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(rest(&a), rest(&b));
        assert!(a.contains("lag_count 4000"), "{a}");
        assert!(a.contains("lag_bucket{le=\"+Inf\"} 4000"), "{a}");
    }

    /// Each thread counts into its own shard (threads in turn, so
    /// threads started one after another are apart). Other tests' threads
    /// take turns too, and one can take the turn between this test's two
    /// (then they share a shard): a pair apart in any of ten tries shows
    /// the turns; with every thread on one shard no try would.
    #[test]
    fn threads_count_into_shards_of_their_own() {
        let mut apart = false;
        for _ in 0..10 {
            let h = ShardedHistogram::new([1.0]);
            let n = h.0.shards.len();
            let mut mine: Vec<usize> = std::thread::scope(|s| {
                (0..2)
                    .map(|_| {
                        let h = h.clone();
                        s.spawn(move || {
                            h.observe(0.5);
                            shard_of_this_thread() % n
                        })
                        .join()
                        .unwrap()
                    })
                    .collect()
            });
            let counts: Vec<u64> =
                h.0.shards
                    .iter()
                    .map(|s| s.buckets[0].load(Ordering::Relaxed))
                    .collect();
            mine.sort_unstable();
            mine.dedup();
            let used: Vec<usize> = (0..n).filter(|i| counts[*i] > 0).collect();
            assert_eq!(used, mine, "{counts:?}");
            assert_eq!(counts.iter().sum::<u64>(), 2);
            if n < 2 || used.len() == 2 {
                apart = true;
                break;
            }
        }
        assert!(apart, "two threads in turn, two shards");
    }
}
