//! One scrape body rendered at a time, shared by the scrapes that waited
//! for it, and a bound on the bytes of bodies alive.
//!
//! A whole body is 53 MB at 64,000 backends and takes a core for a sixth
//! of a second. Without this, 64 clients asking at once (the listener's
//! connection limit) cost 64 renders side by side and 3.4 GB of bodies,
//! which slow readers can keep for a connection's lifetime: an outage
//! anyone who reaches the port could cause. With it, a crowd costs at
//! most two renders, and a new body waits while the bodies still being
//! sent hold the byte budget.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Bytes of scrape bodies alive at once (rendered, not yet sent or
/// dropped), in KiB: four whole uncompressed bodies at 64,000 backends.
pub(crate) const BODY_BUDGET_KIB: u32 = 256 * 1024;

/// The last render, kept only while scrapes that may share it wait.
struct Rendered<K> {
    key: K,
    started: Instant,
    body: Bytes,
}

/// Renders scrape bodies one at a time.
pub(crate) struct Renders<K> {
    last: Mutex<Option<Rendered<K>>>,
    /// Scrapes waiting for `last`'s lock.
    waiting: AtomicUsize,
    budget: Arc<Semaphore>,
    budget_kib: u32,
}

/// A body's bytes and its share of the budget, returned when the last
/// copy of the body is dropped.
struct Owned {
    body: Vec<u8>,
    _share: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

impl<K: PartialEq + Copy> Renders<K> {
    pub(crate) fn new(budget_kib: u32) -> Renders<K> {
        Renders {
            last: Mutex::new(None),
            waiting: AtomicUsize::new(0),
            budget: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
        }
    }

    /// The body for `key`, asked for at `arrived`: a render that started
    /// after that (another scrape's, while this one waited), or a new
    /// one. Never older than the scrape.
    pub(crate) async fn get<F, Fut>(&self, key: K, arrived: Instant, render: F) -> Bytes
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Vec<u8>>,
    {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut last = self.last.lock().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let shared = last
            .as_ref()
            .filter(|r| r.key == key && r.started >= arrived)
            .map(|r| r.body.clone());
        if self.waiting.load(Ordering::SeqCst) == 0 {
            // Nobody left who could share it: do not keep its bytes.
            *last = None;
        }
        if let Some(body) = shared {
            return body;
        }
        let started = Instant::now();
        let body = render().await;
        let kib = u32::try_from(body.len().div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.budget_kib);
        let share = Arc::clone(&self.budget)
            .acquire_many_owned(kib)
            .await
            .expect("the budget is never closed");
        let body = Bytes::from_owner(Owned {
            body,
            _share: share,
        });
        *last = (self.waiting.load(Ordering::SeqCst) > 0).then(|| Rendered {
            key,
            started,
            body: body.clone(),
        });
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn counting(
        renders: &Arc<AtomicUsize>,
        len: usize,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Vec<u8>> + Send>> {
        let renders = Arc::clone(renders);
        move || {
            Box::pin(async move {
                renders.fetch_add(1, Ordering::SeqCst);
                // A render takes a while: others arrive meanwhile.
                tokio::time::sleep(Duration::from_millis(100)).await;
                vec![b'x'; len]
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_crowd_costs_at_most_two_renders_and_none_is_stale() {
        let r = Arc::new(Renders::<u8>::new(BODY_BUDGET_KIB));
        let n = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..64 {
            let (r, n) = (Arc::clone(&r), Arc::clone(&n));
            tasks.push(tokio::spawn(async move {
                // Half arrive during the first render.
                tokio::time::sleep(Duration::from_millis(if i < 32 { 0 } else { 50 })).await;
                r.get(0, Instant::now(), counting(&n, 10)).await.len()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 10);
        }
        // The first render (started before the late half arrived), then
        // one for everyone that waited for it.
        assert_eq!(n.load(Ordering::SeqCst), 2);
        // Nobody waits: nothing is kept.
        assert!(r.last.lock().await.is_none());
        // A scrape after the crowd renders afresh.
        r.get(0, Instant::now(), counting(&n, 10)).await;
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn other_variants_are_not_shared() {
        let r = Arc::new(Renders::<u8>::new(BODY_BUDGET_KIB));
        let n = Arc::new(AtomicUsize::new(0));
        let (a, b) = (Arc::clone(&r), Arc::clone(&r));
        let (na, nb) = (Arc::clone(&n), Arc::clone(&n));
        let t1 = tokio::spawn(async move { a.get(1, Instant::now(), counting(&na, 1)).await });
        let t2 = tokio::spawn(async move { b.get(2, Instant::now(), counting(&nb, 2)).await });
        assert_eq!(t1.await.unwrap().len(), 1);
        assert_eq!(t2.await.unwrap().len(), 2);
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn bodies_alive_are_bounded_by_the_budget() {
        // Room for two 1 KiB bodies.
        let r = Arc::new(Renders::<u8>::new(2));
        let n = Arc::new(AtomicUsize::new(0));
        let first = r.get(0, Instant::now(), counting(&n, 1024)).await;
        let second = r.get(0, Instant::now(), counting(&n, 1000)).await;
        // A slow reader holds both: the third waits, rendered but not
        // handed out, until one of them is dropped.
        let r3 = Arc::clone(&r);
        let n3 = Arc::clone(&n);
        let third = tokio::spawn(async move { r3.get(0, Instant::now(), counting(&n3, 1)).await });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!third.is_finished());
        drop(second);
        assert_eq!(third.await.unwrap().len(), 1);
        // Copies share their body's share: dropping one copy returns
        // nothing, dropping the last does.
        let copy = first.clone();
        drop(first);
        assert_eq!(r.budget.available_permits(), 1);
        drop(copy);
        assert_eq!(r.budget.available_permits(), 2);
    }
}
