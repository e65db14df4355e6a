//! flotilla-raft: the replicated log under Flotilla's store.
//!
//! This crate replicates opaque key-value commands ([`flotilla_storage::Request`])
//! across the masters with [openraft] and applies them, in log order, to a
//! [`flotilla_storage::Engine`]. It never sees a Kubernetes object.
//!
//! Layout:
//! - [`types`]: the openraft type wiring (`TypeConfig`), member ids and addresses.
//! - [`log_store`]: the Raft log and vote in RocksDB column families of the same
//!   database the engine uses. Votes are fsynced before `save_vote` returns;
//!   appended entries are acknowledged to openraft only after a WAL fsync, which a
//!   dedicated syncer thread shares between every append that arrived meanwhile
//!   (group commit).
//! - [`state_machine`]: applies committed entries to the engine, writing the
//!   applied log id and membership in the same RocksDB batch as the data; builds,
//!   stores and installs snapshots.
//! - [`network`] and [`rpc`]: Raft RPCs between masters over HTTP with bincode
//!   bodies, authenticated by the cluster's peer secret.
//! - [`node`]: the facade the server uses: start, write, linearizable read
//!   barrier, membership changes, leadership watch, metrics.
//!
//! Durability contract: a write is acknowledged to a client only after a
//! majority fsynced the entry and this member applied it.

// openraft's `StorageError` (which its storage traits require) is over 200
// bytes; the helpers that build it return it as the traits do.
#![allow(clippy::result_large_err)]

pub mod codec;
pub mod error;
pub mod log_store;
pub mod network;
pub mod node;
pub mod propose;
mod read;
pub mod rpc;
pub mod state_machine;
pub mod types;

pub use error::{Error, Result};
pub use node::{Config, Leadership, Node, ReadError, WriteError};
pub use types::{Member, MemberId, TypeConfig};
