//! Kubernetes object types and what the API knows about them.
//!
//! - [`registry`]: the served resources (kinds, plurals, scopes, subresources).

pub mod registry;
