//! Namespaces: cluster-scoped, named by a DNS label, `Active` until deleted.

use super::print::{col, meta_age, meta_name, typed, unreadable_row, Column, Row, AGE, NAME};
use super::registry::Resource;
use super::strategy::{NameRule, Strategy};
use k8s_openapi::api::core::v1 as k8s;
use serde_json::{json, Value};

/// The rules of Namespace objects.
#[derive(Debug, Clone, Copy)]
pub struct Namespaces;

/// The resource served for this kind.
pub const RESOURCE: Resource = Resource {
    group: "",
    version: "v1",
    kind: "Namespace",
    list_kind: "NamespaceList",
    plural: "namespaces",
    singular: "namespace",
    short_names: &["ns"],
    namespaced: false,
    subresources: &["status"],
    in_all: false,
    strategy: &Namespaces,
};

/// The field types only this kind uses (grammar: [`super::types`]).
const TYPES: &str = "
core.Namespace apiVersion:string kind:string metadata:meta.ObjectMeta
        spec:core.NamespaceSpec status:core.NamespaceStatus
core.NamespaceCondition lastTransitionTime:time message:string reason:string status:string
        type:string
core.NamespaceSpec finalizers:[string]
core.NamespaceStatus conditions:[core.NamespaceCondition]@merge/type phase:string
";

/// kube-apiserver's Table columns for this kind (its printers.go).
const COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

impl Strategy for Namespaces {
    fn type_name(&self) -> Option<&'static str> {
        Some("core.Namespace")
    }

    fn types(&self) -> &'static str {
        TYPES
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn default(&self, obj: &mut Value) {
        let status = obj
            .as_object_mut()
            .map(|o| o.entry("status").or_insert_with(|| json!({})));
        if let Some(Value::Object(status)) = status {
            status.entry("phase").or_insert(json!("Active"));
        }
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, obj: &Value, now: i64) -> Row {
        namespace_row(obj, now)
    }
}

/// `printNamespace` (an unset phase is the default, `Active`).
fn namespace_row(obj: &Value, now: i64) -> Row {
    let Some(namespace) = typed::<k8s::Namespace>(obj) else {
        return unreadable_row(obj, now, COLUMNS);
    };
    let phase = match namespace.status.and_then(|s| s.phase) {
        Some(p) if !p.is_empty() => p,
        _ => "Active".to_owned(),
    };
    Row::cells(vec![
        meta_name(&namespace.metadata),
        Value::from(phase),
        meta_age(&namespace.metadata, now),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_active_and_named_by_labels() {
        let mut ns = json!({"metadata": {"name": "team-a"}});
        Namespaces.default(&mut ns);
        assert_eq!(ns["status"]["phase"], "Active");
        assert!(Namespaces.validate(&ns).is_empty());
        let dotted = json!({"metadata": {"name": "team.a"}});
        let fields: Vec<String> = Namespaces
            .validate(&dotted)
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, vec!["metadata.name"]);
        assert_eq!(Namespaces.row(&ns, 0).cells[1], json!("Active"));
    }
}
