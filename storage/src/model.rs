//! Model-based tests: random command sequences applied both to the [`Engine`]
//! and to a deliberately naive in-memory model that keeps a full copy of the
//! store after every revision. Responses, events, reads at the latest and at
//! every retained historical revision, and the watch history must agree.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;
use tempfile::TempDir;

use crate::{
    Applied, Command, Compare, CompareOp, Engine, Error, Event, EventKind, Events, KeyValue, Op,
    OpResponse, RangeResult, Rejection, Request, Response, Revision, Target, Txn,
};

type Map = BTreeMap<Vec<u8>, KeyValue>;

/// A read error, reduced to what the model can predict.
#[derive(Debug, PartialEq, Eq)]
enum ReadErr {
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    Future {
        requested: Revision,
        current: Revision,
    },
}

fn read_err(error: Error) -> ReadErr {
    match error {
        Error::Compacted {
            requested,
            compacted,
        } => ReadErr::Compacted {
            requested,
            compacted,
        },
        Error::FutureRevision { requested, current } => ReadErr::Future { requested, current },
        other => panic!("unexpected engine error: {other}"),
    }
}

/// The reference implementation: obviously correct, hopelessly inefficient.
struct Model {
    /// `states[r - 1]` is the store at revision `r`.
    states: Vec<Map>,
    compact: Revision,
    /// Every event ever, with its revision; compaction forgets a prefix.
    events: Vec<(Revision, Event)>,
    dedupe: BTreeMap<[u8; 16], Response>,
    dedupe_order: VecDeque<[u8; 16]>,
    dedupe_capacity: usize,
}

impl Model {
    fn new(dedupe_capacity: usize) -> Self {
        Model {
            states: vec![Map::new()],
            compact: 0,
            events: Vec::new(),
            dedupe: BTreeMap::new(),
            dedupe_order: VecDeque::new(),
            dedupe_capacity,
        }
    }

    fn revision(&self) -> Revision {
        self.states.len() as Revision
    }

    fn latest(&self) -> &Map {
        self.states.last().expect("always one state")
    }

    fn check_at(&self, at: Option<Revision>) -> Result<Revision, ReadErr> {
        match at {
            None => Ok(self.revision()),
            Some(r) if r < self.compact => Err(ReadErr::Compacted {
                requested: r,
                compacted: self.compact,
            }),
            Some(r) if r > self.revision() => Err(ReadErr::Future {
                requested: r,
                current: self.revision(),
            }),
            Some(r) => Ok(r),
        }
    }

    fn state_at(&self, r: Revision) -> &Map {
        &self.states[(r - 1).max(0) as usize]
    }

    fn get(&self, key: &[u8], at: Option<Revision>) -> Result<Option<KeyValue>, ReadErr> {
        let r = self.check_at(at)?;
        if r < 1 {
            return Ok(None);
        }
        Ok(self.state_at(r).get(key).cloned())
    }

    fn range(
        &self,
        prefix: &[u8],
        limit: usize,
        at: Option<Revision>,
    ) -> Result<RangeResult, ReadErr> {
        let r = self.check_at(at)?;
        let empty = Map::new();
        let state = if r < 1 { &empty } else { self.state_at(r) };
        Ok(range_of(state, prefix, limit))
    }

    fn events(&self, prefix: &[u8], after: Revision, limit: usize) -> Result<Events, ReadErr> {
        if after < self.compact {
            return Err(ReadErr::Compacted {
                requested: after,
                compacted: self.compact,
            });
        }
        let mut by_rev: BTreeMap<Revision, Vec<Event>> = BTreeMap::new();
        for (rev, event) in &self.events {
            if *rev > after && event.kv.key.starts_with(prefix) {
                by_rev.entry(*rev).or_default().push(event.clone());
            }
        }
        let mut out = Events {
            events: Vec::new(),
            through: self.revision().max(after),
        };
        for (rev, batch) in by_rev {
            if limit > 0 && !out.events.is_empty() && out.events.len() + batch.len() > limit {
                out.through = rev - 1;
                break;
            }
            out.events.extend(batch);
            if limit > 0 && out.events.len() >= limit {
                out.through = rev;
                break;
            }
        }
        Ok(out)
    }

    fn apply(&mut self, request: &Request) -> Applied {
        if let Some(id) = request.id {
            if let Some(response) = self.dedupe.get(&id) {
                return Applied {
                    response: response.clone(),
                    events: Vec::new(),
                    revision: self.revision(),
                };
            }
        }
        let before = self.latest().clone();
        let rev = self.revision() + 1;
        let mut after = before.clone();
        let mut events = Vec::new();
        let response = self.command(&request.command, &before, &mut after, rev, &mut events);
        if !events.is_empty() {
            self.states.push(after);
            self.events
                .extend(events.iter().map(|event| (rev, event.clone())));
        }
        let changed = !events.is_empty() || matches!(response, Response::Compact { .. });
        if let (Some(id), true) = (request.id, changed) {
            self.dedupe.insert(id, response.clone());
            self.dedupe_order.push_back(id);
            if self.dedupe_order.len() > self.dedupe_capacity {
                let old = self.dedupe_order.pop_front().expect("non-empty");
                self.dedupe.remove(&old);
            }
        }
        Applied {
            response,
            events,
            revision: self.revision(),
        }
    }

    fn command(
        &mut self,
        command: &Command,
        before: &Map,
        after: &mut Map,
        rev: Revision,
        events: &mut Vec<Event>,
    ) -> Response {
        let current = rev - 1;
        let header = |events: &Vec<Event>| if events.is_empty() { current } else { rev };
        match command {
            Command::Put { key, value } => {
                if key.is_empty() {
                    return Response::Rejected(Rejection::EmptyKey);
                }
                let prev = model_put(before, after, key, value, rev, events);
                Response::Put {
                    revision: header(events),
                    prev,
                }
            }
            Command::Delete { key } => {
                if key.is_empty() {
                    return Response::Rejected(Rejection::EmptyKey);
                }
                let prev: Vec<KeyValue> = model_delete(before, after, key, rev, events)
                    .into_iter()
                    .collect();
                Response::Delete {
                    revision: header(events),
                    deleted: prev.len() as u64,
                    prev,
                }
            }
            Command::DeletePrefix { prefix } => {
                let keys: Vec<Vec<u8>> = before
                    .keys()
                    .filter(|key| key.starts_with(prefix))
                    .cloned()
                    .collect();
                let prev: Vec<KeyValue> = keys
                    .iter()
                    .filter_map(|key| model_delete(before, after, key, rev, events))
                    .collect();
                Response::Delete {
                    revision: header(events),
                    deleted: prev.len() as u64,
                    prev,
                }
            }
            Command::Txn(txn) => {
                let is_write = |op: &Op| matches!(op, Op::Put { .. } | Op::Delete { .. });
                let op_key = |op: &Op| match op {
                    Op::Put { key, .. } | Op::Delete { key } | Op::Get { key } => key.clone(),
                    Op::Range { prefix, .. } => prefix.clone(),
                };
                if txn
                    .success
                    .iter()
                    .chain(&txn.failure)
                    .any(|op| is_write(op) && op_key(op).is_empty())
                {
                    return Response::Rejected(Rejection::EmptyKey);
                }
                let succeeded = txn.compare.iter().all(|c| model_compare(before, c));
                let ops = if succeeded {
                    &txn.success
                } else {
                    &txn.failure
                };
                let mut seen = BTreeSet::new();
                for op in ops.iter().filter(|op| is_write(op)) {
                    if !seen.insert(op_key(op)) {
                        return Response::Rejected(Rejection::DuplicateKey { key: op_key(op) });
                    }
                }
                let responses = ops
                    .iter()
                    .map(|op| match op {
                        Op::Put { key, value } => OpResponse::Put {
                            prev: model_put(before, after, key, value, rev, events),
                        },
                        Op::Delete { key } => {
                            let prev: Vec<KeyValue> = model_delete(before, after, key, rev, events)
                                .into_iter()
                                .collect();
                            OpResponse::Delete {
                                deleted: prev.len() as u64,
                                prev,
                            }
                        }
                        Op::Get { key } => OpResponse::Get {
                            kv: before.get(key).cloned(),
                        },
                        Op::Range { prefix, limit } => {
                            let range = range_of(before, prefix, *limit);
                            OpResponse::Range {
                                kvs: range.kvs,
                                more: range.more,
                            }
                        }
                    })
                    .collect();
                Response::Txn {
                    succeeded,
                    revision: header(events),
                    responses,
                }
            }
            Command::Compact { revision } => {
                if *revision > current {
                    return Response::Rejected(Rejection::FutureRevision { current });
                }
                if *revision < self.compact {
                    return Response::Rejected(Rejection::Compacted {
                        compact_revision: self.compact,
                    });
                }
                self.compact = *revision;
                self.events.retain(|(rev, _)| *rev > *revision);
                Response::Compact { revision: current }
            }
        }
    }
}

fn range_of(state: &Map, prefix: &[u8], limit: usize) -> RangeResult {
    let all: Vec<KeyValue> = state
        .iter()
        .filter(|(key, _)| key.starts_with(prefix))
        .map(|(_, kv)| kv.clone())
        .collect();
    let count = all.len() as u64;
    let kvs: Vec<KeyValue> = if limit == 0 {
        all
    } else {
        all.into_iter().take(limit).collect()
    };
    RangeResult {
        more: (kvs.len() as u64) < count,
        kvs,
        count,
    }
}

fn model_put(
    before: &Map,
    after: &mut Map,
    key: &[u8],
    value: &[u8],
    rev: Revision,
    events: &mut Vec<Event>,
) -> Option<KeyValue> {
    let prev = before.get(key).cloned();
    let kv = KeyValue {
        key: key.to_vec(),
        value: value.to_vec(),
        create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
        mod_revision: rev,
        version: prev.as_ref().map_or(0, |p| p.version) + 1,
    };
    after.insert(key.to_vec(), kv.clone());
    events.push(Event {
        kind: EventKind::Put,
        kv,
        prev_kv: prev.clone(),
    });
    prev
}

fn model_delete(
    before: &Map,
    after: &mut Map,
    key: &[u8],
    rev: Revision,
    events: &mut Vec<Event>,
) -> Option<KeyValue> {
    let prev = before.get(key).cloned()?;
    after.remove(key);
    events.push(Event {
        kind: EventKind::Delete,
        kv: KeyValue {
            key: key.to_vec(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: rev,
            version: 0,
        },
        prev_kv: Some(prev.clone()),
    });
    Some(prev)
}

fn model_compare(state: &Map, compare: &Compare) -> bool {
    let kv = state.get(&compare.key);
    let ordering = match (&compare.target, kv) {
        (Target::Value(_), None) => return false,
        (Target::Value(v), Some(kv)) => kv.value.cmp(v),
        (Target::Version(v), _) => kv.map_or(0, |kv| kv.version).cmp(v),
        (Target::CreateRevision(v), _) => kv.map_or(0, |kv| kv.create_revision).cmp(v),
        (Target::ModRevision(v), _) => kv.map_or(0, |kv| kv.mod_revision).cmp(v),
    };
    match compare.op {
        CompareOp::Equal => ordering == std::cmp::Ordering::Equal,
        CompareOp::NotEqual => ordering != std::cmp::Ordering::Equal,
        CompareOp::Greater => ordering == std::cmp::Ordering::Greater,
        CompareOp::Less => ordering == std::cmp::Ordering::Less,
    }
}

// ---- generators ----

const KEYS: &[&[u8]] = &[b"a", b"ab", b"a\0", b"b", b"ba", b"\0"];
const PREFIXES: &[&[u8]] = &[b"", b"a", b"a\0", b"ab", b"b", b"\0", b"c"];
const VALUES: &[&[u8]] = &[b"", b"x", b"y"];

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        20 => prop::sample::select(KEYS).prop_map(<[u8]>::to_vec),
        1 => Just(Vec::new()),
    ]
}

fn prefix() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(PREFIXES).prop_map(<[u8]>::to_vec)
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(VALUES).prop_map(<[u8]>::to_vec)
}

fn compare() -> impl Strategy<Value = Compare> {
    let target = prop_oneof![
        (0i64..4).prop_map(Target::Version),
        (0i64..8).prop_map(Target::CreateRevision),
        (0i64..8).prop_map(Target::ModRevision),
        value().prop_map(Target::Value),
    ];
    let op = prop::sample::select(
        &[
            CompareOp::Equal,
            CompareOp::NotEqual,
            CompareOp::Greater,
            CompareOp::Less,
        ][..],
    );
    (key(), target, op).prop_map(|(key, target, op)| Compare { key, target, op })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (key(), value()).prop_map(|(key, value)| Op::Put { key, value }),
        2 => key().prop_map(|key| Op::Delete { key }),
        1 => key().prop_map(|key| Op::Get { key }),
        1 => (prefix(), 0usize..3).prop_map(|(prefix, limit)| Op::Range { prefix, limit }),
    ]
}

/// A command, with compactions relative to the revision at the time they run.
#[derive(Clone, Debug)]
enum Step {
    Command(Command),
    /// Compact at `current revision - back`.
    Compact {
        back: i64,
    },
}

fn step() -> impl Strategy<Value = (Option<u8>, Step)> {
    let command = prop_oneof![
        4 => (key(), value()).prop_map(|(key, value)| Step::Command(Command::Put { key, value })),
        2 => key().prop_map(|key| Step::Command(Command::Delete { key })),
        1 => prefix().prop_map(|prefix| Step::Command(Command::DeletePrefix { prefix })),
        3 => (
            prop::collection::vec(compare(), 0..3),
            prop::collection::vec(op(), 0..4),
            prop::collection::vec(op(), 0..3),
        )
            .prop_map(|(compare, success, failure)| Step::Command(Command::Txn(Txn {
                compare,
                success,
                failure,
            }))),
        1 => (-1i64..5).prop_map(|back| Step::Compact { back }),
    ];
    let id = prop_oneof![3 => Just(None), 1 => (0u8..6).prop_map(Some)];
    (id, command)
}

fn request(model: &Model, id: Option<u8>, step: &Step) -> Request {
    Request {
        id: id.map(|n| [n; 16]),
        command: match step {
            Step::Command(command) => command.clone(),
            Step::Compact { back } => Command::Compact {
                revision: model.revision() - back,
            },
        },
    }
}

// ---- checks ----

pub(crate) fn open_engine(dedupe_capacity: u64) -> (TempDir, Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = Engine::open(dir.path(), &[]).expect("open");
    engine.dedupe_capacity = dedupe_capacity;
    (dir, engine)
}

/// Reads at the latest revision.
fn check_latest(engine: &Engine, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(engine.revision(), model.revision());
    prop_assert_eq!(engine.compact_revision(), model.compact);
    for key in KEYS {
        let read = engine.get(key, None).expect("get");
        prop_assert_eq!(read.revision, model.revision());
        prop_assert_eq!(Ok(read.value), model.get(key, None));
    }
    for prefix in PREFIXES {
        for limit in [0, 1] {
            let read = engine.range(prefix, limit, None).expect("range");
            prop_assert_eq!(Ok(read.value), model.range(prefix, limit, None));
        }
    }
    Ok(())
}

/// Reads at every revision from below the compact revision to beyond the
/// current one, and the watch history from every retained revision.
fn check_history(engine: &Engine, model: &Model) -> Result<(), TestCaseError> {
    for at in (model.compact - 1)..=(model.revision() + 1) {
        for key in KEYS {
            let got = engine.get(key, Some(at)).map_err(read_err);
            if let Ok(read) = &got {
                prop_assert_eq!(read.revision, at);
            }
            prop_assert_eq!(got.map(|read| read.value), model.get(key, Some(at)));
        }
        for prefix in PREFIXES {
            for limit in [0, 2] {
                let got = engine.range(prefix, limit, Some(at)).map_err(read_err);
                prop_assert_eq!(
                    got.map(|read| read.value),
                    model.range(prefix, limit, Some(at)),
                    "prefix {:?} limit {} at {}",
                    prefix,
                    limit,
                    at
                );
            }
        }
    }
    for after in (model.compact - 1)..=(model.revision() + 1) {
        for prefix in [&b""[..], b"a", b"b\0", b"\0"] {
            for limit in [0, 1, 3] {
                let got = engine.events(prefix, after, limit).map_err(read_err);
                prop_assert_eq!(
                    got,
                    model.events(prefix, after, limit),
                    "prefix {:?} after {} limit {}",
                    prefix,
                    after,
                    limit
                );
            }
        }
    }
    Ok(())
}

const DEDUPE: usize = 3;

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model(steps in prop::collection::vec(step(), 1..40)) {
        let (_dir, engine) = open_engine(DEDUPE as u64);
        let mut model = Model::new(DEDUPE);
        let mut marker = Vec::new();
        for (i, (id, step)) in steps.iter().enumerate() {
            let request = request(&model, *id, step);
            marker = format!("entry {i}").into_bytes();
            let applied = engine.apply(&request, &marker).expect("apply");
            let expected = model.apply(&request);
            prop_assert_eq!(&applied, &expected, "request {:?}", request);
            check_latest(&engine, &model)?;
            if matches!(request.command, Command::Compact { .. }) {
                check_history(&engine, &model)?;
            }
        }
        check_history(&engine, &model)?;
        prop_assert_eq!(engine.marker().expect("marker"), Some(marker.clone()));

        // A fresh engine importing the export reads the same and exports the same.
        let export = engine.export().expect("export");
        let (_dir2, imported) = open_engine(DEDUPE as u64);
        imported.import(&export, &marker).expect("import");
        check_latest(&imported, &model)?;
        check_history(&imported, &model)?;
        prop_assert_eq!(imported.export().expect("export"), export);
    }

    #[test]
    fn same_requests_give_identical_exports(steps in prop::collection::vec(step(), 1..30)) {
        let (_a, first) = open_engine(DEDUPE as u64);
        let (_b, second) = open_engine(DEDUPE as u64);
        let mut model = Model::new(DEDUPE);
        for (i, (id, step)) in steps.iter().enumerate() {
            let request = request(&model, *id, step);
            model.apply(&request);
            let marker = i.to_be_bytes();
            let one = first.apply(&request, &marker).expect("apply");
            let two = second.apply(&request, &marker).expect("apply");
            prop_assert_eq!(one, two);
        }
        prop_assert_eq!(first.export().expect("export"), second.export().expect("export"));
    }
}
