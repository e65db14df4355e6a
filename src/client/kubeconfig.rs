//! Kubeconfig files: the admin one `ctl init` and `ctl join` write, and the
//! reading `ctl` does to find the cluster (as kubectl does).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A kubeconfig, limited to the fields Flotilla reads and writes; other
/// fields are ignored on reading.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Kubeconfig {
    /// Always `v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// Always `Config`.
    #[serde(default)]
    pub kind: String,
    /// Named clusters.
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    /// Named users.
    #[serde(default)]
    pub users: Vec<NamedUser>,
    /// Named contexts.
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    /// The context in use.
    #[serde(rename = "current-context", default)]
    pub current_context: String,
}

/// A cluster entry.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct NamedCluster {
    /// Entry name.
    pub name: String,
    /// The cluster.
    pub cluster: Cluster,
}

/// A context entry.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct NamedContext {
    /// Entry name.
    pub name: String,
    /// The context.
    pub context: Context,
}

/// A user entry.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct NamedUser {
    /// Entry name.
    pub name: String,
    /// The credential.
    pub user: User,
}

/// Where a cluster is.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Cluster {
    /// API server URL.
    #[serde(default)]
    pub server: String,
    /// The CA to trust, base64 of its PEM.
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
}

/// A credential.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct User {
    /// Bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Which cluster and user a context uses.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Context {
    /// Cluster entry name.
    #[serde(default)]
    pub cluster: String,
    /// User entry name.
    #[serde(default)]
    pub user: String,
}

/// Why a kubeconfig could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// The file could not be read or written.
    #[error("kubeconfig {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a kubeconfig.
    #[error("kubeconfig {path} is not valid YAML: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The current context is missing or points nowhere.
    #[error("kubeconfig {path}: {message}")]
    Incomplete {
        /// The file.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
}

/// The server and token a kubeconfig's current context selects.
#[derive(Debug, Clone)]
pub struct Selected {
    /// API server URL.
    pub server: String,
    /// The CA (PEM) to trust, if the kubeconfig has one.
    pub ca_pem: Option<String>,
    /// Bearer token, if any.
    pub token: Option<String>,
}

impl Kubeconfig {
    /// A kubeconfig with one cluster (trusting `ca_pem`), one admin user and
    /// one context.
    pub fn admin(cluster_name: &str, server: &str, token: &str, ca_pem: &str) -> Kubeconfig {
        use base64::Engine as _;
        let user = format!("{cluster_name}-admin");
        Kubeconfig {
            api_version: "v1".into(),
            kind: "Config".into(),
            clusters: vec![NamedCluster {
                name: cluster_name.into(),
                cluster: Cluster {
                    server: server.into(),
                    certificate_authority_data: Some(
                        base64::engine::general_purpose::STANDARD.encode(ca_pem),
                    ),
                },
            }],
            users: vec![NamedUser {
                name: user.clone(),
                user: User {
                    token: Some(token.into()),
                },
            }],
            contexts: vec![NamedContext {
                name: user.clone(),
                context: Context {
                    cluster: cluster_name.into(),
                    user,
                },
            }],
            current_context: format!("{cluster_name}-admin"),
        }
    }

    /// Reads a kubeconfig file.
    ///
    /// # Errors
    /// When the file cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Kubeconfig, KubeconfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| KubeconfigError::Io {
            path: path.into(),
            source,
        })?;
        serde_yaml_ng::from_str(&text).map_err(|e| KubeconfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// Writes the kubeconfig with owner-only permissions (it holds a credential).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), KubeconfigError> {
        let io = |source| KubeconfigError::Io {
            path: path.into(),
            source,
        };
        let text = serde_yaml_ng::to_string(self).map_err(|e| KubeconfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        write_private(path, text.as_bytes()).map_err(io)
    }

    /// The server and token of the current context.
    ///
    /// # Errors
    /// When the current context, its cluster or its user is missing.
    pub fn selected(&self, path: &Path) -> Result<Selected, KubeconfigError> {
        let incomplete = |message: String| KubeconfigError::Incomplete {
            path: path.into(),
            message,
        };
        let context = self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context)
            .ok_or_else(|| incomplete(format!("no context named {:?}", self.current_context)))?;
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == context.context.cluster)
            .ok_or_else(|| incomplete(format!("no cluster named {:?}", context.context.cluster)))?;
        let token = self
            .users
            .iter()
            .find(|u| u.name == context.context.user)
            .and_then(|u| u.user.token.clone());
        let ca_pem = match &cluster.cluster.certificate_authority_data {
            None => None,
            Some(data) => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|e| {
                        incomplete(format!("certificate-authority-data is not base64: {e}"))
                    })?;
                Some(String::from_utf8(bytes).map_err(|_| {
                    incomplete("certificate-authority-data is not a PEM certificate".into())
                })?)
            }
        };
        Ok(Selected {
            server: cluster.cluster.server.clone(),
            ca_pem,
            token,
        })
    }
}

/// Writes `bytes` to `path` readable by the owner only, durably.
///
/// # Errors
/// When the file cannot be created or written.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_round_trips_and_selects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.kubeconfig");
        Kubeconfig::admin("flotilla", "https://127.0.0.1:6443", "secret", "PEM")
            .save(&path)
            .expect("save");
        let selected = Kubeconfig::load(&path)
            .expect("load")
            .selected(&path)
            .expect("selected");
        assert_eq!(selected.server, "https://127.0.0.1:6443");
        assert_eq!(selected.ca_pem.as_deref(), Some("PEM"));
        assert_eq!(selected.token.as_deref(), Some("secret"));
    }
}
