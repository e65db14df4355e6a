//! The Docker Engine runtime, through bollard.
//!
//! # What a pod looks like on the engine
//!
//! A pod is a *sandbox* container plus one container per spec container,
//! as Kubernetes' dockershim laid it out:
//!
//! - The sandbox runs [`SANDBOX_IMAGE`] (`flotilla/pause:latest`, built by
//!   `docker/build-images.sh` from Debian's static busybox: a shell that
//!   sleeps until SIGTERM). It is attached to the bridge network
//!   [`POD_NETWORK`] (`flotilla-pods`, subnet [`POD_SUBNET`]
//!   `10.244.0.0/16`), which [`Docker::connect`] creates when missing; its
//!   address there is the pod's IP. Host ports are published on it, and
//!   the pod's DNS servers and search domains (when given) go into it.
//!   With [`PodNetwork::Cni`] (what agents use) the sandbox instead gets
//!   network mode `none` and no published ports: the agent's CNI plugins
//!   wire it and map host ports (`agent::network`), and [`Runtime::netns`]
//!   gives them its namespace, `/proc/<pid>/ns/net`.
//! - App containers join the sandbox's network namespace
//!   (`network_mode: container:<sandbox id>`), so they share its IP and
//!   `localhost`. `command` replaces the image's ENTRYPOINT and `args` its
//!   CMD, as in Kubernetes. CPU limits become a CFS quota (millicores ×
//!   100 µs per 100 ms period, as kubelet sets them; Docker's NanoCpus
//!   would refuse a limit above the host's CPU count, which Kubernetes
//!   allows), memory limits a hard limit without swap.
//!
//! Every container carries the labels of [`super`]; [`Runtime::list`]
//! filters on the node label, so agents of several nodes can share one
//! engine and each sees only its own containers.
//!
//! # Images
//!
//! No registry is reachable here, so any pull fails (quickly, and bounded
//! by [`PULL_TIMEOUT`]): `IfNotPresent` uses a local image and reports
//! Docker's error for a missing one; `Never` never pulls; `Always` tries to
//! pull and, when that fails but the image is on the engine, **falls back to
//! the local copy** with a warning — the only way images built by
//! `docker/build-images.sh` can run with that policy on a machine without a
//! registry. A missing image is an [`RuntimeError::ImagePull`] carrying
//! Docker's own message.
//!
//! # Time limits and errors
//!
//! Every engine call runs under a `tokio::time::timeout` ([`CALL_TIMEOUT`],
//! or longer where the call itself waits, like a stop with a grace period);
//! only a followed log stream is open-ended, as `docker logs -f` is. Engine
//! errors become [`RuntimeError`]s: 404 is `NotFound`, a timeout `Timeout`,
//! the rest `Other` with Docker's message.
//!
//! Listing inspects each container once per state (running, exited) to
//! learn its start and finish times, exit code and OOM kill, and caches
//! that, so the agent's once-a-second relist costs one engine call; and
//! concurrent lists share one engine call (see [`Runtime::list`] below), since
//! every pod worker lists on each sync.

use super::{
    Container, ContainerConfig, LogOptions, LogStream, PodRef, PullPolicy, Runtime, RuntimeError,
    Sandbox, SandboxConfig, State, LABEL_ATTEMPT, LABEL_CONTAINER, LABEL_NODE, LABEL_POD_NAME,
    LABEL_POD_NAMESPACE, LABEL_POD_UID, LABEL_SANDBOX,
};
use async_trait::async_trait;
use bollard::errors::Error as DockerError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerState, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryStateEnum, ExecConfig, HostConfig, Ipam, IpamConfig, NetworkCreateRequest,
    PortBinding, PortMap, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectNetworkOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, StartContainerOptions, StopContainerOptions,
};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// The bridge network pods attach to (shared by every agent on the engine).
pub const POD_NETWORK: &str = "flotilla-pods";
/// Its subnet, when the runtime creates it: a private range Docker's default
/// pools do not hand out, and the one Kubernetes' flannel made familiar.
pub const POD_SUBNET: &str = "10.244.0.0/16";
/// The network's gateway (the host's address on the bridge).
pub const POD_GATEWAY: &str = "10.244.0.1";
/// The image of pod sandboxes, built by `docker/build-images.sh`.
pub const SANDBOX_IMAGE: &str = "flotilla/pause:latest";
/// Longest wait for an ordinary engine call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a pull (which fails quickly without a registry).
pub const PULL_TIMEOUT: Duration = Duration::from_secs(60);
/// Inspections in flight while listing.
const INSPECT_CONCURRENCY: usize = 8;
/// Sandboxes being created and started at once. Starting a sandbox (a new
/// network namespace on the bridge) is the engine's most expensive step,
/// and a burst of pods otherwise starts them all at once: every pod then
/// waits for all of them, and calls queue past their time limits. Taken in
/// arrival order, a few at a time, the first pods run while later ones
/// wait, and app containers (which join an existing sandbox) never queue
/// behind them.
const SANDBOX_CONCURRENCY: usize = 2;
/// Label on the pods network, so people can tell who made it.
const LABEL_NETWORK: &str = "io.flotilla.network";

/// How sandboxes get their network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodNetwork {
    /// On the shared Docker bridge [`POD_NETWORK`] (one machine only).
    Bridge,
    /// Network mode `none`: CNI wires them (`agent::network`).
    Cni,
}

/// What an inspection found for a container in one engine state; valid
/// while the container stays in that state.
#[derive(Debug, Clone)]
struct Inspected {
    status: ContainerSummaryStateEnum,
    state: State,
    ip: Option<String>,
}

/// The Docker runtime of one node.
pub struct Docker {
    client: bollard::Docker,
    node: String,
    engine: String,
    network: PodNetwork,
    inspected: Mutex<HashMap<String, Inspected>>,
    sandboxes: tokio::sync::Semaphore,
    /// Held while listing: one list at a time.
    listing: tokio::sync::Mutex<()>,
    /// The last list and when it started.
    last: Mutex<Option<Listed>>,
}

/// A list of containers and when it was asked of the engine.
type Listed = (std::time::Instant, Vec<Container>);

/// Runs an engine call under `limit`.
async fn timed<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, DockerError>>,
) -> Result<T, DockerError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(DockerError::RequestTimeoutError),
    }
}

/// The engine's status code of an error, if it answered with one.
fn status_code(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Docker's own words for an error.
fn message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        DockerError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

/// Types an engine error about `what` (a container id, an image...).
fn typed(what: &str, limit: Duration, e: DockerError) -> RuntimeError {
    match e {
        DockerError::RequestTimeoutError => RuntimeError::Timeout(limit),
        ref e if status_code(e) == Some(404) => RuntimeError::NotFound(what.to_owned()),
        e => RuntimeError::Other(message(&e)),
    }
}

/// An error of a call whose 404 is not about the container (creating one:
/// a missing image or network).
fn failed(limit: Duration, e: &DockerError) -> RuntimeError {
    match e {
        DockerError::RequestTimeoutError => RuntimeError::Timeout(limit),
        e => RuntimeError::Other(message(e)),
    }
}

/// Splits an image reference into what the pull API takes: the repository
/// and the tag (`latest` when none is given). A digest reference is kept
/// whole, without a tag.
pub fn split_reference(image: &str) -> (String, Option<String>) {
    if image.contains('@') {
        return (image.to_owned(), None);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (image[..at].to_owned(), Some(image[at + 1..].to_owned()))
        }
        None => (image.to_owned(), Some("latest".to_owned())),
    }
}

/// Docker's ENTRYPOINT and CMD for a container, with Kubernetes' rules:
/// `command` replaces the image's ENTRYPOINT (and drops its CMD), `args`
/// replaces its CMD; with neither the image's own are used.
pub fn entrypoint_and_cmd(config: &ContainerConfig) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let entrypoint = (!config.command.is_empty()).then(|| config.command.clone());
    let cmd = if !config.args.is_empty() {
        Some(config.args.clone())
    } else if entrypoint.is_some() {
        // An explicit empty CMD, so the image's CMD is not appended to
        // the new ENTRYPOINT.
        Some(Vec::new())
    } else {
        None
    };
    (entrypoint, cmd)
}

/// The labels of a container of `pod` made by the agent of `node`.
fn labels(
    node: &str,
    pod: &PodRef,
    container: Option<&str>,
    attempt: u32,
) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (LABEL_NODE.to_owned(), node.to_owned()),
        (LABEL_POD_UID.to_owned(), pod.uid.clone()),
        (LABEL_POD_NAMESPACE.to_owned(), pod.namespace.clone()),
        (LABEL_POD_NAME.to_owned(), pod.name.clone()),
        (LABEL_ATTEMPT.to_owned(), attempt.to_string()),
    ]);
    match container {
        Some(name) => labels.insert(LABEL_CONTAINER.to_owned(), name.to_owned()),
        None => labels.insert(LABEL_SANDBOX.to_owned(), "true".to_owned()),
    };
    labels
}

/// What the labels say a container is: its pod, its name in the pod (None
/// for a sandbox) and its attempt. None when it is not a pod's container.
pub fn parse_labels(labels: &HashMap<String, String>) -> Option<(PodRef, Option<String>, u32)> {
    let pod = PodRef {
        uid: labels.get(LABEL_POD_UID).filter(|u| !u.is_empty())?.clone(),
        namespace: labels.get(LABEL_POD_NAMESPACE)?.clone(),
        name: labels.get(LABEL_POD_NAME)?.clone(),
    };
    let sandbox = labels.get(LABEL_SANDBOX).is_some_and(|v| v == "true");
    let name = if sandbox {
        None
    } else {
        Some(labels.get(LABEL_CONTAINER)?.clone())
    };
    let attempt = labels
        .get(LABEL_ATTEMPT)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    Some((pod, name, attempt))
}

/// A Docker timestamp; None for Docker's zero time (`0001-01-01T00:00:00Z`).
fn parse_time(text: Option<&str>) -> Option<SystemTime> {
    let text = text?;
    if text.starts_with("0001-") {
        return None;
    }
    humantime::parse_rfc3339_weak(text).ok()
}

/// The trait's state of a container the engine lists as `status`, with
/// the details an inspection gave.
pub fn map_state(status: ContainerSummaryStateEnum, detail: &ContainerState) -> State {
    use ContainerSummaryStateEnum as S;
    let started_at = parse_time(detail.started_at.as_deref());
    match status {
        S::CREATED | S::EMPTY => State::Created,
        S::RUNNING | S::PAUSED | S::RESTARTING | S::STOPPING => State::Running {
            started_at: started_at.unwrap_or_else(SystemTime::now),
        },
        S::EXITED | S::DEAD | S::REMOVING => {
            let code = detail.exit_code.unwrap_or(-1);
            let reason = if detail.oom_killed == Some(true) {
                "OOMKilled"
            } else if code == 0 {
                "Completed"
            } else {
                "Error"
            };
            State::Exited {
                code,
                started_at,
                finished_at: parse_time(detail.finished_at.as_deref())
                    .or(started_at)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                reason: reason.into(),
            }
        }
    }
}

/// The summary's status, or (from an inspection) the container's.
fn summary_status(detail: &ContainerState) -> ContainerSummaryStateEnum {
    use ContainerStateStatusEnum as I;
    use ContainerSummaryStateEnum as S;
    match detail.status {
        Some(I::CREATED) => S::CREATED,
        Some(I::RUNNING) => S::RUNNING,
        Some(I::PAUSED) => S::PAUSED,
        Some(I::RESTARTING) => S::RESTARTING,
        Some(I::REMOVING) => S::REMOVING,
        Some(I::EXITED) => S::EXITED,
        Some(I::DEAD) => S::DEAD,
        Some(I::STOPPING) => S::STOPPING,
        Some(I::EMPTY) | None => S::EMPTY,
    }
}

impl Docker {
    /// Connects to the local engine (`DOCKER_HOST`, else
    /// `/var/run/docker.sock`) for the agent of `node`, agrees on an API
    /// version, and (with [`PodNetwork::Bridge`]) makes sure the pods
    /// network exists.
    ///
    /// # Errors
    /// When the engine cannot be reached or refuses to make the network.
    pub async fn connect(node: &str, network: PodNetwork) -> Result<Docker, RuntimeError> {
        let client = bollard::Docker::connect_with_defaults()
            .map_err(|e| RuntimeError::Other(format!("connecting to the Docker Engine: {e}")))?;
        let client = timed(CALL_TIMEOUT, client.negotiate_version())
            .await
            .map_err(|e| match e {
                DockerError::RequestTimeoutError => RuntimeError::Timeout(CALL_TIMEOUT),
                e => RuntimeError::Other(format!("the Docker Engine did not answer: {e}")),
            })?;
        let version = timed(CALL_TIMEOUT, client.version())
            .await
            .map_err(|e| typed("version", CALL_TIMEOUT, e))?;
        let docker = Docker {
            client,
            node: node.to_owned(),
            engine: version.version.unwrap_or_else(|| "unknown".into()),
            network,
            inspected: Mutex::new(HashMap::new()),
            sandboxes: tokio::sync::Semaphore::new(SANDBOX_CONCURRENCY),
            listing: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
        };
        if network == PodNetwork::Bridge {
            docker.ensure_network().await?;
        }
        if !docker.image_present(SANDBOX_IMAGE).await? {
            tracing::warn!(
                "the pod sandbox image {SANDBOX_IMAGE} is not on this Docker Engine: pods will wait in ContainerCreating until docker/build-images.sh builds it"
            );
        }
        tracing::info!(node, engine = %docker.engine, network = POD_NETWORK, "connected to the Docker Engine");
        Ok(docker)
    }

    /// Creates [`POD_NETWORK`] unless it exists (another agent may be
    /// creating it at the same moment: then its network is used).
    async fn ensure_network(&self) -> Result<(), RuntimeError> {
        let inspect = || {
            timed(
                CALL_TIMEOUT,
                self.client
                    .inspect_network(POD_NETWORK, None::<InspectNetworkOptions>),
            )
        };
        match inspect().await {
            Ok(_) => return Ok(()),
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(typed(POD_NETWORK, CALL_TIMEOUT, e)),
        }
        let request = NetworkCreateRequest {
            name: POD_NETWORK.to_owned(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet: Some(POD_SUBNET.into()),
                    gateway: Some(POD_GATEWAY.into()),
                    ..IpamConfig::default()
                }]),
                options: None,
            }),
            labels: Some(HashMap::from([(
                LABEL_NETWORK.to_owned(),
                "pods".to_owned(),
            )])),
            ..NetworkCreateRequest::default()
        };
        match timed(CALL_TIMEOUT, self.client.create_network(request)).await {
            Ok(_) => {
                tracing::info!(
                    network = POD_NETWORK,
                    subnet = POD_SUBNET,
                    "created the pods network"
                );
                Ok(())
            }
            // A racing agent made it first (the subnet then overlaps).
            Err(e) => match inspect().await {
                Ok(_) => Ok(()),
                Err(_) => Err(RuntimeError::Other(format!(
                    "creating the Docker network {POD_NETWORK} ({POD_SUBNET}): {}",
                    message(&e)
                ))),
            },
        }
    }

    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        match timed(CALL_TIMEOUT, self.client.inspect_image(image)).await {
            Ok(_) => Ok(true),
            Err(e) if status_code(&e) == Some(404) => Ok(false),
            Err(e) => Err(typed(image, CALL_TIMEOUT, e)),
        }
    }

    /// Asks the engine to pull `image`; Docker's error when it cannot.
    async fn try_pull(&self, image: &str) -> Result<(), String> {
        let (repo, tag) = split_reference(image);
        let options = CreateImageOptions {
            from_image: Some(repo),
            tag,
            ..CreateImageOptions::default()
        };
        let pull = self
            .client
            .create_image(Some(options), None, None)
            .try_for_each(|_| async { Ok(()) });
        match tokio::time::timeout(PULL_TIMEOUT, pull).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(message(&e)),
            Err(_) => Err(format!("the pull did not finish within {PULL_TIMEOUT:?}")),
        }
    }

    /// Inspects a container: its state, times and pod IP.
    async fn inspect(&self, id: &str) -> Result<Inspected, RuntimeError> {
        let details = timed(CALL_TIMEOUT, self.client.inspect_container(id, None))
            .await
            .map_err(|e| typed(id, CALL_TIMEOUT, e))?;
        let detail = details.state.unwrap_or_default();
        let status = summary_status(&detail);
        let ip = details
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(POD_NETWORK))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty());
        Ok(Inspected {
            status,
            state: map_state(status, &detail),
            ip,
        })
    }

    /// Turns a listed container into the trait's, inspecting it when its
    /// state changed since it was last seen.
    async fn convert(&self, summary: ContainerSummary) -> Option<Container> {
        let id = summary.id?;
        let (pod, name, attempt) = parse_labels(summary.labels.as_ref()?)?;
        let status = summary.state.unwrap_or(ContainerSummaryStateEnum::EMPTY);
        let listed_ip = summary
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(POD_NETWORK))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty());
        let cached = self.lock().get(&id).filter(|i| i.status == status).cloned();
        let inspected = match cached {
            Some(i) => i,
            None if status == ContainerSummaryStateEnum::CREATED => Inspected {
                status,
                state: State::Created,
                ip: None,
            },
            None => match self.inspect(&id).await {
                Ok(i) => {
                    self.lock().insert(id.clone(), i.clone());
                    i
                }
                Err(RuntimeError::NotFound(_)) => return None,
                Err(e) => {
                    tracing::debug!(%id, "inspecting a container: {e}");
                    Inspected {
                        status,
                        state: map_state(status, &ContainerState::default()),
                        ip: None,
                    }
                }
            },
        };
        let ip = if name.is_none() {
            listed_ip.or(inspected.ip)
        } else {
            None
        };
        Some(Container {
            id,
            pod,
            name,
            attempt,
            image: summary.image.unwrap_or_default(),
            image_id: summary
                .image_id
                .map(|i| format!("docker://{i}"))
                .unwrap_or_default(),
            state: inspected.state,
            ip,
        })
    }

    /// Lists the node's containers from the engine.
    async fn list_now(&self) -> Result<Vec<Container>, RuntimeError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![format!("{LABEL_NODE}={}", self.node)],
            )])),
            ..ListContainersOptions::default()
        };
        let summaries = timed(CALL_TIMEOUT, self.client.list_containers(Some(options)))
            .await
            .map_err(|e| typed("containers", CALL_TIMEOUT, e))?;
        let ids: std::collections::HashSet<String> =
            summaries.iter().filter_map(|s| s.id.clone()).collect();
        self.lock().retain(|id, _| ids.contains(id));
        let containers = futures::stream::iter(summaries)
            .map(|s| self.convert(s))
            .buffered(INSPECT_CONCURRENCY)
            .filter_map(|c| async move { c })
            .collect()
            .await;
        Ok(containers)
    }

    fn last_list(&self) -> std::sync::MutexGuard<'_, Option<Listed>> {
        self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Inspected>> {
        self.inspected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Force-removes a container this runtime just made and could not use.
    async fn discard(&self, id: &str) {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..RemoveContainerOptions::default()
        };
        if let Err(e) = timed(
            CALL_TIMEOUT,
            self.client.remove_container(id, Some(options)),
        )
        .await
        {
            tracing::warn!(%id, "removing a container that failed to start: {e}");
        }
    }

    /// A container name: `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`,
    /// as dockershim named them (sandboxes are `POD` with a random suffix,
    /// since a pod may need a new sandbox while a dead one lingers).
    fn name(pod: &PodRef, container: Option<&str>, attempt: u32) -> String {
        match container {
            Some(c) => format!(
                "k8s_{c}_{}_{}_{}_{attempt}",
                pod.name, pod.namespace, pod.uid
            ),
            None => format!(
                "k8s_POD_{}_{}_{}_{}",
                pod.name,
                pod.namespace,
                pod.uid,
                crate::security::random_string(6).to_ascii_lowercase()
            ),
        }
    }
}

/// The port map and exposed ports of a sandbox.
fn published(config: &SandboxConfig) -> (Vec<String>, PortMap) {
    let mut exposed = Vec::new();
    let mut bindings = PortMap::new();
    for port in &config.ports {
        let key = format!(
            "{}/{}",
            port.container_port,
            port.protocol.to_ascii_lowercase()
        );
        exposed.push(key.clone());
        if let Some(host_port) = port.host_port {
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: Some(host_port.to_string()),
                }]),
            );
        }
    }
    (exposed, bindings)
}

/// CFS quota in µs per [`CPU_PERIOD_US`] for `millis` millicores (kubelet's
/// formula, with the kernel's 1 ms minimum).
pub fn cpu_quota(millis: i64) -> i64 {
    (millis * CPU_PERIOD_US / 1000).max(1000)
}

/// The CFS period kubelet uses: 100 ms.
pub const CPU_PERIOD_US: i64 = 100_000;

#[async_trait]
impl Runtime for Docker {
    async fn version(&self) -> Result<String, RuntimeError> {
        Ok(format!("docker://{}", self.engine))
    }

    async fn list(&self) -> Result<Vec<Container>, RuntimeError> {
        // Many pod workers list at once (every sync starts and ends with a
        // list), and a list costs the engine time in proportion to all its
        // containers. Callers take turns; a caller whose turn comes after a
        // list that *started after it called* takes that list's answer,
        // which already shows whatever the caller did before calling.
        let called = std::time::Instant::now();
        let _turn = self.listing.lock().await;
        if let Some((started, containers)) = self.last_list().as_ref() {
            if *started >= called {
                return Ok(containers.clone());
            }
        }
        let started = std::time::Instant::now();
        let containers = self.list_now().await?;
        *self.last_list() = Some((started, containers.clone()));
        Ok(containers)
    }

    async fn pull(&self, image: &str, policy: PullPolicy) -> Result<(), RuntimeError> {
        let present = self.image_present(image).await?;
        match policy {
            PullPolicy::Never if present => Ok(()),
            PullPolicy::Never => Err(RuntimeError::ImageNeverPull(format!(
                "Container image \"{image}\" is not present with pull policy of Never"
            ))),
            PullPolicy::IfNotPresent if present => Ok(()),
            PullPolicy::IfNotPresent => match self.try_pull(image).await {
                Ok(()) => Ok(()),
                Err(e) => Err(RuntimeError::ImagePull(format!(
                    "Failed to pull image \"{image}\": {e}"
                ))),
            },
            PullPolicy::Always => match self.try_pull(image).await {
                Ok(()) => Ok(()),
                Err(e) if present => {
                    tracing::warn!(%image, "pulling failed ({e}); using the image already on this engine");
                    Ok(())
                }
                Err(e) => Err(RuntimeError::ImagePull(format!(
                    "Failed to pull image \"{image}\": {e}"
                ))),
            },
        }
    }

    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox, RuntimeError> {
        // Never closed, so acquiring cannot fail; the time limits below
        // start once the turn has come.
        let _turn = self.sandboxes.acquire().await.ok();
        let (exposed, bindings) = match self.network {
            PodNetwork::Bridge => published(config),
            PodNetwork::Cni => (Vec::new(), PortMap::new()),
        };
        let network_mode = match self.network {
            PodNetwork::Bridge => POD_NETWORK,
            PodNetwork::Cni => "none",
        };
        let body = ContainerCreateBody {
            image: Some(SANDBOX_IMAGE.to_owned()),
            hostname: Some(config.hostname.chars().take(63).collect()),
            labels: Some(labels(&self.node, &config.pod, None, 0)),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            host_config: Some(HostConfig {
                network_mode: Some(network_mode.to_owned()),
                port_bindings: (!bindings.is_empty()).then_some(bindings),
                dns: (!config.dns_servers.is_empty()).then(|| config.dns_servers.clone()),
                dns_search: (!config.dns_search.is_empty()).then(|| config.dns_search.clone()),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let create = || {
            let options = CreateContainerOptions {
                name: Some(Docker::name(&config.pod, None, 0)),
                ..CreateContainerOptions::default()
            };
            timed(
                CALL_TIMEOUT,
                self.client.create_container(Some(options), body.clone()),
            )
        };
        let created = match create().await {
            // Someone removed the pods network since we connected: make it
            // again and retry once.
            Err(e) if status_code(&e) == Some(404) && message(&e).contains(POD_NETWORK) => {
                tracing::warn!("the {POD_NETWORK} network is gone; creating it again");
                self.ensure_network().await?;
                create().await
            }
            Err(e) if status_code(&e) == Some(404) && message(&e).contains(SANDBOX_IMAGE) => {
                return Err(RuntimeError::Other(format!(
                    "the pod sandbox image {SANDBOX_IMAGE} is not on this Docker Engine; build it with docker/build-images.sh"
                )));
            }
            other => other,
        }
        .map_err(|e| failed(CALL_TIMEOUT, &e))?;
        let id = created.id;
        let started = timed(
            CALL_TIMEOUT,
            self.client
                .start_container(&id, None::<StartContainerOptions>),
        )
        .await;
        if let Err(e) = started {
            self.discard(&id).await;
            return Err(typed(&id, CALL_TIMEOUT, e));
        }
        let inspected = match self.inspect(&id).await {
            Ok(i) => i,
            Err(e) => {
                self.discard(&id).await;
                return Err(e);
            }
        };
        if self.network == PodNetwork::Cni {
            self.lock().insert(id.clone(), inspected);
            return Ok(Sandbox {
                id,
                ip: String::new(),
            });
        }
        let Some(ip) = inspected.ip.clone() else {
            self.discard(&id).await;
            return Err(RuntimeError::Other(format!(
                "the pod sandbox got no address on the {POD_NETWORK} network"
            )));
        };
        self.lock().insert(id.clone(), inspected);
        tracing::debug!(pod = %config.pod.name, %id, %ip, "sandbox running");
        Ok(Sandbox { id, ip })
    }

    async fn create(
        &self,
        pod: &PodRef,
        sandbox: &Sandbox,
        config: &ContainerConfig,
    ) -> Result<String, RuntimeError> {
        let (entrypoint, cmd) = entrypoint_and_cmd(config);
        let body = ContainerCreateBody {
            image: Some(config.image.clone()),
            entrypoint,
            cmd,
            env: Some(config.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: config.working_dir.clone().filter(|w| !w.is_empty()),
            labels: Some(labels(&self.node, pod, Some(&config.name), config.attempt)),
            host_config: Some(HostConfig {
                network_mode: Some(format!("container:{}", sandbox.id)),
                cpu_period: (config.cpu_millis > 0).then_some(CPU_PERIOD_US),
                cpu_quota: (config.cpu_millis > 0).then(|| cpu_quota(config.cpu_millis)),
                memory: (config.memory > 0).then_some(config.memory),
                memory_swap: (config.memory > 0).then_some(config.memory),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let options = CreateContainerOptions {
            name: Some(Docker::name(pod, Some(&config.name), config.attempt)),
            ..CreateContainerOptions::default()
        };
        let created = timed(
            CALL_TIMEOUT,
            self.client.create_container(Some(options), body),
        )
        .await
        .map_err(|e| failed(CALL_TIMEOUT, &e))?;
        Ok(created.id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        match timed(
            CALL_TIMEOUT,
            self.client
                .start_container(id, None::<StartContainerOptions>),
        )
        .await
        {
            Ok(()) => Ok(()),
            // 304: already started.
            Err(e) if status_code(&e) == Some(304) => Ok(()),
            Err(e) => Err(typed(id, CALL_TIMEOUT, e)),
        }
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let seconds = i32::try_from(grace.as_secs() + u64::from(grace.subsec_nanos() > 0))
            .unwrap_or(i32::MAX);
        let options = StopContainerOptions {
            t: Some(seconds),
            signal: None,
        };
        let limit = grace + CALL_TIMEOUT;
        match timed(limit, self.client.stop_container(id, Some(options))).await {
            Ok(()) => Ok(()),
            // 304: not running.
            Err(e) if status_code(&e) == Some(304) => Ok(()),
            Err(e) => Err(typed(id, limit, e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..RemoveContainerOptions::default()
        };
        let result = timed(
            CALL_TIMEOUT,
            self.client.remove_container(id, Some(options)),
        )
        .await;
        self.lock().remove(id);
        match result {
            Ok(()) => Ok(()),
            // 409: a removal is already in progress.
            Err(e) if status_code(&e) == Some(409) => Ok(()),
            Err(e) => Err(typed(id, CALL_TIMEOUT, e)),
        }
    }

    async fn logs(&self, id: &str, options: LogOptions) -> Result<LogStream, RuntimeError> {
        // The stream reports a missing container only once read: ask first,
        // so the caller can answer 404.
        timed(CALL_TIMEOUT, self.client.inspect_container(id, None))
            .await
            .map_err(|e| typed(id, CALL_TIMEOUT, e))?;
        let query = LogsOptions {
            follow: options.follow,
            stdout: true,
            stderr: true,
            timestamps: options.timestamps,
            tail: options
                .tail
                .map_or_else(|| "all".to_owned(), |t| t.to_string()),
            ..LogsOptions::default()
        };
        let id = id.to_owned();
        let stream = self
            .client
            .logs(&id, Some(query))
            .map(move |chunk| match chunk {
                Ok(output) => Ok(output.into_bytes()),
                Err(e) => Err(typed(&id, CALL_TIMEOUT, e)),
            });
        Ok(Box::pin(stream))
    }

    async fn exec(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<i64, RuntimeError> {
        let run = async {
            let config = ExecConfig {
                cmd: Some(command.to_vec()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..ExecConfig::default()
            };
            let created = self.client.create_exec(id, config).await?;
            let options = StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: None,
            };
            if let StartExecResults::Attached { mut output, .. } =
                self.client.start_exec(&created.id, Some(options)).await?
            {
                // Drain the output: the stream ends when the command does.
                while let Some(chunk) = output.next().await {
                    chunk?;
                }
            }
            let inspect = self.client.inspect_exec(&created.id).await?;
            Ok::<_, DockerError>(inspect.exit_code.unwrap_or(-1))
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(code)) => Ok(code),
            Ok(Err(e)) => Err(typed(id, timeout, e)),
            Err(_) => Err(RuntimeError::Timeout(timeout)),
        }
    }

    async fn netns(&self, id: &str) -> Result<Option<String>, RuntimeError> {
        let details = timed(CALL_TIMEOUT, self.client.inspect_container(id, None))
            .await
            .map_err(|e| typed(id, CALL_TIMEOUT, e))?;
        let state = details.state.unwrap_or_default();
        Ok(match (state.running, state.pid) {
            (Some(true), Some(pid)) if pid > 0 => Some(format!("/proc/{pid}/ns/net")),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodRef {
        PodRef {
            uid: "0f1e".into(),
            namespace: "prod".into(),
            name: "web-1".into(),
        }
    }

    #[test]
    fn labels_round_trip() {
        let app = labels("n1", &pod(), Some("web"), 3);
        assert_eq!(app[LABEL_NODE], "n1");
        assert_eq!(parse_labels(&app), Some((pod(), Some("web".into()), 3)));
        let sandbox = labels("n1", &pod(), None, 0);
        assert_eq!(sandbox[LABEL_SANDBOX], "true");
        assert_eq!(parse_labels(&sandbox), Some((pod(), None, 0)));
    }

    #[test]
    fn foreign_containers_are_not_pods() {
        // No pod uid: someone else's container.
        let mut l = labels("n1", &pod(), Some("web"), 0);
        l.remove(LABEL_POD_UID);
        assert_eq!(parse_labels(&l), None);
        // An app container without its name is not ours to interpret.
        let mut l = labels("n1", &pod(), Some("web"), 0);
        l.remove(LABEL_CONTAINER);
        assert_eq!(parse_labels(&l), None);
        // A garbled attempt reads as the first.
        let mut l = labels("n1", &pod(), Some("web"), 0);
        l.insert(LABEL_ATTEMPT.into(), "x".into());
        assert_eq!(parse_labels(&l).map(|p| p.2), Some(0));
    }

    /// command, args, and the ENTRYPOINT and CMD they should give.
    type Case<'a> = (
        &'a [&'a str],
        &'a [&'a str],
        Option<&'a [&'a str]>,
        Option<&'a [&'a str]>,
    );

    #[test]
    fn command_and_args_follow_kubernetes() {
        let cases: [Case; 4] = [
            (&[], &[], None, None),
            (&["httpd"], &[], Some(&["httpd"]), Some(&[])),
            (&[], &["-f"], None, Some(&["-f"])),
            (
                &["sh", "-c"],
                &["echo hi"],
                Some(&["sh", "-c"]),
                Some(&["echo hi"]),
            ),
        ];
        for (command, args, entrypoint, cmd) in cases {
            let config = ContainerConfig {
                command: command.iter().map(|s| (*s).to_owned()).collect(),
                args: args.iter().map(|s| (*s).to_owned()).collect(),
                ..ContainerConfig::default()
            };
            let owned = |v: Option<&[&str]>| v.map(|v| v.iter().map(|s| (*s).to_owned()).collect());
            assert_eq!(
                entrypoint_and_cmd(&config),
                (owned(entrypoint), owned(cmd)),
                "command {command:?} args {args:?}"
            );
        }
    }

    #[test]
    fn states_map_to_kubernetes_reasons() {
        let at = |s: &str| Some(s.to_owned());
        let exited = |code: i64, oom: bool| ContainerState {
            exit_code: Some(code),
            oom_killed: Some(oom),
            started_at: at("2026-01-02T03:04:05.123456789Z"),
            finished_at: at("2026-01-02T03:04:07Z"),
            ..ContainerState::default()
        };
        let reason = |state: State| match state {
            State::Exited { reason, code, .. } => (reason, code),
            other => panic!("not exited: {other:?}"),
        };
        assert_eq!(
            reason(map_state(
                ContainerSummaryStateEnum::EXITED,
                &exited(0, false)
            )),
            ("Completed".into(), 0)
        );
        assert_eq!(
            reason(map_state(
                ContainerSummaryStateEnum::EXITED,
                &exited(137, false)
            )),
            ("Error".into(), 137)
        );
        assert_eq!(
            reason(map_state(
                ContainerSummaryStateEnum::EXITED,
                &exited(137, true)
            )),
            ("OOMKilled".into(), 137)
        );
        match map_state(ContainerSummaryStateEnum::EXITED, &exited(1, false)) {
            State::Exited {
                started_at: Some(s),
                finished_at,
                ..
            } => assert_eq!(
                finished_at.duration_since(s).ok(),
                Some(Duration::from_nanos(1_876_543_211))
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            map_state(
                ContainerSummaryStateEnum::CREATED,
                &ContainerState::default()
            ),
            State::Created
        );
        let running = ContainerState {
            started_at: at("2026-01-02T03:04:05Z"),
            ..ContainerState::default()
        };
        assert_eq!(
            map_state(ContainerSummaryStateEnum::RUNNING, &running),
            State::Running {
                started_at: humantime::parse_rfc3339("2026-01-02T03:04:05Z").expect("time")
            }
        );
        // Never started: Docker's zero time is no time.
        let never = ContainerState {
            exit_code: Some(128),
            started_at: at("0001-01-01T00:00:00Z"),
            finished_at: at("0001-01-01T00:00:00Z"),
            ..ContainerState::default()
        };
        assert!(matches!(
            map_state(ContainerSummaryStateEnum::EXITED, &never),
            State::Exited {
                started_at: None,
                code: 128,
                ..
            }
        ));
    }

    #[test]
    fn image_references_split_into_repository_and_tag() {
        let cases = [
            ("flotilla/busybox", "flotilla/busybox", Some("latest")),
            ("flotilla/busybox:1.35", "flotilla/busybox", Some("1.35")),
            ("localhost:5000/x", "localhost:5000/x", Some("latest")),
            ("localhost:5000/x:v1", "localhost:5000/x", Some("v1")),
            ("x@sha256:abcd", "x@sha256:abcd", None),
        ];
        for (image, repo, tag) in cases {
            assert_eq!(
                split_reference(image),
                (repo.to_owned(), tag.map(str::to_owned)),
                "{image}"
            );
        }
    }

    #[test]
    fn quotas_and_ports() {
        assert_eq!(cpu_quota(500), 50_000);
        assert_eq!(cpu_quota(4000), 400_000);
        assert_eq!(cpu_quota(1), 1000);
        let config = SandboxConfig {
            pod: pod(),
            hostname: "web-1".into(),
            ports: vec![
                super::super::Port {
                    container_port: 80,
                    host_port: Some(8080),
                    protocol: "TCP".into(),
                },
                super::super::Port {
                    container_port: 53,
                    host_port: None,
                    protocol: "UDP".into(),
                },
            ],
            dns_servers: vec![],
            dns_search: vec![],
        };
        let (exposed, bindings) = published(&config);
        assert_eq!(exposed, ["80/tcp", "53/udp"]);
        assert_eq!(bindings.len(), 1);
        assert_eq!(
            bindings["80/tcp"]
                .as_ref()
                .and_then(|b| b[0].host_port.clone()),
            Some("8080".into())
        );
    }

    #[test]
    fn names_follow_dockershim() {
        assert_eq!(
            Docker::name(&pod(), Some("web"), 2),
            "k8s_web_web-1_prod_0f1e_2"
        );
        let sandbox = Docker::name(&pod(), None, 0);
        assert!(sandbox.starts_with("k8s_POD_web-1_prod_0f1e_"), "{sandbox}");
    }
}
