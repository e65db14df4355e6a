//! One test run, start to finish.
//!
//! 1. Remove leftovers of dead runs; build the network and start the cluster.
//! 2. Run the workers and the nemesis for the time limit.
//! 3. Stop the workers (operations in flight finish), stop the nemesis, heal
//!    everything, wait until every member agrees on a leader.
//! 4. Final reads on every member — each key of the register workload, the
//!    whole set for the set workload — retried until they succeed or a
//!    deadline passes; they are part of the history. The watch workload
//!    instead waits until every watcher has received the last write.
//! 5. Kill the cluster, remove the network, check the history, write the
//!    reports.
//!
//! A cancellation (SIGINT/SIGTERM) at any point skips to step 5 with what was
//! recorded; the result is then `unknown`. The network and the processes are
//! owned by values whose `Drop` removes them, so an error or a panic removes
//! them too.

use crate::checker::{self, register::Register, Budget, Verdict};
use crate::client::{Client, Consistency, Endpoint, Outcome, Timeouts};
use crate::cluster::Cluster;
use crate::history::{self, Function, Recorder};
use crate::nemesis::{self, Fault, Nemesis, Schedule};
use crate::net::{self, Net};
use crate::report::{self, Results};
use crate::workload::{self, KeyPlan, Worker, Workload};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// How long the healed cluster may take to agree on a leader.
const HEAL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the final reads of one member may keep retrying.
const FINAL_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the watchers may take to receive the last write after healing.
const WATCH_CATCH_UP: Duration = Duration::from_secs(60);

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Number of masters.
    pub nodes: usize,
    /// The workload.
    pub workload: Workload,
    /// The faults.
    pub faults: Vec<Fault>,
    /// How long the workload runs.
    pub time_limit: Duration,
    /// Offered operations per second, all clients together.
    pub rate: f64,
    /// Number of client workers.
    pub concurrency: usize,
    /// Read consistency of the clients.
    pub consistency: Consistency,
    /// Seed of every random choice of the harness.
    pub seed: u64,
    /// Output directory.
    pub out: PathBuf,
    /// The `ctl` binary.
    pub ctl: PathBuf,
    /// The nemesis schedule.
    pub schedule: Schedule,
    /// The checker's budget per key.
    pub budget: Budget,
}

/// Errors that stop a run before it has a history to check.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The network could not be built.
    #[error("network: {0}")]
    Net(#[from] net::NetError),
    /// The cluster could not be started.
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The output directory could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The run was interrupted before the cluster was up.
    #[error("interrupted")]
    Interrupted,
}

/// Runs one test; returns the results (also written to `options.out`).
///
/// # Errors
/// When the network or the cluster cannot be set up, or the reports cannot
/// be written. Faults during the run are not errors: they are the test.
pub async fn run(options: &Options, interrupt: CancellationToken) -> Result<Results, RunError> {
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|source| RunError::Io {
        path: out.clone(),
        source,
    })?;
    tokio::task::spawn_blocking(net::cleanup_stale)
        .await
        .map_err(|e| RunError::Io {
            path: net::LOCK_ROOT.into(),
            source: std::io::Error::other(e),
        })?;
    let net = Arc::new(
        tokio::task::spawn_blocking({
            let nodes = options.nodes;
            move || Net::create(nodes)
        })
        .await
        .map_err(|e| RunError::Io {
            path: net::LOCK_ROOT.into(),
            source: std::io::Error::other(e),
        })??,
    );
    tracing::info!(prefix = %net.prefix, bridge = %net.bridge, gateway = %net.gateway, "network up");
    let started = tokio::select! {
        started = Cluster::start(&net, &options.ctl, out) => started?,
        () = interrupt.cancelled() => return Err(RunError::Interrupted),
    };
    let cluster = Arc::new(Mutex::new(started));
    let outcome = drive(options, &net, &cluster, &interrupt).await;
    let members = cluster.lock().await.statuses().await;
    cluster.lock().await.stop().await;
    let logs = cluster.lock().await.logs().to_path_buf();
    let network_prefix = net.prefix.clone();
    drop(cluster);
    match Arc::try_unwrap(net) {
        Ok(mut net) => net.teardown(),
        Err(net) => tracing::warn!(prefix = %net.prefix, "network still shared; removed on drop"),
    }
    let Driven {
        recorder,
        nemesis,
        final_reads_ok,
        final_error,
        watched,
    } = outcome;
    let events = recorder.events();
    if let Some((log, _)) = &watched {
        let path = out.join("watch.json");
        let text = serde_json::to_vec(log).map_err(|e| RunError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&path, text).map_err(|source| RunError::Io { path, source })?;
    }
    history::write_jsonl(&out.join("history.jsonl"), &events).map_err(|source| RunError::Io {
        path: out.join("history.jsonl"),
        source,
    })?;
    let checked_at = Instant::now();
    let mut results = check(options, &events, final_reads_ok, watched.as_ref());
    results.final_error = final_error;
    results.interrupted = interrupt.is_cancelled();
    if results.interrupted {
        results.valid = report::Validity::Unknown;
    }
    results.check_seconds = checked_at.elapsed().as_secs_f64();
    results.faults = nemesis.periods;
    results.nemesis_errors = nemesis.errors;
    results.logs = logs.display().to_string();
    results.network_prefix = network_prefix;
    results.members = members.into_iter().collect();
    report::write_all(out, &results, &events).map_err(|source| RunError::Io {
        path: out.clone(),
        source,
    })?;
    Ok(results)
}

/// What the run phase produced.
struct Driven {
    recorder: Recorder,
    nemesis: nemesis::Log,
    final_reads_ok: bool,
    final_error: Option<String>,
    /// The watch workload's log, and whether each watcher caught up.
    watched: Option<(crate::watch::Log, Vec<bool>)>,
}

async fn drive(
    options: &Options,
    net: &Arc<Net>,
    cluster: &Arc<Mutex<Cluster>>,
    interrupt: &CancellationToken,
) -> Driven {
    let recorder = Recorder::new(Instant::now());
    let (endpoints, http, token) = {
        let c = cluster.lock().await;
        let endpoints: Vec<Endpoint> = c
            .members
            .iter()
            .map(|m| Endpoint {
                name: m.name.clone(),
                url: m.url(),
            })
            .collect();
        let timeouts = Timeouts::default();
        let http = crate::cluster::http_client(&c.ca_pem, timeouts.request);
        (endpoints, http, Arc::<str>::from(c.token.as_str()))
    };
    let http = match http {
        Ok(http) => http,
        Err(e) => {
            return Driven {
                recorder,
                nemesis: nemesis::Log::default(),
                final_reads_ok: false,
                final_error: Some(format!("HTTP client: {e}")),
                watched: None,
            }
        }
    };
    let client_for = |i: usize, consistency: Consistency| {
        Client::new(
            http.clone(),
            token.clone(),
            endpoints[i % endpoints.len()].clone(),
            consistency,
            Timeouts::default(),
        )
    };

    // The watch workload's watchers and compactor start before the writers.
    let watching = match options.workload {
        Workload::Watch => Some(Watching::start(&http, &token, &endpoints, interrupt).await),
        _ => None,
    };

    // The workload and the nemesis.
    let stop_workers = interrupt.child_token();
    let stop_nemesis = interrupt.child_token();
    let keys = Arc::new(KeyPlan::new((options.concurrency as u64 / 2).max(1)));
    let elements = Arc::new(AtomicU64::new(0));
    let pace = Duration::from_secs_f64(options.concurrency as f64 / options.rate.max(0.001));
    let mut workers = Vec::new();
    for id in 0..options.concurrency {
        let worker = Worker {
            id: id as u64,
            concurrency: options.concurrency as u64,
            client: client_for(id, options.consistency),
            recorder: recorder.clone(),
            workload: options.workload,
            keys: keys.clone(),
            elements: elements.clone(),
            pace,
            seed: options.seed.wrapping_mul(1_000_003).wrapping_add(id as u64),
        };
        workers.push(tokio::spawn(worker.run(stop_workers.clone())));
    }
    let nemesis = Nemesis::new(
        options.faults.clone(),
        net.clone(),
        cluster.clone(),
        options.schedule,
        options.seed,
        recorder.clone(),
    );
    let nemesis = tokio::spawn(nemesis.run(stop_nemesis.clone()));
    tracing::info!(seconds = options.time_limit.as_secs(), "workload running");
    tokio::select! {
        () = tokio::time::sleep(options.time_limit) => {}
        () = interrupt.cancelled() => {}
    }
    stop_workers.cancel();
    for worker in workers {
        if let Err(e) = worker.await {
            tracing::warn!("a worker failed: {e}");
        }
    }
    stop_nemesis.cancel();
    let log = nemesis.await.unwrap_or_else(|e| nemesis::Log {
        periods: Vec::new(),
        errors: vec![format!("the nemesis task failed: {e}")],
    });
    if interrupt.is_cancelled() {
        let watched = match watching {
            Some(w) => Some(w.finish(None).await),
            None => None,
        };
        return Driven {
            recorder,
            nemesis: log,
            final_reads_ok: false,
            final_error: Some("interrupted".into()),
            watched,
        };
    }

    // Heal, wait, read everything back from every member.
    tracing::info!("healing");
    let healed = {
        let mut c = cluster.lock().await;
        match nemesis::heal_all(net, &mut c).await {
            Ok(()) => c
                .wait_healthy(HEAL_TIMEOUT)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        }
    };
    if let Err(e) = healed {
        let watched = match watching {
            Some(w) => Some(w.finish(None).await),
            None => None,
        };
        return Driven {
            recorder,
            nemesis: log,
            final_reads_ok: false,
            final_error: Some(format!("the cluster did not heal: {e}")),
            watched,
        };
    }
    tracing::info!("final reads");
    let targets: Vec<Option<String>> = match options.workload {
        Workload::Register => (0..keys.used())
            .map(|k| Some(workload::register_key(k)))
            .collect(),
        Workload::Set => vec![None],
        Workload::Watch => Vec::new(),
    };
    let clients: Vec<Client> = (0..endpoints.len())
        .map(|i| client_for(i, Consistency::Linearizable))
        .collect();
    let first_process = (options.concurrency * 1_000_000) as u64;
    let mut final_error =
        final_reads(&clients, &targets, &recorder, first_process, interrupt).await;
    let watched = match watching {
        Some(w) => {
            let latest = crate::watch::revision(&http, &token, &endpoints, true).await;
            if latest.is_none() {
                final_error
                    .get_or_insert_with(|| "the last write's revision could not be read".into());
            }
            Some(w.finish(latest.map(|(_, last)| last)).await)
        }
        None => None,
    };
    Driven {
        recorder,
        nemesis: log,
        final_reads_ok: final_error.is_none(),
        final_error,
        watched,
    }
}

/// The watch workload's running watchers and compactor.
struct Watching {
    log: crate::watch::Shared,
    progress: Vec<tokio::sync::watch::Receiver<i64>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watching {
    /// Starts one watcher per member from the store's current revision, and
    /// the compactor.
    async fn start(
        http: &reqwest::Client,
        token: &Arc<str>,
        endpoints: &[Endpoint],
        interrupt: &CancellationToken,
    ) -> Watching {
        let from = crate::watch::revision(http, token, endpoints, false)
            .await
            .map_or(0, |(revision, _)| revision);
        let log = crate::watch::Shared::default();
        let stop = interrupt.child_token();
        let mut progress = Vec::new();
        let mut tasks = Vec::new();
        for watcher in 0..endpoints.len() {
            let (tx, rx) = tokio::sync::watch::channel(from);
            progress.push(rx);
            tasks.push(tokio::spawn(crate::watch::follow(
                watcher,
                http.clone(),
                token.clone(),
                endpoints.to_vec(),
                from,
                log.clone(),
                tx,
                stop.clone(),
            )));
        }
        tasks.push(tokio::spawn(crate::watch::compact(
            http.clone(),
            token.clone(),
            endpoints.to_vec(),
            log.clone(),
            stop.clone(),
        )));
        Watching {
            log,
            progress,
            stop,
            tasks,
        }
    }

    /// Waits (up to [`WATCH_CATCH_UP`]) until every watcher has received
    /// revision `last`, stops them, and returns their log and whether each
    /// caught up (none did when `last` is unknown).
    async fn finish(mut self, last: Option<i64>) -> (crate::watch::Log, Vec<bool>) {
        let mut caught_up = vec![false; self.progress.len()];
        if let Some(last) = last {
            let deadline = tokio::time::Instant::now() + WATCH_CATCH_UP;
            for (i, progress) in self.progress.iter_mut().enumerate() {
                caught_up[i] = tokio::time::timeout_at(deadline, progress.wait_for(|r| *r >= last))
                    .await
                    .is_ok_and(|r| r.is_ok());
            }
        }
        self.stop.cancel();
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!("a watcher failed: {e}");
            }
        }
        (self.log.snapshot(), caught_up)
    }
}

/// Reads every target (a register key, or None for the whole set) on every
/// member, each retried until it succeeds or [`FINAL_READ_TIMEOUT`] passes.
/// Every attempt is recorded, each as its own process from `first_process`
/// on. Returns the first failure, if any.
async fn final_reads(
    clients: &[Client],
    targets: &[Option<String>],
    recorder: &Recorder,
    first_process: u64,
    interrupt: &CancellationToken,
) -> Option<String> {
    let mut process = first_process;
    let mut first_failure = None;
    for client in clients {
        for key in targets {
            let f = if key.is_some() {
                Function::Read
            } else {
                Function::ReadAll
            };
            let deadline = Instant::now() + FINAL_READ_TIMEOUT;
            loop {
                process += 1;
                let node = Some(client.endpoint().name.clone());
                let invocation = recorder.invoke(process, f, key.clone(), None, node);
                let reply = match key {
                    Some(k) => client.read(k).await,
                    None => client.read_all().await,
                };
                let error = match &reply.outcome {
                    Outcome::Fail(e) | Outcome::Info(e) => Some(e.clone()),
                    Outcome::Ok(_) => None,
                };
                workload::record(recorder, &invocation, reply, None);
                let Some(error) = error else {
                    break;
                };
                if Instant::now() >= deadline || interrupt.is_cancelled() {
                    first_failure.get_or_insert_with(|| {
                        format!(
                            "final read of {} on {} failed: {error}",
                            key.as_deref().unwrap_or("the set"),
                            client.endpoint().name,
                        )
                    });
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    first_failure
}

/// Checks `events` (and the watchers' log) and summarizes them.
fn check(
    options: &Options,
    events: &[history::Event],
    final_reads_ok: bool,
    watched: Option<&(crate::watch::Log, Vec<bool>)>,
) -> Results {
    let counts = history::counts(events);
    let mut results = Results::new(options, counts);
    results.final_reads_ok = final_reads_ok;
    match options.workload {
        Workload::Register => match checker::register::split(events) {
            Err(e) => {
                results.valid = report::Validity::Unknown;
                results.final_error = Some(format!("malformed history: {e}"));
            }
            Ok(keys) => {
                let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
                let verdicts = checker::check_parallel(&Register, &keys, options.budget, threads);
                results.keys = keys.len();
                for ((key, ops), verdict) in keys.iter().zip(verdicts) {
                    match verdict {
                        Verdict::Valid => {}
                        Verdict::Unknown(why) => results.unknown_keys.push(report::UnknownKey {
                            key: key.clone(),
                            operations: ops.len(),
                            reason: why,
                        }),
                        Verdict::Invalid(evidence) => results
                            .failures
                            .push(report::failure(key, ops, &evidence, events)),
                    }
                }
            }
        },
        Workload::Set => {
            let reads = options.nodes;
            results.set = Some(checker::set::check(events, reads));
        }
        Workload::Watch => {
            let (log, caught_up) = watched
                .cloned()
                .unwrap_or_else(|| (crate::watch::Log::default(), vec![false; options.nodes]));
            results.watch = Some(checker::watch::check(events, &log, &caught_up));
        }
    }
    results.decide();
    results
}
