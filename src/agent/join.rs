//! A worker's membership: joining with a worker token, and resuming.
//!
//! `ctl join SERVER --token WORKER_TOKEN --data-dir DIR` checks the
//! server's CA against the fingerprint in the token, then asks the leader
//! for a node credential. What comes back is kept in DIR: `worker.json`
//! (name, cluster, masters, address), `node.kubeconfig` (the node's own
//! credential, usable with kubectl to see what the node sees) and the agent's
//! serving certificate under `pki/`. Running the same command again finds
//! `worker.json` and resumes without the token.

use crate::client::kubeconfig::Kubeconfig;
use crate::client::{self, Client};
use crate::security::pki::Serving;
use crate::wire::{WorkerJoinGrant, WorkerJoinRequest};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a joined worker keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Worker {
    /// Node name.
    pub name: String,
    /// The cluster's id.
    pub cluster_id: String,
    /// Masters' addresses (`HOST:PORT`).
    pub masters: Vec<String>,
    /// The address the node is reached at.
    pub address: String,
}

/// A worker with its secrets, ready to run.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The identity.
    pub worker: Worker,
    /// The node credential.
    pub credential: String,
    /// The cluster CA (PEM).
    pub ca_pem: String,
    /// The agent's serving certificate.
    pub serving: Serving,
    /// The secret masters present to the agent's log server.
    pub agent_secret: String,
    /// Where the node's kubeconfig is.
    pub kubeconfig: PathBuf,
}

impl Joined {
    /// An API client with the node's credential, knowing every master.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn client(&self) -> Result<Client, client::ClientError> {
        Client::new(
            &self.worker.masters,
            Some(self.credential.clone()),
            Some(&self.ca_pem),
            Some(self.kubeconfig.with_extension("members.json")),
        )
    }
}

fn worker_file(dir: &Path) -> PathBuf {
    dir.join("worker.json")
}

fn pki_dir(dir: &Path) -> PathBuf {
    dir.join("pki")
}

/// Loads a joined worker from `dir`, if there is one.
///
/// # Errors
/// When the files exist but cannot be read.
pub fn load(dir: &Path) -> anyhow::Result<Option<Joined>> {
    let path = worker_file(dir);
    if !path.exists() {
        return Ok(None);
    }
    let worker: Worker = serde_json::from_slice(&std::fs::read(&path)?)
        .with_context(|| format!("{} is not a worker identity", path.display()))?;
    let kubeconfig = dir.join("node.kubeconfig");
    let selected = Kubeconfig::load(&kubeconfig)?.selected(&kubeconfig)?;
    let read = |name: &str| -> anyhow::Result<String> {
        let p = pki_dir(dir).join(name);
        std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    };
    Ok(Some(Joined {
        credential: selected
            .token
            .context("node.kubeconfig has no token: remove the data directory and join again")?,
        ca_pem: read("ca.crt")?,
        serving: Serving {
            cert_pem: read("agent.crt")?,
            key_pem: read("agent.key")?,
        },
        agent_secret: read("agent.secret")?.trim().to_owned(),
        worker,
        kubeconfig,
    }))
}

fn save(dir: &Path, joined: &Joined) -> anyhow::Result<()> {
    // Owner-only from creation: the directory holds the node credential.
    crate::security::create_private_dir(dir)
        .and_then(|()| crate::security::create_private_dir(&pki_dir(dir)))
        .with_context(|| format!("creating {}", pki_dir(dir).display()))?;
    let write = |path: PathBuf, text: &str| -> anyhow::Result<()> {
        crate::client::kubeconfig::write_private(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    };
    write(pki_dir(dir).join("ca.crt"), &joined.ca_pem)?;
    write(pki_dir(dir).join("agent.crt"), &joined.serving.cert_pem)?;
    write(pki_dir(dir).join("agent.key"), &joined.serving.key_pem)?;
    write(pki_dir(dir).join("agent.secret"), &joined.agent_secret)?;
    let server = joined
        .worker
        .masters
        .first()
        .map(|m| client::base_url(m))
        .unwrap_or_default();
    Kubeconfig::admin("flotilla", &server, &joined.credential, &joined.ca_pem)
        .save(&joined.kubeconfig)?;
    // The identity last: its presence means the join completed.
    write(
        worker_file(dir),
        &serde_json::to_string_pretty(&joined.worker)?,
    )?;
    Ok(())
}

/// Joins the cluster at `server` with a worker `token` as node `name`,
/// reachable at `address`, keeping the result in `dir`.
///
/// # Errors
/// A refused token (named: wrong, expired, revoked, wrong role), a taken
/// name, an unreachable server, an unwritable directory.
pub async fn join(
    server: &str,
    token: &str,
    name: &str,
    address: &str,
    dir: &Path,
) -> anyhow::Result<Joined> {
    let (client, ca_pem) = crate::master::trusted_client(server, token).await?;
    let request = WorkerJoinRequest {
        token: token.to_owned(),
        name: name.to_owned(),
        address: address.to_owned(),
    };
    let grant: WorkerJoinGrant = client
        .post("/cluster/join/worker", &request)
        .await
        .map_err(|e| anyhow::anyhow!("join refused by {server}: {e}"))?;
    if grant.ca_pem.trim() != ca_pem.trim() {
        anyhow::bail!("{server} answered the join with a different CA than it presented");
    }
    let mut masters = grant.masters.clone();
    if !masters.iter().any(|m| m == server) {
        masters.insert(0, server.to_owned());
    }
    let joined = Joined {
        worker: Worker {
            name: name.to_owned(),
            cluster_id: grant.cluster_id,
            masters,
            address: address.to_owned(),
        },
        credential: grant.credential,
        ca_pem: grant.ca_pem,
        serving: grant.serving,
        agent_secret: grant.agent_secret,
        kubeconfig: dir.join("node.kubeconfig"),
    };
    save(dir, &joined)?;
    Ok(joined)
}
