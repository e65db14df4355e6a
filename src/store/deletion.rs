//! What deleting an object means: remove it now, or mark it
//! (`deletionTimestamp`) and let its agent or its finalizers finish — the
//! same decision for a client's DELETE and a control loop's.

use crate::objects::{meta, pod, Resource};
use serde_json::{json, Value};

/// What deleting an object does.
#[derive(Debug, Clone, PartialEq)]
pub enum Deletion {
    /// Remove it now.
    Remove,
    /// Store this marked version (deletionTimestamp set): a bound pod's agent
    /// stops its containers first, finalizers are worked off first.
    Mark(Value),
    /// Already marked: nothing more to do.
    AlreadyMarked,
}

/// Decides how to delete `current` of `resource`, given the request's grace
/// period and finalizers to add (for foreground or orphan propagation), at
/// `now` (Unix seconds).
pub fn deletion(
    resource: &Resource,
    current: &Value,
    grace: Option<i64>,
    add_finalizers: &[&str],
    now: u64,
) -> Deletion {
    let bound = resource.kind == "Pod" && pod::node_name(current).is_some();
    let has_finalizers = current["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    let graceful = (bound && grace != Some(0)) || has_finalizers || !add_finalizers.is_empty();
    if !graceful {
        return Deletion::Remove;
    }
    let mut next = current.clone();
    let mut changed = false;
    if !add_finalizers.is_empty() {
        let mut finalizers: Vec<Value> = current["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for f in add_finalizers {
            if !finalizers.iter().any(|x| x == f) {
                finalizers.push(json!(f));
                changed = true;
            }
        }
        next["metadata"]["finalizers"] = Value::Array(finalizers);
    }
    if pod::is_terminating(current) {
        return if changed {
            Deletion::Mark(next)
        } else {
            Deletion::AlreadyMarked
        };
    }
    let seconds = if bound {
        grace
            .or_else(|| current["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0)
    } else {
        0
    };
    next["metadata"]["deletionTimestamp"] = json!(meta::timestamp(now));
    next["metadata"]["deletionGracePeriodSeconds"] = json!(seconds);
    Deletion::Mark(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::registry;

    fn pods() -> &'static Resource {
        registry::by_kind("Pod").expect("pods are served")
    }

    #[test]
    fn bound_pods_are_marked_and_others_removed() {
        let unbound = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(deletion(pods(), &unbound, None, &[], 100), Deletion::Remove);
        let bound = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 7}});
        let Deletion::Mark(marked) = deletion(pods(), &bound, None, &[], 100) else {
            panic!("a bound pod is deleted gracefully");
        };
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 7);
        assert_eq!(
            deletion(pods(), &marked, None, &[], 200),
            Deletion::AlreadyMarked
        );
        assert_eq!(
            deletion(pods(), &bound, Some(0), &[], 100),
            Deletion::Remove
        );
    }

    #[test]
    fn propagation_finalizers_mark_the_owner() {
        let rs = registry::by_kind("ReplicaSet").expect("replicasets");
        let obj = json!({"metadata": {"name": "r"}});
        let Deletion::Mark(marked) = deletion(rs, &obj, None, &["orphan"], 5) else {
            panic!("orphaning marks the owner");
        };
        assert_eq!(marked["metadata"]["finalizers"], json!(["orphan"]));
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 0);
    }
}
