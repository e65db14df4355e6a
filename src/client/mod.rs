//! The HTTP client `ctl` uses to talk to the masters.
//!
//! It knows several masters (the kubeconfig's server, plus every member it has
//! learned of, cached beside the kubeconfig), and:
//! - follows `307` redirects to the leader and remembers the leader for the
//!   next request;
//! - on a connection error, a timeout or a `503`, moves to the next master and
//!   retries with exponential back-off until its deadline; on a `429` (the
//!   master is busy) waits and asks the same master again;
//! - gives each write one idempotency key for all its retries, so a write
//!   retried after a failover is applied at most once.
//!
//! [`http_client`] is the one place HTTP clients are built, so TLS slots in there.

pub mod kubeconfig;

use crate::wire::REQUEST_ID_HEADER;
use reqwest::{Method, StatusCode};
use serde::{de::DeserializeOwned, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long one request may take before the client tries another master.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the client keeps retrying across masters by default.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
const MAX_REDIRECTS: usize = 5;

/// Builds an HTTP client with the project's settings: HTTPS that trusts the
/// cluster CA alone when `ca_pem` is given (masters always serve TLS).
///
/// # Errors
/// When the CA is not valid PEM or the TLS backend cannot be set up.
pub fn http_client(timeout: Duration, ca_pem: Option<&str>) -> reqwest::Result<reqwest::Client> {
    flotilla_raft::network::client_builder(ca_pem)?
        .connect_timeout(Duration::from_secs(2))
        // Below the masters' idle timeout, so a pooled connection is never
        // reused just as the master closes it.
        .pool_idle_timeout(Duration::from_secs(20))
        .timeout(timeout)
        .build()
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status; `message` is the Status message.
    #[error("{message} (HTTP {code})")]
    Status {
        /// HTTP status code.
        code: u16,
        /// The server's explanation.
        message: String,
    },
    /// No master answered before the deadline.
    #[error("no master answered: tried {tried}; last error: {last}")]
    Unreachable {
        /// The masters tried.
        tried: String,
        /// The last error seen.
        last: String,
    },
    /// The answer was not what the endpoint promises.
    #[error("unexpected answer from {url}: {message}")]
    Decode {
        /// Where it came from.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The client could not be built.
    #[error("http client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Where a request should go first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Writes: the leader if known.
    Leader,
    /// Reads: whichever master answered last.
    Any,
}

#[derive(Debug, Default)]
struct Masters {
    /// Base URLs, `http://HOST:PORT`.
    list: Vec<String>,
    current: usize,
    leader: Option<String>,
}

/// Per-request settings beyond [`Client::send`]'s defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras {
    /// Content type of the body (default `application/json`), e.g.
    /// `application/merge-patch+json` for a PATCH.
    pub content_type: Option<&'static str>,
    /// Accept header, e.g. the server-side Table media type.
    pub accept: Option<&'static str>,
    /// Overrides [`REQUEST_TIMEOUT`] for the whole request, body included
    /// (a watch or a followed log streams for longer).
    pub timeout: Option<Duration>,
    /// Return a `503` as the answer instead of trying another master: for
    /// endpoints whose 503 is a deliberate answer (pod logs without agents).
    pub final_unavailable: bool,
}

/// A client of the masters' HTTP API.
pub struct Client {
    http: reqwest::Client,
    token: Option<String>,
    masters: Arc<Mutex<Masters>>,
    cache: Option<PathBuf>,
}

/// `HOST:PORT` or a URL, as a base URL without a trailing slash.
pub fn base_url(server: &str) -> String {
    let server = server.trim().trim_end_matches('/');
    if server.starts_with("http://") || server.starts_with("https://") {
        server.to_owned()
    } else {
        format!("https://{server}")
    }
}

/// Percent-encodes a query value or path segment: everything but RFC 3986's
/// unreserved characters is escaped (`/` becomes `%2F`).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `HOST:PORT`, bracketing IPv6 hosts.
pub fn host_port(host: &str, port: u64) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn base_of(location: &str) -> Option<String> {
    let rest = location
        .strip_prefix("http://")
        .map(|r| ("http://", r))
        .or_else(|| location.strip_prefix("https://").map(|r| ("https://", r)))?;
    let host = rest.1.split('/').next()?;
    Some(format!("{}{}", rest.0, host))
}

impl Client {
    /// A client for `servers` (`HOST:PORT` or URLs), authenticating with
    /// `token` and trusting the cluster CA `ca_pem`.
    /// `cache` is a file where learned member addresses are kept between runs.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        servers: &[String],
        token: Option<String>,
        ca_pem: Option<&str>,
        cache: Option<PathBuf>,
    ) -> Result<Client, ClientError> {
        let mut list: Vec<String> = servers.iter().map(|s| base_url(s)).collect();
        if let Some(path) = &cache {
            if let Ok(text) = std::fs::read_to_string(path) {
                if let Ok(cached) = serde_json::from_str::<Vec<String>>(&text) {
                    for base in cached {
                        if !list.contains(&base) {
                            list.push(base);
                        }
                    }
                }
            }
        }
        Ok(Client {
            http: http_client(REQUEST_TIMEOUT, ca_pem)?,
            token,
            masters: Arc::new(Mutex::new(Masters {
                list,
                ..Masters::default()
            })),
            cache,
        })
    }

    /// A client sharing this one's connections and known masters, sending
    /// `token` instead (many hollow nodes in one process share one pool).
    pub fn with_token(&self, token: String) -> Client {
        Client {
            http: self.http.clone(),
            token: Some(token),
            masters: self.masters.clone(),
            cache: None,
        }
    }

    fn masters(&self) -> std::sync::MutexGuard<'_, Masters> {
        self.masters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bearer token this client sends.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The masters this client knows, as base URLs.
    pub fn known_masters(&self) -> Vec<String> {
        self.masters().list.clone()
    }

    fn first_target(&self, route: Route) -> Option<String> {
        let m = self.masters();
        match (route, &m.leader) {
            (Route::Leader, Some(leader)) => Some(leader.clone()),
            _ => m
                .list
                .get(m.current)
                .cloned()
                .or_else(|| m.list.first().cloned()),
        }
    }

    fn rotate_after_failure(&self, failed: &str) -> Option<String> {
        let mut m = self.masters();
        if m.leader.as_deref() == Some(failed) {
            m.leader = None;
        }
        if m.list.is_empty() {
            return None;
        }
        let position = m.list.iter().position(|b| b == failed).unwrap_or(m.current);
        m.current = (position + 1) % m.list.len();
        m.list.get(m.current).cloned()
    }

    fn remember_leader(&self, base: &str) {
        let mut m = self.masters();
        m.leader = Some(base.to_owned());
        if !m.list.iter().any(|b| b == base) {
            m.list.push(base.to_owned());
        }
        if let Some(i) = m.list.iter().position(|b| b == base) {
            m.current = i;
        }
    }

    fn remember_success(&self, base: &str) {
        let mut m = self.masters();
        if let Some(i) = m.list.iter().position(|b| b == base) {
            m.current = i;
        }
    }

    /// Sends a request, following redirects and rotating through masters
    /// until `deadline` has passed. Answers other than 307 and 503 are
    /// returned as they are, error statuses included.
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] when no master gave a usable answer in time.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        route: Route,
        deadline: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        self.send_with(method, path, body, route, deadline, &Extras::default())
            .await
    }

    /// [`Client::send`] with the headers, timeout and 503 handling of `extras`.
    ///
    /// # Errors
    /// As [`Client::send`].
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        route: Route,
        deadline: Duration,
        extras: &Extras,
    ) -> Result<reqwest::Response, ClientError> {
        let started = Instant::now();
        let request_id = (method != Method::GET).then(|| hex::encode(rand::random::<[u8; 16]>()));
        let mut target = self
            .first_target(route)
            .ok_or_else(|| ClientError::Unreachable {
                tried: "nothing".into(),
                last: "no master configured: pass --server or --kubeconfig".into(),
            })?;
        let mut backoff = BACKOFF_START;
        let mut redirects = 0;
        let mut tried: Vec<String> = Vec::new();
        let mut last_error;
        let mut busy = false;
        loop {
            if !tried.contains(&target) {
                tried.push(target.clone());
            }
            let mut request = self.http.request(method.clone(), format!("{target}{path}"));
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(id) = &request_id {
                request = request.header(REQUEST_ID_HEADER, id);
            }
            if let Some(body) = &body {
                let content_type = extras.content_type.unwrap_or("application/json");
                request = request
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body.clone());
            }
            if let Some(accept) = extras.accept {
                request = request.header(reqwest::header::ACCEPT, accept);
            }
            if let Some(timeout) = extras.timeout {
                request = request.timeout(timeout);
            }
            match request.send().await {
                Ok(response) if response.status() == StatusCode::TEMPORARY_REDIRECT => {
                    let location = response
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(base_of);
                    match location {
                        Some(leader) if redirects < MAX_REDIRECTS => {
                            redirects += 1;
                            self.remember_leader(&leader);
                            target = leader;
                            continue;
                        }
                        _ => {
                            last_error =
                                format!("{target}: redirect loop or redirect without Location");
                        }
                    }
                }
                Ok(response)
                    if response.status() == StatusCode::SERVICE_UNAVAILABLE
                        && !extras.final_unavailable =>
                {
                    last_error = format!("{target}: {}", error_message(response).await);
                }
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    // Busy, not broken: wait and ask the same master again.
                    busy = true;
                    last_error = format!("{target}: {}", error_message(response).await);
                }
                Ok(response) => {
                    self.remember_success(&target);
                    return Ok(response);
                }
                Err(e) => {
                    last_error = format!("{target}: {}", describe(&e));
                }
            }
            if started.elapsed() + backoff > deadline {
                return Err(ClientError::Unreachable {
                    tried: tried.join(", "),
                    last: last_error,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            redirects = 0;
            if !std::mem::take(&mut busy) {
                target = self.rotate_after_failure(&target).unwrap_or(target);
            }
        }
    }

    /// Sends a request and decodes a JSON answer; error statuses become
    /// [`ClientError::Status`] with the server's message.
    ///
    /// # Errors
    /// As [`Client::send`], plus error statuses and undecodable answers.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        route: Route,
    ) -> Result<T, ClientError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Decode {
                url: path.into(),
                message: e.to_string(),
            })?;
        let response = self
            .send(method, path, body, route, DEFAULT_DEADLINE)
            .await?;
        decode(response).await
    }

    /// GET with JSON answer, from any master.
    ///
    /// # Errors
    /// As [`Client::json`].
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::GET, path, None::<&()>, Route::Any).await
    }

    /// POST of a JSON body to the leader, JSON answer.
    ///
    /// # Errors
    /// As [`Client::json`].
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.json(Method::POST, path, Some(body), Route::Leader)
            .await
    }

    /// A client sharing this one's connections, credential, known masters
    /// and member cache: what one learns, all know.
    pub fn share(&self) -> Client {
        Client {
            http: self.http.clone(),
            token: self.token.clone(),
            masters: self.masters.clone(),
            cache: self.cache.clone(),
        }
    }

    /// Learns every member's address from `/cluster/members` (asking any
    /// master it can reach) and keeps them in the cache file, so later runs
    /// reach the cluster even when the master named in the kubeconfig is
    /// down. Best effort; returns the members' addresses when it learned them.
    pub async fn learn_members(&self) -> Option<Vec<String>> {
        let members = self
            .get::<Vec<crate::wire::MemberView>>("/cluster/members")
            .await
            .ok()?;
        let bases: Vec<String> = members.iter().map(|m| base_url(&m.address)).collect();
        if bases.is_empty() {
            return None;
        }
        {
            let mut m = self.masters();
            for base in &bases {
                if !m.list.contains(base) {
                    m.list.push(base.clone());
                }
            }
            if let Some(leader) = members.iter().find(|m| m.leader) {
                m.leader = Some(base_url(&leader.address));
            }
        }
        if let Some(path) = &self.cache {
            if let Ok(text) = serde_json::to_string(&bases) {
                if let Err(e) = kubeconfig::write_private(path, text.as_bytes()) {
                    tracing::debug!("keeping the member list in {}: {e}", path.display());
                }
            }
        }
        Some(bases)
    }

    /// Follows membership changes until `stop`: learns the members now and
    /// every `every` after (agents run this, so masters added after they
    /// joined are known before the ones they joined through go away).
    pub async fn follow_members(&self, every: Duration, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = self.learn_members() => {}
                () = stop.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused or unreachable".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        e.to_string()
    }
}

/// The message of an error answer: the Status's `message`, or the body text.
pub async fn error_message(response: reqwest::Response) -> String {
    let code = response.status();
    let text = response.text().await.unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                code.to_string()
            } else {
                trimmed.to_owned()
            }
        })
}

/// Decodes a JSON answer, turning error statuses into [`ClientError::Status`].
///
/// # Errors
/// Error statuses and undecodable bodies.
pub async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ClientError> {
    let status = response.status();
    let url = response.url().to_string();
    if !status.is_success() {
        return Err(ClientError::Status {
            code: status.as_u16(),
            message: error_message(response).await,
        });
    }
    let bytes = response.bytes().await.map_err(|e| ClientError::Decode {
        url: url.clone(),
        message: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
        url,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(base_url("127.0.0.1:7001"), "https://127.0.0.1:7001");
        assert_eq!(base_url("http://h:1/"), "http://h:1");
        assert_eq!(
            base_of("http://127.0.0.1:7002/kv/put?x=1").as_deref(),
            Some("http://127.0.0.1:7002")
        );
        assert_eq!(base_of("/relative"), None);
        assert_eq!(encode("/registry/a b=c"), "%2Fregistry%2Fa%20b%3Dc");
        assert_eq!(encode("az-_.~09"), "az-_.~09");
    }
}
