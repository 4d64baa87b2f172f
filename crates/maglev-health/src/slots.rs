//! One timer per slot, not one per probe.
//!
//! Probe starts are rounded to shared slots ([`crate::state::coalesce`]),
//! so the probes of one thread fall due in groups. With a tokio timer per
//! probe, every probe's timer entry still went through the timer wheel:
//! inserted a second ahead, moved down a level on the way, and unlinked
//! when it fired. Each of those steps reads and writes the entry and its
//! neighbours in the wheel's lists, and each entry lives in its own
//! probe's task, so at one probe per backend per second every one of
//! those touches found memory gone cold (measured: the wheel was a fifth
//! of the checker's samples at 1,000 backends, nearly all of it on one
//! store into the next entry of a list).
//!
//! Here the first probe to wait for a slot (its leader) sleeps on a tokio
//! timer; the others add their waker to the slot's list, one contiguous
//! vector, and the leader wakes them all when its timer fires. A leader
//! dropped before its slot (a reload stopped its loop) wakes the others,
//! and the first of them to wait again leads in its place. One set of
//! slots per probe thread keeps the lock and the wake-ups on that thread.

use std::collections::HashMap;
use std::future::poll_fn;
use std::task::{Poll, Waker};

use tokio::time::Instant;

/// The slots probes of one thread wait for.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    waiting: parking_lot::Mutex<HashMap<Instant, Vec<Waker>>>,
}

/// Whether a waiter leads its slot.
enum Joined {
    Leader,
    Follower,
}

impl Slots {
    /// Waits until `due` (at once when it has passed), with one timer for
    /// every waiter of the same `due`.
    pub(crate) async fn sleep_until(&self, due: Instant) {
        while Instant::now() < due {
            let mut joined = false;
            let leads = poll_fn(|cx| {
                if !joined {
                    joined = true;
                    return match self.join(due, cx.waker()) {
                        Joined::Leader => Poll::Ready(true),
                        Joined::Follower => Poll::Pending,
                    };
                }
                // Woken by the leader at `due`, or by a leader that was
                // dropped: then the slot is gone, and this waiter joins
                // again (maybe as the leader).
                if Instant::now() >= due || !self.still_waiting(due, cx.waker()) {
                    Poll::Ready(false)
                } else {
                    Poll::Pending
                }
            })
            .await;
            if leads {
                let lead = Lead { slots: self, due };
                tokio::time::sleep_until(due).await;
                drop(lead);
                return;
            }
        }
    }

    fn join(&self, due: Instant, waker: &Waker) -> Joined {
        let mut waiting = self.waiting.lock();
        match waiting.get_mut(&due) {
            Some(followers) => {
                followers.push(waker.clone());
                Joined::Follower
            }
            None => {
                waiting.insert(due, Vec::new());
                Joined::Leader
            }
        }
    }

    /// Whether the slot at `due` is still led (a spurious wake-up:
    /// `waker` is then kept on its list).
    fn still_waiting(&self, due: Instant, waker: &Waker) -> bool {
        let mut waiting = self.waiting.lock();
        let Some(followers) = waiting.get_mut(&due) else {
            return false;
        };
        if !followers.iter().any(|w| w.will_wake(waker)) {
            followers.push(waker.clone());
        }
        true
    }

    /// Ends the slot at `due`: every follower is woken.
    fn end(&self, due: Instant) {
        let followers = self.waiting.lock().remove(&due);
        // Woken outside the lock: a waker may run code of its own.
        for w in followers.into_iter().flatten() {
            w.wake();
        }
    }

    /// Slots with a leader now, and the followers waiting in them.
    #[cfg(test)]
    pub(crate) fn led(&self) -> (usize, usize) {
        let waiting = self.waiting.lock();
        (waiting.len(), waiting.values().map(Vec::len).sum())
    }
}

/// A slot's leadership: ended when the leader's timer fired, or when the
/// leader is dropped before (its followers then elect another).
struct Lead<'a> {
    slots: &'a Slots,
    due: Instant,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.slots.end(self.due);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn paused() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    }

    /// Every waiter of a slot wakes at its time, and the slot is gone
    /// after; waiters of different slots each wake at their own.
    #[test]
    fn waiters_wake_at_their_slot() {
        paused().block_on(async {
            let slots = Arc::new(Slots::default());
            let t0 = Instant::now();
            let woke = Arc::new(parking_lot::Mutex::new(Vec::new()));
            let mut tasks = Vec::new();
            for i in 0..10u64 {
                let (slots, woke) = (Arc::clone(&slots), Arc::clone(&woke));
                // Five in the slot at 100 ms, five at 200 ms.
                let due = t0 + Duration::from_millis(100 * (1 + i % 2));
                tasks.push(tokio::spawn(async move {
                    slots.sleep_until(due).await;
                    woke.lock().push((i, Instant::now() - t0));
                }));
            }
            tokio::task::yield_now().await;
            assert_eq!(slots.led(), (2, 8), "one leader per slot, one timer each");
            for t in tasks {
                // A follower nobody wakes would wait for ever.
                tokio::time::timeout(Duration::from_secs(1), t)
                    .await
                    .expect("every waiter wakes")
                    .unwrap();
            }
            let woke = woke.lock();
            assert_eq!(woke.len(), 10);
            for (i, at) in woke.iter() {
                assert_eq!(*at, Duration::from_millis(100 * (1 + i % 2)), "waiter {i}");
            }
            assert_eq!(slots.led(), (0, 0));
        });
    }

    /// A leader stopped before its slot hands it over: the followers
    /// still wake at the slot's time.
    #[test]
    fn a_stopped_leader_hands_its_slot_over() {
        paused().block_on(async {
            let slots = Arc::new(Slots::default());
            let t0 = Instant::now();
            let due = t0 + Duration::from_millis(100);
            let leader = {
                let slots = Arc::clone(&slots);
                tokio::spawn(async move { slots.sleep_until(due).await })
            };
            tokio::task::yield_now().await;
            let woke = Arc::new(AtomicUsize::new(0));
            let followers: Vec<_> = (0..3)
                .map(|_| {
                    let (slots, woke) = (Arc::clone(&slots), Arc::clone(&woke));
                    tokio::spawn(async move {
                        slots.sleep_until(due).await;
                        assert_eq!(Instant::now(), due);
                        woke.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(10)).await;
            leader.abort();
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert_eq!(woke.load(Ordering::SeqCst), 0, "woken before the slot");
            assert_eq!(slots.led(), (1, 2), "a follower leads now");
            for f in followers {
                // A lost slot would leave them waiting for ever.
                tokio::time::timeout(Duration::from_secs(1), f)
                    .await
                    .expect("the followers wake")
                    .unwrap();
            }
            assert_eq!(woke.load(Ordering::SeqCst), 3);
        });
    }

    /// A time already passed does not wait or join anything.
    #[test]
    fn a_passed_time_returns_at_once() {
        paused().block_on(async {
            let slots = Slots::default();
            let before = Instant::now();
            slots.sleep_until(before).await;
            assert_eq!(Instant::now(), before);
            assert_eq!(slots.led(), (0, 0));
        });
    }
}
