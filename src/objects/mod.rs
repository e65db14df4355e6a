//! Kubernetes objects as the API stores and serves them.
//!
//! Objects are JSON documents (`serde_json::Value`) in Kubernetes' shapes, so
//! every field a user writes round-trips. This module knows what the server
//! must about them:
//! - [`registry`]: the served resources (kinds, plurals, scopes, subresources);
//! - [`meta`]: metadata the server sets and keeps (uid, timestamps,
//!   generation, resourceVersion);
//! - [`kinds`]: per-kind defaulting and validation;
//! - [`pod`], [`owner`], [`quantity`]: the fields control loops read
//!   (requests, readiness, owner references, quantities as integers);
//! - [`validate`]: field checks (DNS-1123 names, labels, types) that collect
//!   every problem as a field error.

pub mod kinds;
pub mod meta;
pub mod owner;
pub mod pod;
pub mod podcidr;
pub mod quantity;
pub mod registry;
pub mod validate;

pub use registry::Resource;
