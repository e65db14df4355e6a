//! The history: every invocation and completion the clients saw, in order.
//!
//! Events follow Jepsen's meaning. A process invokes one operation at a time
//! and completes it with exactly one of:
//! - `ok`: it happened, with this output;
//! - `fail`: it certainly did not happen;
//! - `info`: the client cannot know (a timeout, a connection lost after the
//!   request was sent). The process never invokes again: its client carries
//!   on under a fresh process id, so every process has at most one open
//!   operation and an indeterminate one stays open for ever.
//!
//! Times are nanoseconds since the start of the test on one monotonic clock.
//! [`Recorder`] hands out indices under a lock, so the index order is the
//! order in which events were recorded and times never decrease along it.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What a history event says about its operation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The operation starts.
    Invoke,
    /// It happened.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// It may or may not have happened.
    Info,
}

/// The operation's function.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Function {
    /// Read a register.
    Read,
    /// Write a register.
    Write,
    /// Compare-and-set a register: value `[from, to]`.
    Cas,
    /// Add an element to the set.
    Add,
    /// Read the whole set.
    ReadAll,
}

/// An operation's value: what is written, or what was read.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum Value {
    /// A register value or a set element.
    Int(i64),
    /// A compare-and-set's `[from, to]`.
    Pair([i64; 2]),
    /// A set read.
    Many(Vec<i64>),
}

/// One line of `history.jsonl`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Position in the history.
    pub index: usize,
    /// Nanoseconds since the test started.
    pub time: u64,
    /// The logical process.
    pub process: u64,
    /// Invoke, ok, fail or info.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The function.
    pub f: Function,
    /// The key (register workload).
    pub key: Option<String>,
    /// The value (None: nothing, or a read of an absent key).
    pub value: Option<Value>,
    /// The member that served the request, or the one it was sent to.
    pub node: Option<String>,
    /// Why it failed or is indeterminate.
    pub error: Option<String>,
}

/// A handle on an invocation, to complete it.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The invocation's index.
    pub index: usize,
    /// Its process.
    pub process: u64,
    /// Its function.
    pub f: Function,
    /// Its key.
    pub key: Option<String>,
    /// Its time.
    pub time: u64,
}

/// Collects events from many tasks. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    /// A recorder whose clock starts at `start`.
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            events: Arc::default(),
        }
    }

    /// Nanoseconds since the start.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn push(&self, make: impl FnOnce(usize, u64) -> Event) -> Event {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        // The clock is read under the lock, so times follow indices.
        let event = make(events.len(), self.now());
        events.push(event.clone());
        event
    }

    /// Records an invocation.
    pub fn invoke(
        &self,
        process: u64,
        f: Function,
        key: Option<String>,
        value: Option<Value>,
        node: Option<String>,
    ) -> Invocation {
        let event = self.push(|index, time| Event {
            index,
            time,
            process,
            kind: Kind::Invoke,
            f,
            key,
            value,
            node,
            error: None,
        });
        Invocation {
            index: event.index,
            process,
            f,
            key: event.key,
            time: event.time,
        }
    }

    /// Records the completion of `invocation`.
    pub fn complete(
        &self,
        invocation: &Invocation,
        kind: Kind,
        value: Option<Value>,
        node: Option<String>,
        error: Option<String>,
    ) -> Event {
        self.push(|index, time| Event {
            index,
            time,
            process: invocation.process,
            kind,
            f: invocation.f,
            key: invocation.key.clone(),
            value,
            node,
            error,
        })
    }

    /// A copy of the events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Counts of completions by kind.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Invocations.
    pub invoked: usize,
    /// Completed ok.
    pub ok: usize,
    /// Failed.
    pub fail: usize,
    /// Indeterminate (including invocations never completed).
    pub info: usize,
}

/// Counts the completions in `events`.
pub fn counts(events: &[Event]) -> Counts {
    let mut c = Counts::default();
    for e in events {
        match e.kind {
            Kind::Invoke => c.invoked += 1,
            Kind::Ok => c.ok += 1,
            Kind::Fail => c.fail += 1,
            Kind::Info => c.info += 1,
        }
    }
    c.info += c.invoked.saturating_sub(c.ok + c.fail + c.info);
    c
}

/// Writes `events` as JSON lines.
///
/// # Errors
/// When the file cannot be written.
pub fn write_jsonl(path: &Path, events: &[Event]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for event in events {
        serde_json::to_writer(&mut out, event)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_jepsen_lines() {
        let recorder = Recorder::new(Instant::now());
        let invocation = recorder.invoke(
            3,
            Function::Cas,
            Some("k1".into()),
            Some(Value::Pair([1, 2])),
            Some("n2".into()),
        );
        let done = recorder.complete(&invocation, Kind::Info, None, None, Some("timeout".into()));
        let line: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&done).expect("serialize")).expect("parse");
        assert_eq!(line["type"], "info");
        assert_eq!(line["f"], "cas");
        assert_eq!(line["process"], 3);
        assert_eq!(line["index"], 1);
        assert_eq!(line["error"], "timeout");
        let events = recorder.events();
        assert!(events[0].time <= events[1].time);
        let back: Event =
            serde_json::from_str(&serde_json::to_string(&events[0]).expect("serialize"))
                .expect("parse");
        assert_eq!(back, events[0]);
    }

    #[test]
    fn unfinished_invocations_count_as_info() {
        let recorder = Recorder::new(Instant::now());
        let a = recorder.invoke(1, Function::Read, Some("k".into()), None, None);
        recorder.complete(&a, Kind::Ok, Some(Value::Int(1)), None, None);
        recorder.invoke(
            2,
            Function::Write,
            Some("k".into()),
            Some(Value::Int(2)),
            None,
        );
        let c = counts(&recorder.events());
        assert_eq!(
            c,
            Counts {
                invoked: 2,
                ok: 1,
                fail: 0,
                info: 1
            }
        );
    }
}
