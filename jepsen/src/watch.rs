//! The watch workload's watchers and compactor.
//!
//! Writers add unique elements as keys under [`WATCH_PREFIX`] (the set
//! workload's adds, on their own prefix). One watcher per member follows
//! `/kv/watch` on that prefix from the revision the run started at, as an
//! informer would: when its stream breaks (its member killed, paused or cut
//! off, a leader change), it reconnects — to its own member first, then the
//! others in turn — asking for the events after the last revision it
//! received. A compactor compacts the history every few seconds to the
//! revision of the round before, so a watcher that was cut off long enough
//! is answered 410; it then records the gap (the revisions compaction took
//! from it) and resumes from the compacted revision, as a client relisting
//! would.
//!
//! Every event received and every gap go into a [`Log`], which
//! [`crate::checker::watch`] checks against the history of the writes.

use crate::client::Endpoint;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The prefix the watch workload writes under.
pub const WATCH_PREFIX: &str = "/jepsen/watch/";
/// How often the compactor compacts.
pub const COMPACT_EVERY: Duration = Duration::from_secs(5);
/// Pause before a watcher reconnects.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// One event a watcher received.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The watcher (its home member's index).
    pub watcher: usize,
    /// The event's revision.
    pub revision: i64,
    /// The key.
    pub key: String,
    /// "PUT" or "DELETE".
    pub kind: String,
    /// The member that served it.
    pub member: String,
}

/// Revisions a watcher could not receive because compaction removed them:
/// every event with a revision in `(after, compacted]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The watcher.
    pub watcher: usize,
    /// The revision it asked to resume after.
    pub after: i64,
    /// The compact revision the server reported.
    pub compacted: i64,
}

/// What the watchers saw.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Log {
    /// Events, in the order each watcher received them.
    pub seen: Vec<Seen>,
    /// Compaction gaps.
    pub gaps: Vec<Gap>,
    /// Reconnections, all watchers together.
    pub reconnects: usize,
    /// Compactions the compactor made.
    pub compactions: usize,
}

/// The shared log.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<Log>>);

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A copy of the log.
    pub fn snapshot(&self) -> Log {
        self.with(|log| log.clone())
    }
}

#[derive(Deserialize)]
struct WatchKv {
    key: String,
    mod_revision: i64,
}

#[derive(Deserialize)]
struct WatchLine {
    #[serde(rename = "type")]
    kind: String,
    kv: WatchKv,
}

/// The revision a 410 answer names as the oldest readable one: the last
/// number in its message ("... the oldest readable revision is N").
fn compacted_revision(body: &str) -> Option<i64> {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    message
        .split(|c: char| !c.is_ascii_digit())
        .rfind(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
}

/// Follows the prefix from revision `from` until `stop`, reporting the last
/// revision received on `progress`.
#[allow(clippy::too_many_arguments)]
pub async fn follow(
    watcher: usize,
    http: reqwest::Client,
    token: Arc<str>,
    endpoints: Vec<Endpoint>,
    from: i64,
    log: Shared,
    progress: watch::Sender<i64>,
    stop: CancellationToken,
) {
    use futures::StreamExt;
    let mut after = from;
    let mut attempt = 0usize;
    while !stop.is_cancelled() {
        let endpoint = &endpoints[(watcher + attempt) % endpoints.len()];
        let url = format!(
            "{}/kv/watch?prefix={}&from={after}",
            endpoint.url,
            WATCH_PREFIX.replace('/', "%2F")
        );
        let sent = tokio::select! {
            sent = http.get(&url).bearer_auth(&*token).timeout(Duration::from_secs(3600)).send() => sent,
            () = stop.cancelled() => return,
        };
        match sent {
            Ok(response) if response.status().is_success() => {
                let mut stream = response.bytes_stream();
                let mut pending = Vec::new();
                loop {
                    let chunk = tokio::select! {
                        chunk = stream.next() => chunk,
                        () = stop.cancelled() => return,
                    };
                    let Some(Ok(chunk)) = chunk else { break };
                    pending.extend_from_slice(&chunk);
                    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let Ok(event) = serde_json::from_slice::<WatchLine>(&line) else {
                            tracing::warn!(watcher, "unreadable watch line");
                            continue;
                        };
                        after = after.max(event.kv.mod_revision);
                        log.with(|log| {
                            log.seen.push(Seen {
                                watcher,
                                revision: event.kv.mod_revision,
                                key: event.kv.key,
                                kind: event.kind,
                                member: endpoint.name.clone(),
                            })
                        });
                        progress.send_replace(after);
                    }
                }
            }
            Ok(response) if response.status() == reqwest::StatusCode::GONE => {
                let body = response.text().await.unwrap_or_default();
                match compacted_revision(&body) {
                    Some(compacted) if compacted > after => {
                        log.with(|log| {
                            log.gaps.push(Gap {
                                watcher,
                                after,
                                compacted,
                            })
                        });
                        after = compacted;
                        progress.send_replace(after);
                    }
                    _ => tracing::warn!(watcher, %body, "410 without a usable compact revision"),
                }
                continue;
            }
            Ok(response) => {
                tracing::debug!(watcher, status = %response.status(), "watch refused");
            }
            Err(e) => tracing::debug!(watcher, "watch failed: {e}"),
        }
        // Broken, refused or unreachable: next member, after a pause.
        attempt += 1;
        log.with(|log| log.reconnects += 1);
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_PAUSE) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// The store's revision now, by a linearizable read of the prefix on any
/// member, and (when `whole`, reading every key) the highest mod revision of
/// a key under it.
pub async fn revision(
    http: &reqwest::Client,
    token: &str,
    endpoints: &[Endpoint],
    whole: bool,
) -> Option<(i64, i64)> {
    for endpoint in endpoints {
        let url = format!(
            "{}/kv/range?prefix={}&consistency=linearizable{}",
            endpoint.url,
            WATCH_PREFIX.replace('/', "%2F"),
            if whole { "" } else { "&limit=1" }
        );
        let Ok(response) = http.get(&url).bearer_auth(token).send().await else {
            continue;
        };
        if !response.status().is_success() {
            continue;
        }
        let Ok(body) = response.json::<serde_json::Value>().await else {
            continue;
        };
        let Some(revision) = body["revision"].as_i64() else {
            continue;
        };
        let latest = body["kvs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|kv| kv["mod_revision"].as_i64())
            .max()
            .unwrap_or(0);
        return Some((revision, latest));
    }
    None
}

/// Compacts every [`COMPACT_EVERY`] to the revision read one round before,
/// until `stop`.
pub async fn compact(
    http: reqwest::Client,
    token: Arc<str>,
    endpoints: Vec<Endpoint>,
    log: Shared,
    stop: CancellationToken,
) {
    let mut previous: Option<i64> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(COMPACT_EVERY) => {}
            () = stop.cancelled() => return,
        }
        let now = revision(&http, &token, &endpoints, false)
            .await
            .map(|(r, _)| r);
        if let Some(target) = previous {
            for endpoint in &endpoints {
                let sent = http
                    .post(format!("{}/kv/compact", endpoint.url))
                    .bearer_auth(&*token)
                    .json(&serde_json::json!({ "revision": target }))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        log.with(|log| log.compactions += 1);
                        break;
                    }
                    // Already compacted further (another round got there).
                    Ok(r) if r.status().is_client_error() => break,
                    _ => continue,
                }
            }
        }
        previous = now.or(previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compact_revision_is_read_from_the_status() {
        let body = r#"{"kind":"Status","message":"revision 17 has been compacted; the oldest readable revision is 42","code":410}"#;
        assert_eq!(compacted_revision(body), Some(42));
        assert_eq!(compacted_revision("no numbers"), None);
    }
}
