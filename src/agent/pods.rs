//! Pod workers: one task per pod bound to this node, bringing the runtime
//! in line with the pod's spec and reporting its status.
//!
//! A worker wakes when its pod changes (the watch), when the runtime's
//! containers change (the relist in [`super`]), when a probe result flips,
//! at a back-off deadline, or every [`RESYNC`]. Each time it *syncs*:
//!
//! - pod marked for deletion: stop the containers (SIGTERM, then SIGKILL
//!   after the grace period), remove them and the sandbox, then confirm
//!   the deletion to the API (a DELETE with grace 0);
//! - pod gone from the API: the same, without confirming;
//! - otherwise: make sure the sandbox runs (a dead sandbox takes the pod's
//!   containers with it, as in Kubernetes), then for each container of the
//!   spec, in order: pull and start it if it never ran; restart it if it
//!   exited and the restart policy says so — at once the first time, then
//!   after an exponential back-off (10 s doubling to 5 min, reported as
//!   CrashLoopBackOff); kill it if its liveness probe fails. A failed pull is
//!   ErrImagePull, then ImagePullBackOff while waiting to retry
//!   (ErrImageNeverPull with policy Never). Containers of the pod the spec no
//!   longer has are removed, and all but the last two runs of each container
//!   are cleaned up.
//!
//! What to do is decided by a pure function ([`super::plan`]); this module
//! executes its steps against the runtime and logs every step that fails.
//! Then the status is computed ([`super::status`]) and posted when it
//! changed. Everything the worker knows is in the runtime's labels and the
//! API, so a restarted agent picks up where the last one stopped.

use super::api::{encode, Api, ApiCallError};
use super::plan::{self, Backoff, Memory, Step};
use super::probe::{self, Kind, Results};
use super::runtime::{
    Container, ContainerConfig, PodRef, Port, PullPolicy, Runtime, RuntimeError, Sandbox,
    SandboxConfig, State,
};
use super::status::{self, ContainerView};
use crate::objects::{meta, pod, quantity};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A worker syncs at least this often.
pub const RESYNC: Duration = Duration::from_secs(10);
/// Grace for stopping containers of a pod that vanished from the API.
const VANISHED_GRACE: Duration = Duration::from_secs(2);

/// What every worker of one agent shares.
pub struct Shared {
    /// The API, with the node's credential.
    pub api: Api,
    /// The container runtime.
    pub runtime: Arc<dyn Runtime>,
    /// Prefix of container ids in status (`docker://`).
    pub scheme: String,
    /// The node's address, reported as hostIP.
    pub host_ip: String,
    /// Probe results.
    pub probes: Results,
    /// HTTP client for httpGet probes (plain HTTP to pod IPs).
    pub probe_http: reqwest::Client,
}

/// The container config of spec container `c` of `pod`, run `attempt`.
pub fn container_config(c: &Value, pod: &Value, pod_ip: &str, attempt: u32) -> ContainerConfig {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let env = pod::list(c, "env")
        .iter()
        .filter_map(|e| {
            let name = e["name"].as_str()?.to_owned();
            let value = match e["value"].as_str() {
                Some(v) => v.to_owned(),
                None => match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    Some("metadata.name") => meta::name(pod).unwrap_or("").to_owned(),
                    Some("metadata.namespace") => meta::namespace(pod).unwrap_or("").to_owned(),
                    Some("metadata.uid") => {
                        pod["metadata"]["uid"].as_str().unwrap_or("").to_owned()
                    }
                    Some("spec.nodeName") => pod::node_name(pod).unwrap_or("").to_owned(),
                    Some("status.podIP") => pod_ip.to_owned(),
                    _ => String::new(),
                },
            };
            Some((name, value))
        })
        .collect();
    let limits = &c["resources"]["limits"];
    ContainerConfig {
        name: c["name"].as_str().unwrap_or("").to_owned(),
        image: c["image"].as_str().unwrap_or("").to_owned(),
        command: strings(&c["command"]),
        args: strings(&c["args"]),
        env,
        working_dir: c["workingDir"].as_str().map(str::to_owned),
        cpu_millis: quantity::cpu_millis(&limits["cpu"]).unwrap_or(0),
        memory: quantity::units(&limits["memory"]).unwrap_or(0),
        attempt,
    }
}

/// The sandbox config of `pod`.
pub fn sandbox_config(pod: &Value, pod_ref: &PodRef) -> SandboxConfig {
    let ports = pod::list(&pod["spec"], "containers")
        .iter()
        .flat_map(|c| pod::list(c, "ports"))
        .filter_map(|p| {
            Some(Port {
                container_port: u16::try_from(p["containerPort"].as_u64()?).ok()?,
                host_port: p["hostPort"].as_u64().and_then(|h| u16::try_from(h).ok()),
                protocol: p["protocol"].as_str().unwrap_or("TCP").to_owned(),
            })
        })
        .collect();
    SandboxConfig {
        pod: pod_ref.clone(),
        hostname: pod["spec"]["hostname"]
            .as_str()
            .unwrap_or(&pod_ref.name)
            .to_owned(),
        ports,
        dns_servers: Vec::new(),
        dns_search: vec![
            format!("{}.svc.cluster.local", pod_ref.namespace),
            "svc.cluster.local".into(),
            "cluster.local".into(),
        ],
    }
}

/// The pod's path in the API.
fn pod_path(pod: &PodRef) -> String {
    format!(
        "/api/v1/namespaces/{}/pods/{}",
        encode(&pod.namespace),
        encode(&pod.name)
    )
}

/// One pod's worker.
pub struct Worker {
    shared: Arc<Shared>,
    pod: PodRef,
    spec: watch::Receiver<Option<Arc<Value>>>,
    wake: Arc<Notify>,
    /// Back-offs and waiting reasons, kept between syncs.
    memory: Memory,
    probes: HashMap<String, CancellationToken>,
    last_status: Option<Value>,
    confirmed: bool,
}

impl Worker {
    /// A worker for `pod`, following `spec` (None once the pod is gone from
    /// the API), woken by `wake`.
    pub fn new(
        shared: Arc<Shared>,
        pod: PodRef,
        spec: watch::Receiver<Option<Arc<Value>>>,
        wake: Arc<Notify>,
    ) -> Worker {
        Worker {
            shared,
            pod,
            spec,
            wake,
            memory: Memory::default(),
            probes: HashMap::new(),
            last_status: None,
            confirmed: false,
        }
    }

    /// Runs until the pod is gone from the API and its containers removed,
    /// or until `stop` (the agent shuts down; containers keep running).
    pub async fn run(mut self, stop: CancellationToken) {
        // Set when the agent dropped its side: the pod is then treated as gone.
        let mut detached = false;
        loop {
            let current = if detached {
                None
            } else {
                self.spec.borrow_and_update().clone()
            };
            let next = match current {
                None => {
                    if self.teardown(VANISHED_GRACE).await {
                        break;
                    }
                    Some(Duration::from_secs(1))
                }
                Some(pod) if pod::is_terminating(&pod) => {
                    let grace = pod["metadata"]["deletionGracePeriodSeconds"]
                        .as_u64()
                        .unwrap_or(30);
                    if self.teardown(Duration::from_secs(grace)).await && !self.confirmed {
                        self.confirm_deletion().await;
                    }
                    Some(Duration::from_secs(1))
                }
                Some(pod) => match self.sync(&pod).await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(pod = %self.pod.name, "sync failed: {e}");
                        Some(Duration::from_secs(2))
                    }
                },
            };
            let sleep = next.unwrap_or(RESYNC).min(RESYNC);
            tokio::select! {
                changed = self.spec.changed(), if !detached => detached = changed.is_err(),
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
                () = stop.cancelled() => break,
            }
        }
        for token in self.probes.values() {
            token.cancel();
        }
    }

    async fn containers(&self) -> Result<Vec<Container>, RuntimeError> {
        let all = self.shared.runtime.list().await?;
        Ok(all
            .into_iter()
            .filter(|c| c.pod.uid == self.pod.uid)
            .collect())
    }

    /// Stops and removes every container and sandbox of the pod; true when
    /// nothing is left.
    async fn teardown(&mut self, grace: Duration) -> bool {
        for token in self.probes.values() {
            token.cancel();
        }
        self.probes.clear();
        let Ok(containers) = self.containers().await else {
            return false;
        };
        if containers.is_empty() {
            return true;
        }
        let runtime = self.shared.runtime.clone();
        // App containers first (in parallel), then the sandboxes.
        let (apps, sandboxes): (Vec<&Container>, Vec<&Container>) =
            containers.iter().partition(|c| c.name.is_some());
        let stops = apps
            .iter()
            .filter(|c| !matches!(c.state, State::Exited { .. }))
            .map(|c| runtime.stop(&c.id, grace));
        for result in futures::future::join_all(stops).await {
            if let Err(e) = result {
                tracing::debug!(pod = %self.pod.name, "stopping a container: {e}");
            }
        }
        for c in apps.iter().chain(sandboxes.iter()) {
            if c.name.is_none() {
                if let Err(e) = runtime.stop(&c.id, Duration::ZERO).await {
                    tracing::debug!(pod = %self.pod.name, "stopping the sandbox: {e}");
                }
            }
            self.shared.probes.forget(&c.id);
            if let Err(e) = runtime.remove(&c.id).await {
                if !matches!(e, RuntimeError::NotFound(_)) {
                    tracing::debug!(pod = %self.pod.name, "removing a container: {e}");
                    return false;
                }
            }
        }
        tracing::info!(pod = %format!("{}/{}", self.pod.namespace, self.pod.name), "pod's containers removed");
        true
    }

    async fn confirm_deletion(&mut self) {
        match self.shared.api.delete(&pod_path(&self.pod), 0).await {
            Ok(()) => self.confirmed = true,
            Err(e) if e.code() == Some(404) => self.confirmed = true,
            Err(e) => tracing::warn!(pod = %self.pod.name, "confirming the deletion: {e}"),
        }
    }

    /// Brings the runtime in line with `pod`; when to look again.
    async fn sync(&mut self, pod: &Value) -> Result<Option<Duration>, RuntimeError> {
        let pod_name = format!("{}_{}({})", self.pod.name, self.pod.namespace, self.pod.uid);
        let mut wake: Option<Duration> = None;
        // Two rounds at most: a new sandbox, then its containers.
        for _ in 0..2 {
            let containers = self.containers().await?;
            let sandbox = plan::running_sandbox(&containers).map(|c| Sandbox {
                id: c.id.clone(),
                ip: c.ip.clone().unwrap_or_default(),
            });
            let probes = &self.shared.probes;
            let planned = plan::plan(
                pod,
                &pod_name,
                &containers,
                &self.memory,
                |id| probes.get(id, Kind::Liveness),
                Instant::now(),
            );
            if let Some(w) = planned.wake {
                wake = Some(wake.map_or(w, |x: Duration| x.min(w)));
            }
            let mut sandbox_started = false;
            for step in planned.steps {
                match self.execute(pod, sandbox.as_ref(), step).await {
                    Ok(Executed::SandboxStarted) => sandbox_started = true,
                    Ok(Executed::Done) => {}
                    Ok(Executed::RetryIn(after)) => {
                        wake = Some(wake.map_or(after, |x: Duration| x.min(after)));
                    }
                    Err(Failed::Sandbox(e)) => {
                        tracing::warn!(pod = %self.pod.name, "cannot start the pod sandbox: {e}");
                        for c in pod::list(&pod["spec"], "containers") {
                            let name = c["name"].as_str().unwrap_or("").to_owned();
                            self.memory.waiting.insert(
                                name,
                                (
                                    "ContainerCreating".into(),
                                    format!("starting the pod sandbox: {e}"),
                                ),
                            );
                        }
                        self.post_status(pod, &[], None).await;
                        return Ok(Some(Duration::from_secs(2)));
                    }
                }
            }
            if !sandbox_started {
                let fresh = self.containers().await?;
                let ip = sandbox.map(|s| s.ip);
                self.post_status(pod, &fresh, ip.as_deref()).await;
                return Ok(wake);
            }
        }
        // A sandbox started twice without showing as running: look again soon.
        Ok(Some(Duration::from_secs(1)))
    }

    /// Executes one step of a plan; failures of the step itself are logged
    /// here (and shown in the status where Kubernetes shows them).
    async fn execute(
        &mut self,
        pod: &Value,
        sandbox: Option<&Sandbox>,
        step: Step,
    ) -> Result<Executed, Failed> {
        let runtime = self.shared.runtime.clone();
        let who = self.pod.name.clone();
        let logged = |what: &str, result: Result<(), RuntimeError>| {
            if let Err(e) = result {
                if !matches!(e, RuntimeError::NotFound(_)) {
                    tracing::warn!(pod = %who, "{what}: {e}");
                }
            }
        };
        match step {
            Step::StopAtOnce { id } => {
                logged(
                    "stopping a container of a dead sandbox",
                    runtime.stop(&id, Duration::ZERO).await,
                );
            }
            Step::Remove { id } => {
                self.shared.probes.forget(&id);
                logged("removing a container", runtime.remove(&id).await);
            }
            Step::RunSandbox => {
                runtime
                    .run_sandbox(&sandbox_config(pod, &self.pod))
                    .await
                    .map_err(Failed::Sandbox)?;
                return Ok(Executed::SandboxStarted);
            }
            Step::StartCreated { name, id } => {
                if let Err(e) = runtime.start(&id).await {
                    tracing::warn!(pod = %who, container = %name, "starting a created container: {e}");
                    logged(
                        "removing a container that would not start",
                        runtime.remove(&id).await,
                    );
                }
            }
            Step::Probe { name, id } => {
                if let (Some(c), Some(sandbox)) = (spec_container(pod, &name), sandbox) {
                    self.ensure_probes(c, &id, &sandbox.ip);
                }
            }
            Step::Kill { name, id, grace } => {
                tracing::info!(pod = %who, container = %name, "liveness probe failed: restarting");
                logged(
                    "stopping an unhealthy container",
                    runtime.stop(&id, grace).await,
                );
                self.shared.probes.forget(&id);
            }
            Step::StopProbes { id } => {
                if let Some(token) = self.probes.remove(&id) {
                    token.cancel();
                }
            }
            Step::RestartBackoff { name, backoff } => {
                self.memory.restarts.insert(name, backoff);
            }
            Step::Start { name, attempt } => {
                let (Some(c), Some(sandbox)) = (spec_container(pod, &name), sandbox) else {
                    return Ok(Executed::Done);
                };
                if let Some(after) = self.start_container(pod, c, sandbox, attempt).await {
                    return Ok(Executed::RetryIn(after));
                }
            }
            Step::Waiting {
                name,
                reason,
                message,
            } => {
                self.memory.waiting.insert(name, (reason, message));
            }
            Step::NotWaiting { name } => {
                self.memory.waiting.remove(&name);
            }
            Step::Discard { id } => {
                logged(
                    "stopping a container the spec dropped",
                    runtime.stop(&id, plan::DISCARD_GRACE).await,
                );
                logged(
                    "removing a container the spec dropped",
                    runtime.remove(&id).await,
                );
            }
        }
        Ok(Executed::Done)
    }

    /// Pulls (per policy) and starts run `attempt` of container `c`; when to
    /// try again if that failed.
    async fn start_container(
        &mut self,
        pod: &Value,
        c: &Value,
        sandbox: &Sandbox,
        attempt: u32,
    ) -> Option<Duration> {
        let runtime = self.shared.runtime.clone();
        let name = c["name"].as_str().unwrap_or("").to_owned();
        let image = c["image"].as_str().unwrap_or("").to_owned();
        let now = Instant::now();
        let policy = PullPolicy::parse(c["imagePullPolicy"].as_str().unwrap_or("IfNotPresent"));
        self.memory
            .waiting
            .insert(name.clone(), ("ContainerCreating".into(), String::new()));
        if let Err(e) = runtime.pull(&image, policy).await {
            let reason = match e {
                RuntimeError::ImageNeverPull(_) => "ErrImageNeverPull",
                _ => "ErrImagePull",
            };
            let b = self.memory.pulls.entry(name.clone()).or_insert(Backoff {
                failures: 0,
                until: now,
            });
            b.failures += 1;
            b.until = now + Backoff::after(b.failures);
            let retry = Backoff::after(b.failures);
            tracing::info!(pod = %self.pod.name, container = %name, "{reason}: {e}");
            self.memory.pull_errors.insert(name.clone(), e.to_string());
            self.memory
                .waiting
                .insert(name, (reason.into(), e.to_string()));
            return Some(retry);
        }
        self.memory.pulls.remove(&name);
        self.memory.pull_errors.remove(&name);
        let config = container_config(c, pod, &sandbox.ip, attempt);
        let started = match runtime.create(&self.pod, sandbox, &config).await {
            Ok(id) => runtime.start(&id).await.map(|()| id),
            Err(e) => Err(e),
        };
        match started {
            Ok(id) => {
                self.memory.waiting.remove(&name);
                tracing::debug!(pod = %self.pod.name, container = %name, attempt, %id, "container started");
                None
            }
            Err(e) => {
                tracing::warn!(pod = %self.pod.name, container = %name, "cannot start: {e}");
                self.memory
                    .waiting
                    .insert(name, ("CreateContainerError".into(), e.to_string()));
                Some(Duration::from_secs(2))
            }
        }
    }

    /// Starts the probe tasks of a running container once.
    fn ensure_probes(&mut self, c: &Value, id: &str, pod_ip: &str) {
        if self.probes.contains_key(id) {
            return;
        }
        let token = CancellationToken::new();
        for kind in [Kind::Liveness, Kind::Readiness] {
            if let Some(p) = probe::from_spec(c, kind) {
                tokio::spawn(probe::run(
                    self.shared.runtime.clone(),
                    self.shared.probe_http.clone(),
                    id.to_owned(),
                    pod_ip.to_owned(),
                    kind,
                    p,
                    self.shared.probes.clone(),
                    self.wake.clone(),
                    token.clone(),
                ));
            }
        }
        self.probes.insert(id.to_owned(), token);
    }

    /// Computes the pod's status and posts it when it changed.
    async fn post_status(&mut self, pod: &Value, containers: &[Container], pod_ip: Option<&str>) {
        let mut statuses = Vec::new();
        for c in pod::list(&pod["spec"], "containers") {
            let name = c["name"].as_str().unwrap_or("");
            let mut runs: Vec<&Container> = containers
                .iter()
                .filter(|k| k.name.as_deref() == Some(name))
                .collect();
            runs.sort_by_key(|k| k.attempt);
            let latest = runs.last().copied();
            let previous = runs.len().checked_sub(2).and_then(|i| runs.get(i).copied());
            let ready = match latest {
                Some(l) if matches!(l.state, State::Running { .. }) => {
                    if probe::from_spec(c, Kind::Readiness).is_some() {
                        self.shared.probes.get(&l.id, Kind::Readiness) == Some(true)
                    } else {
                        true
                    }
                }
                _ => false,
            };
            let waiting = self.memory.waiting.get(name).cloned().filter(|_| {
                // A running container is not waiting, whatever was noted.
                !latest.is_some_and(|l| matches!(l.state, State::Running { .. }))
            });
            statuses.push(status::container_status(
                &ContainerView {
                    name,
                    image: c["image"].as_str().unwrap_or(""),
                    latest,
                    previous,
                    waiting,
                    ready,
                },
                &self.shared.scheme,
            ));
        }
        let status = status::pod_status(pod, statuses, pod_ip, &self.shared.host_ip, meta::now());
        if self.last_status.as_ref() == Some(&status) && pod["status"]["phase"] == status["phase"] {
            return;
        }
        let patch = json!({"status": status});
        match self
            .shared
            .api
            .merge_patch(&format!("{}/status", pod_path(&self.pod)), &patch)
            .await
        {
            Ok(_) => self.last_status = Some(status),
            Err(ApiCallError::Status { code: 404, .. }) => {}
            Err(e) => tracing::warn!(pod = %self.pod.name, "posting status: {e}"),
        }
    }
}

/// How a step went, when it did not fail.
enum Executed {
    /// Done (or nothing to do).
    Done,
    /// A sandbox now runs: plan again with it.
    SandboxStarted,
    /// It failed in a way shown in the status; try again after this long.
    RetryIn(Duration),
}

/// A step failure that ends the sync.
enum Failed {
    /// The sandbox would not start.
    Sandbox(RuntimeError),
}

/// The spec container named `name`.
fn spec_container<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    pod::list(&pod["spec"], "containers")
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_configs_carry_the_spec() {
        let pod = json!({"metadata": {"name": "web-1", "namespace": "prod", "uid": "u"},
            "spec": {"nodeName": "n1"}});
        let c = json!({"name": "web", "image": "flotilla/busybox:latest",
            "command": ["httpd"], "args": ["-f", "-p", "8080"], "workingDir": "/www",
            "env": [{"name": "A", "value": "1"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}});
        let config = container_config(&c, &pod, "10.1.2.3", 2);
        assert_eq!(config.name, "web");
        assert_eq!(config.command, ["httpd"]);
        assert_eq!(config.args, ["-f", "-p", "8080"]);
        assert_eq!(config.working_dir.as_deref(), Some("/www"));
        assert_eq!(
            config.env,
            [
                ("A".into(), "1".into()),
                ("POD".into(), "web-1".into()),
                ("IP".into(), "10.1.2.3".into())
            ]
        );
        assert_eq!(config.cpu_millis, 500);
        assert_eq!(config.memory, 64 << 20);
        assert_eq!(config.attempt, 2);
    }

    #[test]
    fn sandboxes_publish_host_ports() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]}]}});
        let r = PodRef {
            uid: "u".into(),
            namespace: "ns".into(),
            name: "p".into(),
        };
        let s = sandbox_config(&pod, &r);
        assert_eq!(s.hostname, "p");
        assert_eq!(s.ports.len(), 2);
        assert_eq!(s.ports[0].host_port, Some(8080));
        assert_eq!(s.ports[1].protocol, "UDP");
        assert_eq!(s.dns_search[0], "ns.svc.cluster.local");
    }
}
