//! Writes as a control loop makes them: against the object it read from its
//! cache, through the store's one create, update and delete pipelines (the
//! same defaulting, validation, server metadata and claims as a client's
//! write), with a lost race reported rather than retried.
//!
//! Every update names the revision the loop read. When the object changed
//! meanwhile the write is [`Outcome::Lost`] and the loop retries from a
//! fresher cache — the same rule that makes a deposed leader's late writes
//! fail.

use super::{deletion, Deletion, Error, Object, Outcome, Result, Store, WriteOptions};
use crate::objects::{meta, registry, Resource};
use serde_json::{json, Value};

/// The served resource of `kind`.
///
/// # Errors
/// [`Error::Unserved`] if the registry lacks the kind (a bug).
pub fn served(kind: &str) -> Result<&'static Resource> {
    registry::by_kind(kind).ok_or_else(|| Error::Unserved(kind.to_owned()))
}

/// Writes objects on behalf of the control loops.
#[derive(Clone)]
pub struct Writer {
    store: Store,
}

impl Writer {
    /// A writer through `store`.
    pub fn new(store: Store) -> Writer {
        Writer { store }
    }

    /// The store written to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates `obj` (a name or `generateName` set). Returns the stored
    /// object, or None when the name is taken or the namespace is gone.
    ///
    /// # Errors
    /// Invalid objects (a bug in the loop), and write failures (no leader).
    pub async fn create(
        &self,
        resource: &'static Resource,
        mut obj: Value,
    ) -> Result<Option<Value>> {
        obj["kind"] = json!(resource.kind);
        obj["apiVersion"] = json!(resource.api_version());
        match self
            .store
            .create(resource, obj, &WriteOptions::default())
            .await
        {
            Ok(created) => Ok(Some(created)),
            Err(Error::AlreadyExists { .. } | Error::NamespaceMissing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces `current` with `next` if it has not changed since it was read.
    ///
    /// # Errors
    /// Invalid objects, and write failures (no leader).
    pub async fn update(
        &self,
        resource: &'static Resource,
        current: &Object,
        next: Value,
    ) -> Result<Outcome> {
        self.store.replace(resource, current, next).await
    }

    /// Deletes `current` as a client's DELETE would (a bound pod is marked
    /// for its agent to stop), if it has not changed since it was read.
    ///
    /// # Errors
    /// Write failures (no leader).
    pub async fn delete(&self, resource: &'static Resource, current: &Object) -> Result<Outcome> {
        match deletion(resource, &current.value, None, &[], meta::now()) {
            Deletion::AlreadyMarked => Ok(Outcome::Done(current.revision)),
            Deletion::Mark(next) => self.store.swap_raw(current, &next).await,
            Deletion::Remove => self.remove(resource, current).await,
        }
    }

    /// Removes `current` now, if it has not changed since it was read,
    /// releasing what its kind holds in the same transaction.
    ///
    /// # Errors
    /// Write failures (no leader).
    pub async fn remove(&self, resource: &'static Resource, current: &Object) -> Result<Outcome> {
        self.store
            .remove(resource, current, &WriteOptions::default())
            .await
    }
}
