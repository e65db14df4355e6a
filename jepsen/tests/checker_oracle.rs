//! The linearizability checker against a brute-force oracle.
//!
//! The oracle tries every subset of the indeterminate operations and every
//! ordering of the chosen operations that respects real time (a before b when
//! a returned before b was called), and runs the register model along it. On
//! small histories it is exact, so the checker must agree with it on every
//! history — the valid ones generated from a real execution and the random
//! (mostly invalid) ones alike.

use flotilla_jepsen::checker::linear::check;
use flotilla_jepsen::checker::register::{Register, RegisterOp};
use flotilla_jepsen::checker::{Budget, Model, Operation, Verdict};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::time::Duration;

fn oracle(ops: &[Operation<RegisterOp>]) -> bool {
    let indeterminate: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].ret.is_none()).collect();
    for mask in 0u32..(1 << indeterminate.len()) {
        let chosen: Vec<usize> = (0..ops.len())
            .filter(|&i| match indeterminate.iter().position(|&j| j == i) {
                Some(bit) => mask & (1 << bit) != 0,
                None => true,
            })
            .collect();
        if orderings(ops, &chosen, &mut Vec::new(), Register.init()) {
            return true;
        }
    }
    false
}

/// Depth-first over orderings of `left` that respect real time.
fn orderings(
    ops: &[Operation<RegisterOp>],
    left: &[usize],
    placed: &mut Vec<usize>,
    state: Option<i64>,
) -> bool {
    if left.is_empty() {
        return true;
    }
    for (k, &i) in left.iter().enumerate() {
        // `i` may go next only if no other remaining op returned before `i` was called.
        let blocked = left
            .iter()
            .any(|&j| j != i && ops[j].ret.is_some_and(|r| r < ops[i].call));
        if blocked {
            continue;
        }
        let Some(next) = Register.step(&state, &ops[i].op) else {
            continue;
        };
        let mut rest = left.to_vec();
        rest.remove(k);
        placed.push(i);
        if orderings(ops, &rest, placed, next) {
            return true;
        }
        placed.pop();
    }
    false
}

fn budget() -> Budget {
    Budget {
        time: Duration::from_secs(30),
        memory: 256 << 20,
    }
}

fn verdict(ops: &[Operation<RegisterOp>]) -> bool {
    match check(&Register, ops, &budget()) {
        Verdict::Valid => true,
        Verdict::Invalid(_) => false,
        Verdict::Unknown(why) => panic!("small history came back unknown: {why}"),
    }
}

/// A random op shape: (call, duration, indeterminate, kind, a, b, read value).
type Shape = (u64, u64, bool, u8, i64, i64, Option<i64>);

fn shapes(max: usize) -> impl Strategy<Value = Vec<Shape>> {
    prop::collection::vec(
        (
            0u64..20,
            0u64..8,
            prop::bool::weighted(0.2),
            0u8..3,
            0i64..3,
            0i64..3,
            prop::option::of(0i64..3),
        ),
        1..=max,
    )
}

/// Ops with random outputs: mostly invalid histories.
fn random_ops(shapes: &[Shape]) -> Vec<Operation<RegisterOp>> {
    shapes
        .iter()
        .enumerate()
        .map(|(id, &(call, duration, info, kind, a, b, read))| {
            let certain = !info;
            let op = match kind {
                0 => RegisterOp::Read(read),
                1 => RegisterOp::Write { value: a, certain },
                _ => RegisterOp::Cas {
                    from: a,
                    to: b,
                    certain,
                },
            };
            // Indeterminate reads are dropped by the real split; keep reads determinate.
            let ret = if info && kind != 0 {
                None
            } else {
                Some(call + duration)
            };
            Operation { id, call, ret, op }
        })
        .collect()
}

/// Ops from a real execution: each takes effect at a point inside its
/// interval (points in id order), outputs are what the register returned;
/// indeterminate ops may or may not have taken effect.
fn executed_ops(shapes: &[Shape]) -> Vec<Operation<RegisterOp>> {
    let mut timed: Vec<(u64, usize)> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| (s.0 * 2 + s.1, i))
        .collect();
    timed.sort_unstable();
    let mut state: Option<i64> = None;
    let mut ops: Vec<Option<Operation<RegisterOp>>> = vec![None; shapes.len()];
    for (point, i) in timed {
        let (_, duration, info, kind, a, b, _) = shapes[i];
        // Interval chosen around the effect point.
        let call = point.saturating_sub(duration);
        let ret_time = point + duration;
        let indeterminate = info && kind != 0;
        let happened = !indeterminate || (a + b) % 2 == 0;
        let op = match kind {
            0 => RegisterOp::Read(state),
            1 => {
                if happened {
                    state = Some(a);
                }
                RegisterOp::Write {
                    value: a,
                    certain: !indeterminate,
                }
            }
            _ => {
                let before = state;
                let holds = before == Some(a);
                if happened && holds {
                    state = Some(b);
                }
                if !indeterminate && !holds {
                    // A determinate CAS whose compare failed is `fail` and
                    // dropped by the split; it did observe `before`, though.
                    RegisterOp::Read(before)
                } else {
                    RegisterOp::Cas {
                        from: a,
                        to: b,
                        certain: !indeterminate,
                    }
                }
            }
        };
        ops[i] = Some(Operation {
            id: i,
            call,
            ret: if indeterminate { None } else { Some(ret_time) },
            op,
        });
    }
    ops.into_iter().flatten().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn agrees_with_oracle_on_random_histories(shapes in shapes(7)) {
        let ops = random_ops(&shapes);
        prop_assert_eq!(verdict(&ops), oracle(&ops), "history: {:?}", ops);
    }

    #[test]
    fn agrees_with_oracle_on_executed_histories(shapes in shapes(7)) {
        let ops = executed_ops(&shapes);
        let expected = oracle(&ops);
        prop_assert_eq!(verdict(&ops), expected, "history: {:?}", ops);
    }
}

#[test]
fn executed_histories_are_mostly_valid_and_random_ones_mostly_not() {
    // Guards the generators: both kinds of history must be exercised.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut executed_valid, mut random_invalid, mut total) = (0, 0, 0);
    for _ in 0..300 {
        let s = shapes(7).new_tree(&mut runner).expect("generate").current();
        executed_valid += usize::from(oracle(&executed_ops(&s)));
        random_invalid += usize::from(!oracle(&random_ops(&s)));
        total += 1;
    }
    assert!(
        executed_valid * 2 > total,
        "{executed_valid}/{total} executed histories valid"
    );
    assert!(
        random_invalid * 4 > total,
        "{random_invalid}/{total} random histories invalid"
    );
}

#[test]
fn larger_valid_history_checks_quickly() {
    // 200 operations on one key from 10 concurrent processes, as the
    // register workload produces, with some indeterminate writes.
    let mut ops = Vec::new();
    let mut state = None;
    for i in 0..200u64 {
        let point = i * 10;
        let id = i as usize;
        let op = match i % 4 {
            0 | 1 => RegisterOp::Read(state),
            2 => {
                state = Some((i % 5) as i64);
                RegisterOp::Write {
                    value: (i % 5) as i64,
                    certain: i % 20 != 2,
                }
            }
            _ => RegisterOp::Write {
                value: (i % 3) as i64,
                certain: true,
            },
        };
        if let RegisterOp::Write {
            value,
            certain: true,
        } = op
        {
            state = Some(value);
        }
        let certain = !matches!(op, RegisterOp::Write { certain: false, .. });
        ops.push(Operation {
            id,
            call: point.saturating_sub(45),
            ret: certain.then_some(point + 45),
            op,
        });
    }
    let started = std::time::Instant::now();
    assert!(verdict(&ops));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
