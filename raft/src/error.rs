//! The crate's error type.

use crate::codec::CodecError;

/// Errors from starting a member or changing the cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage engine failed (I/O, corruption).
    #[error("storage: {0}")]
    Storage(#[from] flotilla_storage::Error),
    /// A record on disk could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// A file outside RocksDB (the snapshot) failed.
    #[error("i/o on {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// openraft refused its configuration.
    #[error("raft configuration: {0}")]
    Config(#[from] openraft::ConfigError),
    /// openraft stopped or failed.
    #[error("raft: {0}")]
    Raft(String),
    /// A membership request was not valid (names the problem).
    #[error("{0}")]
    Membership(String),
    /// This member is not the leader; the leader, if known, can do it.
    #[error("not the leader")]
    NotLeader(Option<(crate::MemberId, crate::Member)>),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
