//! Flotilla: a container orchestrator in the Kubernetes mould.
//!
//! The `ctl` binary is every part of the system. This library holds them, in
//! layers; each depends only on the layers above it in this list:
//!
//! - [`objects`]: Kubernetes objects without I/O — the served resources and
//!   their rules (defaulting, validation, claims such as a Service's IP),
//!   metadata, selectors, quantities.
//! - [`store`]: the object store over the replicated store
//!   ([`flotilla_raft::Node`]): get / list / watch (one [`store::Cursor`]) /
//!   create / update / delete, each one pipeline for every kind, typed
//!   errors, no HTTP. Also the leader's informer cache, the control loops'
//!   writer and the cluster settings.
//! - [`api`] (the HTTP routes every master serves: Kubernetes REST, `/kv`,
//!   `/cluster`, health, metrics), [`controllers`] and [`scheduler`] (loops
//!   only the Raft leader runs), [`agent`] (the worker: pods on Docker).
//!   None of these imports another of them.
//! - [`master`] (a control-plane member: identity, store, server, loops) and
//!   [`cli`] (the command line), with [`bench`] (load generators).
//!
//! Beside the layers: [`https`] (the TLS server with connection limits that
//! masters and agents serve on), [`host`] (this machine's name),
//! [`security`] (PKI, join tokens, node credentials),
//! [`client`] (the HTTP client `ctl` and agents use: leader redirects,
//! rotation through masters; kubeconfig files) and [`wire`] (types both ends
//! of an HTTP call share).
//!
//! Crates point one way too: `flotilla-storage` ← `flotilla-raft` ← this crate.

pub mod agent;
pub mod api;
pub mod bench;
pub mod cli;
pub mod client;
pub mod controllers;
pub mod host;
pub mod https;
pub mod master;
pub mod objects;
pub mod scheduler;
pub mod security;
pub mod store;
pub mod wire;
