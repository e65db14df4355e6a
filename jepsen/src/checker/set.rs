//! The set checker: unique adds, then final reads of the whole set.
//!
//! Valid when every final read succeeded, contains every element whose add
//! was acknowledged (`ok`), and contains nothing that was never added
//! (elements of indeterminate adds may or may not be there).

use crate::history::{Event, Function, Kind, Value};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// What the set checker found.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct SetReport {
    /// Valid as described in the module doc.
    pub valid: bool,
    /// Adds invoked.
    pub attempted: usize,
    /// Adds acknowledged.
    pub acknowledged: usize,
    /// Final reads that succeeded.
    pub final_reads: usize,
    /// Acknowledged elements missing from some final read.
    pub lost: Vec<i64>,
    /// Elements read that no add ever wrote.
    pub unexpected: Vec<i64>,
    /// Indeterminate adds found in the final reads.
    pub recovered: usize,
}

/// The elements of a history's adds: every one invoked, and those whose add
/// was acknowledged (`ok`).
pub fn adds(events: &[Event]) -> (BTreeSet<i64>, BTreeSet<i64>) {
    let mut invoked: HashMap<u64, i64> = HashMap::new();
    let mut attempted = BTreeSet::new();
    let mut acknowledged = BTreeSet::new();
    for event in events.iter().filter(|e| e.f == Function::Add) {
        match (event.kind, &event.value) {
            (Kind::Invoke, Some(Value::Int(x))) => {
                invoked.insert(event.process, *x);
                attempted.insert(*x);
            }
            (Kind::Ok, _) => {
                if let Some(x) = invoked.remove(&event.process) {
                    acknowledged.insert(x);
                }
            }
            _ => {
                invoked.remove(&event.process);
            }
        }
    }
    (attempted, acknowledged)
}

/// Checks a set history; `expected_reads` is how many final reads there must be.
pub fn check(events: &[Event], expected_reads: usize) -> SetReport {
    let (attempted, acknowledged) = adds(events);
    let reads: Vec<BTreeSet<i64>> = events
        .iter()
        .filter_map(|event| match (event.f, event.kind, &event.value) {
            (Function::ReadAll, Kind::Ok, Some(Value::Many(elements))) => {
                Some(elements.iter().copied().collect())
            }
            _ => None,
        })
        .collect();
    let mut lost = BTreeSet::new();
    let mut unexpected = BTreeSet::new();
    let mut recovered = BTreeSet::new();
    for read in &reads {
        lost.extend(acknowledged.difference(read).copied());
        unexpected.extend(read.difference(&attempted).copied());
        recovered.extend(
            read.iter()
                .filter(|x| attempted.contains(x) && !acknowledged.contains(x))
                .copied(),
        );
    }
    SetReport {
        valid: reads.len() >= expected_reads && lost.is_empty() && unexpected.is_empty(),
        attempted: attempted.len(),
        acknowledged: acknowledged.len(),
        final_reads: reads.len(),
        lost: lost.into_iter().collect(),
        unexpected: unexpected.into_iter().collect(),
        recovered: recovered.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(index: usize, process: u64, kind: Kind, f: Function, value: Option<Value>) -> Event {
        Event {
            index,
            time: index as u64,
            process,
            kind,
            f,
            key: None,
            value,
            node: None,
            error: None,
        }
    }

    fn history(final_read: Vec<i64>) -> Vec<Event> {
        vec![
            e(0, 1, Kind::Invoke, Function::Add, Some(Value::Int(1))),
            e(1, 1, Kind::Ok, Function::Add, Some(Value::Int(1))),
            e(2, 2, Kind::Invoke, Function::Add, Some(Value::Int(2))),
            e(3, 2, Kind::Info, Function::Add, Some(Value::Int(2))),
            e(4, 9, Kind::Invoke, Function::ReadAll, None),
            e(
                5,
                9,
                Kind::Ok,
                Function::ReadAll,
                Some(Value::Many(final_read)),
            ),
        ]
    }

    #[test]
    fn acknowledged_adds_must_be_read_back() {
        assert!(check(&history(vec![1]), 1).valid);
        assert!(check(&history(vec![1, 2]), 1).valid);
        let lost = check(&history(vec![2]), 1);
        assert!(!lost.valid);
        assert_eq!(lost.lost, vec![1]);
        let invented = check(&history(vec![1, 7]), 1);
        assert_eq!(invented.unexpected, vec![7]);
        assert!(!invented.valid);
        assert!(!check(&history(vec![1]), 2).valid, "a missing final read");
    }
}
