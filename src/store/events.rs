//! Events the control loops record (`kubectl describe` and `ctl describe`
//! show them): FailedScheduling, SuccessfulCreate, ScalingReplicaSet,
//! NodeNotReady...
//!
//! Recording is best effort: a failed event write is logged and forgotten,
//! never a reason to fail the reconcile that produced it. Events older than
//! [`TTL`] are removed by the garbage collector (kube-apiserver's
//! `--event-ttl` defaults to one hour too).

use super::Writer;
use crate::objects::{meta, registry};
use serde_json::{json, Value};
use std::time::Duration;

/// How long events are kept.
pub const TTL: Duration = Duration::from_secs(3600);

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something went as planned.
    Normal,
    /// Something a user should look at.
    Warning,
}

/// Records events as one component.
#[derive(Clone)]
pub struct Recorder {
    writer: Writer,
    component: &'static str,
}

impl Recorder {
    /// A recorder writing as `component` ("default-scheduler", "replicaset-controller").
    pub fn new(writer: Writer, component: &'static str) -> Recorder {
        Recorder { writer, component }
    }

    /// Records an event about `involved`; failures are only logged.
    pub async fn record(&self, involved: &Value, severity: Severity, reason: &str, message: &str) {
        let Some(events) = registry::by_kind("Event") else {
            return;
        };
        let event = event(self.component, involved, severity, reason, message);
        if let Err(e) = self.writer.create(events, event).await {
            tracing::debug!(%reason, "could not record an event: {e}");
        }
    }
}

/// The Event object `component` records about `involved`.
pub fn event(
    component: &str,
    involved: &Value,
    severity: Severity,
    reason: &str,
    message: &str,
) -> Value {
    let name = meta::name(involved).unwrap_or("object");
    let namespace = meta::namespace(involved).unwrap_or("default");
    let now = meta::timestamp(meta::now());
    json!({
        "metadata": {
            "name": format!("{name}.{}", hex::encode(rand::random::<[u8; 8]>())),
            "namespace": namespace,
        },
        "involvedObject": {
            "kind": involved["kind"], "apiVersion": involved["apiVersion"],
            "name": name, "namespace": meta::namespace(involved),
            "uid": involved["metadata"]["uid"],
            "resourceVersion": involved["metadata"]["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "type": match severity { Severity::Normal => "Normal", Severity::Warning => "Warning" },
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_what_they_are_about() {
        let pod = json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web-1", "namespace": "prod", "uid": "u"}});
        let e = event(
            "test",
            &pod,
            Severity::Warning,
            "FailedScheduling",
            "no nodes",
        );
        assert!(e["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("web-1.")));
        assert_eq!(e["metadata"]["namespace"], "prod");
        assert_eq!(e["involvedObject"]["uid"], "u");
        assert_eq!(e["type"], "Warning");
        assert_eq!(e["source"]["component"], "test");
    }
}
