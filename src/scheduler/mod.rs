//! The scheduler: binds pending pods to nodes. Runs on the Raft leader only.
//!
//! One task owns all scheduling state, so nothing here is locked:
//! - a table of [`NodeInfo`] kept from the informer's node changes, with the
//!   resources, host ports and owners of the pods bound to each node;
//! - the pending pods (unbound, for `default-scheduler`, not terminating),
//!   an *active* queue of those to try, and the *unschedulable* ones, which
//!   wait for a change in the cluster (a node added or changed, a bound pod
//!   gone) or [`UNSCHEDULABLE_FLUSH`];
//! - the bindings in flight.
//!
//! A decision is taken against the table, then *assumed* — the pod is
//! counted on its node at once — and the binding is written as a
//! compare-and-swap on the pod's revision (the binding subresource's rule:
//! only an unbound, unchanged pod is bound). Many bindings are in flight at
//! a time, and the store's proposer packs them into shared Raft entries, so
//! binding is batched without a batch API. A binding that loses its race
//! forgets the assumption and the pod is tried again from the fresher cache.
//!
//! An unschedulable pod gets `PodScheduled=False` (reason Unschedulable,
//! kube-scheduler's message) and a FailedScheduling event, once per distinct
//! message.

pub mod algorithm;

use crate::objects::{meta, owner, pod, quantity, registry};
use crate::store::events::{Recorder, Severity};
use crate::store::informer::Change;
use crate::store::Object;
use crate::store::Outcome;
use crate::store::Writer;
use crate::store::{Error as StoreError, Store};
use algorithm::{Decision, NodeInfo, PodInfo, Taint, Toleration};
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The scheduler's name, as pods ask for it in `spec.schedulerName`.
pub const NAME: &str = "default-scheduler";
/// Bindings (and status writes) in flight at most.
const MAX_IN_FLIGHT: usize = 512;
/// Pods decided per round before the loop looks at its other inputs.
const ROUND: usize = 256;
/// How long an unschedulable pod waits at most before it is tried again.
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(30);

/// Where a pod counts.
#[derive(Debug, Clone)]
struct Placement {
    node: String,
    info: PodInfo,
}

/// What a finished write was.
enum Written {
    Bind {
        key: String,
        result: Result<Outcome, StoreError>,
    },
    Status,
}

type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Written> + Send>>;

/// The scheduler's state; owned by its task.
struct Scheduler {
    ctx: Store,
    recorder: Recorder,
    nodes: Vec<NodeInfo>,
    node_index: HashMap<String, usize>,
    /// Usage on nodes not (or no longer) in the table.
    absent: HashMap<String, NodeInfo>,
    placements: HashMap<String, Placement>,
    pending: HashMap<String, Arc<Object>>,
    active: VecDeque<String>,
    queued: HashSet<String>,
    unschedulable: HashMap<String, Instant>,
    last_message: HashMap<String, String>,
    binding: HashSet<String>,
    next_start: usize,
    writes: FuturesUnordered<Pending>,
}

/// Runs the scheduler until `stop`.
pub async fn run(
    ctx: Store,
    mut feed: mpsc::UnboundedReceiver<Arc<Vec<Change>>>,
    stop: CancellationToken,
) {
    let writer = Writer::new(ctx.clone());
    let mut s = Scheduler {
        ctx,
        recorder: Recorder::new(writer, NAME),
        nodes: Vec::new(),
        node_index: HashMap::new(),
        absent: HashMap::new(),
        placements: HashMap::new(),
        pending: HashMap::new(),
        active: VecDeque::new(),
        queued: HashSet::new(),
        unschedulable: HashMap::new(),
        last_message: HashMap::new(),
        binding: HashSet::new(),
        next_start: 0,
        writes: FuturesUnordered::new(),
    };
    let mut flush = tokio::time::interval(Duration::from_secs(1));
    loop {
        let can_schedule = !s.active.is_empty() && s.writes.len() < MAX_IN_FLIGHT;
        tokio::select! {
            batch = feed.recv() => match batch {
                Some(batch) => s.apply(&batch),
                None => break,
            },
            Some(written) = s.writes.next(), if !s.writes.is_empty() => s.finished(written),
            _ = flush.tick() => s.flush_unschedulable(false),
            () = std::future::ready(()), if can_schedule => s.round(),
            () = stop.cancelled() => break,
        }
    }
}

/// The scheduler's view of a node object (usage fields left at zero).
fn node_info(node: &Value) -> NodeInfo {
    let status = &node["status"];
    let allocatable = if status["allocatable"].is_object() {
        &status["allocatable"]
    } else {
        &status["capacity"]
    };
    let labels = node["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let taints = pod::list(&node["spec"], "taints")
        .iter()
        .map(|t| Taint {
            key: t["key"].as_str().unwrap_or("").into(),
            value: t["value"].as_str().unwrap_or("").into(),
            effect: t["effect"].as_str().unwrap_or("").into(),
        })
        .collect();
    NodeInfo {
        name: meta::name(node).unwrap_or("").to_owned(),
        labels,
        taints,
        unschedulable: node["spec"]["unschedulable"].as_bool().unwrap_or(false),
        ready: pod::condition(node, "Ready") == Some("True"),
        allocatable: crate::objects::pod::Requests {
            cpu_millis: quantity::cpu_millis(&allocatable["cpu"]).unwrap_or(0),
            memory: quantity::units(&allocatable["memory"]).unwrap_or(0),
        },
        max_pods: quantity::units(&allocatable["pods"]).unwrap_or(110),
        ..NodeInfo::default()
    }
}

/// The scheduler's view of a pod.
fn pod_info(pod: &Value) -> PodInfo {
    let spec = &pod["spec"];
    PodInfo {
        requests: pod::requests(spec),
        node_selector: spec["nodeSelector"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
        tolerations: pod::list(spec, "tolerations")
            .iter()
            .map(|t| Toleration {
                key: t["key"].as_str().unwrap_or("").into(),
                operator: t["operator"].as_str().unwrap_or("Equal").into(),
                value: t["value"].as_str().unwrap_or("").into(),
                effect: t["effect"].as_str().unwrap_or("").into(),
            })
            .collect(),
        host_ports: pod::host_ports(spec),
        owner: owner::controller_uid(pod).map(str::to_owned),
    }
}

/// Whether this scheduler should place `pod`.
fn wants_scheduling(pod: &Value) -> bool {
    pod::node_name(pod).is_none()
        && !pod::is_terminating(pod)
        && pod["spec"]["schedulerName"]
            .as_str()
            .is_none_or(|n| n.is_empty() || n == NAME)
        && pod::is_active(pod)
}

/// Whether a bound pod still holds its node's resources.
fn holds_resources(pod: &Value) -> bool {
    !matches!(pod::phase(pod), "Succeeded" | "Failed")
}

impl Scheduler {
    fn usage(&mut self, node: &str) -> &mut NodeInfo {
        match self.node_index.get(node) {
            Some(&i) => &mut self.nodes[i],
            None => self.absent.entry(node.to_owned()).or_default(),
        }
    }

    fn account(&mut self, key: &str, placement: Placement) {
        self.unaccount(key);
        let usage = self.usage(&placement.node);
        usage.requested = usage.requested.plus(placement.info.requests);
        usage.requested_for_score = usage
            .requested_for_score
            .plus(placement.info.requests_for_score());
        usage.pods += 1;
        usage
            .host_ports
            .extend(placement.info.host_ports.iter().cloned());
        if let Some(o) = &placement.info.owner {
            *usage.owner_pods.entry(o.clone()).or_default() += 1;
        }
        self.placements.insert(key.to_owned(), placement);
    }

    /// Forgets where `key` counted; whether it counted anywhere.
    fn unaccount(&mut self, key: &str) -> bool {
        let Some(placement) = self.placements.remove(key) else {
            return false;
        };
        let usage = self.usage(&placement.node);
        usage.requested = usage.requested.minus(placement.info.requests);
        usage.requested_for_score = usage
            .requested_for_score
            .minus(placement.info.requests_for_score());
        usage.pods -= 1;
        for port in &placement.info.host_ports {
            usage.host_ports.remove(port);
        }
        if let Some(o) = &placement.info.owner {
            if let Some(n) = usage.owner_pods.get_mut(o) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    usage.owner_pods.remove(o);
                }
            }
        }
        true
    }

    fn activate(&mut self, key: &str) {
        if self.binding.contains(key) || self.unschedulable.contains_key(key) {
            return;
        }
        if self.queued.insert(key.to_owned()) {
            self.active.push_back(key.to_owned());
        }
    }

    /// Moves unschedulable pods back to the active queue: all of them when
    /// the cluster changed, else those that waited [`UNSCHEDULABLE_FLUSH`].
    fn flush_unschedulable(&mut self, all: bool) {
        let now = Instant::now();
        let due: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|(_, since)| all || now.duration_since(**since) >= UNSCHEDULABLE_FLUSH)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.unschedulable.remove(&key);
            self.activate(&key);
        }
    }

    fn apply(&mut self, changes: &[Change]) {
        let mut freed = false;
        for change in changes {
            match change.resource {
                "nodes" => {
                    self.node_changed(change);
                    freed = true;
                }
                "pods" => freed |= self.pod_changed(change),
                _ => {}
            }
        }
        if freed {
            self.flush_unschedulable(true);
        }
    }

    fn node_changed(&mut self, change: &Change) {
        match &change.new {
            Some(node) => {
                let mut info = node_info(&node.value);
                match self.node_index.get(&info.name) {
                    Some(&i) => {
                        // Keep the usage, refresh the rest.
                        let old = std::mem::take(&mut self.nodes[i]);
                        info.requested = old.requested;
                        info.requested_for_score = old.requested_for_score;
                        info.pods = old.pods;
                        info.host_ports = old.host_ports;
                        info.owner_pods = old.owner_pods;
                        self.nodes[i] = info;
                    }
                    None => {
                        if let Some(usage) = self.absent.remove(&info.name) {
                            info.requested = usage.requested;
                            info.requested_for_score = usage.requested_for_score;
                            info.pods = usage.pods;
                            info.host_ports = usage.host_ports;
                            info.owner_pods = usage.owner_pods;
                        }
                        self.node_index.insert(info.name.clone(), self.nodes.len());
                        self.nodes.push(info);
                    }
                }
            }
            None => {
                let Some(old) = &change.old else { return };
                let Some(i) = self.node_index.remove(old.name()) else {
                    return;
                };
                let removed = self.nodes.swap_remove(i);
                if let Some(moved) = self.nodes.get(i) {
                    self.node_index.insert(moved.name.clone(), i);
                }
                if removed.pods > 0 {
                    self.absent.insert(removed.name.clone(), removed);
                }
            }
        }
    }

    /// Follows one pod; whether resources were freed.
    fn pod_changed(&mut self, change: &Change) -> bool {
        let Some(object) = change.object() else {
            return false;
        };
        let key = object.key.clone();
        let Some(pod) = &change.new else {
            self.pending.remove(&key);
            self.unschedulable.remove(&key);
            self.last_message.remove(&key);
            return self.unaccount(&key);
        };
        match pod::node_name(&pod.value) {
            Some(node) => {
                self.pending.remove(&key);
                self.unschedulable.remove(&key);
                self.last_message.remove(&key);
                if holds_resources(&pod.value) {
                    let placement = Placement {
                        node: node.to_owned(),
                        info: pod_info(&pod.value),
                    };
                    self.account(&key, placement);
                    false
                } else {
                    self.unaccount(&key)
                }
            }
            None if wants_scheduling(&pod.value) => {
                // A changed spec (a nodeSelector fixed, say) is worth a try now.
                let spec_changed = change
                    .old
                    .as_ref()
                    .is_some_and(|old| old.value["spec"] != pod.value["spec"]);
                if spec_changed {
                    self.unschedulable.remove(&key);
                }
                self.pending.insert(key.clone(), pod.clone());
                self.activate(&key);
                false
            }
            None => {
                self.pending.remove(&key);
                self.unschedulable.remove(&key);
                self.unaccount(&key)
            }
        }
    }

    /// Decides up to [`ROUND`] pods and starts their writes.
    fn round(&mut self) {
        let mut seed: u64 = rand::random();
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..ROUND {
            if self.writes.len() >= MAX_IN_FLIGHT {
                break;
            }
            let Some(key) = self.active.pop_front() else {
                break;
            };
            self.queued.remove(&key);
            let Some(pod) = self.pending.get(&key).cloned() else {
                continue;
            };
            let info = pod_info(&pod.value);
            let start = if self.nodes.is_empty() {
                0
            } else {
                self.next_start % self.nodes.len()
            };
            let (decision, examined) = algorithm::schedule(&info, &self.nodes, start, &mut random);
            self.next_start = start + examined;
            match decision {
                Decision::Bind(i) => {
                    let node = self.nodes[i].name.clone();
                    self.account(
                        &key,
                        Placement {
                            node: node.clone(),
                            info,
                        },
                    );
                    self.binding.insert(key.clone());
                    self.writes
                        .push(Box::pin(bind(self.ctx.clone(), pod, node)));
                }
                Decision::Unschedulable(reasons) => {
                    let message = algorithm::unschedulable_message(self.nodes.len(), &reasons);
                    self.unschedulable.insert(key.clone(), Instant::now());
                    if self.last_message.get(&key) != Some(&message) {
                        self.last_message.insert(key.clone(), message.clone());
                        let (ctx, recorder) = (self.ctx.clone(), self.recorder.clone());
                        self.writes.push(Box::pin(async move {
                            mark_unschedulable(&ctx, &recorder, &pod, &message).await;
                            Written::Status
                        }));
                    }
                }
            }
        }
    }

    fn finished(&mut self, written: Written) {
        let Written::Bind { key, result } = written else {
            return;
        };
        self.binding.remove(&key);
        match result {
            Ok(Outcome::Done(_)) => {}
            Ok(Outcome::Lost) | Err(_) => {
                if let Err(e) = &result {
                    tracing::debug!(pod = %key, "binding failed: {e}");
                }
                // Unless the informer already saw it bound, forget the
                // assumption and try again from the cache.
                let bound = self
                    .pending
                    .get(&key)
                    .is_none_or(|p| pod::node_name(&p.value).is_some());
                if self.pending.contains_key(&key) && !bound {
                    self.unaccount(&key);
                    self.activate(&key);
                }
            }
        }
    }
}

/// Binds `pod` to `node`: `spec.nodeName` and `PodScheduled=True`, if the
/// pod is unchanged since the cache saw it.
async fn bind(ctx: Store, pod: Arc<Object>, node: String) -> Written {
    let mut next = pod.value.clone();
    next["spec"]["nodeName"] = json!(node);
    pod::set_condition(&mut next, "PodScheduled", "True", "", "", meta::now());
    let result = ctx.swap_raw(&pod, &next).await;
    Written::Bind {
        key: pod.key.clone(),
        result,
    }
}

/// Sets `PodScheduled=False` with `message` and records FailedScheduling.
async fn mark_unschedulable(ctx: &Store, recorder: &Recorder, pod: &Object, message: &str) {
    let mut next = pod.value.clone();
    let changed = pod::set_condition(
        &mut next,
        "PodScheduled",
        "False",
        "Unschedulable",
        message,
        meta::now(),
    );
    if changed {
        if let Some(pods) = registry::by_kind("Pod") {
            let writer = Writer::new(ctx.clone());
            if let Err(e) = writer.update(pods, pod, next).await {
                tracing::debug!(pod = %pod.key, "could not mark the pod unschedulable: {e}");
            }
        }
    }
    recorder
        .record(&pod.value, Severity::Warning, "FailedScheduling", message)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_pods_are_read_like_kubernetes() {
        let node = json!({"metadata": {"name": "n1", "labels": {"zone": "a"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}});
        let info = node_info(&node);
        assert_eq!(info.name, "n1");
        assert!(info.ready && !info.unschedulable);
        assert_eq!(info.allocatable.cpu_millis, 2000);
        assert_eq!(info.allocatable.memory, 4 << 30);
        assert_eq!(info.max_pods, 110);
        assert_eq!(info.taints.len(), 1);
        let pod = json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true}]},
            "spec": {"nodeSelector": {"zone": "a"}, "tolerations": [{"operator": "Exists"}],
                     "containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]},
            "status": {"phase": "Pending"}});
        let info = pod_info(&pod);
        assert_eq!(info.owner.as_deref(), Some("u"));
        assert_eq!(info.requests.cpu_millis, 100);
        assert_eq!(
            info.node_selector,
            vec![("zone".to_owned(), "a".to_owned())]
        );
        assert!(wants_scheduling(&pod));
        let other = json!({"metadata": {}, "spec": {"schedulerName": "custom"}, "status": {}});
        assert!(!wants_scheduling(&other));
    }
}
