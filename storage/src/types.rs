//! The engine's vocabulary: commands going in, responses and events coming out.
//!
//! Every type here is serde-serializable because it crosses the wire twice:
//! a [`Request`] travels through the Raft log, and a [`Response`] is stored in
//! the dedupe table so a retried request gets the original answer back.

use serde::{Deserialize, Serialize};

/// The store's logical clock: bumped by one for every request that changes at
/// least one key. A new store is at revision 1, as in etcd.
pub type Revision = i64;

/// One key at one revision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, never empty.
    pub key: Vec<u8>,
    /// The value (may be empty).
    pub value: Vec<u8>,
    /// Revision of the put that created the key; a delete followed by a put
    /// starts a new life with a new create revision.
    pub create_revision: Revision,
    /// Revision of the last put to the key.
    pub mod_revision: Revision,
    /// 1 on create, +1 per put; restarts at 1 after a delete.
    pub version: i64,
}

/// What happened to a key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change to one key, as a watcher sees it.
///
/// For [`EventKind::Put`], `kv` is the new value and `prev_kv` the key's value
/// before the put (`None` when the put created it), so a watcher filtering by
/// value (a label selector) sees an object leave or enter its selection.
/// For [`EventKind::Delete`], `kv` is `{ key, value: empty, create_revision: 0,
/// mod_revision: revision of the delete, version: 0 }` and `prev_kv` is the
/// deleted [`KeyValue`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change (see the type docs for deletes).
    pub kv: KeyValue,
    /// The key before the change: for deletes always, for puts when the
    /// key existed.
    pub prev_kv: Option<KeyValue>,
}

/// A batch of watch events read from history, and how far it reaches.
///
/// Every event under the prefix with a revision in `(after, through]` is in
/// `events`, and none later: a reader that delivered them all may resume
/// from `through` without skipping anything. A batch cut short by its limit
/// ends at the last revision it holds in full (a revision is never split), so
/// `through` is then below the store's revision.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Events {
    /// The events, in revision order.
    pub events: Vec<Event>,
    /// The revision the batch covers up to, inclusive.
    pub through: Revision,
}

/// A state change, replicated through Raft and applied by [`Engine::apply`](crate::Engine::apply).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Create or overwrite one key.
    Put {
        /// Non-empty key.
        key: Vec<u8>,
        /// Any value.
        value: Vec<u8>,
    },
    /// Delete one key (a no-op, not bumping the revision, if it is missing).
    Delete {
        /// Non-empty key.
        key: Vec<u8>,
    },
    /// Delete every key starting with `prefix`; an empty prefix deletes all keys.
    DeletePrefix {
        /// The prefix.
        prefix: Vec<u8>,
    },
    /// A conditional multi-key update.
    Txn(Txn),
    /// Forget history at and before `revision`.
    Compact {
        /// The new compact revision.
        revision: Revision,
    },
}

/// An etcd-style transaction: if every compare holds, run `success`, else `failure`.
///
/// Compares and the `Get`/`Range` ops inside a txn see the state as it was
/// *before* the txn (etcd would show a txn's earlier writes to its later
/// reads). Writes of one txn share one revision. A chosen branch that writes
/// the same key twice is rejected with [`Rejection::DuplicateKey`]; a put or
/// delete with an empty key in either branch is rejected with
/// [`Rejection::EmptyKey`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Txn {
    /// Conditions, all of which must hold for `success` to run.
    pub compare: Vec<Compare>,
    /// Ops run when all compares hold.
    pub success: Vec<Op>,
    /// Ops run otherwise.
    pub failure: Vec<Op>,
}

/// One condition of a [`Txn`]: `key`'s `target` field compared with `op`.
///
/// As in etcd, a missing key has version, create revision and mod revision 0,
/// and any `Value` compare on a missing key is false.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key to look at.
    pub key: Vec<u8>,
    /// Which field, and the value to compare it with.
    pub target: Target,
    /// How to compare: `stored <op> target`.
    pub op: CompareOp,
}

/// The field a [`Compare`] looks at, with the value it is compared to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The key's version.
    Version(i64),
    /// The key's create revision.
    CreateRevision(Revision),
    /// The key's mod revision.
    ModRevision(Revision),
    /// The key's value, compared bytewise.
    Value(Vec<u8>),
}

/// A comparison: `stored <op> target`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `stored == target`
    Equal,
    /// `stored != target`
    NotEqual,
    /// `stored > target`
    Greater,
    /// `stored < target`
    Less,
}

/// One operation inside a [`Txn`] branch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create or overwrite a key.
    Put {
        /// Non-empty key.
        key: Vec<u8>,
        /// Any value.
        value: Vec<u8>,
    },
    /// Delete a key.
    Delete {
        /// Non-empty key.
        key: Vec<u8>,
    },
    /// Read a key (as of before the txn).
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// Read keys under a prefix (as of before the txn).
    Range {
        /// The prefix; empty means all keys.
        prefix: Vec<u8>,
        /// At most this many keys; 0 means no limit.
        limit: usize,
    },
}

/// A client request: a command plus an optional idempotency key.
///
/// `id` is chosen by the client; a request whose id was already applied
/// returns the stored response and changes nothing. The engine remembers the
/// last [`DEDUPE_CAPACITY`](crate::DEDUPE_CAPACITY) ids.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Idempotency key, or `None` for a request that need not be deduplicated.
    pub id: Option<[u8; 16]>,
    /// What to do.
    pub command: Command,
}

/// The result of applying a [`Command`].
///
/// Every `revision` field is the store revision after the command (etcd's
/// header revision): for a command that changed nothing it is the unchanged
/// current revision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// A put: the new revision and the previous value, if any.
    Put {
        /// Store revision after the put (the key's new mod revision).
        revision: Revision,
        /// The key before the put.
        prev: Option<KeyValue>,
    },
    /// A delete or prefix delete.
    Delete {
        /// Store revision after the delete.
        revision: Revision,
        /// How many keys were deleted.
        deleted: u64,
        /// The deleted keys, in key order.
        prev: Vec<KeyValue>,
    },
    /// A transaction.
    Txn {
        /// Whether the compares held (so `success` ran).
        succeeded: bool,
        /// Store revision after the txn.
        revision: Revision,
        /// One response per op of the branch that ran, in order.
        responses: Vec<OpResponse>,
    },
    /// A compaction.
    Compact {
        /// Store revision (unchanged by compaction; the compact revision is
        /// the one requested).
        revision: Revision,
    },
    /// The command was refused, deterministically, and changed nothing.
    Rejected(Rejection),
}

/// The result of one [`Op`] inside a txn.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum OpResponse {
    /// Result of [`Op::Put`].
    Put {
        /// The key before the put.
        prev: Option<KeyValue>,
    },
    /// Result of [`Op::Delete`].
    Delete {
        /// 0 or 1.
        deleted: u64,
        /// The deleted key, if it existed.
        prev: Vec<KeyValue>,
    },
    /// Result of [`Op::Get`].
    Get {
        /// The key before the txn.
        kv: Option<KeyValue>,
    },
    /// Result of [`Op::Range`].
    Range {
        /// Matching keys before the txn, in key order, at most `limit`.
        kvs: Vec<KeyValue>,
        /// True when the limit cut the result short.
        more: bool,
    },
}

/// A deterministic refusal: a result, not an error (every replica refuses the
/// same way).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// A put or delete named the empty key.
    EmptyKey,
    /// A txn's chosen branch writes `key` more than once.
    DuplicateKey {
        /// The key written twice.
        key: Vec<u8>,
    },
    /// A compaction asked for a revision below the current compact revision.
    Compacted {
        /// The store's compact revision.
        compact_revision: Revision,
    },
    /// A compaction asked for a revision above the current revision.
    FutureRevision {
        /// The store's current revision.
        current: Revision,
    },
}

/// What applying one request did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The response to return to the client.
    pub response: Response,
    /// The changes, in the order they happened, all at `revision` (empty when
    /// nothing changed).
    pub events: Vec<Event>,
    /// The store revision after the request.
    pub revision: Revision,
}

/// A read and the store revision it was read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read<T> {
    /// What was read.
    pub value: T,
    /// The revision the read reflects: the requested one for a historical
    /// read, else the store revision at the time of the read.
    pub revision: Revision,
}

/// The result of a range read.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeResult {
    /// Matching keys in key order, at most `limit`.
    pub kvs: Vec<KeyValue>,
    /// True when the limit cut the result short.
    pub more: bool,
    /// Total number of matching keys, regardless of the limit.
    pub count: u64,
}
