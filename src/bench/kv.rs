//! `ctl bench kv`: put/get load against Flotilla's `/kv` API or etcd's v3 JSON
//! gateway.
//!
//! A run has three phases:
//!
//! 1. **Leader discovery** (Flotilla only). One put goes to the first endpoint
//!    that answers; a `307` is followed once and the leader's base URL is
//!    remembered. A `503` (election in progress) or a transport error is
//!    retried on the next endpoint, a bounded number of times.
//! 2. **Preload** (untimed). Every key `bench/NNNNNNNN` of the key space gets a
//!    value of `value_size` bytes of `x`, so gets always find their key and
//!    puts always overwrite, whichever operation is measured.
//! 3. **Measurement**. `clients` tokio tasks share one `reqwest::Client`; each
//!    does its share of `ops` one after another, choosing keys (and, for
//!    `mixed`, put or get) with its own seeded RNG, and records the latency of
//!    every successful operation. Failures are counted, not timed.
//!
//! Where requests go. Flotilla: each task sends its puts to the leader (and
//! follows a `307` once if leadership moves mid-run, then sticks to the new
//! leader) and its linearizable gets to one endpoint, chosen round-robin by
//! task index — any member serves linearizable reads. etcd: each task sends
//! both puts and gets to one endpoint, round-robin by task index; etcd members
//! forward writes to their leader themselves. Gets against etcd use its default
//! (linearizable) range.
//!
//! Every request has [`REQUEST_TIMEOUT`], the operation count is fixed and the
//! discovery retries are capped, so a run always ends. A run with more than 1%
//! failed operations is an error.

use super::stats::Summary;
use anyhow::{bail, Context as _};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Client, Response, StatusCode, Url};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Distinct keys written and read when the caller does not say.
pub const DEFAULT_KEYS: usize = 1000;
/// Timeout of every request, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Share of failed operations above which a run is an error.
pub const MAX_ERROR_RATIO: f64 = 0.01;
/// Header in which a Flotilla follower names the leader's `HOST:PORT`
/// (mirrors `api::LEADER_HEADER`).
const LEADER_HEADER: &str = "x-flotilla-leader";
/// Prefix of every benchmark key.
const KEY_PREFIX: &str = "bench/";
/// Puts tried while looking for the Flotilla leader.
const DISCOVERY_ATTEMPTS: usize = 20;
/// Pause after a failed discovery attempt (a 503 asks for about a second).
const DISCOVERY_BACKOFF: Duration = Duration::from_millis(500);
/// Deadline of the whole leader discovery.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Characters of an error body kept in an error message.
const ERROR_BODY_LIMIT: usize = 300;

/// The store under load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Flotilla masters' `/kv` HTTP API.
    Flotilla,
    /// etcd 3.4+ v3 JSON gateway (`/v3/kv/...` on the client port).
    Etcd,
}

impl Target {
    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Flotilla => "flotilla",
            Target::Etcd => "etcd",
        }
    }

    /// The scheme for a bare `HOST:PORT`: Flotilla's masters serve TLS,
    /// the local etcd plain HTTP.
    pub fn scheme(self) -> &'static str {
        match self {
            Target::Flotilla => "https",
            Target::Etcd => "http",
        }
    }
}

/// What each measured operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Operation {
    /// Overwrite a key.
    Put,
    /// Read a key, linearizably.
    Get,
    /// Half puts, half gets, chosen at random per operation.
    Mixed,
}

impl Operation {
    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Put => "put",
            Operation::Get => "get",
            Operation::Mixed => "mixed",
        }
    }
}

/// How to run a benchmark.
#[derive(Clone, Debug)]
pub struct Options {
    /// The store under load.
    pub target: Target,
    /// Client endpoints, `HOST:PORT` or `http://HOST:PORT`.
    pub endpoints: Vec<String>,
    /// What each operation does.
    pub op: Operation,
    /// Concurrent client tasks; each has at most one request in flight.
    pub clients: usize,
    /// Measured operations, in total across all clients.
    pub ops: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// Bearer token sent to Flotilla (ignored for etcd).
    pub token: Option<String>,
    /// The cluster CA (PEM) Flotilla's masters are trusted by (HTTPS); etcd
    /// is reached over plain HTTP.
    pub ca_pem: Option<String>,
    /// Distinct keys written and read.
    pub keys: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            target: Target::Flotilla,
            endpoints: Vec::new(),
            op: Operation::Put,
            clients: 1,
            ops: 1000,
            value_size: 256,
            token: None,
            ca_pem: None,
            keys: DEFAULT_KEYS,
        }
    }
}

/// The outcome of a run.
#[derive(Serialize, Debug, Clone)]
pub struct Report {
    /// `flotilla` or `etcd`.
    pub target: String,
    /// `put`, `get` or `mixed`.
    pub op: String,
    /// Concurrent client tasks.
    pub clients: usize,
    /// Operations attempted.
    pub ops: usize,
    /// Operations that failed (not included in the latencies).
    pub errors: usize,
    /// Wall-clock seconds of the measured phase.
    pub seconds: f64,
    /// Successful operations per second.
    pub ops_per_second: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 90th percentile latency.
    pub p90_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Slowest operation.
    pub max_ms: f64,
}

impl Report {
    /// The report as an aligned, human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let rows = [
            ("target", self.target.clone()),
            ("operation", self.op.clone()),
            ("clients", self.clients.to_string()),
            (
                "operations",
                format!("{} ({} failed)", self.ops, self.errors),
            ),
            ("elapsed", format!("{:.3} s", self.seconds)),
            ("throughput", format!("{:.1} ops/s", self.ops_per_second)),
            (
                "latency",
                format!(
                    "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
                    self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
                ),
            ),
        ];
        for (name, value) in rows {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{name:<12}{value}");
        }
        out
    }
}

/// Runs one benchmark: discovers the leader (Flotilla), preloads the key
/// space, then measures `options.ops` operations over `options.clients` tasks.
///
/// # Errors
/// Invalid options or endpoints, no reachable Flotilla leader, a failed
/// preload, a panicked client task, or more than [`MAX_ERROR_RATIO`] of the
/// measured operations failing (the message gives the count and the first
/// failure).
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    if options.endpoints.is_empty() {
        bail!("no endpoints given");
    }
    if options.clients == 0 || options.ops == 0 || options.keys == 0 {
        bail!("clients, ops and keys must all be at least 1");
    }
    let bases = options
        .endpoints
        .iter()
        .map(|e| base_url(e, options.target.scheme()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ca_pem = match options.target {
        Target::Flotilla => options.ca_pem.as_deref(),
        Target::Etcd => None,
    };
    let builder = flotilla_raft::network::client_builder(ca_pem)
        .context("the cluster CA is not PEM")?
        .pool_max_idle_per_host(options.clients)
        .timeout(REQUEST_TIMEOUT);
    let client = builder.build().context("building the HTTP client")?;
    let auth = match (&options.token, options.target) {
        (Some(token), Target::Flotilla) => {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the token is not a valid HTTP header value")?;
            value.set_sensitive(true);
            Some(value)
        }
        _ => None,
    };
    let value = "x".repeat(options.value_size);
    let value: Arc<str> = match options.target {
        Target::Flotilla => value.into(),
        Target::Etcd => BASE64.encode(value).into(),
    };
    let worker = |index: usize, put_base: String| Worker {
        client: client.clone(),
        target: options.target,
        auth: auth.clone(),
        value: value.clone(),
        put_base,
        get_base: bases[index % bases.len()].clone(),
    };

    let leader = match options.target {
        Target::Flotilla => {
            let probe = worker(0, bases[0].clone());
            let leader = tokio::time::timeout(DISCOVERY_TIMEOUT, discover_leader(probe, &bases))
                .await
                .with_context(|| {
                    format!(
                        "no Flotilla leader found within {}s",
                        DISCOVERY_TIMEOUT.as_secs()
                    )
                })??;
            tracing::debug!(%leader, "benchmark found the leader");
            Some(leader)
        }
        Target::Etcd => None,
    };
    let workers: Vec<Worker> = (0..options.clients)
        .map(|i| {
            let put_base = leader
                .clone()
                .unwrap_or_else(|| bases[i % bases.len()].clone());
            worker(i, put_base)
        })
        .collect();

    let workers = preload(workers, options.keys).await?;

    let started = Instant::now();
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, worker)| {
            let count =
                options.ops / options.clients + usize::from(i < options.ops % options.clients);
            let plan = Plan {
                op: options.op,
                keys: options.keys,
                count,
                seed: i as u64,
            };
            tokio::spawn(measure(worker, plan))
        })
        .collect();
    let mut latencies = Vec::with_capacity(options.ops);
    let mut errors = 0;
    let mut first_error = None;
    for task in futures::future::join_all(tasks).await {
        let outcome = task.context("a benchmark client task panicked")?;
        latencies.extend(outcome.latencies);
        errors += outcome.errors;
        if first_error.is_none() {
            first_error = outcome.first_error;
        }
    }
    let seconds = started.elapsed().as_secs_f64();

    if errors as f64 > options.ops as f64 * MAX_ERROR_RATIO {
        bail!(
            "{errors} of {} operations failed (more than {}%); the first failure: {}",
            options.ops,
            MAX_ERROR_RATIO * 100.0,
            first_error.unwrap_or_default()
        );
    }
    let summary = Summary::of(&mut latencies);
    Ok(Report {
        target: options.target.name().to_string(),
        op: options.op.name().to_string(),
        clients: options.clients,
        ops: options.ops,
        errors,
        seconds,
        ops_per_second: if seconds > 0.0 {
            latencies.len() as f64 / seconds
        } else {
            0.0
        },
        p50_ms: summary.p50_ms,
        p90_ms: summary.p90_ms,
        p99_ms: summary.p99_ms,
        max_ms: summary.max_ms,
    })
}

/// The base URL of an endpoint: `HOST:PORT` gains `SCHEME://`, a trailing `/`
/// goes.
fn base_url(endpoint: &str, scheme: &str) -> anyhow::Result<String> {
    let trimmed = endpoint.trim();
    let full = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("{scheme}://{trimmed}")
    };
    let url = Url::parse(&full).with_context(|| format!("endpoint {endpoint:?} is not a URL"))?;
    if url.host_str().is_none_or(str::is_empty) {
        bail!("endpoint {endpoint:?} has no host");
    }
    Ok(full.trim_end_matches('/').to_string())
}

/// The benchmark key with index `index`.
fn key_name(index: usize) -> String {
    format!("{KEY_PREFIX}{index:08}")
}

/// `error` and its sources, joined by `: `.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let _ = write!(text, ": {e}");
        source = e.source();
    }
    text
}

/// Finds the Flotilla leader by writing the first benchmark key: the base URL
/// of the member that accepted the put, after at most one redirect.
async fn discover_leader(mut probe: Worker, bases: &[String]) -> anyhow::Result<String> {
    let key = key_name(0);
    let mut last = None;
    for attempt in 0..DISCOVERY_ATTEMPTS {
        probe.put_base = bases[attempt % bases.len()].clone();
        match probe.put(&key).await {
            Ok(()) => return Ok(probe.put_base),
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %chain(&e), "leader discovery: retrying");
                last = Some(e);
                tokio::time::sleep(DISCOVERY_BACKOFF).await;
            }
            Err(e) => return Err(e).context("looking for the Flotilla leader"),
        }
    }
    bail!(
        "no Flotilla leader after {DISCOVERY_ATTEMPTS} attempts; the last failure: {}",
        last.map(|e| chain(&e)).unwrap_or_default()
    )
}

/// Writes every key of the key space once, spread over the workers; untimed.
async fn preload(workers: Vec<Worker>, keys: usize) -> anyhow::Result<Vec<Worker>> {
    let stride = workers.len();
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(first, mut worker)| {
            tokio::spawn(async move {
                for index in (first..keys).step_by(stride) {
                    if let Err(e) = worker.put(&key_name(index)).await {
                        return (worker, Err(e));
                    }
                }
                (worker, Ok(()))
            })
        })
        .collect();
    let mut workers = Vec::with_capacity(stride);
    for task in futures::future::join_all(tasks).await {
        let (worker, result) = task.context("a preload task panicked")?;
        if let Err(e) = result {
            bail!("preloading {keys} keys: {}", chain(&e));
        }
        workers.push(worker);
    }
    Ok(workers)
}

/// What one measuring task does.
struct Plan {
    op: Operation,
    keys: usize,
    count: usize,
    seed: u64,
}

/// What one measuring task saw.
struct Outcome {
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
}

/// Runs `plan.count` operations one after another, timing each.
async fn measure(mut worker: Worker, plan: Plan) -> Outcome {
    // A fixed seed per task keeps runs comparable: the same tasks pick the
    // same keys and the same put/get sequence against either target.
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut outcome = Outcome {
        latencies: Vec::with_capacity(plan.count),
        errors: 0,
        first_error: None,
    };
    for _ in 0..plan.count {
        let key = key_name(rng.gen_range(0..plan.keys));
        let put = match plan.op {
            Operation::Put => true,
            Operation::Get => false,
            Operation::Mixed => rng.gen_bool(0.5),
        };
        let started = Instant::now();
        let result = if put {
            worker.put(&key).await
        } else {
            worker.get(&key).await
        };
        match result {
            Ok(()) => outcome.latencies.push(started.elapsed()),
            Err(e) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert_with(|| chain(&e));
            }
        }
    }
    outcome
}

/// Why one request failed.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    /// No answer: connect, timeout, or a broken body.
    #[error("{method} {url}")]
    Transport {
        method: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// An answer other than 2xx.
    #[error("{method} {url}: {status}: {body}")]
    Status {
        method: &'static str,
        url: String,
        status: StatusCode,
        body: String,
    },
    /// A `307` that could not be followed, or that led to another redirect.
    #[error("{url}: redirect not followed: {reason}")]
    Redirect { url: String, reason: String },
    /// A 2xx answer whose body is not what the store sends.
    #[error("{url}: unexpected answer")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    /// A get found nothing under a preloaded key.
    #[error("{url}: key {key} is missing although it was preloaded")]
    Missing { url: String, key: String },
}

impl RequestError {
    /// Whether trying again (elsewhere, or a little later) may succeed.
    fn is_transient(&self) -> bool {
        match self {
            RequestError::Transport { .. } | RequestError::Redirect { .. } => true,
            RequestError::Status { status, .. } => status.is_server_error(),
            RequestError::Decode { .. } | RequestError::Missing { .. } => false,
        }
    }
}

/// Body of Flotilla's `POST /kv/put` (mirrors `wire::PutBody`, borrowed).
#[derive(Serialize)]
struct FlotillaPut<'a> {
    key: &'a str,
    value: &'a str,
}

/// The part of Flotilla's `GET /kv/get` answer the benchmark checks.
#[derive(Deserialize)]
struct FlotillaGet {
    kv: Option<IgnoredAny>,
}

/// Body of etcd's `POST /v3/kv/put` and `/v3/kv/range`: base64 key (and value).
#[derive(Serialize)]
struct EtcdRequest<'a> {
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
}

/// The part of etcd's range answer the benchmark checks; `kvs` is absent when
/// nothing matched.
#[derive(Deserialize)]
struct EtcdRange {
    #[serde(default)]
    kvs: Vec<IgnoredAny>,
}

/// One client's view of the cluster: where its puts and gets go.
struct Worker {
    client: Client,
    target: Target,
    /// `Bearer TOKEN` for Flotilla.
    auth: Option<HeaderValue>,
    /// The value to write: raw for Flotilla, base64 for etcd.
    value: Arc<str>,
    /// Base URL puts go to: the leader for Flotilla.
    put_base: String,
    /// Base URL gets go to.
    get_base: String,
}

impl Worker {
    /// Writes `key`. Flotilla: follows one `307` and then keeps the new leader.
    async fn put(&mut self, key: &str) -> Result<(), RequestError> {
        match self.target {
            Target::Flotilla => {
                let body = json(&FlotillaPut {
                    key,
                    value: &self.value,
                });
                let url = format!("{}/kv/put", self.put_base);
                let response = self.post(&url, body.clone()).await?;
                if response.status() != StatusCode::TEMPORARY_REDIRECT {
                    return ok_body(response, "POST", &url).await.map(drop);
                }
                let (location, leader) = redirect_target(&response, &url)?;
                let again = self.post(&location, body).await?;
                if again.status().is_redirection() {
                    return Err(RequestError::Redirect {
                        url: location,
                        reason: format!("the leader's address answered {} too", again.status()),
                    });
                }
                ok_body(again, "POST", &location).await?;
                self.put_base = leader;
                Ok(())
            }
            Target::Etcd => {
                let key = BASE64.encode(key);
                let body = json(&EtcdRequest {
                    key: &key,
                    value: Some(&self.value),
                });
                let url = format!("{}/v3/kv/put", self.put_base);
                let response = self.post(&url, body).await?;
                ok_body(response, "POST", &url).await.map(drop)
            }
        }
    }

    /// Reads `key` linearizably; a missing key is an error.
    async fn get(&self, key: &str) -> Result<(), RequestError> {
        let (url, found) = match self.target {
            Target::Flotilla => {
                let url = format!(
                    "{}/kv/get?key={}&consistency=linearizable",
                    self.get_base,
                    crate::client::encode(key)
                );
                let mut request = self.client.get(&url);
                if let Some(auth) = &self.auth {
                    request = request.header(AUTHORIZATION, auth.clone());
                }
                let response = request
                    .send()
                    .await
                    .map_err(|source| RequestError::Transport {
                        method: "GET",
                        url: url.clone(),
                        source,
                    })?;
                let bytes = ok_body(response, "GET", &url).await?;
                let found =
                    serde_json::from_slice::<FlotillaGet>(&bytes).map(|reply| reply.kv.is_some());
                (url, found)
            }
            Target::Etcd => {
                let encoded = BASE64.encode(key);
                let body = json(&EtcdRequest {
                    key: &encoded,
                    value: None,
                });
                let url = format!("{}/v3/kv/range", self.get_base);
                let response = self.post(&url, body).await?;
                let bytes = ok_body(response, "POST", &url).await?;
                let found =
                    serde_json::from_slice::<EtcdRange>(&bytes).map(|reply| !reply.kvs.is_empty());
                (url, found)
            }
        };
        match found {
            Ok(true) => Ok(()),
            Ok(false) => Err(RequestError::Missing {
                url,
                key: key.to_string(),
            }),
            Err(source) => Err(RequestError::Decode { url, source }),
        }
    }

    /// Sends a JSON `POST`; any status is an answer here.
    async fn post(&self, url: &str, body: Bytes) -> Result<Response, RequestError> {
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        request
            .send()
            .await
            .map_err(|source| RequestError::Transport {
                method: "POST",
                url: url.to_string(),
                source,
            })
    }
}

/// Serializes a request body.
fn json(body: &impl Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(body).expect("structs of strings always serialize to JSON"))
}

/// Reads the whole body of a 2xx answer (which also frees the connection for
/// reuse); any other status is an error carrying the start of the body.
async fn ok_body(
    response: Response,
    method: &'static str,
    url: &str,
) -> Result<Bytes, RequestError> {
    let status = response.status();
    let transport = |source| RequestError::Transport {
        method,
        url: url.to_string(),
        source,
    };
    if status.is_success() {
        return response.bytes().await.map_err(transport);
    }
    let text = response.text().await.map_err(transport)?;
    Err(RequestError::Status {
        method,
        url: url.to_string(),
        status,
        body: text.trim_end().chars().take(ERROR_BODY_LIMIT).collect(),
    })
}

/// Where a Flotilla `307` points: the absolute URL to resend to and the
/// leader's base URL. `Location` wins; `x-flotilla-leader` is the fallback.
fn redirect_target(response: &Response, url: &str) -> Result<(String, String), RequestError> {
    let fail = |reason: &str| RequestError::Redirect {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let original = Url::parse(url).map_err(|_| fail("the request URL does not parse"))?;
    if let Some(location) = header(LOCATION.as_str()) {
        let target = original
            .join(&location)
            .map_err(|_| fail("the Location header is not a URL"))?;
        return Ok((target.to_string(), target.origin().ascii_serialization()));
    }
    if let Some(leader) = header(LEADER_HEADER) {
        let base =
            base_url(&leader, "https").map_err(|_| fail("x-flotilla-leader is not HOST:PORT"))?;
        let path = match original.query() {
            Some(query) => format!("{}?{query}", original.path()),
            None => original.path().to_string(),
        };
        return Ok((format!("{base}{path}"), base));
    }
    Err(fail("307 without Location or x-flotilla-leader"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zero_padded_and_encode_their_slash() {
        assert_eq!(key_name(7), "bench/00000007");
        assert_eq!(key_name(12_345_678), "bench/12345678");
        let cases = [
            ("bench/00000007", "bench%2F00000007"),
            ("a b&c=d", "a%20b%26c%3Dd"),
            ("safe-._~AZaz09", "safe-._~AZaz09"),
            ("é", "%C3%A9"),
        ];
        for (raw, encoded) in cases {
            assert_eq!(crate::client::encode(raw), encoded, "{raw}");
        }
    }

    #[test]
    fn encoded_keys_survive_a_url_parser() {
        let url = Url::parse(&format!(
            "http://h:1/kv/get?key={}&consistency=linearizable",
            crate::client::encode("bench/00000042")
        ))
        .expect("valid URL");
        let pairs: Vec<_> = url.query_pairs().collect();
        assert_eq!(pairs[0].1, "bench/00000042");
    }

    #[test]
    fn endpoints_become_base_urls() {
        let cases = [
            ("127.0.0.1:2379", "http://127.0.0.1:2379"),
            ("http://10.0.0.1:6443/", "http://10.0.0.1:6443"),
            (" master-1:6443 ", "http://master-1:6443"),
        ];
        for (endpoint, base) in cases {
            assert_eq!(base_url(endpoint, "http").expect(endpoint), base);
        }
        assert!(base_url("http://", "http").is_err());
    }

    #[test]
    fn etcd_bodies_are_base64() {
        let key = BASE64.encode("bench/00000001");
        let body = json(&EtcdRequest {
            key: &key,
            value: None,
        });
        assert_eq!(&body[..], br#"{"key":"YmVuY2gvMDAwMDAwMDE="}"#);
    }

    #[test]
    fn report_table_names_every_figure() {
        let report = Report {
            target: "etcd".into(),
            op: "get".into(),
            clients: 4,
            ops: 100,
            errors: 0,
            seconds: 0.5,
            ops_per_second: 200.0,
            p50_ms: 1.0,
            p90_ms: 2.0,
            p99_ms: 3.0,
            max_ms: 4.0,
        };
        let table = report.table();
        for needle in [
            "200.0 ops/s",
            "p50 1.000 ms",
            "p99 3.000 ms",
            "max 4.000 ms",
        ] {
            assert!(table.contains(needle), "{needle} missing from\n{table}");
        }
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(json["ops_per_second"], 200.0);
        assert_eq!(json["p99_ms"], 3.0);
    }
}
