//! A client of the store's `/kv` API that classifies every outcome as Jepsen
//! does: `ok`, `fail` (certainly did not happen) or `info` (unknown).
//!
//! Each client is pinned to one member and sends its requests there, so reads
//! are spread over all members (a stale member is read, not bypassed).
//!
//! Writes (put, compare-and-set) carry one `x-flotilla-request-id` per
//! logical operation, so retrying one is applied at most once. A write is
//! retried until its deadline on answers that say "not here, not now" —
//! `307` (followed to the leader's `Location`), `503`, `504`, a connection
//! that could not be made — and the outcome is:
//! - `ok` on a 2xx (a compare-and-set whose compare did not hold: `fail`);
//! - `fail` only when no attempt could have been applied: every attempt
//!   was refused before it was sent (connection refused) or rejected as
//!   malformed (4xx);
//! - `info` otherwise. A 307 or 503 counts as "may have been applied": a
//!   leader that proposed the write and then lost its leadership answers
//!   the same as a follower that never proposed it.
//!
//! Reads have no effect, so a read that errors is `fail`. Linearizable reads
//! follow a 307; serializable reads never do (they must read the pinned
//! member's local state).

use crate::history::Value;
use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Header carrying a write's idempotency key (32 hex digits).
pub const REQUEST_ID_HEADER: &str = "x-flotilla-request-id";
/// Header naming the member that served a request.
const MEMBER_HEADER: &str = "x-flotilla-member";
/// Pause between retries of a write.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Keys of the set workload live under this prefix.
pub const SET_PREFIX: &str = "/jepsen/set/";

/// Read consistency of the clients' reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// With the read barrier (the store's default).
    Linearizable,
    /// The member's local state, possibly stale.
    Serializable,
}

impl Consistency {
    fn as_str(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Serializable => "serializable",
        }
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It happened; the value read, if any.
    Ok(Option<Value>),
    /// It certainly did not happen.
    Fail(String),
    /// It may or may not have happened.
    Info(String),
}

/// An outcome and the member that answered (or was asked).
#[derive(Clone, Debug)]
pub struct Reply {
    /// The outcome.
    pub outcome: Outcome,
    /// The member that served the request, if one answered.
    pub node: Option<String>,
}

/// A member the clients can reach.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Member name.
    pub name: String,
    /// `https://IP:PORT`.
    pub url: String,
}

/// Per-request and per-operation time limits.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// One HTTP request.
    pub request: Duration,
    /// One logical operation, retries included.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            request: Duration::from_millis(1500),
            operation: Duration::from_secs(3),
        }
    }
}

/// A client pinned to one member.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    token: Arc<str>,
    endpoint: Endpoint,
    consistency: Consistency,
    timeouts: Timeouts,
}

#[derive(Deserialize)]
struct Kv {
    value: String,
}

#[derive(Deserialize)]
struct GetReply {
    kv: Option<Kv>,
    member: Option<String>,
}

#[derive(Deserialize)]
struct RangeReply {
    kvs: Vec<Kv>,
    more: bool,
    member: Option<String>,
}

#[derive(Deserialize)]
struct TxnReply {
    succeeded: bool,
}

/// What one write attempt sequence concluded.
enum Written {
    Applied(serde_json::Value),
    NotApplied(String),
    Unknown(String),
}

fn member_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(MEMBER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn location(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn parse_value(text: &str) -> Result<i64, String> {
    text.parse()
        .map_err(|_| format!("stored value {text:?} is not an integer"))
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Client {
    /// A client of `endpoint`.
    pub fn new(
        http: reqwest::Client,
        token: Arc<str>,
        endpoint: Endpoint,
        consistency: Consistency,
        timeouts: Timeouts,
    ) -> Client {
        Client {
            http,
            token,
            endpoint,
            consistency,
            timeouts,
        }
    }

    /// The member this client is pinned to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Reads a register.
    pub async fn read(&self, key: &str) -> Reply {
        self.read_with(key, self.consistency).await
    }

    /// Reads a register with the given consistency.
    pub async fn read_with(&self, key: &str, consistency: Consistency) -> Reply {
        let path = format!(
            "/kv/get?key={}&consistency={}",
            encode(key),
            consistency.as_str()
        );
        match self.get(&path, consistency).await {
            Err(reply) => reply,
            Ok((response, node)) => match response.json::<GetReply>().await {
                Err(e) => self.failed(format!("unreadable reply: {e}"), node),
                Ok(reply) => {
                    let node = reply.member.or(node);
                    match reply.kv.map(|kv| parse_value(&kv.value)).transpose() {
                        Ok(value) => Reply {
                            outcome: Outcome::Ok(value.map(Value::Int)),
                            node,
                        },
                        Err(e) => self.failed(e, node),
                    }
                }
            },
        }
    }

    /// Reads every element of the set (linearizable).
    pub async fn read_all(&self) -> Reply {
        let path = format!(
            "/kv/range?prefix={}&consistency=linearizable",
            encode(SET_PREFIX)
        );
        match self.get(&path, Consistency::Linearizable).await {
            Err(reply) => reply,
            Ok((response, node)) => match response.json::<RangeReply>().await {
                Err(e) => self.failed(format!("unreadable reply: {e}"), node),
                Ok(reply) if reply.more => {
                    self.failed("range answer was cut short".into(), reply.member)
                }
                Ok(reply) => {
                    let node = reply.member.or(node);
                    let parsed: Result<Vec<i64>, String> =
                        reply.kvs.iter().map(|kv| parse_value(&kv.value)).collect();
                    match parsed {
                        Ok(mut elements) => {
                            elements.sort_unstable();
                            Reply {
                                outcome: Outcome::Ok(Some(Value::Many(elements))),
                                node,
                            }
                        }
                        Err(e) => self.failed(e, node),
                    }
                }
            },
        }
    }

    fn failed(&self, error: String, node: Option<String>) -> Reply {
        Reply {
            outcome: Outcome::Fail(error),
            node: node.or_else(|| Some(self.endpoint.name.clone())),
        }
    }

    /// One GET; 307 followed once for linearizable reads.
    async fn get(
        &self,
        path: &str,
        consistency: Consistency,
    ) -> Result<(reqwest::Response, Option<String>), Reply> {
        let mut url = format!("{}{path}", self.endpoint.url);
        for _ in 0..2 {
            let response = self
                .http
                .get(&url)
                .bearer_auth(&*self.token)
                .timeout(self.timeouts.request)
                .send()
                .await
                .map_err(|e| self.failed(describe(&e), None))?;
            let node = member_of(&response);
            let status = response.status();
            if status == reqwest::StatusCode::TEMPORARY_REDIRECT
                && consistency == Consistency::Linearizable
            {
                if let Some(to) = location(&response) {
                    url = to;
                    continue;
                }
            }
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                return Err(self.failed(format!("HTTP {status}: {}", first_line(&body)), node));
            }
            return Ok((response, node));
        }
        Err(self.failed("redirected twice".into(), None))
    }

    /// Writes a register.
    pub async fn write(&self, key: &str, value: i64) -> Reply {
        let body = json!({ "key": key, "value": value.to_string() });
        let (written, node) = self.send_write("/kv/put", &body).await;
        self.reply(written, node, |_| Ok(Outcome::Ok(None)))
    }

    /// Adds `element` to the set: a put of its own key.
    pub async fn add(&self, element: i64) -> Reply {
        self.add_under(SET_PREFIX, element).await
    }

    /// Adds `element` under `prefix`: a put of its own key.
    pub async fn add_under(&self, prefix: &str, element: i64) -> Reply {
        let body = json!({ "key": format!("{prefix}{element:012}"), "value": element.to_string() });
        let (written, node) = self.send_write("/kv/put", &body).await;
        self.reply(written, node, |_| Ok(Outcome::Ok(None)))
    }

    /// Sets `key` to `to` if it holds `from` (a transaction comparing values).
    pub async fn cas(&self, key: &str, from: i64, to: i64) -> Reply {
        let body = json!({
            "compare": [{ "key": key, "target": "value", "result": "=", "value": from.to_string() }],
            "success": [{ "op": "put", "key": key, "value": to.to_string() }],
            "failure": [],
        });
        let (written, node) = self.send_write("/kv/txn", &body).await;
        self.reply(written, node, |reply| {
            let txn: TxnReply = serde_json::from_value(reply)
                .map_err(|e| format!("unreadable transaction reply: {e}"))?;
            Ok(if txn.succeeded {
                Outcome::Ok(None)
            } else {
                Outcome::Fail("compare failed".into())
            })
        })
    }

    fn reply(
        &self,
        written: Written,
        node: Option<String>,
        applied: impl FnOnce(serde_json::Value) -> Result<Outcome, String>,
    ) -> Reply {
        let outcome = match written {
            // The write happened; a reply we cannot read leaves its output unknown.
            Written::Applied(body) => applied(body).unwrap_or_else(Outcome::Info),
            Written::NotApplied(e) => Outcome::Fail(e),
            Written::Unknown(e) => Outcome::Info(e),
        };
        Reply {
            outcome,
            node: node.or_else(|| Some(self.endpoint.name.clone())),
        }
    }

    /// Sends a write until it is answered or its deadline passes; see the
    /// module doc for how the outcome is decided.
    async fn send_write(&self, path: &str, body: &serde_json::Value) -> (Written, Option<String>) {
        let id: [u8; 16] = rand::thread_rng().gen();
        let id = hex::encode(id);
        let deadline = Instant::now() + self.timeouts.operation;
        let home = format!("{}{path}", self.endpoint.url);
        let mut url = home.clone();
        let mut maybe_applied = false;
        let mut last_error = String::from("no attempt before the deadline");
        let mut node = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let sent = self
                .http
                .post(&url)
                .bearer_auth(&*self.token)
                .header(REQUEST_ID_HEADER, &id)
                .json(body)
                .timeout(left.min(self.timeouts.request))
                .send()
                .await;
            let response = match sent {
                Err(e) => {
                    last_error = describe(&e);
                    if !e.is_connect() {
                        // Sent, or perhaps sent: it may have been applied.
                        maybe_applied = true;
                    }
                    url = home.clone();
                    pause(deadline).await;
                    continue;
                }
                Ok(response) => response,
            };
            node = member_of(&response).or(node);
            let status = response.status();
            if status.is_success() {
                return match response.json::<serde_json::Value>().await {
                    Ok(reply) => (Written::Applied(reply), node),
                    // Applied, but the answer was lost on the way.
                    Err(e) => (Written::Unknown(format!("reply lost: {e}")), node),
                };
            }
            if status == reqwest::StatusCode::TEMPORARY_REDIRECT {
                maybe_applied = true;
                last_error = "redirected to the leader".into();
                if let Some(to) = location(&response) {
                    url = to;
                    continue;
                }
            }
            let text = response.text().await.unwrap_or_default();
            last_error = format!("HTTP {status}: {}", first_line(&text));
            if status.is_client_error() {
                // A malformed or refused request: nothing was proposed by
                // this attempt; earlier ones may still have been.
                break;
            }
            maybe_applied = true;
            url = home.clone();
            pause(deadline).await;
        }
        let written = if maybe_applied {
            Written::Unknown(last_error)
        } else {
            Written::NotApplied(last_error)
        };
        (written, node)
    }
}

async fn pause(deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::sleep(left.min(RETRY_PAUSE)).await;
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

/// A short description of a transport error.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        format!("connect: {}", root_cause(e))
    } else {
        root_cause(e)
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded() {
        assert_eq!(encode("/jepsen/r/1"), "%2Fjepsen%2Fr%2F1");
        assert_eq!(encode("a-b_c.d~"), "a-b_c.d~");
    }
}
