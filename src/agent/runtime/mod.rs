//! The container runtime behind the agent, as a trait with two
//! implementations: Docker through bollard ([`docker`]) and an in-memory fake
//! for hollow nodes ([`fake`]).
//!
//! The trait is shaped like Kubernetes' CRI: a pod is a *sandbox* (which
//! holds the pod's network namespace and IP) plus its containers, which join
//! the sandbox. Every container the runtime makes carries labels naming its
//! node, pod (uid, namespace, name), container name and *attempt* (0 for the
//! first run, +1 per restart). Those labels are the agent's only memory: a
//! restarted agent lists them and adopts what it finds, so it never runs a
//! pod twice, and two agents sharing one Docker Engine each see only their
//! own containers.

pub mod docker;
pub mod fake;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::time::{Duration, SystemTime};

/// Label: the node whose agent made the container.
pub const LABEL_NODE: &str = "io.flotilla.node";
/// Label: the pod's uid.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// Label: the pod's namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Label: the pod's name.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// Label: the container's name in the pod (absent on sandboxes).
pub const LABEL_CONTAINER: &str = "io.kubernetes.container.name";
/// Label: the attempt number (restart count) of the container.
pub const LABEL_ATTEMPT: &str = "io.flotilla.attempt";
/// Label: marks a pod's sandbox.
pub const LABEL_SANDBOX: &str = "io.flotilla.sandbox";

/// Which pod something belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodRef {
    /// The pod's uid.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// A port a container exposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Port inside the container.
    pub container_port: u16,
    /// Port on the host, if published.
    pub host_port: Option<u16>,
    /// "TCP" or "UDP".
    pub protocol: String,
}

/// What a sandbox needs.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The pod.
    pub pod: PodRef,
    /// Host name inside the pod.
    pub hostname: String,
    /// Ports of all containers (host ports are published on the sandbox).
    pub ports: Vec<Port>,
    /// DNS servers for the pod's resolv.conf.
    pub dns_servers: Vec<String>,
    /// DNS search domains.
    pub dns_search: Vec<String>,
}

/// A running sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// Runtime id.
    pub id: String,
    /// The pod's IP.
    pub ip: String,
}

/// What a container needs.
#[derive(Debug, Clone, Default)]
pub struct ContainerConfig {
    /// Name in the pod.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Entrypoint override (`command`).
    pub command: Vec<String>,
    /// Arguments (`args`).
    pub args: Vec<String>,
    /// Environment.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// CPU limit in millicores (0: none).
    pub cpu_millis: i64,
    /// Memory limit in bytes (0: none).
    pub memory: i64,
    /// Attempt number (restart count).
    pub attempt: u32,
}

/// When to pull an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Always pull.
    Always,
    /// Pull when missing.
    IfNotPresent,
    /// Never pull: the image must be present.
    Never,
}

impl PullPolicy {
    /// From `imagePullPolicy` (unknown values read as IfNotPresent).
    pub fn parse(text: &str) -> PullPolicy {
        match text {
            "Always" => PullPolicy::Always,
            "Never" => PullPolicy::Never,
            _ => PullPolicy::IfNotPresent,
        }
    }
}

/// A container's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Created, not started.
    Created,
    /// Running since.
    Running {
        /// Start time.
        started_at: SystemTime,
    },
    /// Exited.
    Exited {
        /// Exit code.
        code: i64,
        /// Start time, if it started.
        started_at: Option<SystemTime>,
        /// End time.
        finished_at: SystemTime,
        /// Why ("Completed", "Error", "OOMKilled").
        reason: String,
    },
}

/// A container (or sandbox) the runtime holds for this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Runtime id.
    pub id: String,
    /// The pod it belongs to.
    pub pod: PodRef,
    /// Container name (None for a sandbox).
    pub name: Option<String>,
    /// Attempt number.
    pub attempt: u32,
    /// Image.
    pub image: String,
    /// Image id, as the runtime names it.
    pub image_id: String,
    /// State.
    pub state: State,
    /// For a sandbox: the pod IP.
    pub ip: Option<String>,
}

/// How to read logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOptions {
    /// Keep streaming new output.
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<u64>,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: bool,
}

/// A stream of log bytes.
pub type LogStream = BoxStream<'static, Result<Bytes, RuntimeError>>;

/// Why a runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Pulling an image failed (no registry here: any pull of a missing image).
    #[error("{0}")]
    ImagePull(String),
    /// The image is missing and the policy is Never.
    #[error("{0}")]
    ImageNeverPull(String),
    /// The container or sandbox does not exist.
    #[error("no such container: {0}")]
    NotFound(String),
    /// The runtime did not answer in time.
    #[error("the container runtime did not answer within {0:?}")]
    Timeout(Duration),
    /// Anything else the runtime reported.
    #[error("container runtime: {0}")]
    Other(String),
}

/// A container runtime.
///
/// Every call has its own timeout inside the implementation; none blocks
/// for long.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// "docker" or "fake", with a version: `docker://28.2.2`.
    async fn version(&self) -> Result<String, RuntimeError>;

    /// Every container and sandbox of this node.
    async fn list(&self) -> Result<Vec<Container>, RuntimeError>;

    /// Makes `image` present according to `policy`.
    async fn pull(&self, image: &str, policy: PullPolicy) -> Result<(), RuntimeError>;

    /// Creates and starts the pod's sandbox.
    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox, RuntimeError>;

    /// Creates a container in `sandbox`.
    async fn create(
        &self,
        pod: &PodRef,
        sandbox: &Sandbox,
        config: &ContainerConfig,
    ) -> Result<String, RuntimeError>;

    /// Starts a created container.
    async fn start(&self, id: &str) -> Result<(), RuntimeError>;

    /// Stops a container: SIGTERM, then SIGKILL after `grace`.
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;

    /// Removes a stopped container (or a sandbox).
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;

    /// A container's output.
    async fn logs(&self, id: &str, options: LogOptions) -> Result<LogStream, RuntimeError>;

    /// Runs `command` in a container; its exit code.
    async fn exec(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<i64, RuntimeError>;

    /// The network namespace of a running sandbox, as a path CNI plugins
    /// can enter (`/proc/PID/ns/net`); None when it is not running or the
    /// runtime has no namespaces (the fake).
    async fn netns(&self, id: &str) -> Result<Option<String>, RuntimeError> {
        let _ = id;
        Ok(None)
    }
}
