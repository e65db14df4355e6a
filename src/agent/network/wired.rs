//! [`Wired`]: a [`Runtime`] that wires each sandbox of the runtime it wraps
//! into the pod network through CNI — the part of the kubelet's
//! `RunPodSandbox` / `StopPodSandbox` that dockershim did with CNI.
//!
//! Invariants:
//! - A sandbox this agent made is in the network iff its ADD result is in
//!   `results/<id>.json`. The file is written after a successful ADD and
//!   removed only after a successful DEL, so an IP is never leaked by a
//!   crash: whatever the file names is DEL'd eventually.
//! - A failed ADD is undone (DEL, sandbox removed) and reported as the
//!   sandbox's failure, which the pod shows (`ContainerCreating` with the
//!   plugin's message) and retries.
//! - [`Wired::maintain`] (once at start, then every [`CHECK_INTERVAL`])
//!   DELs results whose sandbox is gone (a pod removed while the agent was
//!   down), looks for running sandboxes that lost their interface (and, at
//!   start, CHECKs them all through the plugins), and ADDs running
//!   sandboxes that have no result (the agent died between start and ADD).
//!   Sandboxes being torn down are left alone.
//! - A sandbox whose interface is gone (a worker whose namespace was
//!   rebuilt: its veths died with it) is ADDed again under the same
//!   container id; host-local hands the same container its reserved
//!   address again, so the pod keeps its IP. A CHECK that fails with the
//!   interface still in place is reported once (ADD cannot repair it
//!   without DEL, which would change the IP; Debian's portmap 1.1.1 even
//!   fails CHECK on hosts without IPv6 NAT), not acted on.

use super::cni::{self, Attachment, ConfList, PortMapping};
use super::{default_conflist, user_conflist, Dirs, NetworkError, OWN_CONFLIST};
use crate::agent::runtime::{
    Container, ContainerConfig, LogOptions, LogStream, PodRef, PullPolicy, Runtime, RuntimeError,
    Sandbox, SandboxConfig, State,
};
use crate::objects::podcidr::Cidr;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often running sandboxes are CHECKed and stale results DEL'd.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// A running sandbox younger than this without a result is being ADDed by
/// `run_sandbox`: maintenance leaves it alone.
const SETTLE: Duration = Duration::from_secs(30);
/// How long a sandbox waits for the node's podCIDR to be known.
const RANGE_WAIT: Duration = Duration::from_secs(20);

/// What this node's network looks like, as [`super::routes`] learns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    /// The node's podCIDR.
    pub range: Cidr,
    /// The pod interfaces' MTU (lowered under VXLAN), None for the default.
    pub mtu: Option<u32>,
}

/// One sandbox's ADD, as cached on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    /// The configuration list used (DEL and CHECK must see the same).
    config: Value,
    attachment: Attachment,
    result: Value,
    ip: String,
    /// Unix seconds of the ADD.
    added: u64,
}

/// A runtime whose sandboxes are wired by CNI.
pub struct Wired {
    inner: Arc<dyn Runtime>,
    dirs: Dirs,
    local: watch::Receiver<Option<Local>>,
    records: Mutex<HashMap<String, Record>>,
    /// Sandboxes whose failed CHECK was already reported.
    reported: Mutex<std::collections::HashSet<String>>,
    /// Sandboxes being stopped and removed: maintenance leaves them alone
    /// (a CHECK or an ADD racing their teardown would be noise, or a leak).
    closing: Mutex<std::collections::HashSet<String>>,
}

/// Whether the namespace at `netns` (`/proc/PID/ns/net`) has interface
/// `name`, read from that process's `/proc/PID/net/dev` (no exec needed);
/// None when that cannot be read (the process is gone).
fn has_interface(netns: &str, name: &str) -> Option<bool> {
    let proc_dir = netns.strip_suffix("/ns/net")?;
    let dev = std::fs::read_to_string(format!("{proc_dir}/net/dev")).ok()?;
    Some(
        dev.lines()
            .any(|l| l.trim_start().split(':').next() == Some(name)),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn network_error(e: &NetworkError) -> RuntimeError {
    RuntimeError::Other(format!("pod network: {e}"))
}

impl Wired {
    /// Wraps `inner`; results already on disk (from an earlier run) are
    /// loaded.
    ///
    /// # Errors
    /// When the state directories cannot be made.
    pub fn new(
        inner: Arc<dyn Runtime>,
        dirs: Dirs,
        local: watch::Receiver<Option<Local>>,
    ) -> Result<Wired, NetworkError> {
        for dir in [&dirs.conf, &dirs.results, &dirs.ipam] {
            std::fs::create_dir_all(dir)?;
        }
        let mut records = HashMap::new();
        for entry in std::fs::read_dir(&dirs.results)?.filter_map(Result::ok) {
            let path = entry.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            {
                Some(r) => {
                    records.insert(id.to_owned(), r);
                }
                None => tracing::warn!(path = %path.display(), "ignoring an unreadable CNI result"),
            }
        }
        Ok(Wired {
            inner,
            dirs,
            local,
            records: Mutex::new(records),
            reported: Mutex::new(std::collections::HashSet::new()),
            closing: Mutex::new(std::collections::HashSet::new()),
        })
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn closing(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.closing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn closing_now(&self) -> std::collections::HashSet<String> {
        self.closing().clone()
    }

    fn record_path(&self, id: &str) -> std::path::PathBuf {
        self.dirs.results.join(format!("{id}.json"))
    }

    fn save(&self, id: &str, record: Record) -> Result<(), NetworkError> {
        let path = self.record_path(id);
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(&record).map_err(|e| NetworkError::Config {
            path: path.clone(),
            why: e.to_string(),
        })?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
        self.records().insert(id.to_owned(), record);
        Ok(())
    }

    fn forget(&self, id: &str) {
        self.records().remove(id);
        self.reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Err(e) = std::fs::remove_file(self.record_path(id)) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(%id, "removing a CNI result: {e}");
            }
        }
    }

    /// The network configuration to ADD with: a user's file from the conf
    /// dir as it is, else the agent's own for the node's range (written
    /// there, so `ls` shows what runs).
    async fn network(&self) -> Result<ConfList, NetworkError> {
        if let Some(list) = user_conflist(&self.dirs.conf)? {
            return Ok(list);
        }
        let mut local = self.local.clone();
        let wait = local.wait_for(Option::is_some);
        let local = match tokio::time::timeout(RANGE_WAIT, wait).await {
            Ok(Ok(l)) => (*l).ok_or(NetworkError::NoPodCidr)?,
            _ => return Err(NetworkError::NoPodCidr),
        };
        let json = default_conflist(local.range, &self.dirs.ipam, local.mtu);
        let path = self.dirs.conf.join(OWN_CONFLIST);
        let text = serde_json::to_string_pretty(&json).map_err(|e| NetworkError::Config {
            path: path.clone(),
            why: e.to_string(),
        })?;
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, &text)?;
            tracing::info!(path = %path.display(), range = %local.range, "wrote the pod network configuration");
        }
        ConfList::parse(&path, &text)
    }

    fn attachment(id: &str, netns: String, pod: &PodRef, ports: Vec<PortMapping>) -> Attachment {
        Attachment {
            container_id: id.to_owned(),
            netns,
            if_name: "eth0".into(),
            args: format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={id};K8S_POD_UID={}",
                pod.namespace, pod.name, pod.uid
            ),
            port_mappings: ports,
        }
    }

    /// ADDs sandbox `id` (running, with namespace `netns`) and records it.
    async fn add(&self, list: &ConfList, attachment: Attachment) -> Result<String, NetworkError> {
        let id = attachment.container_id.clone();
        let result = match cni::add(&self.dirs.bin, list, &attachment).await {
            Ok(r) => r,
            Err(e) => {
                // Undo what the plugins before the failing one did.
                if let Err(undo) = cni::del(&self.dirs.bin, list, &attachment, None).await {
                    tracing::warn!(%id, "undoing a failed CNI ADD: {undo}");
                }
                return Err(e);
            }
        };
        let Some(ip) = cni::result_ip(&result) else {
            let _ = cni::del(&self.dirs.bin, list, &attachment, Some(&result)).await;
            return Err(NetworkError::Plugin {
                plugin: list.name().to_owned(),
                command: "ADD",
                why: format!("the result gives the pod no IPv4 address: {result}"),
            });
        };
        let ip = ip.to_string();
        self.save(
            &id,
            Record {
                config: list.json.clone(),
                attachment,
                result,
                ip: ip.clone(),
                added: unix_now(),
            },
        )?;
        Ok(ip)
    }

    /// DELs sandbox `id` if it is wired; its namespace is passed only while
    /// the sandbox still runs (a dead one's pid may belong to another
    /// process by now).
    async fn del(&self, id: &str) -> Result<(), RuntimeError> {
        let Some(record) = self.records().get(id).cloned() else {
            return Ok(());
        };
        let netns = self
            .inner
            .netns(id)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let attachment = Attachment {
            netns,
            ..record.attachment.clone()
        };
        let list = ConfList {
            path: self.record_path(id),
            json: record.config.clone(),
        };
        match cni::del(&self.dirs.bin, &list, &attachment, Some(&record.result)).await {
            Ok(()) => {
                self.forget(id);
                tracing::debug!(%id, ip = %record.ip, "pod network removed");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(%id, pod = %attachment.args, "CNI DEL failed (retried): {e}");
                Err(network_error(&e))
            }
        }
    }

    /// One maintenance pass: DEL what is gone, CHECK (and re-ADD) what runs.
    /// `full`: CHECK through the plugins (at start); otherwise only look
    /// for lost interfaces, which costs a file read per sandbox instead of
    /// a plugin exec per plugin and sandbox.
    pub async fn maintain_once(&self, full: bool) {
        let containers = match self.inner.list().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("pod network maintenance: listing sandboxes: {e}");
                return;
            }
        };
        let sandboxes: HashMap<&str, &Container> = containers
            .iter()
            .filter(|c| c.name.is_none())
            .map(|c| (c.id.as_str(), c))
            .collect();
        let known: Vec<(String, Record)> = self
            .records()
            .iter()
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect();
        // Sandboxes gone from the engine are closed.
        self.closing()
            .retain(|id| sandboxes.contains_key(id.as_str()));
        let closing = self.closing_now();
        for (id, record) in known.iter().filter(|(id, _)| !closing.contains(id)) {
            match sandboxes.get(id.as_str()) {
                Some(c) if matches!(c.state, State::Running { .. }) => {
                    self.check(id, record, full).await;
                }
                // Stopped: its namespace is gone; release what it held.
                Some(_) => {
                    let _ = self.del(id).await;
                }
                None if unix_now().saturating_sub(record.added) > SETTLE.as_secs() => {
                    tracing::info!(%id, ip = %record.ip, "releasing the network of a sandbox that is gone");
                    let _ = self.del(id).await;
                }
                None => {}
            }
        }
        for c in sandboxes.values() {
            let State::Running { started_at } = c.state else {
                continue;
            };
            let settled = started_at.elapsed().is_ok_and(|age| age > SETTLE);
            if settled && !closing.contains(&c.id) && !self.records().contains_key(&c.id) {
                // The list may be older than a teardown that just ended.
                if !matches!(self.inner.netns(&c.id).await, Ok(Some(_))) {
                    continue;
                }
                tracing::warn!(id = %c.id, pod = %c.pod.name, "a running sandbox has no pod network; adding it");
                if let Err(e) = self.wire(&c.id, &c.pod, Vec::new()).await {
                    tracing::warn!(id = %c.id, pod = %c.pod.name, "CNI ADD failed: {e}");
                }
            }
        }
    }

    async fn check(&self, id: &str, record: &Record, full: bool) {
        // A teardown may have begun since the pass started.
        if self.closing().contains(id) {
            return;
        }
        let Ok(Some(netns)) = self.inner.netns(id).await else {
            return;
        };
        let attachment = Attachment {
            netns,
            ..record.attachment.clone()
        };
        let list = ConfList {
            path: self.record_path(id),
            json: record.config.clone(),
        };
        let Some(present) = has_interface(&attachment.netns, &attachment.if_name) else {
            return;
        };
        if present && !full {
            return;
        }
        if present {
            let checked = cni::check(&self.dirs.bin, &list, &attachment, &record.result).await;
            let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
            match checked {
                Ok(()) => {
                    reported.remove(id);
                }
                Err(e) => {
                    // A sandbox stopping meanwhile fails its CHECK too.
                    let still = has_interface(&attachment.netns, &attachment.if_name) == Some(true)
                        && !self.closing().contains(id);
                    if still && reported.insert(id.to_owned()) {
                        tracing::warn!(%id, ip = %record.ip, "CNI CHECK failed with the pod's interface in place: {e}");
                    }
                }
            }
            return;
        }
        // Stopping sandboxes lose their interface too: only a running one,
        // not being torn down, is re-added.
        if self.closing().contains(id) || !matches!(self.inner.netns(id).await, Ok(Some(_))) {
            return;
        }
        tracing::warn!(%id, ip = %record.ip, "the pod's interface is gone; adding the sandbox to the network again");
        // host-local refuses a second ADD for a container it holds an
        // address for: release it (DEL also clears what is left of the old
        // wiring), then ADD asking for the same address (host-local's
        // `IP=` argument), so the pod keeps its IP.
        if let Err(e) = cni::del(&self.dirs.bin, &list, &attachment, Some(&record.result)).await {
            tracing::warn!(%id, "CNI DEL before re-ADD: {e}");
        }
        let same_ip = Attachment {
            args: format!("{};IP={}", attachment.args, record.ip),
            ..attachment.clone()
        };
        let added = match cni::add(&self.dirs.bin, &list, &same_ip).await {
            Ok(result) => Ok(result),
            Err(e) => {
                tracing::warn!(%id, ip = %record.ip, "CNI re-ADD with the pod's address failed ({e}); trying any address");
                let _ = cni::del(&self.dirs.bin, &list, &same_ip, None).await;
                cni::add(&self.dirs.bin, &list, &attachment).await
            }
        };
        match added {
            Ok(result) => {
                let ip =
                    cni::result_ip(&result).map_or_else(|| record.ip.clone(), |i| i.to_string());
                if ip != record.ip {
                    tracing::warn!(%id, old = %record.ip, new = %ip, "the pod's IP changed on re-ADD");
                }
                let saved = self.save(
                    id,
                    Record {
                        result,
                        ip,
                        attachment,
                        added: unix_now(),
                        config: record.config.clone(),
                    },
                );
                if let Err(e) = saved {
                    tracing::warn!(%id, "recording a CNI result: {e}");
                }
            }
            Err(e) => {
                tracing::warn!(%id, "CNI re-ADD failed: {e}");
                let _ = cni::del(&self.dirs.bin, &list, &attachment, None).await;
            }
        }
    }

    /// Wires running sandbox `id` of `pod`.
    async fn wire(
        &self,
        id: &str,
        pod: &PodRef,
        ports: Vec<PortMapping>,
    ) -> Result<String, NetworkError> {
        let netns = self
            .inner
            .netns(id)
            .await
            .map_err(|e| NetworkError::Plugin {
                plugin: "runtime".into(),
                command: "ADD",
                why: format!("the sandbox's network namespace: {e}"),
            })?
            .ok_or_else(|| NetworkError::Plugin {
                plugin: "runtime".into(),
                command: "ADD",
                why: "the sandbox is not running".into(),
            })?;
        let list = self.network().await?;
        self.add(&list, Self::attachment(id, netns, pod, ports))
            .await
    }

    /// Runs [`Self::maintain_once`] now and every [`CHECK_INTERVAL`] until
    /// `stop`.
    pub async fn maintain(self: Arc<Self>, stop: CancellationToken) {
        let mut first = true;
        let mut tick = tokio::time::interval(CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.maintain_once(first).await;
                    first = false;
                }
                () = stop.cancelled() => return,
            }
        }
    }
}

#[async_trait]
impl Runtime for Wired {
    async fn version(&self) -> Result<String, RuntimeError> {
        self.inner.version().await
    }

    async fn list(&self) -> Result<Vec<Container>, RuntimeError> {
        let mut list = self.inner.list().await?;
        let records = self.records();
        for c in list.iter_mut().filter(|c| c.name.is_none()) {
            c.ip = records.get(&c.id).map(|r| r.ip.clone());
        }
        Ok(list)
    }

    async fn pull(&self, image: &str, policy: PullPolicy) -> Result<(), RuntimeError> {
        self.inner.pull(image, policy).await
    }

    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox, RuntimeError> {
        // Known before the sandbox exists, so a node without a range makes
        // no container it cannot wire.
        self.network().await.map_err(|e| network_error(&e))?;
        let sandbox = self.inner.run_sandbox(config).await?;
        let ports = config
            .ports
            .iter()
            .filter_map(|p| {
                Some(PortMapping {
                    host_port: p.host_port?,
                    container_port: p.container_port,
                    protocol: p.protocol.to_ascii_lowercase(),
                })
            })
            .collect();
        let started = std::time::Instant::now();
        match self.wire(&sandbox.id, &config.pod, ports).await {
            Ok(ip) => {
                tracing::debug!(pod = %config.pod.name, %ip, took = ?started.elapsed(), "pod network added");
                Ok(Sandbox { id: sandbox.id, ip })
            }
            Err(e) => {
                tracing::warn!(pod = %format!("{}/{}", config.pod.namespace, config.pod.name), "CNI ADD failed: {e}");
                let _ = self.inner.stop(&sandbox.id, Duration::ZERO).await;
                if let Err(re) = self.inner.remove(&sandbox.id).await {
                    tracing::warn!(id = %sandbox.id, "removing an unwired sandbox: {re}");
                }
                Err(network_error(&e))
            }
        }
    }

    async fn create(
        &self,
        pod: &PodRef,
        sandbox: &Sandbox,
        config: &ContainerConfig,
    ) -> Result<String, RuntimeError> {
        self.inner.create(pod, sandbox, config).await
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.start(id).await
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        // A sandbox leaves the network while its namespace still exists
        // (the kubelet's StopPodSandbox order); a failure is retried by
        // `remove`.
        if self.records().contains_key(id) {
            self.closing().insert(id.to_owned());
            let _ = self.del(id).await;
        }
        self.inner.stop(id, grace).await
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        if self.records().contains_key(id) {
            self.closing().insert(id.to_owned());
        }
        self.del(id).await?;
        let removed = self.inner.remove(id).await;
        if matches!(removed, Ok(()) | Err(RuntimeError::NotFound(_))) {
            self.closing().remove(id);
        }
        removed
    }

    async fn logs(&self, id: &str, options: LogOptions) -> Result<LogStream, RuntimeError> {
        self.inner.logs(id, options).await
    }

    async fn exec(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<i64, RuntimeError> {
        self.inner.exec(id, command, timeout).await
    }

    async fn netns(&self, id: &str) -> Result<Option<String>, RuntimeError> {
        self.inner.netns(id).await
    }
}
