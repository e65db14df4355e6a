//! The leader's view of the cluster: objects listed from the local store,
//! then kept current from its watch history (through a [`Cursor`]), shared
//! by every control loop and the scheduler.
//!
//! The loops run on the Raft leader, whose local store holds everything
//! committed once the read barrier has passed. So instead of a watch over
//! HTTP, the informer reads the store directly: it waits for the barrier,
//! lists every watched resource at one revision, and then applies the store's
//! events after that revision, batch by batch. The cache is therefore always
//! the exact state at [`Snapshot::revision`] — never a mix of two revisions —
//! which the garbage collector relies on ("no owner with this uid exists").
//!
//! Each loop subscribes and receives every batch of [`Change`]s; it maps them
//! to the keys it reconciles. When history was compacted under the informer
//! (it fell far behind), it lists again and reports the difference as changes.

use super::{Object, Store};
use flotilla_storage::{EventKind, Revision};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The resources (plurals) the control loops watch.
pub const WATCHED: &[&str] = &[
    "namespaces",
    "nodes",
    "leases",
    "pods",
    "services",
    "endpoints",
    "replicasets",
    "deployments",
];

/// Events read from the store per round.
const BATCH: usize = 2000;
/// How long the informer waits for the read barrier at start.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(10);

/// A change to one object.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resource's plural ("pods").
    pub resource: &'static str,
    /// The object before (None when created).
    pub old: Option<Arc<Object>>,
    /// The object after (None when deleted).
    pub new: Option<Arc<Object>>,
}

impl Change {
    /// The object after the change, or the deleted one.
    pub fn object(&self) -> Option<&Arc<Object>> {
        self.new.as_ref().or(self.old.as_ref())
    }
}

/// The cache at one revision.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The store revision every object here is current at.
    pub revision: Revision,
    /// Objects by resource plural, then by storage key.
    objects: HashMap<&'static str, BTreeMap<String, Arc<Object>>>,
    /// Every object's uid, for owner lookups: uid → (plural, key).
    uids: HashMap<String, (&'static str, String)>,
}

impl Snapshot {
    /// All objects of `resource`, in key order.
    pub fn all(&self, resource: &str) -> impl Iterator<Item = &Arc<Object>> {
        self.objects
            .get(resource)
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// Objects of `resource` in `namespace`.
    pub fn in_namespace<'a>(
        &'a self,
        resource: &'a str,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Object>> + 'a {
        let prefix = format!("/registry/{resource}/{namespace}/");
        self.objects.get(resource).into_iter().flat_map(move |m| {
            m.range(prefix.clone()..)
                .take_while({
                    let prefix = prefix.clone();
                    move |(k, _)| k.starts_with(&prefix)
                })
                .map(|(_, v)| v)
        })
    }

    /// One object by storage key.
    pub fn get(&self, resource: &str, key: &str) -> Option<&Arc<Object>> {
        self.objects.get(resource)?.get(key)
    }

    /// Whether an object with `uid` exists.
    pub fn uid_exists(&self, uid: &str) -> bool {
        self.uids.contains_key(uid)
    }

    /// The object with `uid`, if it exists.
    pub fn by_uid(&self, uid: &str) -> Option<&Arc<Object>> {
        let (resource, key) = self.uids.get(uid)?;
        self.get(resource, key)
    }

    /// Number of objects of `resource`.
    pub fn count(&self, resource: &str) -> usize {
        self.objects.get(resource).map_or(0, BTreeMap::len)
    }

    fn insert(&mut self, resource: &'static str, object: Arc<Object>) -> Option<Arc<Object>> {
        let uid = object.uid().to_owned();
        let key = object.key.clone();
        let old = self
            .objects
            .entry(resource)
            .or_default()
            .insert(key.clone(), object);
        if let Some(old) = &old {
            if old.uid() != uid {
                self.uids.remove(old.uid());
            }
        }
        if !uid.is_empty() {
            self.uids.insert(uid, (resource, key));
        }
        old
    }

    fn remove(&mut self, resource: &'static str, key: &str) -> Option<Arc<Object>> {
        let old = self.objects.get_mut(resource)?.remove(key)?;
        self.uids.remove(old.uid());
        Some(old)
    }
}

/// The shared cache; loops read it, the informer task writes it.
#[derive(Clone, Default)]
pub struct Cache(Arc<RwLock<Snapshot>>);

impl Cache {
    /// Runs `f` on the current snapshot. Never hold the result across an
    /// await: copy out what is needed.
    pub fn read<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        let guard = self.0.read().unwrap_or_else(PoisonError::into_inner);
        f(&guard)
    }

    fn write<T>(&self, f: impl FnOnce(&mut Snapshot) -> T) -> T {
        let mut guard = self.0.write().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}

/// The resource plural of a storage key, if it is watched.
fn resource_of(key: &[u8]) -> Option<&'static str> {
    let rest = key.strip_prefix(b"/registry/")?;
    let end = rest.iter().position(|b| *b == b'/')?;
    let plural = &rest[..end];
    WATCHED.iter().copied().find(|w| w.as_bytes() == plural)
}

fn decode(key: &[u8], value: &[u8], revision: Revision) -> Option<Arc<Object>> {
    Object::decode_at(key, value, revision).ok().map(Arc::new)
}

/// Subscribers to the change feed.
type Subscribers = Vec<mpsc::UnboundedSender<Arc<Vec<Change>>>>;

/// Builds the cache and feeds changes to subscribers.
pub struct Informer {
    cache: Cache,
    subscribers: Subscribers,
    synced: tokio::sync::watch::Sender<bool>,
}

impl Default for Informer {
    fn default() -> Self {
        Informer::new()
    }
}

impl Informer {
    /// An informer with an empty cache.
    pub fn new() -> Informer {
        Informer {
            cache: Cache::default(),
            subscribers: Vec::new(),
            synced: tokio::sync::watch::channel(false).0,
        }
    }

    /// The cache the informer keeps.
    pub fn cache(&self) -> Cache {
        self.cache.clone()
    }

    /// A feed of every batch of changes after the initial list (the initial
    /// objects arrive as one batch of creations).
    pub fn subscribe(&mut self) -> mpsc::UnboundedReceiver<Arc<Vec<Change>>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.push(tx);
        rx
    }

    /// Becomes true once the initial list is in the cache.
    pub fn synced(&self) -> tokio::sync::watch::Receiver<bool> {
        self.synced.subscribe()
    }

    fn publish(&mut self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let batch = Arc::new(changes);
        self.subscribers.retain(|s| s.send(batch.clone()).is_ok());
    }

    /// Lists everything watched at the store's current revision and makes
    /// that the cache, returning the differences from what it held.
    fn relist(&mut self, store: &Store) -> Result<Revision, flotilla_storage::Error> {
        let engine = store.engine();
        let revision = engine.revision();
        let mut fresh = Snapshot {
            revision,
            ..Snapshot::default()
        };
        for resource in WATCHED {
            let prefix = format!("/registry/{resource}/");
            let read = engine.range(prefix.as_bytes(), 0, Some(revision))?;
            for kv in read.value.kvs {
                if let Some(object) = decode(&kv.key, &kv.value, kv.mod_revision) {
                    fresh.insert(resource, object);
                }
            }
        }
        let mut changes = Vec::new();
        self.cache.write(|old| {
            for resource in WATCHED {
                let before = old.objects.remove(resource).unwrap_or_default();
                let after = fresh.objects.get(resource).cloned().unwrap_or_default();
                for (key, object) in &after {
                    match before.get(key) {
                        Some(previous) if previous.revision == object.revision => {}
                        previous => changes.push(Change {
                            resource,
                            old: previous.cloned(),
                            new: Some(object.clone()),
                        }),
                    }
                }
                for (key, object) in &before {
                    if !after.contains_key(key) {
                        changes.push(Change {
                            resource,
                            old: Some(object.clone()),
                            new: None,
                        });
                    }
                }
            }
            *old = fresh;
        });
        self.publish(changes);
        Ok(revision)
    }

    /// Applies one batch of the store's events to the cache, which is then
    /// current at the revision the cursor has reached.
    fn apply(&mut self, events: &[flotilla_storage::Event], through: Revision) {
        // Decode outside the lock, so readers wait only for the inserts.
        let decoded: Vec<(&'static str, String, Option<Arc<Object>>)> = events
            .iter()
            .filter_map(|event| {
                let resource = resource_of(&event.kv.key)?;
                let key = String::from_utf8_lossy(&event.kv.key).into_owned();
                let object = match event.kind {
                    EventKind::Put => Some(decode(
                        &event.kv.key,
                        &event.kv.value,
                        event.kv.mod_revision,
                    )?),
                    EventKind::Delete => None,
                };
                Some((resource, key, object))
            })
            .collect();
        let mut changes = Vec::with_capacity(decoded.len());
        self.cache.write(|snapshot| {
            for (resource, key, object) in decoded {
                match object {
                    Some(object) => {
                        let old = snapshot.insert(resource, object.clone());
                        changes.push(Change {
                            resource,
                            old,
                            new: Some(object),
                        });
                    }
                    None => {
                        if let Some(old) = snapshot.remove(resource, &key) {
                            changes.push(Change {
                                resource,
                                old: Some(old),
                                new: None,
                            });
                        }
                    }
                }
            }
            snapshot.revision = through;
        });
        self.publish(changes);
    }

    /// Lists, then follows the store until `stop`.
    pub async fn run(mut self, store: Store, stop: CancellationToken) {
        // Everything committed before this term must be applied before the
        // first list, or the loops would act on a stale view.
        loop {
            match store.node().read_barrier(BARRIER_TIMEOUT).await {
                Ok(()) => break,
                Err(e) => tracing::warn!("informer: waiting for the read barrier: {e}"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        let mut listed = match self.relist(&store) {
            Ok(revision) => revision,
            Err(e) => {
                tracing::error!("informer: initial list failed: {e}");
                return;
            }
        };
        self.synced.send_replace(true);
        loop {
            let mut cursor = store.cursor(&b"/registry/"[..], listed).with_batch(BATCH);
            loop {
                let events = tokio::select! {
                    events = cursor.next() => events,
                    () = stop.cancelled() => return,
                };
                match events {
                    Ok(events) => self.apply(&events, cursor.position()),
                    Err(super::Error::Compacted { .. }) => break,
                    Err(e) => {
                        tracing::error!("informer: reading the store failed: {e}");
                        return;
                    }
                }
            }
            tracing::warn!("informer: history compacted under it; listing again");
            listed = match self.relist(&store) {
                Ok(revision) => revision,
                Err(e) => {
                    tracing::error!("informer: list failed: {e}");
                    return;
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(key: &str, uid: &str, revision: Revision) -> Arc<Object> {
        Arc::new(Object {
            key: key.into(),
            value: json!({"metadata": {"uid": uid, "name": key.rsplit('/').next()}}),
            revision,
        })
    }

    #[test]
    fn snapshot_indexes_by_namespace_and_uid() {
        let mut s = Snapshot::default();
        s.insert("pods", object("/registry/pods/a/p1", "u1", 2));
        s.insert("pods", object("/registry/pods/ab/p2", "u2", 3));
        s.insert("pods", object("/registry/pods/a/p3", "u3", 4));
        let in_a: Vec<&str> = s.in_namespace("pods", "a").map(|o| o.name()).collect();
        assert_eq!(in_a, ["p1", "p3"]);
        assert!(s.uid_exists("u2"));
        s.remove("pods", "/registry/pods/ab/p2");
        assert!(!s.uid_exists("u2"));
        // A key reused by a new object (new uid) forgets the old uid.
        s.insert("pods", object("/registry/pods/a/p1", "u9", 5));
        assert!(!s.uid_exists("u1") && s.uid_exists("u9"));
        assert_eq!(s.count("pods"), 2);
    }

    #[test]
    fn keys_map_to_watched_resources() {
        assert_eq!(resource_of(b"/registry/pods/default/x"), Some("pods"));
        assert_eq!(resource_of(b"/registry/nodes/n1"), Some("nodes"));
        assert_eq!(resource_of(b"/registry/events/default/x"), None);
        assert_eq!(resource_of(b"/flotilla/tokens/x"), None);
    }
}
