//! The node lifecycle controller: notices nodes that stopped heartbeating,
//! marks them, and moves their pods elsewhere.
//!
//! Agents renew their node's Lease (`kube-node-lease/NODE`) every few
//! seconds and post node status now and then. The controller remembers, by
//! its *own* clock, when it last saw either change (the *probe time*); times
//! written by agents are only compared for equality, so clock skew between
//! machines does not matter.
//!
//! - Silent for `node_monitor_grace_period`: the node's conditions become
//!   Unknown ("Kubelet stopped posting node status.") and it gets the
//!   `node.kubernetes.io/unreachable` taints (NoSchedule, NoExecute). A node
//!   whose agent reports Ready=False gets the `not-ready` taints instead.
//!   When it is healthy again the taints go.
//! - Not ready for `pod_eviction_timeout`: its pods are deleted (gracefully;
//!   with no agent to confirm, the pod reaper removes them when the grace
//!   runs out), and their ReplicaSets replace them on live nodes. Pods that
//!   tolerate the taint without a time limit stay.
//!
//! **A new leader judges no node at once.** Every node's probe time starts
//! at the moment this term's controller first sees it, so each gets a full
//! grace period after a leader change — the masters' own election does not
//! look like every node going silent, and causes no mass eviction.

use crate::objects::{meta, pod};
use crate::store::events::{Recorder, Severity};
use crate::store::informer::{Cache, Change};
use crate::store::settings::Settings;
use crate::store::Object;
use crate::store::{served, Writer};
use crate::store::{Error as StoreError, Store};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often nodes are judged.
const MONITOR_PERIOD: Duration = Duration::from_secs(1);
/// The namespace of node Leases.
pub use crate::objects::registry::LEASE_NAMESPACE;
/// Taint of a node whose agent went silent.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint of a node whose agent reports it not ready.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// What the controller remembers of a node.
#[derive(Debug, Clone)]
struct Health {
    /// The last heartbeat seen: lease renew time and Ready heartbeat time.
    heartbeat: (String, String),
    /// When (by this controller's clock) it last changed.
    probe: Instant,
    /// Since when (by this controller's clock) the node has not been ready.
    unready_since: Option<Instant>,
}

/// The node's health as the controller judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Heartbeating and Ready.
    Ready,
    /// Heartbeating, but the agent says not Ready.
    NotReady,
    /// Silent for longer than the grace period.
    Unreachable,
}

/// Judges a node from its Ready condition and how long it has been silent.
pub fn judge(node: &Value, silent: Duration, grace: Duration) -> Verdict {
    if silent > grace {
        Verdict::Unreachable
    } else if pod::condition(node, "Ready") == Some("True") {
        Verdict::Ready
    } else {
        Verdict::NotReady
    }
}

/// The taints a node should carry for `verdict`, keeping unrelated ones.
pub fn taints_for(node: &Value, verdict: Verdict, now: u64) -> Value {
    let mut taints: Vec<Value> = pod::list(&node["spec"], "taints")
        .iter()
        .filter(|t| t["key"] != UNREACHABLE && t["key"] != NOT_READY)
        .cloned()
        .collect();
    let key = match verdict {
        Verdict::Ready => None,
        Verdict::NotReady => Some(NOT_READY),
        Verdict::Unreachable => Some(UNREACHABLE),
    };
    if let Some(key) = key {
        // Keep the time a taint was first added.
        let since = |effect: &str| {
            pod::list(&node["spec"], "taints")
                .iter()
                .find(|t| t["key"] == key && t["effect"] == effect)
                .and_then(|t| t.get("timeAdded").cloned())
                .unwrap_or_else(|| json!(meta::timestamp(now)))
        };
        taints.push(json!({"key": key, "effect": "NoSchedule", "timeAdded": since("NoSchedule")}));
        taints.push(json!({"key": key, "effect": "NoExecute", "timeAdded": since("NoExecute")}));
    }
    Value::Array(taints)
}

/// Whether a node already shows `verdict`: the matching taints (and, when
/// unreachable, an Unknown Ready condition), so nothing needs writing.
fn consistent(node: &Value, verdict: Verdict) -> bool {
    let has = |key: &str| {
        pod::list(&node["spec"], "taints")
            .iter()
            .any(|t| t["key"] == key)
    };
    match verdict {
        Verdict::Ready => !has(UNREACHABLE) && !has(NOT_READY),
        Verdict::NotReady => has(NOT_READY) && !has(UNREACHABLE),
        Verdict::Unreachable => {
            has(UNREACHABLE) && !has(NOT_READY) && pod::condition(node, "Ready") == Some("Unknown")
        }
    }
}

/// Whether `p` tolerates a NoExecute `taint` forever (no tolerationSeconds).
fn tolerates_forever(p: &Value, taint: &str) -> bool {
    pod::list(&p["spec"], "tolerations").iter().any(|t| {
        let key_ok = t["key"] == taint
            || (t["key"].as_str().is_none_or(str::is_empty) && t["operator"] == "Exists");
        let effect_ok = t["effect"]
            .as_str()
            .is_none_or(|e| e.is_empty() || e == "NoExecute");
        key_ok && effect_ok && t.get("tolerationSeconds").is_none_or(Value::is_null)
    })
}

struct Monitor {
    writer: Writer,
    cache: Cache,
    recorder: Recorder,
    settings: Settings,
    health: HashMap<String, Health>,
}

/// Runs the node controller until `stop`.
pub async fn run(
    ctx: Store,
    cache: Cache,
    mut feed: mpsc::UnboundedReceiver<Arc<Vec<Change>>>,
    settings: Settings,
    stop: CancellationToken,
) {
    let writer = Writer::new(ctx);
    let mut monitor = Monitor {
        recorder: Recorder::new(writer.clone(), "node-controller"),
        writer,
        cache,
        settings,
        health: HashMap::new(),
    };
    tracing::info!(
        grace = ?settings.node_monitor_grace_period,
        eviction = ?settings.pod_eviction_timeout,
        "node controller: every node gets a fresh grace period"
    );
    let mut tick = tokio::time::interval(MONITOR_PERIOD);
    loop {
        tokio::select! {
            batch = feed.recv() => match batch {
                Some(batch) => monitor.observe(&batch),
                None => return,
            },
            _ = tick.tick() => {
                if let Err(e) = monitor.judge_all().await {
                    tracing::debug!("node controller: {e}");
                }
            }
            () = stop.cancelled() => return,
        }
    }
}

impl Monitor {
    fn heartbeat_of(&self, node: &str) -> (String, String) {
        self.cache.read(|s| {
            let lease = s
                .get(
                    "leases",
                    &format!("/registry/leases/{LEASE_NAMESPACE}/{node}"),
                )
                .and_then(|l| l.value["spec"]["renewTime"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let ready = s
                .get("nodes", &format!("/registry/nodes/{node}"))
                .and_then(|n| {
                    pod::list(&n.value["status"], "conditions")
                        .iter()
                        .find(|c| c["type"] == "Ready")
                        .and_then(|c| c["lastHeartbeatTime"].as_str().map(str::to_owned))
                })
                .unwrap_or_default();
            (lease, ready)
        })
    }

    /// Notes heartbeats in `changes`.
    fn observe(&mut self, changes: &[Change]) {
        for change in changes {
            let node = match change.resource {
                "nodes" => change.object().map(|o| o.name().to_owned()),
                "leases" => change
                    .object()
                    .filter(|o| o.namespace() == LEASE_NAMESPACE)
                    .map(|o| o.name().to_owned()),
                _ => None,
            };
            let Some(node) = node else { continue };
            if change.resource == "nodes" && change.new.is_none() {
                self.health.remove(&node);
                continue;
            }
            let heartbeat = self.heartbeat_of(&node);
            let now = Instant::now();
            let entry = self.health.entry(node).or_insert_with(|| Health {
                heartbeat: heartbeat.clone(),
                probe: now,
                unready_since: None,
            });
            if entry.heartbeat != heartbeat {
                entry.heartbeat = heartbeat;
                entry.probe = now;
            }
        }
    }

    async fn judge_all(&mut self) -> Result<(), StoreError> {
        let nodes: Vec<Arc<Object>> = self.cache.read(|s| s.all("nodes").cloned().collect());
        let now = Instant::now();
        for node in nodes {
            let health = self
                .health
                .entry(node.name().to_owned())
                .or_insert_with(|| Health {
                    heartbeat: (String::new(), String::new()),
                    probe: now,
                    unready_since: None,
                });
            let silent = now.duration_since(health.probe);
            let verdict = judge(&node.value, silent, self.settings.node_monitor_grace_period);
            if verdict == Verdict::Ready {
                health.unready_since = None;
            } else if health.unready_since.is_none() {
                health.unready_since = Some(now);
            }
            let unready_for = health.unready_since.map(|s| now.duration_since(s));
            if !consistent(&node.value, verdict) {
                self.mark(&node, verdict).await?;
            }
            if unready_for.is_some_and(|d| d >= self.settings.pod_eviction_timeout) {
                self.evict(&node, verdict).await?;
            }
        }
        Ok(())
    }

    /// Writes the node's taints (and Unknown conditions when unreachable).
    async fn mark(&self, node: &Object, verdict: Verdict) -> Result<(), StoreError> {
        let now = meta::now();
        let mut next = node.value.clone();
        next["spec"]["taints"] = taints_for(&node.value, verdict, now);
        if next["spec"]["taints"].as_array().is_some_and(Vec::is_empty) {
            if let Some(spec) = next["spec"].as_object_mut() {
                spec.remove("taints");
            }
        }
        let mut went_unknown = false;
        if verdict == Verdict::Unreachable {
            if let Some(conditions) = next["status"]["conditions"].as_array_mut() {
                for c in conditions.iter_mut() {
                    if c["status"] != "Unknown" {
                        went_unknown |= c["type"] == "Ready";
                        c["status"] = json!("Unknown");
                        c["reason"] = json!("NodeStatusUnknown");
                        c["message"] = json!("Kubelet stopped posting node status.");
                        c["lastTransitionTime"] = json!(meta::timestamp(now));
                    }
                }
            }
        }
        let had = node.value["spec"]
            .get("taints")
            .cloned()
            .unwrap_or(json!([]));
        let has = next["spec"].get("taints").cloned().unwrap_or(json!([]));
        if next == node.value
            || (had == has && !went_unknown && next["status"] == node.value["status"])
        {
            return Ok(());
        }
        let nodes = served("Node")?;
        self.writer.update(nodes, node, next).await?;
        if went_unknown {
            tracing::warn!(
                node = node.name(),
                "node stopped heartbeating: marked Unknown and tainted unreachable"
            );
            self.recorder
                .record(
                    &node.value,
                    Severity::Normal,
                    "NodeNotReady",
                    &format!("Node {} status is now: NodeNotReady", node.name()),
                )
                .await;
        }
        Ok(())
    }

    /// Deletes the pods of a node that has not been ready for too long.
    async fn evict(&self, node: &Object, verdict: Verdict) -> Result<(), StoreError> {
        let taint = if verdict == Verdict::Unreachable {
            UNREACHABLE
        } else {
            NOT_READY
        };
        let victims: Vec<Arc<Object>> = self.cache.read(|s| {
            s.all("pods")
                .filter(|p| pod::node_name(&p.value) == Some(node.name()))
                .filter(|p| !pod::is_terminating(&p.value) && !tolerates_forever(&p.value, taint))
                .cloned()
                .collect()
        });
        if victims.is_empty() {
            return Ok(());
        }
        let pods = served("Pod")?;
        tracing::warn!(
            node = node.name(),
            pods = victims.len(),
            "evicting the pods of a node not ready for too long"
        );
        for p in &victims {
            self.writer.delete(pods, p).await?;
            self.recorder
                .record(
                    &p.value,
                    Severity::Normal,
                    "TaintManagerEviction",
                    &format!("Marking for deletion Pod {}", p.name()),
                )
                .await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_beyond_grace_is_unreachable() {
        let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let grace = Duration::from_secs(40);
        assert_eq!(
            judge(&ready, Duration::from_secs(39), grace),
            Verdict::Ready
        );
        assert_eq!(
            judge(&ready, Duration::from_secs(41), grace),
            Verdict::Unreachable
        );
        let unready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        assert_eq!(
            judge(&unready, Duration::from_secs(1), grace),
            Verdict::NotReady
        );
    }

    #[test]
    fn taints_follow_the_verdict_and_keep_others() {
        let node = json!({"spec": {"taints": [{"key": "dedicated", "effect": "NoSchedule"}]}});
        let t = taints_for(&node, Verdict::Unreachable, 100);
        assert_eq!(t.as_array().map(Vec::len), Some(3));
        assert_eq!(t[1]["key"], UNREACHABLE);
        let tainted = json!({"spec": {"taints": t}});
        let again = taints_for(&tainted, Verdict::Unreachable, 999);
        assert_eq!(
            again[1]["timeAdded"], t[1]["timeAdded"],
            "the first time is kept"
        );
        let healed = taints_for(&tainted, Verdict::Ready, 200);
        assert_eq!(
            healed,
            json!([{"key": "dedicated", "effect": "NoSchedule"}])
        );
    }

    #[test]
    fn only_unlimited_tolerations_keep_pods() {
        let forever = json!({"spec": {"tolerations": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]}});
        let limited = json!({"spec": {"tolerations": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]}});
        let everything = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        assert!(tolerates_forever(&forever, UNREACHABLE));
        assert!(!tolerates_forever(&limited, UNREACHABLE));
        assert!(tolerates_forever(&everything, UNREACHABLE));
        assert!(!tolerates_forever(&json!({"spec": {}}), UNREACHABLE));
    }
}
