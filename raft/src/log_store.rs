//! The Raft log and vote, in two column families of the engine's RocksDB.
//!
//! - `raft_log`: log index (u64, big-endian, so iteration is in log order) ->
//!   bincode of the openraft entry.
//! - `raft_meta`: the vote, the committed log id and the last purged log id.
//!
//! Durability. `save_vote` writes with `sync = true` before it returns: a
//! member must never vote twice in one term. `append` writes the entries (they
//! are readable at once, as openraft requires) and hands the flush callback to a
//! syncer thread; the syncer drains every callback queued meanwhile, runs one
//! WAL fsync and only then tells openraft the entries are durable. Concurrent
//! appends therefore share fsyncs (group commit), and nothing is acknowledged
//! before it is on disk. The WAL is one sequential file shared by all column
//! families, so an fsync also covers every earlier state-machine write.

use crate::codec;
use crate::types::{LogId, MemberId, StorageError, TypeConfig};
use flotilla_storage::rocksdb::{self, Direction, IteratorMode, WriteBatch, WriteOptions};
use flotilla_storage::Engine;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, Entry, OptionalSend, RaftLogId, StorageIOError, Vote};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

/// Column family holding the log entries.
pub const LOG_CF: &str = "raft_log";
/// Column family holding vote, committed and last-purged ids.
pub const META_CF: &str = "raft_meta";
/// The column families this module owns.
pub const COLUMN_FAMILIES: &[&str] = &[LOG_CF, META_CF];

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const PURGED_KEY: &[u8] = b"last_purged";

/// The log store: cheap to clone, every clone reads the same database.
#[derive(Clone)]
pub struct LogStore {
    engine: Arc<Engine>,
    syncer: mpsc::Sender<LogFlushed<TypeConfig>>,
    committed: Arc<AtomicU64>,
}

fn io_err(e: impl std::error::Error + 'static) -> AnyError {
    AnyError::new(&e)
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl LogStore {
    /// Opens the log store over `engine`'s database and starts its syncer
    /// thread. `committed` is kept up to date with the commit index openraft
    /// reports (for metrics).
    ///
    /// # Errors
    /// When the syncer thread cannot be spawned.
    pub fn new(engine: Arc<Engine>, committed: Arc<AtomicU64>) -> std::io::Result<LogStore> {
        let (tx, rx) = mpsc::channel::<LogFlushed<TypeConfig>>();
        let sync_engine = engine.clone();
        std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || sync_loop(&sync_engine, &rx))?;
        Ok(LogStore {
            engine,
            syncer: tx,
            committed,
        })
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.engine.db().cf_handle(name).ok_or_else(|| {
            StorageIOError::read_logs(AnyError::error(format!("column family {name} missing")))
                .into()
        })
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        let cf = self.cf(META_CF)?;
        let Some(bytes) = self
            .engine
            .db()
            .get_cf(cf, key)
            .map_err(|e| StorageIOError::read(io_err(e)))?
        else {
            return Ok(None);
        };
        codec::decode(&bytes)
            .map(Some)
            .map_err(|e| StorageIOError::read(io_err(e)).into())
    }

    fn put_meta<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
        sync: bool,
    ) -> Result<(), StorageError> {
        let cf = self.cf(META_CF)?;
        let bytes = codec::encode(value).map_err(|e| StorageIOError::write(io_err(e)))?;
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.engine
            .db()
            .put_cf_opt(cf, key, bytes, &opts)
            .map_err(|e| StorageIOError::write(io_err(e)).into())
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let cf = self.cf(LOG_CF)?;
        let mut iter = self.engine.db().iterator_cf(cf, IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(|e| StorageIOError::read_logs(io_err(e)))?;
                let entry: Entry<TypeConfig> =
                    codec::decode(&value).map_err(|e| StorageIOError::read_logs(io_err(e)))?;
                Ok(Some(*entry.get_log_id()))
            }
        }
    }
}

/// The syncer: one WAL fsync for every batch of appends that queued up while
/// the previous fsync ran.
fn sync_loop(engine: &Engine, rx: &mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut pending = vec![first];
        pending.extend(rx.try_iter());
        let result = engine.db().flush_wal(true);
        for callback in pending {
            let outcome = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            callback.log_io_completed(outcome);
        }
    }
}

/// Bytes of log entries one AppendEntries carries, about: entries are added
/// while the total is under this, so a message is at most this plus one
/// entry (itself at most [`crate::propose::MAX_ENTRY_BYTES`] plus one
/// request, under 3 MiB), far below the [`crate::rpc::MAX_RPC_BODY`] a peer
/// accepts. etcd's `MaxSizePerMsg`, 1 MiB. Larger would catch up faster per
/// round trip, but openraft 0.9 gives each AppendEntries one heartbeat
/// interval to be sent, appended, fsynced and answered; a message that
/// cannot make it in time is retried unchanged, and a follower would never
/// catch up.
pub const MAX_APPEND_BYTES: usize = 1024 * 1024;

impl LogStore {
    /// The entries of `range` in order, stopping after the one that brings
    /// their encoded size to `budget` (at least one entry when the range has one).
    fn read_entries<RB: RangeBounds<u64>>(
        &self,
        range: &RB,
        budget: usize,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let cf = self.cf(LOG_CF)?;
        let iter = self.engine.db().iterator_cf(
            cf,
            IteratorMode::From(&index_key(start), Direction::Forward),
        );
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for item in iter {
            if bytes >= budget {
                break;
            }
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(io_err(e)))?;
            let index = u64::from_be_bytes(key.as_ref().try_into().map_err(|_| {
                StorageIOError::read_logs(AnyError::error("log key is not 8 bytes"))
            })?);
            if !range.contains(&index) {
                break;
            }
            let entry: Entry<TypeConfig> =
                codec::decode(&value).map_err(|e| StorageIOError::read_logs(io_err(e)))?;
            bytes = bytes.saturating_add(value.len());
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    /// What replication sends: bounded by bytes ([`MAX_APPEND_BYTES`]), not
    /// only by openraft's entry count, so a run of large entries never makes
    /// a message the follower refuses.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        self.read_entries(&(start..end), MAX_APPEND_BYTES)
    }

    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        self.read_entries(&range, usize::MAX)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(PURGED_KEY)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<MemberId>) -> Result<(), StorageError> {
        self.put_meta(VOTE_KEY, vote, true)
            .map_err(|e| StorageIOError::write_vote(AnyError::error(e.to_string())).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<MemberId>>, StorageError> {
        self.get_meta(VOTE_KEY)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: losing it only means re-deriving the commit index.
        self.put_meta(COMMITTED_KEY, &committed, false)?;
        self.committed
            .store(committed.map(|c| c.index).unwrap_or(0), Ordering::Relaxed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed = self.get_meta::<Option<LogId>>(COMMITTED_KEY)?.flatten();
        self.committed
            .store(committed.map(|c| c.index).unwrap_or(0), Ordering::Relaxed);
        Ok(committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.cf(LOG_CF)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            let bytes = codec::encode(&entry).map_err(|e| StorageIOError::write_logs(io_err(e)))?;
            batch.put_cf(cf, index_key(entry.get_log_id().index), bytes);
        }
        self.engine
            .db()
            .write(batch)
            .map_err(|e| StorageIOError::write_logs(io_err(e)))?;
        self.syncer.send(callback).map_err(|_| {
            StorageIOError::write_logs(AnyError::error("log syncer thread stopped"))
        })?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let cf = self.cf(LOG_CF)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, index_key(log_id.index), index_key(u64::MAX));
        batch.delete_cf(cf, index_key(u64::MAX));
        self.engine
            .db()
            .write(batch)
            .map_err(|e| StorageIOError::write_logs(io_err(e)).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first, in the same batch as the deletion, so
        // the log state read back after a crash never has a hole.
        let log_cf = self.cf(LOG_CF)?;
        let meta_cf = self.cf(META_CF)?;
        let bytes = codec::encode(&log_id).map_err(|e| StorageIOError::write_logs(io_err(e)))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(meta_cf, PURGED_KEY, bytes);
        batch.delete_range_cf(
            log_cf,
            index_key(0),
            index_key(log_id.index.saturating_add(1)),
        );
        self.engine
            .db()
            .write(batch)
            .map_err(|e| StorageIOError::write_logs(io_err(e)).into())
    }
}
