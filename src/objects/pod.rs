//! What the control loops and agents read from and write to Pods.
//!
//! Pods stay JSON (see [`super`]); these helpers read the fields that
//! scheduling, replica counting and status reporting depend on, with
//! Kubernetes' meaning: requests default to limits, a pod is *active* until
//! it is terminating or has finished, *ready* when its Ready condition is
//! True, *available* once it has been ready for `minReadySeconds`.

use super::quantity;
use serde_json::{json, Value};

/// What a pod asks of a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory: i64,
}

impl Requests {
    /// The sum of two.
    #[must_use]
    pub fn plus(self, other: Requests) -> Requests {
        Requests {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory: self.memory.saturating_add(other.memory),
        }
    }

    /// The difference of two.
    #[must_use]
    pub fn minus(self, other: Requests) -> Requests {
        Requests {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory: self.memory.saturating_sub(other.memory),
        }
    }

    fn max(self, other: Requests) -> Requests {
        Requests {
            cpu_millis: self.cpu_millis.max(other.cpu_millis),
            memory: self.memory.max(other.memory),
        }
    }
}

/// One container's requests: `resources.requests`, each missing one taken
/// from `resources.limits` (as Kubernetes defaults them).
fn container_requests(container: &Value) -> Requests {
    let resources = &container["resources"];
    let pick = |name: &str, parse: fn(&Value) -> Option<i64>| {
        resources["requests"]
            .get(name)
            .or_else(|| resources["limits"].get(name))
            .and_then(parse)
            .unwrap_or(0)
            .max(0)
    };
    Requests {
        cpu_millis: pick("cpu", quantity::cpu_millis),
        memory: pick("memory", quantity::units),
    }
}

/// What a pod spec requests: the sum over its containers, or the largest
/// init container if that is more (init containers run one at a time).
pub fn requests(spec: &Value) -> Requests {
    let sum = list(spec, "containers")
        .iter()
        .map(container_requests)
        .fold(Requests::default(), Requests::plus);
    list(spec, "initContainers")
        .iter()
        .map(container_requests)
        .fold(sum, Requests::max)
}

/// A host port a pod binds: (protocol, port).
pub fn host_ports(spec: &Value) -> Vec<(String, i64)> {
    list(spec, "containers")
        .iter()
        .flat_map(|c| list(c, "ports"))
        .filter_map(|p| {
            let port = p["hostPort"].as_i64().filter(|p| *p > 0)?;
            let protocol = p["protocol"].as_str().unwrap_or("TCP").to_owned();
            Some((protocol, port))
        })
        .collect()
}

/// A JSON array field, or an empty slice.
pub fn list<'a>(obj: &'a Value, field: &str) -> &'a [Value] {
    obj.get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// `spec.nodeName`, when the pod is bound.
pub fn node_name(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
}

/// `status.phase` (Pending when unset).
pub fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("Pending")
}

/// Marked for deletion.
pub fn is_terminating(obj: &Value) -> bool {
    obj["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// Counts toward a replica set: not terminating, not finished.
pub fn is_active(pod: &Value) -> bool {
    !is_terminating(pod) && !matches!(phase(pod), "Succeeded" | "Failed")
}

/// The `status` of condition `kind` ("True", "False", "Unknown"), if set.
pub fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a str> {
    list(&obj["status"], "conditions")
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str())
}

/// The Ready condition is True.
pub fn is_ready(pod: &Value) -> bool {
    condition(pod, "Ready") == Some("True")
}

/// Ready for at least `min_ready_seconds` at `now` (Unix seconds).
pub fn is_available(pod: &Value, min_ready_seconds: i64, now: u64) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    let since = list(&pod["status"], "conditions")
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    since.is_some_and(|s| s.saturating_add(min_ready_seconds.unsigned_abs()) <= now)
}

/// Sets condition `kind` in `status.conditions`, keeping its
/// `lastTransitionTime` when the status does not change. Returns whether
/// anything changed.
pub fn set_condition(
    obj: &mut Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: u64,
) -> bool {
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    if !obj["status"]["conditions"].is_array() {
        obj["status"]["conditions"] = json!([]);
    }
    let stamp = super::meta::timestamp(now);
    let Some(conditions) = obj["status"]["conditions"].as_array_mut() else {
        return false;
    };
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(existing) => {
            if existing["status"] == status
                && existing["reason"] == reason
                && existing["message"] == message
            {
                return false;
            }
            if existing["status"] != status {
                existing["lastTransitionTime"] = json!(stamp);
            }
            existing["status"] = json!(status);
            existing["reason"] = json!(reason);
            existing["message"] = json!(message);
            true
        }
        None => {
            conditions.push(json!({
                "type": kind, "status": status, "reason": reason, "message": message,
                "lastTransitionTime": stamp,
            }));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_sum_containers_and_default_to_limits() {
        let spec = json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "c"},
        ], "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]});
        let r = requests(&spec);
        assert_eq!(r.cpu_millis, 2000, "the init container is larger");
        assert_eq!(r.memory, 64 * 1_048_576 + 1_073_741_824);
    }

    #[test]
    fn host_ports_and_activity() {
        let pod = json!({"spec": {"containers": [{"ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]}]},
            "status": {"phase": "Running"}, "metadata": {}});
        assert_eq!(host_ports(&pod["spec"]), vec![("TCP".to_owned(), 8080)]);
        assert!(is_active(&pod));
        let done = json!({"status": {"phase": "Succeeded"}, "metadata": {}});
        assert!(!is_active(&done));
        let going = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}});
        assert!(!is_active(&going) && is_terminating(&going));
    }

    #[test]
    fn conditions_keep_transition_times() {
        let mut pod = json!({"metadata": {}});
        assert!(set_condition(&mut pod, "Ready", "False", "x", "", 100));
        assert!(!set_condition(&mut pod, "Ready", "False", "x", "", 200));
        assert!(set_condition(&mut pod, "Ready", "True", "", "", 300));
        assert_eq!(condition(&pod, "Ready"), Some("True"));
        assert!(is_available(&pod, 0, 300));
        assert!(!is_available(&pod, 10, 305));
        assert!(is_available(&pod, 10, 310));
    }
}
