//! The server half of the Raft transport: axum routes under `/raft/`.
//!
//! Bodies are bincode (see [`crate::network`]). Every route requires the peer
//! secret; a request without it gets 401 and touches nothing. Besides the three
//! Raft RPCs there is `read-index`, which a follower calls on the leader to
//! serve a linearizable read locally (the leader confirms its leadership with a
//! quorum and returns the log index the follower must have applied).

use crate::codec;
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Serialize;
use std::sync::Arc;

/// Largest RPC body accepted: a snapshot chunk or a batch of log entries.
pub const MAX_RPC_BODY: usize = 64 * 1024 * 1024;

/// The `/raft/...` routes for `node`.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/raft/read-index", post(read_index))
        // A route layer: paths that are not Raft RPCs fall through to the
        // API's own answer (a 404 Status), not to the peer-secret check.
        .route_layer(middleware::from_fn_with_state(node.clone(), authenticate))
        .route_layer(DefaultBodyLimit::max(MAX_RPC_BODY))
        .with_state(node)
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

async fn authenticate(State(node): State<Arc<Node>>, request: Request, next: Next) -> Response {
    match bearer(request.headers()) {
        Some(token) if node.peer_secret_matches(token) => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            "raft RPCs need the cluster's peer secret\n",
        )
            .into_response(),
    }
}

fn reply<T: Serialize>(value: &T) -> Response {
    match codec::encode(value) {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encode reply: {e}\n"),
        )
            .into_response(),
    }
}

fn bad_body(e: codec::CodecError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        format!("malformed raft RPC body: {e}\n"),
    )
        .into_response()
}

async fn append(State(node): State<Arc<Node>>, body: Bytes) -> Response {
    match codec::decode_rpc(&body) {
        Ok(rpc) => reply(&node.raft().append_entries(rpc).await),
        Err(e) => bad_body(e),
    }
}

async fn vote(State(node): State<Arc<Node>>, body: Bytes) -> Response {
    match codec::decode_rpc(&body) {
        Ok(rpc) => reply(&node.raft().vote(rpc).await),
        Err(e) => bad_body(e),
    }
}

async fn snapshot(State(node): State<Arc<Node>>, body: Bytes) -> Response {
    match codec::decode_rpc(&body) {
        Ok(rpc) => reply(&node.raft().install_snapshot(rpc).await),
        Err(e) => bad_body(e),
    }
}

async fn read_index(State(node): State<Arc<Node>>) -> Response {
    reply(&node.leader_read_index().await)
}
