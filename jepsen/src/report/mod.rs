//! What a run leaves in its output directory, besides `history.jsonl`:
//! - `results.json`: the verdict (`valid`: true, false or "unknown"), the
//!   counts, the faults applied, and for each failing key its evidence;
//! - `latency.svg`, `rate.svg` ([`plot`]): latency and throughput over time
//!   with the fault periods shaded;
//! - `timeline.html` ([`timeline`]): one lane per process.
//!
//! A run is valid only when every key checked valid, the final reads
//! succeeded, and nothing was interrupted; a key whose check ran out of
//! budget makes it unknown, never valid.

pub mod plot;
pub mod timeline;

use crate::checker::register::RegisterOp;
use crate::checker::set::SetReport;
use crate::checker::{Evidence, Operation};
use crate::history::{Counts, Event, Kind};
use crate::nemesis::Period;
use crate::run::Options;
use serde::{Serialize, Serializer};
use std::path::Path;

/// The verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// Checked valid.
    Valid,
    /// Checked invalid.
    Invalid,
    /// Could not be decided.
    Unknown,
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::Valid => s.serialize_bool(true),
            Validity::Invalid => s.serialize_bool(false),
            Validity::Unknown => s.serialize_str("unknown"),
        }
    }
}

/// One operation as shown in evidence.
#[derive(Serialize, Clone, Debug)]
pub struct Shown {
    /// Index of its invocation.
    pub index: usize,
    /// Its process.
    pub process: u64,
    /// How it completed.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// What it was, with its output.
    pub op: String,
    /// Invocation time, seconds.
    pub invoked: f64,
    /// Completion time, seconds (None: indeterminate).
    pub completed: Option<f64>,
    /// The member it went to.
    pub node: Option<String>,
    /// The register value after it, in the linearization.
    pub state_after: Option<String>,
}

/// A key whose history is not linearizable.
#[derive(Serialize, Clone, Debug)]
pub struct Failure {
    /// The key.
    pub key: String,
    /// Operations of the key that were checked.
    pub operations: usize,
    /// Length of the longest linearizable prefix.
    pub linearizable_prefix: usize,
    /// The register's value after that prefix.
    pub state: Option<i64>,
    /// The operation that cannot follow it.
    pub breaking: Option<Shown>,
    /// The prefix, in linearization order (the last 30 operations).
    pub prefix_tail: Vec<Shown>,
}

/// A key whose check ran out of budget.
#[derive(Serialize, Clone, Debug)]
pub struct UnknownKey {
    /// The key.
    pub key: String,
    /// Its operations.
    pub operations: usize,
    /// Which budget ran out.
    pub reason: String,
}

/// `results.json`.
#[derive(Serialize, Clone, Debug)]
pub struct Results {
    /// true, false or "unknown".
    pub valid: Validity,
    /// The workload.
    pub workload: crate::workload::Workload,
    /// Masters.
    pub nodes: usize,
    /// Faults in the schedule.
    pub nemesis: Vec<String>,
    /// Client read consistency.
    pub consistency: crate::client::Consistency,
    /// Workload seconds.
    pub time_limit: f64,
    /// Offered rate.
    pub rate: f64,
    /// Workers.
    pub concurrency: usize,
    /// Seed.
    pub seed: u64,
    /// Invocations.
    pub invoked: usize,
    /// Acknowledged operations.
    pub ok: usize,
    /// Operations that certainly did not happen.
    pub fail: usize,
    /// Indeterminate operations.
    pub info: usize,
    /// Register keys checked.
    pub keys: usize,
    /// Non-linearizable keys, with evidence.
    pub failures: Vec<Failure>,
    /// Keys whose check ran out of budget.
    pub unknown_keys: Vec<UnknownKey>,
    /// The set checker's findings.
    pub set: Option<SetReport>,
    /// The watch checker's findings.
    pub watch: Option<crate::checker::watch::WatchReport>,
    /// Every final read succeeded.
    pub final_reads_ok: bool,
    /// Why the end of the run went wrong, if it did.
    pub final_error: Option<String>,
    /// Stopped by a signal.
    pub interrupted: bool,
    /// Faults applied.
    pub faults: Vec<Period>,
    /// Faults the nemesis could not apply or heal.
    pub nemesis_errors: Vec<String>,
    /// Seconds the checker took.
    pub check_seconds: f64,
    /// Where the members' logs are.
    pub logs: String,
    /// Prefix of every namespace, link and rule the run created.
    pub network_prefix: String,
    /// Each member's own status at the end (state, term, applied index,
    /// snapshots installed since its last start); null if it did not answer.
    pub members: std::collections::BTreeMap<String, Option<crate::cluster::LocalStatus>>,
}

impl Results {
    /// Results with the run's parameters and counts, not yet decided.
    pub fn new(options: &Options, counts: Counts) -> Results {
        Results {
            valid: Validity::Unknown,
            workload: options.workload,
            nodes: options.nodes,
            nemesis: options.faults.iter().map(|f| f.name().to_owned()).collect(),
            consistency: options.consistency,
            time_limit: options.time_limit.as_secs_f64(),
            rate: options.rate,
            concurrency: options.concurrency,
            seed: options.seed,
            invoked: counts.invoked,
            ok: counts.ok,
            fail: counts.fail,
            info: counts.info,
            keys: 0,
            failures: Vec::new(),
            unknown_keys: Vec::new(),
            set: None,
            watch: None,
            final_reads_ok: false,
            final_error: None,
            interrupted: false,
            faults: Vec::new(),
            nemesis_errors: Vec::new(),
            check_seconds: 0.0,
            logs: String::new(),
            network_prefix: String::new(),
            members: std::collections::BTreeMap::new(),
        }
    }

    /// Sets `valid` from the findings (see the module doc).
    pub fn decide(&mut self) {
        let set_invalid = self.set.as_ref().is_some_and(|s| !s.valid)
            || self.watch.as_ref().is_some_and(|w| !w.valid);
        self.valid = if !self.failures.is_empty() || set_invalid || !self.final_reads_ok {
            Validity::Invalid
        } else if !self.unknown_keys.is_empty() || self.final_error.is_some() {
            Validity::Unknown
        } else {
            Validity::Valid
        };
    }
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

fn describe(op: &RegisterOp) -> String {
    match op {
        RegisterOp::Read(None) => "read -> nil".into(),
        RegisterOp::Read(Some(v)) => format!("read -> {v}"),
        RegisterOp::Write { value, .. } => format!("write {value}"),
        RegisterOp::Cas { from, to, .. } => format!("cas {from} -> {to}"),
    }
}

fn show(op: &Operation<RegisterOp>, events: &[Event], state: Option<Option<i64>>) -> Shown {
    let invoke = events.get(op.id);
    let completion = invoke.and_then(|inv| {
        events[op.id + 1..]
            .iter()
            .find(|e| e.process == inv.process && e.kind != Kind::Invoke)
    });
    Shown {
        index: op.id,
        process: invoke.map_or(0, |e| e.process),
        kind: completion.map_or(Kind::Info, |c| c.kind),
        op: describe(&op.op),
        invoked: seconds(op.call),
        completed: op.ret.map(seconds),
        node: completion.and_then(|c| c.node.clone()),
        state_after: state.map(|s| s.map_or("nil".into(), |v| v.to_string())),
    }
}

/// The evidence of a failing key, in terms of the history's events.
pub fn failure(
    key: &str,
    ops: &[Operation<RegisterOp>],
    evidence: &Evidence<Option<i64>>,
    events: &[Event],
) -> Failure {
    let by_id = |id: usize| ops.iter().find(|o| o.id == id);
    let tail_start = evidence.prefix.len().saturating_sub(30);
    Failure {
        key: key.to_owned(),
        operations: ops.len(),
        linearizable_prefix: evidence.prefix.len(),
        state: evidence.state,
        breaking: by_id(evidence.breaking).map(|op| show(op, events, None)),
        prefix_tail: evidence.prefix[tail_start..]
            .iter()
            .filter_map(|(id, state)| by_id(*id).map(|op| show(op, events, Some(*state))))
            .collect(),
    }
}

/// Writes `results.json`, the plots and the timeline.
///
/// # Errors
/// When a file cannot be written.
pub fn write_all(dir: &Path, results: &Results, events: &[Event]) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(results).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("results.json"), json)?;
    plot::latency(&dir.join("latency.svg"), events, &results.faults)?;
    plot::rate(&dir.join("rate.svg"), events, &results.faults)?;
    timeline::write(&dir.join("timeline.html"), events, &results.faults)?;
    Ok(())
}
