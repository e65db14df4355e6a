//! JSON shapes of the `/kv/...` and `/cluster/...` endpoints, shared by the
//! server ([`crate::api`]) and the client ([`crate::cli`], [`crate::bench`]).
//!
//! Keys and values travel as UTF-8 strings (the store's values are JSON
//! documents); bytes that are not UTF-8 are shown lossily.

use crate::security::tokens::Role;
use flotilla_storage::{KeyValue, Revision};
use serde::{Deserialize, Serialize};

/// Header carrying a write's idempotency key (32 hex digits). A retried write
/// with the same key is applied at most once.
pub const REQUEST_ID_HEADER: &str = "x-flotilla-request-id";
/// Header naming the member that served a request.
pub const MEMBER_HEADER: &str = "x-flotilla-member";

/// One key as the API shows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Revision of the key's creation.
    pub create_revision: Revision,
    /// Revision of the key's last change.
    pub mod_revision: Revision,
    /// Number of puts since creation.
    pub version: i64,
}

impl From<&KeyValue> for Kv {
    fn from(kv: &KeyValue) -> Kv {
        Kv {
            key: String::from_utf8_lossy(&kv.key).into_owned(),
            value: String::from_utf8_lossy(&kv.value).into_owned(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
        }
    }
}

/// Answer of `GET /kv/get`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct GetReply {
    /// The key, or null when absent.
    pub kv: Option<Kv>,
    /// Store revision the read was served at.
    pub revision: Revision,
    /// Name of the member that served the read.
    pub member: String,
}

/// Answer of `GET /kv/range`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RangeReply {
    /// Matching keys in key order, up to the limit.
    pub kvs: Vec<Kv>,
    /// True when the limit cut the answer short.
    pub more: bool,
    /// Number of matching keys.
    pub count: u64,
    /// Store revision the read was served at.
    pub revision: Revision,
    /// Name of the member that served the read.
    pub member: String,
}

/// Body of `POST /kv/put`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PutBody {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Return the previous value (as etcd's `prev_kv`).
    #[serde(default)]
    pub prev_kv: bool,
}

/// Answer of `POST /kv/put`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PutReply {
    /// Store revision after the put.
    pub revision: Revision,
    /// The value before the put, if the key existed.
    pub prev_kv: Option<Kv>,
}

/// Body of `POST /kv/delete`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct DeleteBody {
    /// The key, or the prefix when `prefix` is true.
    pub key: String,
    /// Delete every key starting with `key`.
    #[serde(default)]
    pub prefix: bool,
}

/// Answer of `POST /kv/delete`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct DeleteReply {
    /// Store revision after the delete.
    pub revision: Revision,
    /// How many keys were deleted.
    pub deleted: u64,
}

/// Body of `POST /kv/compact`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct CompactBody {
    /// Drop history at and below this revision.
    pub revision: Revision,
}

/// A compare in a transaction.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TxnCompare {
    /// The key compared.
    pub key: String,
    /// `version`, `create_revision`, `mod_revision` or `value`.
    pub target: String,
    /// `=`, `!=`, `>` or `<`.
    pub result: String,
    /// Number for the revision/version targets.
    #[serde(default)]
    pub number: i64,
    /// String for the `value` target.
    #[serde(default)]
    pub value: String,
}

/// An operation in a transaction branch.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum TxnOp {
    /// Put a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Delete a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Read a key.
    Get {
        /// The key.
        key: String,
    },
    /// Read keys under a prefix.
    Range {
        /// The prefix.
        prefix: String,
        /// At most this many (0: all).
        #[serde(default)]
        limit: usize,
    },
}

/// Body of `POST /kv/txn`.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct TxnBody {
    /// All must hold for `success` to run.
    #[serde(default)]
    pub compare: Vec<TxnCompare>,
    /// Run when every compare holds.
    #[serde(default)]
    pub success: Vec<TxnOp>,
    /// Run otherwise.
    #[serde(default)]
    pub failure: Vec<TxnOp>,
}

/// Result of one transaction operation.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum TxnOpReply {
    /// A put ran.
    Put {
        /// Previous value.
        prev_kv: Option<Kv>,
    },
    /// A delete ran.
    Delete {
        /// Keys deleted.
        deleted: u64,
    },
    /// A get ran.
    Get {
        /// The key, if present.
        kv: Option<Kv>,
    },
    /// A range ran.
    Range {
        /// Matching keys.
        kvs: Vec<Kv>,
        /// True when cut by the limit.
        more: bool,
    },
}

/// Answer of `POST /kv/txn`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TxnReply {
    /// Whether the compares held.
    pub succeeded: bool,
    /// Store revision after the transaction.
    pub revision: Revision,
    /// One result per operation of the branch that ran.
    pub responses: Vec<TxnOpReply>,
}

/// One line of `GET /kv/watch`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct WatchEvent {
    /// `PUT` or `DELETE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The key after the event (for DELETE, the key and the delete's revision).
    pub kv: Kv,
    /// For DELETE, the value that was deleted.
    pub prev_kv: Option<Kv>,
}

/// A member as `/cluster/members` and `ctl member list -o json` show it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// Raft id, in hex.
    pub id: String,
    /// Member name.
    pub name: String,
    /// `HOST:PORT`.
    pub address: String,
    /// `voter` or `learner`.
    pub role: String,
    /// True for the current leader.
    pub leader: bool,
}

/// A member's own view of itself: `GET /cluster/local`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct LocalStatus {
    /// Raft id, in hex.
    pub id: String,
    /// Member name.
    pub name: String,
    /// `HOST:PORT`.
    pub address: String,
    /// Raft state: Leader, Follower, Candidate or Learner.
    pub state: String,
    /// Current term.
    pub term: u64,
    /// Leader id in hex, if known.
    pub leader: Option<String>,
    /// Last log index.
    pub last_log_index: u64,
    /// Highest index known committed.
    pub commit_index: u64,
    /// Last applied index.
    pub applied_index: u64,
    /// Store revision.
    pub revision: Revision,
    /// Snapshots installed from a leader since start.
    pub snapshot_installs: u64,
}

/// Body of `POST /cluster/join` (step one: identity).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct JoinRequest {
    /// The master join token.
    pub token: String,
    /// The joining member's name.
    pub name: String,
    /// `HOST:PORT` it will be reached at.
    pub address: String,
    /// The id it already has, when resuming an interrupted join.
    pub id: Option<u64>,
}

/// Answer of `POST /cluster/join`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct JoinGrant {
    /// The cluster's id.
    pub cluster_id: String,
    /// The member's Raft id.
    pub id: u64,
    /// Authenticates Raft RPCs.
    pub peer_secret: String,
    /// The admin credential, for the member's own admin.kubeconfig.
    pub admin_token: String,
    /// The cluster CA, key included: a master signs its own serving
    /// certificate with it.
    pub ca: crate::security::pki::Authority,
    /// The agent CA, key included: a master signs joining workers' serving
    /// certificates with it (absent from leaders that predate it).
    #[serde(default)]
    pub agent_ca: Option<crate::security::pki::Authority>,
}

/// Body of `POST /cluster/join/complete` (step two: learner, catch up, voter).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct JoinComplete {
    /// The master join token, checked again.
    pub token: String,
    /// The id granted in step one.
    pub id: u64,
    /// Member name.
    pub name: String,
    /// `HOST:PORT`.
    pub address: String,
}

/// Body of `POST /cluster/members/remove`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RemoveRequest {
    /// Name of the member to remove.
    pub name: String,
}

/// Answer of `POST /cluster/members/remove`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RemoveReply {
    /// Voters left.
    pub voters: usize,
    /// A warning to show, e.g. an even number of voters.
    pub warning: Option<String>,
}

/// Body of `POST /cluster/tokens`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TokenCreate {
    /// Master or worker.
    pub role: Role,
    /// Lifetime in seconds.
    pub ttl_seconds: u64,
}

/// Answer of `POST /cluster/tokens`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TokenCreated {
    /// The token, shown once.
    pub token: String,
    /// Its id.
    pub id: String,
    /// Expiry, Unix seconds.
    pub expires: u64,
}

/// Body of `POST /cluster/join/worker`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct WorkerJoinRequest {
    /// A worker join token.
    pub token: String,
    /// The node's name.
    pub name: String,
    /// The address masters reach the node's agent at (its IP or host name).
    pub address: String,
}

/// Answer of `POST /cluster/join/worker`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct WorkerJoinGrant {
    /// The cluster's id.
    pub cluster_id: String,
    /// The node's own credential (a bearer token), shown once.
    pub credential: String,
    /// The masters' API addresses.
    pub masters: Vec<String>,
    /// The cluster CA certificate (no key).
    pub ca_pem: String,
    /// A serving certificate for the agent's log server, signed by the
    /// agent CA for the node's name.
    pub serving: crate::security::pki::Serving,
    /// The secret masters present to the agent's log server.
    pub agent_secret: String,
}
