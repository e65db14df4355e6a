//! `ctl bench scheduler`: how fast the leader places pods on many nodes.
//!
//! 1. Starts N hollow nodes in this process ([`crate::agent::fleet`]),
//!    joined with a fresh worker token, and waits until every one is Ready.
//! 2. Watches a fresh namespace, then creates M pods in it (64 in flight).
//! 3. Times each pod from the moment its create was sent to the first watch
//!    event showing it bound, and to the first showing it Running.
//! 4. Removes the pods, the nodes (which revokes their credentials), their
//!    Leases and the namespace.
//!
//! Throughput is M over the time from the first create to the last binding
//! (and, separately, to the last pod Running). The creates themselves go
//! through the same store, so this is an end-to-end figure, as kube's
//! scheduler_perf measures.

use super::call;
use super::stats::Summary;
use crate::agent::fleet::{self, Fleet};
use crate::agent::node::Capacity;
use crate::client::{Client, Extras, Route};
use crate::wire::{TokenCreate, TokenCreated};
use anyhow::Context as _;
use futures::stream::{self, StreamExt};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Creates in flight.
const CREATE_CONCURRENCY: usize = 64;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hollow nodes.
    pub nodes: usize,
    /// Pods.
    pub pods: usize,
    /// Give up waiting after this long.
    pub timeout: Duration,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Hollow nodes.
    pub nodes: usize,
    /// Pods created.
    pub pods: usize,
    /// Pods bound per second (first create to last binding).
    pub pods_per_second: f64,
    /// Pods Running per second (first create to last Running).
    pub running_per_second: f64,
    /// Create → bound latency.
    pub bound_p50_ms: f64,
    /// Create → bound latency.
    pub bound_p99_ms: f64,
    /// Create → Running latency.
    pub running_p50_ms: f64,
    /// Create → Running latency.
    pub running_p99_ms: f64,
    /// Seconds until all nodes were Ready.
    pub nodes_ready_seconds: f64,
    /// Pods seen bound to two different nodes (must be 0).
    pub double_bindings: usize,
}

impl Report {
    /// Human-readable lines.
    pub fn table(&self) -> String {
        format!(
            "{} hollow nodes ready in {:.1} s\n\
             {} pods: {:.0} pods/s bound, {:.0} pods/s running\n\
             create -> bound     p50 {:8.1} ms   p99 {:8.1} ms\n\
             create -> Running   p50 {:8.1} ms   p99 {:8.1} ms\n\
             pods bound to two nodes: {}\n",
            self.nodes,
            self.nodes_ready_seconds,
            self.pods,
            self.pods_per_second,
            self.running_per_second,
            self.bound_p50_ms,
            self.bound_p99_ms,
            self.running_p50_ms,
            self.running_p99_ms,
            self.double_bindings,
        )
    }
}

#[derive(Default)]
struct Seen {
    sent: HashMap<String, Instant>,
    bound: HashMap<String, (Instant, String)>,
    running: HashMap<String, Instant>,
    double: usize,
}

/// Runs the benchmark against the cluster `admin` reaches.
///
/// # Errors
/// When the cluster refuses a step or the pods are not all running in time.
pub async fn run(admin: &Client, options: &Options) -> anyhow::Result<Report> {
    let run_id = crate::security::random_string(5);
    let prefix = format!("hollow-{run_id}");
    let namespace = format!("bench-scheduler-{run_id}");
    let token: TokenCreated = admin
        .post(
            "/cluster/tokens",
            &TokenCreate {
                role: crate::security::tokens::Role::Worker,
                ttl_seconds: 3600,
            },
        )
        .await
        .context("creating a worker token (is this the admin kubeconfig?)")?;
    let started = Instant::now();
    eprintln!("starting {} hollow nodes...", options.nodes);
    let fleet = Fleet::start(
        admin,
        &token.token,
        &fleet::Options {
            prefix: prefix.clone(),
            nodes: options.nodes,
            capacity: Capacity {
                cpu_millis: 32_000,
                memory: 256 << 30,
                pods: 110,
            },
            lease_interval: Duration::from_secs(10),
            status_interval: Duration::from_secs(30),
            start_delay: Duration::from_millis(50),
        },
    )
    .await?;
    let result = measure(admin, options, &prefix, &namespace, started).await;
    eprintln!("cleaning up...");
    let names = fleet.names.clone();
    fleet.stop().await;
    cleanup(admin, &names, &namespace).await;
    let _ = call(
        admin,
        Method::POST,
        &format!("/cluster/tokens/{}/revoke", token.id),
        Some(json!({})),
    )
    .await;
    result
}

async fn measure(
    admin: &Client,
    options: &Options,
    prefix: &str,
    namespace: &str,
    started: Instant,
) -> anyhow::Result<Report> {
    // All nodes Ready.
    let deadline = Instant::now() + options.timeout;
    loop {
        let list = call(
            admin,
            Method::GET,
            &format!("/api/v1/nodes?labelSelector=flotilla.io%2Fhollow%3D{prefix}"),
            None,
        )
        .await?;
        let ready = list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|n| crate::objects::pod::condition(n, "Ready") == Some("True"))
                    .count()
            })
            .unwrap_or(0);
        if ready >= options.nodes {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {ready} of {} hollow nodes became Ready",
            options.nodes
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let nodes_ready = started.elapsed();
    eprintln!(
        "{} nodes ready after {:.1} s; creating {} pods",
        options.nodes,
        nodes_ready.as_secs_f64(),
        options.pods
    );
    call(
        admin,
        Method::POST,
        "/api/v1/namespaces",
        Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})),
    )
    .await?;
    let list = call(
        admin,
        Method::GET,
        &format!("/api/v1/namespaces/{namespace}/pods"),
        None,
    )
    .await?;
    let from = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_owned();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watcher = {
        let seen = seen.clone();
        let response = admin
            .send_with(
                Method::GET,
                &format!("/api/v1/namespaces/{namespace}/pods?watch=true&resourceVersion={from}"),
                None,
                Route::Any,
                crate::client::DEFAULT_DEADLINE,
                &Extras {
                    timeout: Some(options.timeout + Duration::from_secs(60)),
                    ..Extras::default()
                },
            )
            .await?;
        tokio::spawn(follow(response, seen))
    };
    let first_create = Instant::now();
    let template = |i: usize| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{i}"), "labels": {"app": "bench-scheduler"}},
            "spec": {"containers": [{"name": "c", "image": "fake/pause:1"}],
                     "terminationGracePeriodSeconds": 0}})
    };
    let failures: usize = stream::iter(0..options.pods)
        .map(|i| {
            let seen = seen.clone();
            let body = template(i);
            async move {
                let name = format!("pod-{i}");
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .sent
                    .insert(name, Instant::now());
                call(
                    admin,
                    Method::POST,
                    &format!("/api/v1/namespaces/{namespace}/pods"),
                    Some(body),
                )
                .await
                .is_err()
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    anyhow::ensure!(failures == 0, "{failures} pod creates failed");
    loop {
        let (bound, running) = {
            let s = seen.lock().unwrap_or_else(PoisonError::into_inner);
            (s.bound.len(), s.running.len())
        };
        if running >= options.pods {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline + Duration::from_secs(60) && !watcher.is_finished(),
            "after {:?}: {bound} of {} pods bound, {running} running",
            first_create.elapsed(),
            options.pods
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watcher.abort();
    let s = seen.lock().unwrap_or_else(PoisonError::into_inner);
    let mut to_bound: Vec<Duration> = Vec::new();
    let mut to_running: Vec<Duration> = Vec::new();
    let mut last_bound = first_create;
    let mut last_running = first_create;
    for (name, sent) in &s.sent {
        if let Some((at, _)) = s.bound.get(name) {
            to_bound.push(at.saturating_duration_since(*sent));
            last_bound = last_bound.max(*at);
        }
        if let Some(at) = s.running.get(name) {
            to_running.push(at.saturating_duration_since(*sent));
            last_running = last_running.max(*at);
        }
    }
    let bound = Summary::of(&mut to_bound);
    let running = Summary::of(&mut to_running);
    let per_second = |end: Instant| {
        options.pods as f64 / end.duration_since(first_create).as_secs_f64().max(1e-9)
    };
    Ok(Report {
        nodes: options.nodes,
        pods: options.pods,
        pods_per_second: per_second(last_bound),
        running_per_second: per_second(last_running),
        bound_p50_ms: bound.p50_ms,
        bound_p99_ms: bound.p99_ms,
        running_p50_ms: running.p50_ms,
        running_p99_ms: running.p99_ms,
        nodes_ready_seconds: nodes_ready.as_secs_f64(),
        double_bindings: s.double,
    })
}

/// Records when each pod was first seen bound and Running.
async fn follow(mut response: reqwest::Response, seen: Arc<Mutex<Seen>>) {
    let mut buffer: Vec<u8> = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let now = Instant::now();
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let pod = &event["object"];
            let Some(name) = pod["metadata"]["name"].as_str() else {
                continue;
            };
            let mut s = seen.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(node) = crate::objects::pod::node_name(pod) {
                match s.bound.get(name) {
                    Some((_, first)) if first != node => s.double += 1,
                    Some(_) => {}
                    None => {
                        s.bound.insert(name.to_owned(), (now, node.to_owned()));
                    }
                }
            }
            if crate::objects::pod::phase(pod) == "Running" && !s.running.contains_key(name) {
                s.running.insert(name.to_owned(), now);
            }
        }
    }
}

/// Removes what the run made: pods, nodes, leases, the namespace. The
/// hollow agents are stopped by then, so the pods are removed at once
/// (grace 0) rather than left for agents to confirm.
async fn cleanup(admin: &Client, names: &[String], namespace: &str) {
    let _ = call(
        admin,
        Method::DELETE,
        &format!("/api/v1/namespaces/{namespace}/pods"),
        Some(json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})),
    )
    .await;
    stream::iter(names.to_vec())
        .map(|name| async move {
            let _ = call(
                admin,
                Method::DELETE,
                &format!("/api/v1/nodes/{name}"),
                None,
            )
            .await;
            let _ = call(
                admin,
                Method::DELETE,
                &format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"),
                None,
            )
            .await;
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .for_each(|()| async {})
        .await;
    let _ = call(
        admin,
        Method::DELETE,
        &format!("/api/v1/namespaces/{namespace}"),
        None,
    )
    .await;
}
