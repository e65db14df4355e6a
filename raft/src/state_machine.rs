//! The state machine: committed entries applied, in order, to the storage engine.
//!
//! Each entry is applied in one RocksDB write batch together with the *marker*:
//! the last applied log id and the last membership. Data and marker therefore
//! never diverge, and on restart openraft resumes applying right after the
//! marker's log id.
//!
//! Snapshots are a consistent export of the engine taken inside the state
//! machine task (so no entry is half applied), saved to `snapshot.bin` in the
//! data directory (write, fsync, rename; owner-only, it holds secrets) so the
//! current snapshot survives a restart, and streamed to lagging members by
//! openraft in chunks. A snapshot received from the leader is saved *before*
//! it is imported, and opening the state machine finishes an import that a
//! crash interrupted (a `snapshot.bin` newer than the data is imported), so
//! the file and the data are never out of step.
//!
//! Every applied revision is published on a [`tokio::sync::watch`] channel;
//! watchers read the events they have not seen from the engine's history, so a
//! slow watcher never loses events and a snapshot install needs no special case.

use crate::codec;
use crate::types::{LogId, Member, MemberId, Reply, StorageError, StoredMembership, TypeConfig};
use flotilla_storage::{Engine, Revision};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{AnyError, Entry, EntryPayload, OptionalSend, SnapshotMeta, StorageIOError};
use serde::{Deserialize, Serialize};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

/// What the state machine stores beside the data, in the same batch.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct Marker {
    /// The last entry applied in full.
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// An entry whose first N requests are applied (each request is its own
    /// RocksDB batch). After a crash openraft hands the entry over again and
    /// those N are skipped, so no request is applied twice.
    partial: Option<(LogId, usize)>,
}

/// A snapshot as kept on disk.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<MemberId, Member>,
    data: Vec<u8>,
}

/// The state machine over the engine.
pub struct StateMachine {
    engine: Arc<Engine>,
    marker: Marker,
    snapshot_path: PathBuf,
    snapshot_seq: u64,
    revision: watch::Sender<Revision>,
    snapshot_installs: Arc<std::sync::atomic::AtomicU64>,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

impl StateMachine {
    /// Opens the state machine over `engine`, keeping its snapshot in `dir`.
    ///
    /// # Errors
    /// When the stored marker cannot be read or decoded.
    pub fn open(
        engine: Arc<Engine>,
        dir: &Path,
        revision: watch::Sender<Revision>,
        snapshot_installs: Arc<std::sync::atomic::AtomicU64>,
    ) -> crate::Result<StateMachine> {
        let marker = match engine.marker()? {
            Some(bytes) => codec::decode(&bytes)?,
            None => Marker::default(),
        };
        let mut machine = StateMachine {
            engine,
            marker,
            snapshot_path: dir.join("snapshot.bin"),
            snapshot_seq: 0,
            revision,
            snapshot_installs,
        };
        machine.finish_interrupted_install()?;
        machine.revision.send_replace(machine.engine.revision());
        Ok(machine)
    }

    /// Imports `snapshot.bin` when it is newer than the data: a crash came
    /// between saving a received snapshot and importing it.
    fn finish_interrupted_install(&mut self) -> crate::Result<()> {
        let Ok(Some(stored)) = self.load_snapshot() else {
            return Ok(());
        };
        if stored.meta.last_log_id <= self.marker.last_applied {
            return Ok(());
        }
        tracing::warn!(
            snapshot = %stored.meta.snapshot_id,
            "the data is older than snapshot.bin (a snapshot install was interrupted): importing it"
        );
        self.marker = Marker {
            last_applied: stored.meta.last_log_id,
            membership: stored.meta.last_membership.clone(),
            partial: None,
        };
        self.engine
            .import(&stored.data, &codec::encode(&self.marker)?)?;
        Ok(())
    }

    fn encoded_marker(&self) -> Result<Vec<u8>, StorageError> {
        codec::encode(&self.marker).map_err(sm_err)
    }

    fn load_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        match std::fs::read(&self.snapshot_path) {
            Ok(bytes) => codec::decode(&bytes)
                .map(Some)
                .map_err(|e| StorageIOError::read_snapshot(None, AnyError::new(&e)).into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageIOError::read_snapshot(None, AnyError::new(&e)).into()),
        }
    }
}

/// Builds a snapshot from an export taken when the builder was made.
pub struct SnapshotBuilder {
    /// The export, or why it failed (reported when openraft builds).
    snapshot: Option<Result<StoredSnapshot, String>>,
    save_to: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let stored = self
            .snapshot
            .take()
            .ok_or_else(|| sm_err("snapshot builder used twice"))?
            .map_err(|e| sm_err(format!("exporting the store for a snapshot: {e}")))?;
        save_snapshot(&self.save_to, &stored)?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

/// Writes a snapshot file durably: temporary file, fsync, rename, fsync of the
/// directory, so a crash leaves either the old snapshot or the new one.
fn save_snapshot(path: &Path, snapshot: &StoredSnapshot) -> Result<(), StorageError> {
    let bytes = codec::encode(snapshot).map_err(sm_err)?;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| {
        StorageIOError::write_snapshot(Some(snapshot.meta.signature()), AnyError::new(&e)).into()
    })
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.marker.last_applied, self.marker.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        for entry in entries {
            let previous = self.marker.last_applied;
            self.marker.last_applied = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => {
                    self.engine
                        .set_marker(&self.encoded_marker()?)
                        .map_err(sm_err)?;
                    Vec::new()
                }
                EntryPayload::Membership(membership) => {
                    self.marker.membership = StoredMembership::new(Some(entry.log_id), membership);
                    self.engine
                        .set_marker(&self.encoded_marker()?)
                        .map_err(sm_err)?;
                    Vec::new()
                }
                EntryPayload::Normal(batch) => {
                    let last = std::mem::replace(&mut self.marker.last_applied, previous);
                    let done = match self.marker.partial {
                        Some((id, n)) if id == entry.log_id => n,
                        _ => 0,
                    };
                    let mut responses = vec![None; done.min(batch.len())];
                    for (i, request) in batch.iter().enumerate().skip(done) {
                        if i + 1 == batch.len() {
                            self.marker.last_applied = last;
                            self.marker.partial = None;
                        } else {
                            self.marker.partial = Some((entry.log_id, i + 1));
                        }
                        // An I/O error here stops the member (openraft treats a
                        // storage error as fatal) rather than letting replicas drift.
                        let applied = self
                            .engine
                            .apply(request, &self.encoded_marker()?)
                            .map_err(|e| StorageIOError::apply(entry.log_id, AnyError::new(&e)))?;
                        if !applied.events.is_empty() {
                            self.revision.send_replace(applied.revision);
                        }
                        responses.push(Some(applied.response));
                    }
                    if batch.is_empty() || done >= batch.len() {
                        self.marker.last_applied = last;
                        self.marker.partial = None;
                        self.engine
                            .set_marker(&self.encoded_marker()?)
                            .map_err(sm_err)?;
                    }
                    responses
                }
            };
            replies.push(reply);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Export here, inside the state machine task: nothing is being applied,
        // so the export and the marker describe the same point in the log.
        self.snapshot_seq += 1;
        let snapshot = self.engine.export().map_err(|e| e.to_string()).map(|data| {
            let last = self.marker.last_applied;
            let snapshot_id = match last {
                Some(id) => format!("{}-{}-{}", id.leader_id, id.index, self.snapshot_seq),
                None => format!("empty-{}", self.snapshot_seq),
            };
            StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: last,
                    last_membership: self.marker.membership.clone(),
                    snapshot_id,
                },
                data,
            }
        });
        SnapshotBuilder {
            snapshot: Some(snapshot),
            save_to: self.snapshot_path.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<MemberId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        // The file first: a crash after it is finished by `open`; a crash
        // before it leaves the old file and the old data, consistent.
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        save_snapshot(&self.snapshot_path, &stored)?;
        self.marker = Marker {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            partial: None,
        };
        self.engine
            .import(&stored.data, &self.encoded_marker()?)
            .map_err(|e| {
                StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e))
            })?;
        self.snapshot_installs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.revision.send_replace(self.engine.revision());
        tracing::info!(snapshot = %meta.snapshot_id, "installed snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.load_snapshot()?.map(|stored| Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_storage::{Command, Request};
    use openraft::CommittedLeaderId;

    fn engine(dir: &Path) -> Arc<Engine> {
        Arc::new(
            Engine::open(&dir.join("db"), crate::log_store::COLUMN_FAMILIES).expect("open engine"),
        )
    }

    /// A member that crashed after saving a received snapshot and before
    /// importing it finds the import finished when it opens: the data and
    /// `snapshot.bin` are never out of step. The file is owner-only.
    #[tokio::test]
    async fn an_interrupted_snapshot_install_is_finished_at_open() {
        let source_dir = tempfile::tempdir().expect("tempdir");
        let source = engine(source_dir.path());
        let put = Request {
            id: None,
            command: Command::Put {
                key: b"/k".to_vec(),
                value: b"v".to_vec(),
            },
        };
        source.apply(&put, b"").expect("apply");
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), 5)),
            last_membership: StoredMembership::default(),
            snapshot_id: "1-1-5-1".into(),
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: source.export().expect("export"),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("snapshot.bin");
        save_snapshot(&path, &stored).expect("save");
        let crashed = engine(dir.path());
        let (tx, _rx) = watch::channel(0);
        let mut machine =
            StateMachine::open(crashed.clone(), dir.path(), tx, Arc::default()).expect("open");
        let (applied, _) = machine.applied_state().await.expect("applied state");
        assert_eq!(
            applied, meta.last_log_id,
            "the interrupted import was not finished"
        );
        let read = crashed.get(b"/k", None).expect("get");
        assert_eq!(read.value.map(|kv| kv.value), Some(b"v".to_vec()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "snapshot.bin holds secrets");
    }
}
