//! Deployments: a pod template rolled out through ReplicaSets.

use super::podspec;
use super::print::{
    col, container_cells, label_selector, meta_age, meta_name, typed, unreadable_row, wide, Column,
    Row, AGE, CONTAINERS_DOC, IMAGES_DOC, NAME, SELECTOR_DOC,
};
use super::registry::Resource;
use super::strategy::Strategy;
use super::validate::{self, Errors};
use k8s_openapi::api::apps::v1 as k8s;
use serde_json::{json, Value};

/// The rules of Deployment objects.
#[derive(Debug, Clone, Copy)]
pub struct Deployments;

/// The resource served for this kind.
pub const RESOURCE: Resource = Resource {
    group: "apps",
    version: "v1",
    kind: "Deployment",
    list_kind: "DeploymentList",
    plural: "deployments",
    singular: "deployment",
    short_names: &["deploy"],
    namespaced: true,
    subresources: &["status", "scale"],
    in_all: true,
    strategy: &Deployments,
};

/// The field types only this kind uses (grammar: [`super::types`]).
const TYPES: &str = "
apps.Deployment apiVersion:string kind:string metadata:meta.ObjectMeta
        spec:apps.DeploymentSpec status:apps.DeploymentStatus
apps.DeploymentCondition lastTransitionTime:time lastUpdateTime:time message:string
        reason:string status:string type:string
apps.DeploymentSpec minReadySeconds:integer paused:boolean progressDeadlineSeconds:integer
        replicas:integer revisionHistoryLimit:integer selector:meta.LabelSelector
        strategy:apps.DeploymentStrategy@retainKeys template:core.PodTemplateSpec
apps.DeploymentStatus availableReplicas:integer collisionCount:integer
        conditions:[apps.DeploymentCondition]@merge/type observedGeneration:integer
        readyReplicas:integer replicas:integer unavailableReplicas:integer
        updatedReplicas:integer
apps.DeploymentStrategy rollingUpdate:apps.RollingUpdateDeployment type:string
apps.RollingUpdateDeployment maxSurge:int-or-string maxUnavailable:int-or-string
";

/// kube-apiserver's Table columns for this kind (its printers.go).
const COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", "Total number of non-terminating pods targeted by this deployment that have the desired template spec."),
    col("Available", "string", "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    wide("Containers", CONTAINERS_DOC),
    wide("Images", IMAGES_DOC),
    wide("Selector", SELECTOR_DOC),
];

impl Strategy for Deployments {
    fn type_name(&self) -> Option<&'static str> {
        Some("apps.Deployment")
    }

    fn types(&self) -> &'static str {
        TYPES
    }

    fn default(&self, obj: &mut Value) {
        let Some(Value::Object(spec)) = obj.get_mut("spec") else {
            return;
        };
        podspec::default_workload(spec);
        spec.entry("progressDeadlineSeconds").or_insert(json!(600));
        let strategy = spec
            .entry("strategy")
            .or_insert_with(|| json!({"type": "RollingUpdate"}));
        if let Value::Object(strategy) = strategy {
            strategy.entry("type").or_insert(json!("RollingUpdate"));
            if strategy.get("type") == Some(&json!("RollingUpdate")) {
                let rolling = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
                if let Value::Object(rolling) = rolling {
                    rolling.entry("maxSurge").or_insert(json!("25%"));
                    rolling.entry("maxUnavailable").or_insert(json!("25%"));
                }
            }
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
        deployment_row(obj, now)
    }
}

/// `printDeployment`: READY is `readyReplicas/spec.replicas`.
fn deployment_row(obj: &Value, now: i64) -> Row {
    let Some(deployment) = typed::<k8s::Deployment>(obj) else {
        return unreadable_row(obj, now, COLUMNS);
    };
    let spec = deployment.spec.unwrap_or_default();
    let status = deployment.status.unwrap_or_default();
    let containers = spec
        .template
        .spec
        .as_ref()
        .map_or(&[][..], |s| s.containers.as_slice());
    let (names, images) = container_cells(containers);
    let selector = label_selector(Some(&spec.selector)).unwrap_or_else(|| "<invalid>".to_owned());
    Row::cells(vec![
        meta_name(&deployment.metadata),
        Value::from(format!(
            "{}/{}",
            status.ready_replicas.unwrap_or(0),
            spec.replicas.unwrap_or(0)
        )),
        Value::from(status.updated_replicas.unwrap_or(0)),
        Value::from(status.available_replicas.unwrap_or(0)),
        meta_age(&deployment.metadata, now),
        names,
        images,
        Value::from(selector),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_selector_must_match_template() {
        let bad = json!({"metadata": {"name": "d"}, "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let fields: Vec<String> = Deployments
            .validate(&bad)
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            vec!["spec.replicas", "spec.template.metadata.labels"]
        );
        let fields: Vec<String> = Deployments
            .validate(&json!({"metadata": {"name": "d"}}))
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, vec!["spec"]);
    }

    #[test]
    fn defaults_fill_what_kubernetes_fills() {
        let mut d = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}});
        Deployments.default(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert!(Deployments.validate(&d).is_empty());

        let mut recreate =
            json!({"metadata": {"name": "d"}, "spec": {"strategy": {"type": "Recreate"}}});
        Deployments.default(&mut recreate);
        assert!(recreate["spec"]["strategy"].get("rollingUpdate").is_none());
    }
}
