//! One stored object as the store hands it out: its key, its JSON with
//! `metadata.resourceVersion` set, and the mod revision a compare-and-swap
//! names.

use super::{Error, Result};
use crate::objects::meta;
use flotilla_storage::{KeyValue, Revision};
use serde_json::Value;

/// One stored object.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Its storage key.
    pub key: String,
    /// The object, with `metadata.resourceVersion` set.
    pub value: Value,
    /// Its mod revision (the revision a compare-and-swap names).
    pub revision: Revision,
}

impl Object {
    /// Decodes a stored key-value at its mod revision.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the value is not JSON.
    pub fn decode(kv: &KeyValue) -> Result<Object> {
        Object::decode_at(&kv.key, &kv.value, kv.mod_revision)
    }

    /// Decodes `value` stored at `key`, as of `revision`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the value is not JSON.
    pub fn decode_at(key: &[u8], value: &[u8], revision: Revision) -> Result<Object> {
        let key = String::from_utf8_lossy(key).into_owned();
        let mut value: Value = serde_json::from_slice(value).map_err(|source| Error::Corrupt {
            key: key.clone(),
            source,
        })?;
        meta::set_resource_version(&mut value, revision);
        Ok(Object {
            key,
            value,
            revision,
        })
    }

    /// `metadata.name` ("" when absent).
    pub fn name(&self) -> &str {
        meta::name(&self.value).unwrap_or("")
    }

    /// `metadata.namespace` ("" for cluster-scoped objects).
    pub fn namespace(&self) -> &str {
        meta::namespace(&self.value).unwrap_or("")
    }

    /// `metadata.uid` ("" when absent).
    pub fn uid(&self) -> &str {
        meta::meta_str(&self.value, "uid").unwrap_or("")
    }

    /// The JSON object, consumed.
    pub fn into_value(self) -> Value {
        self.value
    }
}
