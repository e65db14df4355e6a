//! The contract every queue-driven control loop follows, and its driver.
//!
//! A [`Reconciler`] maps changes seen by the informer to the keys of objects
//! it manages ([`Reconciler::keys`]), and brings one key to its desired state
//! from the cache ([`Reconciler::reconcile`]): level-triggered and idempotent,
//! so running it twice, or after a restart on a new leader, does no harm.
//! [`drive`] feeds a [`Queue`] from the informer and runs a few workers over
//! it; failures are retried with back-off.

use super::queue::Queue;
use crate::store::informer::{Cache, Change, Snapshot};
use crate::store::Error as StoreError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What to do after a successful reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the next change.
    Done,
    /// Look again after this long (a condition only time changes).
    After(Duration),
}

/// A level-triggered control loop.
pub trait Reconciler: Send + Sync + 'static {
    /// The loop's name, for logs.
    const NAME: &'static str;
    /// Workers reconciling different keys concurrently.
    const WORKERS: usize = 4;

    /// Adds to `out` the keys `change` may affect.
    fn keys(&self, change: &Change, snapshot: &Snapshot, out: &mut Vec<String>);

    /// Brings `key` to its desired state.
    ///
    /// # Errors
    /// A write failed; the key is retried with back-off.
    fn reconcile(&self, key: &str) -> impl Future<Output = Result<Action, StoreError>> + Send;
}

/// Runs `reconciler` over the changes of `feed` until `stop`.
pub async fn drive<R: Reconciler>(
    reconciler: Arc<R>,
    cache: Cache,
    mut feed: mpsc::UnboundedReceiver<Arc<Vec<Change>>>,
    stop: CancellationToken,
) {
    let queue = Queue::new();
    // The workers stop with the term, or when the feed ends.
    let stop = stop.child_token();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..R::WORKERS {
        let (queue, reconciler, stop) = (queue.clone(), reconciler.clone(), stop.clone());
        workers.spawn(async move {
            while let Some(key) = queue.next(&stop).await {
                let result = tokio::select! {
                    result = reconciler.reconcile(&key) => result,
                    () = stop.cancelled() => break,
                };
                match result {
                    Ok(Action::Done) => queue.forget(&key),
                    Ok(Action::After(delay)) => {
                        queue.forget(&key);
                        queue.add_after(key.clone(), delay);
                    }
                    Err(e) => {
                        tracing::debug!(loop_name = R::NAME, %key, "reconcile failed, will retry: {e}");
                        queue.retry(&key);
                    }
                }
                queue.done(&key);
            }
        });
    }
    let mut keys = Vec::new();
    loop {
        let batch = tokio::select! {
            batch = feed.recv() => match batch { Some(b) => b, None => break },
            () = stop.cancelled() => break,
        };
        cache.read(|snapshot| {
            for change in batch.iter() {
                reconciler.keys(change, snapshot, &mut keys);
            }
        });
        for key in keys.drain(..) {
            queue.add(key);
        }
    }
    stop.cancel();
    while workers.join_next().await.is_some() {}
}
