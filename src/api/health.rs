//! Health, readiness, version and metrics.

use super::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::fmt::Write;
use std::sync::Arc;

/// Routes anyone may call.
pub fn open_routes() -> Router<Arc<Context>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
}

/// Routes that need the admin credential.
pub fn admin_routes() -> Router<Arc<Context>> {
    Router::new().route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when this member knows a leader (so it can serve reads and forward
/// writes) and, when it is the leader, a quorum acknowledged it within an
/// election timeout (a partitioned leader is not ready, as etcd's).
async fn readyz(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    let leadership = ctx.node.leadership().borrow().clone();
    match leadership.leader {
        Some(_) if ctx.node.leader_is_isolated() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: this member leads but has not heard from a quorum within an election timeout\n"
                .to_owned(),
        ),
        Some(_) => (StatusCode::OK, "ok".to_owned()),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no leader known\n".to_owned(),
        ),
    }
}

async fn version() -> impl IntoResponse {
    Json(serde_json::json!({
        "major": "1",
        "minor": "32",
        "gitVersion": concat!("v1.32.0-flotilla.", env!("CARGO_PKG_VERSION")),
        "flotilla": env!("CARGO_PKG_VERSION"),
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
}

async fn metrics(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    let m = ctx.node.metrics();
    let leadership = ctx.node.leadership().borrow().clone();
    let mut out = String::new();
    let gauges: [(&str, &str, u64); 8] = [
        ("flotilla_raft_term", "Current Raft term.", m.current_term),
        (
            "flotilla_raft_is_leader",
            "1 if this member is the leader.",
            u64::from(leadership.is_self),
        ),
        (
            "flotilla_raft_has_leader",
            "1 if a leader is known.",
            u64::from(leadership.leader.is_some()),
        ),
        (
            "flotilla_raft_last_log_index",
            "Last index in this member's log.",
            m.last_log_index.unwrap_or(0),
        ),
        (
            "flotilla_raft_commit_index",
            "Highest log index known committed.",
            ctx.node.committed_index(),
        ),
        (
            "flotilla_raft_applied_index",
            "Last index applied to the store.",
            m.last_applied.map(|l| l.index).unwrap_or(0),
        ),
        (
            "flotilla_raft_snapshot_index",
            "Last index covered by the current snapshot.",
            m.snapshot.map(|l| l.index).unwrap_or(0),
        ),
        (
            "flotilla_raft_snapshot_installs_total",
            "Snapshots installed from a leader since start.",
            ctx.node.snapshot_installs(),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP flotilla_raft_leader_id Id of the known leader (0 if none).\n# TYPE flotilla_raft_leader_id gauge\nflotilla_raft_leader_id {}",
        leadership.leader.unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "# HELP flotilla_store_revision Store revision.\n# TYPE flotilla_store_revision gauge\nflotilla_store_revision {}",
        ctx.node.engine().revision()
    );
    // The leader knows how far each follower has replicated: that is the
    // commit index's input, shown per member.
    if let Some(replication) = &m.replication {
        let _ = writeln!(out, "# HELP flotilla_raft_matched_index Log index replicated to each member (leader only).\n# TYPE flotilla_raft_matched_index gauge");
        for (id, matched) in replication {
            let _ = writeln!(
                out,
                "flotilla_raft_matched_index{{member=\"{id:x}\"}} {}",
                matched.map(|l| l.index).unwrap_or(0)
            );
        }
    }
    ctx.metrics.render(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
