//! Flotilla: a container orchestrator in the Kubernetes mould.
//!
//! The `ctl` binary is every part of the system. This library holds them:
//!
//! - [`objects`]: the object model at the bottom — the served resources, one
//!   file per kind with its strategy (defaulting, validation, immutable
//!   fields, what create allocates and delete releases, table printing, its
//!   field types), and the type table OpenAPI, strict field validation and
//!   strategic merge patch share. No I/O.
//! - [`master`]: a control-plane member — its identity on disk, the replicated
//!   store ([`flotilla_raft::Node`]) and the HTTP server, started by `ctl init`
//!   and `ctl join --control-plane`.
//! - [`api`]: the HTTP routes every master serves: `/kv/...` (raw store),
//!   `/cluster/...` (join, members, tokens, status), health and metrics.
//! - [`security`]: join tokens and credentials.
//! - [`client`]: the HTTP client `ctl` uses: follows leader redirects, remembers
//!   the leader, rotates through the masters with back-off; kubeconfig files.
//! - [`controllers`]: loops only the Raft leader runs.
//! - [`bench`]: load generators (`ctl bench kv`) for Flotilla and etcd.
//! - [`cli`]: the command line.
//!
//! Dependencies point one way: `flotilla-storage` ← `flotilla-raft` ← this crate,
//! and inside it `objects` ← `store` ← (`api`, `controllers`, `scheduler`,
//! `agent`, `proxy`, `dns`) ← (`cli`, `master`): `objects` imports no other
//! module of this crate (nor axum) and does no I/O; a control loop never
//! imports the HTTP layer.

pub mod agent;
pub mod api;
pub mod bench;
pub mod cli;
pub mod client;
pub mod controllers;
pub mod master;
pub mod objects;
pub mod scheduler;
pub mod security;
pub mod wire;
