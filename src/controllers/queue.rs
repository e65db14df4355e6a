//! A work queue of object keys, with client-go's guarantees.
//!
//! - A key queued many times before it is taken is processed once.
//! - A key is processed by one worker at a time: queued again while being
//!   processed, it is handed out again only after [`Queue::done`].
//! - [`Queue::retry`] requeues with per-key exponential back-off (5 ms
//!   doubling to 30 s), [`Queue::forget`] resets it; [`Queue::add_after`]
//!   requeues after a delay (a condition that only time can change).
//!
//! Reconcilers are level-triggered: a key says "look at this object again",
//! never "this happened", so merging duplicates loses nothing.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// First retry delay.
const RETRY_START: Duration = Duration::from_millis(5);
/// Longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    ready: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashSet<String>,
    delayed: BTreeMap<(Instant, u64), String>,
    sequence: u64,
    failures: HashMap<String, u32>,
}

/// A deduplicating, delaying work queue (cheap to clone; clones share it).
#[derive(Clone, Default)]
pub struct Queue {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl Queue {
    /// An empty queue.
    pub fn new() -> Queue {
        Queue::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `key` now.
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut s = self.lock();
        if !s.dirty.insert(key.clone()) {
            return;
        }
        if !s.processing.contains(&key) {
            s.ready.push_back(key);
            drop(s);
            self.wake.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let mut s = self.lock();
        s.sequence += 1;
        let at = (Instant::now() + delay, s.sequence);
        s.delayed.insert(at, key);
        drop(s);
        self.wake.notify_one();
    }

    /// Queues `key` again after its back-off, which doubles per retry.
    pub fn retry(&self, key: &str) {
        let failures = {
            let mut s = self.lock();
            let f = s.failures.entry(key.to_owned()).or_insert(0);
            *f = f.saturating_add(1);
            *f
        };
        let delay = RETRY_START
            .saturating_mul(1u32 << failures.min(20).saturating_sub(1))
            .min(RETRY_MAX);
        self.add_after(key, delay);
    }

    /// Resets `key`'s back-off (it was processed successfully).
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// Marks `key` processed; if it was queued meanwhile it becomes ready.
    pub fn done(&self, key: &str) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.ready.push_back(key.to_owned());
            drop(s);
            self.wake.notify_one();
        }
    }

    /// Number of keys ready or waiting.
    pub fn len(&self) -> usize {
        let s = self.lock();
        s.ready.len() + s.delayed.len()
    }

    /// Whether nothing is ready or waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves due delayed keys to ready; returns when the next one is due.
    fn promote(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut due = Vec::new();
        let next = {
            let mut s = self.lock();
            while let Some(entry) = s.delayed.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            s.delayed.keys().next().map(|(at, _)| *at)
        };
        for key in due {
            self.add(key);
        }
        next
    }

    /// The next key to process, or None once `stop` is cancelled. The caller
    /// must call [`Queue::done`] with it.
    ///
    /// # Cancel safety
    /// Cancel-safe: a key is taken only when it is returned.
    pub async fn next(&self, stop: &CancellationToken) -> Option<String> {
        loop {
            let notified = self.wake.notified();
            let next_due = self.promote();
            {
                let mut s = self.lock();
                if let Some(key) = s.ready.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    let more = !s.ready.is_empty();
                    drop(s);
                    if more {
                        // Let another worker pick up the rest.
                        self.wake.notify_one();
                    }
                    return Some(key);
                }
            }
            let sleep = async {
                match next_due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = notified => {}
                () = sleep => {}
                () = stop.cancelled() => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn duplicates_merge_and_processing_keys_wait() {
        let q = Queue::new();
        let stop = CancellationToken::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.next(&stop).await.as_deref(), Some("a"));
        q.add("a"); // while processing: handed out again only after done
        assert_eq!(q.next(&stop).await.as_deref(), Some("b"));
        q.done("b");
        let waiting = tokio::time::timeout(Duration::from_millis(50), q.next(&stop)).await;
        assert!(waiting.is_err(), "a is still being processed");
        q.done("a");
        assert_eq!(q.next(&stop).await.as_deref(), Some("a"));
        q.done("a");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_come_back_when_due() {
        let q = Queue::new();
        let stop = CancellationToken::new();
        q.add_after("later", Duration::from_secs(5));
        q.retry("soon");
        let start = Instant::now();
        assert_eq!(q.next(&stop).await.as_deref(), Some("soon"));
        assert_eq!(q.next(&stop).await.as_deref(), Some("later"));
        assert!(start.elapsed() >= Duration::from_secs(5));
        stop.cancel();
        assert_eq!(q.next(&stop).await, None);
    }
}
