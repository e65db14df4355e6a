//! How the control loops write objects: the API's own compare-and-swap path
//! ([`crate::api::store`]), with the API's defaulting, validation and
//! server-set metadata, so an object a loop writes is indistinguishable from
//! one a client wrote.
//!
//! Every update names the revision the loop read. When the object changed
//! meanwhile the write is [`Outcome::Lost`] and the loop retries from a fresher
//! cache — the same rule that makes a deposed leader's late writes fail.

use super::informer::Object;
use crate::api::store::{self, Deletion, Outcome, Swap};
use crate::api::{ApiError, Context};
use crate::objects::{meta, Resource};
use axum::http::Uri;
use serde_json::{json, Value};
use std::sync::Arc;

/// The served resource of `kind`.
///
/// # Errors
/// Only if the registry lacks the kind (a bug).
pub fn served(kind: &str) -> Result<&'static Resource, ApiError> {
    crate::objects::registry::by_kind(kind)
        .ok_or_else(|| ApiError::Internal(format!("{kind} is not served")))
}

/// Writes objects on behalf of the control loops.
#[derive(Clone)]
pub struct Writer {
    ctx: Arc<Context>,
    uri: Uri,
}

impl Writer {
    /// A writer through this member's store.
    pub fn new(ctx: Arc<Context>) -> Writer {
        Writer {
            ctx,
            uri: Uri::from_static("/"),
        }
    }

    /// The member's context.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    async fn swap(&self, swap: &Swap<'_>) -> Result<Outcome, ApiError> {
        store::swap(&self.ctx, &self.uri, None, swap).await
    }

    /// Creates `obj` (a name or `generateName` set), filling defaults and
    /// server metadata. Returns the stored object, or None when the name
    /// is taken or the namespace is gone.
    ///
    /// # Errors
    /// Invalid objects (a bug in the loop), and write failures (no leader).
    pub async fn create(
        &self,
        resource: &Resource,
        mut obj: Value,
    ) -> Result<Option<Value>, ApiError> {
        obj["kind"] = json!(resource.kind);
        obj["apiVersion"] = json!(resource.api_version());
        if meta::name(&obj).is_none() {
            if let Some(prefix) = meta::meta_str(&obj, "generateName").map(str::to_owned) {
                obj["metadata"]["name"] =
                    json!(format!("{prefix}{}", crate::security::random_string(5)));
            }
        }
        resource.strategy.default(&mut obj);
        let errors = resource.strategy.validate(&obj);
        if !errors.is_empty() {
            let text: Vec<String> = errors
                .0
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            return Err(ApiError::Internal(format!(
                "a control loop made an invalid {}: {}",
                resource.kind,
                text.join(", ")
            )));
        }
        meta::on_create(&mut obj, meta::now());
        let namespace = meta::namespace(&obj).map(str::to_owned);
        let key = resource.key(namespace.as_deref(), meta::name(&obj).unwrap_or(""));
        let swap = Swap {
            key: &key,
            expected: 0,
            object: Some(&obj),
            namespace: namespace.as_deref().filter(|_| resource.namespaced),
            claims: &[],
        };
        match self.swap(&swap).await? {
            Outcome::Done(revision) => {
                meta::set_resource_version(&mut obj, revision);
                Ok(Some(obj))
            }
            Outcome::Lost => Ok(None),
        }
    }

    /// Replaces `current` with `next` if it has not changed since it was read.
    ///
    /// # Errors
    /// Write failures (no leader).
    pub async fn update(
        &self,
        resource: &Resource,
        current: &Object,
        mut next: Value,
    ) -> Result<Outcome, ApiError> {
        meta::on_update(&current.value, &mut next);
        resource.strategy.default(&mut next);
        if next == current.value {
            return Ok(Outcome::Done(current.revision));
        }
        self.replace(current, &next).await
    }

    /// Stores `next` in place of `current`, if unchanged since it was read.
    async fn replace(&self, current: &Object, next: &Value) -> Result<Outcome, ApiError> {
        let swap = Swap {
            key: &current.key,
            expected: current.revision,
            object: Some(next),
            namespace: None,
            claims: &[],
        };
        self.swap(&swap).await
    }

    /// Deletes `current` as a client's DELETE would (a bound pod is marked
    /// for its agent to stop), if it has not changed since it was read.
    ///
    /// # Errors
    /// Write failures (no leader).
    pub async fn delete(&self, resource: &Resource, current: &Object) -> Result<Outcome, ApiError> {
        match store::deletion(resource, &current.value, None, &[], meta::now()) {
            Deletion::AlreadyMarked => Ok(Outcome::Done(current.revision)),
            Deletion::Mark(next) => self.replace(current, &next).await,
            Deletion::Remove => self.remove(resource, current).await,
        }
    }

    /// Removes `current` now, if it has not changed since it was read.
    ///
    /// # Errors
    /// Write failures (no leader).
    pub async fn remove(&self, resource: &Resource, current: &Object) -> Result<Outcome, ApiError> {
        let released = resource.strategy.release(&current.value);
        let claims = store::still_held(&self.ctx, &released)?;
        let swap = Swap {
            key: &current.key,
            expected: current.revision,
            object: None,
            namespace: None,
            claims: &claims,
        };
        self.swap(&swap).await
    }
}
