//! The watch checker: every acknowledged write is seen by every watcher
//! exactly once, in revision order, and the watchers agree.
//!
//! From the history it takes the adds (each a put of its own key under
//! [`crate::watch::WATCH_PREFIX`]); from the watch [`Log`] what each watcher
//! received and the compaction gaps it was told of. Valid when, for every
//! watcher:
//! - revisions only increase (no event twice, none out of order);
//! - every key it saw was written by some add (acknowledged or not): no
//!   phantom events;
//! - it saw every acknowledged add, unless the add's revision (as another
//!   watcher saw it) lies in a gap compaction took from this watcher;
//! - it caught up with the last write before the end;
//!
//! and the watchers agree: a key was seen at the same revision by all. An
//! acknowledged add that no watcher saw at all is lost.

use crate::history::Event;
use crate::watch::{Log, WATCH_PREFIX};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What the watch checker found.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct WatchReport {
    /// Valid as described in the module doc.
    pub valid: bool,
    /// Watchers.
    pub watchers: usize,
    /// Adds acknowledged.
    pub acknowledged: usize,
    /// Events received, all watchers together.
    pub events: usize,
    /// Compaction gaps reported to watchers.
    pub gaps: usize,
    /// Reconnections of watchers.
    pub reconnects: usize,
    /// Compactions made during the run.
    pub compactions: usize,
    /// Acknowledged adds some watcher missed outside any gap: (watcher, element).
    pub missed: Vec<(usize, i64)>,
    /// Acknowledged adds no watcher saw.
    pub lost: Vec<i64>,
    /// Events a watcher received twice or out of revision order: (watcher, revision).
    pub out_of_order: Vec<(usize, i64)>,
    /// Keys seen that no add wrote.
    pub phantoms: Vec<String>,
    /// Keys watchers saw at different revisions.
    pub disagreements: Vec<String>,
    /// Watchers that had not caught up with the last write at the end.
    pub behind: Vec<usize>,
}

/// The element a watch key stands for.
fn element(key: &str) -> Option<i64> {
    key.strip_prefix(WATCH_PREFIX)?.parse().ok()
}

/// Checks the adds of `events` against what `watchers` watchers logged;
/// `caught_up` lists whether each watcher reached the last write.
pub fn check(events: &[Event], log: &Log, caught_up: &[bool]) -> WatchReport {
    let (attempted, acknowledged) = super::set::adds(events);
    let watchers = caught_up.len();
    let mut report = WatchReport {
        watchers,
        acknowledged: acknowledged.len(),
        events: log.seen.len(),
        gaps: log.gaps.len(),
        reconnects: log.reconnects,
        compactions: log.compactions,
        ..WatchReport::default()
    };
    // Per watcher: elements seen, and the revision order.
    let mut seen_by: Vec<BTreeMap<i64, i64>> = vec![BTreeMap::new(); watchers];
    let mut last: Vec<i64> = vec![i64::MIN; watchers];
    let mut revision_of: HashMap<i64, i64> = HashMap::new();
    let mut phantoms = BTreeSet::new();
    let mut disagreements = BTreeSet::new();
    for seen in &log.seen {
        let w = seen.watcher;
        if w >= watchers {
            continue;
        }
        if seen.revision <= last[w] {
            report.out_of_order.push((w, seen.revision));
        }
        last[w] = last[w].max(seen.revision);
        let Some(x) = element(&seen.key).filter(|x| attempted.contains(x)) else {
            phantoms.insert(seen.key.clone());
            continue;
        };
        if seen_by[w].insert(x, seen.revision).is_some() {
            report.out_of_order.push((w, seen.revision));
        }
        match revision_of.get(&x) {
            Some(r) if *r != seen.revision => {
                disagreements.insert(seen.key.clone());
            }
            Some(_) => {}
            None => {
                revision_of.insert(x, seen.revision);
            }
        }
    }
    let in_gap = |w: usize, revision: i64| {
        log.gaps
            .iter()
            .any(|g| g.watcher == w && g.after < revision && revision <= g.compacted)
    };
    for x in &acknowledged {
        let Some(revision) = revision_of.get(x) else {
            // Seen by nobody: lost, unless every watcher lost it to a gap
            // (then no one can tell; it counts as lost all the same).
            report.lost.push(*x);
            continue;
        };
        for (w, seen) in seen_by.iter().enumerate() {
            if !seen.contains_key(x) && !in_gap(w, *revision) {
                report.missed.push((w, *x));
            }
        }
    }
    report.phantoms = phantoms.into_iter().collect();
    report.disagreements = disagreements.into_iter().collect();
    report.behind = caught_up
        .iter()
        .enumerate()
        .filter(|(_, ok)| !**ok)
        .map(|(w, _)| w)
        .collect();
    report.valid = report.missed.is_empty()
        && report.lost.is_empty()
        && report.out_of_order.is_empty()
        && report.phantoms.is_empty()
        && report.disagreements.is_empty()
        && report.behind.is_empty();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Function, Kind, Value};
    use crate::watch::{Gap, Seen};

    fn add(index: usize, process: u64, kind: Kind, x: i64) -> Event {
        Event {
            index,
            time: index as u64,
            process,
            kind,
            f: Function::Add,
            key: None,
            value: Some(Value::Int(x)),
            node: None,
            error: None,
        }
    }

    fn seen(watcher: usize, revision: i64, x: i64) -> Seen {
        Seen {
            watcher,
            revision,
            key: format!("{WATCH_PREFIX}{x:012}"),
            kind: "PUT".into(),
            member: "n1".into(),
        }
    }

    fn history() -> Vec<Event> {
        vec![
            add(0, 1, Kind::Invoke, 1),
            add(1, 1, Kind::Ok, 1),
            add(2, 2, Kind::Invoke, 2),
            add(3, 2, Kind::Ok, 2),
            add(4, 3, Kind::Invoke, 3),
            add(5, 3, Kind::Info, 3),
        ]
    }

    #[test]
    fn complete_ordered_agreeing_watchers_are_valid() {
        let log = Log {
            seen: vec![seen(0, 5, 1), seen(0, 6, 2), seen(1, 5, 1), seen(1, 6, 2)],
            ..Log::default()
        };
        let report = check(&history(), &log, &[true, true]);
        assert!(report.valid, "{report:?}");
    }

    #[test]
    fn a_missed_event_is_invalid_unless_compaction_took_it() {
        let log = Log {
            seen: vec![seen(0, 5, 1), seen(0, 6, 2), seen(1, 6, 2)],
            ..Log::default()
        };
        let report = check(&history(), &log, &[true, true]);
        assert_eq!(report.missed, vec![(1, 1)]);
        assert!(!report.valid);
        let excused = Log {
            gaps: vec![Gap {
                watcher: 1,
                after: 2,
                compacted: 5,
            }],
            ..log
        };
        assert!(check(&history(), &excused, &[true, true]).valid);
    }

    #[test]
    fn duplicates_disorder_phantoms_and_disagreement_are_invalid() {
        let duplicate = Log {
            seen: vec![seen(0, 5, 1), seen(0, 6, 2), seen(0, 6, 2)],
            ..Log::default()
        };
        assert!(!check(&history(), &duplicate, &[true])
            .out_of_order
            .is_empty());
        let phantom = Log {
            seen: vec![seen(0, 5, 1), seen(0, 6, 2), seen(0, 7, 99)],
            ..Log::default()
        };
        assert_eq!(check(&history(), &phantom, &[true]).phantoms.len(), 1);
        let disagree = Log {
            seen: vec![seen(0, 5, 1), seen(0, 6, 2), seen(1, 5, 1), seen(1, 7, 2)],
            ..Log::default()
        };
        assert_eq!(
            check(&history(), &disagree, &[true, true])
                .disagreements
                .len(),
            1
        );
        let lost = Log {
            seen: vec![seen(0, 5, 1)],
            ..Log::default()
        };
        assert_eq!(check(&history(), &lost, &[true]).lost, vec![2]);
        let behind = Log {
            seen: vec![seen(0, 5, 1), seen(0, 6, 2)],
            ..Log::default()
        };
        assert_eq!(check(&history(), &behind, &[false]).behind, vec![0]);
    }
}
