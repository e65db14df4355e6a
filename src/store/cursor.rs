//! Following the store from a revision: the one loop under every watch.
//!
//! The raw `/kv/watch`, the Kubernetes watch and the leader's informer all
//! read the store's event history the same way: from a revision, batch by
//! batch, then wait for new revisions. A [`Cursor`] does it once. Its
//! invariant: [`Cursor::position`] is a revision through which every event
//! under the prefix has been handed out, never further. It advances only to
//! the revision a batch reaches ([`flotilla_storage::Events::through`]) —
//! which the storage engine states exactly, so a batch cut short by its limit
//! (a revision is never split) is resumed where it stopped rather than
//! skipped over.

use super::{Error, Result};
use flotilla_raft::Node;
use flotilla_storage::{Engine, Event, Revision};
use std::sync::Arc;
use tokio::sync::watch;

/// Events read per batch unless [`Cursor::with_batch`] says otherwise.
pub const DEFAULT_BATCH: usize = 1000;

/// A position in the store's history under one key prefix.
pub struct Cursor {
    engine: Arc<Engine>,
    revisions: watch::Receiver<Revision>,
    prefix: Vec<u8>,
    position: Revision,
    batch: usize,
}

impl Cursor {
    /// A cursor over keys under `prefix`, positioned after revision `after`
    /// (its first batch starts at `after + 1`).
    pub fn new(node: &Node, prefix: impl Into<Vec<u8>>, after: Revision) -> Cursor {
        Cursor::over(node.engine().clone(), node.revisions(), prefix, after)
    }

    /// A cursor over `engine`, woken by `revisions` (the engine's applied
    /// revision as it moves).
    pub fn over(
        engine: Arc<Engine>,
        revisions: watch::Receiver<Revision>,
        prefix: impl Into<Vec<u8>>,
        after: Revision,
    ) -> Cursor {
        Cursor {
            engine,
            revisions,
            prefix: prefix.into(),
            position: after,
            batch: DEFAULT_BATCH,
        }
    }

    /// Reads at most about `batch` events per round (a revision is never
    /// split, so a batch may hold more).
    pub fn with_batch(mut self, batch: usize) -> Cursor {
        self.batch = batch.max(1);
        self
    }

    /// The revision through which every event has been handed out.
    pub fn position(&self) -> Revision {
        self.position
    }

    /// The next batch of events, without waiting: empty when the cursor has
    /// caught up with the store. Advances [`Self::position`] to the revision
    /// the batch reaches.
    ///
    /// # Errors
    /// [`Error::Compacted`] when the history after the position is gone;
    /// storage errors.
    pub fn poll(&mut self) -> Result<Vec<Event>> {
        let read = self
            .engine
            .events(&self.prefix, self.position, self.batch)?;
        self.position = self.position.max(read.through);
        Ok(read.events)
    }

    /// The next non-empty batch, waiting for new revisions when caught up.
    ///
    /// # Cancel safety
    /// Cancel safe: the position moves only when a batch is returned.
    ///
    /// # Errors
    /// As [`Self::poll`], and [`Error::Replication`] when the store shuts down.
    pub async fn next(&mut self) -> Result<Vec<Event>> {
        loop {
            // Marked seen before the read: a revision applied after it wakes
            // the wait below.
            self.revisions.borrow_and_update();
            let events = self.poll()?;
            if !events.is_empty() {
                return Ok(events);
            }
            if self.revisions.changed().await.is_err() {
                return Err(Error::Replication("the store is shutting down".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_storage::{Command, Op, Request, Txn};

    fn open() -> (tempfile::TempDir, Arc<Engine>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path(), &[]).expect("open");
        (dir, Arc::new(engine))
    }

    fn apply(engine: &Engine, command: Command) {
        engine
            .apply(&Request { id: None, command }, b"m")
            .expect("apply");
    }

    fn put(key: &str) -> Op {
        Op::Put {
            key: key.as_bytes().to_vec(),
            value: b"{}".to_vec(),
        }
    }

    fn keys(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| String::from_utf8_lossy(&e.kv.key).into_owned())
            .collect()
    }

    /// A batch that ends before a multi-key revision resumes at it: nothing
    /// after the cut is skipped (the defect was a jump to the store's
    /// current revision after any short batch).
    #[tokio::test]
    async fn a_batch_cut_before_a_multi_key_revision_resumes_there() {
        let (_dir, engine) = open();
        let (tx, rx) = watch::channel(engine.revision());
        apply(
            &engine,
            Command::Txn(Txn {
                compare: vec![],
                success: vec![put("/p/a")],
                failure: vec![],
            }),
        );
        // Three keys in one revision: does not fit a batch of 2 after /p/a.
        apply(
            &engine,
            Command::Txn(Txn {
                compare: vec![],
                success: vec![put("/p/b"), put("/p/c"), put("/p/d")],
                failure: vec![],
            }),
        );
        apply(
            &engine,
            Command::Txn(Txn {
                compare: vec![],
                success: vec![put("/p/e")],
                failure: vec![],
            }),
        );
        tx.send_replace(engine.revision());
        let mut cursor = Cursor::over(engine.clone(), rx, "/p/", 1).with_batch(2);
        let mut seen = Vec::new();
        while seen.len() < 5 {
            let batch = tokio::time::timeout(std::time::Duration::from_secs(5), cursor.next())
                .await
                .expect("events arrive")
                .expect("read");
            seen.extend(keys(&batch));
        }
        assert_eq!(seen, ["/p/a", "/p/b", "/p/c", "/p/d", "/p/e"]);
        assert_eq!(cursor.position(), engine.revision());
        assert!(cursor.poll().expect("poll").is_empty());
    }

    #[tokio::test]
    async fn position_moves_past_revisions_without_events_under_the_prefix() {
        let (_dir, engine) = open();
        let (_tx, rx) = watch::channel(engine.revision());
        apply(
            &engine,
            Command::Put {
                key: b"/other".to_vec(),
                value: b"x".to_vec(),
            },
        );
        let mut cursor = Cursor::over(engine.clone(), rx, "/p/", 1);
        assert!(cursor.poll().expect("poll").is_empty());
        assert_eq!(cursor.position(), engine.revision());
    }

    #[tokio::test]
    async fn next_waits_for_a_new_revision() {
        let (_dir, engine) = open();
        let (tx, rx) = watch::channel(engine.revision());
        let mut cursor = Cursor::over(engine.clone(), rx, "/p/", engine.revision());
        let waiting = tokio::spawn(async move { cursor.next().await.map(|e| keys(&e)) });
        tokio::task::yield_now().await;
        apply(
            &engine,
            Command::Put {
                key: b"/p/x".to_vec(),
                value: b"x".to_vec(),
            },
        );
        tx.send_replace(engine.revision());
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("join")
            .expect("read");
        assert_eq!(got, ["/p/x"]);
    }

    #[test]
    fn compacted_history_is_an_error() {
        let (_dir, engine) = open();
        let (_tx, rx) = watch::channel(engine.revision());
        for _ in 0..3 {
            apply(
                &engine,
                Command::Put {
                    key: b"/p/x".to_vec(),
                    value: b"x".to_vec(),
                },
            );
        }
        apply(&engine, Command::Compact { revision: 3 });
        let mut cursor = Cursor::over(engine.clone(), rx, "/p/", 1);
        assert!(matches!(cursor.poll(), Err(Error::Compacted { .. })));
    }
}
