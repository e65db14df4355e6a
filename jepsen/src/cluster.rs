//! The cluster under test: one real `ctl` master per network namespace.
//!
//! Member 1 runs `ctl init`; the others `ctl join ADDR --token T
//! --control-plane`, with a master token from `ctl token create`. Each member
//! remembers the exact command that (re)starts it: a SIGKILLed member is
//! restarted by running that command again, which resumes it from its data
//! directory. A member that was removed and wiped joins again with a fresh
//! token, and that join becomes its command.
//!
//! The harness talks to masters only as a client would: HTTPS trusting the
//! cluster CA (`DATA_DIR/pki/ca.crt`), the admin bearer token from
//! `admin.kubeconfig`, and the `ctl` binary's client commands. Processes are
//! spawned with `kill_on_drop`, so dropping the cluster kills them.

use crate::net::{self, Net};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The port every master listens on (each has its own address).
pub const PORT: u16 = 6443;
/// How long a member may take to join and become a voter.
const JOIN_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one `ctl` client command may take.
const CTL_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of the harness's own status probes.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors of starting and driving the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A process could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// Which.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// A `ctl` client command failed.
    #[error("`ctl {args}` failed: {stderr}")]
    Ctl {
        /// Its arguments.
        args: String,
        /// Its standard error.
        stderr: String,
    },
    /// A condition did not hold in time.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        timeout: Duration,
    },
    /// A file of the cluster could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The kubeconfig has no token.
    #[error("no bearer token in {0}")]
    NoToken(PathBuf),
    /// A network command failed.
    #[error(transparent)]
    Net(#[from] net::NetError),
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, ClusterError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One master.
#[derive(Debug)]
pub struct Member {
    /// Its name, `n1`...
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// `IP:PORT`.
    pub addr: String,
    /// Its data directory.
    pub dir: PathBuf,
    /// The `ctl` arguments that (re)start it.
    pub args: Vec<String>,
    /// True while SIGSTOPped.
    pub paused: bool,
    /// True while removed from the cluster (and not running).
    pub removed: bool,
    child: Option<Child>,
    log: PathBuf,
}

impl Member {
    /// `https://IP:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }
}

/// `GET /cluster/local`.
#[derive(Deserialize, serde::Serialize, Clone, Debug)]
pub struct LocalStatus {
    /// Leader, Follower, Candidate or Learner.
    pub state: String,
    /// Current term.
    pub term: u64,
    /// Leader id in hex.
    pub leader: Option<String>,
    /// Applied index.
    pub applied_index: u64,
    /// Snapshots installed from a leader since the process started.
    #[serde(default)]
    pub snapshot_installs: u64,
}

/// One entry of `GET /cluster/members`.
#[derive(Deserialize, Clone, Debug)]
pub struct MemberView {
    /// Member name.
    pub name: String,
    /// `voter` or `learner`.
    pub role: String,
}

/// The running cluster.
pub struct Cluster {
    ctl: PathBuf,
    /// The members, in order `n1`...
    pub members: Vec<Member>,
    /// A copy of the founder's admin kubeconfig (survives wiping the founder).
    pub kubeconfig: PathBuf,
    /// The cluster CA (PEM).
    pub ca_pem: Vec<u8>,
    /// The admin bearer token.
    pub token: String,
    http: reqwest::Client,
    logs: PathBuf,
}

/// An HTTP client trusting only `ca_pem`, following no redirects.
///
/// # Errors
/// When the CA is not PEM or the TLS stack cannot be set up.
pub fn http_client(ca_pem: &[u8], timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem)?)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(10))
        .build()
}

async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut condition: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::Timeout {
                what: what.into(),
                timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Cluster {
    /// Starts `net.hosts.len()` masters: `ctl init` on the first, then one
    /// `ctl join --control-plane` at a time, each awaited until it votes.
    ///
    /// # Errors
    /// When a member does not start or join in time.
    pub async fn start(net: &Net, ctl: &Path, dir: &Path) -> Result<Cluster> {
        let data = dir.join("data");
        let logs = dir.join("logs");
        for d in [&data, &logs] {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        let members = net
            .hosts
            .iter()
            .enumerate()
            .map(|(i, host)| Member {
                name: format!("n{}", i + 1),
                netns: host.netns.clone(),
                addr: format!("{}:{PORT}", host.ip),
                dir: data.join(format!("n{}", i + 1)),
                args: Vec::new(),
                paused: false,
                removed: false,
                child: None,
                log: logs.join(format!("n{}.log", i + 1)),
            })
            .collect();
        let mut cluster = Cluster {
            ctl: ctl.to_path_buf(),
            members,
            kubeconfig: dir.join("admin.kubeconfig"),
            ca_pem: Vec::new(),
            token: String::new(),
            http: reqwest::Client::new(),
            logs,
        };
        let founder = &mut cluster.members[0];
        founder.args = vec![
            "init".into(),
            "--data-dir".into(),
            founder.dir.display().to_string(),
            "--listen".into(),
            founder.addr.clone(),
            "--name".into(),
            founder.name.clone(),
            "--no-agent".into(),
        ];
        cluster.spawn(0)?;
        let founder_kubeconfig = cluster.members[0].dir.join("admin.kubeconfig");
        let ca_path = cluster.members[0].dir.join("pki").join("ca.crt");
        wait_until(
            "the founder to write admin.kubeconfig",
            JOIN_TIMEOUT,
            || {
                let ready = founder_kubeconfig.exists() && ca_path.exists();
                async move { ready.then_some(()) }
            },
        )
        .await?;
        std::fs::copy(&founder_kubeconfig, &cluster.kubeconfig).map_err(io(&founder_kubeconfig))?;
        cluster.ca_pem = std::fs::read(&ca_path).map_err(io(&ca_path))?;
        let text = std::fs::read_to_string(&cluster.kubeconfig).map_err(io(&cluster.kubeconfig))?;
        cluster.token = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .map(|t| t.trim().trim_matches('"').to_owned())
            .ok_or_else(|| ClusterError::NoToken(cluster.kubeconfig.clone()))?;
        cluster.http = http_client(&cluster.ca_pem, PROBE_TIMEOUT)?;
        for i in 1..cluster.members.len() {
            cluster.join(i, 0).await?;
        }
        Ok(cluster)
    }

    /// Starts member `i` with its command, its output appended to its log.
    fn spawn(&mut self, i: usize) -> Result<()> {
        let member = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .map_err(io(&member.log))?;
        let err = log.try_clone().map_err(io(&member.log))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &member.netns])
            .arg(&self.ctl)
            .args(&member.args)
            .env("FLOTILLA_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ClusterError::Spawn {
                what: format!("{} ({})", member.name, self.ctl.display()),
                source,
            })?;
        tracing::debug!(member = %member.name, pid = ?child.id(), "started");
        member.child = Some(child);
        member.paused = false;
        Ok(())
    }

    /// Joins member `i` through member `via` with a fresh master token, and
    /// waits until it is a voter.
    ///
    /// # Errors
    /// When the token cannot be made or the member does not become a voter.
    pub async fn join(&mut self, i: usize, via: usize) -> Result<()> {
        let server = self.members[via].addr.clone();
        let token = self
            .ctl_at(via, &["token", "create", "--role", "master", "--ttl", "1h"])
            .await?
            .trim()
            .to_owned();
        let member = &mut self.members[i];
        member.args = vec![
            "join".into(),
            server,
            "--token".into(),
            token,
            "--control-plane".into(),
            "--data-dir".into(),
            member.dir.display().to_string(),
            "--listen".into(),
            member.addr.clone(),
            "--name".into(),
            member.name.clone(),
        ];
        member.removed = false;
        self.spawn(i)?;
        let name = self.members[i].name.clone();
        let this = &*self;
        wait_until(&format!("{name} to become a voter"), JOIN_TIMEOUT, || {
            let name = name.clone();
            async move {
                let members = this.member_list().await?;
                members
                    .iter()
                    .any(|m| m.name == name && m.role == "voter")
                    .then_some(())
            }
        })
        .await
    }

    /// Runs `ctl --kubeconfig K --server MEMBER ARGS...` and returns stdout.
    ///
    /// # Errors
    /// When it fails or takes longer than 20 s.
    pub async fn ctl_at(&self, member: usize, args: &[&str]) -> Result<String> {
        let mut command = Command::new(&self.ctl);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--server", &self.members[member].addr])
            .args(args)
            .env("FLOTILLA_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let joined = args.join(" ");
        let output = tokio::time::timeout(CTL_TIMEOUT, command.output())
            .await
            .map_err(|_| ClusterError::Timeout {
                what: format!("ctl {joined}"),
                timeout: CTL_TIMEOUT,
            })?
            .map_err(|source| ClusterError::Spawn {
                what: format!("ctl {joined}"),
                source,
            })?;
        if !output.status.success() {
            return Err(ClusterError::Ctl {
                args: joined,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// GET `path` on member `i` with the admin token; None on any failure.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        i: usize,
        path: &str,
    ) -> Option<T> {
        let response = self
            .http
            .get(format!("{}{path}", self.members[i].url()))
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// The member list as the first member that answers sees it.
    pub async fn member_list(&self) -> Option<Vec<MemberView>> {
        for i in self.reachable() {
            if let Some(list) = self.get_json(i, "/cluster/members").await {
                return Some(list);
            }
        }
        None
    }

    /// Members that are running and not paused (by index).
    pub fn reachable(&self) -> Vec<usize> {
        self.members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.child.is_some() && !m.paused && !m.removed)
            .map(|(i, _)| i)
            .collect()
    }

    /// The member that says it leads in the highest term, if any answers so.
    pub async fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for i in self.reachable() {
            if let Some(local) = self.get_json::<LocalStatus>(i, "/cluster/local").await {
                if local.state == "Leader" && best.is_none_or(|(term, _)| local.term > term) {
                    best = Some((local.term, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// SIGKILLs member `i` and reaps it.
    pub async fn kill(&mut self, i: usize) {
        let member = &mut self.members[i];
        if let Some(mut child) = member.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        member.paused = false;
    }

    /// Restarts member `i` by running its own command again.
    ///
    /// # Errors
    /// When the process cannot be started.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        if self.members[i].is_running() || self.members[i].removed {
            return Ok(());
        }
        self.spawn(i)
    }

    /// SIGSTOP (`stop = true`) or SIGCONT member `i`.
    ///
    /// # Errors
    /// When `kill` fails.
    pub fn signal_pause(&mut self, i: usize, stop: bool) -> Result<()> {
        let member = &mut self.members[i];
        let Some(pid) = member.pid() else {
            return Ok(());
        };
        net::run(
            "kill",
            &[if stop { "-STOP" } else { "-CONT" }, &pid.to_string()],
        )?;
        member.paused = stop;
        Ok(())
    }

    /// Removes member `i` with `ctl member remove` (through another member),
    /// kills it and wipes its data directory.
    ///
    /// # Errors
    /// When the removal is refused or fails.
    pub async fn remove(&mut self, i: usize) -> Result<()> {
        let name = self.members[i].name.clone();
        let mut refusal = ClusterError::Timeout {
            what: format!("another member to remove {name} through"),
            timeout: Duration::ZERO,
        };
        let mut removed = false;
        for via in self.reachable().into_iter().filter(|&v| v != i) {
            match self.ctl_at(via, &["member", "remove", &name]).await {
                Ok(_) => {
                    removed = true;
                    break;
                }
                Err(e) => refusal = e,
            }
        }
        if !removed {
            return Err(refusal);
        }
        self.kill(i).await;
        self.members[i].removed = true;
        let dir = self.members[i].dir.clone();
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ClusterError::Io { path: dir, source }),
        }
    }

    /// Joins a removed member `i` again (wiped, fresh token) through any
    /// other reachable member.
    ///
    /// # Errors
    /// When no member can make a token or the join does not finish in time.
    pub async fn rejoin(&mut self, i: usize) -> Result<()> {
        let via = self
            .leader()
            .await
            .filter(|&l| l != i)
            .or_else(|| self.reachable().into_iter().find(|&v| v != i))
            .ok_or_else(|| ClusterError::Timeout {
                what: "a member to join through".into(),
                timeout: Duration::ZERO,
            })?;
        self.join(i, via).await
    }

    /// Waits until every member runs, is a voter, and agrees on one leader.
    ///
    /// # Errors
    /// When that does not happen within `timeout`.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        let this = self;
        wait_until(
            "every member to agree on a leader",
            timeout,
            || async move {
                let voters = this.member_list().await?;
                if voters.len() != this.members.len() || voters.iter().any(|m| m.role != "voter") {
                    return None;
                }
                let mut leaders = std::collections::BTreeSet::new();
                for i in 0..this.members.len() {
                    let local: LocalStatus = this.get_json(i, "/cluster/local").await?;
                    leaders.insert(local.leader?);
                }
                (leaders.len() == 1).then_some(())
            },
        )
        .await
    }

    /// Each member's own status (None for one that does not answer).
    pub async fn statuses(&self) -> Vec<(String, Option<LocalStatus>)> {
        let mut statuses = Vec::new();
        for (i, member) in self.members.iter().enumerate() {
            statuses.push((
                member.name.clone(),
                self.get_json(i, "/cluster/local").await,
            ));
        }
        statuses
    }

    /// Where member logs are written.
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// Continues paused members and kills every member.
    pub async fn stop(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].paused {
                let _ = self.signal_pause(i, false);
            }
            self.kill(i).await;
        }
    }
}
