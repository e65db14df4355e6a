//! Checkers: is a recorded history explained by a sequential model?
//!
//! - [`linear`]: a Porcupine-style linearizability checker for any [`Model`];
//! - [`register`]: the read / write / compare-and-set register model, and the
//!   split of a register history into one sub-history per key;
//! - [`set`]: the set workload's checker (every acknowledged add is read back).
//!
//! Linearizability is compositional (Herlihy & Wing's locality; Porcupine's
//! P-compositionality): a history of independent keys is linearizable exactly
//! when each key's sub-history is. [`check_parallel`] therefore checks keys
//! separately, on several threads, each with its own [`Budget`]. A key whose
//! budget runs out is `Unknown`, and an unknown key makes the whole result
//! unknown — never valid.

pub mod linear;
pub mod register;
pub mod set;
pub mod watch;

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A sequential specification.
pub trait Model: Sync {
    /// The object's state. Cached by the search, so it should be small.
    type State: Clone + Eq + Hash + Debug + Send;
    /// One operation with its observed output (a read carries what it read).
    type Op: Debug + Sync;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// The state after `op`, or None when `op` cannot have produced its
    /// output from `state`.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
}

/// One completed or indeterminate operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<O> {
    /// Index of the operation's invocation in the history (for reports).
    pub id: usize,
    /// Invocation time.
    pub call: u64,
    /// Completion time; None for an indeterminate (`info`) operation, which
    /// may take effect at any time after its call, or never.
    pub ret: Option<u64>,
    /// The operation and its output.
    pub op: O,
}

/// How much a key's search may spend before it answers `Unknown`.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Wall-clock time.
    pub time: Duration,
    /// Bytes of search cache (an estimate of the cache's footprint).
    pub memory: usize,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            time: Duration::from_secs(60),
            memory: 512 << 20,
        }
    }
}

/// Why a history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence<S> {
    /// The longest linearizable prefix found: operation ids in linearization
    /// order, each with the state after it.
    pub prefix: Vec<(usize, S)>,
    /// The state after that prefix.
    pub state: S,
    /// The operation that could not be linearized after it (the earliest
    /// returning operation left).
    pub breaking: usize,
}

/// The outcome of checking one history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<S> {
    /// Linearizable.
    Valid,
    /// Not linearizable.
    Invalid(Box<Evidence<S>>),
    /// The budget ran out; the reason says which.
    Unknown(String),
}

impl<S> Verdict<S> {
    /// True for [`Verdict::Valid`].
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid)
    }
}

/// Checks every `(key, history)` pair with `model`, on up to `threads`
/// threads, each key with its own `budget`. Results come back in input order.
pub fn check_parallel<M: Model>(
    model: &M,
    keys: &[(String, Vec<Operation<M::Op>>)],
    budget: Budget,
    threads: usize,
) -> Vec<Verdict<M::State>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Verdict<M::State>>>> =
        Mutex::new((0..keys.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, keys.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((key, ops)) = keys.get(i) else {
                    return;
                };
                let verdict = linear::check(model, ops, &budget);
                tracing::debug!(
                    key,
                    ops = ops.len(),
                    valid = verdict.is_valid(),
                    "key checked"
                );
                if let Ok(mut results) = results.lock() {
                    results[i] = Some(verdict);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .into_iter()
        .map(|v| v.unwrap_or_else(|| Verdict::Unknown("checker thread failed".into())))
        .collect()
}
