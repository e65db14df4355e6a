//! The garbage collector: dependents follow their owners.
//!
//! - **Background** (the default): a dependent none of whose owners exist
//!   any more is deleted. The informer's cache is one consistent revision,
//!   so "no object has this uid" means the owner is really gone, not that
//!   the cache has not seen it yet.
//! - **Foreground**: an owner marked for deletion with the
//!   `foregroundDeletion` finalizer has its dependents deleted (themselves
//!   in the foreground, so a Deployment waits for its pods too); once none
//!   is left, the finalizer is removed and the owner deleted.
//! - **Orphan**: an owner with the `orphan` finalizer has its dependents'
//!   references to it removed, then the finalizer, then the owner.
//! - An object marked for deletion with no finalizers left is removed
//!   (pods bound to a node excepted: their agent confirms, or the pod reaper
//!   removes them when their grace period runs out).
//!
//! It also removes Events older than [`crate::store::events::TTL`].

use super::reconciler::{self, Action, Reconciler};
use crate::objects::{meta, owner, pod, registry, Resource};
use crate::store::informer::{Cache, Change, Snapshot};
use crate::store::Object;
use crate::store::Writer;
use crate::store::{Error as StoreError, Store};
use flotilla_storage::{Op, Request, Target};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often old events are looked for.
const EVENT_SWEEP: Duration = Duration::from_secs(60);

/// The garbage collector.
pub struct Controller {
    writer: Writer,
    cache: Cache,
    /// Owner uid → its dependents' (resource, key).
    dependents: Mutex<HashMap<String, HashSet<(&'static str, String)>>>,
}

/// A work item: `RESOURCE KEY`.
fn item(resource: &str, key: &str) -> String {
    format!("{resource} {key}")
}

fn resource_of(plural: &str) -> Result<&'static Resource, StoreError> {
    registry::RESOURCES
        .iter()
        .find(|r| r.plural == plural)
        .ok_or_else(|| StoreError::Unserved(plural.to_owned()))
}

fn finalizers(obj: &Value) -> Vec<&str> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

impl Controller {
    /// A collector writing through `ctx`, reading `cache`.
    pub fn new(ctx: Store, cache: Cache) -> Controller {
        Controller {
            writer: Writer::new(ctx),
            cache,
            dependents: Mutex::new(HashMap::new()),
        }
    }

    fn index(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<(&'static str, String)>>> {
        self.dependents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn dependents_of(&self, uid: &str) -> Vec<(&'static str, String)> {
        self.index()
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Removes `finalizer` from `obj`; deletes it when none is left.
    async fn finish(
        &self,
        resource: &'static Resource,
        obj: &Object,
        finalizer: &str,
    ) -> Result<(), StoreError> {
        let mut next = obj.value.clone();
        let left: Vec<Value> = finalizers(&obj.value)
            .into_iter()
            .filter(|f| *f != finalizer)
            .map(|f| json!(f))
            .collect();
        if left.is_empty() && !(resource.kind == "Pod" && pod::node_name(&obj.value).is_some()) {
            self.writer.remove(resource, obj).await?;
        } else {
            next["metadata"]["finalizers"] = Value::Array(left);
            self.writer.update(resource, obj, next).await?;
        }
        Ok(())
    }

    /// Deletes a dependent of an owner deleted in the foreground.
    async fn delete_in_foreground(
        &self,
        resource: &'static Resource,
        dep: &Object,
    ) -> Result<(), StoreError> {
        if resource.kind == "Pod" || pod::is_terminating(&dep.value) {
            self.writer.delete(resource, dep).await?;
            return Ok(());
        }
        let mut next = dep.value.clone();
        next["metadata"]["deletionTimestamp"] = json!(meta::timestamp(meta::now()));
        next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        let mut list: Vec<Value> = finalizers(&dep.value)
            .into_iter()
            .map(|f| json!(f))
            .collect();
        if !list.iter().any(|f| f == owner::FOREGROUND) {
            list.push(json!(owner::FOREGROUND));
        }
        next["metadata"]["finalizers"] = Value::Array(list);
        self.writer.update(resource, dep, next).await?;
        Ok(())
    }
}

impl Reconciler for Controller {
    const NAME: &'static str = "garbage-collector";
    const WORKERS: usize = 2;

    fn keys(&self, change: &Change, _snapshot: &Snapshot, out: &mut Vec<String>) {
        let resource = change.resource;
        // Keep the owner → dependents index.
        {
            let mut index = self.index();
            if let Some(old) = &change.old {
                for r in owner::references(&old.value) {
                    if let Some(set) = index.get_mut(&r.uid) {
                        set.remove(&(resource, old.key.clone()));
                        if set.is_empty() {
                            index.remove(&r.uid);
                        }
                    }
                }
            }
            if let Some(new) = &change.new {
                for r in owner::references(&new.value) {
                    index
                        .entry(r.uid)
                        .or_default()
                        .insert((resource, new.key.clone()));
                }
            }
        }
        match (&change.old, &change.new) {
            (_, Some(new)) => {
                if !owner::references(&new.value).is_empty() || pod::is_terminating(&new.value) {
                    out.push(item(resource, &new.key));
                }
                // A dependent changing may let a waiting owner finish.
                if let Some(old) = &change.old {
                    for r in owner::references(&old.value) {
                        out.push(format!("uid {}", r.uid));
                    }
                }
            }
            (Some(old), None) => {
                // The dependents of the removed object, and its owners
                // (a foreground owner may now have none left).
                for (r, key) in self.dependents_of(old.uid()) {
                    out.push(item(r, &key));
                }
                for r in owner::references(&old.value) {
                    out.push(format!("uid {}", r.uid));
                }
            }
            (None, None) => {}
        }
    }

    async fn reconcile(&self, work: &str) -> Result<Action, StoreError> {
        let Some((kind, rest)) = work.split_once(' ') else {
            return Ok(Action::Done);
        };
        let target = self.cache.read(|s| {
            if kind == "uid" {
                s.by_uid(rest).map(|o| (o.clone(), resource_for(&o.key)))
            } else {
                s.get(kind, rest).map(|o| (o.clone(), resource_for(&o.key)))
            }
        });
        let Some((obj, Some(plural))) = target else {
            return Ok(Action::Done);
        };
        let resource = resource_of(plural)?;

        // 1. Owners marked for deletion work off their finalizers.
        if pod::is_terminating(&obj.value) {
            let list = finalizers(&obj.value);
            let dependents = self.dependents_of(obj.uid());
            if list.contains(&owner::ORPHAN) {
                for (r, key) in &dependents {
                    let dep = self.cache.read(|s| s.get(r, key).cloned());
                    if let Some(dep) = dep {
                        let mut next = dep.value.clone();
                        if owner::remove(&mut next, obj.uid()) {
                            self.writer.update(resource_of(r)?, &dep, next).await?;
                        }
                    }
                }
                if dependents.is_empty() {
                    self.finish(resource, &obj, owner::ORPHAN).await?;
                }
                return Ok(Action::Done);
            }
            if list.contains(&owner::FOREGROUND) {
                for (r, key) in &dependents {
                    let dep = self.cache.read(|s| s.get(r, key).cloned());
                    if let Some(dep) = dep {
                        self.delete_in_foreground(resource_of(r)?, &dep).await?;
                    }
                }
                if dependents.is_empty() {
                    self.finish(resource, &obj, owner::FOREGROUND).await?;
                }
                return Ok(Action::Done);
            }
            let bound_pod = resource.kind == "Pod" && pod::node_name(&obj.value).is_some();
            if list.is_empty() && !bound_pod {
                self.writer.remove(resource, &obj).await?;
                return Ok(Action::Done);
            }
        }

        // 2. Dependents whose owners are all gone follow them.
        let refs = owner::references(&obj.value);
        if refs.is_empty() || pod::is_terminating(&obj.value) {
            return Ok(Action::Done);
        }
        let (orphaned, foreground) = self.cache.read(|s| {
            let alive: Vec<&Arc<Object>> = refs.iter().filter_map(|r| s.by_uid(&r.uid)).collect();
            let foreground = alive.iter().any(|o| {
                pod::is_terminating(&o.value) && finalizers(&o.value).contains(&owner::FOREGROUND)
            });
            (alive.is_empty(), foreground)
        });
        if orphaned {
            tracing::debug!(object = %obj.key, "owner gone: deleting the dependent");
            self.writer.delete(resource, &obj).await?;
        } else if foreground {
            self.delete_in_foreground(resource, &obj).await?;
        }
        Ok(Action::Done)
    }
}

/// The watched resource plural of a storage key.
fn resource_for(key: &str) -> Option<&'static str> {
    let rest = key.strip_prefix("/registry/")?;
    let plural = rest.split('/').next()?;
    crate::store::informer::WATCHED
        .iter()
        .copied()
        .find(|w| *w == plural)
}

/// Runs the collector and the event sweeper until `stop`.
pub async fn run(
    ctx: Store,
    cache: Cache,
    feed: mpsc::UnboundedReceiver<Arc<Vec<Change>>>,
    stop: CancellationToken,
) {
    let collector = Arc::new(Controller::new(ctx.clone(), cache.clone()));
    let sweeper = sweep_events(ctx, stop.clone());
    tokio::join!(reconciler::drive(collector, cache, feed, stop), sweeper);
}

/// Removes events whose last occurrence is older than the TTL, every minute.
async fn sweep_events(ctx: Store, stop: CancellationToken) {
    let mut tick = tokio::time::interval(EVENT_SWEEP);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let cutoff = SystemTime::now()
            .checked_sub(crate::store::events::TTL)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let Ok(read) = ctx.node().engine().range(b"/registry/events/", 0, None) else {
            continue;
        };
        for kv in read.value.kvs {
            let Ok(event) = serde_json::from_slice::<Value>(&kv.value) else {
                continue;
            };
            let last = event["lastTimestamp"]
                .as_str()
                .or_else(|| event["metadata"]["creationTimestamp"].as_str())
                .and_then(|t| humantime::parse_rfc3339(t).ok());
            if last.is_none_or(|t| t >= cutoff) {
                continue;
            }
            let request = Request {
                id: None,
                command: crate::store::txn::when(
                    kv.key.clone(),
                    Target::ModRevision(kv.mod_revision),
                    Op::Delete {
                        key: kv.key.clone(),
                    },
                ),
            };
            if stop.is_cancelled() || ctx.node().write(request).await.is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_watched_resources() {
        assert_eq!(resource_for("/registry/pods/default/p"), Some("pods"));
        assert_eq!(
            resource_for("/registry/replicasets/ns/r"),
            Some("replicasets")
        );
        assert_eq!(resource_for("/registry/events/ns/e"), None);
        assert_eq!(
            item("pods", "/registry/pods/a/b"),
            "pods /registry/pods/a/b"
        );
    }
}
