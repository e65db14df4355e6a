//! The agent's own HTTPS endpoint, which masters call to fetch container
//! logs (`kubectl logs` reaches a pod's output through it, as it reaches
//! kubelet's port 10250).
//!
//! `GET /containerLogs/NAMESPACE/POD/CONTAINER?follow=&tailLines=&timestamps=&previous=`
//! streams the output of the container's newest run (or the run before it
//! with `previous=true`). Only masters may ask: they present the secret the
//! node was given at join. The certificate is the one the agent CA signed
//! for this node's name at join: only the masters' log client trusts it.

use super::runtime::{LogOptions, Runtime, RuntimeError};
use crate::security::pki::{self, Serving};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use serde::Deserialize;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Server {
    runtime: Arc<dyn Runtime>,
    secret: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    #[serde(default)]
    follow: bool,
    tail_lines: Option<u64>,
    #[serde(default)]
    timestamps: bool,
    #[serde(default)]
    previous: bool,
}

fn plain(code: StatusCode, message: String) -> Response {
    (code, message).into_response()
}

async fn container_logs(
    State(server): State<Arc<Server>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Response {
    let presented = flotilla_raft::rpc::bearer(&headers).unwrap_or("");
    if !crate::security::secrets_match(presented, &server.secret) {
        return plain(
            StatusCode::UNAUTHORIZED,
            "only masters may read logs here".into(),
        );
    }
    let containers = match server.runtime.list().await {
        Ok(c) => c,
        Err(e) => return plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let mut runs: Vec<_> = containers
        .into_iter()
        .filter(|c| {
            c.pod.namespace == namespace
                && c.pod.name == pod
                && c.name.as_deref() == Some(&container)
        })
        .collect();
    runs.sort_by_key(|c| c.attempt);
    let chosen = if query.previous {
        runs.len().checked_sub(2).and_then(|i| runs.get(i))
    } else {
        runs.last()
    };
    let Some(chosen) = chosen else {
        let what = if query.previous {
            "a previous run of "
        } else {
            ""
        };
        return plain(
            StatusCode::NOT_FOUND,
            format!("{what}container \"{container}\" in pod \"{pod}\" is not on this node (it may be waiting to start)"),
        );
    };
    let options = LogOptions {
        follow: query.follow,
        tail: query.tail_lines,
        timestamps: query.timestamps,
    };
    match server.runtime.logs(&chosen.id, options).await {
        Ok(stream) => {
            let stream = stream
                .map(|chunk| chunk.map_err(|e: RuntimeError| std::io::Error::other(e.to_string())));
            ([("content-type", "text/plain")], Body::from_stream(stream)).into_response()
        }
        Err(RuntimeError::NotFound(_)) => plain(
            StatusCode::NOT_FOUND,
            format!("container \"{container}\" is gone"),
        ),
        Err(e) => plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Serves the log endpoint on `tcp` until `stop`.
///
/// # Errors
/// When the serving certificate cannot be loaded.
pub async fn serve(
    tcp: TcpListener,
    serving: Serving,
    secret: String,
    runtime: Arc<dyn Runtime>,
    stop: CancellationToken,
) -> Result<(), pki::PkiError> {
    let config = pki::server_config(&serving)?;
    crate::https::raise_fd_limit();
    let router = Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(Server { runtime, secret }));
    // Only masters call here: a modest cap, no member reserve.
    let limits = crate::https::Limits {
        max_connections: 1024,
        peer_reserve: 0,
        ..crate::https::Limits::default()
    };
    crate::https::serve(tcp, config, router, limits, Arc::new(|_| false), stop).await;
    Ok(())
}
