//! ReplicaSets: keep a number of pods from one template running.

use super::podspec;
use super::print::{
    col, container_cells, format_selector, meta_age, meta_name, typed, unreadable_row, wide,
    Column, Row, AGE, CONTAINERS_DOC, IMAGES_DOC, NAME,
};
use super::registry::Resource;
use super::strategy::Strategy;
use super::validate::{self, Errors};
use k8s_openapi::api::apps::v1 as k8s;
use serde_json::Value;

/// The rules of ReplicaSet objects.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaSets;

/// The resource served for this kind.
pub const RESOURCE: Resource = Resource {
    group: "apps",
    version: "v1",
    kind: "ReplicaSet",
    list_kind: "ReplicaSetList",
    plural: "replicasets",
    singular: "replicaset",
    short_names: &["rs"],
    namespaced: true,
    subresources: &["status", "scale"],
    in_all: true,
    strategy: &ReplicaSets,
};

/// The field types only this kind uses (grammar: [`super::types`]).
const TYPES: &str = "
apps.ReplicaSet apiVersion:string kind:string metadata:meta.ObjectMeta
        spec:apps.ReplicaSetSpec status:apps.ReplicaSetStatus
apps.ReplicaSetCondition lastTransitionTime:time message:string reason:string status:string
        type:string
apps.ReplicaSetSpec minReadySeconds:integer replicas:integer selector:meta.LabelSelector
        template:core.PodTemplateSpec
apps.ReplicaSetStatus availableReplicas:integer
        conditions:[apps.ReplicaSetCondition]@merge/type fullyLabeledReplicas:integer
        observedGeneration:integer readyReplicas:integer replicas:integer
";

/// kube-apiserver's Table columns for this kind (its printers.go).
const COLUMNS: &[Column] = &[
    NAME,
    col("Desired", "integer", "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1."),
    col("Current", "integer", "Replicas is the most recently observed number of non-terminating pods."),
    col("Ready", "integer", "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition."),
    AGE,
    wide("Containers", CONTAINERS_DOC),
    wide("Images", IMAGES_DOC),
    wide("Selector", "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set."),
];

impl Strategy for ReplicaSets {
    fn type_name(&self) -> Option<&'static str> {
        Some("apps.ReplicaSet")
    }

    fn types(&self) -> &'static str {
        TYPES
    }

    fn default(&self, obj: &mut Value) {
        if let Some(Value::Object(spec)) = obj.get_mut("spec") {
            podspec::default_workload(spec);
        }
    }

    fn validate(&self, obj: &Value) -> Errors {
        let mut errors = validate::object(obj, self.name_rule());
        podspec::workload(obj, &mut errors);
        errors
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, obj: &Value, now: i64) -> Row {
        replica_set_row(obj, now)
    }
}

/// `printReplicaSet`.
fn replica_set_row(obj: &Value, now: i64) -> Row {
    let Some(rs) = typed::<k8s::ReplicaSet>(obj) else {
        return unreadable_row(obj, now, COLUMNS);
    };
    let spec = rs.spec.unwrap_or_default();
    let status = rs.status.unwrap_or_default();
    let containers = spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .map_or(&[][..], |s| s.containers.as_slice());
    let (names, images) = container_cells(containers);
    Row::cells(vec![
        meta_name(&rs.metadata),
        Value::from(spec.replicas.unwrap_or(0)),
        Value::from(status.replicas),
        Value::from(status.ready_replicas.unwrap_or(0)),
        meta_age(&rs.metadata, now),
        names,
        images,
        Value::from(format_selector(Some(&spec.selector))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replica_sets_default_like_deployments_without_a_strategy() {
        let mut rs = json!({"metadata": {"name": "r"}, "spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        ReplicaSets.default(&mut rs);
        assert_eq!(rs["spec"]["replicas"], 1);
        assert_eq!(rs["spec"]["revisionHistoryLimit"], 10);
        assert!(rs["spec"].get("strategy").is_none());
        assert_eq!(
            rs["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
        assert!(ReplicaSets.validate(&rs).is_empty());
        rs["spec"]["template"]["metadata"]["labels"]["app"] = json!("b");
        let fields: Vec<String> = ReplicaSets
            .validate(&rs)
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, vec!["spec.template.metadata.labels"]);
    }
}
