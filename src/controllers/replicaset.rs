//! The ReplicaSet controller: keeps `spec.replicas` pods matching each
//! ReplicaSet's selector, and reports how many are ready and available.
//!
//! Reconciling one ReplicaSet (from the informer's cache):
//! 1. its pods are the ones whose controller reference names it; orphans in
//!    its namespace that match its selector are adopted, and its pods whose
//!    labels no longer match are released (as Kubernetes does);
//! 2. *active* pods (not terminating, not finished) are counted against
//!    `spec.replicas`: missing ones are created from the template in
//!    slow-start batches (1, 2, 4, ...), extra ones deleted — unscheduled
//!    before scheduled, pending before running, not ready before ready,
//!    newest first;
//! 3. the status is written when it changed.
//!
//! **Expectations.** After asking for creations or deletions the controller
//! does not act on the ReplicaSet again until the informer has seen them (or
//! [`EXPECTATION_TIMEOUT`] passed). Without this a slow watch would make it
//! count the pods it just created as missing and create them twice.

use super::reconciler::{Action, Reconciler};
use crate::objects::selectors::Selector;
use crate::objects::{meta, owner, pod};
use crate::store::events::{Recorder, Severity};
use crate::store::informer::{Cache, Change, Snapshot};
use crate::store::Object;
use crate::store::Outcome;
use crate::store::{served, Writer};
use crate::store::{Error as StoreError, Store};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Most pods created or deleted in one reconcile (kube's burstReplicas).
pub const BURST: usize = 500;
/// How long unmet expectations hold back a ReplicaSet.
pub const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Creations and deletions asked for and not yet seen.
#[derive(Debug)]
struct Expectation {
    adds: i64,
    deletes: HashSet<String>,
    since: Instant,
}

impl Expectation {
    fn met(&self) -> bool {
        (self.adds <= 0 && self.deletes.is_empty()) || self.since.elapsed() > EXPECTATION_TIMEOUT
    }
}

/// The ReplicaSet controller.
pub struct Controller {
    writer: Writer,
    cache: Cache,
    recorder: Recorder,
    expectations: Mutex<HashMap<String, Expectation>>,
}

/// What the controller needs from one pod when choosing whom to delete.
fn deletion_rank(p: &Value) -> (u8, u8, u8, std::cmp::Reverse<String>) {
    let assigned = u8::from(pod::node_name(p).is_some());
    let phase = match pod::phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let ready = u8::from(pod::is_ready(p));
    let created = meta::meta_str(p, "creationTimestamp")
        .unwrap_or("")
        .to_owned();
    (assigned, phase, ready, std::cmp::Reverse(created))
}

/// The pod a ReplicaSet creates from its template.
pub fn pod_from_template(rs: &Value) -> Value {
    let template = &rs["spec"]["template"];
    let name = meta::name(rs).unwrap_or("pod");
    let mut metadata = json!({
        "generateName": format!("{name}-"),
        "namespace": meta::namespace(rs).unwrap_or("default"),
        "ownerReferences": [owner::OwnerRef::controller_of(rs).to_json()],
    });
    for field in ["labels", "annotations"] {
        if let Some(v) = template["metadata"].get(field).filter(|v| v.is_object()) {
            metadata[field] = v.clone();
        }
    }
    json!({"metadata": metadata, "spec": template["spec"].clone()})
}

/// The status a ReplicaSet should report for `pods` (its active ones) at
/// `now`, and the seconds until a ready pod becomes available, if any is due.
pub fn status_of(rs: &Value, pods: &[&Value], now: u64) -> (Value, Option<u64>) {
    let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let template_labels = meta::labels(&rs["spec"]["template"]);
    let fully_labeled = pods
        .iter()
        .filter(|p| {
            let labels = meta::labels(p);
            template_labels.iter().all(|l| labels.contains(l))
        })
        .count();
    let ready = pods.iter().filter(|p| pod::is_ready(p)).count();
    let available = pods
        .iter()
        .filter(|p| pod::is_available(p, min_ready, now))
        .count();
    let pending_availability = (ready > available).then_some(min_ready.unsigned_abs().max(1));
    let mut status = json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs["metadata"]["generation"].as_i64().unwrap_or(1),
    });
    if let Some(conditions) = rs["status"].get("conditions") {
        status["conditions"] = conditions.clone();
    }
    (status, pending_availability)
}

impl Controller {
    /// A controller writing through `ctx`, reading `cache`.
    pub fn new(ctx: Store, cache: Cache) -> Controller {
        let writer = Writer::new(ctx);
        Controller {
            recorder: Recorder::new(writer.clone(), "replicaset-controller"),
            writer,
            cache,
            expectations: Mutex::new(HashMap::new()),
        }
    }

    fn expectations(&self) -> std::sync::MutexGuard<'_, HashMap<String, Expectation>> {
        self.expectations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn expectations_met(&self, key: &str) -> bool {
        self.expectations().get(key).is_none_or(Expectation::met)
    }

    fn expect(&self, key: &str, adds: i64, deletes: HashSet<String>) {
        self.expectations().insert(
            key.to_owned(),
            Expectation {
                adds,
                deletes,
                since: Instant::now(),
            },
        );
    }

    fn observed_add(&self, key: &str) {
        if let Some(e) = self.expectations().get_mut(key) {
            e.adds -= 1;
        }
    }

    fn observed_delete(&self, key: &str, pod_key: &str) {
        if let Some(e) = self.expectations().get_mut(key) {
            e.deletes.remove(pod_key);
        }
    }

    /// The ReplicaSet key of a pod's controller, when it is a ReplicaSet.
    fn owner_key(snapshot: &Snapshot, p: &Value) -> Option<String> {
        let uid = owner::controller_uid(p)?;
        snapshot
            .by_uid(uid)
            .filter(|o| o.value["kind"] == "ReplicaSet")
            .map(|o| o.key.clone())
    }

    /// Creates `count` pods in slow-start batches; how many were created.
    async fn create_pods(&self, rs: &Object, count: usize) -> Result<usize, StoreError> {
        let pods = served("Pod")?;
        let template = pod_from_template(&rs.value);
        let mut created = 0;
        let mut batch = 1;
        while created < count {
            let size = batch.min(count - created);
            let results = futures::future::join_all(
                (0..size).map(|_| self.writer.create(pods, template.clone())),
            )
            .await;
            let mut failed = None;
            for result in results {
                match result {
                    Ok(Some(p)) => {
                        created += 1;
                        let message = format!("Created pod: {}", meta::name(&p).unwrap_or(""));
                        self.recorder
                            .record(&rs.value, Severity::Normal, "SuccessfulCreate", &message)
                            .await;
                    }
                    // The namespace is going away: nothing to do.
                    Ok(None) => {
                        self.observed_add(&rs.key);
                    }
                    Err(e) => {
                        self.observed_add(&rs.key);
                        failed = Some(e);
                    }
                }
            }
            if let Some(e) = failed {
                // Whatever was not attempted will not be seen either.
                for _ in created + size..count {
                    self.observed_add(&rs.key);
                }
                return Err(e);
            }
            batch *= 2;
        }
        Ok(created)
    }

    async fn delete_pods(&self, rs: &Object, victims: Vec<Arc<Object>>) -> Result<(), StoreError> {
        let pods = served("Pod")?;
        let results =
            futures::future::join_all(victims.iter().map(|p| self.writer.delete(pods, p))).await;
        let mut error = None;
        for (victim, result) in victims.iter().zip(results) {
            match result {
                Ok(Outcome::Done(_)) => {
                    let message = format!("Deleted pod: {}", victim.name());
                    self.recorder
                        .record(&rs.value, Severity::Normal, "SuccessfulDelete", &message)
                        .await;
                }
                Ok(Outcome::Lost) => self.observed_delete(&rs.key, &victim.key),
                Err(e) => {
                    self.observed_delete(&rs.key, &victim.key);
                    error = Some(e);
                }
            }
        }
        error.map_or(Ok(()), Err)
    }

    /// Adopts matching orphans and releases owned pods that stopped matching.
    async fn claim(&self, rs: &Object, selector: &Selector) -> Result<bool, StoreError> {
        let pods = served("Pod")?;
        let (adopt, release): (Vec<Arc<Object>>, Vec<Arc<Object>>) = self.cache.read(|s| {
            let mut adopt = Vec::new();
            let mut release = Vec::new();
            for p in s.in_namespace("pods", rs.namespace()) {
                let matches = selector.matches_labels(&meta::labels(&p.value));
                match owner::controller_uid(&p.value) {
                    None if matches && pod::is_active(&p.value) => adopt.push(p.clone()),
                    Some(uid) if uid == rs.uid() && !matches => release.push(p.clone()),
                    _ => {}
                }
            }
            (adopt, release)
        });
        if pod::is_terminating(&rs.value) {
            return Ok(false);
        }
        let mut changed = false;
        for p in adopt {
            let mut next = p.value.clone();
            let mut refs = next["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            refs.push(owner::OwnerRef::controller_of(&rs.value).to_json());
            next["metadata"]["ownerReferences"] = Value::Array(refs);
            changed |= self.writer.update(pods, &p, next).await? != Outcome::Lost;
        }
        for p in release {
            let mut next = p.value.clone();
            owner::remove(&mut next, rs.uid());
            changed |= self.writer.update(pods, &p, next).await? != Outcome::Lost;
        }
        Ok(changed)
    }
}

impl Reconciler for Controller {
    const NAME: &'static str = "replicaset";

    fn keys(&self, change: &Change, snapshot: &Snapshot, out: &mut Vec<String>) {
        match change.resource {
            "replicasets" => {
                if let Some(o) = change.object() {
                    if change.new.is_none() {
                        self.expectations().remove(&o.key);
                    }
                    out.push(o.key.clone());
                }
            }
            "pods" => {
                let created = change.old.is_none();
                let gone = change.new.is_none()
                    || change
                        .new
                        .as_ref()
                        .is_some_and(|n| pod::is_terminating(&n.value))
                        && change
                            .old
                            .as_ref()
                            .is_some_and(|o| !pod::is_terminating(&o.value));
                for version in [&change.old, &change.new].into_iter().flatten() {
                    match Self::owner_key(snapshot, &version.value) {
                        Some(key) => {
                            if created && change.new.is_some() {
                                self.observed_add(&key);
                            }
                            if gone {
                                self.observed_delete(&key, &version.key);
                            }
                            out.push(key);
                        }
                        None if owner::controller_uid(&version.value).is_none() => {
                            // An orphan: the ReplicaSets that might adopt it.
                            let labels = meta::labels(&version.value);
                            for rs in snapshot.in_namespace("replicasets", version.namespace()) {
                                let matches =
                                    Selector::from_label_selector(&rs.value["spec"]["selector"])
                                        .is_ok_and(|s| !s.is_empty() && s.matches_labels(&labels));
                                if matches {
                                    out.push(rs.key.clone());
                                }
                            }
                        }
                        None => {}
                    }
                }
            }
            _ => {}
        }
    }

    async fn reconcile(&self, key: &str) -> Result<Action, StoreError> {
        let Some(rs) = self.cache.read(|s| s.get("replicasets", key).cloned()) else {
            self.expectations().remove(key);
            return Ok(Action::Done);
        };
        let Ok(selector) = Selector::from_label_selector(&rs.value["spec"]["selector"]) else {
            return Ok(Action::Done);
        };
        if selector.is_empty() {
            // An empty selector would claim every pod in the namespace.
            return Ok(Action::Done);
        }
        if self.claim(&rs, &selector).await? {
            // The adoptions show up as changes and bring us back.
            return Ok(Action::Done);
        }
        let active: Vec<Arc<Object>> = self.cache.read(|s| {
            s.in_namespace("pods", rs.namespace())
                .filter(|p| {
                    owner::controller_uid(&p.value) == Some(rs.uid()) && pod::is_active(&p.value)
                })
                .cloned()
                .collect()
        });
        let wanted =
            usize::try_from(rs.value["spec"]["replicas"].as_i64().unwrap_or(1).max(0)).unwrap_or(0);
        if self.expectations_met(key) && !pod::is_terminating(&rs.value) {
            if active.len() < wanted {
                let count = (wanted - active.len()).min(BURST);
                self.expect(key, i64::try_from(count).unwrap_or(0), HashSet::new());
                self.create_pods(&rs, count).await?;
            } else if active.len() > wanted {
                let mut ranked: Vec<Arc<Object>> = active.clone();
                ranked.sort_by_cached_key(|p| deletion_rank(&p.value));
                ranked.truncate((active.len() - wanted).min(BURST));
                let keys = ranked.iter().map(|p| p.key.clone()).collect();
                self.expect(key, 0, keys);
                self.delete_pods(&rs, ranked).await?;
            }
        }
        // Status from what the cache shows now.
        let values: Vec<&Value> = active.iter().map(|p| &p.value).collect();
        let (status, recheck) = status_of(&rs.value, &values, meta::now());
        if rs.value["status"] != status {
            let mut next = rs.value.clone();
            next["status"] = status;
            self.writer.update(served("ReplicaSet")?, &rs, next).await?;
        }
        Ok(match recheck {
            Some(seconds) => Action::After(Duration::from_secs(seconds)),
            None => Action::Done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "prod", "uid": "rs-uid", "generation": 3},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    #[test]
    fn pods_come_from_the_template_with_an_owner() {
        let p = pod_from_template(&rs());
        assert_eq!(p["metadata"]["generateName"], "web-abc-");
        assert_eq!(p["metadata"]["namespace"], "prod");
        assert_eq!(p["metadata"]["labels"]["app"], "web");
        assert_eq!(p["metadata"]["annotations"]["a"], "b");
        assert_eq!(owner::controller_uid(&p), Some("rs-uid"));
        assert_eq!(p["spec"]["containers"][0]["name"], "c");
    }

    #[test]
    fn status_counts_ready_and_available() {
        let ready = json!({"metadata": {"labels": {"app": "web"}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        let unready = json!({"metadata": {"labels": {}}, "status": {}});
        let (status, recheck) = status_of(&rs(), &[&ready, &unready], 1_767_225_600 + 100);
        assert_eq!(status["replicas"], 2);
        assert_eq!(status["fullyLabeledReplicas"], 1);
        assert_eq!(status["readyReplicas"], 1);
        assert_eq!(status["availableReplicas"], 1);
        assert_eq!(status["observedGeneration"], 3);
        assert_eq!(recheck, None);
        let mut slow = rs();
        slow["spec"]["minReadySeconds"] = json!(200);
        let (status, recheck) = status_of(&slow, &[&ready], 1_767_225_600 + 100);
        assert_eq!(status["availableReplicas"], 0);
        assert_eq!(recheck, Some(200));
    }

    #[test]
    fn scale_down_prefers_unscheduled_then_unready_then_newest() {
        let unscheduled = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:01Z"}, "spec": {}, "status": {"phase": "Pending"}});
        let pending = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:01Z"}, "spec": {"nodeName": "n"}, "status": {"phase": "Pending"}});
        let old_ready = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"nodeName": "n"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        let new_ready = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:09Z"}, "spec": {"nodeName": "n"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        let mut pods = [&old_ready, &new_ready, &pending, &unscheduled];
        pods.sort_by_key(|p| deletion_rank(p));
        assert_eq!(pods, [&unscheduled, &pending, &new_ready, &old_ready]);
    }
}
