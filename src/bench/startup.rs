//! `ctl bench startup`: pod start-up latency on the cluster's Docker workers
//! (Kubernetes' pod startup SLO: p99 ≤ 5 s from creation to Running,
//! excluding image pulls).
//!
//! 1. Checks that at least one Docker worker (`flotilla.io/runtime=docker`)
//!    is Ready.
//! 2. Watches a fresh namespace, then creates N pods in it — each one
//!    `flotilla/busybox:latest` running `sleep` (under a shell that exits on
//!    SIGTERM), `imagePullPolicy:
//!    IfNotPresent` (no registry here: the image must have been built by
//!    `docker/build-images.sh`), `nodeSelector: flotilla.io/runtime: docker`
//!    — at most `--qps` creates a second (0: as fast as the API takes them,
//!    [`CREATE_CONCURRENCY`] in flight).
//! 3. Times each pod from the moment its create was sent to the first watch
//!    event showing it bound and the first showing it Running, which the
//!    agent reports once the sandbox and the container have started.
//! 4. Deletes the pods with a grace period of [`DELETE_GRACE_SECONDS`] and
//!    waits until they are gone — which is when their agents confirm, after
//!    removing the containers — then the namespace.
//!
//! A pod whose image cannot be had (ErrImagePull, ErrImageNeverPull) ends
//! the run at once with the agent's message, rather than waiting out the
//! timeout.

use super::call;
use super::stats::Summary;
use crate::client::{Client, Extras, Route};
use anyhow::Context as _;
use futures::stream::{self, StreamExt};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Creates in flight.
pub const CREATE_CONCURRENCY: usize = 32;
/// The image the pods run.
pub const IMAGE: &str = "flotilla/busybox:latest";
/// What the pods run: `sleep`, under a shell that exits on SIGTERM (as PID 1,
/// `sleep` alone would ignore it and every stop would wait out the grace
/// period).
pub const SLEEP: &str = "trap 'exit 0' TERM; sleep 3600 & wait";
/// The grace period the cleanup deletes with: long enough that the pods
/// stay until their agents confirm, which they do once the containers are
/// removed (a pod whose grace ran out is removed without waiting for them).
pub const DELETE_GRACE_SECONDS: u64 = 30;
/// The node label that selects Docker workers.
pub const RUNTIME_LABEL: &str = "flotilla.io/runtime";

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Pods to start.
    pub pods: usize,
    /// Creates per second (0: no limit).
    pub qps: f64,
    /// Give up waiting for Running (and, separately, for the cleanup) after this long.
    pub timeout: Duration,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Pods started.
    pub pods: usize,
    /// Docker workers Ready at the start.
    pub nodes: usize,
    /// Creates per second asked for (0: no limit).
    pub qps: f64,
    /// Create → Running latency, median.
    pub p50_ms: f64,
    /// Create → Running latency, 90th percentile.
    pub p90_ms: f64,
    /// Create → Running latency, 99th percentile.
    pub p99_ms: f64,
    /// Create → Running latency, slowest pod.
    pub max_ms: f64,
    /// Create → bound latency, median.
    pub bound_p50_ms: f64,
    /// Create → bound latency, 99th percentile.
    pub bound_p99_ms: f64,
    /// Pods Running per second (first create to last Running).
    pub running_per_second: f64,
    /// Seconds the cleanup took (delete to every pod gone).
    pub cleanup_seconds: f64,
}

impl Report {
    /// Human-readable lines.
    pub fn table(&self) -> String {
        format!(
            "{} pods on {} Docker worker(s){}: {:.1} pods/s running\n\
             create -> bound     p50 {:8.1} ms   p99 {:8.1} ms\n\
             create -> Running   p50 {:8.1} ms   p90 {:8.1} ms   p99 {:8.1} ms   max {:8.1} ms\n\
             cleanup: every pod gone after {:.1} s\n",
            self.pods,
            self.nodes,
            if self.qps > 0.0 {
                format!(" at {} creates/s", self.qps)
            } else {
                String::new()
            },
            self.running_per_second,
            self.bound_p50_ms,
            self.bound_p99_ms,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
            self.cleanup_seconds,
        )
    }
}

#[derive(Default)]
struct Seen {
    sent: HashMap<String, Instant>,
    bound: HashMap<String, Instant>,
    running: HashMap<String, Instant>,
    /// A pod that cannot start, and why.
    failed: Option<String>,
}

/// The pod the benchmark creates as number `i`.
pub fn pod(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("startup-{i}"), "labels": {"app": "bench-startup"}},
        "spec": {
            "containers": [{"name": "sleep", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", SLEEP]}],
            "nodeSelector": {RUNTIME_LABEL: "docker"}}})
}

/// Runs the benchmark against the cluster `admin` reaches.
///
/// # Errors
/// When no Docker worker is Ready, the cluster refuses a step, a pod cannot
/// start, or the pods are not all Running in time.
pub async fn run(admin: &Client, options: &Options) -> anyhow::Result<Report> {
    anyhow::ensure!(options.pods > 0, "--pods must be at least 1");
    anyhow::ensure!(
        options.qps >= 0.0 && options.qps.is_finite(),
        "--qps must be a non-negative number"
    );
    let nodes = call(
        admin,
        Method::GET,
        &format!("/api/v1/nodes?labelSelector={RUNTIME_LABEL}%3Ddocker"),
        None,
    )
    .await
    .context("listing the Docker workers")?;
    let ready = nodes["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|n| crate::objects::pod::condition(n, "Ready") == Some("True"))
                .count()
        })
        .unwrap_or(0);
    anyhow::ensure!(
        ready > 0,
        "no Ready Docker worker (node label {RUNTIME_LABEL}=docker): start one with `ctl init` or `ctl join SERVER --token WORKER_TOKEN --runtime docker`"
    );
    let namespace = format!(
        "bench-startup-{}",
        crate::security::random_string(5).to_ascii_lowercase()
    );
    call(
        admin,
        Method::POST,
        "/api/v1/namespaces",
        Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})),
    )
    .await
    .with_context(|| format!("creating namespace {namespace}"))?;
    let result = measure(admin, options, &namespace, ready).await;
    eprintln!("cleaning up...");
    let cleanup = cleanup(admin, &namespace, options.timeout).await;
    match (result, cleanup) {
        (Ok(mut report), Ok(took)) => {
            report.cleanup_seconds = took.as_secs_f64();
            Ok(report)
        }
        (Ok(report), Err(e)) => {
            eprint!("{}", report.table());
            Err(e)
        }
        (Err(e), Ok(_)) => Err(e),
        (Err(e), Err(c)) => Err(e.context(format!("and the cleanup failed too: {c:#}"))),
    }
}

async fn measure(
    admin: &Client,
    options: &Options,
    namespace: &str,
    nodes: usize,
) -> anyhow::Result<Report> {
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
    let watcher = tokio::spawn(follow(response, seen.clone()));
    let result = create_and_wait(admin, options, namespace, nodes, &seen).await;
    watcher.abort();
    result
}

async fn create_and_wait(
    admin: &Client,
    options: &Options,
    namespace: &str,
    nodes: usize,
    seen: &Arc<Mutex<Seen>>,
) -> anyhow::Result<Report> {
    eprintln!(
        "creating {} pods on {nodes} Docker worker(s)...",
        options.pods
    );
    let first_create = Instant::now();
    let interval = (options.qps > 0.0).then(|| Duration::from_secs_f64(1.0 / options.qps));
    let failures: Vec<String> = stream::iter(0..options.pods)
        .map(|i| {
            let seen = seen.clone();
            async move {
                if let Some(interval) = interval {
                    let at = first_create + interval.mul_f64(i as f64);
                    tokio::time::sleep_until(at.into()).await;
                }
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .sent
                    .insert(format!("startup-{i}"), Instant::now());
                call(
                    admin,
                    Method::POST,
                    &format!("/api/v1/namespaces/{namespace}/pods"),
                    Some(pod(i)),
                )
                .await
                .err()
                .map(|e| format!("{e:#}"))
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .filter_map(std::future::ready)
        .collect()
        .await;
    if let Some(first) = failures.first() {
        anyhow::bail!("{} pod creates failed; the first: {first}", failures.len());
    }
    let deadline = Instant::now() + options.timeout;
    loop {
        let (bound, running, failed) = {
            let s = seen.lock().unwrap_or_else(PoisonError::into_inner);
            (s.bound.len(), s.running.len(), s.failed.clone())
        };
        if let Some(why) = failed {
            anyhow::bail!("{why} (are the images built? run docker/build-images.sh on the workers' Docker host)");
        }
        if running >= options.pods {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "after {:?}: {bound} of {} pods bound, {running} Running",
            first_create.elapsed(),
            options.pods
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = seen.lock().unwrap_or_else(PoisonError::into_inner);
    let mut to_bound = Vec::new();
    let mut to_running = Vec::new();
    let mut last_running = first_create;
    for (name, sent) in &s.sent {
        if let Some(at) = s.bound.get(name) {
            to_bound.push(at.saturating_duration_since(*sent));
        }
        if let Some(at) = s.running.get(name) {
            to_running.push(at.saturating_duration_since(*sent));
            last_running = last_running.max(*at);
        }
    }
    let bound = Summary::of(&mut to_bound);
    let running = Summary::of(&mut to_running);
    Ok(Report {
        pods: options.pods,
        nodes,
        qps: options.qps,
        p50_ms: running.p50_ms,
        p90_ms: running.p90_ms,
        p99_ms: running.p99_ms,
        max_ms: running.max_ms,
        bound_p50_ms: bound.p50_ms,
        bound_p99_ms: bound.p99_ms,
        running_per_second: options.pods as f64
            / last_running
                .duration_since(first_create)
                .as_secs_f64()
                .max(1e-9),
        cleanup_seconds: 0.0,
    })
}

/// Why a pod cannot start, if its status says it never will on its own.
fn stuck(pod: &Value) -> Option<String> {
    crate::objects::pod::list(&pod["status"], "containerStatuses")
        .iter()
        .find_map(|c| {
            let waiting = &c["state"]["waiting"];
            let reason = waiting["reason"].as_str()?;
            matches!(
                reason,
                "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull" | "CreateContainerError"
            )
            .then(|| {
                format!(
                    "pod {}: {reason}: {}",
                    pod["metadata"]["name"].as_str().unwrap_or("?"),
                    waiting["message"].as_str().unwrap_or("")
                )
            })
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
            if crate::objects::pod::node_name(pod).is_some() && !s.bound.contains_key(name) {
                s.bound.insert(name.to_owned(), now);
            }
            if crate::objects::pod::phase(pod) == "Running" && !s.running.contains_key(name) {
                s.running.insert(name.to_owned(), now);
            }
            if s.failed.is_none() {
                s.failed = stuck(pod);
            }
        }
    }
}

/// Deletes the pods (gracefully, one by one, as `kubectl delete` does:
/// the agents stop the containers and confirm) and waits until they are
/// gone, then deletes the namespace; how long the pods took to go.
async fn cleanup(admin: &Client, namespace: &str, timeout: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let list = call(
            admin,
            Method::GET,
            &format!("/api/v1/namespaces/{namespace}/pods"),
            None,
        )
        .await
        .with_context(|| format!("listing the pods of {namespace}"))?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} pods of namespace {namespace} are still there after {timeout:?}: the agents have not removed their containers",
            items.len()
        );
        // Delete those not yet marked (again, if a delete was lost).
        let names: Vec<String> = items
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        stream::iter(names)
            .map(|name| async move {
                if let Err(e) = call(
                    admin,
                    Method::DELETE,
                    &format!("/api/v1/namespaces/{namespace}/pods/{name}"),
                    Some(json!({"apiVersion": "v1", "kind": "DeleteOptions",
                        "gracePeriodSeconds": DELETE_GRACE_SECONDS})),
                )
                .await
                {
                    tracing::debug!(pod = %name, "deleting: {e:#}");
                }
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .for_each(|()| async {})
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    call(
        admin,
        Method::DELETE,
        &format!("/api/v1/namespaces/{namespace}"),
        None,
    )
    .await
    .with_context(|| format!("deleting namespace {namespace}"))?;
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_run_busybox_on_docker_workers() {
        let p = pod(7);
        assert_eq!(p["metadata"]["name"], "startup-7");
        assert_eq!(p["spec"]["nodeSelector"][RUNTIME_LABEL], "docker");
        assert_eq!(p["spec"]["containers"][0]["image"], IMAGE);
        assert_eq!(
            p["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    #[test]
    fn pull_failures_end_the_run() {
        let waiting = |reason: &str| {
            json!({"metadata": {"name": "p"}, "status": {"containerStatuses": [
                {"name": "c", "state": {"waiting": {"reason": reason, "message": "no such image"}}}]}})
        };
        assert_eq!(
            stuck(&waiting("ErrImagePull")).as_deref(),
            Some("pod p: ErrImagePull: no such image")
        );
        assert!(stuck(&waiting("ErrImageNeverPull")).is_some());
        assert_eq!(stuck(&waiting("ContainerCreating")), None);
        assert_eq!(stuck(&json!({"metadata": {"name": "p"}})), None);
    }
}
