//! `/cluster/...`: joining, members, tokens, status and snapshots.
//!
//! Joining a master is two steps, so the new member can start serving Raft
//! RPCs between them:
//! 1. `POST /cluster/join` with a master token: the leader checks the token and
//!    the name, and grants an id, the peer secret and the admin credential.
//! 2. `POST /cluster/join/complete`: the leader adds the member as a learner,
//!    waits until it has caught up, then promotes it to voter. Both steps are
//!    idempotent, so an interrupted join is resumed by running it again.

use super::{ensure_leader, json_rejection, read_barrier, write, ApiError, Consistency, Context};
use crate::security::nodes;
use crate::security::tokens::{self, Role, TokenRecord};
use crate::store::txn;
use crate::wire::{
    JoinComplete, JoinGrant, JoinRequest, LocalStatus, MemberView, RemoveReply, RemoveRequest,
    TokenCreate, TokenCreated, WorkerJoinGrant, WorkerJoinRequest,
};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::{get, post};
use axum::{Json, Router};
use flotilla_raft::{Member, Node};
use flotilla_storage::{Command, Compare, CompareOp, Op, Response as Store, Target, Txn};
use std::sync::Arc;
use std::time::Duration;

/// How long step two of a join may take (a big store takes a while to ship).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(600);

/// Routes guarded by join tokens instead of the admin credential.
pub fn join_routes() -> Router<Arc<Context>> {
    Router::new()
        .route("/cluster/join", post(join))
        .route("/cluster/join/complete", post(join_complete))
        .route("/cluster/join/worker", post(join_worker))
        .route("/cluster/ca", get(ca))
}

/// The CA certificate (public): a joining machine fetches it and checks its
/// fingerprint against the one in its token before sending the token.
async fn ca(State(ctx): State<Arc<Context>>) -> String {
    ctx.ca.cert_pem.clone()
}

/// Routes that need the admin credential.
pub fn admin_routes() -> Router<Arc<Context>> {
    Router::new()
        .route("/cluster/members", get(members))
        .route("/cluster/settings", get(settings))
        .route("/cluster/members/remove", post(remove))
        .route("/cluster/local", get(local))
        .route("/cluster/tokens", get(list_tokens).post(create_token_route))
        .route("/cluster/tokens/{id}/revoke", post(revoke_token))
        .route("/cluster/snapshot", post(snapshot))
}

/// The members as clients see them.
pub fn member_views(node: &Node) -> Vec<MemberView> {
    let leader = node.leadership().borrow().leader;
    node.members()
        .into_iter()
        .map(|m| MemberView {
            id: format!("{:x}", m.id),
            name: m.member.name,
            address: m.member.addr,
            role: if m.voter { "voter" } else { "learner" }.into(),
            leader: Some(m.id) == leader,
        })
        .collect()
}

/// The control loops' cluster settings (agents pace their heartbeats by the
/// node monitor grace period).
async fn settings(
    State(ctx): State<Arc<Context>>,
) -> Result<Json<crate::store::settings::Settings>, ApiError> {
    crate::store::settings::Settings::load(&ctx.store)
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

async fn members(State(ctx): State<Arc<Context>>) -> Json<Vec<MemberView>> {
    Json(member_views(&ctx.node))
}

async fn local(State(ctx): State<Arc<Context>>) -> Json<LocalStatus> {
    let m = ctx.node.metrics();
    Json(LocalStatus {
        id: format!("{:x}", ctx.node.id()),
        name: ctx.node.member().name.clone(),
        address: ctx.node.member().addr.clone(),
        state: format!("{:?}", m.state),
        term: m.current_term,
        leader: m.current_leader.map(|id| format!("{id:x}")),
        last_log_index: m.last_log_index.unwrap_or(0),
        commit_index: ctx.node.committed_index(),
        applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
        revision: ctx.node.engine().revision(),
        snapshot_installs: ctx.node.snapshot_installs(),
    })
}

/// Reads a token record with a linearizable read.
async fn token_record(ctx: &Context, id: &str) -> Result<Option<(TokenRecord, i64)>, ApiError> {
    read_barrier(ctx, Consistency::Linearizable).await?;
    let read = ctx.node.engine().get(tokens::key(id).as_bytes(), None)?;
    match read.value {
        None => Ok(None),
        Some(kv) => serde_json::from_slice(&kv.value)
            .map(|r| Some((r, kv.mod_revision)))
            .map_err(|e| ApiError::Internal(format!("token record {id} is corrupt: {e}"))),
    }
}

/// Checks a join token for `role`: 403 naming the problem when refused.
async fn check_token(ctx: &Context, token: &str, role: Role) -> Result<(), ApiError> {
    let (id, _) = tokens::parse(token).map_err(|e| ApiError::Forbidden(e.to_string()))?;
    let record = token_record(ctx, id).await?.map(|(r, _)| r);
    tokens::check(token, record.as_ref(), role, tokens::unix_now())
        .map_err(|e| ApiError::Forbidden(e.to_string()))
}

fn validate_member(name: &str, address: &str) -> Result<(), ApiError> {
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !name_ok {
        return Err(ApiError::BadRequest(format!(
            "member name {name:?} must be 1-63 characters of a-z, 0-9, '-' and '.'"
        )));
    }
    if address.parse::<std::net::SocketAddr>().is_err() && !address.contains(':') {
        return Err(ApiError::BadRequest(format!(
            "member address {address:?} must be HOST:PORT"
        )));
    }
    Ok(())
}

/// Fails when another member already has `name`.
fn check_name_free(node: &Node, name: &str, id: Option<u64>) -> Result<(), ApiError> {
    match node.members().into_iter().find(|m| m.member.name == name) {
        Some(existing) if Some(existing.id) != id => Err(ApiError::Conflict(format!(
            "a member named {name} already exists (id {:x}); pick another --name or remove it first",
            existing.id
        ))),
        _ => Ok(()),
    }
}

async fn join(
    State(ctx): State<Arc<Context>>,
    uri: Uri,
    extracted: Result<Json<JoinRequest>, JsonRejection>,
) -> Result<Json<JoinGrant>, ApiError> {
    let req = extracted.map_err(json_rejection)?.0;
    ensure_leader(&ctx, &uri)?;
    validate_member(&req.name, &req.address)?;
    check_token(&ctx, &req.token, Role::Master).await?;
    check_name_free(&ctx.node, &req.name, req.id)?;
    let taken: Vec<u64> = ctx.node.members().iter().map(|m| m.id).collect();
    let id = match req.id {
        Some(id) => id,
        None => loop {
            let id = rand::random::<u64>() & 0x7fff_ffff_ffff_ffff;
            if id != 0 && !taken.contains(&id) {
                break id;
            }
        },
    };
    tracing::info!(name = %req.name, id = format_args!("{id:x}"), "granted a join");
    Ok(Json(JoinGrant {
        cluster_id: ctx.cluster_id.clone(),
        id,
        peer_secret: ctx.peer_secret.clone(),
        admin_token: ctx.admin_token.clone(),
        ca: ctx.ca.clone(),
        agent_ca: Some(ctx.agent_ca.clone()),
    }))
}

/// Joins a worker: checks the worker token, records a credential for the
/// node, and hands it back with the CA and a serving certificate for the
/// agent's log server. A name whose Node still exists is refused: delete the
/// Node (which revokes its credential) to join again under that name.
///
/// The serving certificate comes from the agent CA and names the node only
/// (never the address the joiner claims): kubectl, `ctl`, agents and Raft
/// peers do not trust it at all, and the log proxy, which does, checks it
/// names the node it means to reach.
async fn join_worker(
    State(ctx): State<Arc<Context>>,
    uri: Uri,
    extracted: Result<Json<WorkerJoinRequest>, JsonRejection>,
) -> Result<Json<WorkerJoinGrant>, ApiError> {
    let req = extracted.map_err(json_rejection)?.0;
    ensure_leader(&ctx, &uri)?;
    if let Some(problem) = crate::objects::validate::dns1123_subdomain(&req.name) {
        return Err(ApiError::BadRequest(format!(
            "node name {:?} is invalid: {problem}; pass --name",
            req.name
        )));
    }
    let host = req.address.trim();
    if host.is_empty() || host.contains('/') {
        return Err(ApiError::BadRequest(format!(
            "node address {:?} must be an IP address or host name",
            req.address
        )));
    }
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(ApiError::BadRequest(format!(
                "node address {host} cannot reach one node: pass the address masters reach this node at (--address)"
            )));
        }
    }
    if req.name.parse::<std::net::IpAddr>().is_ok() {
        return Err(ApiError::BadRequest(format!(
            "node name {:?} is an IP address; pass --name with a host name",
            req.name
        )));
    }
    check_token(&ctx, &req.token, Role::Worker).await?;
    let serving = ctx
        .agent_ca
        .issue_node(&req.name)
        .map_err(|e| ApiError::Internal(format!("signing the agent's certificate: {e}")))?;
    let (credential, record) = nodes::issue(&req.name, tokens::unix_now());
    let agent_secret = record.agent_secret.clone();
    let key = nodes::key(&req.name).into_bytes();
    let value = serde_json::to_vec(&record).map_err(|e| ApiError::Internal(e.to_string()))?;
    let node_key = crate::objects::registry::by_kind("Node")
        .map(|r| r.key(None, &req.name))
        .unwrap_or_default()
        .into_bytes();
    // A new name, or one whose Node is gone: record the credential.
    let command = txn::when(node_key, Target::CreateRevision(0), Op::Put { key, value });
    if !txn::succeeded(&write(&ctx, &HeaderMap::new(), command).await?) {
        return Err(ApiError::Conflict(format!(
            "node {} has already joined (its Node exists): run the agent from its own data directory to resume it, delete the node (`ctl delete node {}`) to join again under that name, or pick another --name",
            req.name, req.name
        )));
    }
    tracing::info!(node = %req.name, "a worker joined");
    Ok(Json(WorkerJoinGrant {
        cluster_id: ctx.cluster_id.clone(),
        credential,
        masters: ctx
            .node
            .members()
            .into_iter()
            .map(|m| m.member.addr)
            .collect(),
        ca_pem: ctx.ca.cert_pem.clone(),
        serving,
        agent_secret,
    }))
}

async fn join_complete(
    State(ctx): State<Arc<Context>>,
    uri: Uri,
    extracted: Result<Json<JoinComplete>, JsonRejection>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let req = extracted.map_err(json_rejection)?.0;
    ensure_leader(&ctx, &uri)?;
    validate_member(&req.name, &req.address)?;
    check_token(&ctx, &req.token, Role::Master).await?;
    let _guard = ctx.membership_lock.lock().await;
    check_name_free(&ctx.node, &req.name, Some(req.id))?;
    let already_voter = ctx.node.members().iter().any(|m| m.id == req.id && m.voter);
    if !already_voter {
        let member = Member {
            name: req.name.clone(),
            addr: req.address.clone(),
        };
        let steps = async {
            ctx.node.add_learner(req.id, member).await?;
            tracing::info!(name = %req.name, "learner caught up; promoting to voter");
            ctx.node.promote(req.id).await
        };
        match tokio::time::timeout(JOIN_TIMEOUT, steps).await {
            Err(_) => {
                return Err(ApiError::Timeout(format!(
                    "{} did not catch up within {}s; run the join again to resume",
                    req.name,
                    JOIN_TIMEOUT.as_secs()
                )))
            }
            Ok(Err(e)) => return Err(membership_error(&ctx, &uri, e)),
            Ok(Ok(())) => {}
        }
    }
    Ok(Json(member_views(&ctx.node)))
}

fn membership_error(ctx: &Context, uri: &Uri, e: flotilla_raft::Error) -> ApiError {
    match e {
        flotilla_raft::Error::NotLeader(Some((_, leader))) => super::redirect(&leader, uri),
        flotilla_raft::Error::NotLeader(None) => {
            ApiError::Unavailable("no leader: an election is in progress; retry shortly".into())
        }
        flotilla_raft::Error::Membership(message) => ApiError::Conflict(message),
        other => {
            tracing::warn!(member = %ctx.node.member().name, "membership change failed: {other}");
            ApiError::Unavailable(other.to_string())
        }
    }
}

async fn remove(
    State(ctx): State<Arc<Context>>,
    uri: Uri,
    extracted: Result<Json<RemoveRequest>, JsonRejection>,
) -> Result<Json<RemoveReply>, ApiError> {
    let req = extracted.map_err(json_rejection)?.0;
    ensure_leader(&ctx, &uri)?;
    let _guard = ctx.membership_lock.lock().await;
    let members = ctx.node.members();
    let Some(target) = members.iter().find(|m| m.member.name == req.name) else {
        let names: Vec<&str> = members.iter().map(|m| m.member.name.as_str()).collect();
        return Err(ApiError::NotFound(format!(
            "no member named {}; members are: {}",
            req.name,
            names.join(", ")
        )));
    };
    ctx.node
        .remove(target.id)
        .await
        .map_err(|e| membership_error(&ctx, &uri, e))?;
    let voters = ctx.node.members().iter().filter(|m| m.voter).count();
    let warning = (voters % 2 == 0).then(|| {
        format!(
            "the cluster now has {voters} voters: an even count tolerates no more failures than {} voters; add or remove one",
            voters - 1
        )
    });
    Ok(Json(RemoveReply { voters, warning }))
}

/// `ID.SECRET` with the CA fingerprint appended: `ID.SECRET.HEX`.
fn with_ca_hash(ctx: &Context, token: &str) -> Result<String, ApiError> {
    let fingerprint = crate::security::pki::fingerprint(&ctx.ca.cert_pem)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(format!(
        "{token}.{}",
        fingerprint.trim_start_matches("sha256:")
    ))
}

/// Creates a join token through the replicated store.
///
/// # Errors
/// As [`write`].
pub async fn create_token(
    ctx: &Context,
    role: Role,
    ttl: Duration,
) -> Result<TokenCreated, ApiError> {
    let (token, record) = tokens::generate(role, ttl.as_secs(), tokens::unix_now());
    let value = serde_json::to_vec(&record).map_err(|e| ApiError::Internal(e.to_string()))?;
    // Create-only: a colliding id must never overwrite another token.
    let key = record.key().into_bytes();
    let command = Command::Txn(Txn {
        compare: vec![Compare {
            key: key.clone(),
            target: Target::CreateRevision(0),
            op: CompareOp::Equal,
        }],
        success: vec![Op::Put { key, value }],
        failure: vec![],
    });
    match write(ctx, &HeaderMap::new(), command).await? {
        Store::Txn {
            succeeded: true, ..
        } => Ok(TokenCreated {
            token: with_ca_hash(ctx, &token)?,
            id: record.id,
            expires: record.expires,
        }),
        Store::Txn { .. } => Err(ApiError::Conflict(
            "token id collision; run the command again".into(),
        )),
        other => Err(ApiError::Internal(format!(
            "unexpected store reply {other:?}"
        ))),
    }
}

async fn create_token_route(
    State(ctx): State<Arc<Context>>,
    extracted: Result<Json<TokenCreate>, JsonRejection>,
) -> Result<Json<TokenCreated>, ApiError> {
    let req = extracted.map_err(json_rejection)?.0;
    if req.ttl_seconds == 0 {
        return Err(ApiError::BadRequest("ttl must be positive".into()));
    }
    create_token(&ctx, req.role, Duration::from_secs(req.ttl_seconds))
        .await
        .map(Json)
}

async fn list_tokens(State(ctx): State<Arc<Context>>) -> Result<Json<Vec<TokenRecord>>, ApiError> {
    read_barrier(&ctx, Consistency::Linearizable).await?;
    let read = ctx
        .node
        .engine()
        .range(tokens::TOKEN_PREFIX.as_bytes(), 0, None)?;
    let records = read
        .value
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<TokenRecord>(&kv.value).ok())
        .collect();
    Ok(Json(records))
}

async fn revoke_token(
    State(ctx): State<Arc<Context>>,
    Path(id): Path<String>,
) -> Result<Json<TokenRecord>, ApiError> {
    let Some((mut record, mod_revision)) = token_record(&ctx, &id).await? else {
        return Err(ApiError::NotFound(format!("no token with id {id}")));
    };
    record.revoked = true;
    let value = serde_json::to_vec(&record).map_err(|e| ApiError::Internal(e.to_string()))?;
    let key = record.key().into_bytes();
    let command = txn::when(
        key.clone(),
        Target::ModRevision(mod_revision),
        Op::Put { key, value },
    );
    match txn::succeeded(&write(&ctx, &HeaderMap::new(), command).await?) {
        true => Ok(Json(record)),
        false => Err(ApiError::Conflict(format!(
            "token {id} changed meanwhile; run the command again"
        ))),
    }
}

async fn snapshot(State(ctx): State<Arc<Context>>) -> Result<Json<serde_json::Value>, ApiError> {
    let index = ctx
        .node
        .snapshot_and_purge(Duration::from_secs(60))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(
        serde_json::json!({ "snapshot_index": index, "purged_to": index }),
    ))
}
