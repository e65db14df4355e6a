//! One agent process (or the agent inside `ctl init`): join or resume, pick
//! the runtime, serve logs, follow the node's pods, run them, until stopped.

use super::feed;
use super::join::{self, Joined};
use super::node::{self, Capacity};
use super::pods::Shared;
use super::probe::Results;
use super::runtime::{fake::Fake, Runtime};
use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How often the agent refreshes its list of masters (`/cluster/members`).
pub const MEMBER_REFRESH: Duration = Duration::from_secs(10);

/// Which container runtime runs the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// The Docker Engine, through its socket.
    Docker,
    /// In-memory containers: a hollow node, for scale tests.
    Fake,
}

impl RuntimeKind {
    /// The `flotilla.io/runtime` label value.
    pub fn label(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Fake => "fake",
        }
    }
}

/// How to run an agent.
#[derive(Debug, Clone)]
pub struct Options {
    /// A master to join through (first start only).
    pub server: Option<String>,
    /// A worker token (first start only).
    pub token: Option<String>,
    /// Where the worker keeps its identity.
    pub data_dir: PathBuf,
    /// Node name (first start; defaults to the host name).
    pub name: Option<String>,
    /// The address masters reach this node at (first start; default 127.0.0.1).
    pub address: Option<String>,
    /// Where the log server listens (default: the address, any free port).
    pub listen: Option<String>,
    /// The runtime.
    pub runtime: RuntimeKind,
    /// Capacity to report (default: the host's).
    pub capacity: Option<Capacity>,
    /// The pod network (Docker runtime only).
    pub network: super::network::Flags,
}

/// Builds the runtime of `kind` for node `name`.
///
/// # Errors
/// When the Docker Engine cannot be reached.
pub async fn runtime(kind: RuntimeKind, name: &str) -> anyhow::Result<Arc<dyn Runtime>> {
    match kind {
        RuntimeKind::Fake => Ok(Arc::new(Fake::new(name, super::runtime::fake::DEFAULT_START_DELAY))),
        RuntimeKind::Docker => Ok(Arc::new(
            super::runtime::docker::Docker::connect(name, super::runtime::docker::PodNetwork::Cni)
                .await
                .context("connecting to the Docker Engine (is it running, and is /var/run/docker.sock readable?)")?,
        )),
    }
}

/// Joins (first start) or resumes the worker in `options.data_dir`.
///
/// # Errors
/// As [`join::join`], or when neither an identity nor a token is there.
pub async fn join_or_resume(options: &Options) -> anyhow::Result<Joined> {
    if let Some(joined) = join::load(&options.data_dir)? {
        println!(
            "Resuming worker {} of cluster {} from {}",
            joined.worker.name,
            joined.worker.cluster_id,
            options.data_dir.display()
        );
        return Ok(joined);
    }
    let (Some(server), Some(token)) = (&options.server, &options.token) else {
        anyhow::bail!(
            "{} holds no worker: run `ctl join SERVER --token WORKER_TOKEN --data-dir {}` to join",
            options.data_dir.display(),
            options.data_dir.display()
        );
    };
    let name = options.name.clone().unwrap_or_else(crate::host::name);
    let address = options
        .address
        .clone()
        .unwrap_or_else(|| "127.0.0.1".into());
    let joined = join::join(server, token, &name, &address, &options.data_dir).await?;
    println!(
        "Joined cluster {} as worker {}.\n  Its credential: {}",
        joined.worker.cluster_id,
        name,
        joined.kubeconfig.display()
    );
    Ok(joined)
}

/// Runs an agent until `stop`.
///
/// # Errors
/// When joining fails, the runtime is unreachable, or the cluster refuses
/// the node.
pub async fn run(options: Options, stop: CancellationToken) -> anyhow::Result<()> {
    let joined = join_or_resume(&options).await?;
    let name = joined.worker.name.clone();
    let mut runtime = runtime(options.runtime, &name).await?;
    let settings_api = super::api::Api::new(joined.client()?);
    let settings = match settings_api.get("/cluster/settings").await {
        Ok(Some(s)) => serde_json::from_value::<crate::store::settings::Settings>(s)
            .unwrap_or_else(|e| {
                tracing::warn!("the cluster settings are unreadable ({e}); using the defaults");
                crate::store::settings::Settings::default()
            }),
        _ => crate::store::settings::Settings::default(),
    };
    // Docker pods get their network from CNI, and the node routes to the
    // other nodes' pods (agent::network).
    let mut network_tasks = Vec::new();
    if options.runtime == RuntimeKind::Docker {
        let (local_tx, local_rx) = tokio::sync::watch::channel(None);
        let dirs = super::network::Dirs::new(&options.network, &options.data_dir);
        let wired = Arc::new(
            super::network::wired::Wired::new(runtime, dirs, local_rx)
                .context("preparing the CNI state directories")?,
        );
        network_tasks.push(tokio::spawn(wired.clone().maintain(stop.clone())));
        runtime = wired as Arc<dyn Runtime>;
        let address: std::net::Ipv4Addr = joined.worker.address.parse().with_context(|| {
            format!(
                "the pod network needs the node's address as an IPv4 address, not {:?} (--advertise)",
                joined.worker.address
            )
        })?;
        let config = super::network::routes::Config {
            node: name.clone(),
            address,
            cluster: settings.pod_cidr,
            backend: options.network.backend,
        };
        network_tasks.push(tokio::spawn(super::network::routes::run(
            super::api::Api::new(joined.client()?),
            config,
            local_tx,
            stop.clone(),
        )));
    }
    let listen = options
        .listen
        .clone()
        .unwrap_or_else(|| format!("{}:0", joined.worker.address));
    let tcp = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("the agent cannot listen on {listen}"))?;
    let port = tcp.local_addr()?.port();
    let server = tokio::spawn(super::server::serve(
        tcp,
        joined.serving.clone(),
        joined.agent_secret.clone(),
        runtime.clone(),
        stop.clone(),
    ));
    // One client, shared: the member list it learns (and keeps beside the
    // node kubeconfig) serves every loop of the agent.
    let client = joined.client()?;
    let members = client.share();
    let follow = tokio::spawn({
        let stop = stop.clone();
        async move { members.follow_members(MEMBER_REFRESH, stop).await }
    });
    let api = Arc::new(super::api::Api::new(client.share()));
    let shared = Arc::new(Shared {
        api: super::api::Api::new(client),
        runtime: runtime.clone(),
        scheme: format!("{}://", options.runtime.label()),
        host_ip: joined.worker.address.clone(),
        probes: Results::default(),
        probe_http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
    });
    // Heartbeats paced by the cluster's grace period (the default's pace
    // when the masters cannot say yet).
    let beat = node::renew_interval(settings.node_monitor_grace_period);
    let config = node::Config {
        name: name.clone(),
        address: joined.worker.address.clone(),
        daemon_port: port,
        capacity: options.capacity.unwrap_or_else(Capacity::of_host),
        runtime_version: runtime.version().await.unwrap_or_else(|e| {
            tracing::warn!("runtime version: {e}");
            options.runtime.label().to_owned()
        }),
        labels: vec![("flotilla.io/runtime".into(), options.runtime.label().into())],
        lease_interval: beat,
        status_interval: beat,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn(feed::watch_node(api, name.clone(), tx, stop.clone()));
    tracing::info!(node = %name, runtime = options.runtime.label(), log_port = port, "agent starting");
    let result = super::run(config, shared, rx, stop.clone()).await;
    stop.cancel();
    let _ = watcher.await;
    let _ = follow.await;
    let _ = server.await;
    for task in network_tasks {
        let _ = task.await;
    }
    result.map_err(anyhow::Error::from)
}
