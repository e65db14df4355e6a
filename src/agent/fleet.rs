//! Many hollow nodes in one process (Kubernetes' kubemark), for scale tests.
//!
//! Each hollow node is a whole agent — its own node credential, joined with
//! a worker token, its own Node, Lease heartbeats, status reports and pod
//! workers — over the fake runtime. What they share is what a real fleet
//! would not: one HTTP connection pool, and one watch of all pods
//! ([`super::feed::Hub`]) routed by node name instead of a watch per node.

use super::api::Api;
use super::feed::Hub;
use super::node::{self, Capacity};
use super::pods::Shared;
use super::probe::Results;
use super::runtime::fake::Fake;
use crate::client::Client;
use crate::wire::{WorkerJoinGrant, WorkerJoinRequest};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Joins in flight at a time.
const JOIN_CONCURRENCY: usize = 32;

/// How a fleet's nodes behave.
#[derive(Debug, Clone)]
pub struct Options {
    /// Node names are `PREFIX-0`, `PREFIX-1`, ...
    pub prefix: String,
    /// How many nodes.
    pub nodes: usize,
    /// What each offers.
    pub capacity: Capacity,
    /// Lease renewal period.
    pub lease_interval: Duration,
    /// Node status check period.
    pub status_interval: Duration,
    /// Simulated container start time.
    pub start_delay: Duration,
}

/// A running fleet.
pub struct Fleet {
    /// The node names.
    pub names: Vec<String>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Fleet {
    /// Joins `options.nodes` hollow nodes with `token` (a worker token)
    /// through `admin` (whose connection pool they share) and starts them.
    ///
    /// # Errors
    /// When a join is refused.
    pub async fn start(admin: &Client, token: &str, options: &Options) -> anyhow::Result<Fleet> {
        let names: Vec<String> = (0..options.nodes)
            .map(|i| format!("{}-{i}", options.prefix))
            .collect();
        let grants: Vec<(String, WorkerJoinGrant)> = stream::iter(names.clone())
            .map(|name| async move {
                let request = WorkerJoinRequest {
                    token: token.to_owned(),
                    name: name.clone(),
                    address: "127.0.0.1".into(),
                };
                let grant: WorkerJoinGrant = admin.post("/cluster/join/worker", &request).await?;
                Ok::<_, anyhow::Error>((name, grant))
            })
            .buffer_unordered(JOIN_CONCURRENCY)
            .try_collect()
            .await?;
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut hub = Hub::new();
        for (name, grant) in grants {
            let feed = hub.subscribe(&name);
            let runtime = Arc::new(Fake::new(&name, options.start_delay));
            let shared = Arc::new(Shared {
                api: Api::new(admin.with_token(grant.credential)),
                runtime,
                scheme: "fake://".into(),
                host_ip: "127.0.0.1".into(),
                probes: Results::default(),
                probe_http: reqwest::Client::new(),
            });
            let config = node::Config {
                name: name.clone(),
                address: "127.0.0.1".into(),
                daemon_port: 0,
                capacity: options.capacity,
                runtime_version: format!("fake://{}", env!("CARGO_PKG_VERSION")),
                labels: vec![
                    ("flotilla.io/runtime".into(), "fake".into()),
                    ("flotilla.io/hollow".into(), options.prefix.clone()),
                ],
                lease_interval: options.lease_interval,
                status_interval: options.status_interval,
            };
            let stop = stop.clone();
            tasks.spawn(async move {
                if let Err(e) = super::run(config, shared, feed, stop).await {
                    tracing::error!("hollow node {name}: {e}");
                }
            });
        }
        // The hub watches all pods with the admin's credential.
        let hub_api = Arc::new(Api::new(
            admin.with_token(admin.token().unwrap_or_default().to_owned()),
        ));
        tasks.spawn(hub.run(hub_api, stop.clone()));
        Ok(Fleet { names, stop, tasks })
    }

    /// Stops every node's agent (their Node objects stay).
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}
