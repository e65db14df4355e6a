//! Object writes as compare-and-swap transactions: the one write path of the
//! REST handlers and of the leader's control loops.
//!
//! Every write names the mod revision it read (0: the key must not exist).
//! A write whose object changed meanwhile is *lost* rather than applied, so
//! two writers never clobber each other — in particular a deposed leader's
//! late write fails instead of overwriting its successor's. Creating a
//! namespaced object also requires its namespace to exist, in the same
//! transaction. Claims (a Service's cluster IP and node ports) are taken and
//! released in the same transaction as the object; a release applies only
//! while the key still holds the releasing object ([`still_held`]).
//!
//! [`deletion`] decides what deleting an object means (remove it, or mark it
//! and let its agent or finalizers finish), for the API and the loops alike.

use super::{write_with_id, ApiError, Context};
use crate::objects::{meta, pod, registry, Claim, Resource};
use axum::http::Uri;
use flotilla_storage::{Command, Compare, CompareOp, Op, Response as Store, Revision, Target, Txn};
use serde_json::{json, Value};

/// A compare-and-swap write of one object.
#[derive(Debug, Clone, Copy)]
pub struct Swap<'a> {
    /// The object's storage key.
    pub key: &'a str,
    /// The mod revision read; 0 to create.
    pub expected: Revision,
    /// The new object, or None to delete it.
    pub object: Option<&'a Value>,
    /// When creating, the namespace that must exist.
    pub namespace: Option<&'a str>,
    /// Range keys taken or released with the write.
    pub claims: &'a [Claim],
}

/// How a compare-and-swap went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied at this revision.
    Done(Revision),
    /// The object (or a claim, or the namespace) was not as expected.
    Lost,
}

/// Encodes an object for storage (without resourceVersion).
///
/// # Errors
/// Only if the JSON cannot be serialized (it always can).
pub fn stored_bytes(obj: &Value) -> Result<Vec<u8>, ApiError> {
    let mut obj = obj.clone();
    meta::strip_for_storage(&mut obj);
    serde_json::to_vec(&obj).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The transaction for `swap`.
///
/// # Errors
/// Only if the object cannot be serialized.
pub fn transaction(swap: &Swap<'_>) -> Result<Txn, ApiError> {
    let key = swap.key.as_bytes().to_vec();
    let target = if swap.expected == 0 {
        Target::CreateRevision(0)
    } else {
        Target::ModRevision(swap.expected)
    };
    let mut compare = vec![Compare {
        key: key.clone(),
        target,
        op: CompareOp::Equal,
    }];
    if swap.expected == 0 {
        if let (Some(ns), Some(namespaces)) = (swap.namespace, registry::by_kind("Namespace")) {
            compare.push(Compare {
                key: namespaces.key(None, ns).into_bytes(),
                target: Target::CreateRevision(0),
                op: CompareOp::Greater,
            });
        }
    }
    let mut success = vec![match swap.object {
        Some(obj) => Op::Put {
            key,
            value: stored_bytes(obj)?,
        },
        None => Op::Delete { key },
    }];
    for claim in swap.claims {
        match claim {
            Claim::Take { key, owner } => {
                compare.push(Compare {
                    key: key.clone().into_bytes(),
                    target: Target::CreateRevision(0),
                    op: CompareOp::Equal,
                });
                success.push(Op::Put {
                    key: key.clone().into_bytes(),
                    value: owner.clone().into_bytes(),
                });
            }
            Claim::Release { key, owner } => {
                // Give back only what the object still holds.
                if let Some(owner) = owner {
                    compare.push(Compare {
                        key: key.clone().into_bytes(),
                        target: Target::Value(owner.clone().into_bytes()),
                        op: CompareOp::Equal,
                    });
                }
                success.push(Op::Delete {
                    key: key.clone().into_bytes(),
                });
            }
        }
    }
    Ok(Txn {
        compare,
        success,
        failure: vec![],
    })
}

/// `claims` without the releases of keys that no longer hold their owner
/// (gone, or another object's): a delete gives back only what the object
/// holds. [`transaction`] compares the holder again, so a claim that changes
/// hands after this read fails the write instead of being deleted.
///
/// # Errors
/// When the local store cannot be read.
pub fn still_held(ctx: &Context, claims: &[Claim]) -> Result<Vec<Claim>, ApiError> {
    let mut kept = Vec::with_capacity(claims.len());
    for claim in claims {
        if let Claim::Release {
            key,
            owner: Some(owner),
        } = claim
        {
            let read = ctx.node.engine().get(key.as_bytes(), None)?;
            if read.value.is_none_or(|kv| kv.value != owner.as_bytes()) {
                continue;
            }
        }
        kept.push(claim.clone());
    }
    Ok(kept)
}

/// A transaction that runs `op` if `key`'s `target` equals the stored one,
/// and does nothing otherwise (see [`succeeded`]).
pub fn when(key: Vec<u8>, target: Target, op: Op) -> Command {
    Command::Txn(Txn {
        compare: vec![Compare {
            key,
            target,
            op: CompareOp::Equal,
        }],
        success: vec![op],
        failure: vec![],
    })
}

/// Whether a store answer is a transaction whose compares held.
pub fn succeeded(response: &flotilla_storage::Response) -> bool {
    matches!(
        response,
        flotilla_storage::Response::Txn {
            succeeded: true,
            ..
        }
    )
}

/// Replicates `swap` (through the leader; see [`write_with_id`]) with
/// idempotency key `id`.
///
/// # Errors
/// As [`write_with_id`]: a redirect on a follower, 503 without a leader, 504
/// when the outcome is unknown.
pub async fn swap(
    ctx: &Context,
    uri: &Uri,
    id: Option<[u8; 16]>,
    swap: &Swap<'_>,
) -> Result<Outcome, ApiError> {
    let command = Command::Txn(transaction(swap)?);
    match write_with_id(ctx, uri, id, command).await? {
        Store::Txn {
            succeeded: true,
            revision,
            ..
        } => Ok(Outcome::Done(revision)),
        Store::Txn { .. } => Ok(Outcome::Lost),
        other => Err(ApiError::Internal(format!(
            "unexpected store reply {other:?}"
        ))),
    }
}

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

    #[test]
    fn creates_require_the_namespace() {
        let obj = json!({"metadata": {"name": "p"}});
        let txn = transaction(&Swap {
            key: "/registry/pods/default/p",
            expected: 0,
            object: Some(&obj),
            namespace: Some("default"),
            claims: &[],
        })
        .expect("txn");
        assert_eq!(txn.compare.len(), 2);
        assert_eq!(txn.compare[1].key, b"/registry/namespaces/default".to_vec());
    }

    #[test]
    fn releases_compare_their_owner() {
        let claims = [
            Claim::Release {
                key: "/registry/ranges/serviceips/10.96.0.5".into(),
                owner: Some("default/web".into()),
            },
            Claim::Release {
                key: "/flotilla/nodes/n1".into(),
                owner: None,
            },
        ];
        let txn = transaction(&Swap {
            key: "/registry/services/default/web",
            expected: 7,
            object: None,
            namespace: None,
            claims: &claims,
        })
        .expect("txn");
        // The object's revision, and the owned range key's holder.
        assert_eq!(txn.compare.len(), 2);
        assert_eq!(
            txn.compare[1].key,
            b"/registry/ranges/serviceips/10.96.0.5".to_vec()
        );
        assert_eq!(
            txn.compare[1].target,
            Target::Value(b"default/web".to_vec())
        );
        // Both keys are deleted with the object.
        assert_eq!(txn.success.len(), 3);
    }
}
