//! Object writes as compare-and-swap transactions.
//!
//! Every write names the mod revision it read (0: the key must not exist).
//! A write whose object changed meanwhile is *lost* rather than applied, so
//! two writers never clobber each other — in particular a deposed leader's
//! late write fails instead of overwriting its successor's. Creating a
//! namespaced object also requires its namespace to exist, in the same
//! transaction. Claims (a Service's cluster IP and node ports, a Node's
//! credential) are taken and released in the same transaction as the object.

use crate::objects::meta;
use crate::objects::registry;
use crate::objects::Claim;
use flotilla_storage::{Command, Compare, CompareOp, Op, Target, Txn};
use serde_json::Value;

/// A compare-and-swap write of one object.
#[derive(Debug, Clone, Copy)]
pub struct Swap<'a> {
    /// The object's storage key.
    pub key: &'a str,
    /// The mod revision read; 0 to create.
    pub expected: flotilla_storage::Revision,
    /// The new object, or None to delete it.
    pub object: Option<&'a Value>,
    /// When creating, the namespace that must exist.
    pub namespace: Option<&'a str>,
    /// Range keys taken or released with the write.
    pub claims: &'a [Claim],
}

/// Encodes an object for storage (without resourceVersion).
///
/// # Errors
/// Only if the JSON cannot be serialized (it always can: it is a `Value`).
pub fn stored_bytes(obj: &Value) -> Result<Vec<u8>, serde_json::Error> {
    let mut obj = obj.clone();
    meta::strip_for_storage(&mut obj);
    serde_json::to_vec(&obj)
}

/// The transaction for `swap`.
///
/// # Errors
/// Only if the object cannot be serialized.
pub fn transaction(swap: &Swap<'_>) -> Result<Txn, serde_json::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn claims_ride_in_the_same_transaction() {
        let obj = json!({"metadata": {"name": "s"}});
        let claims = [
            Claim::Take {
                key: "/registry/ranges/serviceips/10.96.0.9".into(),
                owner: "default/s".into(),
            },
            Claim::Release {
                key: "/registry/ranges/servicenodeports/30001".into(),
                owner: Some("default/s".into()),
            },
        ];
        let txn = transaction(&Swap {
            key: "/registry/services/default/s",
            expected: 7,
            object: Some(&obj),
            namespace: None,
            claims: &claims,
        })
        .expect("txn");
        assert_eq!(
            txn.compare.len(),
            3,
            "the object's revision, the free IP, the port still held"
        );
        assert_eq!(txn.success.len(), 3);
    }
}
