//! `ctl bench api`: the Kubernetes API under load, through the same client
//! `ctl` uses (leader redirects followed, bearer token sent).
//!
//! In a namespace of its own it measures, in order:
//! 1. **create**: `creates` pods, POSTed by `clients` concurrent tasks;
//! 2. **get**: a linearizable GET of each of those pods, same concurrency;
//! 3. **list**: fills the namespace up to `list_pods` pods, then times full
//!    LISTs of it;
//! 4. **watch fan-out**: opens `watchers` watches spread over every master,
//!    creates `watch_events` pods, and times each event from the create's
//!    start to its arrival at each watcher;
//!
//! then deletes the pods and the namespace. Every phase is bounded by its
//! count; every request has the client's timeout.

use super::stats::Summary;
use crate::client::{self, Client, Route};
use anyhow::{bail, Context as _};
use futures::StreamExt;
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Masters, `HOST:PORT` or URLs.
    pub endpoints: Vec<String>,
    /// Admin bearer token.
    pub token: Option<String>,
    /// The cluster CA (PEM).
    pub ca_pem: Option<String>,
    /// Pods created (and read back) in the latency phases.
    pub creates: usize,
    /// Concurrent client tasks.
    pub clients: usize,
    /// Pods in the namespace when listing.
    pub list_pods: usize,
    /// Concurrent watches.
    pub watchers: usize,
    /// Pods created while the watches run.
    pub watch_events: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            endpoints: Vec::new(),
            token: None,
            ca_pem: None,
            creates: 2000,
            clients: 16,
            list_pods: 10_000,
            watchers: 100,
            watch_events: 100,
        }
    }
}

/// Latency of one kind of call.
#[derive(Serialize, Debug, Clone)]
pub struct Latency {
    /// Calls made.
    pub calls: usize,
    /// Calls per second over the phase.
    pub per_second: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
}

/// The results.
#[derive(Serialize, Debug, Clone)]
pub struct Report {
    /// POST of a pod.
    pub create: Latency,
    /// Linearizable GET of a pod.
    pub get: Latency,
    /// Pods in each full LIST.
    pub list_pods: usize,
    /// Full LISTs of `list_pods` pods.
    pub list: Latency,
    /// Bytes of one LIST answer.
    pub list_bytes: usize,
    /// Concurrent watches.
    pub watchers: usize,
    /// Events delivered (watchers × pods created).
    pub watch_events_delivered: usize,
    /// From the create's start to the event's arrival at a watcher.
    pub watch_delivery: Latency,
}

impl Report {
    /// A human-readable summary.
    pub fn table(&self) -> String {
        let line = |what: &str, l: &Latency| {
            format!(
                "{what:<28} {:>7} calls {:>9.0}/s   p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms\n",
                l.calls, l.per_second, l.p50_ms, l.p99_ms, l.max_ms
            )
        };
        let mut out = String::new();
        out.push_str(&line("create pod", &self.create));
        out.push_str(&line("get pod (linearizable)", &self.get));
        out.push_str(&line(&format!("list {} pods", self.list_pods), &self.list));
        out.push_str(&format!("{:<28} {} bytes per list\n", "", self.list_bytes));
        out.push_str(&line(
            &format!("watch delivery ({} watchers)", self.watchers),
            &self.watch_delivery,
        ));
        out.push_str(&format!(
            "{:<28} {} events delivered\n",
            "", self.watch_events_delivered
        ));
        out
    }
}

fn latency(mut samples: Vec<Duration>, elapsed: Duration) -> Latency {
    let calls = samples.len();
    let summary = Summary::of(&mut samples);
    Latency {
        calls,
        per_second: calls as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_ms: summary.p50_ms,
        p99_ms: summary.p99_ms,
        max_ms: summary.max_ms,
    }
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "labels": {"app": "bench"}},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})
}

async fn call(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
    route: Route,
) -> anyhow::Result<Value> {
    let bytes = body.map(serde_json::to_vec).transpose()?;
    let response = client
        .send(method, path, bytes, route, client::DEFAULT_DEADLINE)
        .await?;
    Ok(client::decode(response).await?)
}

/// Runs `work(i)` for i in 0..count on `clients` tasks; returns each call's latency.
async fn concurrently<F, Fut>(
    clients: usize,
    count: usize,
    work: F,
) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let work = Arc::new(work);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|task| {
            let work = work.clone();
            let step = clients.max(1);
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut i = task;
                while i < count {
                    let t = Instant::now();
                    work(i).await?;
                    samples.push(t.elapsed());
                    i += step;
                }
                anyhow::Ok(samples)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for task in tasks {
        all.extend(task.await.context("benchmark task panicked")??);
    }
    Ok((all, started.elapsed()))
}

/// Creates pods `p{first}`..`p{first + count - 1}` from `clients` tasks,
/// timing each create.
async fn create_pods(
    client: &Arc<Client>,
    pods: &str,
    clients: usize,
    first: usize,
    count: usize,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let (c, p) = (client.clone(), pods.to_owned());
    concurrently(clients, count, move |i| {
        let (c, p) = (c.clone(), p.clone());
        async move {
            let body = pod(&format!("p{:06}", first + i));
            call(&c, Method::POST, &p, Some(&body), Route::Leader).await?;
            Ok(())
        }
    })
    .await
}

/// Runs the benchmark.
///
/// # Errors
/// When the cluster refuses or fails a request.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    if options.endpoints.is_empty() {
        bail!("no endpoints: pass --endpoints HOST:PORT,... or a kubeconfig");
    }
    let client = Arc::new(Client::new(
        &options.endpoints,
        options.token.clone(),
        options.ca_pem.as_deref(),
        None,
    )?);
    let namespace = format!("bench-{}", crate::security::random_string(6));
    call(
        &client,
        Method::POST,
        "/api/v1/namespaces",
        Some(&json!({"metadata": {"name": namespace}})),
        Route::Leader,
    )
    .await
    .context("creating the benchmark namespace")?;
    let pods = format!("/api/v1/namespaces/{namespace}/pods");
    let result = phases(options, &client, &pods).await;
    // Clean up whatever happened.
    let _ = call(&client, Method::DELETE, &pods, None, Route::Leader).await;
    let _ = call(
        &client,
        Method::DELETE,
        &format!("/api/v1/namespaces/{namespace}"),
        None,
        Route::Leader,
    )
    .await;
    result
}

async fn phases(options: &Options, client: &Arc<Client>, pods: &str) -> anyhow::Result<Report> {
    let (samples, elapsed) = create_pods(client, pods, options.clients, 0, options.creates)
        .await
        .context("create phase")?;
    let create = latency(samples, elapsed);

    let (c, p) = (client.clone(), pods.to_owned());
    let (samples, elapsed) = concurrently(options.clients, options.creates, move |i| {
        let (c, p) = (c.clone(), p.clone());
        async move {
            call(&c, Method::GET, &format!("{p}/p{i:06}"), None, Route::Any).await?;
            Ok(())
        }
    })
    .await
    .context("get phase")?;
    let get = latency(samples, elapsed);

    // Fill up to list_pods, untimed, then time full lists.
    let fill = options.list_pods.saturating_sub(options.creates);
    create_pods(client, pods, 64, options.creates, fill)
        .await
        .context("filling the namespace for the list phase")?;
    let mut list_samples = Vec::new();
    let mut list_bytes = 0;
    let list_started = Instant::now();
    for _ in 0..5 {
        let t = Instant::now();
        let response = client
            .send(
                Method::GET,
                pods,
                None,
                Route::Any,
                client::DEFAULT_DEADLINE,
            )
            .await?;
        let bytes = response.bytes().await?;
        list_samples.push(t.elapsed());
        let list: Value = serde_json::from_slice(&bytes)?;
        let items = list["items"].as_array().map(Vec::len).unwrap_or(0);
        if items < options.list_pods.max(options.creates) {
            bail!(
                "the list returned {items} pods, expected {}",
                options.list_pods.max(options.creates)
            );
        }
        list_bytes = bytes.len();
    }
    let list = latency(list_samples, list_started.elapsed());

    let (watch_delivery, delivered) = watch_fan_out(options, client, pods).await?;
    Ok(Report {
        create,
        get,
        list_pods: options.list_pods.max(options.creates),
        list,
        list_bytes,
        watchers: options.watchers,
        watch_events_delivered: delivered,
        watch_delivery,
    })
}

/// Opens the watches, creates the pods, and times each delivery.
async fn watch_fan_out(
    options: &Options,
    client: &Arc<Client>,
    pods: &str,
) -> anyhow::Result<(Latency, usize)> {
    let list: Value = call(
        client,
        Method::GET,
        &format!("{pods}?limit=1"),
        None,
        Route::Any,
    )
    .await?;
    let from = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_owned();
    let http = client::http_client(Duration::from_secs(120), options.ca_pem.as_deref())?;
    let masters = client.known_masters();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut watches = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for w in 0..options.watchers {
        let base = masters[w % masters.len()].clone();
        let mut request = http.get(format!(
            "{base}{pods}?watch=true&resourceVersion={from}&timeoutSeconds=120"
        ));
        if let Some(token) = &options.token {
            request = request.bearer_auth(token);
        }
        let (tx, ready_tx) = (tx.clone(), ready_tx.clone());
        watches.push(tokio::spawn(async move {
            let response = request.send().await?;
            if !response.status().is_success() {
                bail!("watch answered {}", response.status());
            }
            let _ = ready_tx.send(());
            let mut stream = response.bytes_stream();
            let mut buffer = Vec::new();
            while let Some(chunk) = stream.next().await {
                buffer.extend_from_slice(&chunk?);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let event: Value = serde_json::from_slice(&line)?;
                    if event["type"] == "ADDED" {
                        let name = event["object"]["metadata"]["name"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned();
                        if tx.send((name, Instant::now())).is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    drop(tx);
    for _ in 0..options.watchers {
        tokio::time::timeout(Duration::from_secs(30), ready_rx.recv())
            .await
            .context("a watch did not start within 30 s")?;
    }
    let mut started: HashMap<String, Instant> = HashMap::new();
    let phase = Instant::now();
    for i in 0..options.watch_events {
        let name = format!("w{i:06}");
        started.insert(name.clone(), Instant::now());
        call(client, Method::POST, pods, Some(&pod(&name)), Route::Leader).await?;
    }
    let expected = options.watchers * options.watch_events;
    let mut samples = Vec::with_capacity(expected);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while samples.len() < expected {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((name, at))) => {
                if let Some(start) = started.get(&name) {
                    samples.push(at.duration_since(*start));
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    for watch in &watches {
        watch.abort();
    }
    let delivered = samples.len();
    if delivered < expected {
        bail!("only {delivered} of {expected} watch events arrived within 60 s");
    }
    Ok((latency(samples, phase.elapsed()), delivered))
}
