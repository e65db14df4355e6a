//! What the control loops and agents read from and write to Pods.
//!
//! Pods stay JSON (see [`super`]); these helpers read the fields that
//! scheduling, replica counting and status reporting depend on, with
//! Kubernetes' meaning: requests default to limits, a pod is *active* until
//! it is terminating or has finished, *ready* when its Ready condition is
//! True, *available* once it has been ready for `minReadySeconds`.
//!
//! The Pod kind's strategy ([`Pods`]) lives here too: defaulting and
//! validation (the pod spec rules are [`super::podspec`]'s), its types and
//! its table printer.

use super::podspec;
use super::print::{
    col, elapsed, human_duration, instant, later, meta_age, meta_name, or_none, typed,
    unreadable_row, wide, Column, Row, AGE, NAME,
};
use super::quantity;
use super::registry::Resource;
use super::strategy::Strategy;
use super::validate::{self, Errors};
use k8s_openapi::api::core::v1 as k8s;
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

// ---------------------------------------------------------------------------
// The Pod kind: defaulting, validation, types and printing.

/// The rules of Pod objects.
#[derive(Debug, Clone, Copy)]
pub struct Pods;

/// The resource served for this kind.
pub const RESOURCE: Resource = Resource {
    group: "",
    version: "v1",
    kind: "Pod",
    list_kind: "PodList",
    plural: "pods",
    singular: "pod",
    short_names: &["po"],
    namespaced: true,
    subresources: &["status", "binding", "log"],
    in_all: true,
    strategy: &Pods,
};

/// The field types only this kind uses (grammar: [`super::types`]).
const TYPES: &str = "
core.ContainerState running:core.ContainerStateRunning
        terminated:core.ContainerStateTerminated waiting:core.ContainerStateWaiting
core.ContainerStateRunning startedAt:time
core.ContainerStateTerminated containerID:string exitCode:integer finishedAt:time
        message:string reason:string signal:integer startedAt:time
core.ContainerStateWaiting message:string reason:string
core.ContainerStatus allocatedResources:{quantity}
        allocatedResourcesStatus:[core.ResourceStatus]@merge/name containerID:string
        image:string imageID:string lastState:core.ContainerState name:string ready:boolean
        resources:core.ResourceRequirements restartCount:integer started:boolean
        state:core.ContainerState user:core.ContainerUser
        volumeMounts:[core.VolumeMountStatus]@merge/mountPath
core.ContainerUser linux:core.LinuxContainerUser
core.HostIP ip:string
core.LinuxContainerUser gid:integer supplementalGroups:[integer] uid:integer
core.Pod apiVersion:string kind:string metadata:meta.ObjectMeta spec:core.PodSpec
        status:core.PodStatus
core.PodCondition lastProbeTime:time lastTransitionTime:time message:string reason:string
        status:string type:string
core.PodIP ip:string
core.PodResourceClaimStatus name:string resourceClaimName:string
core.PodStatus conditions:[core.PodCondition]@merge/type
        containerStatuses:[core.ContainerStatus]
        ephemeralContainerStatuses:[core.ContainerStatus] hostIP:string
        hostIPs:[core.HostIP]@merge/ip initContainerStatuses:[core.ContainerStatus]
        message:string nominatedNodeName:string phase:string podIP:string
        podIPs:[core.PodIP]@merge/ip qosClass:string reason:string resize:string
        resourceClaimStatuses:[core.PodResourceClaimStatus]@merge,retainKeys/name startTime:time
core.ResourceHealth health:string resourceID:string
core.ResourceStatus name:string resources:[core.ResourceHealth]
core.VolumeMountStatus mountPath:string name:string readOnly:boolean
        recursiveReadOnly:string
";

/// kube-apiserver's Table columns for this kind (its printers.go).
const COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    wide("IP", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    wide("Node", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName."),
    wide("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
    wide("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness."),
];

impl Strategy for Pods {
    fn type_name(&self) -> Option<&'static str> {
        Some("core.Pod")
    }

    fn types(&self) -> &'static str {
        TYPES
    }

    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            podspec::default_pod_spec(spec);
        }
        let status = obj
            .as_object_mut()
            .map(|o| o.entry("status").or_insert_with(|| json!({})));
        if let Some(Value::Object(status)) = status {
            status.entry("phase").or_insert_with(|| json!("Pending"));
        }
    }

    fn validate(&self, obj: &Value) -> Errors {
        let mut errors = validate::object(obj, self.name_rule());
        if !obj.is_object() {
            return errors;
        }
        match obj.get("spec") {
            Some(spec) => podspec::pod_spec(spec, "spec", &mut errors),
            None => errors.required("spec"),
        }
        errors
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, obj: &Value, now: i64) -> Row {
        pod_row(obj, now)
    }
}

/// `printPod`: READY counts ready running containers (plus started
/// restartable init containers); STATUS is the phase, overridden by the pod's
/// reason, an init container's state (`Init:1/2`, `Init:ErrImagePull`), a
/// container's waiting or terminated reason (`CrashLoopBackOff`,
/// `Completed`, `ExitCode:1`), and finally `Terminating` once deletion has
/// begun.
fn pod_row(obj: &Value, now: i64) -> Row {
    let Some(pod) = typed::<k8s::Pod>(obj) else {
        return unreadable_row(obj, now, COLUMNS);
    };
    let spec = pod.spec.unwrap_or_default();
    let status = pod.status.unwrap_or_default();
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let phase = status.phase.as_deref().unwrap_or("");
    let mut reason = match status.reason.as_deref().unwrap_or("") {
        "" => phase.to_owned(),
        r => r.to_owned(),
    };
    for condition in conditions {
        if condition.type_ == "PodScheduled"
            && condition.reason.as_deref() == Some("SchedulingGated")
        {
            reason = "SchedulingGated".to_owned();
        }
    }
    let row_conditions = match phase {
        "Succeeded" => Some(json!([{"type": "Completed", "status": "True",
            "reason": "Succeeded", "message": "The pod has completed successfully."}])),
        "Failed" => Some(json!([{"type": "Completed", "status": "True",
            "reason": "Failed", "message": "The pod failed."}])),
        _ => None,
    };

    let init_specs = spec.init_containers.as_deref().unwrap_or_default();
    let is_sidecar = |c: &k8s::Container| c.restart_policy.as_deref() == Some("Always");
    let restartable = |container: &str| {
        init_specs
            .iter()
            .any(|c| c.name == container && is_sidecar(c))
    };
    let total = spec.containers.len() + init_specs.iter().filter(|c| is_sidecar(c)).count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<i128> = None;
    let mut last_sidecar_restart: Option<i128> = None;
    let finished_at = |status: &k8s::ContainerStatus| {
        status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
            .map(|t| instant(&t.0))
    };

    let mut initializing = false;
    for (i, container) in status
        .init_container_statuses
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        restarts += i64::from(container.restart_count);
        last_restart = later(last_restart, finished_at(container));
        let sidecar = restartable(&container.name);
        if sidecar {
            sidecar_restarts += i64::from(container.restart_count);
            last_sidecar_restart = later(last_sidecar_restart, finished_at(container));
        }
        let state = container.state.as_ref();
        let terminated = state.and_then(|s| s.terminated.as_ref());
        let waiting_reason = state
            .and_then(|s| s.waiting.as_ref())
            .map(|w| w.reason.as_deref().unwrap_or(""));
        if terminated.is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if sidecar && container.started == Some(true) {
            if container.ready {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            let signal = t.signal.unwrap_or(0);
            reason = match t.reason.as_deref().unwrap_or("") {
                "" if signal != 0 => format!("Init:Signal:{signal}"),
                "" => format!("Init:ExitCode:{}", t.exit_code),
                r => format!("Init:{r}"),
            };
        } else if let Some(w) = waiting_reason.filter(|w| !w.is_empty() && *w != "PodInitializing")
        {
            reason = format!("Init:{w}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    let initialized = conditions
        .iter()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for container in status
            .container_statuses
            .as_deref()
            .unwrap_or_default()
            .iter()
            .rev()
        {
            restarts += i64::from(container.restart_count);
            last_restart = later(last_restart, finished_at(container));
            let state = container.state.as_ref();
            let waiting_reason = state
                .and_then(|s| s.waiting.as_ref())
                .map(|w| w.reason.as_deref().unwrap_or(""));
            let terminated = state.and_then(|s| s.terminated.as_ref());
            if let Some(w) = waiting_reason.filter(|w| !w.is_empty()) {
                reason = w.to_owned();
            } else if let Some(t) = terminated {
                let signal = t.signal.unwrap_or(0);
                reason = match t.reason.as_deref().unwrap_or("") {
                    "" if signal != 0 => format!("Signal:{signal}"),
                    "" => format!("ExitCode:{}", t.exit_code),
                    r => r.to_owned(),
                };
            } else if container.ready && state.and_then(|s| s.running.as_ref()).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose other containers completed but one still runs.
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_owned();
        }
    }

    let deleting = pod.metadata.deletion_timestamp.is_some();
    if deleting && status.reason.as_deref() == Some("NodeLost") {
        reason = "Unknown".to_owned();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_owned();
    }

    let restarts_cell = match last_restart {
        Some(last) if restarts != 0 => {
            format!("{restarts} ({} ago)", human_duration(elapsed(now, last)))
        }
        _ => restarts.to_string(),
    };

    let ip = match status.pod_ips.as_deref().and_then(<[_]>::first) {
        Some(first) => first.ip.as_str(),
        None => status.pod_ip.as_deref().unwrap_or(""),
    };
    let gates = spec.readiness_gates.as_deref().unwrap_or_default();
    let readiness_gates = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let passed = gates
            .iter()
            .filter(|gate| {
                conditions
                    .iter()
                    .find(|c| c.type_ == gate.condition_type)
                    .is_some_and(|c| c.status == "True")
            })
            .count();
        format!("{passed}/{}", gates.len())
    };

    Row {
        cells: vec![
            meta_name(&pod.metadata),
            Value::from(format!("{ready}/{total}")),
            Value::from(reason),
            Value::from(restarts_cell),
            meta_age(&pod.metadata, now),
            Value::from(or_none(ip)),
            Value::from(or_none(spec.node_name.as_deref().unwrap_or(""))),
            Value::from(or_none(status.nominated_node_name.as_deref().unwrap_or(""))),
            Value::from(readiness_gates),
        ],
        conditions: row_conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(obj: Value) -> Vec<String> {
        Pods.validate(&obj).0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn pods_need_named_containers_with_images() {
        assert!(errors(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).is_empty());
        assert_eq!(
            errors(
                json!({"metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "c"}, {"image": "x"}]}})
            ),
            vec![
                "metadata.name",
                "spec.containers[0].image",
                "spec.containers[1].name"
            ]
        );
        assert_eq!(
            errors(json!({"metadata": {"name": "p"}, "spec": {"containers": "nope"}})),
            vec!["spec.containers"]
        );
        assert_eq!(errors(json!({"metadata": {"name": "p"}})), vec!["spec"]);
        assert_eq!(errors(json!([])), vec![""]);
    }

    #[test]
    fn pod_defaults_fill_what_kubernetes_fills() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]},
            {"name": "d", "image": "nginx:1.25"}]}});
        Pods.default(&mut pod);
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        // Nothing a pod holds is immutable yet, and it claims nothing.
        assert!(Pods.validate_update(&pod, &pod).is_empty());
        assert!(Pods.allocate(&mut pod).is_empty());
    }

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
