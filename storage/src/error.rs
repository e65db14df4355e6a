//! The crate's error type.
//!
//! Errors are what the engine could not do: RocksDB failures, records that do
//! not decode, and reads outside the retained history. Deterministic refusals
//! of a *command* (an empty key, a compaction below the compacted revision) are
//! not errors but [`Rejection`](crate::Rejection)s inside a
//! [`Response`](crate::Response): every replica refuses the same way, so a
//! refusal is part of the replicated result. An `Err` from
//! [`Engine::apply`](crate::Engine::apply) on the other hand means this replica
//! could not apply the request and must stop rather than drift.

use crate::Revision;

/// Everything that can go wrong in the storage engine.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// RocksDB reported an error (I/O, corruption detected by RocksDB, ...).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A record could not be encoded.
    #[error("encoding a record: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// A stored record (or an imported export) could not be decoded.
    #[error("decoding a record: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The database does not look like one this engine wrote: a missing column
    /// family, a malformed key or record.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The engine was used in a way it does not allow, e.g. a caller's
    /// column family named like one of the engine's.
    #[error("configuration: {0}")]
    Config(String),
    /// The requested revision has been compacted away.
    #[error("revision {requested} has been compacted (compact revision {compacted})")]
    Compacted {
        /// The revision the caller asked for.
        requested: Revision,
        /// The store's compact revision.
        compacted: Revision,
    },
    /// The requested revision is newer than the store.
    #[error("revision {requested} is in the future (current revision {current})")]
    FutureRevision {
        /// The revision the caller asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
