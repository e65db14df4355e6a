//! Leases: the node heartbeats agents renew in `kube-node-lease`.

use super::print::{col, meta_age, meta_name, typed, unreadable_row, Column, Row, AGE, NAME};
use super::registry::Resource;
use super::strategy::Strategy;
use k8s_openapi::api::coordination::v1 as k8s;
use serde_json::Value;

/// The rules of Lease objects.
#[derive(Debug, Clone, Copy)]
pub struct Leases;

/// The resource served for this kind.
pub const RESOURCE: Resource = Resource {
    group: "coordination.k8s.io",
    version: "v1",
    kind: "Lease",
    list_kind: "LeaseList",
    plural: "leases",
    singular: "lease",
    short_names: &[],
    namespaced: true,
    subresources: &[],
    in_all: false,
    strategy: &Leases,
};

/// The field types only this kind uses (grammar: [`super::types`]).
const TYPES: &str = "
coordination.Lease apiVersion:string kind:string metadata:meta.ObjectMeta
        spec:coordination.LeaseSpec
coordination.LeaseSpec acquireTime:time holderIdentity:string leaseDurationSeconds:integer
        leaseTransitions:integer preferredHolder:string renewTime:time strategy:string
";

/// kube-apiserver's Table columns for this kind (its printers.go).
const COLUMNS: &[Column] = &[
    NAME,
    col("Holder", "string", "The holder of the lease"),
    AGE,
];

impl Strategy for Leases {
    fn type_name(&self) -> Option<&'static str> {
        Some("coordination.Lease")
    }

    fn types(&self) -> &'static str {
        TYPES
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, obj: &Value, now: i64) -> Row {
        lease_row(obj, now)
    }
}

fn lease_row(obj: &Value, now: i64) -> Row {
    let Some(lease) = typed::<k8s::Lease>(obj) else {
        return unreadable_row(obj, now, COLUMNS);
    };
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    Row::cells(vec![
        meta_name(&lease.metadata),
        Value::from(holder),
        meta_age(&lease.metadata, now),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_fill_every_column_and_nothing_is_claimed() {
        let mut obj = json!({"metadata": {"name": "x", "namespace": "default"}});
        assert!(Leases.validate(&obj).is_empty());
        assert_eq!(Leases.row(&obj, 0).cells.len(), Leases.columns().len());
        assert!(Leases.allocate(&mut obj).is_empty());
        assert!(Leases.release(&obj).is_empty());
        assert!(!Leases.validate(&json!({"metadata": {}})).is_empty());
    }
}
