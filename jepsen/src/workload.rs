//! Workloads: what the clients do, and the worker loop that does it.
//!
//! - `register`: reads, writes and compare-and-sets of small values on many
//!   keys. Keys are used a few at a time ([`KeyPlan`]): each group of keys
//!   receives about [`OPS_PER_KEY`] operations, then the next group takes over,
//!   so every key's history stays small enough to check exhaustively, while
//!   concurrent clients still contend on the same keys.
//! - `set`: adds of unique integers; the set is read at the end.
//! - `watch`: the same adds under their own prefix, followed by one watcher
//!   per member through `/kv/watch` while a compactor trims the history
//!   ([`crate::watch`]); every watcher must see every acknowledged add once,
//!   in revision order.
//!
//! Each worker is one client task pinned to a member. It runs one logical
//! process at a time; when an operation ends `info`, the process is
//! abandoned (its operation stays open for ever) and the worker continues as
//! process `id + concurrency`, as in Jepsen. Workers pace themselves with a
//! random delay of mean `concurrency / rate`, so together they offer about
//! `rate` operations per second.

use crate::client::{Client, Outcome, Reply};
use crate::history::{Function, Kind, Recorder, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Operations aimed at each register key, about.
pub const OPS_PER_KEY: u64 = 200;
/// Register values are drawn from `0..VALUES`.
const VALUES: i64 = 5;

/// Which workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Read / write / compare-and-set registers.
    Register,
    /// Unique adds, then a final read.
    Set,
    /// Unique adds followed by watchers on every member.
    Watch,
}

/// Assigns register operations to keys, a group at a time.
#[derive(Debug)]
pub struct KeyPlan {
    group: u64,
    issued: AtomicU64,
}

impl KeyPlan {
    /// A plan using `group` keys at a time.
    pub fn new(group: u64) -> KeyPlan {
        KeyPlan {
            group: group.max(1),
            issued: AtomicU64::new(0),
        }
    }

    /// The key number for the next operation.
    pub fn next(&self, rng: &mut impl Rng) -> u64 {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let group = n / (OPS_PER_KEY * self.group);
        group * self.group + rng.gen_range(0..self.group)
    }

    /// Keys used so far: `0..used()`.
    pub fn used(&self) -> u64 {
        let n = self.issued.load(Ordering::Relaxed);
        if n == 0 {
            0
        } else {
            ((n - 1) / (OPS_PER_KEY * self.group) + 1) * self.group
        }
    }
}

/// The store key of register number `n`.
pub fn register_key(n: u64) -> String {
    format!("/jepsen/r/{n}")
}

/// What a worker needs.
pub struct Worker {
    /// Worker number (its first process id).
    pub id: u64,
    /// Number of workers (the process id stride).
    pub concurrency: u64,
    /// The client, pinned to a member.
    pub client: Client,
    /// The history.
    pub recorder: Recorder,
    /// The workload.
    pub workload: Workload,
    /// Register key assignment.
    pub keys: Arc<KeyPlan>,
    /// Next set element (shared, so elements are unique).
    pub elements: Arc<AtomicU64>,
    /// Mean delay between this worker's operations.
    pub pace: Duration,
    /// Seed of this worker's random choices.
    pub seed: u64,
}

impl Worker {
    /// Runs operations until `stop` is cancelled. An operation in flight is
    /// finished (within the client's operation timeout), never abandoned.
    pub async fn run(self, stop: CancellationToken) {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut process = self.id;
        let node = Some(self.client.endpoint().name.clone());
        loop {
            let nanos = self.pace.as_nanos() as u64;
            let delay = Duration::from_nanos(if nanos == 0 {
                0
            } else {
                rng.gen_range(0..2 * nanos)
            });
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            let (f, key, value) = match self.workload {
                Workload::Register => {
                    let key = register_key(self.keys.next(&mut rng));
                    match rng.gen_range(0..4) {
                        0 | 1 => (Function::Read, Some(key), None),
                        2 => (
                            Function::Write,
                            Some(key),
                            Some(Value::Int(rng.gen_range(0..VALUES))),
                        ),
                        _ => (
                            Function::Cas,
                            Some(key),
                            Some(Value::Pair([
                                rng.gen_range(0..VALUES),
                                rng.gen_range(0..VALUES),
                            ])),
                        ),
                    }
                }
                Workload::Set | Workload::Watch => {
                    let x = self.elements.fetch_add(1, Ordering::Relaxed) as i64;
                    (Function::Add, None, Some(Value::Int(x)))
                }
            };
            let invocation =
                self.recorder
                    .invoke(process, f, key.clone(), value.clone(), node.clone());
            let reply = self.perform(f, key.as_deref(), value.as_ref()).await;
            let indeterminate = matches!(reply.outcome, Outcome::Info(_));
            record(&self.recorder, &invocation, reply, value);
            if indeterminate {
                process += self.concurrency;
            }
        }
    }

    async fn perform(&self, f: Function, key: Option<&str>, value: Option<&Value>) -> Reply {
        let key = key.unwrap_or_default();
        match (f, value) {
            (Function::Read, _) => self.client.read(key).await,
            (Function::Write, Some(Value::Int(v))) => self.client.write(key, *v).await,
            (Function::Cas, Some(Value::Pair([from, to]))) => {
                self.client.cas(key, *from, *to).await
            }
            (Function::Add, Some(Value::Int(x))) if self.workload == Workload::Watch => {
                self.client.add_under(crate::watch::WATCH_PREFIX, *x).await
            }
            (Function::Add, Some(Value::Int(x))) => self.client.add(*x).await,
            (Function::ReadAll, _) => self.client.read_all().await,
            _ => Reply {
                outcome: Outcome::Fail(format!("{f:?} with value {value:?} is not an operation")),
                node: None,
            },
        }
    }
}

/// Records a reply as the completion of `invocation`. Writes keep their
/// invoked value on completion, as in Jepsen; reads carry what they read.
pub fn record(
    recorder: &Recorder,
    invocation: &crate::history::Invocation,
    reply: Reply,
    invoked: Option<Value>,
) {
    let reads = matches!(invocation.f, Function::Read | Function::ReadAll);
    let (kind, value, error) = match reply.outcome {
        Outcome::Ok(read) => (Kind::Ok, if reads { read } else { invoked }, None),
        Outcome::Fail(e) => (Kind::Fail, if reads { None } else { invoked }, Some(e)),
        Outcome::Info(e) => (Kind::Info, if reads { None } else { invoked }, Some(e)),
    };
    recorder.complete(invocation, kind, value, reply.node, error);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_plan_moves_on_after_ops_per_key() {
        let plan = KeyPlan::new(3);
        let mut rng = StdRng::seed_from_u64(7);
        let first: Vec<u64> = (0..OPS_PER_KEY * 3).map(|_| plan.next(&mut rng)).collect();
        assert!(first.iter().all(|k| *k < 3));
        assert_eq!(plan.used(), 3);
        assert!((3..6).contains(&plan.next(&mut rng)));
        assert_eq!(plan.used(), 6);
        let mut counts = [0u64; 3];
        for k in first {
            counts[k as usize] += 1;
        }
        assert!(counts.iter().all(|c| *c > OPS_PER_KEY / 2), "{counts:?}");
    }
}
