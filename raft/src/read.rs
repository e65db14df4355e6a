//! Read indexes for linearizable reads, shared by concurrent readers.
//!
//! A linearizable read needs a *read index*: a log index such that, once this
//! member has applied it, its store reflects every write acknowledged before
//! the read began. The leader finds it by confirming its leadership with a
//! quorum (openraft's `get_read_log_id`); a follower asks the leader over
//! `POST /raft/read-index`.
//!
//! Each [`ReadIndex`] is a task that runs one round at a time. A round takes
//! every reader queued so far; readers that arrive while a round is in flight
//! wait for the next one, because a confirmation that started before they
//! arrived could miss a write acknowledged before they arrived. Under load one
//! quorum round (and, on a follower, one RPC) serves many reads.

use crate::codec;
use crate::network::RPC_PREFIX;
use crate::node::ReadError;
use crate::types::{Member, Raft};
use openraft::error::{CheckIsLeaderError, RaftError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type Waiter = oneshot::Sender<Result<u64, ReadError>>;

/// Readers queued beyond this wait for room (back-pressure).
const QUEUE: usize = 4096;

/// How a follower reaches the leader for a read index.
#[derive(Clone)]
pub(crate) struct Forward {
    pub(crate) http: reqwest::Client,
    pub(crate) scheme: &'static str,
    pub(crate) secret: String,
    pub(crate) timeout: Duration,
}

/// A handle on a read-index task.
pub(crate) struct ReadIndex {
    tx: mpsc::Sender<Waiter>,
}

impl ReadIndex {
    /// Starts the task. With `forward`, a follower asks the leader; without
    /// it, only the leader answers (used to serve followers, so a request is
    /// never forwarded twice).
    pub(crate) fn spawn(raft: Raft, forward: Option<Forward>) -> ReadIndex {
        let (tx, mut rx) = mpsc::channel::<Waiter>(QUEUE);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(more) = rx.try_recv() {
                    waiters.push(more);
                }
                let outcome = round(&raft, forward.as_ref()).await;
                for waiter in waiters {
                    // A reader that gave up (timeout, disconnect) is skipped.
                    let _ = waiter.send(outcome.clone());
                }
            }
        });
        ReadIndex { tx }
    }

    /// The index this member must apply before a linearizable read.
    ///
    /// # Errors
    /// No leader, no quorum, an unreachable leader, or a stopped member.
    pub(crate) async fn get(&self) -> Result<u64, ReadError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || ReadError::Stopped("read index task gone".into());
        self.tx.send(tx).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

async fn round(raft: &Raft, forward: Option<&Forward>) -> Result<u64, ReadError> {
    match raft.get_read_log_id().await {
        Ok((read, _applied)) => Ok(read.map(|l| l.index).unwrap_or(0)),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
            match (to.leader_node, forward) {
                (None, _) => Err(ReadError::NoLeader),
                (Some(leader), Some(forward)) => ask_leader(forward, &leader).await,
                (Some(leader), None) => Err(ReadError::Unavailable(format!(
                    "not the leader; {leader} is"
                ))),
            }
        }
        Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
            Err(ReadError::Unavailable(e.to_string()))
        }
        Err(RaftError::Fatal(fatal)) => Err(ReadError::Stopped(fatal.to_string())),
    }
}

async fn ask_leader(forward: &Forward, leader: &Member) -> Result<u64, ReadError> {
    let url = format!(
        "{}://{}{}/read-index",
        forward.scheme, leader.addr, RPC_PREFIX
    );
    let unavailable = |e: String| ReadError::Unavailable(format!("read index from {leader}: {e}"));
    let response = forward
        .http
        .post(url)
        .bearer_auth(&forward.secret)
        .timeout(forward.timeout)
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(unavailable(format!("HTTP {}", response.status())));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let answer: Result<u64, String> =
        codec::decode_rpc(&bytes).map_err(|e| unavailable(e.to_string()))?;
    answer.map_err(unavailable)
}
