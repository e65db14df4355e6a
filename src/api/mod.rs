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
pub mod selectors;
pub mod services;
pub mod table;

use crate::security;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
pub use error::ApiError;
use flotilla_raft::{Member, Node, WriteError};
use flotilla_storage::Response as StoreResponse;
use std::sync::Arc;
use std::time::Duration;

/// Header naming the leader's `HOST:PORT` on a redirect.
pub const LEADER_HEADER: &str = "x-flotilla-leader";
/// Largest `/kv` and `/cluster` request body (etcd's default request limit).
pub const MAX_BODY: usize = 3 * 512 * 1024;
/// How long a write may wait to commit before the API answers 504.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a linearizable read may wait for the read barrier.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What every handler can reach.
pub struct Context {
    /// The replicated store.
    pub node: Arc<Node>,
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
}

/// The whole router of a master.
pub fn router(ctx: Arc<Context>) -> Router {
    let protected = Router::new()
        .merge(kv::routes())
        .merge(rest::routes())
        .merge(apis::routes())
        .merge(cluster::admin_routes())
        .merge(health::admin_routes())
        .layer(middleware::from_fn_with_state(ctx.clone(), authenticate));
    let open = Router::new()
        .merge(cluster::join_routes())
        .merge(health::open_routes());
    Router::new()
        .merge(protected)
        .merge(open)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(refuse_oversized))
        .with_state(ctx.clone())
        .merge(flotilla_raft::rpc::router(ctx.node.clone()))
        .layer(middleware::from_fn_with_state(
            ctx.metrics.clone(),
            metrics::track,
        ))
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

async fn authenticate(State(ctx): State<Arc<Context>>, request: Request, next: Next) -> Response {
    match flotilla_raft::rpc::bearer(request.headers()) {
        Some(token) if security::secrets_match(token, &ctx.admin_token) => next.run(request).await,
        Some(_) => ApiError::Unauthorized("the bearer token is not this cluster's admin credential".into())
            .into_response(),
        None => ApiError::Unauthorized(
            "missing credential: send the admin token from admin.kubeconfig as `Authorization: Bearer TOKEN`"
                .into(),
        )
        .into_response(),
    }
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

/// Replicates `command` and maps every failure to the API's answer.
///
/// # Errors
/// 307 to the leader on a follower, 503 without a leader, 504 when the outcome
/// is unknown.
pub async fn write(
    ctx: &Context,
    uri: &Uri,
    headers: &HeaderMap,
    command: flotilla_storage::Command,
) -> Result<StoreResponse, ApiError> {
    let request = flotilla_storage::Request {
        id: request_id(headers)?,
        command,
    };
    match tokio::time::timeout(WRITE_TIMEOUT, ctx.node.write(request)).await {
        Err(_) => Err(ApiError::Timeout(format!(
            "the write was not committed within {}s; its outcome is unknown: retry with the same {}",
            WRITE_TIMEOUT.as_secs(),
            crate::wire::REQUEST_ID_HEADER
        ))),
        Ok(Err(WriteError::NotLeader { leader: Some(leader) })) => Err(redirect(&leader, uri)),
        Ok(Err(WriteError::NotLeader { leader: None })) => Err(no_leader()),
        Ok(Err(e)) => Err(ApiError::Unavailable(e.to_string())),
        Ok(Ok(response)) => Ok(response),
    }
}

/// Read consistency requested by a client.
#[derive(serde::Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Sees every write acknowledged before the read began (the default).
    #[default]
    Linearizable,
    /// This member's local state, possibly stale.
    Serializable,
}

/// Waits for the read barrier when the read is linearizable.
///
/// # Errors
/// 503 without leader or quorum, 504 when this member cannot catch up in time.
pub async fn read_barrier(ctx: &Context, consistency: Consistency) -> Result<(), ApiError> {
    if consistency == Consistency::Linearizable {
        ctx.node.read_barrier(READ_TIMEOUT).await?;
    }
    Ok(())
}

/// Turns a JSON extraction failure into a 400 (or 413) that says what was wrong.
pub fn json_rejection(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!("request body is larger than {MAX_BODY} bytes"))
    } else {
        ApiError::BadRequest(format!("malformed request body: {}", rejection.body_text()))
    }
}
