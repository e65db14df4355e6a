//! Unit tests of the engine's semantics, one rule at a time.

use std::sync::Arc;

use crate::model::open_engine;
use crate::{
    Applied, Command, Compare, CompareOp, Engine, Error, Event, EventKind, KeyValue, Op,
    OpResponse, Rejection, Request, Response, Revision, Target, Txn, DEDUPE_CAPACITY,
};

fn open() -> (tempfile::TempDir, Engine) {
    open_engine(DEDUPE_CAPACITY)
}

fn apply(engine: &Engine, command: Command) -> Applied {
    engine
        .apply(&Request { id: None, command }, b"m")
        .expect("apply")
}

fn put(key: &str, value: &str) -> Command {
    Command::Put {
        key: key.into(),
        value: value.into(),
    }
}

fn del(key: &str) -> Command {
    Command::Delete { key: key.into() }
}

fn kv(key: &str, value: &str, create: Revision, modified: Revision, version: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision: create,
        mod_revision: modified,
        version,
    }
}

fn get(engine: &Engine, key: &str) -> Option<KeyValue> {
    engine.get(key.as_bytes(), None).expect("get").value
}

fn txn(compare: Vec<Compare>, success: Vec<Op>, failure: Vec<Op>) -> Command {
    Command::Txn(Txn {
        compare,
        success,
        failure,
    })
}

fn op_put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
    }
}

#[test]
fn engine_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
}

#[test]
fn new_store_is_at_revision_one() {
    let (_dir, engine) = open();
    assert_eq!(engine.revision(), 1);
    assert_eq!(engine.compact_revision(), 0);
    assert_eq!(engine.marker().expect("marker"), None);
    let read = engine.get(b"a", None).expect("get");
    assert_eq!((read.value, read.revision), (None, 1));
    let range = engine.range(b"", 0, None).expect("range").value;
    assert_eq!((range.kvs.len(), range.more, range.count), (0, false, 0));
}

#[test]
fn key_lifecycle_tracks_create_mod_and_version() {
    let (_dir, engine) = open();
    // (command, expected state of "k" afterwards)
    let cases = [
        (put("k", "1"), Some(kv("k", "1", 2, 2, 1))),
        (put("k", "2"), Some(kv("k", "2", 2, 3, 2))),
        (put("other", "x"), Some(kv("k", "2", 2, 3, 2))),
        (put("k", "2"), Some(kv("k", "2", 2, 5, 3))),
        (del("k"), None),
        (put("k", "3"), Some(kv("k", "3", 7, 7, 1))),
    ];
    for (i, (command, expected)) in cases.into_iter().enumerate() {
        apply(&engine, command);
        assert_eq!(get(&engine, "k"), expected, "step {i}");
    }
}

#[test]
fn only_changes_bump_the_revision() {
    let (_dir, engine) = open();
    apply(&engine, put("a/1", "x"));
    apply(&engine, put("a/2", "x"));
    let start = engine.revision();
    // (command, revision delta)
    let cases: Vec<(Command, Revision)> = vec![
        (del("missing"), 0),
        (Command::DeletePrefix { prefix: "z".into() }, 0),
        (txn(vec![], vec![Op::Get { key: "a/1".into() }], vec![]), 0),
        (
            txn(vec![], vec![Op::Delete { key: "nope".into() }], vec![]),
            0,
        ),
        (Command::Compact { revision: 2 }, 0),
        (put("", "x"), 0),
        (put("b", "x"), 1),
        (put("b", "x"), 1),
        (del("b"), 1),
        (
            Command::DeletePrefix {
                prefix: "a/".into(),
            },
            1,
        ),
        (
            txn(vec![], vec![op_put("c", "1"), op_put("d", "1")], vec![]),
            1,
        ),
    ];
    let mut expected = start;
    for (command, delta) in cases {
        expected += delta;
        let applied = apply(&engine, command.clone());
        assert_eq!(applied.revision, expected, "{command:?}");
        assert_eq!(engine.revision(), expected, "{command:?}");
        // All changes of one request share its revision.
        for event in &applied.events {
            assert_eq!(event.kv.mod_revision, expected, "{command:?}");
        }
    }
}

#[test]
fn responses_carry_previous_values() {
    let (_dir, engine) = open();
    let first = apply(&engine, put("k", "1"));
    assert_eq!(
        first.response,
        Response::Put {
            revision: 2,
            prev: None
        }
    );
    let second = apply(&engine, put("k", "2"));
    assert_eq!(
        second.response,
        Response::Put {
            revision: 3,
            prev: Some(kv("k", "1", 2, 2, 1))
        }
    );
    let deleted = apply(&engine, del("k"));
    assert_eq!(
        deleted.response,
        Response::Delete {
            revision: 4,
            deleted: 1,
            prev: vec![kv("k", "2", 2, 3, 2)]
        }
    );
    let missing = apply(&engine, del("k"));
    assert_eq!(
        missing.response,
        Response::Delete {
            revision: 4,
            deleted: 0,
            prev: vec![]
        }
    );
}

#[test]
fn delete_events_have_the_documented_shape() {
    let (_dir, engine) = open();
    apply(&engine, put("k", "v"));
    let applied = apply(&engine, del("k"));
    assert_eq!(
        applied.events,
        vec![Event {
            kind: EventKind::Delete,
            kv: kv("k", "", 0, 3, 0),
            prev_kv: Some(kv("k", "v", 2, 2, 1)),
        }]
    );
}

#[test]
fn prefix_delete_removes_only_keys_under_the_prefix() {
    let (_dir, engine) = open();
    for key in ["a", "a/1", "a/2", "b"] {
        apply(&engine, put(key, "x"));
    }
    let applied = apply(
        &engine,
        Command::DeletePrefix {
            prefix: "a/".into(),
        },
    );
    let Response::Delete { deleted, prev, .. } = applied.response else {
        panic!("not a delete response: {:?}", applied.response);
    };
    assert_eq!(deleted, 2);
    let keys: Vec<_> = prev.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec![b"a/1".to_vec(), b"a/2".to_vec()]);
    let left: Vec<_> = engine
        .range(b"", 0, None)
        .expect("range")
        .value
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(left, vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn range_limits_and_counts() {
    let (_dir, engine) = open();
    for key in ["p/a", "p/b", "p/c", "q"] {
        apply(&engine, put(key, "x"));
    }
    // (prefix, limit, keys returned, more, count)
    let cases = [
        ("p/", 0, 3, false, 3),
        ("p/", 2, 2, true, 3),
        ("p/", 3, 3, false, 3),
        ("", 1, 1, true, 4),
        ("r", 0, 0, false, 0),
    ];
    for (prefix, limit, returned, more, count) in cases {
        let result = engine.range(prefix.as_bytes(), limit, None).expect("range");
        assert_eq!(result.revision, 5);
        let value = result.value;
        assert_eq!(
            (value.kvs.len(), value.more, value.count),
            (returned, more, count),
            "{prefix:?} limit {limit}"
        );
    }
}

#[test]
fn txn_compares_follow_etcd() {
    let (_dir, engine) = open();
    apply(&engine, put("k", "m")); // rev 2
    apply(&engine, put("k", "m")); // rev 3: version 2, create 2, mod 3
    let cmp = |key: &str, target: Target, op: CompareOp| Compare {
        key: key.into(),
        target,
        op,
    };
    use CompareOp::{Equal, Greater, Less, NotEqual};
    let cases = [
        (cmp("k", Target::Version(2), Equal), true),
        (cmp("k", Target::Version(1), Greater), true),
        (cmp("k", Target::Version(2), Less), false),
        (cmp("k", Target::CreateRevision(2), Equal), true),
        (cmp("k", Target::ModRevision(3), Equal), true),
        (cmp("k", Target::ModRevision(3), NotEqual), false),
        (cmp("k", Target::Value(b"m".to_vec()), Equal), true),
        (cmp("k", Target::Value(b"a".to_vec()), Greater), true),
        (cmp("k", Target::Value(b"z".to_vec()), Less), true),
        // A missing key has version and revisions 0...
        (cmp("none", Target::Version(0), Equal), true),
        (cmp("none", Target::CreateRevision(0), Equal), true),
        (cmp("none", Target::ModRevision(1), Less), true),
        // ...and every value compare on it is false.
        (cmp("none", Target::Value(vec![]), Equal), false),
        (cmp("none", Target::Value(b"x".to_vec()), NotEqual), false),
    ];
    for (compare, expected) in cases {
        let applied = apply(&engine, txn(vec![compare.clone()], vec![], vec![]));
        let Response::Txn { succeeded, .. } = applied.response else {
            panic!("not a txn response: {:?}", applied.response);
        };
        assert_eq!(succeeded, expected, "{compare:?}");
    }
}

#[test]
fn txn_runs_the_chosen_branch_in_one_revision() {
    let (_dir, engine) = open();
    apply(&engine, put("a", "1"));
    let missing = Compare {
        key: "lock".into(),
        target: Target::Version(0),
        op: CompareOp::Equal,
    };
    let command = txn(
        vec![missing],
        vec![op_put("lock", "me"), Op::Delete { key: "a".into() }],
        vec![Op::Get { key: "lock".into() }],
    );
    let first = apply(&engine, command.clone());
    assert_eq!(
        first.response,
        Response::Txn {
            succeeded: true,
            revision: 3,
            responses: vec![
                OpResponse::Put { prev: None },
                OpResponse::Delete {
                    deleted: 1,
                    prev: vec![kv("a", "1", 2, 2, 1)]
                },
            ],
        }
    );
    assert_eq!(first.events.len(), 2);
    let second = apply(&engine, command);
    assert_eq!(
        second.response,
        Response::Txn {
            succeeded: false,
            revision: 3,
            responses: vec![OpResponse::Get {
                kv: Some(kv("lock", "me", 3, 3, 1))
            }],
        }
    );
}

#[test]
fn txn_reads_see_the_state_before_the_txn() {
    let (_dir, engine) = open();
    apply(&engine, put("k", "old"));
    let applied = apply(
        &engine,
        txn(
            vec![],
            vec![
                op_put("k", "new"),
                Op::Get { key: "k".into() },
                Op::Range {
                    prefix: "".into(),
                    limit: 0,
                },
            ],
            vec![],
        ),
    );
    let old = kv("k", "old", 2, 2, 1);
    assert_eq!(
        applied.response,
        Response::Txn {
            succeeded: true,
            revision: 3,
            responses: vec![
                OpResponse::Put {
                    prev: Some(old.clone())
                },
                OpResponse::Get {
                    kv: Some(old.clone())
                },
                OpResponse::Range {
                    kvs: vec![old],
                    more: false
                },
            ],
        }
    );
}

#[test]
fn malformed_txns_are_rejected_without_effect() {
    let (_dir, engine) = open();
    let always = Compare {
        key: "x".into(),
        target: Target::Version(0),
        op: CompareOp::Equal,
    };
    // (txn, rejection)
    let cases = [
        (
            txn(
                vec![always.clone()],
                vec![op_put("k", "1"), Op::Delete { key: "k".into() }],
                vec![],
            ),
            Rejection::DuplicateKey { key: "k".into() },
        ),
        (
            txn(vec![], vec![op_put("k", "1")], vec![op_put("", "1")]),
            Rejection::EmptyKey,
        ),
        (
            txn(vec![], vec![Op::Delete { key: "".into() }], vec![]),
            Rejection::EmptyKey,
        ),
        (put("", "v"), Rejection::EmptyKey),
        (del(""), Rejection::EmptyKey),
    ];
    for (command, rejection) in cases {
        let applied = apply(&engine, command.clone());
        assert_eq!(
            applied.response,
            Response::Rejected(rejection),
            "{command:?}"
        );
        assert!(applied.events.is_empty());
        assert_eq!(engine.revision(), 1);
    }
    // Duplicates only matter in the branch that runs.
    let unchosen_duplicates = txn(
        vec![always],
        vec![op_put("k", "1")],
        vec![op_put("j", "1"), op_put("j", "2")],
    );
    let applied = apply(&engine, unchosen_duplicates);
    assert!(matches!(
        applied.response,
        Response::Txn {
            succeeded: true,
            ..
        }
    ));
}

#[test]
fn historical_reads_return_what_was_read_then() {
    let (_dir, engine) = open();
    apply(&engine, put("k", "1")); // 2
    apply(&engine, put("k2", "a")); // 3
    apply(&engine, put("k", "2")); // 4
    apply(&engine, del("k")); // 5
    apply(&engine, put("k", "3")); // 6
                                   // (revision, value of k, keys under "k")
    let cases = [
        (1, None, 0),
        (2, Some(kv("k", "1", 2, 2, 1)), 1),
        (3, Some(kv("k", "1", 2, 2, 1)), 2),
        (4, Some(kv("k", "2", 2, 4, 2)), 2),
        (5, None, 1),
        (6, Some(kv("k", "3", 6, 6, 1)), 2),
    ];
    for (at, value, count) in cases {
        let read = engine.get(b"k", Some(at)).expect("get");
        assert_eq!((read.value, read.revision), (value, at), "at {at}");
        let range = engine.range(b"k", 0, Some(at)).expect("range");
        assert_eq!(range.value.count, count, "at {at}");
    }
    assert!(matches!(
        engine.get(b"k", Some(7)),
        Err(Error::FutureRevision {
            requested: 7,
            current: 6
        })
    ));
}

#[test]
fn compaction_forgets_history_but_keeps_what_later_reads_need() {
    let (_dir, engine) = open();
    apply(&engine, put("kept", "1")); // 2
    apply(&engine, put("gone", "1")); // 3
    apply(&engine, put("kept", "2")); // 4
    apply(&engine, del("gone")); // 5
    apply(&engine, put("new", "1")); // 6
    let applied = apply(&engine, Command::Compact { revision: 5 });
    assert_eq!(applied.response, Response::Compact { revision: 6 });
    assert!(applied.events.is_empty());
    assert_eq!((engine.revision(), engine.compact_revision()), (6, 5));

    assert!(matches!(
        engine.get(b"kept", Some(4)),
        Err(Error::Compacted {
            requested: 4,
            compacted: 5
        })
    ));
    assert_eq!(
        engine.get(b"kept", Some(5)).expect("get").value,
        Some(kv("kept", "2", 2, 4, 2))
    );
    assert_eq!(engine.get(b"gone", Some(5)).expect("get").value, None);
    assert_eq!(engine.range(b"", 0, Some(5)).expect("range").value.count, 1);
    assert_eq!(engine.range(b"", 0, Some(6)).expect("range").value.count, 2);

    // Only the events after the compact revision remain.
    assert!(matches!(
        engine.events(b"", 4, 0),
        Err(Error::Compacted {
            requested: 4,
            compacted: 5
        })
    ));
    let events = engine.events(b"", 5, 0).expect("events").events;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kv.key, b"new");

    // Out-of-range compactions are rejected, not errors.
    let cases = [
        (
            4,
            Rejection::Compacted {
                compact_revision: 5,
            },
        ),
        (7, Rejection::FutureRevision { current: 6 }),
    ];
    for (revision, rejection) in cases {
        let applied = apply(&engine, Command::Compact { revision });
        assert_eq!(applied.response, Response::Rejected(rejection));
        assert_eq!(engine.compact_revision(), 5);
    }
}

#[test]
fn events_filter_by_prefix_and_never_split_a_revision() {
    let (_dir, engine) = open();
    apply(&engine, put("a/1", "x")); // 2
    apply(
        &engine,
        txn(
            vec![],
            vec![op_put("a/2", "x"), op_put("a/3", "x"), op_put("b", "x")],
            vec![],
        ),
    ); // 3
    apply(&engine, put("a/4", "x")); // 4
    let keys = |events: Vec<Event>| -> Vec<String> {
        events
            .into_iter()
            .map(|event| String::from_utf8_lossy(&event.kv.key).into_owned())
            .collect()
    };
    // (prefix, after, limit, keys, through): a batch cut short by its limit
    // reaches only the last revision it holds whole.
    let cases: [(&str, Revision, usize, &[&str], Revision); 8] = [
        ("", 1, 0, &["a/1", "a/2", "a/3", "b", "a/4"], 4),
        ("a/", 1, 0, &["a/1", "a/2", "a/3", "a/4"], 4),
        ("a/", 1, 1, &["a/1"], 2),
        ("a/", 1, 2, &["a/1"], 2),
        ("a/", 1, 3, &["a/1", "a/2", "a/3"], 3),
        ("a/", 2, 1, &["a/2", "a/3"], 3),
        ("a/", 4, 0, &[], 4),
        ("b", 3, 0, &[], 4),
    ];
    for (prefix, after, limit, expected, through) in cases {
        let got = engine
            .events(prefix.as_bytes(), after, limit)
            .expect("events");
        assert_eq!(
            (keys(got.events), got.through),
            (
                expected.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
                through
            ),
            "{prefix:?} after {after} limit {limit}"
        );
    }
}

#[test]
fn put_events_carry_the_previous_value() {
    let (_dir, engine) = open();
    apply(&engine, put("k", "1")); // 2
    apply(&engine, put("k", "2")); // 3
    let events = engine.events(b"k", 1, 0).expect("events").events;
    assert_eq!(events[0].prev_kv, None, "a create has no previous value");
    assert_eq!(
        events[1].prev_kv.as_ref().map(|kv| kv.value.clone()),
        Some(b"1".to_vec())
    );
}

#[test]
fn request_ids_make_retries_idempotent() {
    let (_dir, engine) = open();
    let request = Request {
        id: Some([7; 16]),
        command: put("k", "v"),
    };
    let first = engine.apply(&request, b"1").expect("apply");
    let retry = engine.apply(&request, b"2").expect("apply");
    assert_eq!(retry.response, first.response);
    assert!(retry.events.is_empty());
    assert_eq!(retry.revision, 2);
    assert_eq!(get(&engine, "k"), Some(kv("k", "v", 2, 2, 1)));
    // The marker still moves.
    assert_eq!(engine.marker().expect("marker"), Some(b"2".to_vec()));
}

#[test]
fn only_requests_that_changed_the_store_are_remembered() {
    let (_dir, engine) = open();
    let cas = |expected: i64| Request {
        id: Some([9; 16]),
        command: txn(
            vec![Compare {
                key: b"k".to_vec(),
                target: Target::Version(expected),
                op: CompareOp::Equal,
            }],
            vec![op_put("k", "new")],
            vec![],
        ),
    };
    // The compare fails: nothing changed, nothing remembered.
    let lost = engine.apply(&cas(1), b"").expect("apply");
    assert!(!cas_won(&lost.response));
    assert_eq!(engine.deduplicated(&[9; 16]).expect("read"), None);
    apply(&engine, put("k", "old"));
    // The same id retried now that the compare holds: it applies...
    let won = engine.apply(&cas(1), b"").expect("apply");
    assert!(cas_won(&won.response));
    assert_eq!(get(&engine, "k").map(|kv| kv.value), Some(b"new".to_vec()));
    // ...and from then on answers with that outcome.
    assert_eq!(
        engine.deduplicated(&[9; 16]).expect("read"),
        Some(won.response.clone())
    );
    let again = engine.apply(&cas(1), b"").expect("apply");
    assert_eq!(again.response, won.response);
    assert!(again.events.is_empty());
}

fn cas_won(response: &Response) -> bool {
    matches!(
        response,
        Response::Txn {
            succeeded: true,
            ..
        }
    )
}

#[test]
fn dedupe_table_evicts_the_oldest_id() {
    let (_dir, engine) = open_engine(2);
    let request = |id: u8| Request {
        id: Some([id; 16]),
        command: put("k", "v"),
    };
    for id in 1..=3 {
        engine.apply(&request(id), b"").expect("apply");
    }
    assert_eq!(engine.revision(), 4);
    // Ids 2 and 3 are remembered, 1 was evicted and applies again.
    for (id, revision) in [(3, 4), (2, 4), (1, 5)] {
        let applied = engine.apply(&request(id), b"").expect("apply");
        assert_eq!(applied.revision, revision, "id {id}");
    }
}

#[test]
fn markers_are_stored_with_every_write() {
    let (_dir, engine) = open();
    engine.set_marker(b"first").expect("set marker");
    assert_eq!(engine.marker().expect("marker"), Some(b"first".to_vec()));
    apply(&engine, put("k", "v"));
    assert_eq!(engine.marker().expect("marker"), Some(b"m".to_vec()));
    // Even a rejected command moves the marker.
    engine
        .apply(
            &Request {
                id: None,
                command: put("", "v"),
            },
            b"rejected",
        )
        .expect("apply");
    assert_eq!(engine.marker().expect("marker"), Some(b"rejected".to_vec()));
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let export = {
        let engine = Engine::open(dir.path(), &["raft_log"]).expect("open");
        let log = engine.db().cf_handle("raft_log").expect("extra cf");
        engine.db().put_cf(log, b"entry", b"1").expect("put");
        apply(&engine, put("k", "1"));
        apply(&engine, put("k", "2"));
        apply(&engine, put("j", "1"));
        apply(&engine, Command::Compact { revision: 3 });
        engine.set_marker(b"applied 9").expect("marker");
        engine.export().expect("export")
    };
    // Opening without naming the extra column family still works.
    let engine = Engine::open(dir.path(), &[]).expect("reopen");
    assert_eq!((engine.revision(), engine.compact_revision()), (4, 3));
    assert_eq!(
        engine.marker().expect("marker"),
        Some(b"applied 9".to_vec())
    );
    assert_eq!(get(&engine, "k"), Some(kv("k", "2", 2, 3, 2)));
    assert_eq!(
        engine.get(b"j", Some(3)).expect("get").value,
        None,
        "history survives"
    );
    assert_eq!(engine.export().expect("export"), export);
    let log = engine.db().cf_handle("raft_log").expect("extra cf kept");
    assert_eq!(
        engine.db().get_cf(log, b"entry").expect("get"),
        Some(b"1".to_vec())
    );
}

#[test]
fn reserved_column_family_names_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in Engine::COLUMN_FAMILIES {
        assert!(matches!(
            Engine::open(dir.path(), &[name]),
            Err(Error::Config(_))
        ));
    }
}

#[test]
fn import_replaces_all_engine_state() {
    let (_a, source) = open();
    apply(&source, put("a", "1"));
    apply(&source, put("b", "1"));
    let export = source.export().expect("export");

    let (_b, target) = open();
    for key in ["b", "c", "d"] {
        apply(&target, put(key, "other"));
    }
    apply(&target, put("d", "again"));
    let log = target.db().cf_handle("default").expect("default cf");
    target.db().put_cf(log, b"raft", b"keep").expect("put");
    target.import(&export, b"snapshot").expect("import");

    assert_eq!(target.revision(), 3);
    assert_eq!(target.marker().expect("marker"), Some(b"snapshot".to_vec()));
    assert_eq!(
        target.range(b"", 0, None).expect("range").value,
        source.range(b"", 0, None).expect("range").value
    );
    assert_eq!(target.events(b"", 0, 0).expect("events").events.len(), 2);
    assert_eq!(
        target.db().get_cf(log, b"raft").expect("get"),
        Some(b"keep".to_vec()),
        "the caller's column families are untouched"
    );
    // Writes continue from the imported revision.
    assert_eq!(apply(&target, put("c", "1")).revision, 4);
    assert!(matches!(
        target.import(b"garbage", b""),
        Err(Error::Decode(_) | Error::Corrupt(_))
    ));
}

#[test]
fn concurrent_reads_see_consistent_revisions() {
    let (_dir, engine) = open();
    let engine = Arc::new(engine);
    let reader = {
        let engine = Arc::clone(&engine);
        std::thread::spawn(move || {
            for _ in 0..500 {
                let read = engine.get(b"k", None).expect("get");
                if let Some(kv) = read.value {
                    // "k" is written at every revision, so its mod revision is the read's.
                    assert_eq!(kv.mod_revision, read.revision);
                }
            }
        })
    };
    for i in 0..200 {
        apply(&engine, put("k", &i.to_string()));
    }
    reader.join().expect("reader");
}
