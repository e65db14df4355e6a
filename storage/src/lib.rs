//! Flotilla's replicated state: an MVCC key-value store on RocksDB with etcd's
//! semantics.
//!
//! The [`Engine`] is a deterministic state machine: [`Engine::apply`] takes a
//! [`Request`] and returns what it did ([`Applied`]). It knows nothing of
//! networking or Raft; the raft crate feeds it committed log entries and
//! shares its RocksDB (adding its own column families for the log), which is
//! why [`Engine::open`] takes extra column family names and why `apply`
//! writes an opaque *marker* (the last-applied log id) in the same batch as
//! the data.
//!
//! # Model
//!
//! One global [`Revision`], 1 on a new store, bumped by exactly one by every
//! request that changes at least one key; all changes of a request share it.
//! Each key carries its create revision, mod revision and version, as in
//! etcd. Reads can go back to any revision not yet compacted, and the watch
//! history ([`Engine::events`]) replays every change after a revision.
//! Refusals that every replica makes identically (an empty key, a txn writing
//! one key twice, a compaction out of range) are [`Rejection`]s, i.e. results;
//! [`Error`]s are failures of this replica.
//!
//! # Storage layout
//!
//! All in column families of one RocksDB (see [`Engine::COLUMN_FAMILIES`]):
//!
//! | column family | key | value |
//! |---|---|---|
//! | `kv` | raw key | latest version of a live key (value, create/mod revision, version) |
//! | `kv_history` | escaped key ++ `00 00` ++ revision | every version since the compact revision, or a deletion tombstone |
//! | `kv_events` | revision | that revision's [`Event`]s, in order |
//! | `kv_dedupe` | `i` ++ request id / `s` ++ sequence | the stored [`Response`] / the id applied at that sequence |
//! | `kv_meta` | name | revision, compact revision, dedupe sequence, marker |
//!
//! Revisions are encoded so byte order is numeric order, and keys in
//! `kv_history` are escaped so all versions of a key are contiguous and keys
//! keep their raw order (see `codec`). Records are bincode 2.
//!
//! # Modules
//!
//! * `types`: commands, responses, events.
//! * `engine`: opening, reads, export/import.
//! * `apply`: the state machine's writes.
//! * `codec`: key and record encodings.

mod apply;
mod codec;
mod engine;
mod error;
mod types;

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;

pub use rocksdb;

pub use engine::{Engine, DEDUPE_CAPACITY, INITIAL_REVISION};
pub use error::{Error, Result};
pub use types::{
    Applied, Command, Compare, CompareOp, Event, EventKind, Events, KeyValue, Op, OpResponse,
    RangeResult, Read, Rejection, Request, Response, Revision, Target, Txn,
};
