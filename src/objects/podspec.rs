//! Pod specs and pod templates: the defaulting and validation Pods,
//! Deployments and ReplicaSets share (a template's spec is a pod spec).

use super::validate::{self, Errors};
use serde_json::{json, Map, Value};

/// Fills a pod spec's defaults (restartPolicy, grace period, DNS policy,
/// scheduler, and each container's pull policy and port protocols).
pub fn default_pod_spec(spec: &mut Value) {
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

/// Validates the pod spec at `path`.
pub fn pod_spec(spec: &Value, path: &str, errors: &mut Errors) {
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
            validate::not_supported(
                format!("{path}.restartPolicy"),
                policy,
                &["Always", "OnFailure", "Never"],
                errors,
            );
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
            validate::port_number(
                p.get("containerPort"),
                &format!("{at}.ports[{i}].containerPort"),
                true,
                errors,
            );
        }
    }
}

/// Validates a Deployment's or ReplicaSet's spec: replicas, a selector that
/// matches the template's labels, and the template's pod spec.
pub fn workload(obj: &Value, errors: &mut Errors) {
    let Some(spec) = obj.get("spec") else {
        errors.required("spec");
        return;
    };
    if let Some(replicas) = spec.get("replicas") {
        // Kubernetes types replicas as int32: anything larger is refused, not
        // a flood of pods.
        match replicas.as_i64() {
            Some(n) if n > i64::from(i32::MAX) => errors.invalid(
                "spec.replicas",
                format!("Invalid value: {replicas}: must be no more than 2147483647"),
            ),
            Some(n) if n >= 0 => {}
            _ => errors.invalid(
                "spec.replicas",
                format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            ),
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

/// Fills what Deployments and ReplicaSets share: replicas, the history
/// limit, and the template's pod spec defaults.
pub fn default_workload(spec: &mut Map<String, Value>) {
    spec.entry("replicas").or_insert(json!(1));
    spec.entry("revisionHistoryLimit").or_insert(json!(10));
    if let Some(template_spec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        default_pod_spec(template_spec);
    }
}
