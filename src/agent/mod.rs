//! The worker agent: Flotilla's kubelet.
//!
//! An agent registers its Node, heartbeats ([`node`]), follows the pods
//! bound to it ([`feed`]) and runs each with a worker ([`pods`]) against a
//! container runtime ([`runtime`]: Docker, or the fake of hollow nodes),
//! whose Docker sandboxes the pod network ([`network`]) wires through CNI
//! and routes to the other nodes' pods.
//!
//! It keeps no state of its own: what runs is in the runtime's labels, what
//! should run is in the API. A restarted agent lists both and carries on —
//! adopting its containers, never starting a pod twice — and removes
//! containers of pods that no longer exist (once it has the full list of
//! its pods, never before).
//!
//! The relist loop (kubelet's PLEG) lists the runtime every
//! [`RELIST_INTERVAL`] and wakes the workers of pods whose containers
//! changed, so a container that dies is seen within about a second.

pub mod api;
pub mod feed;
pub mod fleet;
pub mod join;
pub mod network;
pub mod node;
pub mod plan;
pub mod pods;
pub mod probe;
pub mod process;
pub mod runtime;
pub mod server;
pub mod status;

use feed::PodEvent;
use pods::{Shared, Worker};
use runtime::{Container, PodRef, State};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the runtime is listed for changes.
pub const RELIST_INTERVAL: Duration = Duration::from_secs(1);

/// Why an agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The masters refused the node (a bad or revoked credential).
    #[error("the cluster refused node {node}: {source}")]
    Refused {
        /// The node.
        node: String,
        /// The refusal.
        source: api::ApiCallError,
    },
}

struct Entry {
    spec: watch::Sender<Option<Arc<Value>>>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

/// A running agent's pods.
struct Pods {
    shared: Arc<Shared>,
    entries: HashMap<String, Entry>,
    stop: CancellationToken,
}

impl Pods {
    fn start(&mut self, pod: PodRef, spec: Option<Arc<Value>>) {
        let (tx, rx) = watch::channel(spec);
        let wake = Arc::new(Notify::new());
        let worker = Worker::new(self.shared.clone(), pod.clone(), rx, wake.clone());
        let task = tokio::spawn(worker.run(self.stop.clone()));
        self.entries.insert(
            pod.uid,
            Entry {
                spec: tx,
                wake,
                task,
            },
        );
    }

    fn upsert(&mut self, pod: Arc<Value>) {
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        if uid.is_empty() {
            return;
        }
        match self.entries.get(&uid) {
            Some(entry) if !entry.task.is_finished() => {
                entry.spec.send_replace(Some(pod));
            }
            _ => {
                let r = PodRef {
                    uid,
                    namespace: pod["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    name: pod["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                };
                self.start(r, Some(pod));
            }
        }
    }

    fn delete(&mut self, uid: &str) {
        if let Some(entry) = self.entries.get(uid) {
            entry.spec.send_replace(None);
        }
    }

    fn sync(&mut self, pods: Vec<Arc<Value>>) {
        let listed: std::collections::HashSet<String> = pods
            .iter()
            .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
            .collect();
        let gone: Vec<String> = self
            .entries
            .keys()
            .filter(|uid| !listed.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.delete(&uid);
        }
        for pod in pods {
            self.upsert(pod);
        }
    }
}

/// A fingerprint of a pod's containers: ids and states.
fn fingerprint(containers: &[&Container]) -> Vec<(String, u8)> {
    let mut f: Vec<(String, u8)> = containers
        .iter()
        .map(|c| {
            let state = match c.state {
                State::Created => 0,
                State::Running { .. } => 1,
                State::Exited { .. } => 2,
            };
            (c.id.clone(), state)
        })
        .collect();
    f.sort();
    f
}

/// Runs an agent for `node` until `stop`: registration, heartbeats, pods.
/// Containers keep running when it stops.
///
/// # Errors
/// When the cluster refuses the node's credential.
pub async fn run(
    node: node::Config,
    shared: Arc<Shared>,
    mut feed: mpsc::UnboundedReceiver<PodEvent>,
    stop: CancellationToken,
) -> Result<(), AgentError> {
    // The agent's own tasks stop with it, whatever ends it.
    let stop = stop.child_token();
    let mut backoff = Duration::from_millis(200);
    loop {
        match node::register(&shared.api, &node).await {
            Ok(()) => break,
            Err(e) if matches!(e.code(), Some(401 | 403)) => {
                return Err(AgentError::Refused {
                    node: node.name.clone(),
                    source: e,
                });
            }
            Err(e) => {
                tracing::warn!(node = %node.name, "registering the node: {e}; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::info!(node = %node.name, "node registered");
    let heartbeat = {
        let (shared, node, stop) = (shared.clone(), node.clone(), stop.clone());
        tokio::spawn(async move { node::heartbeat(&shared.api, &node, stop).await })
    };
    let mut pods = Pods {
        shared: shared.clone(),
        entries: HashMap::new(),
        stop: stop.clone(),
    };
    let mut synced = false;
    let mut seen: HashMap<String, Vec<(String, u8)>> = HashMap::new();
    let mut relist = tokio::time::interval(RELIST_INTERVAL);
    relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = feed.recv() => match event {
                Some(PodEvent::Sync(list)) => {
                    pods.sync(list);
                    synced = true;
                }
                Some(PodEvent::Upsert(pod)) => pods.upsert(pod),
                Some(PodEvent::Delete(uid)) => pods.delete(&uid),
                None => break,
            },
            _ = relist.tick() => {
                let containers = match shared.runtime.list().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(node = %node.name, "listing containers: {e}");
                        continue;
                    }
                };
                let mut by_pod: HashMap<&str, Vec<&Container>> = HashMap::new();
                for c in &containers {
                    by_pod.entry(c.pod.uid.as_str()).or_default().push(c);
                }
                for (uid, list) in &by_pod {
                    let print = fingerprint(list);
                    let changed = seen.get(*uid) != Some(&print);
                    match pods.entries.get(*uid) {
                        Some(entry) if changed => entry.wake.notify_one(),
                        Some(_) => {}
                        // Containers of a pod this node does not run (any
                        // more): once the full list is known, remove them.
                        None if synced => {
                            if let Some(c) = list.first() {
                                tracing::info!(node = %node.name, pod = %format!("{}/{}", c.pod.namespace, c.pod.name), "removing containers of a pod that no longer exists");
                                pods.start(c.pod.clone(), None);
                            }
                        }
                        None => {}
                    }
                    seen.insert((*uid).to_owned(), print);
                }
                seen.retain(|uid, _| by_pod.contains_key(uid.as_str()));
                pods.entries.retain(|_, e| !e.task.is_finished());
            }
            () = stop.cancelled() => break,
        }
    }
    stop.cancel();
    let _ = heartbeat.await;
    for (_, entry) in pods.entries.drain() {
        let _ = entry.task.await;
    }
    Ok(())
}
