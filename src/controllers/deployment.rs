//! The Deployment controller: rolls a Deployment's pods from one template to
//! the next through ReplicaSets, and reports progress so `kubectl rollout
//! status` knows when a rollout is done.
//!
//! Each template gets its own ReplicaSet, named `DEPLOYMENT-HASH` after a
//! hash of the template and labelled `pod-template-hash=HASH`; the one whose
//! hash matches the current template is the *new* ReplicaSet, the rest are
//! *old*. Revisions are counted in the `deployment.kubernetes.io/revision`
//! annotation, as Kubernetes does, so `kubectl rollout history` reads them.
//!
//! - **RollingUpdate** (kube's algorithm): scale the new ReplicaSet up while
//!   the total of all ReplicaSets' replicas stays within
//!   `replicas + maxSurge`; scale old ones down while the available pods stay
//!   at or above `replicas - maxUnavailable`, first taking down old replicas
//!   that are not available anyway. One step per reconcile; ReplicaSet
//!   status changes bring the next.
//! - **Recreate**: scale every old ReplicaSet to zero, wait until their pods
//!   are gone (terminating ones included), then scale the new one up.
//!
//! Status: replicas, updatedReplicas, readyReplicas, availableReplicas,
//! unavailableReplicas, observedGeneration, and the Available and Progressing
//! conditions (Progressing turns False with ProgressDeadlineExceeded when no
//! progress was made for `progressDeadlineSeconds`).

use super::reconciler::{Action, Reconciler};
use crate::objects::{meta, owner, pod};
use crate::store::events::{Recorder, Severity};
use crate::store::informer::{Cache, Change, Snapshot};
use crate::store::Object;
use crate::store::Outcome;
use crate::store::{served, Writer};
use crate::store::{Error as StoreError, Store};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// The label a ReplicaSet's pods carry with their template's hash.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The revision annotation on Deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// The Deployment controller.
pub struct Controller {
    writer: Writer,
    cache: Cache,
    recorder: Recorder,
}

/// A short, stable hash of a pod template (lower-case alphanumerics, as
/// Kubernetes' hashes are).
pub fn template_hash(template: &Value) -> String {
    // serde_json maps are ordered by key, so equal templates serialize alike.
    let digest = Sha256::digest(template.to_string().as_bytes());
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    digest[..10]
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// An int-or-percent (`1`, `"25%"`) of `total`, rounding up or down.
pub fn scaled_value(value: &Value, total: i64, round_up: bool) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap_or(0).max(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(percent) => {
                let product = percent.max(0) * total;
                if round_up {
                    (product + 99) / 100
                } else {
                    product / 100
                }
            }
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// (maxSurge, maxUnavailable) of a RollingUpdate Deployment with `replicas`.
pub fn surge_and_unavailable(deployment: &Value, replicas: i64) -> (i64, i64) {
    let rolling = &deployment["spec"]["strategy"]["rollingUpdate"];
    let default = json!("25%");
    let surge = scaled_value(rolling.get("maxSurge").unwrap_or(&default), replicas, true);
    let unavailable = scaled_value(
        rolling.get("maxUnavailable").unwrap_or(&default),
        replicas,
        false,
    );
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1).max(0)
}

fn status_count(obj: &Value, field: &str) -> i64 {
    obj["status"][field].as_i64().unwrap_or(0)
}

fn revision(obj: &Value) -> i64 {
    obj["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A ReplicaSet's planned size.
#[derive(Debug, Clone)]
struct Plan {
    rs: Arc<Object>,
    replicas: i64,
}

/// The Deployment controlling `obj`, if any.
fn owning_deployment<'a>(snapshot: &'a Snapshot, obj: &Value) -> Option<&'a Arc<Object>> {
    owner::controller_uid(obj)
        .and_then(|uid| snapshot.by_uid(uid))
        .filter(|o| o.value["kind"] == "Deployment")
}

/// The ReplicaSets as they are sized now.
fn plans(sets: &[Arc<Object>]) -> Vec<Plan> {
    sets.iter()
        .map(|rs| Plan {
            rs: rs.clone(),
            replicas: replicas(&rs.value),
        })
        .collect()
}

/// The new sizes of the new and old ReplicaSets for one RollingUpdate step
/// (kube's reconcileNewReplicaSet, then reconcileOldReplicaSets).
/// `old` is ordered oldest first.
fn rolling_step(deployment: &Value, new: &Plan, old: &[Plan]) -> (i64, Vec<i64>) {
    let wanted = replicas(deployment);
    let (surge, unavailable) = surge_and_unavailable(deployment, wanted);
    let all_total: i64 = new.replicas + old.iter().map(|p| p.replicas).sum::<i64>();
    // The new ReplicaSet first.
    let new_size = if new.replicas > wanted {
        wanted
    } else if new.replicas < wanted {
        let room = (wanted + surge - all_total).max(0);
        new.replicas + room.min(wanted - new.replicas)
    } else {
        new.replicas
    };
    let mut old_sizes: Vec<i64> = old.iter().map(|p| p.replicas).collect();
    if new_size != new.replicas || old_sizes.iter().all(|r| *r == 0) {
        return (new_size, old_sizes);
    }
    // Then the old ones, keeping `wanted - unavailable` available.
    let min_available = wanted - unavailable;
    let new_unavailable = new.replicas - status_count(&new.rs.value, "availableReplicas");
    let mut room = all_total - min_available - new_unavailable;
    if room <= 0 {
        return (new_size, old_sizes);
    }
    // Old replicas that are not available anyway go first.
    for (i, plan) in old.iter().enumerate() {
        let unhealthy = (old_sizes[i] - status_count(&plan.rs.value, "availableReplicas")).max(0);
        let cut = unhealthy.min(room);
        old_sizes[i] -= cut;
        room -= cut;
    }
    // Then available ones, as far as availability allows.
    let available: i64 = status_count(&new.rs.value, "availableReplicas")
        + old
            .iter()
            .zip(&old_sizes)
            .map(|(p, size)| status_count(&p.rs.value, "availableReplicas").min(*size))
            .sum::<i64>();
    let mut budget = (available - min_available).max(0);
    for size in &mut old_sizes {
        let cut = (*size).min(budget);
        *size -= cut;
        budget -= cut;
    }
    (new_size, old_sizes)
}

impl Controller {
    /// A controller writing through `ctx`, reading `cache`.
    pub fn new(ctx: Store, cache: Cache) -> Controller {
        let writer = Writer::new(ctx);
        Controller {
            recorder: Recorder::new(writer.clone(), "deployment-controller"),
            writer,
            cache,
        }
    }

    /// The new ReplicaSet for `d` (template hash `hash`, revision `revision`).
    fn new_replica_set(d: &Value, hash: &str, revision: i64, size: i64) -> Value {
        let name = format!("{}-{hash}", meta::name(d).unwrap_or("deployment"));
        let mut template = d["spec"]["template"].clone();
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = d["spec"]["selector"].clone();
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let labels = template["metadata"]["labels"].clone();
        json!({
            "metadata": {
                "name": name,
                "namespace": meta::namespace(d).unwrap_or("default"),
                "labels": labels,
                "annotations": {
                    REVISION: revision.to_string(),
                    "deployment.kubernetes.io/desired-replicas": replicas(d).to_string(),
                },
                "ownerReferences": [owner::OwnerRef::controller_of(d).to_json()],
            },
            "spec": {
                "replicas": size,
                "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
                "selector": selector,
                "template": template,
            },
        })
    }

    /// Whether any pod of the old ReplicaSets has not finished — running,
    /// starting or still terminating — as Recreate waits for (kube's
    /// `oldPodsRunning`).
    fn old_pods_running(&self, d: &Object, old: &[Arc<Object>]) -> bool {
        if old.iter().any(|rs| status_count(&rs.value, "replicas") > 0) {
            return true;
        }
        let uids: Vec<&str> = old.iter().map(|rs| rs.uid()).collect();
        self.cache.read(|s| {
            s.in_namespace("pods", d.namespace()).any(|p| {
                owner::controller_uid(&p.value).is_some_and(|u| uids.contains(&u))
                    && !matches!(pod::phase(&p.value), "Succeeded" | "Failed")
            })
        })
    }

    /// Sets a ReplicaSet's replicas; whether it was written.
    async fn scale(&self, d: &Object, rs: &Object, size: i64) -> Result<bool, StoreError> {
        if replicas(&rs.value) == size {
            return Ok(false);
        }
        let mut next = rs.value.clone();
        let from = replicas(&rs.value);
        next["spec"]["replicas"] = json!(size);
        next["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
            json!(replicas(&d.value).to_string());
        let outcome = self.writer.update(served("ReplicaSet")?, rs, next).await?;
        if outcome == Outcome::Lost {
            return Ok(false);
        }
        let verb = if size > from { "up" } else { "down" };
        let message = format!(
            "Scaled {verb} replica set {} from {from} to {size}",
            rs.name()
        );
        self.recorder
            .record(&d.value, Severity::Normal, "ScalingReplicaSet", &message)
            .await;
        Ok(true)
    }

    /// The Deployment's status from its ReplicaSets at `now`.
    fn status(d: &Value, new: Option<&Object>, all: &[Arc<Object>], now: u64) -> Value {
        let wanted = replicas(d);
        let sum =
            |field: &str| -> i64 { all.iter().map(|rs| status_count(&rs.value, field)).sum() };
        let total = sum("replicas");
        let updated = new.map_or(0, |rs| status_count(&rs.value, "replicas"));
        let available = sum("availableReplicas");
        let (_, max_unavailable) = if d["spec"]["strategy"]["type"] == "Recreate" {
            (0, 0)
        } else {
            surge_and_unavailable(d, wanted)
        };
        let mut status = json!({
            "observedGeneration": d["metadata"]["generation"].as_i64().unwrap_or(1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": sum("readyReplicas"),
            "availableReplicas": available,
            "unavailableReplicas": (wanted - available).max(0),
        });
        let mut holder = json!({"status": {"conditions": d["status"]["conditions"].clone()}});
        let is_available = available >= wanted - max_unavailable;
        let (a_status, a_reason, a_message) = if is_available {
            (
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        } else {
            (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        };
        pod::set_condition(&mut holder, "Available", a_status, a_reason, a_message, now);
        let new_name = new.map_or("", |rs| rs.name());
        let complete =
            new.is_some() && updated == wanted && available >= wanted && total == updated;
        let previous = &d["status"];
        let progressed = previous["updatedReplicas"].as_i64() != Some(updated)
            || previous["availableReplicas"].as_i64() != Some(available)
            || previous["observedGeneration"] != status["observedGeneration"];
        let deadline = d["spec"]["progressDeadlineSeconds"].as_i64().unwrap_or(600);
        let last_update = pod::list(&d["status"], "conditions")
            .iter()
            .find(|c| c["type"] == "Progressing")
            .and_then(|c| c["lastUpdateTime"].as_str())
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(now, |d| d.as_secs());
        let stalled =
            !complete && !progressed && now.saturating_sub(last_update) > deadline.unsigned_abs();
        let (p_status, p_reason, p_message) = if complete {
            (
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            )
        } else if stalled {
            (
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new_name}\" has timed out progressing."),
            )
        } else {
            (
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{new_name}\" is progressing."),
            )
        };
        let changed = pod::set_condition(
            &mut holder,
            "Progressing",
            p_status,
            p_reason,
            &p_message,
            now,
        );
        if let Some(conditions) = holder["status"]["conditions"].as_array_mut() {
            for c in conditions.iter_mut() {
                let refresh = c["type"] == "Progressing" && (changed || progressed)
                    || c.get("lastUpdateTime").is_none();
                if refresh {
                    c["lastUpdateTime"] = json!(meta::timestamp(now));
                }
            }
        }
        status["conditions"] = holder["status"]["conditions"].take();
        status
    }
}

impl Reconciler for Controller {
    const NAME: &'static str = "deployment";

    fn keys(&self, change: &Change, snapshot: &Snapshot, out: &mut Vec<String>) {
        match change.resource {
            "deployments" => out.extend(change.object().map(|o| o.key.clone())),
            "replicasets" => {
                for version in [&change.old, &change.new].into_iter().flatten() {
                    if let Some(owner) = owning_deployment(snapshot, &version.value) {
                        out.push(owner.key.clone());
                    }
                }
            }
            // A pod gone lets a Recreate rollout go on.
            "pods" if change.new.is_none() => {
                let deployment = change
                    .old
                    .as_ref()
                    .and_then(|p| owner::controller_uid(&p.value))
                    .and_then(|uid| snapshot.by_uid(uid))
                    .and_then(|rs| owning_deployment(snapshot, &rs.value));
                out.extend(deployment.map(|d| d.key.clone()));
            }
            _ => {}
        }
    }

    async fn reconcile(&self, key: &str) -> Result<Action, StoreError> {
        let Some(d) = self.cache.read(|s| s.get("deployments", key).cloned()) else {
            return Ok(Action::Done);
        };
        if pod::is_terminating(&d.value) {
            return Ok(Action::Done);
        }
        let mut all: Vec<Arc<Object>> = self.cache.read(|s| {
            s.in_namespace("replicasets", d.namespace())
                .filter(|rs| owner::controller_uid(&rs.value) == Some(d.uid()))
                .cloned()
                .collect()
        });
        all.sort_by_key(|rs| {
            (
                revision(&rs.value),
                meta::meta_str(&rs.value, "creationTimestamp")
                    .unwrap_or("")
                    .to_owned(),
            )
        });
        let hash = template_hash(&d.value["spec"]["template"]);
        let new = all
            .iter()
            .find(|rs| rs.value["metadata"]["labels"][HASH_LABEL] == hash.as_str())
            .cloned();
        let old: Vec<Arc<Object>> = all
            .iter()
            .filter(|rs| new.as_ref().is_none_or(|n| n.key != rs.key))
            .cloned()
            .collect();
        let max_revision = all.iter().map(|rs| revision(&rs.value)).max().unwrap_or(0);
        let paused = d.value["spec"]["paused"].as_bool().unwrap_or(false);
        let recreate = d.value["spec"]["strategy"]["type"] == "Recreate";

        if !paused {
            let Some(new) = &new else {
                // A new template: its ReplicaSet starts at the size the
                // strategy allows right now.
                let size = if recreate {
                    if old.iter().any(|rs| {
                        status_count(&rs.value, "replicas") > 0 || replicas(&rs.value) > 0
                    }) {
                        0
                    } else {
                        replicas(&d.value)
                    }
                } else {
                    let placeholder = Arc::new(Object {
                        key: String::new(),
                        value: json!({}),
                        revision: 0,
                    });
                    rolling_step(
                        &d.value,
                        &Plan {
                            rs: placeholder,
                            replicas: 0,
                        },
                        &plans(&old),
                    )
                    .0
                };
                let rs = Self::new_replica_set(&d.value, &hash, max_revision + 1, size);
                if let Some(created) = self.writer.create(served("ReplicaSet")?, rs).await? {
                    let message = format!(
                        "Scaled up replica set {} from 0 to {size}",
                        meta::name(&created).unwrap_or("")
                    );
                    self.recorder
                        .record(&d.value, Severity::Normal, "ScalingReplicaSet", &message)
                        .await;
                }
                return Ok(Action::Done);
            };
            // Rolling back to an old template makes its ReplicaSet the newest revision.
            if revision(&new.value) < max_revision {
                let mut next = new.value.clone();
                next["metadata"]["annotations"][REVISION] = json!((max_revision + 1).to_string());
                self.writer.update(served("ReplicaSet")?, new, next).await?;
                return Ok(Action::Done);
            }
            let scaled = if recreate {
                let mut any = false;
                for rs in &old {
                    any |= self.scale(&d, rs, 0).await?;
                }
                if !any && !self.old_pods_running(&d, &old) {
                    any |= self.scale(&d, new, replicas(&d.value)).await?;
                }
                any
            } else {
                let new_plan = Plan {
                    rs: new.clone(),
                    replicas: replicas(&new.value),
                };
                let (new_size, old_sizes) = rolling_step(&d.value, &new_plan, &plans(&old));
                let mut any = self.scale(&d, new, new_size).await?;
                for (rs, size) in old.iter().zip(old_sizes) {
                    any |= self.scale(&d, rs, size).await?;
                }
                any
            };
            if scaled {
                return Ok(Action::Done);
            }
            // Old ReplicaSets beyond the history limit go, once empty.
            let limit = usize::try_from(
                d.value["spec"]["revisionHistoryLimit"]
                    .as_i64()
                    .unwrap_or(10)
                    .max(0),
            )
            .unwrap_or(10);
            let empty: Vec<&Arc<Object>> = old
                .iter()
                .filter(|rs| replicas(&rs.value) == 0 && status_count(&rs.value, "replicas") == 0)
                .collect();
            if empty.len() > limit {
                for rs in &empty[..empty.len() - limit] {
                    self.writer.delete(served("ReplicaSet")?, rs).await?;
                }
            }
        }

        let status = Self::status(&d.value, new.as_deref(), &all, meta::now());
        let new_revision = new.as_ref().map(|rs| revision(&rs.value).to_string());
        let annotation = d.value["metadata"]["annotations"][REVISION]
            .as_str()
            .map(str::to_owned);
        if d.value["status"] != status || (new_revision.is_some() && annotation != new_revision) {
            let mut next = d.value.clone();
            next["status"] = status;
            if let Some(rev) = new_revision {
                next["metadata"]["annotations"][REVISION] = json!(rev);
            }
            self.writer.update(served("Deployment")?, &d, next).await?;
        }
        // Re-check the progress deadline while a rollout is under way.
        let done = d.value["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Progressing" && c["reason"] == "NewReplicaSetAvailable")
            });
        Ok(if done {
            Action::Done
        } else {
            Action::After(Duration::from_secs(10))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i64, surge: Value, unavailable: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "uid": "d", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    fn rs(spec: i64, available: i64) -> Plan {
        Plan {
            rs: Arc::new(Object {
                key: String::new(),
                value: json!({"spec": {"replicas": spec}, "status": {"replicas": spec, "availableReplicas": available}}),
                revision: 1,
            }),
            replicas: spec,
        }
    }

    #[test]
    fn percentages_round_like_kubernetes() {
        assert_eq!(scaled_value(&json!("25%"), 9, true), 3);
        assert_eq!(scaled_value(&json!("25%"), 9, false), 2);
        assert_eq!(scaled_value(&json!(2), 9, false), 2);
        let d = deployment(9, json!(0), json!(0));
        assert_eq!(
            surge_and_unavailable(&d, 9),
            (0, 1),
            "both zero means one unavailable"
        );
    }

    #[test]
    fn rolling_update_surges_then_scales_old_down() {
        let d = deployment(4, json!(1), json!(0));
        // Start: old has 4 available, new 0. Surge one new pod.
        let (new, old) = rolling_step(&d, &rs(0, 0), &[rs(4, 4)]);
        assert_eq!((new, old.clone()), (1, vec![4]));
        // The new pod is not available yet: the old may not shrink.
        let (new, old) = rolling_step(&d, &rs(1, 0), &[rs(4, 4)]);
        assert_eq!((new, old), (1, vec![4]));
        // Once it is, one old pod goes.
        let (new, old) = rolling_step(&d, &rs(1, 1), &[rs(4, 4)]);
        assert_eq!((new, old), (1, vec![3]));
        // ...and the next new pod can surge.
        let (new, old) = rolling_step(&d, &rs(1, 1), &[rs(3, 3)]);
        assert_eq!((new, old), (2, vec![3]));
    }

    #[test]
    fn rolling_update_never_exceeds_surge_nor_unavailability() {
        // Simulate a whole rollout where pods become available at once.
        for (replicas, surge, unavailable) in [(9, 3, 2), (4, 1, 0), (3, 0, 1), (15, 4, 3)] {
            let d = deployment(replicas, json!(surge), json!(unavailable));
            let (mut new, mut old) = (0i64, replicas);
            for _ in 0..100 {
                if new == replicas && old == 0 {
                    break;
                }
                let (n, o) = rolling_step(&d, &rs(new, new), &[rs(old, old)]);
                assert!(n + o[0] <= replicas + surge, "surge exceeded");
                assert!(
                    n.min(new) + o[0] >= replicas - unavailable,
                    "too few available"
                );
                (new, old) = (n, o[0]);
            }
            assert_eq!((new, old), (replicas, 0), "rollout of {replicas} finished");
        }
    }

    #[test]
    fn hashes_are_stable_and_differ_per_template() {
        let a = template_hash(&json!({"spec": {"containers": [{"image": "a"}]}}));
        assert_eq!(
            a,
            template_hash(&json!({"spec": {"containers": [{"image": "a"}]}}))
        );
        assert_ne!(
            a,
            template_hash(&json!({"spec": {"containers": [{"image": "b"}]}}))
        );
        assert_eq!(a.len(), 10);
    }

    #[test]
    fn status_reports_completion() {
        let d = deployment(2, json!(1), json!(0));
        let new = Arc::new(Object {
            key: "k".into(),
            value: json!({"metadata": {"name": "web-x"}, "spec": {"replicas": 2},
            "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}}),
            revision: 1,
        });
        let status = Controller::status(&d, Some(&new), std::slice::from_ref(&new), 1000);
        assert_eq!(status["updatedReplicas"], 2);
        assert_eq!(status["availableReplicas"], 2);
        assert_eq!(status["observedGeneration"], 2);
        let progressing = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(progressing["reason"], "NewReplicaSetAvailable");
    }
}
