//! A member's identity on disk: `DATA_DIR/member.json`.
//!
//! Written once when the member is created (by `ctl init`, or by step one of
//! `ctl join`) and read back whenever the same command is run again, which is
//! how a member resumes instead of creating a new cluster or joining twice.

use crate::client::kubeconfig::write_private;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file name inside the data directory.
pub const FILE: &str = "member.json";

/// Everything a member needs to restart as itself.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Identity {
    /// The cluster this member belongs to.
    pub cluster_id: String,
    /// Raft id.
    pub id: u64,
    /// Member name.
    pub name: String,
    /// `HOST:PORT` the member listens on.
    pub listen: String,
    /// `HOST:PORT` others reach it at.
    pub advertise: String,
    /// Authenticates Raft RPCs between masters.
    pub peer_secret: String,
    /// The admin bearer token.
    pub admin_token: String,
    /// True for the member that created the cluster with `ctl init`.
    pub founder: bool,
    /// True once the member is a voter (for joiners: after step two).
    pub joined: bool,
}

/// Why the identity file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Read or write failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not an identity.
    #[error("{path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        message: String,
    },
}

impl Identity {
    /// Path of the identity file in `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(FILE)
    }

    /// Loads the identity in `data_dir`, or None when there is none yet.
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed.
    pub fn load(data_dir: &Path) -> Result<Option<Identity>, IdentityError> {
        let path = Identity::path(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| IdentityError::Corrupt {
                        path,
                        message: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(IdentityError::Io { path, source }),
        }
    }

    /// Saves the identity durably with owner-only permissions.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, data_dir: &Path) -> Result<(), IdentityError> {
        let path = Identity::path(data_dir);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| IdentityError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::create_dir_all(data_dir)
            .and_then(|()| write_private(&path, &bytes))
            .map_err(|source| IdentityError::Io { path, source })
    }
}
