//! The register model (read, write, compare-and-set of one key) and the split
//! of a register history into per-key operations for the checker.
//!
//! A key that was never written reads as absent (`None`). Operations that
//! definitely did not happen (`fail`) are dropped; so are reads that did not
//! complete, since a read has no effect. Writes and compare-and-sets that are
//! indeterminate (`info`) are kept with an open end and `certain: false`: the
//! model then lets a compare-and-set either apply or not.

use super::{Model, Operation};
use crate::history::{Event, Function, Kind, Value};
use std::collections::{BTreeMap, HashMap};

/// One register operation with its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    /// A read that returned this value (None: the key was absent).
    Read(Option<i64>),
    /// A write of `value`; `certain` is false when it may not have happened.
    Write {
        /// The value written.
        value: i64,
        /// False for an indeterminate write.
        certain: bool,
    },
    /// Set the value to `to` if it is `from`; a certain one did so.
    Cas {
        /// The value compared with.
        from: i64,
        /// The value written when the compare held.
        to: i64,
        /// False for an indeterminate compare-and-set.
        certain: bool,
    },
}

/// The register model.
#[derive(Clone, Copy, Debug, Default)]
pub struct Register;

impl Model for Register {
    type State = Option<i64>;
    type Op = RegisterOp;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(&self, state: &Option<i64>, op: &RegisterOp) -> Option<Option<i64>> {
        match *op {
            RegisterOp::Read(seen) => (seen == *state).then_some(*state),
            RegisterOp::Write { value, .. } => Some(Some(value)),
            RegisterOp::Cas {
                from,
                to,
                certain: true,
            } => (*state == Some(from)).then_some(Some(to)),
            RegisterOp::Cas {
                from,
                to,
                certain: false,
            } => Some(if *state == Some(from) {
                Some(to)
            } else {
                *state
            }),
        }
    }
}

/// A history that cannot be turned into operations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SplitError {
    /// A completion without an open invocation of the same process.
    #[error("event {index}: process {process} completes an operation it never invoked")]
    Unmatched {
        /// The completion's index.
        index: usize,
        /// Its process.
        process: u64,
    },
    /// An operation whose value does not fit its function.
    #[error("event {index}: {f:?} with value {value:?} is not a register operation")]
    Malformed {
        /// The event's index.
        index: usize,
        /// Its function.
        f: Function,
        /// Its value.
        value: Option<Value>,
    },
}

/// One key's operations, as [`split`] returns them.
pub type KeyHistory = (String, Vec<Operation<RegisterOp>>);

/// Splits a register history into per-key operation lists, sorted by key.
/// Invocations never completed count as indeterminate.
///
/// # Errors
/// When a completion has no invocation, or an event's value is malformed.
pub fn split(events: &[Event]) -> Result<Vec<KeyHistory>, SplitError> {
    let mut open: HashMap<u64, &Event> = HashMap::new();
    let mut keys: BTreeMap<String, Vec<Operation<RegisterOp>>> = BTreeMap::new();
    let mut push = |invoke: &Event, completion: Option<&Event>| -> Result<(), SplitError> {
        let kind = completion.map(|c| c.kind).unwrap_or(Kind::Info);
        let certain = kind == Kind::Ok;
        let malformed = |e: &Event| SplitError::Malformed {
            index: e.index,
            f: e.f,
            value: e.value.clone(),
        };
        let op = match (invoke.f, kind) {
            (_, Kind::Fail) | (Function::Read, Kind::Info) => return Ok(()),
            (Function::Read, _) => {
                let Some(done) = completion else {
                    return Ok(());
                };
                match &done.value {
                    None => RegisterOp::Read(None),
                    Some(Value::Int(v)) => RegisterOp::Read(Some(*v)),
                    Some(_) => return Err(malformed(done)),
                }
            }
            (Function::Write, _) => match invoke.value {
                Some(Value::Int(value)) => RegisterOp::Write { value, certain },
                _ => return Err(malformed(invoke)),
            },
            (Function::Cas, _) => match &invoke.value {
                Some(Value::Pair([from, to])) => RegisterOp::Cas {
                    from: *from,
                    to: *to,
                    certain,
                },
                _ => return Err(malformed(invoke)),
            },
            _ => return Err(malformed(invoke)),
        };
        let ret = if certain {
            completion.map(|c| c.time)
        } else {
            None
        };
        keys.entry(invoke.key.clone().unwrap_or_default())
            .or_default()
            .push(Operation {
                id: invoke.index,
                call: invoke.time,
                ret,
                op,
            });
        Ok(())
    };
    for event in events {
        match event.kind {
            Kind::Invoke => {
                open.insert(event.process, event);
            }
            _ => {
                let Some(invoke) = open.remove(&event.process) else {
                    return Err(SplitError::Unmatched {
                        index: event.index,
                        process: event.process,
                    });
                };
                push(invoke, Some(event))?;
            }
        }
    }
    let mut dangling: Vec<&Event> = open.into_values().collect();
    dangling.sort_by_key(|e| e.index);
    for invoke in dangling {
        push(invoke, None)?;
    }
    Ok(keys.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(index: usize, process: u64, kind: Kind, f: Function, value: Option<Value>) -> Event {
        Event {
            index,
            time: index as u64 * 10,
            process,
            kind,
            f,
            key: Some("k".into()),
            value,
            node: None,
            error: None,
        }
    }

    #[test]
    fn split_keeps_indeterminate_writes_and_drops_failures() {
        let events = vec![
            event(0, 1, Kind::Invoke, Function::Write, Some(Value::Int(1))),
            event(1, 2, Kind::Invoke, Function::Cas, Some(Value::Pair([1, 2]))),
            event(2, 3, Kind::Invoke, Function::Read, None),
            event(3, 1, Kind::Info, Function::Write, Some(Value::Int(1))),
            event(4, 2, Kind::Fail, Function::Cas, Some(Value::Pair([1, 2]))),
            event(5, 3, Kind::Ok, Function::Read, Some(Value::Int(1))),
            event(6, 4, Kind::Invoke, Function::Write, Some(Value::Int(3))),
        ];
        let keys = split(&events).expect("well-formed");
        assert_eq!(keys.len(), 1);
        let ops = &keys[0].1;
        assert_eq!(
            ops.iter().map(|o| (o.id, o.ret, o.op)).collect::<Vec<_>>(),
            vec![
                (
                    0,
                    None,
                    RegisterOp::Write {
                        value: 1,
                        certain: false
                    }
                ),
                (2, Some(50), RegisterOp::Read(Some(1))),
                (
                    6,
                    None,
                    RegisterOp::Write {
                        value: 3,
                        certain: false
                    }
                ),
            ]
        );
    }

    #[test]
    fn completion_without_invocation_is_an_error() {
        let events = vec![event(0, 1, Kind::Ok, Function::Read, None)];
        assert_eq!(
            split(&events),
            Err(SplitError::Unmatched {
                index: 0,
                process: 1
            })
        );
    }
}
