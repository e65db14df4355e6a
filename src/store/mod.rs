//! The object store: every component's one way to read and write
//! Kubernetes objects (kube-apiserver's generic `registry.Store`).
//!
//! It sits on the replicated store ([`flotilla_raft::Node`]) and below
//! everything that handles objects: the HTTP API ([`crate::api`]), the
//! leader's control loops ([`crate::controllers`], [`crate::scheduler`]).
//! It knows resources ([`crate::objects`]) but nothing of HTTP: no URIs, no
//! headers, no status codes. Its errors are typed ([`Error`]); the API maps
//! them to a `Status` in one place.
//!
//! - Reads: [`Store::get`], [`Store::list`] from this member's state, after
//!   [`Store::barrier`] when they must be linearizable; [`Cursor`] follows the
//!   history from a revision (every watch is one).
//! - Writes, each one pipeline for every kind: [`Store::create`],
//!   [`Store::guaranteed_update`] (read, change, compare-and-swap, retry),
//!   [`Store::replace`] (a control loop's update of what it read),
//!   [`Store::delete`] and [`Store::remove`]. They default and validate
//!   through the kind's rules, set server metadata, and take or release the
//!   kind's claims (cluster IPs, node ports, a node's credential) in the
//!   same transaction as the object, so nothing is ever half-written.
//! - Writes go to the leader: elsewhere they fail with [`Error::NotLeader`].
//!   A write carrying a client's request id returns, when retried, exactly
//!   the outcome of the attempt that took effect ([`WriteOptions`]).

mod cursor;
mod deletion;
mod error;
pub mod events;
pub mod informer;
mod object;
pub mod settings;
pub mod txn;
mod writer;

pub use cursor::{Cursor, DEFAULT_BATCH};
pub use deletion::{deletion, Deletion};
pub use error::{Error, Result};
pub use object::Object;
pub use writer::{served, Writer};

use crate::objects::{meta, registry, service, Claim, Resource};
use flotilla_raft::{Node, WriteError};
use flotilla_storage::{Command, Engine, EventKind, Response, Revision};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use txn::Swap;

/// How long a write may wait to commit before its outcome is called unknown.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a linearizable read may wait for the read barrier.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a write is retried when another writer (a controller updating
/// status, say) changed the object between its read and its write. A request
/// without a resourceVersion precondition has nothing to conflict with, so it
/// retries — as kube-apiserver's GuaranteedUpdate does.
pub const RACE_RETRIES: usize = 64;
/// Random cluster IPs / node ports tried before a create gives up.
const ALLOCATION_ATTEMPTS: usize = 8;

/// Read consistency.
#[derive(serde::Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Sees every write acknowledged before the read began (the default).
    #[default]
    Linearizable,
    /// This member's local state, possibly stale.
    Serializable,
}

/// How a compare-and-swap went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied at this revision.
    Done(Revision),
    /// The object (or a claim, or the namespace) was not as expected.
    Lost,
}

/// Options of one write.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// The client's idempotency key. Every attempt of the write carries it
    /// (the storage engine remembers only attempts that changed the store),
    /// so a retried request finds the attempt that took effect and answers
    /// with what it stored.
    pub request_id: Option<[u8; 16]>,
}

impl WriteOptions {
    /// The options of one member of a collection write (a DELETE of a
    /// collection): its own key, derived from the request's and the
    /// object's, so a retried collection write maps each object onto its
    /// own first attempt whatever else changed meanwhile.
    pub fn for_member(&self, key: &str) -> WriteOptions {
        use sha2::Digest;
        let request_id = self.request_id.map(|id| {
            let mut hasher = sha2::Sha256::new();
            hasher.update(id);
            hasher.update(key.as_bytes());
            let digest = hasher.finalize();
            let mut derived = [0u8; 16];
            derived.copy_from_slice(&digest[..16]);
            derived
        });
        WriteOptions { request_id }
    }
}

/// What an update wants to store, given the current object.
pub enum Update {
    /// Store this (the store sets server metadata, defaults, validates).
    Write(Value),
    /// Nothing to change: answer with the current object.
    Unchanged,
    /// A precondition failed (a resourceVersion that is not the current
    /// one): a conflict, once a fresh read confirms it.
    Conflict,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    /// The object is gone; this is what it was.
    Removed(Value),
    /// The object is marked for deletion (its agent or finalizers finish).
    Marked(Value),
}

/// The object store over one member's replicated store.
#[derive(Clone)]
pub struct Store {
    node: Arc<Node>,
}

impl Store {
    /// The store over `node`.
    pub fn new(node: Arc<Node>) -> Store {
        Store { node }
    }

    /// The replicated store underneath.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// This member's storage engine.
    pub fn engine(&self) -> &Arc<Engine> {
        self.node.engine()
    }

    /// Fails with [`Error::NotLeader`] unless this member leads.
    ///
    /// # Errors
    /// [`Error::NotLeader`] naming the leader, or none during an election.
    pub fn ensure_leader(&self) -> Result<()> {
        let leadership = self.node.leadership().borrow().clone();
        if leadership.is_self {
            return Ok(());
        }
        let leader = leadership.leader.and_then(|id| {
            self.node
                .members()
                .into_iter()
                .find(|m| m.id == id)
                .map(|m| m.member)
        });
        Err(Error::NotLeader { leader })
    }

    /// Waits for the read barrier when `consistency` is linearizable: after
    /// it, this member's state holds every write acknowledged before.
    ///
    /// # Errors
    /// [`Error::Read`] without leader or quorum, or when this member cannot
    /// catch up in time.
    pub async fn barrier(&self, consistency: Consistency) -> Result<()> {
        if consistency == Consistency::Linearizable {
            self.node.read_barrier(READ_TIMEOUT).await?;
        }
        Ok(())
    }

    /// The object at `key` in this member's state.
    ///
    /// # Errors
    /// Storage errors and corrupt objects.
    pub fn load(&self, key: &str) -> Result<Option<Object>> {
        self.engine()
            .get(key.as_bytes(), None)?
            .value
            .map(|kv| Object::decode(&kv))
            .transpose()
    }

    /// Object `name` of `resource` in `namespace`, from this member's state
    /// (take [`Self::barrier`] first for a linearizable read).
    ///
    /// # Errors
    /// Storage errors and corrupt objects.
    pub fn get(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Object>> {
        self.load(&resource.key(namespace, name))
    }

    /// The objects of `resource` (in `namespace`, or all) that `keep`
    /// accepts, at revision `at` (None: now), in key order, and the revision
    /// read. Stored values that are not JSON are skipped with a warning.
    ///
    /// # Errors
    /// Storage errors; [`Error::Compacted`] for a compacted `at`.
    pub fn list(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        at: Option<Revision>,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<(Vec<Object>, Revision)> {
        let prefix = resource.namespace_prefix(namespace);
        let read = self.engine().range(prefix.as_bytes(), 0, at)?;
        let mut objects = Vec::with_capacity(read.value.kvs.len());
        for kv in &read.value.kvs {
            match Object::decode(kv) {
                Ok(object) if keep(&object.value) => objects.push(object),
                Ok(_) => {}
                Err(e) => tracing::warn!("skipping a stored object: {e}"),
            }
        }
        Ok((objects, read.revision))
    }

    /// Whether namespace `name` exists in this member's state.
    ///
    /// # Errors
    /// Storage errors.
    pub fn namespace_exists(&self, name: &str) -> Result<bool> {
        let key = registry::by_kind("Namespace")
            .map(|r| r.key(None, name))
            .unwrap_or_default();
        Ok(self.engine().get(key.as_bytes(), None)?.value.is_some())
    }

    /// A cursor over `prefix` after revision `after`.
    pub fn cursor(&self, prefix: impl Into<Vec<u8>>, after: Revision) -> Cursor {
        Cursor::new(&self.node, prefix, after)
    }

    /// Replicates `command` (through the leader) with idempotency key `id`.
    ///
    /// # Errors
    /// [`Error::NotLeader`] on a follower or during an election,
    /// [`Error::Timeout`] when the outcome is unknown.
    pub async fn write(&self, id: Option<[u8; 16]>, command: Command) -> Result<Response> {
        let request = flotilla_storage::Request { id, command };
        match tokio::time::timeout(WRITE_TIMEOUT, self.node.write(request)).await {
            Err(_) => Err(Error::Timeout {
                seconds: WRITE_TIMEOUT.as_secs(),
            }),
            Ok(Err(WriteError::NotLeader { leader })) => Err(Error::NotLeader { leader }),
            Ok(Err(e)) => Err(Error::Replication(e.to_string())),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// `claims` without the releases of keys that no longer hold their
    /// owner (gone, or another object's): a write gives back only what its
    /// object holds. The transaction compares the holder again, so a claim
    /// that changes hands after this read fails the write instead of being
    /// deleted; and an object whose claim was already freed can still be
    /// deleted.
    fn still_held(&self, claims: &[Claim]) -> Result<Vec<Claim>> {
        let mut kept = Vec::with_capacity(claims.len());
        for claim in claims {
            if let Claim::Release {
                key,
                owner: Some(owner),
            } = claim
            {
                let read = self.engine().get(key.as_bytes(), None)?;
                if read.value.is_none_or(|kv| kv.value != owner.as_bytes()) {
                    continue;
                }
            }
            kept.push(claim.clone());
        }
        Ok(kept)
    }

    /// Replicates one compare-and-swap.
    async fn swap(&self, opts: &WriteOptions, swap: &Swap<'_>) -> Result<Outcome> {
        let held;
        let swap = if swap.claims.is_empty() {
            *swap
        } else {
            held = self.still_held(swap.claims)?;
            Swap {
                claims: &held,
                ..*swap
            }
        };
        let swap = &swap;
        let txn = txn::transaction(swap).map_err(|source| Error::Corrupt {
            key: swap.key.to_owned(),
            source,
        })?;
        match self.write(opts.request_id, Command::Txn(txn)).await? {
            Response::Txn {
                succeeded: true,
                revision,
                ..
            } => Ok(Outcome::Done(revision)),
            Response::Txn { .. } => Ok(Outcome::Lost),
            other => Err(Error::Replication(format!(
                "unexpected store reply {other:?}"
            ))),
        }
    }

    /// What the attempt of `opts`' request that took effect did to `scope`,
    /// if one did. None without a request id, or when no attempt changed the
    /// store (or its record was evicted).
    fn first_attempt(&self, opts: &WriteOptions, scope: Scope<'_>) -> Result<Option<Committed>> {
        let Some(id) = opts.request_id else {
            return Ok(None);
        };
        match self.engine().deduplicated(&id)? {
            Some(Response::Txn {
                succeeded: true,
                revision,
                ..
            }) => self.committed(scope, revision),
            _ => Ok(None),
        }
    }

    /// The change to `scope` at `revision`, if there is one.
    fn committed(&self, scope: Scope<'_>, revision: Revision) -> Result<Option<Committed>> {
        let prefix = match scope {
            Scope::Key(key) | Scope::Under(key) => key,
        };
        let read = self.engine().events(prefix.as_bytes(), revision - 1, 1)?;
        let Some(event) = read.events.iter().find(|e| {
            e.kv.mod_revision == revision
                && match scope {
                    Scope::Key(key) => e.kv.key == key.as_bytes(),
                    Scope::Under(_) => true,
                }
        }) else {
            return Ok(None);
        };
        Ok(Some(match (event.kind, &event.prev_kv) {
            (EventKind::Put, _) => Committed::Put(Object::decode(&event.kv)?),
            (EventKind::Delete, Some(prev)) => {
                Committed::Delete(Object::decode_at(&prev.key, &prev.value, revision)?)
            }
            (EventKind::Delete, None) => return Ok(None),
        }))
    }

    /// The object a successful write at `revision` stored in `scope`: the
    /// caller's own `candidate`, unless a retried request's first attempt
    /// stored something else (another generated name, another cluster IP).
    fn stored(
        &self,
        opts: &WriteOptions,
        scope: Scope<'_>,
        revision: Revision,
        mut candidate: Value,
    ) -> Result<Value> {
        if opts.request_id.is_some() {
            if let Some(Committed::Put(object)) = self.committed(scope, revision)? {
                return Ok(object.value);
            }
        }
        meta::set_resource_version(&mut candidate, revision);
        Ok(candidate)
    }

    /// Creates `obj` as an object of `resource`: fills `generateName`,
    /// defaults and validates it by its kind's rules, sets server metadata,
    /// takes what the kind allocates, and stores it if the name is free and
    /// the namespace exists. Returns the stored object.
    ///
    /// The caller has checked the object's identity (kind, namespace) and
    /// what the caller may do.
    ///
    /// # Errors
    /// [`Error::Invalid`], [`Error::AlreadyExists`], [`Error::NamespaceMissing`],
    /// [`Error::Conflict`] (a racing claim), and write failures.
    pub async fn create(
        &self,
        resource: &'static Resource,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value> {
        let namespace = meta::namespace(&obj)
            .filter(|_| resource.namespaced)
            .map(str::to_owned);
        let prefix = resource.namespace_prefix(namespace.as_deref());
        self.ensure_leader()?;
        if let Some(Committed::Put(object)) = self.first_attempt(opts, Scope::Under(&prefix))? {
            return Ok(object.value);
        }
        if meta::name(&obj).is_none() {
            if let Some(prefix) = meta::meta_str(&obj, "generateName").map(str::to_owned) {
                if let Some(m) = meta::metadata_mut(&mut obj) {
                    m.insert("name".into(), json!(meta::generate_name(&prefix)));
                }
            }
        }
        resource.strategy.default(&mut obj);
        let name = meta::name(&obj).unwrap_or("").to_owned();
        let errors = resource.strategy.validate(&obj);
        if !errors.is_empty() {
            return Err(Error::Invalid {
                resource,
                name,
                errors,
            });
        }
        meta::on_create(&mut obj, meta::now());
        let key = resource.key(namespace.as_deref(), &name);
        // A Service's random IP or node port may be taken: try a few.
        for _ in 0..ALLOCATION_ATTEMPTS {
            let mut candidate = obj.clone();
            let mut claims = resource.strategy.allocate(&mut candidate);
            if resource.kind == "Node" {
                claims.extend(self.pod_cidr(&mut candidate)?);
            }
            let swap = Swap {
                key: &key,
                expected: 0,
                object: Some(&candidate),
                namespace: namespace.as_deref(),
                claims: &claims,
            };
            match self.swap(opts, &swap).await? {
                Outcome::Done(revision) => {
                    return self.stored(opts, Scope::Under(&prefix), revision, candidate);
                }
                Outcome::Lost => {
                    if self.load(&key)?.is_some() {
                        return Err(Error::AlreadyExists { resource, name });
                    }
                    if let Some(ns) = &namespace {
                        if !self.namespace_exists(ns)? {
                            return Err(Error::NamespaceMissing {
                                namespace: ns.clone(),
                            });
                        }
                    }
                    if claims.is_empty() {
                        return Err(Error::Conflict { resource, name });
                    }
                }
            }
        }
        let mut errors = crate::objects::validate::Errors::default();
        if resource.kind == "Node" {
            errors.invalid("spec.podCIDR", "the pod CIDR range is held by another node");
            return Err(Error::Invalid {
                resource,
                name,
                errors,
            });
        }
        errors.invalid(
            "spec",
            format!(
                "the cluster IP or a node port is already allocated (service range {}, node ports {}-{})",
                service::SERVICE_CIDR,
                service::NODE_PORTS.start(),
                service::NODE_PORTS.end()
            ),
        );
        Err(Error::Invalid {
            resource,
            name,
            errors,
        })
    }

    /// A new Node's pod CIDR ([`crate::objects::podcidr`], kube-controller-
    /// manager's node IPAM): the claim of the range it names, else of the
    /// first one free in the store; none when the cluster CIDR is full (the
    /// Node then carries `NetworkUnavailable=True`, CIDRNotAvailable). The
    /// claim is made in the Node's own transaction, so a range is never
    /// handed out twice, whichever leader allocates it.
    fn pod_cidr(&self, node: &mut Value) -> Result<Vec<Claim>> {
        use crate::objects::podcidr;
        let settings = settings::Settings::load(self)
            .map_err(|e| Error::Replication(format!("reading the cluster settings: {e}")))?;
        let taken = self
            .engine()
            .range(podcidr::PREFIX.as_bytes(), 0, None)?
            .value
            .kvs
            .iter()
            .filter_map(|kv| podcidr::Cidr::from_key(&String::from_utf8_lossy(&kv.key)))
            .collect();
        let now = meta::timestamp(meta::now());
        Ok(
            match podcidr::allocate(
                node,
                settings.pod_cidr,
                settings.node_cidr_mask_size,
                &taken,
                &now,
            ) {
                podcidr::Allocation::Take(cidr) => vec![Claim::Take {
                    key: cidr.key(),
                    owner: crate::objects::claim::owner(node),
                }],
                podcidr::Allocation::Full => {
                    tracing::warn!(
                        node = meta::name(node).unwrap_or(""),
                        cidr = %settings.pod_cidr,
                        "{}: no pod CIDR range left for the node",
                        podcidr::CIDR_NOT_AVAILABLE
                    );
                    Vec::new()
                }
            },
        )
    }

    /// Turns `next`, an update of `current`, into what is stored: server
    /// metadata carried over, defaults, validation, and the claims the
    /// change takes or gives back.
    fn prepare_update(
        resource: &'static Resource,
        current: &Object,
        next: &mut Value,
    ) -> Result<Vec<Claim>> {
        meta::on_update(&current.value, next);
        resource.strategy.default(next);
        let invalid = |errors| Error::Invalid {
            resource,
            name: current.name().to_owned(),
            errors,
        };
        let errors = resource.strategy.validate_update(&current.value, next);
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        resource
            .strategy
            .reallocate(&current.value, next)
            .map_err(invalid)
    }

    /// Reads the object at `key`, lets `try_update` compute its next version,
    /// and stores that if the object has not changed meanwhile — else reads
    /// again and retries ([`RACE_RETRIES`] times), as kube-apiserver's
    /// GuaranteedUpdate. Returns the stored object.
    ///
    /// The first read is this member's own state, without a read barrier:
    /// on the leader every acknowledged write was applied first, and the
    /// write is a compare-and-swap, so a stale read costs a retry, never a
    /// lost update. An answer that rests on the read alone — NotFound, a
    /// failed precondition ([`Error::Conflict`] from `try_update`), nothing
    /// to change — is given only after a read under the barrier, since only
    /// the barrier proves this member still leads.
    ///
    /// With `always_write`, an update that changes nothing is still written
    /// (a PUT gets a new resourceVersion); otherwise it answers with the
    /// current object.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Conflict`] after the retries, what
    /// `try_update` returns, [`Error::Invalid`], and write failures.
    pub async fn guaranteed_update<E: From<Error>>(
        &self,
        resource: &'static Resource,
        key: &str,
        opts: &WriteOptions,
        always_write: bool,
        mut try_update: impl FnMut(&Object) -> Result<Update, E>,
    ) -> Result<Value, E> {
        let name = key.rsplit('/').next().unwrap_or("").to_owned();
        self.ensure_leader()?;
        if let Some(Committed::Put(object)) = self.first_attempt(opts, Scope::Key(key))? {
            return Ok(object.value);
        }
        for attempt in 0..RACE_RETRIES {
            let strict = attempt > 0;
            let current = match self.read_for_write(key, strict).await? {
                Some(current) => current,
                None if strict => return Err(Error::NotFound { resource, name }.into()),
                None => continue,
            };
            let mut next = match try_update(&current)? {
                Update::Write(next) => next,
                Update::Unchanged if strict => return Ok(current.value),
                Update::Conflict if strict => return Err(Error::Conflict { resource, name }.into()),
                Update::Unchanged | Update::Conflict => continue,
            };
            let claims = Self::prepare_update(resource, &current, &mut next)?;
            if !always_write && next == current.value {
                if strict {
                    return Ok(current.value);
                }
                continue;
            }
            let swap = Swap {
                key,
                expected: current.revision,
                object: Some(&next),
                namespace: None,
                claims: &claims,
            };
            if let Outcome::Done(revision) = self.swap(opts, &swap).await? {
                return Ok(self.stored(opts, Scope::Key(key), revision, next)?);
            }
        }
        Err(Error::Conflict { resource, name }.into())
    }

    /// Stores `next` in place of `current` (as a control loop read it) if
    /// the object has not changed since: server metadata, defaults,
    /// validation and claims as any update. An update that changes nothing
    /// is not written.
    ///
    /// # Errors
    /// [`Error::Invalid`] (a bug in the loop) and write failures.
    pub async fn replace(
        &self,
        resource: &'static Resource,
        current: &Object,
        mut next: Value,
    ) -> Result<Outcome> {
        let claims = Self::prepare_update(resource, current, &mut next)?;
        if next == current.value {
            return Ok(Outcome::Done(current.revision));
        }
        let swap = Swap {
            key: &current.key,
            expected: current.revision,
            object: Some(&next),
            namespace: None,
            claims: &claims,
        };
        self.swap(&WriteOptions::default(), &swap).await
    }

    /// Stores `next` in place of `current` exactly as given — no defaults,
    /// no validation, no metadata — if unchanged since it was read. For
    /// writes that must not be altered on the way (a finalizer removed, a
    /// binding recorded).
    ///
    /// # Errors
    /// Write failures.
    pub async fn swap_raw(&self, current: &Object, next: &Value) -> Result<Outcome> {
        let swap = Swap {
            key: &current.key,
            expected: current.revision,
            object: Some(next),
            namespace: None,
            claims: &[],
        };
        self.swap(&WriteOptions::default(), &swap).await
    }

    /// Removes `current` now, if it has not changed since it was read,
    /// releasing what its kind holds (a Service's IP and ports, a Node's
    /// credential) in the same transaction — wherever the removal comes from
    /// (a client's DELETE, the garbage collector working off finalizers).
    ///
    /// # Errors
    /// Write failures.
    pub async fn remove(
        &self,
        resource: &'static Resource,
        current: &Object,
        opts: &WriteOptions,
    ) -> Result<Outcome> {
        let claims = resource.strategy.release(&current.value);
        let swap = Swap {
            key: &current.key,
            expected: current.revision,
            object: None,
            namespace: None,
            claims: &claims,
        };
        self.swap(opts, &swap).await
    }

    /// Deletes the object at `key` as a DELETE does: removed at once, or
    /// marked when it must go gracefully (a bound pod: its agent stops the
    /// containers first; finalizers, including those `finalizers` adds for
    /// foreground or orphan propagation), retrying lost races. `check` sees
    /// the current object first and may refuse (an error: NodeRestriction),
    /// or say that a precondition failed (false: a conflict, once a fresh
    /// read confirms it).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Conflict`], what `check` returns, and
    /// write failures.
    #[allow(clippy::too_many_arguments)]
    pub async fn delete<E: From<Error>>(
        &self,
        resource: &'static Resource,
        key: &str,
        opts: &WriteOptions,
        grace: Option<i64>,
        finalizers: &[&str],
        check: impl Fn(&Object) -> Result<bool, E>,
    ) -> Result<Deleted, E> {
        let name = key.rsplit('/').next().unwrap_or("").to_owned();
        self.ensure_leader()?;
        match self.first_attempt(opts, Scope::Key(key))? {
            Some(Committed::Delete(object)) => return Ok(Deleted::Removed(object.value)),
            Some(Committed::Put(object)) => return Ok(Deleted::Marked(object.value)),
            None => {}
        }
        for attempt in 0..RACE_RETRIES {
            let strict = attempt > 0;
            let current = match self.read_for_write(key, strict).await? {
                Some(current) => current,
                None if strict => return Err(Error::NotFound { resource, name }.into()),
                None => continue,
            };
            if !check(&current)? {
                if strict {
                    return Err(Error::Conflict { resource, name }.into());
                }
                continue;
            }
            match deletion(resource, &current.value, grace, finalizers, meta::now()) {
                Deletion::AlreadyMarked => {
                    if strict {
                        return Ok(Deleted::Marked(current.value));
                    }
                }
                Deletion::Mark(next) => {
                    let swap = Swap {
                        key,
                        expected: current.revision,
                        object: Some(&next),
                        namespace: None,
                        claims: &[],
                    };
                    if let Outcome::Done(revision) = self.swap(opts, &swap).await? {
                        let stored = self.stored(opts, Scope::Key(key), revision, next)?;
                        return Ok(Deleted::Marked(stored));
                    }
                }
                Deletion::Remove => {
                    if let Outcome::Done(_) = self.remove(resource, &current, opts).await? {
                        return Ok(Deleted::Removed(current.value));
                    }
                }
            }
        }
        Err(Error::Conflict { resource, name }.into())
    }

    /// The object at `key`, read for a write: a follower fails at once (the
    /// write could only be redirected later); with `strict` the read barrier
    /// is taken first.
    async fn read_for_write(&self, key: &str, strict: bool) -> Result<Option<Object>> {
        self.ensure_leader()?;
        if strict {
            self.barrier(Consistency::Linearizable).await?;
        }
        self.load(key)
    }
}

/// A change found in the history at one revision.
enum Committed {
    /// Stored (created, updated or marked for deletion): the object stored.
    Put(Object),
    /// Removed: the object as it was.
    Delete(Object),
}

/// Where to look for a request's change.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// Exactly this key.
    Key(&'a str),
    /// Any key under this prefix (a create whose name was generated).
    Under(&'a str),
}
