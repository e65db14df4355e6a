//! The member facade: what the server needs from the replicated store.
//!
//! [`Node::start`] opens the RocksDB under the data directory, builds the log
//! store, state machine and network, and starts openraft. The server then uses:
//! - [`Node::write`] for every mutation (only the leader accepts; a follower
//!   gets [`WriteError::NotLeader`] naming the leader, so the API can redirect);
//! - [`Node::read_barrier`] before a linearizable read: the leader confirms its
//!   leadership with a quorum (concurrent readers share one confirmation
//!   round), a follower asks the leader for the read index over `/raft/read-index`,
//!   and either waits until it has applied that index and then reads locally;
//! - [`Node::leadership`], a watch of "who leads, in which term, is it me";
//! - membership changes (learner, promote, remove) and metrics.

use crate::error::{Error, Result};
use crate::log_store::{self, LogStore};
use crate::network::{self, Network};
use crate::propose::Proposer;
use crate::read::{Forward, ReadIndex};
use crate::state_machine::StateMachine;
use crate::types::{Member, MemberId, Raft};
use flotilla_storage::{Engine, Request, Response, Revision};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, RaftMetrics, ServerState, SnapshotPolicy};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How a member runs its Raft.
#[derive(Clone, Debug)]
pub struct Config {
    /// This member's id.
    pub id: MemberId,
    /// This member's name and advertised address.
    pub member: Member,
    /// Where the database and the snapshot live.
    pub data_dir: PathBuf,
    /// Shared by all masters; authenticates Raft RPCs.
    pub peer_secret: String,
    /// Leader heartbeat period.
    pub heartbeat_interval: Duration,
    /// A follower that hears nothing for a random time in this range starts an election.
    pub election_timeout: (Duration, Duration),
    /// Build a snapshot (and purge the log behind it) after this many applied entries.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, so slightly lagging members
    /// catch up from the log rather than by snapshot.
    pub keep_behind_snapshot: u64,
    /// The cluster CA (PEM): peers are reached over HTTPS trusting it alone.
    /// None: plain HTTP (tests of this crate only).
    pub ca_pem: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            id: 1,
            member: Member::default(),
            data_dir: PathBuf::from("."),
            peer_secret: String::new(),
            heartbeat_interval: HEARTBEAT_INTERVAL,
            election_timeout: ELECTION_TIMEOUT,
            snapshot_every: 20_000,
            keep_behind_snapshot: 5_000,
            ca_pem: None,
        }
    }
}

/// Default heartbeat period, as etcd's.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// Default election timeout range. openraft lets a follower stand for
/// election only after the leader's lease (the range's maximum) plus a random
/// timeout from the range, so failover after a leader dies takes 0.9-1.2 s plus
/// one vote round: about etcd's default 1 s, and well under 2 s.
pub const ELECTION_TIMEOUT: (Duration, Duration) =
    (Duration::from_millis(300), Duration::from_millis(600));
/// How long one snapshot chunk may take to send and install.
const SNAPSHOT_CHUNK_TIMEOUT: Duration = Duration::from_secs(20);
/// Size of the chunks a snapshot is streamed in.
const SNAPSHOT_CHUNK_SIZE: u64 = 4 * 1024 * 1024;
/// How long a follower waits for the leader's read index.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(5);

/// Who leads the cluster, as this member sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leadership {
    /// The current term.
    pub term: u64,
    /// The leader, if one is known.
    pub leader: Option<MemberId>,
    /// True while this member is the leader of `term`.
    pub is_self: bool,
}

/// Why a write did not happen (or its outcome is unknown).
#[derive(Clone, Debug, thiserror::Error)]
pub enum WriteError {
    /// This member is not the leader; `leader` is the leader if known (None
    /// during an election).
    #[error("not the leader")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<Member>,
    },
    /// The write could not be committed (membership change in progress...).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Raft has stopped on this member.
    #[error("raft stopped: {0}")]
    Stopped(String),
}

/// Why a linearizable read could not be served.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ReadError {
    /// No leader is known: an election is in progress.
    #[error("no leader: an election is in progress")]
    NoLeader,
    /// The leader could not confirm its leadership, or could not be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// This member did not apply the read index in time.
    #[error("timed out waiting to apply the read index")]
    Timeout,
    /// Raft has stopped on this member.
    #[error("raft stopped: {0}")]
    Stopped(String),
}

/// A member as listed by [`Node::members`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Raft id.
    pub id: MemberId,
    /// Name and address.
    pub member: Member,
    /// Voter (true) or learner (false).
    pub voter: bool,
}

/// A running member.
pub struct Node {
    id: MemberId,
    member: Member,
    raft: Raft,
    engine: Arc<Engine>,
    peer_secret_digest: [u8; 32],
    revision: watch::Receiver<Revision>,
    leadership: watch::Receiver<Leadership>,
    proposer: Proposer,
    reads: ReadIndex,
    leader_reads: ReadIndex,
    snapshot_installs: Arc<AtomicU64>,
    committed: Arc<AtomicU64>,
    election_timeout: Duration,
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn raft_failure(e: impl std::fmt::Display) -> Error {
    Error::Raft(e.to_string())
}

impl Node {
    /// Opens the member's storage under `config.data_dir` and starts Raft.
    /// Resumes whatever the data directory holds.
    ///
    /// # Errors
    /// When the storage cannot be opened or openraft refuses the configuration.
    pub async fn start(config: Config) -> Result<Arc<Node>> {
        // Owner-only: the store and `snapshot.bin` hold node credentials.
        {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&config.data_dir)
                .and_then(|()| {
                    std::fs::set_permissions(
                        &config.data_dir,
                        std::fs::Permissions::from_mode(0o700),
                    )
                })
                .map_err(|source| Error::Io {
                    path: config.data_dir.clone(),
                    source,
                })?;
        }
        let engine = Arc::new(Engine::open(
            &config.data_dir.join("db"),
            log_store::COLUMN_FAMILIES,
        )?);
        let committed = Arc::new(AtomicU64::new(0));
        let log_store =
            LogStore::new(engine.clone(), committed.clone()).map_err(|source| Error::Io {
                path: config.data_dir.clone(),
                source,
            })?;
        let (revision_tx, revision) = watch::channel(engine.revision());
        let snapshot_installs = Arc::new(AtomicU64::new(0));
        let state_machine = StateMachine::open(
            engine.clone(),
            &config.data_dir,
            revision_tx,
            snapshot_installs.clone(),
        )?;
        let raft_config = openraft::Config {
            cluster_name: "flotilla".into(),
            heartbeat_interval: millis(config.heartbeat_interval),
            election_timeout_min: millis(config.election_timeout.0),
            election_timeout_max: millis(config.election_timeout.1),
            install_snapshot_timeout: millis(SNAPSHOT_CHUNK_TIMEOUT),
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_SIZE,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.keep_behind_snapshot,
            ..Default::default()
        }
        .validate()?;
        let ca_pem = config.ca_pem.as_deref();
        let scheme = network::scheme(ca_pem);
        let http = network::http_client(Duration::from_secs(30), ca_pem).map_err(raft_failure)?;
        let raft = Raft::new(
            config.id,
            Arc::new(raft_config),
            Network::new(http.clone(), config.peer_secret.clone(), scheme),
            log_store,
            state_machine,
        )
        .await
        .map_err(raft_failure)?;
        let leadership = spawn_leadership_watch(&raft, config.id);
        let forward = Forward {
            http: http.clone(),
            scheme,
            secret: config.peer_secret.clone(),
            timeout: READ_INDEX_TIMEOUT,
        };
        let reads = ReadIndex::spawn(raft.clone(), Some(forward));
        let leader_reads = ReadIndex::spawn(raft.clone(), None);
        let proposer = Proposer::spawn(raft.clone());
        Ok(Arc::new(Node {
            id: config.id,
            member: config.member,
            raft,
            engine,
            peer_secret_digest: digest(&config.peer_secret),
            revision,
            leadership,
            proposer,
            reads,
            leader_reads,
            snapshot_installs,
            committed,
            election_timeout: config.election_timeout.1,
        }))
    }

    /// Makes this member the sole voter of a new cluster.
    ///
    /// # Errors
    /// When the member already belongs to a cluster.
    pub async fn initialize(&self) -> Result<()> {
        let members = BTreeMap::from([(self.id, self.member.clone())]);
        self.raft.initialize(members).await.map_err(raft_failure)
    }

    /// True once this member belongs to a cluster (initialized or joined).
    ///
    /// # Errors
    /// When Raft has stopped.
    pub async fn is_initialized(&self) -> Result<bool> {
        self.raft.is_initialized().await.map_err(raft_failure)
    }

    /// This member's id.
    pub fn id(&self) -> MemberId {
        self.id
    }

    /// This member's name and address.
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// The openraft handle (for the RPC routes and tests).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The local store (serializable reads, watch history).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The latest revision this member applied; changes whenever an applied
    /// entry changed the store.
    pub fn revisions(&self) -> watch::Receiver<Revision> {
        self.revision.clone()
    }

    /// Leadership as this member sees it; the scheduler and controllers start
    /// when `is_self` turns true and stop when it turns false.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// Snapshots this member installed from a leader since it started.
    pub fn snapshot_installs(&self) -> u64 {
        self.snapshot_installs.load(Ordering::Relaxed)
    }

    /// The highest log index this member knows to be committed.
    pub fn committed_index(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// True when this member leads but has not heard from a quorum within an
    /// election timeout: it is probably cut off, and a new leader may already
    /// serve on the other side. (openraft does not step such a leader down.)
    pub fn leader_is_isolated(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        if metrics.state != ServerState::Leader {
            return false;
        }
        let limit = millis(self.election_timeout);
        metrics.millis_since_quorum_ack.is_none_or(|ms| ms > limit)
    }

    /// Current Raft metrics.
    pub fn metrics(&self) -> RaftMetrics<MemberId, Member> {
        self.raft.metrics().borrow().clone()
    }

    /// True when `token` is the cluster's peer secret (compared by digest, so
    /// the comparison does not leak the secret's prefix through timing).
    pub fn peer_secret_matches(&self, token: &str) -> bool {
        digest(token) == self.peer_secret_digest
    }

    /// Replicates `request` and returns its result once a majority has it and
    /// this member applied it.
    ///
    /// # Errors
    /// [`WriteError::NotLeader`] on a follower; others when Raft cannot commit.
    pub async fn write(&self, request: Request) -> Result<Response, WriteError> {
        self.proposer.write(request).await
    }

    /// Waits until a read of the local store is linearizable: it will see every
    /// write acknowledged before this call began.
    ///
    /// # Errors
    /// When no leader is known, the leader cannot confirm its leadership, or
    /// this member does not catch up within `timeout`.
    pub async fn read_barrier(&self, timeout: Duration) -> Result<(), ReadError> {
        let index = tokio::time::timeout(timeout, self.reads.get())
            .await
            .map_err(|_| ReadError::Timeout)??;
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => ReadError::Timeout,
                openraft::metrics::WaitError::ShuttingDown => {
                    ReadError::Stopped("shutting down".into())
                }
            })
    }

    /// The leader's side of a follower's read: confirms leadership with a
    /// quorum and returns the index to apply before reading. Never forwards.
    ///
    /// # Errors
    /// The reason as text (it travels back to the follower).
    pub async fn leader_read_index(&self) -> Result<u64, String> {
        self.leader_reads.get().await.map_err(|e| e.to_string())
    }

    /// The members in the latest membership config, in id order.
    pub fn members(&self) -> Vec<MemberInfo> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<MemberId> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, member)| MemberInfo {
                id: *id,
                member: member.clone(),
                voter: voters.contains(id),
            })
            .collect()
    }

    /// Adds a learner and waits until it has caught up with the leader's log.
    ///
    /// # Errors
    /// [`Error::NotLeader`] on a follower; [`Error::Membership`] otherwise.
    pub async fn add_learner(&self, id: MemberId, member: Member) -> Result<()> {
        self.raft
            .add_learner(id, member, true)
            .await
            .map(|_| ())
            .map_err(membership_error)
    }

    /// Promotes a caught-up learner to voter.
    ///
    /// # Errors
    /// [`Error::NotLeader`] on a follower; [`Error::Membership`] otherwise.
    pub async fn promote(&self, id: MemberId) -> Result<()> {
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map(|_| ())
            .map_err(membership_error)
    }

    /// Removes a member (voter or learner) from the cluster. Refuses to remove
    /// the last voter.
    ///
    /// # Errors
    /// [`Error::NotLeader`] on a follower; [`Error::Membership`] when the
    /// member is unknown, is the last voter, or the change fails.
    pub async fn remove(&self, id: MemberId) -> Result<()> {
        let members = self.members();
        let Some(target) = members.iter().find(|m| m.id == id) else {
            return Err(Error::Membership(format!("no member with id {id:x}")));
        };
        let change = if target.voter {
            if members.iter().filter(|m| m.voter).count() <= 1 {
                return Err(Error::Membership(format!(
                    "refusing to remove {}: it is the last voter and the cluster would lose all its data",
                    target.member.name
                )));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft
            .change_membership(change, false)
            .await
            .map(|_| ())
            .map_err(membership_error)
    }

    /// Builds a snapshot now and purges the log up to it (for operators and
    /// tests that need a lagging member to catch up by snapshot).
    ///
    /// # Errors
    /// When Raft has stopped or the snapshot is not built within `timeout`.
    pub async fn snapshot_and_purge(&self, timeout: Duration) -> Result<u64> {
        let applied = self.metrics().last_applied.map(|l| l.index).unwrap_or(0);
        self.raft.trigger().snapshot().await.map_err(raft_failure)?;
        self.raft
            .wait(Some(timeout))
            .metrics(
                |m| m.snapshot.map(|s| s.index).unwrap_or(0) >= applied,
                "snapshot built",
            )
            .await
            .map_err(raft_failure)?;
        self.raft
            .trigger()
            .purge_log(applied)
            .await
            .map_err(raft_failure)?;
        self.raft
            .wait(Some(timeout))
            .metrics(
                |m| m.purged.map(|p| p.index).unwrap_or(0) >= applied,
                "log purged",
            )
            .await
            .map_err(raft_failure)?;
        Ok(applied)
    }

    /// Stops Raft; the database closes when the last handle is dropped.
    ///
    /// # Errors
    /// When openraft's task panicked.
    pub async fn shutdown(&self) -> Result<()> {
        self.raft.shutdown().await.map_err(raft_failure)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn membership_error(e: RaftError<MemberId, ClientWriteError<MemberId, Member>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            Error::NotLeader(forward.leader_id.zip(forward.leader_node))
        }
        other => Error::Membership(other.to_string()),
    }
}

/// Publishes leadership changes from openraft's metrics.
fn spawn_leadership_watch(raft: &Raft, id: MemberId) -> watch::Receiver<Leadership> {
    let mut metrics = raft.metrics();
    let (tx, rx) = watch::channel(Leadership::default());
    tokio::spawn(async move {
        loop {
            let now = {
                let m = metrics.borrow_and_update();
                Leadership {
                    term: m.current_term,
                    leader: m.current_leader,
                    is_self: m.current_leader == Some(id) && m.state == ServerState::Leader,
                }
            };
            tx.send_if_modified(|current| {
                if *current == now {
                    false
                } else {
                    if now.is_self != current.is_self {
                        tracing::info!(term = now.term, leader = now.is_self, "leadership changed");
                    }
                    *current = now;
                    true
                }
            });
            if metrics.changed().await.is_err() {
                break;
            }
        }
    });
    rx
}
