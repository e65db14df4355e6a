//! Per-kind defaulting and validation.
//!
//! Defaulting fills what Kubernetes fills (restartPolicy, imagePullPolicy,
//! replicas, strategy, protocol...), validation reports every bad field, as
//! kube-apiserver's do for the fields Flotilla acts on. Fields nothing acts on
//! are only type-checked where a wrong type would break a reader.

use super::registry::Resource;
use super::validate::{self, Errors};
use serde_json::{json, Map, Value};

/// Fills defaults on a new or updated object of `resource`.
pub fn default(resource: &Resource, obj: &mut Value) {
    match resource.kind {
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec);
            }
            let status = obj
                .as_object_mut()
                .map(|o| o.entry("status").or_insert_with(|| json!({})));
            if let Some(Value::Object(status)) = status {
                status.entry("phase").or_insert_with(|| json!("Pending"));
            }
        }
        "Deployment" | "ReplicaSet" => {
            if let Some(Value::Object(spec)) = obj.get_mut("spec") {
                spec.entry("replicas").or_insert(json!(1));
                spec.entry("revisionHistoryLimit").or_insert(json!(10));
                if resource.kind == "Deployment" {
                    spec.entry("progressDeadlineSeconds").or_insert(json!(600));
                    let strategy = spec
                        .entry("strategy")
                        .or_insert_with(|| json!({"type": "RollingUpdate"}));
                    if let Value::Object(strategy) = strategy {
                        strategy.entry("type").or_insert(json!("RollingUpdate"));
                        if strategy.get("type") == Some(&json!("RollingUpdate")) {
                            let rolling =
                                strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
                            if let Value::Object(rolling) = rolling {
                                rolling.entry("maxSurge").or_insert(json!("25%"));
                                rolling.entry("maxUnavailable").or_insert(json!("25%"));
                            }
                        }
                    }
                }
                if let Some(template_spec) =
                    spec.get_mut("template").and_then(|t| t.get_mut("spec"))
                {
                    default_pod_spec(template_spec);
                }
            }
        }
        "Service" => {
            if let Some(Value::Object(spec)) = obj.get_mut("spec") {
                spec.entry("type").or_insert(json!("ClusterIP"));
                spec.entry("sessionAffinity").or_insert(json!("None"));
                if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                    for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                        port.entry("protocol").or_insert(json!("TCP"));
                        if let Some(p) = port.get("port").cloned() {
                            port.entry("targetPort").or_insert(p);
                        }
                    }
                }
            }
        }
        "Namespace" => {
            let status = obj
                .as_object_mut()
                .map(|o| o.entry("status").or_insert_with(|| json!({})));
            if let Some(Value::Object(status)) = status {
                status.entry("phase").or_insert(json!("Active"));
            }
        }
        _ => {}
    }
}

fn default_pod_spec(spec: &mut Value) {
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    spec.entry("restartPolicy").or_insert(json!("Always"));
    spec.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    spec.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(list) {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                default_container(c);
            }
        }
    }
}

fn default_container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    let last = image.rsplit('/').next().unwrap_or(image);
    let latest = !last.contains(':') || last.ends_with(":latest");
    let policy = if latest { "Always" } else { "IfNotPresent" };
    c.entry("imagePullPolicy").or_insert(json!(policy));
    c.entry("terminationMessagePath")
        .or_insert(json!("/dev/termination-log"));
    c.entry("terminationMessagePolicy").or_insert(json!("File"));
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            port.entry("protocol").or_insert(json!("TCP"));
        }
    }
}

/// Validates an object of `resource`; every problem is a field error.
pub fn validate(resource: &Resource, obj: &Value) -> Errors {
    let mut errors = Errors::default();
    if !obj.is_object() {
        errors.invalid("", "the body must be a JSON object");
        return errors;
    }
    let meta = obj.get("metadata");
    validate::typed(meta, "metadata", "object", &mut errors);
    match super::meta::name(obj) {
        None => errors.required("metadata.name"),
        Some(name) => {
            let problem = if matches!(resource.kind, "Namespace" | "Service") {
                validate::dns1123_label(name)
            } else {
                validate::dns1123_subdomain(name)
            };
            if let Some(message) = problem {
                errors.invalid("metadata.name", message);
            }
        }
    }
    validate::labels(
        meta.and_then(|m| m.get("labels")),
        "metadata.labels",
        &mut errors,
    );
    validate::string_map(
        meta.and_then(|m| m.get("annotations")),
        "metadata.annotations",
        &mut errors,
    );
    validate::typed(
        meta.and_then(|m| m.get("finalizers")),
        "metadata.finalizers",
        "array",
        &mut errors,
    );
    validate::typed(
        meta.and_then(|m| m.get("ownerReferences")),
        "metadata.ownerReferences",
        "array",
        &mut errors,
    );
    validate::typed(obj.get("spec"), "spec", "object", &mut errors);
    validate::typed(obj.get("status"), "status", "object", &mut errors);
    match resource.kind {
        "Pod" => match obj.get("spec") {
            Some(spec) => pod_spec(spec, "spec", &mut errors),
            None => errors.required("spec"),
        },
        "Deployment" | "ReplicaSet" => workload(obj, &mut errors),
        "Service" => service(obj, &mut errors),
        _ => {}
    }
    errors
}

fn pod_spec(spec: &Value, path: &str, errors: &mut Errors) {
    match spec.get("containers").and_then(Value::as_array) {
        None => errors.required(format!("{path}.containers")),
        Some(list) if list.is_empty() => errors.required(format!("{path}.containers")),
        Some(list) => {
            let mut names = Vec::new();
            for (i, c) in list.iter().enumerate() {
                let at = format!("{path}.containers[{i}]");
                container(c, &at, errors);
                if let Some(name) = c.get("name").and_then(Value::as_str) {
                    if names.contains(&name) {
                        errors.0.push(validate::FieldError {
                            field: format!("{at}.name"),
                            reason: "FieldValueDuplicate",
                            message: format!("Duplicate value: {name:?}"),
                        });
                    }
                    names.push(name);
                }
            }
        }
    }
    if let Some(policy) = spec.get("restartPolicy") {
        if !matches!(policy.as_str(), Some("Always" | "OnFailure" | "Never")) {
            errors.0.push(validate::FieldError {
                field: format!("{path}.restartPolicy"),
                reason: "FieldValueNotSupported",
                message: format!("Unsupported value: {policy}: supported values: \"Always\", \"OnFailure\", \"Never\""),
            });
        }
    }
    validate::typed(
        spec.get("nodeName"),
        &format!("{path}.nodeName"),
        "string",
        errors,
    );
    validate::string_map(
        spec.get("nodeSelector"),
        &format!("{path}.nodeSelector"),
        errors,
    );
    validate::typed(
        spec.get("tolerations"),
        &format!("{path}.tolerations"),
        "array",
        errors,
    );
    validate::typed(
        spec.get("terminationGracePeriodSeconds"),
        &format!("{path}.terminationGracePeriodSeconds"),
        "integer",
        errors,
    );
}

fn container(c: &Value, at: &str, errors: &mut Errors) {
    if !c.is_object() {
        errors.invalid(at, "must be an object");
        return;
    }
    match c.get("name").and_then(Value::as_str) {
        None => errors.required(format!("{at}.name")),
        Some(name) => {
            if let Some(message) = validate::dns1123_label(name) {
                errors.invalid(format!("{at}.name"), message);
            }
        }
    }
    match c.get("image").and_then(Value::as_str) {
        Some(image) if !image.trim().is_empty() => {}
        _ => errors.required(format!("{at}.image")),
    }
    for (field, ty) in [
        ("command", "array"),
        ("args", "array"),
        ("env", "array"),
        ("ports", "array"),
        ("resources", "object"),
    ] {
        validate::typed(c.get(field), &format!("{at}.{field}"), ty, errors);
    }
    validate::resources(c.get("resources"), &format!("{at}.resources"), errors);
    if let Some(ports) = c.get("ports").and_then(Value::as_array) {
        for (i, p) in ports.iter().enumerate() {
            port_number(
                p.get("containerPort"),
                &format!("{at}.ports[{i}].containerPort"),
                true,
                errors,
            );
        }
    }
}

fn port_number(value: Option<&Value>, field: &str, required: bool, errors: &mut Errors) {
    match value {
        None if required => errors.required(field),
        None => {}
        Some(v) => match v.as_i64() {
            Some(n) if (1..=65535).contains(&n) => {}
            _ => errors.invalid(
                field,
                format!("Invalid value: {v}: must be between 1 and 65535, inclusive"),
            ),
        },
    }
}

fn workload(obj: &Value, errors: &mut Errors) {
    let Some(spec) = obj.get("spec") else {
        errors.required("spec");
        return;
    };
    if let Some(replicas) = spec.get("replicas") {
        if replicas.as_i64().is_none_or(|n| n < 0) {
            errors.invalid(
                "spec.replicas",
                format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            );
        }
    }
    let selector = spec
        .get("selector")
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object);
    let has_expressions = spec
        .get("selector")
        .and_then(|s| s.get("matchExpressions"))
        .is_some();
    if selector.is_none() && !has_expressions {
        errors.required("spec.selector");
    }
    let template_labels = spec
        .get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object);
    if let Some(selector) = selector {
        let matches = selector
            .iter()
            .all(|(k, v)| template_labels.and_then(|l| l.get(k)) == Some(v));
        if !matches {
            errors.invalid(
                "spec.template.metadata.labels",
                "Invalid value: `selector` does not match template `labels`",
            );
        }
    }
    match spec.get("template").and_then(|t| t.get("spec")) {
        Some(pod) => pod_spec(pod, "spec.template.spec", errors),
        None => errors.required("spec.template.spec"),
    }
}

fn service(obj: &Value, errors: &mut Errors) {
    let Some(spec) = obj.get("spec") else {
        errors.required("spec");
        return;
    };
    if let Some(kind) = spec.get("type") {
        if !matches!(
            kind.as_str(),
            Some("ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName")
        ) {
            errors.0.push(validate::FieldError {
                field: "spec.type".into(),
                reason: "FieldValueNotSupported",
                message: format!("Unsupported value: {kind}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
            });
        }
    }
    validate::string_map(spec.get("selector"), "spec.selector", errors);
    if let Some(ports) = spec.get("ports") {
        match ports.as_array() {
            None => errors.invalid("spec.ports", "must be an array"),
            Some(ports) => {
                for (i, p) in ports.iter().enumerate() {
                    port_number(
                        p.get("port"),
                        &format!("spec.ports[{i}].port"),
                        true,
                        errors,
                    );
                    if let Some(node_port) = p.get("nodePort") {
                        port_number(
                            Some(node_port),
                            &format!("spec.ports[{i}].nodePort"),
                            false,
                            errors,
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::registry::by_kind;

    fn fields(kind: &str, obj: Value) -> Vec<String> {
        let resource = by_kind(kind).expect("kind");
        validate(resource, &obj)
            .0
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn pods_need_named_containers_with_images() {
        assert!(fields("Pod", json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).is_empty());
        assert_eq!(
            fields(
                "Pod",
                json!({"metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "c"}, {"image": "x"}]}})
            ),
            vec![
                "metadata.name",
                "spec.containers[0].image",
                "spec.containers[1].name"
            ]
        );
        assert_eq!(
            fields(
                "Pod",
                json!({"metadata": {"name": "p"}, "spec": {"containers": "nope"}})
            ),
            vec!["spec.containers"]
        );
    }

    #[test]
    fn deployments_selector_must_match_template() {
        let bad = json!({"metadata": {"name": "d"}, "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert_eq!(
            fields("Deployment", bad),
            vec!["spec.replicas", "spec.template.metadata.labels"]
        );
    }

    #[test]
    fn defaults_fill_what_kubernetes_fills() {
        let resource = by_kind("Deployment").expect("kind");
        let mut d = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}});
        default(resource, &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
    }
}
