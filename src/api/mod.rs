//! The HTTP API every master serves.
//!
//! - `/kv/...` ([`kv`]): raw store access — get, range, put, delete, txn,
//!   compact, watch — with `consistency=linearizable|serializable`.
//! - `/cluster/...` ([`cluster`]): join, members, tokens, status, snapshot.
//! - `/healthz`, `/livez`, `/readyz`, `/version`, `/metrics` ([`health`]).
//! - `/raft/...`: Raft RPCs between masters ([`flotilla_raft::rpc`]).
//!
//! Writes go to the leader: a follower answers `307 Temporary Redirect` with
//! `Location` on the leader (and the leader's address in `x-flotilla-leader`),
//! or `503` with `Retry-After` while no leader is known. Linearizable reads are
//! served by any member after the read barrier ([`flotilla_raft::Node::read_barrier`]).
//!
//! Everything except health, version, the join endpoints (which take a join
//! token) and the Raft RPCs (which take the peer secret) needs the admin
//! credential as a bearer token; without it: 401.

pub mod apis;
pub mod cluster;
pub mod discovery;
pub mod error;
pub mod health;
pub mod kv;
pub mod metrics;
pub mod openapi;
pub mod patch;
pub mod rest;
pub mod table;

use crate::security;
pub use crate::store::Consistency;
use crate::store::Store;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
pub use error::ApiError;
use flotilla_raft::{Member, Node};
use flotilla_storage::Response as StoreResponse;
use std::sync::Arc;
use std::time::Duration;

/// Header naming the leader's `HOST:PORT` on a redirect.
pub const LEADER_HEADER: &str = "x-flotilla-leader";
/// Largest `/kv` and `/cluster` request body (etcd's default request limit).
pub const MAX_BODY: usize = 3 * 512 * 1024;

/// What every handler can reach.
pub struct Context {
    /// The replicated store.
    pub node: Arc<Node>,
    /// The object store over `node`.
    pub store: Store,
    /// The cluster's id.
    pub cluster_id: String,
    /// The admin bearer token.
    pub admin_token: String,
    /// The peer secret handed to joining masters.
    pub peer_secret: String,
    /// Request metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Serializes membership changes made through this member.
    pub membership_lock: tokio::sync::Mutex<()>,
    /// The cluster CA (handed to joining masters, fingerprinted in tokens).
    pub ca: crate::security::pki::Authority,
    /// The agent CA: signs agents' serving certificates at worker join; only
    /// the log proxy's agent client trusts it.
    pub agent_ca: crate::security::pki::Authority,
}

/// Requests (watches and Raft RPCs aside) a member serves at once, as
/// kube-apiserver's `--max-requests-inflight`. A flood of clients — five
/// thousand agents registering at once — then waits at the clients, not in
/// this member's run queue, where it would starve the Raft tasks sharing it
/// into missed heartbeats and needless elections.
pub const MAX_IN_FLIGHT: usize = 256;
/// How long a request may wait for a slot before it is answered 429.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(2);

/// The admission limit of one member.
#[derive(Clone)]
pub struct Admission(Arc<tokio::sync::Semaphore>);

impl Default for Admission {
    fn default() -> Self {
        Admission(Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)))
    }
}

/// Holds a slot for the request, or answers 429 after [`ADMISSION_WAIT`].
/// Watches are long-running and take no slot.
async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    let watch = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
        || request.uri().path().starts_with("/kv/watch");
    if watch {
        return next.run(request).await;
    }
    match tokio::time::timeout(ADMISSION_WAIT, admission.0.clone().acquire_owned()).await {
        Ok(Ok(_permit)) => next.run(request).await,
        _ => ApiError::TooManyRequests(format!(
            "this member is serving {MAX_IN_FLIGHT} requests; retry shortly"
        ))
        .into_response(),
    }
}

/// The whole router of a master.
pub fn router(ctx: Arc<Context>) -> Router {
    let protected = Router::new()
        .merge(kv::routes())
        .merge(rest::routes())
        .merge(apis::routes())
        .merge(cluster::admin_routes())
        .merge(health::admin_routes())
        .layer(middleware::from_fn_with_state(ctx.clone(), authenticate))
        .layer(middleware::from_fn_with_state(Admission::default(), admit));
    let open = Router::new()
        .merge(cluster::join_routes())
        .merge(health::open_routes());
    Router::new()
        .merge(protected)
        .merge(open)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(refuse_oversized))
        .layer(middleware::from_fn(locate_leader))
        .with_state(ctx.clone())
        .merge(flotilla_raft::rpc::router(ctx.node.clone()))
        .fallback(unknown_path)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            ctx.metrics.clone(),
            metrics::track,
        ))
}

/// A path nothing serves: a 404 `Status`, as kube-apiserver answers.
async fn unknown_path(uri: Uri) -> ApiError {
    ApiError::NotFound(format!(
        "the server could not find the requested resource ({})",
        uri.path()
    ))
}

/// A method a fixed route does not take: a 405 `Status`.
async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::Detailed {
        code: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        reason: "MethodNotAllowed",
        message: format!("{method} is not supported on {}", uri.path()),
        details: serde_json::json!({}),
    }
}

/// Largest oversized body read (and discarded) before answering 413, so the
/// client, still sending, gets the answer instead of a reset connection.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// Answers 413 to a body whose declared length is over [`MAX_BODY`], after
/// draining it (up to [`DRAIN_LIMIT`]).
async fn refuse_oversized(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(length) if length > MAX_BODY => {
            if length <= DRAIN_LIMIT {
                let _ = axum::body::to_bytes(request.into_body(), DRAIN_LIMIT).await;
            }
            ApiError::TooLarge(format!(
                "request body of {length} bytes is larger than the limit of {MAX_BODY} bytes"
            ))
            .into_response()
        }
        _ => next.run(request).await,
    }
}

/// Who sent a request, as its credential says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The admin credential of `admin.kubeconfig`: everything.
    Admin,
    /// A worker node's own credential: reads, and writes to its own Node,
    /// its Lease, the pods bound to it and events (NodeRestriction).
    Node(String),
}

impl Caller {
    /// The node's name, for a node.
    pub fn node(&self) -> Option<&str> {
        match self {
            Caller::Admin => None,
            Caller::Node(name) => Some(name),
        }
    }
}

/// The node whose credential `token` is, if it is a valid one.
fn node_credential(ctx: &Context, token: &str) -> Option<String> {
    let (name, secret) = security::nodes::parse(token)?;
    let read = ctx
        .node
        .engine()
        .get(security::nodes::key(name).as_bytes(), None)
        .ok()?;
    let record: security::nodes::NodeRecord = serde_json::from_slice(&read.value?.value).ok()?;
    security::nodes::verify(&record, secret).then(|| name.to_owned())
}

/// Paths a node may write (the object itself is checked by the handler:
/// a pod must be bound to the node, a Node or Lease must be its own).
fn node_may_write(node: &str, method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match (method, parts.as_slice()) {
        (&Method::POST, ["api", "v1", "nodes"]) => true,
        (
            &Method::PUT | &Method::PATCH,
            ["api", "v1", "nodes", name] | ["api", "v1", "nodes", name, "status"],
        ) => *name == node,
        (
            &Method::POST,
            ["apis", "coordination.k8s.io", "v1", "namespaces", "kube-node-lease", "leases"],
        ) => true,
        (
            &Method::PUT | &Method::PATCH,
            ["apis", "coordination.k8s.io", "v1", "namespaces", "kube-node-lease", "leases", name],
        ) => *name == node,
        (&Method::PUT | &Method::PATCH, ["api", "v1", "namespaces", _, "pods", _, "status"]) => {
            true
        }
        (&Method::DELETE, ["api", "v1", "namespaces", _, "pods", _]) => true,
        (&Method::POST, ["api", "v1", "namespaces", _, "events"]) => true,
        _ => false,
    }
}

/// Whether a node may send this request at all. Pods' logs and streams are
/// not for nodes (Kubernetes' node authorizer grants no `pods/log`): a
/// node's credential must not read the output of other nodes' pods.
fn node_may(node: &str, method: &axum::http::Method, path: &str) -> bool {
    if method == axum::http::Method::GET {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if let ["api", "v1", "namespaces", _, "pods", _, "log" | "exec" | "attach" | "portforward"] =
            parts.as_slice()
        {
            return false;
        }
        return path.starts_with("/api")
            || path.starts_with("/openapi")
            || path == "/version"
            || path == "/cluster/members"
            || path == "/cluster/settings";
    }
    node_may_write(node, method, path)
}

async fn authenticate(
    State(ctx): State<Arc<Context>>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match flotilla_raft::rpc::bearer(request.headers()) {
        Some(token) if security::secrets_match(token, &ctx.admin_token) => Caller::Admin,
        Some(token) => match node_credential(&ctx, token) {
            Some(node) => Caller::Node(node),
            None => {
                return ApiError::Unauthorized(
                    "the bearer token is not this cluster's admin credential nor a node's (a deleted node's credential is revoked)".into(),
                )
                .into_response()
            }
        },
        None => {
            return ApiError::Unauthorized(
                "missing credential: send the admin token from admin.kubeconfig as `Authorization: Bearer TOKEN`"
                    .into(),
            )
            .into_response()
        }
    };
    if let Caller::Node(node) = &caller {
        if !node_may(node, request.method(), request.uri().path()) {
            return ApiError::Forbidden(format!(
                "node \"{node}\" may not {} {}: a node may read, and write only its own Node and Lease, the status of pods bound to it, and events",
                request.method(),
                request.uri().path()
            ))
            .into_response();
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The redirect to `leader` for the request `uri`.
pub fn redirect(leader: &Member, uri: &Uri) -> ApiError {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    ApiError::Redirect {
        location: format!("https://{}{}", leader.addr, path),
        leader: leader.addr.clone(),
    }
}

/// Fails with a redirect (or 503) unless this member is the leader.
///
/// # Errors
/// [`ApiError::Redirect`] to the leader, or [`ApiError::Unavailable`] during an election.
pub fn ensure_leader(ctx: &Context, uri: &Uri) -> Result<(), ApiError> {
    let leadership = ctx.node.leadership().borrow().clone();
    if leadership.is_self {
        return Ok(());
    }
    match leadership
        .leader
        .and_then(|id| ctx.node.members().into_iter().find(|m| m.id == id))
    {
        Some(leader) => Err(redirect(&leader.member, uri)),
        None => Err(no_leader()),
    }
}

fn no_leader() -> ApiError {
    ApiError::Unavailable("no leader: an election is in progress; retry shortly".into())
}

/// Gives a redirect to the leader its `Location`: the same request on the
/// leader. Errors from below the HTTP layer ([`crate::store::Error::NotLeader`])
/// know the leader but not the request; this is where the two meet.
async fn locate_leader(request: Request, next: Next) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let mut response = next.run(request).await;
    if response.status() == axum::http::StatusCode::TEMPORARY_REDIRECT
        && !response
            .headers()
            .contains_key(axum::http::header::LOCATION)
    {
        let location = response
            .headers()
            .get(LEADER_HEADER)
            .and_then(|leader| leader.to_str().ok())
            .and_then(|leader| {
                axum::http::HeaderValue::from_str(&format!("https://{leader}{path}")).ok()
            });
        if let Some(location) = location {
            response
                .headers_mut()
                .insert(axum::http::header::LOCATION, location);
        }
    }
    response
}

/// Parses the optional idempotency key of a write.
///
/// # Errors
/// [`ApiError::BadRequest`] when the header is not 32 hex digits.
pub fn request_id(headers: &HeaderMap) -> Result<Option<[u8; 16]>, ApiError> {
    let Some(value) = headers.get(crate::wire::REQUEST_ID_HEADER) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::BadRequest(format!(
            "{} must be 32 hex digits",
            crate::wire::REQUEST_ID_HEADER
        ))
    };
    let text = value.to_str().map_err(|_| bad())?;
    let bytes = hex::decode(text).map_err(|_| bad())?;
    bytes.try_into().map(Some).map_err(|_| bad())
}

/// Replicates `command` with the request's idempotency key, and maps every
/// failure to the API's answer.
///
/// # Errors
/// 307 to the leader on a follower, 503 without a leader, 504 when the outcome
/// is unknown.
pub async fn write(
    ctx: &Context,
    headers: &HeaderMap,
    command: flotilla_storage::Command,
) -> Result<StoreResponse, ApiError> {
    Ok(ctx.store.write(request_id(headers)?, command).await?)
}

/// Waits for the read barrier when the read is linearizable.
///
/// # Errors
/// 503 without leader or quorum, 504 when this member cannot catch up in time.
pub async fn read_barrier(ctx: &Context, consistency: Consistency) -> Result<(), ApiError> {
    Ok(ctx.store.barrier(consistency).await?)
}

/// Turns a JSON extraction failure into a 400 (or 413) that says what was wrong.
pub fn json_rejection(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!("request body is larger than {MAX_BODY} bytes"))
    } else {
        ApiError::BadRequest(format!("malformed request body: {}", rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn nodes_may_write_only_their_own_objects() {
        let allowed = [
            (Method::GET, "/api/v1/pods"),
            (Method::GET, "/cluster/members"),
            (Method::GET, "/cluster/settings"),
            (Method::POST, "/api/v1/nodes"),
            (Method::PATCH, "/api/v1/nodes/w1/status"),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/w1",
            ),
            (
                Method::PATCH,
                "/api/v1/namespaces/default/pods/web-1/status",
            ),
            (Method::DELETE, "/api/v1/namespaces/default/pods/web-1"),
            (Method::POST, "/api/v1/namespaces/default/events"),
        ];
        for (method, path) in allowed {
            assert!(node_may("w1", &method, path), "{method} {path}");
        }
        let refused = [
            (Method::PATCH, "/api/v1/nodes/w2/status"),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/w2",
            ),
            (Method::PATCH, "/api/v1/namespaces/default/pods/web-1"),
            (Method::POST, "/api/v1/namespaces/default/pods"),
            (Method::DELETE, "/api/v1/nodes/w1"),
            (Method::GET, "/kv/get"),
            (Method::POST, "/kv/put"),
            (Method::GET, "/cluster/tokens"),
            (Method::POST, "/apis/apps/v1/namespaces/default/deployments"),
        ];
        for (method, path) in refused {
            assert!(!node_may("w1", &method, path), "{method} {path}");
        }
    }

    /// Kubernetes' node authorizer grants nodes no `pods/log`: a node
    /// credential must not read other nodes' pods' output.
    #[test]
    fn nodes_may_not_read_pod_logs() {
        for sub in ["log", "exec", "attach", "portforward"] {
            let path = format!("/api/v1/namespaces/default/pods/web-1/{sub}");
            assert!(!node_may("w1", &Method::GET, &path), "GET {path}");
        }
        assert!(node_may(
            "w1",
            &Method::GET,
            "/api/v1/namespaces/default/pods/web-1"
        ));
    }
}
