//! Where an agent learns which pods are bound to it: a list, then a watch,
//! of pods with `spec.nodeName` = the node, from whichever master answers.
//!
//! [`watch_node`] feeds one agent. [`Hub`] feeds many hollow nodes in one
//! process from a single watch of all pods, routed by `spec.nodeName` — one
//! connection instead of thousands, and each pod event is decoded once.
//!
//! A watch that ends (timeout, a master going away) resumes from the last
//! resourceVersion seen, on another master if need be; one whose version
//! was compacted (410) lists again. Either way the agent's pods are not
//! disturbed: a fresh list is a [`PodEvent::Sync`] that only adds, updates
//! and removes what differs.

use super::api::{encode, Api};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Back-off after a failed list or watch, doubling up to [`RETRY_MAX`].
const RETRY_START: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What changed among a node's pods.
#[derive(Debug, Clone)]
pub enum PodEvent {
    /// The complete set of the node's pods, as of a fresh list.
    Sync(Vec<Arc<Value>>),
    /// A pod was added or changed.
    Upsert(Arc<Value>),
    /// A pod (by uid) is gone from the API.
    Delete(String),
}

fn uid(pod: &Value) -> String {
    pod["metadata"]["uid"].as_str().unwrap_or("").to_owned()
}

/// Why a watch round ended.
enum Ended {
    /// Resume from this resourceVersion.
    Resume(String),
    /// List again.
    Relist,
}

/// Lists `collection?QUERY` and streams its watch, calling `on_list` with
/// the items and `on_event` with (type, object) for each event, forever
/// (until `stop`).
async fn list_and_watch(
    api: &Api,
    query: &str,
    stop: &CancellationToken,
    mut on_list: impl FnMut(Vec<Value>),
    mut on_event: impl FnMut(&str, Value),
) {
    let mut backoff = RETRY_START;
    let mut resume: Option<String> = None;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let version = match resume.take() {
            Some(v) => v,
            None => match api.get(&format!("/api/v1/pods?{query}")).await {
                Ok(Some(list)) => {
                    let version = list["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("0")
                        .to_owned();
                    let items = list["items"].as_array().cloned().unwrap_or_default();
                    on_list(items);
                    backoff = RETRY_START;
                    version
                }
                Ok(None) | Err(_) => {
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(RETRY_MAX);
                    continue;
                }
            },
        };
        let path = format!(
            "/api/v1/pods?{query}&watch=true&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={}",
            encode(&version),
            super::api::WATCH_TIMEOUT.as_secs()
        );
        let ended = tokio::select! {
            ended = stream(api, &path, &version, &mut on_event) => ended,
            () = stop.cancelled() => return,
        };
        match ended {
            Ended::Resume(v) => {
                if v != version {
                    backoff = RETRY_START;
                }
                resume = Some(v);
            }
            Ended::Relist => {}
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(RETRY_MAX);
    }
}

/// One watch request: events until the stream ends.
async fn stream(
    api: &Api,
    path: &str,
    from: &str,
    on_event: &mut impl FnMut(&str, Value),
) -> Ended {
    let mut version = from.to_owned();
    let mut response = match api.watch(path).await {
        Ok(r) => r,
        Err(e) if e.code() == Some(410) => return Ended::Relist,
        Err(e) => {
            tracing::debug!("pod watch: {e}");
            return Ended::Resume(version);
        }
    };
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) | Err(_) => return Ended::Resume(version),
        };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let kind = event["type"].as_str().unwrap_or("").to_owned();
            let object = event["object"].clone();
            if kind == "ERROR" {
                return if object["code"] == 410 {
                    Ended::Relist
                } else {
                    Ended::Resume(version)
                };
            }
            if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
                version = rv.to_owned();
            }
            if kind != "BOOKMARK" {
                on_event(&kind, object);
            }
        }
    }
}

/// Feeds the pods of `node` to `tx` until `stop`.
pub async fn watch_node(
    api: Arc<Api>,
    node: String,
    tx: mpsc::UnboundedSender<PodEvent>,
    stop: CancellationToken,
) {
    let query = format!("fieldSelector={}", encode(&format!("spec.nodeName={node}")));
    list_and_watch(
        &api,
        &query,
        &stop,
        |items| {
            let _ = tx.send(PodEvent::Sync(items.into_iter().map(Arc::new).collect()));
        },
        |kind, object| {
            let event = if kind == "DELETED" {
                PodEvent::Delete(uid(&object))
            } else {
                PodEvent::Upsert(Arc::new(object))
            };
            let _ = tx.send(event);
        },
    )
    .await;
}

/// One watch of all pods, routed to many nodes' agents.
#[derive(Default)]
pub struct Hub {
    nodes: HashMap<String, mpsc::UnboundedSender<PodEvent>>,
}

impl Hub {
    /// A hub with no nodes.
    pub fn new() -> Hub {
        Hub::default()
    }

    /// The feed of `node`.
    pub fn subscribe(&mut self, node: &str) -> mpsc::UnboundedReceiver<PodEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.nodes.insert(node.to_owned(), tx);
        rx
    }

    /// Lists and watches all pods, routing them, until `stop`.
    pub async fn run(self, api: Arc<Api>, stop: CancellationToken) {
        // The routes, and where each pod (by uid) was last routed, to route
        // its deletion. Both callbacks run on this task, one at a time.
        let placed: HashMap<String, String> = HashMap::new();
        let cell = std::sync::Mutex::new((self.nodes, placed));
        list_and_watch(
            &api,
            "",
            &stop,
            |items| {
                let mut guard = cell
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (nodes, placed) = &mut *guard;
                placed.clear();
                let mut per_node: HashMap<&str, Vec<Arc<Value>>> = HashMap::new();
                for item in items {
                    let Some(node) = item["spec"]["nodeName"].as_str().map(str::to_owned) else {
                        continue;
                    };
                    if let Some((name, _)) = nodes.get_key_value(node.as_str()) {
                        placed.insert(uid(&item), node.clone());
                        per_node
                            .entry(name.as_str())
                            .or_default()
                            .push(Arc::new(item));
                    }
                }
                for (name, tx) in nodes.iter() {
                    let pods = per_node.remove(name.as_str()).unwrap_or_default();
                    let _ = tx.send(PodEvent::Sync(pods));
                }
            },
            |kind, object| {
                let mut guard = cell
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (nodes, placed) = &mut *guard;
                let id = uid(&object);
                if kind == "DELETED" {
                    if let Some(node) = placed.remove(&id) {
                        if let Some(tx) = nodes.get(&node) {
                            let _ = tx.send(PodEvent::Delete(id));
                        }
                    }
                    return;
                }
                let Some(node) = object["spec"]["nodeName"].as_str().map(str::to_owned) else {
                    return;
                };
                if let Some(tx) = nodes.get(&node) {
                    placed.insert(id, node);
                    let _ = tx.send(PodEvent::Upsert(Arc::new(object)));
                }
            },
        )
        .await;
    }
}
