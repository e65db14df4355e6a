//! The [`Engine`]: opening the database, reads, export and import.
//!
//! Writes live in [`apply`](crate::apply); this module owns everything around
//! them. Concurrency model: one writer at a time (the writer mutex is held for
//! the whole of [`Engine::apply`], [`Engine::set_marker`] and
//! [`Engine::import`]), any number of readers. Readers never take the writer
//! mutex: each read takes a RocksDB snapshot and reads the revision and compact
//! revision from the `kv_meta` column family *inside that snapshot*, so the
//! data and the revision reported with it always agree even while a write
//! lands concurrently.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, SnapshotWithThreadMode,
    WriteBatch, WriteOptions, DB,
};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::codec::{
    decode, decode_hist_key, decode_rev, encode, hist_group, hist_key, hist_prefix, rev_key,
    Record, REV_LEN,
};
use crate::{Error, Event, Events, KeyValue, RangeResult, Read, Result, Revision};

/// How many request ids the dedupe table remembers. Eviction is by apply
/// order (oldest id first), so every replica holds the same table.
pub const DEDUPE_CAPACITY: u64 = 100_000;

/// The revision of a new store, as in etcd.
pub const INITIAL_REVISION: Revision = 1;

/// Latest version of every live key: raw key -> [`Record`].
pub(crate) const CF_KV: &str = "kv";
/// Every version of every key: history key -> `Option<Record>` (None = deleted).
pub(crate) const CF_HIST: &str = "kv_history";
/// Watch history: revision -> `Vec<Event>`.
pub(crate) const CF_EVENTS: &str = "kv_events";
/// Dedupe table: `i ++ id` -> `Response`, `s ++ seq` -> id.
pub(crate) const CF_DEDUPE: &str = "kv_dedupe";
/// Engine scalars and the caller's marker.
pub(crate) const CF_META: &str = "kv_meta";

pub(crate) const META_REVISION: &[u8] = b"revision";
pub(crate) const META_COMPACT: &[u8] = b"compact_revision";
pub(crate) const META_DEDUPE_SEQ: &[u8] = b"dedupe_seq";
pub(crate) const META_MARKER: &[u8] = b"marker";

/// Version of the [`Engine::export`] format.
const EXPORT_FORMAT: u32 = 1;

pub(crate) type Snapshot<'a> = SnapshotWithThreadMode<'a, DB>;

/// Handles of the engine's column families.
pub(crate) struct Families<'a> {
    pub kv: &'a ColumnFamily,
    pub hist: &'a ColumnFamily,
    pub events: &'a ColumnFamily,
    pub dedupe: &'a ColumnFamily,
    pub meta: &'a ColumnFamily,
}

/// The engine's scalars, as stored in `kv_meta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct State {
    pub revision: Revision,
    pub compact_revision: Revision,
    /// Apply-order sequence number the next remembered request id gets.
    pub dedupe_seq: u64,
}

impl State {
    /// Reads the scalars through `get` (a database or a snapshot lookup in `kv_meta`).
    pub(crate) fn load(get: impl Fn(&[u8]) -> Result<Option<Vec<u8>>>) -> Result<State> {
        let revision = match get(META_REVISION)? {
            Some(bytes) => decode_rev(&bytes)?,
            None => INITIAL_REVISION,
        };
        let compact_revision = match get(META_COMPACT)? {
            Some(bytes) => decode_rev(&bytes)?,
            None => 0,
        };
        let dedupe_seq = match get(META_DEDUPE_SEQ)? {
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::Corrupt("malformed dedupe sequence".to_owned()))?,
            ),
            None => 0,
        };
        Ok(State {
            revision,
            compact_revision,
            dedupe_seq,
        })
    }

    /// Checks a requested read revision; `None` means the current one.
    fn read_at(&self, at: Option<Revision>) -> Result<Revision> {
        match at {
            None => Ok(self.revision),
            Some(requested) if requested < self.compact_revision => Err(Error::Compacted {
                requested,
                compacted: self.compact_revision,
            }),
            Some(requested) if requested > self.revision => Err(Error::FutureRevision {
                requested,
                current: self.revision,
            }),
            Some(requested) => Ok(requested),
        }
    }
}

/// One column family's contents: `(key, value)` in key order.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A raw RocksDB entry.
type RawEntry = (Box<[u8]>, Box<[u8]>);

/// The whole engine state, as [`Engine::export`] writes it.
#[derive(Serialize, Deserialize)]
struct Export {
    format: u32,
    /// `(column family, [(key, value)])` in [`Engine::COLUMN_FAMILIES`] order.
    families: Vec<(String, Entries)>,
}

/// MVCC key-value state on RocksDB with etcd's semantics.
///
/// `Send + Sync`, meant to be shared as `Arc<Engine>`: one writer
/// ([`apply`](Engine::apply), [`set_marker`](Engine::set_marker),
/// [`import`](Engine::import), serialized by an internal mutex) and any number
/// of concurrent readers.
pub struct Engine {
    pub(crate) db: DB,
    /// The writer's copy of the scalars; holding the guard makes one the writer.
    pub(crate) writer: Mutex<State>,
    /// Published after each write, for the cheap accessors.
    revision: AtomicI64,
    compact_revision: AtomicI64,
    /// [`DEDUPE_CAPACITY`], smaller in tests.
    pub(crate) dedupe_capacity: u64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("path", &self.db.path())
            .field("revision", &self.revision())
            .field("compact_revision", &self.compact_revision())
            .finish()
    }
}

impl Engine {
    /// Column families the engine owns. Callers must not use these names for
    /// their own column families.
    pub const COLUMN_FAMILIES: &'static [&'static str] =
        &[CF_KV, CF_HIST, CF_EVENTS, CF_DEDUPE, CF_META];

    /// Opens (creating if missing) the RocksDB at `path` with the engine's
    /// column families plus `extra_cfs` (which the engine never touches).
    /// Column families already present in the database are opened too.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `extra_cfs` names one of
    /// [`COLUMN_FAMILIES`](Engine::COLUMN_FAMILIES); RocksDB errors; a
    /// corrupt `kv_meta`.
    pub fn open(path: &Path, extra_cfs: &[&str]) -> Result<Engine> {
        if let Some(name) = extra_cfs
            .iter()
            .find(|name| Self::COLUMN_FAMILIES.contains(name))
        {
            return Err(Error::Config(format!(
                "column family {name:?} is reserved by the storage engine"
            )));
        }
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // A missing database has no column families to list; any real
        // problem resurfaces in `open_cf_descriptors` below.
        let existing = DB::list_cf(&opts, path).unwrap_or_default();
        let names: BTreeSet<String> = existing
            .into_iter()
            .chain(Self::COLUMN_FAMILIES.iter().map(|name| (*name).to_owned()))
            .chain(extra_cfs.iter().map(|name| (*name).to_owned()))
            .collect();
        let descriptors = names
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, descriptors)?;
        let engine = Engine {
            db,
            writer: Mutex::new(State {
                revision: INITIAL_REVISION,
                compact_revision: 0,
                dedupe_seq: 0,
            }),
            revision: AtomicI64::new(INITIAL_REVISION),
            compact_revision: AtomicI64::new(0),
            dedupe_capacity: DEDUPE_CAPACITY,
        };
        let state = engine.load_state()?;
        engine.publish(&mut engine.lock_writer(), state);
        info!(
            path = %path.display(),
            revision = state.revision,
            compact_revision = state.compact_revision,
            "storage engine opened"
        );
        Ok(engine)
    }

    /// The database, for the caller's own column families (`db.cf_handle(name)`).
    pub fn db(&self) -> &DB {
        &self.db
    }

    /// Stores only the marker (for log entries that carry no command), in one
    /// unsynced batch like [`apply`](Engine::apply).
    ///
    /// # Errors
    ///
    /// RocksDB errors.
    pub fn set_marker(&self, marker: &[u8]) -> Result<()> {
        let families = self.families()?;
        let _writer = self.lock_writer();
        let mut batch = WriteBatch::default();
        batch.put_cf(families.meta, META_MARKER, marker);
        self.write(batch, false)
    }

    /// The last marker written, `None` on a new store.
    ///
    /// # Errors
    ///
    /// RocksDB errors.
    pub fn marker(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.families()?.meta, META_MARKER)?)
    }

    /// The current store revision.
    pub fn revision(&self) -> Revision {
        self.revision.load(Ordering::Acquire)
    }

    /// The compact revision, 0 if never compacted.
    pub fn compact_revision(&self) -> Revision {
        self.compact_revision.load(Ordering::Acquire)
    }

    /// Reads `key` at revision `at` (`None` = latest).
    ///
    /// # Errors
    ///
    /// [`Error::Compacted`] if `at` is below the compact revision,
    /// [`Error::FutureRevision`] if it is above the current revision; RocksDB
    /// and decoding errors.
    pub fn get(&self, key: &[u8], at: Option<Revision>) -> Result<Read<Option<KeyValue>>> {
        let families = self.families()?;
        let snap = self.db.snapshot();
        let state = snapshot_state(&snap, &families)?;
        let at = state.read_at(at)?;
        let value = if at == state.revision {
            latest_get(&snap, &families, key)?
        } else {
            hist_get(&snap, &families, key, at)?
        };
        Ok(Read {
            value,
            revision: at,
        })
    }

    /// Keys starting with `prefix` (empty prefix = all keys) at revision `at`
    /// (`None` = latest), in key order. `limit` 0 means no limit; `more` is
    /// true when the limit cut the result short; `count` is the total number
    /// of matching keys.
    ///
    /// # Errors
    ///
    /// As for [`get`](Engine::get).
    pub fn range(
        &self,
        prefix: &[u8],
        limit: usize,
        at: Option<Revision>,
    ) -> Result<Read<RangeResult>> {
        let families = self.families()?;
        let snap = self.db.snapshot();
        let state = snapshot_state(&snap, &families)?;
        let at = state.read_at(at)?;
        let value = if at == state.revision {
            latest_range(&snap, &families, prefix, limit)?
        } else {
            hist_range(&snap, &families, prefix, limit, at)?
        };
        Ok(Read {
            value,
            revision: at,
        })
    }

    /// Watch history: events with revision > `after` for keys under `prefix`,
    /// in revision order (within one revision, in the order they happened).
    ///
    /// At most `limit` events (0 = no limit), except that one revision's
    /// events are never split: the result ends at a revision boundary, and a
    /// single revision with more than `limit` matching events is returned
    /// whole. An `after` at or beyond the current revision gives an empty
    /// result. [`Events::through`] says how far the batch reaches, so a
    /// reader resumes after it and never skips a revision.
    ///
    /// # Errors
    ///
    /// [`Error::Compacted`] when `after` < compact revision (events up to the
    /// compact revision are gone); RocksDB and decoding errors.
    pub fn events(&self, prefix: &[u8], after: Revision, limit: usize) -> Result<Events> {
        let families = self.families()?;
        let snap = self.db.snapshot();
        let state = snapshot_state(&snap, &families)?;
        if after < state.compact_revision {
            return Err(Error::Compacted {
                requested: after,
                compacted: state.compact_revision,
            });
        }
        let start = rev_key(after.saturating_add(1));
        let mut out = Events {
            events: Vec::new(),
            through: state.revision.max(after),
        };
        for item in snap.iterator_cf(
            families.events,
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, value) = item?;
            let revision = decode_rev(&key)?;
            let matching: Vec<Event> = decode::<Vec<Event>>(&value)?
                .into_iter()
                .filter(|event| event.kv.key.starts_with(prefix))
                .collect();
            if matching.is_empty() {
                continue;
            }
            if limit > 0 && !out.events.is_empty() && out.events.len() + matching.len() > limit {
                // This revision does not fit: the batch reaches the one before.
                out.through = revision - 1;
                break;
            }
            out.events.extend(matching);
            if limit > 0 && out.events.len() >= limit {
                out.through = revision;
                break;
            }
        }
        Ok(out)
    }

    /// A consistent export (from one RocksDB snapshot) of all engine state,
    /// including the marker and the dedupe table, as one byte blob. Two
    /// engines that applied the same requests export identical bytes.
    ///
    /// # Errors
    ///
    /// RocksDB and encoding errors.
    pub fn export(&self) -> Result<Vec<u8>> {
        let families = self.families()?;
        let snap = self.db.snapshot();
        let handles = [
            families.kv,
            families.hist,
            families.events,
            families.dedupe,
            families.meta,
        ];
        let mut export = Export {
            format: EXPORT_FORMAT,
            families: Vec::with_capacity(handles.len()),
        };
        for (name, cf) in Self::COLUMN_FAMILIES.iter().zip(handles) {
            let entries = snap
                .iterator_cf(cf, IteratorMode::Start)
                .map(|item| item.map(|(key, value)| (key.into_vec(), value.into_vec())))
                .collect::<Result<Vec<_>, _>>()?;
            export.families.push(((*name).to_owned(), entries));
        }
        encode(&export)
    }

    /// Replaces all engine state with `data` (from [`export`](Engine::export))
    /// and sets `marker`, in one fsynced batch. The caller's column families
    /// are untouched.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] / [`Error::Corrupt`] for a malformed export (the
    /// store is then unchanged); RocksDB errors.
    pub fn import(&self, data: &[u8], marker: &[u8]) -> Result<()> {
        let export: Export = decode(data)?;
        if export.format != EXPORT_FORMAT {
            return Err(Error::Corrupt(format!(
                "unknown export format {}",
                export.format
            )));
        }
        // Validate the scalars before destroying anything.
        let meta = export
            .families
            .iter()
            .find(|(name, _)| name == CF_META)
            .map(|(_, entries)| entries.as_slice())
            .unwrap_or_default();
        let state = State::load(|key| {
            Ok(meta
                .iter()
                .find(|(stored, _)| stored == key)
                .map(|(_, value)| value.clone()))
        })?;

        let families = self.families()?;
        let mut writer = self.lock_writer();
        let mut batch = WriteBatch::default();
        for name in Self::COLUMN_FAMILIES {
            let cf = self.cf(name)?;
            let first = self.db.iterator_cf(cf, IteratorMode::Start).next();
            let last = self.db.iterator_cf(cf, IteratorMode::End).next();
            if let (Some(first), Some(last)) = (first, last) {
                let ((first, _), (last, _)) = (first?, last?);
                batch.delete_range_cf(cf, &first, &last);
                batch.delete_cf(cf, &last);
            }
        }
        for (name, entries) in &export.families {
            if !Self::COLUMN_FAMILIES.contains(&name.as_str()) {
                return Err(Error::Corrupt(format!(
                    "export holds unknown column family {name:?}"
                )));
            }
            let cf = self.cf(name)?;
            for (key, value) in entries {
                batch.put_cf(cf, key, value);
            }
        }
        batch.put_cf(families.meta, META_MARKER, marker);
        self.write(batch, true)?;
        self.publish(&mut writer, state);
        info!(
            revision = state.revision,
            compact_revision = state.compact_revision,
            "storage engine state imported"
        );
        Ok(())
    }

    /// Looks up one of the engine's column families.
    pub(crate) fn cf(&self, name: &str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::Corrupt(format!("missing column family {name:?}")))
    }

    /// All of the engine's column families.
    pub(crate) fn families(&self) -> Result<Families<'_>> {
        Ok(Families {
            kv: self.cf(CF_KV)?,
            hist: self.cf(CF_HIST)?,
            events: self.cf(CF_EVENTS)?,
            dedupe: self.cf(CF_DEDUPE)?,
            meta: self.cf(CF_META)?,
        })
    }

    /// Becomes the writer.
    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, State> {
        // The guarded state is only replaced after a successful write, so a
        // panic elsewhere cannot leave it half-updated: poisoning is harmless.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes a batch with the WAL on, fsynced only when `sync`.
    pub(crate) fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Makes `state` the writer's state and publishes it to the accessors.
    pub(crate) fn publish(&self, writer: &mut State, state: State) {
        *writer = state;
        self.revision.store(state.revision, Ordering::Release);
        self.compact_revision
            .store(state.compact_revision, Ordering::Release);
        debug!(revision = state.revision, "storage state published");
    }

    /// Reads the scalars from the database.
    fn load_state(&self) -> Result<State> {
        let meta = self.families()?.meta;
        State::load(|key| Ok(self.db.get_cf(meta, key)?))
    }
}

/// Reads the scalars as of `snap`.
pub(crate) fn snapshot_state(snap: &Snapshot<'_>, families: &Families<'_>) -> Result<State> {
    State::load(|key| Ok(snap.get_cf(families.meta, key)?))
}

/// The latest version of `key` in `snap`.
pub(crate) fn latest_get(
    snap: &Snapshot<'_>,
    families: &Families<'_>,
    key: &[u8],
) -> Result<Option<KeyValue>> {
    match snap.get_cf(families.kv, key)? {
        Some(bytes) => Ok(Some(decode::<Record>(&bytes)?.into_kv(key.to_vec()))),
        None => Ok(None),
    }
}

/// The latest keys under `prefix` in `snap`.
pub(crate) fn latest_range(
    snap: &Snapshot<'_>,
    families: &Families<'_>,
    prefix: &[u8],
    limit: usize,
) -> Result<RangeResult> {
    let mut result = RangeResult::default();
    for item in snap.iterator_cf(families.kv, IteratorMode::From(prefix, Direction::Forward)) {
        let (key, value) = item?;
        if !key.starts_with(prefix) {
            break;
        }
        result.count += 1;
        if limit == 0 || result.kvs.len() < limit {
            result
                .kvs
                .push(decode::<Record>(&value)?.into_kv(key.into_vec()));
        }
    }
    result.more = result.count > result.kvs.len() as u64;
    Ok(result)
}

/// `key` as of revision `at`, from the history column family.
fn hist_get(
    snap: &Snapshot<'_>,
    families: &Families<'_>,
    key: &[u8],
    at: Revision,
) -> Result<Option<KeyValue>> {
    // The newest version at or before `at` is the entry at or just before
    // (key, at); it belongs to `key` only if it carries key's group prefix.
    let group = hist_group(key);
    let seek = hist_key(key, at);
    let mut iter = snap.iterator_cf(families.hist, IteratorMode::From(&seek, Direction::Reverse));
    let Some(item) = iter.next() else {
        return Ok(None);
    };
    let (stored, value) = item?;
    if stored.len() != group.len() + REV_LEN || !stored.starts_with(&group) {
        return Ok(None);
    }
    Ok(decode::<Option<Record>>(&value)?.map(|record| record.into_kv(key.to_vec())))
}

/// Keys under `prefix` as of revision `at`, from the history column family.
fn hist_range(
    snap: &Snapshot<'_>,
    families: &Families<'_>,
    prefix: &[u8],
    limit: usize,
    at: Revision,
) -> Result<RangeResult> {
    let start = hist_prefix(prefix);
    let mut result = RangeResult::default();
    // (history key, value) of the newest version at or before `at` of the
    // key being scanned.
    let mut candidate: Option<RawEntry> = None;
    let mut finish = |candidate: Option<RawEntry>| -> Result<()> {
        let Some((stored, value)) = candidate else {
            return Ok(());
        };
        let Some(record) = decode::<Option<Record>>(&value)? else {
            return Ok(());
        };
        result.count += 1;
        if limit == 0 || result.kvs.len() < limit {
            let (key, _) = decode_hist_key(&stored)?;
            result.kvs.push(record.into_kv(key));
        }
        Ok(())
    };
    let mut group: Vec<u8> = Vec::new();
    for item in snap.iterator_cf(
        families.hist,
        IteratorMode::From(&start, Direction::Forward),
    ) {
        let (stored, value) = item?;
        if !stored.starts_with(&start) {
            break;
        }
        let split = stored
            .len()
            .checked_sub(REV_LEN)
            .ok_or_else(|| Error::Corrupt("malformed history key".to_owned()))?;
        let rev = decode_rev(&stored[split..])?;
        if stored[..split] != group[..] {
            finish(candidate.take())?;
            group = stored[..split].to_vec();
        }
        if rev <= at {
            candidate = Some((stored, value));
        }
    }
    finish(candidate)?;
    result.more = result.count > result.kvs.len() as u64;
    Ok(result)
}
