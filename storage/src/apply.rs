//! Applying requests: the deterministic state machine.
//!
//! [`Engine::apply`] turns one [`Request`] into one RocksDB `WriteBatch`
//! holding every change the request makes, the new scalars (revision, compact
//! revision, dedupe sequence) and the caller's marker, so a crash leaves either
//! all of it or none. While building the batch, all reads go to a snapshot of
//! the state before the request. That is exact, not an approximation: a
//! request never touches one key twice (a txn that would is rejected), so no
//! read needs to see the batch's own writes.
//!
//! Determinism: the batch depends only on the stored state and the request.
//! Nothing here reads a clock, draws randomness or iterates a hash map, so
//! replicas applying the same requests hold byte-identical state.

use std::collections::BTreeSet;

use rocksdb::{IteratorMode, WriteBatch};
use tracing::debug;

use crate::codec::{decode, decode_rev, encode, hist_key, rev_key, Record, REV_LEN};
use crate::engine::{
    latest_get, latest_range, snapshot_state, Families, Snapshot, State, META_COMPACT,
    META_DEDUPE_SEQ, META_MARKER, META_REVISION,
};
use crate::{
    Applied, Command, Compare, CompareOp, Engine, Error, Event, EventKind, KeyValue, Op,
    OpResponse, Rejection, Request, Response, Result, Revision, Target, Txn,
};

/// Dedupe table key of a request id.
fn dedupe_id_key(id: &[u8; 16]) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(b'i');
    key.extend_from_slice(id);
    key
}

/// Dedupe table key of an apply-order sequence number.
fn dedupe_seq_key(seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(b's');
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

impl Engine {
    /// Applies one request in one RocksDB `WriteBatch` that also stores
    /// `marker` (opaque bytes: the raft crate's last-applied log id and
    /// membership), so data and marker never diverge. The write goes to the
    /// WAL but is not fsynced; the caller decides when to sync.
    ///
    /// A request whose `id` is in the dedupe table returns the stored
    /// response, with no events and the current revision, and changes nothing
    /// but the marker. Only requests that changed the store are remembered.
    ///
    /// # Errors
    ///
    /// RocksDB, encoding and decoding errors. An error means this replica
    /// could not apply the request (nothing was written); it must not carry
    /// on as if it had.
    pub fn apply(&self, request: &Request, marker: &[u8]) -> Result<Applied> {
        let families = self.families()?;
        let mut writer = self.lock_writer();
        let snap = self.db.snapshot();
        let before = *writer;
        debug_assert_eq!(snapshot_state(&snap, &families).ok(), Some(before));
        let mut batch = WriteBatch::default();
        batch.put_cf(families.meta, META_MARKER, marker);

        if let Some(id) = &request.id {
            if let Some(bytes) = snap.get_cf(families.dedupe, dedupe_id_key(id))? {
                let response: Response = decode(&bytes)?;
                self.write(batch, false)?;
                return Ok(Applied {
                    response,
                    events: Vec::new(),
                    revision: before.revision,
                });
            }
        }

        let mut changes = Changes {
            snap: &snap,
            families: &families,
            batch,
            state: before,
            events: Vec::new(),
            compact_to: None,
        };
        let response = changes.command(&request.command)?;
        let Changes {
            mut batch,
            events,
            compact_to,
            ..
        } = changes;

        let mut after = before;
        if !events.is_empty() {
            after.revision = before.revision + 1;
            batch.put_cf(families.events, rev_key(after.revision), encode(&events)?);
            batch.put_cf(families.meta, META_REVISION, rev_key(after.revision));
        }
        if let Some(revision) = compact_to {
            after.compact_revision = revision;
            batch.put_cf(families.meta, META_COMPACT, rev_key(revision));
        }
        // Only a request that changed the store is remembered: one that
        // changed nothing (a failed compare, a rejection) left no effect to
        // protect from repetition, and its retry must run again — a caller
        // that retries a lost compare-and-swap under the same id gets a
        // fresh attempt, and a retried request gets exactly the outcome of
        // the attempt that took effect.
        let changed = !events.is_empty() || compact_to.is_some();
        if let (Some(id), true) = (&request.id, changed) {
            self.remember(&snap, &families, &mut batch, &mut after, id, &response)?;
        }
        self.write(batch, false)?;
        self.publish(&mut writer, after);
        Ok(Applied {
            response,
            events,
            revision: after.revision,
        })
    }

    /// The response stored for request `id`, if the dedupe table remembers
    /// it: the request was applied and changed the store. A caller retrying
    /// a request reads here what its first attempt did.
    ///
    /// # Errors
    ///
    /// RocksDB and decoding errors.
    pub fn deduplicated(&self, id: &[u8; 16]) -> Result<Option<Response>> {
        let families = self.families()?;
        self.db
            .get_cf(families.dedupe, dedupe_id_key(id))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// Adds `id -> response` to the dedupe table, evicting the oldest entry
    /// once the table holds `dedupe_capacity` ids.
    fn remember(
        &self,
        snap: &Snapshot<'_>,
        families: &Families<'_>,
        batch: &mut WriteBatch,
        state: &mut State,
        id: &[u8; 16],
        response: &Response,
    ) -> Result<()> {
        let seq = state.dedupe_seq;
        batch.put_cf(families.dedupe, dedupe_id_key(id), encode(response)?);
        batch.put_cf(families.dedupe, dedupe_seq_key(seq), id);
        if let Some(oldest) = seq.checked_sub(self.dedupe_capacity) {
            let old_id = snap
                .get_cf(families.dedupe, dedupe_seq_key(oldest))?
                .ok_or_else(|| Error::Corrupt(format!("dedupe entry {oldest} missing")))?;
            let old_id: [u8; 16] = old_id
                .as_slice()
                .try_into()
                .map_err(|_| Error::Corrupt(format!("dedupe entry {oldest} malformed")))?;
            batch.delete_cf(families.dedupe, dedupe_seq_key(oldest));
            batch.delete_cf(families.dedupe, dedupe_id_key(&old_id));
        }
        state.dedupe_seq = seq + 1;
        batch.put_cf(
            families.meta,
            META_DEDUPE_SEQ,
            state.dedupe_seq.to_be_bytes(),
        );
        Ok(())
    }
}

/// The changes one request makes, accumulated into a batch.
struct Changes<'a> {
    /// The state before the request.
    snap: &'a Snapshot<'a>,
    families: &'a Families<'a>,
    batch: WriteBatch,
    /// The scalars before the request.
    state: State,
    /// Every key change, in order; all at `state.revision + 1`.
    events: Vec<Event>,
    /// Set by a successful compaction.
    compact_to: Option<Revision>,
}

impl Changes<'_> {
    /// The revision this request's writes get.
    fn write_revision(&self) -> Revision {
        self.state.revision + 1
    }

    /// The store revision after the request, given the changes so far.
    fn revision_after(&self) -> Revision {
        if self.events.is_empty() {
            self.state.revision
        } else {
            self.write_revision()
        }
    }

    fn command(&mut self, command: &Command) -> Result<Response> {
        match command {
            Command::Put { key, value } => {
                if key.is_empty() {
                    return Ok(Response::Rejected(Rejection::EmptyKey));
                }
                let prev = self.put(key, value)?;
                Ok(Response::Put {
                    revision: self.revision_after(),
                    prev,
                })
            }
            Command::Delete { key } => {
                if key.is_empty() {
                    return Ok(Response::Rejected(Rejection::EmptyKey));
                }
                let prev: Vec<KeyValue> = self.delete(key)?.into_iter().collect();
                Ok(Response::Delete {
                    revision: self.revision_after(),
                    deleted: prev.len() as u64,
                    prev,
                })
            }
            Command::DeletePrefix { prefix } => {
                let prev = latest_range(self.snap, self.families, prefix, 0)?.kvs;
                for kv in &prev {
                    self.delete_existing(kv.clone());
                }
                Ok(Response::Delete {
                    revision: self.revision_after(),
                    deleted: prev.len() as u64,
                    prev,
                })
            }
            Command::Txn(txn) => self.txn(txn),
            Command::Compact { revision } => self.compact(*revision),
        }
    }

    /// Puts `key`, returning its previous version.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<Option<KeyValue>> {
        let prev = latest_get(self.snap, self.families, key)?;
        let revision = self.write_revision();
        let record = Record {
            value: value.to_vec(),
            create_revision: prev.as_ref().map_or(revision, |kv| kv.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |kv| kv.version + 1),
        };
        self.batch.put_cf(self.families.kv, key, encode(&record)?);
        self.batch.put_cf(
            self.families.hist,
            hist_key(key, revision),
            encode(&Some(&record))?,
        );
        self.events.push(Event {
            kind: EventKind::Put,
            kv: record.into_kv(key.to_vec()),
            prev_kv: prev.clone(),
        });
        Ok(prev)
    }

    /// Deletes `key` if it exists, returning what was deleted.
    fn delete(&mut self, key: &[u8]) -> Result<Option<KeyValue>> {
        let Some(prev) = latest_get(self.snap, self.families, key)? else {
            return Ok(None);
        };
        self.delete_existing(prev.clone());
        Ok(Some(prev))
    }

    /// Deletes a key known to exist with value `prev`.
    fn delete_existing(&mut self, prev: KeyValue) {
        let revision = self.write_revision();
        self.batch.delete_cf(self.families.kv, &prev.key);
        // `None` encodes to a fixed byte; encoding it cannot fail.
        self.batch
            .put_cf(self.families.hist, hist_key(&prev.key, revision), TOMBSTONE);
        self.events.push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: prev.key.clone(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: revision,
                version: 0,
            },
            prev_kv: Some(prev),
        });
    }

    fn txn(&mut self, txn: &Txn) -> Result<Response> {
        let writes = |ops: &'_ [Op]| -> Vec<Vec<u8>> {
            ops.iter()
                .filter_map(|op| match op {
                    Op::Put { key, .. } | Op::Delete { key } => Some(key.clone()),
                    Op::Get { .. } | Op::Range { .. } => None,
                })
                .collect()
        };
        // A malformed op is rejected whichever branch it is in.
        if writes(&txn.success)
            .iter()
            .chain(&writes(&txn.failure))
            .any(|key| key.is_empty())
        {
            return Ok(Response::Rejected(Rejection::EmptyKey));
        }
        let mut succeeded = true;
        for compare in &txn.compare {
            if !self.compare(compare)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let mut seen = BTreeSet::new();
        for key in writes(ops) {
            if seen.contains(&key) {
                return Ok(Response::Rejected(Rejection::DuplicateKey { key }));
            }
            seen.insert(key);
        }
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                Op::Put { key, value } => OpResponse::Put {
                    prev: self.put(key, value)?,
                },
                Op::Delete { key } => {
                    let prev: Vec<KeyValue> = self.delete(key)?.into_iter().collect();
                    OpResponse::Delete {
                        deleted: prev.len() as u64,
                        prev,
                    }
                }
                Op::Get { key } => OpResponse::Get {
                    kv: latest_get(self.snap, self.families, key)?,
                },
                Op::Range { prefix, limit } => {
                    let range = latest_range(self.snap, self.families, prefix, *limit)?;
                    OpResponse::Range {
                        kvs: range.kvs,
                        more: range.more,
                    }
                }
            });
        }
        Ok(Response::Txn {
            succeeded,
            revision: self.revision_after(),
            responses,
        })
    }

    /// Evaluates one compare against the state before the txn.
    fn compare(&self, compare: &Compare) -> Result<bool> {
        let kv = latest_get(self.snap, self.families, &compare.key)?;
        let field = |get: fn(&KeyValue) -> i64| kv.as_ref().map_or(0, get);
        let ordering = match &compare.target {
            Target::Value(target) => match &kv {
                // etcd: a value compare on a missing key is always false.
                None => return Ok(false),
                Some(kv) => kv.value.as_slice().cmp(target.as_slice()),
            },
            Target::Version(target) => field(|kv| kv.version).cmp(target),
            Target::CreateRevision(target) => field(|kv| kv.create_revision).cmp(target),
            Target::ModRevision(target) => field(|kv| kv.mod_revision).cmp(target),
        };
        Ok(match compare.op {
            CompareOp::Equal => ordering.is_eq(),
            CompareOp::NotEqual => ordering.is_ne(),
            CompareOp::Greater => ordering.is_gt(),
            CompareOp::Less => ordering.is_lt(),
        })
    }

    /// Compacts history at and before `revision`.
    ///
    /// Drops the watch events with revision <= `revision` and, for every key,
    /// the versions at or before `revision` except the newest one (which a
    /// read at `revision` still needs), and that one too if it is a deletion.
    /// This scans the whole history column family: compaction is rare and
    /// the scan is sequential.
    fn compact(&mut self, revision: Revision) -> Result<Response> {
        if revision > self.state.revision {
            return Ok(Response::Rejected(Rejection::FutureRevision {
                current: self.state.revision,
            }));
        }
        if revision < self.state.compact_revision {
            return Ok(Response::Rejected(Rejection::Compacted {
                compact_revision: self.state.compact_revision,
            }));
        }
        self.batch.delete_range_cf(
            self.families.events,
            rev_key(Revision::MIN),
            rev_key(revision + 1),
        );

        let mut dropped = 0u64;
        let mut group: Vec<u8> = Vec::new();
        // History key of the newest version at or before `revision` in the
        // current group, and whether it is a deletion.
        let mut candidate: Option<(Box<[u8]>, bool)> = None;
        for item in self
            .snap
            .iterator_cf(self.families.hist, IteratorMode::Start)
        {
            let (stored, value) = item?;
            let split = stored
                .len()
                .checked_sub(REV_LEN)
                .ok_or_else(|| Error::Corrupt("malformed history key".to_owned()))?;
            if stored[..split] != group[..] {
                if let Some((key, true)) = candidate.take() {
                    self.batch.delete_cf(self.families.hist, key);
                    dropped += 1;
                }
                group = stored[..split].to_vec();
            }
            if decode_rev(&stored[split..])? <= revision {
                let tombstone = decode::<Option<Record>>(&value)?.is_none();
                if let Some((older, _)) = candidate.replace((stored, tombstone)) {
                    self.batch.delete_cf(self.families.hist, older);
                    dropped += 1;
                }
            }
        }
        if let Some((key, true)) = candidate {
            self.batch.delete_cf(self.families.hist, key);
            dropped += 1;
        }
        debug!(revision, dropped, "compacting history");
        self.compact_to = Some(revision);
        Ok(Response::Compact {
            revision: self.state.revision,
        })
    }
}

/// The history record of a deletion: bincode's encoding of `None::<Record>`.
const TOMBSTONE: &[u8] = &[0];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstone_is_the_encoding_of_none() {
        assert_eq!(encode(&None::<Record>).expect("encodes"), TOMBSTONE);
    }
}
