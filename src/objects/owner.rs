//! Owner references: which object a dependent belongs to.
//!
//! A ReplicaSet owns its Pods, a Deployment its ReplicaSets; the reference
//! with `controller: true` names the one controller that manages the object.
//! The garbage collector deletes a dependent whose owners are all gone.

use serde_json::{json, Value};

/// Finalizer of an owner deleted with `propagationPolicy=Orphan`: the garbage
/// collector removes the dependents' references to it, then the owner.
pub const ORPHAN: &str = "orphan";
/// Finalizer of an owner deleted with `propagationPolicy=Foreground`: the
/// garbage collector deletes the dependents, then the owner.
pub const FOREGROUND: &str = "foregroundDeletion";

/// One `metadata.ownerReferences` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    /// The owner's `apiVersion`.
    pub api_version: String,
    /// The owner's kind.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's uid.
    pub uid: String,
    /// Whether the owner is the managing controller.
    pub controller: bool,
    /// Whether foreground deletion of the owner waits for this dependent.
    pub block_owner_deletion: bool,
}

impl OwnerRef {
    /// A controller reference to `owner` (an object with kind, apiVersion,
    /// name and uid).
    pub fn controller_of(owner: &Value) -> OwnerRef {
        OwnerRef {
            api_version: owner["apiVersion"].as_str().unwrap_or("").to_owned(),
            kind: owner["kind"].as_str().unwrap_or("").to_owned(),
            name: owner["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            uid: owner["metadata"]["uid"].as_str().unwrap_or("").to_owned(),
            controller: true,
            block_owner_deletion: true,
        }
    }

    /// As JSON, the way Kubernetes writes it.
    pub fn to_json(&self) -> Value {
        json!({
            "apiVersion": self.api_version, "kind": self.kind, "name": self.name,
            "uid": self.uid, "controller": self.controller,
            "blockOwnerDeletion": self.block_owner_deletion,
        })
    }

    fn from_json(value: &Value) -> Option<OwnerRef> {
        Some(OwnerRef {
            api_version: value["apiVersion"].as_str()?.to_owned(),
            kind: value["kind"].as_str()?.to_owned(),
            name: value["name"].as_str()?.to_owned(),
            uid: value["uid"].as_str()?.to_owned(),
            controller: value["controller"].as_bool().unwrap_or(false),
            block_owner_deletion: value["blockOwnerDeletion"].as_bool().unwrap_or(false),
        })
    }
}

/// Every well-formed owner reference of `obj`.
pub fn references(obj: &Value) -> Vec<OwnerRef> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| refs.iter().filter_map(OwnerRef::from_json).collect())
        .unwrap_or_default()
}

/// The controller reference of `obj`, if any.
pub fn controller(obj: &Value) -> Option<OwnerRef> {
    references(obj).into_iter().find(|r| r.controller)
}

/// The uid of the controller of `obj`, if any (without allocating a reference).
pub fn controller_uid(obj: &Value) -> Option<&str> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
        .and_then(|r| r["uid"].as_str())
}

/// Removes the references to `uid` from `obj`; whether any was removed.
pub fn remove(obj: &mut Value, uid: &str) -> bool {
    let Some(refs) = obj["metadata"]
        .get_mut("ownerReferences")
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    let before = refs.len();
    refs.retain(|r| r["uid"] != uid);
    let removed = refs.len() != before;
    if refs.is_empty() {
        if let Some(meta) = obj["metadata"].as_object_mut() {
            meta.remove("ownerReferences");
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_references_round_trip() {
        let owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-1", "uid": "u1"}});
        let r = OwnerRef::controller_of(&owner);
        let mut pod = json!({"metadata": {"ownerReferences": [r.to_json(),
            {"apiVersion": "v1", "kind": "X", "name": "x", "uid": "u2"}]}});
        assert_eq!(controller(&pod), Some(r));
        assert_eq!(controller_uid(&pod), Some("u1"));
        assert_eq!(references(&pod).len(), 2);
        assert!(remove(&mut pod, "u1"));
        assert!(!remove(&mut pod, "u1"));
        assert_eq!(controller(&pod), None);
        assert!(remove(&mut pod, "u2"));
        assert!(pod["metadata"].get("ownerReferences").is_none());
    }
}
