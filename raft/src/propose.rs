//! The proposer: concurrent client writes share Raft entries.
//!
//! Every write goes through one task. It takes the writes queued so far (up
//! to [`MAX_BATCH`] requests and about [`MAX_ENTRY_BYTES`]) as one [`Batch`]
//! and proposes it as a single log entry, so a burst of
//! concurrent writes costs one append, one fsync per member and one
//! replication message instead of one each. At most [`IN_FLIGHT`] entries
//! are in flight; while they are, new writes queue up and form the next,
//! larger batch. A lone write is proposed at once, so batching adds no
//! latency when the store is idle.
//!
//! Each request keeps its own idempotency id, and the state machine applies a
//! batch's requests in order; a crash in the middle of a batch resumes after
//! the last request applied (see [`crate::state_machine`]).

use crate::node::WriteError;
use crate::types::{Batch, Raft};
use flotilla_storage::{Request, Response};
use openraft::error::ClientWriteError;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Entries proposed but not yet answered, at most.
pub const IN_FLIGHT: usize = 4;
/// Requests in one entry, at most.
pub const MAX_BATCH: usize = 512;
/// Encoded bytes of the requests in one entry, about: requests join an entry
/// while it is under this, so an entry is at most this plus one request
/// (and a single request larger than this is an entry of its own). etcd's
/// `MaxSizePerMsg` default, 1 MiB: entries stay small next to what one
/// AppendEntries carries ([`crate::log_store::MAX_APPEND_BYTES`]), so
/// replication can always make progress one entry at a time.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;
/// Writes queued beyond this wait for room (back-pressure).
const QUEUE: usize = 8192;

type Waiter = oneshot::Sender<Result<Response, WriteError>>;

/// A handle on the proposer task.
pub(crate) struct Proposer {
    tx: mpsc::Sender<(Request, Waiter)>,
}

impl Proposer {
    /// Starts the proposer for `raft`.
    pub(crate) fn spawn(raft: Raft) -> Proposer {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, rx));
        Proposer { tx }
    }

    /// Proposes `request` and waits for its response.
    ///
    /// # Errors
    /// [`WriteError::NotLeader`] on a follower; others when Raft cannot commit.
    pub(crate) async fn write(&self, request: Request) -> Result<Response, WriteError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || WriteError::Stopped("proposer gone".into());
        self.tx.send((request, tx)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// The encoded size of `request` (the proposer's byte budget).
fn size(request: &Request) -> usize {
    crate::codec::encoded_len(request).unwrap_or(usize::MAX)
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<(Request, Waiter)>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    // A request taken from the queue that did not fit the previous entry.
    let mut carried: Option<(Request, Waiter)> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(first) => first,
            None => match rx.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut bytes = size(&first.0);
        let mut requests: Batch = vec![first.0];
        let mut waiters = vec![first.1];
        while requests.len() < MAX_BATCH && bytes < MAX_ENTRY_BYTES {
            match rx.try_recv() {
                Ok((request, waiter)) => {
                    let more = size(&request);
                    if bytes.saturating_add(more) > MAX_ENTRY_BYTES {
                        carried = Some((request, waiter));
                        break;
                    }
                    bytes += more;
                    requests.push(request);
                    waiters.push(waiter);
                }
                Err(_) => break,
            }
        }
        match raft.client_write_ff(requests).await {
            Err(fatal) => {
                let e = WriteError::Stopped(fatal.to_string());
                for waiter in waiters {
                    let _ = waiter.send(Err(e.clone()));
                }
            }
            Ok(pending) => {
                tokio::spawn(async move {
                    let outcome = pending.await;
                    drop(slot);
                    deliver(outcome, waiters);
                });
            }
        }
    }
}

type Outcome = Result<
    Result<
        openraft::raft::ClientWriteResponse<crate::TypeConfig>,
        ClientWriteError<crate::MemberId, crate::Member>,
    >,
    oneshot::error::RecvError,
>;

fn deliver(outcome: Outcome, waiters: Vec<Waiter>) {
    match outcome {
        Ok(Ok(written)) => {
            let mut responses = written.data.into_iter();
            for waiter in waiters {
                let response = responses.next().flatten().ok_or_else(|| {
                    WriteError::Unavailable("entry applied without a response".into())
                });
                let _ = waiter.send(response);
            }
        }
        Ok(Err(e)) => {
            let e = match e {
                ClientWriteError::ForwardToLeader(forward) => WriteError::NotLeader {
                    leader: forward.leader_node,
                },
                ClientWriteError::ChangeMembershipError(e) => {
                    WriteError::Unavailable(e.to_string())
                }
            };
            for waiter in waiters {
                let _ = waiter.send(Err(e.clone()));
            }
        }
        Err(_) => {
            for waiter in waiters {
                let _ = waiter.send(Err(WriteError::Stopped("raft dropped the write".into())));
            }
        }
    }
}
