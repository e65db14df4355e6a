//! A pod's status from what the runtime shows: pure functions, no I/O.
//!
//! Container statuses carry kubelet's states — `waiting` (with a reason:
//! ContainerCreating, ErrImagePull, ImagePullBackOff, ErrImageNeverPull,
//! CrashLoopBackOff), `running`, `terminated` — the previous run as
//! `lastState`, `restartCount` (the attempt number), readiness and ids. The
//! phase follows kubelet's rules (`getPhase`), and the Ready condition holds
//! when every container is ready.

use super::runtime::{Container, State};
use crate::objects::{meta, pod};
use serde_json::{json, Value};
use std::time::SystemTime;

fn stamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// What the agent knows of one container of the spec.
#[derive(Debug, Clone, Default)]
pub struct ContainerView<'a> {
    /// Its name in the spec.
    pub name: &'a str,
    /// The image the spec asks for.
    pub image: &'a str,
    /// The newest instance the runtime holds.
    pub latest: Option<&'a Container>,
    /// The instance before it (for `lastState`).
    pub previous: Option<&'a Container>,
    /// Why it is waiting, when the agent knows better than the runtime
    /// (an image pull failed, a restart is backing off).
    pub waiting: Option<(String, String)>,
    /// Whether its readiness probe passes (or it has none and runs).
    pub ready: bool,
}

/// The `terminated` state of an exited container, its id prefixed by `scheme`.
fn terminated(c: &Container, scheme: &str) -> Option<Value> {
    match &c.state {
        State::Exited {
            code,
            started_at,
            finished_at,
            reason,
        } => Some(json!({
            "exitCode": code,
            "reason": reason,
            "startedAt": started_at.map(stamp),
            "finishedAt": stamp(*finished_at),
            "containerID": format!("{scheme}{}", c.id),
        })),
        _ => None,
    }
}

/// The `containerStatuses` entry of a container; `scheme` prefixes ids
/// (`docker://`).
pub fn container_status(view: &ContainerView<'_>, scheme: &str) -> Value {
    let state = match (&view.waiting, view.latest.map(|c| &c.state)) {
        (Some((reason, message)), _) => {
            json!({"waiting": {"reason": reason, "message": message}})
        }
        (None, Some(State::Running { started_at })) => {
            json!({"running": {"startedAt": stamp(*started_at)}})
        }
        (None, Some(State::Exited { .. })) => {
            let t = view
                .latest
                .and_then(|c| terminated(c, scheme))
                .unwrap_or_default();
            json!({ "terminated": t })
        }
        (None, Some(State::Created) | None) => {
            json!({"waiting": {"reason": "ContainerCreating"}})
        }
    };
    let last = view
        .previous
        .or_else(|| {
            // While waiting to restart, the exited instance is the last state.
            view.latest
                .filter(|_| view.waiting.is_some())
                .filter(|c| matches!(c.state, State::Exited { .. }))
        })
        .and_then(|c| terminated(c, scheme))
        .map(|t| json!({ "terminated": t }))
        .unwrap_or_else(|| json!({}));
    let running = matches!(view.latest.map(|c| &c.state), Some(State::Running { .. }))
        && view.waiting.is_none();
    let mut status = json!({
        "name": view.name,
        "image": view.image,
        "imageID": view.latest.map(|c| c.image_id.clone()).unwrap_or_default(),
        "ready": running && view.ready,
        "started": running,
        "restartCount": view.latest.map_or(0, |c| c.attempt),
        "state": state,
        "lastState": last,
    });
    if let Some(c) = view.latest {
        status["containerID"] = json!(format!("{scheme}{}", c.id));
    }
    status
}

/// The pod phase from its container statuses (kubelet's `getPhase`).
pub fn phase(restart_policy: &str, statuses: &[Value]) -> &'static str {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = &s["state"];
        if state.get("running").is_some() {
            running += 1;
        } else if let Some(t) = state.get("terminated") {
            stopped += 1;
            if t["exitCode"] == 0 {
                succeeded += 1;
            }
        } else if s["lastState"].get("terminated").is_some() {
            stopped += 1;
            if s["lastState"]["terminated"]["exitCode"] == 0 {
                succeeded += 1;
            }
        } else {
            waiting += 1;
        }
    }
    if statuses.is_empty() || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    match restart_policy {
        "Always" => "Running",
        "OnFailure" if stopped == succeeded => "Succeeded",
        "OnFailure" => "Running",
        _ if stopped == succeeded => "Succeeded",
        _ => "Failed",
    }
}

/// Kubernetes' QoS class of a pod spec.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers = pod::list(spec, "containers");
    let has = |c: &Value, part: &str| {
        c["resources"][part]
            .as_object()
            .is_some_and(|m| !m.is_empty())
    };
    if containers
        .iter()
        .all(|c| !has(c, "requests") && !has(c, "limits"))
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let limits = &c["resources"]["limits"];
        let requests = &c["resources"]["requests"];
        ["cpu", "memory"].iter().all(|r| {
            limits.get(*r).is_some() && requests.get(*r).is_none_or(|q| Some(q) == limits.get(*r))
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The whole `status` of `pod` given its container statuses.
pub fn pod_status(
    pod: &Value,
    statuses: Vec<Value>,
    pod_ip: Option<&str>,
    host_ip: &str,
    now: u64,
) -> Value {
    let spec = &pod["spec"];
    let restart_policy = spec["restartPolicy"].as_str().unwrap_or("Always");
    let phase = phase(restart_policy, &statuses);
    let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s["ready"] == true);
    let mut holder = json!({"status": {"conditions": pod["status"]["conditions"].clone()}});
    let (ready, reason) = if all_ready {
        ("True", "")
    } else {
        ("False", "ContainersNotReady")
    };
    let not_ready: Vec<&str> = statuses
        .iter()
        .filter(|s| s["ready"] != true)
        .filter_map(|s| s["name"].as_str())
        .collect();
    let message = if all_ready {
        String::new()
    } else {
        format!("containers with unready status: [{}]", not_ready.join(" "))
    };
    pod::set_condition(&mut holder, "Initialized", "True", "", "", now);
    pod::set_condition(&mut holder, "Ready", ready, reason, &message, now);
    pod::set_condition(&mut holder, "ContainersReady", ready, reason, &message, now);
    pod::set_condition(&mut holder, "PodScheduled", "True", "", "", now);
    let start_time = pod["status"]["startTime"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| meta::timestamp(now));
    let mut status = json!({
        "phase": phase,
        "conditions": holder["status"]["conditions"].take(),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": statuses,
        "qosClass": qos_class(spec),
    });
    if let Some(ip) = pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{ "ip": ip }]);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::runtime::PodRef;
    use std::time::{Duration, UNIX_EPOCH};

    fn container(attempt: u32, state: State) -> Container {
        Container {
            id: format!("id{attempt}"),
            pod: PodRef {
                uid: "u".into(),
                namespace: "default".into(),
                name: "p".into(),
            },
            name: Some("c".into()),
            attempt,
            image: "img".into(),
            image_id: "sha256:x".into(),
            state,
            ip: None,
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn running_restarted_container_reports_last_state() {
        let old = container(
            0,
            State::Exited {
                code: 137,
                started_at: Some(at(10)),
                finished_at: at(20),
                reason: "Error".into(),
            },
        );
        let new = container(1, State::Running { started_at: at(30) });
        let view = ContainerView {
            name: "c",
            image: "img",
            latest: Some(&new),
            previous: Some(&old),
            waiting: None,
            ready: true,
        };
        let s = container_status(&view, "docker://");
        assert_eq!(s["restartCount"], 1);
        assert_eq!(s["ready"], true);
        assert!(s["state"]["running"].is_object());
        assert_eq!(s["lastState"]["terminated"]["exitCode"], 137);
        assert_eq!(s["containerID"], "docker://id1");
    }

    #[test]
    fn waiting_reasons_win_and_keep_the_exit() {
        let exited = container(
            2,
            State::Exited {
                code: 1,
                started_at: Some(at(1)),
                finished_at: at(2),
                reason: "Error".into(),
            },
        );
        let view = ContainerView {
            name: "c",
            image: "img",
            latest: Some(&exited),
            previous: None,
            waiting: Some(("CrashLoopBackOff".into(), "back-off 20s".into())),
            ready: false,
        };
        let s = container_status(&view, "docker://");
        assert_eq!(s["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(s["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(s["restartCount"], 2);
        assert_eq!(phase("Always", &[s]), "Running");
    }

    #[test]
    fn phases_follow_kubelet() {
        let running = json!({"state": {"running": {}}, "lastState": {}});
        let ok = json!({"state": {"terminated": {"exitCode": 0}}, "lastState": {}});
        let bad = json!({"state": {"terminated": {"exitCode": 2}}, "lastState": {}});
        let creating =
            json!({"state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}});
        assert_eq!(phase("Always", std::slice::from_ref(&creating)), "Pending");
        assert_eq!(phase("Always", &[running.clone(), ok.clone()]), "Running");
        assert_eq!(phase("Never", &[ok.clone(), ok.clone()]), "Succeeded");
        assert_eq!(phase("Never", &[ok.clone(), bad.clone()]), "Failed");
        assert_eq!(phase("OnFailure", std::slice::from_ref(&bad)), "Running");
        assert_eq!(phase("OnFailure", std::slice::from_ref(&ok)), "Succeeded");
    }

    #[test]
    fn status_has_ready_conditions_and_ips() {
        let pod = json!({"spec": {"restartPolicy": "Always", "containers": [{"name": "c"}]}, "status": {}});
        let running =
            json!({"name": "c", "ready": true, "state": {"running": {}}, "lastState": {}});
        let s = pod_status(&pod, vec![running], Some("10.1.0.5"), "192.168.1.2", 100);
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.1.0.5");
        assert_eq!(s["qosClass"], "BestEffort");
        let holder = json!({"status": s});
        assert_eq!(pod::condition(&holder, "Ready"), Some("True"));
        let guaranteed =
            json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(&guaranteed), "Guaranteed");
        let burstable = json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(&burstable), "Burstable");
    }
}
