//! The linearizability search: Wing & Gong's algorithm with Lowe's cache, as
//! Porcupine does it.
//!
//! The history of one object becomes a doubly linked list of call and return
//! entries in time order. The search walks the list from its head: at a call
//! it tries to linearize that operation next (the model must accept it from
//! the current state), lifting the call and its return out of the list; at a
//! return it has met an operation that had to be linearized before anything
//! later, so it backtracks, undoing the most recent choice. The list empties
//! exactly when every operation has been placed: the history is linearizable.
//!
//! Lowe's cache remembers every (set of linearized operations, model state)
//! reached; reaching one again cannot lead anywhere new, so that branch is cut.
//! This turns the factorial search into one bounded by the distinct
//! configurations, which stays small for real histories of one key.
//!
//! Indeterminate operations (`info`: the client does not know whether they
//! happened) get a return time after everything else, so the search may place
//! them anywhere after their call — including at the very end, where their
//! effect no longer matters, which covers "it never happened".
//!
//! Invariants: calls sort before returns at equal times (operations that touch
//! in time are concurrent, the permissive reading); the search never answers
//! `Valid` without having placed every operation, and answers `Unknown` when it
//! runs out of its time or memory budget.

use super::{Budget, Evidence, Model, Operation, Verdict};
use std::collections::HashSet;
use std::time::Instant;

const NIL: usize = usize::MAX;

/// A set of operation indices.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct BitSet(Box<[u64]>);

impl BitSet {
    fn new(len: usize) -> BitSet {
        BitSet(vec![0; len.div_ceil(64)].into_boxed_slice())
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Call and return entries threaded on a doubly linked list (dancing links:
/// a lifted entry keeps its own pointers, so undoing the lifts in reverse
/// order restores the list exactly).
struct Entries {
    /// Operation index of each entry.
    op: Vec<usize>,
    /// True for call entries.
    is_call: Vec<bool>,
    /// For a call entry, its return entry.
    partner: Vec<usize>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The sentinel before the first entry.
    head: usize,
}

impl Entries {
    fn new<O>(ops: &[Operation<O>]) -> Entries {
        // (time, is_return, op): calls sort before returns at equal times.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.call, false, i));
            order.push((op.ret.unwrap_or(u64::MAX), true, i));
        }
        order.sort_unstable();
        let n = order.len();
        let head = n;
        let mut entries = Entries {
            op: vec![0; n + 1],
            is_call: vec![false; n + 1],
            partner: vec![NIL; n + 1],
            next: vec![NIL; n + 1],
            prev: vec![NIL; n + 1],
            head,
        };
        let mut call_of = vec![NIL; ops.len()];
        let mut last = head;
        for (position, &(_, is_return, op)) in order.iter().enumerate() {
            entries.op[position] = op;
            entries.is_call[position] = !is_return;
            if is_return {
                entries.partner[call_of[op]] = position;
            } else {
                call_of[op] = position;
            }
            entries.next[last] = position;
            entries.prev[position] = last;
            last = position;
        }
        entries
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        if n != NIL {
            self.prev[n] = e;
        }
    }

    /// Removes a call entry and its return.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.partner[call]);
    }

    /// Undoes [`Entries::lift`]; lifts must be undone in reverse order.
    fn unlift(&mut self, call: usize) {
        self.relink(self.partner[call]);
        self.relink(call);
    }
}

/// How often (in search steps) the clock is read.
const CLOCK_EVERY: u64 = 1024;
/// Bookkeeping bytes per cache entry beyond the bitset and the state.
const CACHE_OVERHEAD: usize = 48;

/// Checks one object's history against `model`. See the module doc.
pub fn check<M: Model>(model: &M, ops: &[Operation<M::Op>], budget: &Budget) -> Verdict<M::State> {
    let started = Instant::now();
    if ops.is_empty() {
        return Verdict::Valid;
    }
    let mut entries = Entries::new(ops);
    let mut state = model.init();
    let mut linearized = BitSet::new(ops.len());
    let words = linearized.0.len();
    let entry_bytes = words * 8 + std::mem::size_of::<M::State>() + CACHE_OVERHEAD;
    let mut cache: HashSet<(BitSet, M::State)> = HashSet::new();
    let mut memory = 0usize;
    // The choices made: (call entry, state before it).
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut best: Vec<(usize, M::State)> = Vec::new();
    let mut blocker: Option<usize> = None;
    // True while `stack` is still the configuration `best` was copied from.
    let mut at_best = false;
    let mut steps = 0u64;
    let mut entry = entries.next[entries.head];
    while entries.next[entries.head] != NIL {
        steps += 1;
        if steps.is_multiple_of(CLOCK_EVERY) && started.elapsed() > budget.time {
            return Verdict::Unknown(format!(
                "time budget of {:?} exhausted after {steps} search steps",
                budget.time
            ));
        }
        if entry == NIL {
            // Cannot happen: the last entry of a non-empty list is a return.
            return Verdict::Unknown("search ran past the end of the history".into());
        }
        let op = entries.op[entry];
        if entries.is_call[entry] {
            if let Some(next) = model.step(&state, &ops[op].op) {
                let mut after = linearized.clone();
                after.set(op);
                let fresh = cache.insert((after.clone(), next.clone()));
                if fresh {
                    memory += entry_bytes;
                    if memory > budget.memory {
                        return Verdict::Unknown(format!(
                            "memory budget of {} MiB exhausted ({} cached configurations)",
                            budget.memory >> 20,
                            cache.len()
                        ));
                    }
                    stack.push((entry, std::mem::replace(&mut state, next)));
                    linearized = after;
                    entries.lift(entry);
                    if stack.len() > best.len() {
                        best.clone_from(&stack);
                        blocker = None;
                        at_best = true;
                    }
                    entry = entries.next[entries.head];
                    continue;
                }
            }
            entry = entries.next[entry];
        } else {
            // A return whose operation is not placed: everything linearized
            // so far must be revisited.
            if at_best && blocker.is_none() {
                blocker = Some(op);
            }
            at_best = false;
            let Some((call, before)) = stack.pop() else {
                return invalid(model, ops, &best, blocker.unwrap_or(op), &entries);
            };
            linearized.clear(entries.op[call]);
            state = before;
            entries.unlift(call);
            entry = entries.next[call];
        }
    }
    Verdict::Valid
}

fn invalid<M: Model>(
    model: &M,
    ops: &[Operation<M::Op>],
    best: &[(usize, M::State)],
    blocker: usize,
    entries: &Entries,
) -> Verdict<M::State> {
    // Replay the longest prefix to report the state after each operation.
    let mut state = model.init();
    let mut prefix = Vec::with_capacity(best.len());
    for (call, _) in best {
        let op = entries.op[*call];
        if let Some(next) = model.step(&state, &ops[op].op) {
            state = next;
        }
        prefix.push((ops[op].id, state.clone()));
    }
    Verdict::Invalid(Box::new(Evidence {
        prefix,
        state,
        breaking: ops[blocker].id,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::register::{Register, RegisterOp};
    use super::*;
    use std::time::Duration;

    fn op(id: usize, call: u64, ret: Option<u64>, op: RegisterOp) -> Operation<RegisterOp> {
        Operation { id, call, ret, op }
    }

    fn budget() -> Budget {
        Budget {
            time: Duration::from_secs(10),
            memory: 64 << 20,
        }
    }

    #[test]
    fn sequential_history_is_valid() {
        let ops = vec![
            op(
                0,
                0,
                Some(1),
                RegisterOp::Write {
                    value: 1,
                    certain: true,
                },
            ),
            op(1, 2, Some(3), RegisterOp::Read(Some(1))),
            op(
                2,
                4,
                Some(5),
                RegisterOp::Cas {
                    from: 1,
                    to: 2,
                    certain: true,
                },
            ),
            op(3, 6, Some(7), RegisterOp::Read(Some(2))),
        ];
        assert!(matches!(check(&Register, &ops, &budget()), Verdict::Valid));
    }

    #[test]
    fn stale_read_after_acknowledged_write_is_invalid() {
        let ops = vec![
            op(
                0,
                0,
                Some(1),
                RegisterOp::Write {
                    value: 1,
                    certain: true,
                },
            ),
            op(
                1,
                2,
                Some(3),
                RegisterOp::Write {
                    value: 2,
                    certain: true,
                },
            ),
            op(2, 4, Some(5), RegisterOp::Read(Some(1))),
        ];
        let Verdict::Invalid(evidence) = check(&Register, &ops, &budget()) else {
            panic!("a stale read must be caught");
        };
        assert_eq!(evidence.breaking, 2, "the stale read is what breaks it");
        assert_eq!(evidence.prefix.len(), 2);
        assert_eq!(evidence.state, Some(2));
    }

    #[test]
    fn concurrent_write_may_be_seen_either_way() {
        let ops = vec![
            op(
                0,
                0,
                Some(10),
                RegisterOp::Write {
                    value: 1,
                    certain: true,
                },
            ),
            op(1, 1, Some(2), RegisterOp::Read(None)),
            op(2, 3, Some(4), RegisterOp::Read(Some(1))),
            op(3, 5, Some(6), RegisterOp::Read(Some(1))),
        ];
        assert!(matches!(check(&Register, &ops, &budget()), Verdict::Valid));
    }

    #[test]
    fn indeterminate_write_may_or_may_not_have_happened() {
        let lost = vec![
            op(
                0,
                0,
                None,
                RegisterOp::Write {
                    value: 1,
                    certain: false,
                },
            ),
            op(1, 5, Some(6), RegisterOp::Read(None)),
        ];
        assert!(matches!(check(&Register, &lost, &budget()), Verdict::Valid));
        let late = vec![
            op(
                0,
                0,
                None,
                RegisterOp::Write {
                    value: 1,
                    certain: false,
                },
            ),
            op(1, 5, Some(6), RegisterOp::Read(None)),
            op(2, 7, Some(8), RegisterOp::Read(Some(1))),
        ];
        assert!(matches!(check(&Register, &late, &budget()), Verdict::Valid));
        // But once seen, it cannot be unseen.
        let flicker = vec![
            op(
                0,
                0,
                None,
                RegisterOp::Write {
                    value: 1,
                    certain: false,
                },
            ),
            op(1, 5, Some(6), RegisterOp::Read(Some(1))),
            op(2, 7, Some(8), RegisterOp::Read(None)),
        ];
        assert!(matches!(
            check(&Register, &flicker, &budget()),
            Verdict::Invalid(_)
        ));
    }

    #[test]
    fn exhausted_budget_is_unknown_never_valid() {
        // Many concurrent indeterminate writes and reads of distinct values:
        // valid, but a one-entry memory budget cannot show it.
        let mut ops = Vec::new();
        for i in 0..12 {
            ops.push(op(
                i,
                i as u64,
                None,
                RegisterOp::Write {
                    value: i as i64,
                    certain: false,
                },
            ));
        }
        ops.push(op(12, 100, Some(101), RegisterOp::Read(Some(3))));
        let tiny = Budget {
            time: Duration::from_secs(10),
            memory: 1,
        };
        assert!(matches!(check(&Register, &ops, &tiny), Verdict::Unknown(_)));
        assert!(matches!(check(&Register, &ops, &budget()), Verdict::Valid));
    }
}
