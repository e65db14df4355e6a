//! Kubernetes objects as the API stores and serves them: the bottom layer.
//!
//! Objects are JSON documents (`serde_json::Value`) in Kubernetes' shapes, so
//! every field a user writes round-trips; code that only reads them may
//! deserialize them into typed `k8s-openapi` structs. This module knows what
//! the server must about them, and nothing about where they are kept:
//! - [`registry`]: the served resources, one line per kind, each carrying its
//!   [`Strategy`];
//! - one file per kind — [`namespace`], [`node`], [`pod`], [`service`],
//!   [`endpoints`], [`event`], [`deployment`], [`replicaset`], [`lease`] —
//!   holding its [`Resource`], its [`Strategy`] (defaulting, validation,
//!   immutable fields, what create allocates and delete releases, table
//!   columns and rows) and its field types;
//! - [`strategy`]: the trait, kube-apiserver's REST strategies;
//! - [`claim`]: store keys a write takes or gives back with an object;
//! - [`types`]: the field-type table (kinds' types plus shared ones) that the
//!   OpenAPI documents, strict field validation and strategic-merge-patch
//!   merge keys all read;
//! - [`podspec`]: pod spec and template rules Pods, Deployments and
//!   ReplicaSets share; [`print`]: what the table printers share;
//! - [`selectors`]: label and field selectors;
//! - [`meta`]: metadata the server sets and keeps (uid, timestamps,
//!   generation, resourceVersion);
//! - [`owner`], [`quantity`] and [`pod`]'s helpers: the fields control loops
//!   read (requests, readiness, owner references, quantities as integers);
//! - [`validate`]: field checks (DNS-1123 names, labels, types) that collect
//!   every problem as a field error.
//!
//! Dependency rule: `objects` is the bottom of `src/`. It does no I/O (no
//! store, no network, no files; randomness only to pick free IPs and ports)
//! and imports nothing from `api`, `store`, `controllers` or any other layer
//! above it, nor axum. Adding a kind is adding its file here and one line in
//! [`registry::RESOURCES`].

pub mod claim;
pub mod deployment;
pub mod endpoints;
pub mod event;
pub mod lease;
pub mod meta;
pub mod namespace;
pub mod node;
pub mod owner;
pub mod pod;
pub mod podcidr;
pub mod podspec;
pub mod print;
pub mod quantity;
pub mod registry;
pub mod replicaset;
pub mod selectors;
pub mod service;
pub mod strategy;
pub mod types;
pub mod validate;

pub use claim::Claim;
pub use registry::Resource;
pub use strategy::Strategy;
