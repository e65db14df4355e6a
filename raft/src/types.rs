//! openraft type wiring: every type parameter of the Raft instance in one place.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A member's Raft id: random at join, stable for the member's life.
pub type MemberId = u64;

/// What the cluster knows about a member: its name and the address that serves
/// both the API and the Raft RPCs (`HOST:PORT`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    /// Human name, unique in the cluster (`ctl member remove NAME`).
    pub name: String,
    /// `HOST:PORT` other members and clients reach this member at.
    pub addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

/// What one log entry carries: the client requests the proposer gathered while
/// earlier entries were in flight (see [`crate::propose`]), applied in order.
pub type Batch = Vec<flotilla_storage::Request>;

/// The result of applying one log entry: one response per request of its
/// batch (none for blank and membership entries). A response is `None` only
/// for a request applied before a restart cut its entry in two; no client is
/// waiting for it then.
pub type Reply = Vec<Option<flotilla_storage::Response>>;

openraft::declare_raft_types!(
    /// Flotilla's Raft type configuration.
    pub TypeConfig:
        D = Batch,
        R = Reply,
        NodeId = MemberId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The openraft handle with our types.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log id with our node id type.
pub type LogId = openraft::LogId<MemberId>;
/// Membership as the state machine stores it.
pub type StoredMembership = openraft::StoredMembership<MemberId, Member>;
/// Openraft's storage error with our node id type.
pub type StorageError = openraft::StorageError<MemberId>;
