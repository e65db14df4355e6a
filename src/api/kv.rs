//! `/kv/...`: the raw store, for debugging and benchmarks (`ctl kv`, `ctl bench kv`).
//!
//! - `GET  /kv/get?key=K[&consistency=..][&revision=R]`
//! - `GET  /kv/range?prefix=P[&limit=N][&consistency=..][&revision=R]`
//! - `POST /kv/put` `{"key","value"}`, `POST /kv/delete` `{"key","prefix"}`,
//!   `POST /kv/txn`, `POST /kv/compact` `{"revision"}`
//! - `GET  /kv/watch?prefix=P[&from=R]`: newline-delimited JSON events with
//!   revision > R (from now if R is absent), from this member's local store;
//!   410 when R is below the compacted revision.

use super::{json_rejection, read_barrier, write, ApiError, Consistency, Context};
use crate::wire::{
    CompactBody, DeleteBody, DeleteReply, GetReply, Kv, PutBody, PutReply, RangeReply, TxnBody,
    TxnCompare, TxnOp, TxnOpReply, TxnReply, WatchEvent, MEMBER_HEADER,
};
use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flotilla_storage::{
    Command, Compare, CompareOp, Event, EventKind, Op, OpResponse, Rejection, Response as Store,
    Revision, Target, Txn,
};
use serde::Deserialize;
use std::sync::Arc;

/// The `/kv` routes.
pub fn routes() -> Router<Arc<Context>> {
    Router::new()
        .route("/kv/get", get(get_key))
        .route("/kv/range", get(range))
        .route("/kv/put", post(put))
        .route("/kv/delete", post(delete))
        .route("/kv/txn", post(txn))
        .route("/kv/compact", post(compact))
        .route("/kv/watch", get(watch))
}

#[derive(Deserialize)]
struct GetQuery {
    key: String,
    #[serde(default)]
    consistency: Consistency,
    revision: Option<Revision>,
}

#[derive(Deserialize)]
struct RangeQuery {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    consistency: Consistency,
    revision: Option<Revision>,
}

#[derive(Deserialize)]
struct WatchQuery {
    #[serde(default)]
    prefix: String,
    from: Option<Revision>,
}

fn query<T: serde::de::DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::BadRequest(format!("bad query: {}", e.body_text())))
}

fn body<T>(extracted: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    extracted.map(|j| j.0).map_err(json_rejection)
}

fn served_by(ctx: &Context, reply: impl IntoResponse) -> Response {
    ([(MEMBER_HEADER, ctx.node.member().name.clone())], reply).into_response()
}

async fn get_key(State(ctx): State<Arc<Context>>, uri: Uri) -> Result<Response, ApiError> {
    let q: GetQuery = query(&uri)?;
    read_barrier(&ctx, q.consistency).await?;
    let read = ctx.node.engine().get(q.key.as_bytes(), q.revision)?;
    Ok(served_by(
        &ctx,
        Json(GetReply {
            kv: read.value.as_ref().map(Kv::from),
            revision: read.revision,
            member: ctx.node.member().name.clone(),
        }),
    ))
}

async fn range(State(ctx): State<Arc<Context>>, uri: Uri) -> Result<Response, ApiError> {
    let q: RangeQuery = query(&uri)?;
    read_barrier(&ctx, q.consistency).await?;
    let read = ctx
        .node
        .engine()
        .range(q.prefix.as_bytes(), q.limit, q.revision)?;
    Ok(served_by(
        &ctx,
        Json(RangeReply {
            kvs: read.value.kvs.iter().map(Kv::from).collect(),
            more: read.value.more,
            count: read.value.count,
            revision: read.revision,
            member: ctx.node.member().name.clone(),
        }),
    ))
}

/// Maps a deterministic refusal of the store to the API's answer.
fn rejected(rejection: Rejection) -> ApiError {
    match rejection {
        Rejection::EmptyKey => ApiError::BadRequest("the key must not be empty".into()),
        Rejection::DuplicateKey { key } => ApiError::BadRequest(format!(
            "a transaction may not write key {:?} twice",
            String::from_utf8_lossy(&key)
        )),
        Rejection::Compacted { compact_revision } => ApiError::Gone(format!(
            "already compacted up to revision {compact_revision}"
        )),
        Rejection::FutureRevision { current } => ApiError::BadRequest(format!(
            "revision is in the future; the current revision is {current}"
        )),
    }
}

fn unexpected(response: &Store) -> ApiError {
    ApiError::Internal(format!(
        "store answered with the wrong kind of reply: {response:?}"
    ))
}

async fn put(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    extracted: Result<Json<PutBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(extracted)?;
    let want_prev = b.prev_kv;
    let command = Command::Put {
        key: b.key.into_bytes(),
        value: b.value.into_bytes(),
    };
    match write(&ctx, &headers, command).await? {
        Store::Put { revision, prev } => Ok(served_by(
            &ctx,
            Json(PutReply {
                revision,
                prev_kv: prev.as_ref().filter(|_| want_prev).map(Kv::from),
            }),
        )),
        Store::Rejected(r) => Err(rejected(r)),
        other => Err(unexpected(&other)),
    }
}

async fn delete(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    extracted: Result<Json<DeleteBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(extracted)?;
    let command = if b.prefix {
        Command::DeletePrefix {
            prefix: b.key.into_bytes(),
        }
    } else {
        Command::Delete {
            key: b.key.into_bytes(),
        }
    };
    match write(&ctx, &headers, command).await? {
        Store::Delete {
            revision, deleted, ..
        } => Ok(served_by(&ctx, Json(DeleteReply { revision, deleted }))),
        Store::Rejected(r) => Err(rejected(r)),
        other => Err(unexpected(&other)),
    }
}

fn compare(c: TxnCompare) -> Result<Compare, ApiError> {
    let op = match c.result.as_str() {
        "=" | "==" => CompareOp::Equal,
        "!=" => CompareOp::NotEqual,
        ">" => CompareOp::Greater,
        "<" => CompareOp::Less,
        other => {
            return Err(ApiError::BadRequest(format!(
                "compare result {other:?}: expected one of =, !=, >, <"
            )))
        }
    };
    let target = match c.target.as_str() {
        "version" => Target::Version(c.number),
        "create_revision" | "create" => Target::CreateRevision(c.number),
        "mod_revision" | "mod" => Target::ModRevision(c.number),
        "value" => Target::Value(c.value.into_bytes()),
        other => {
            return Err(ApiError::BadRequest(format!(
                "compare target {other:?}: expected version, create_revision, mod_revision or value"
            )))
        }
    };
    Ok(Compare {
        key: c.key.into_bytes(),
        target,
        op,
    })
}

fn op(o: TxnOp) -> Op {
    match o {
        TxnOp::Put { key, value } => Op::Put {
            key: key.into_bytes(),
            value: value.into_bytes(),
        },
        TxnOp::Delete { key } => Op::Delete {
            key: key.into_bytes(),
        },
        TxnOp::Get { key } => Op::Get {
            key: key.into_bytes(),
        },
        TxnOp::Range { prefix, limit } => Op::Range {
            prefix: prefix.into_bytes(),
            limit,
        },
    }
}

fn op_reply(r: &OpResponse) -> TxnOpReply {
    match r {
        OpResponse::Put { prev } => TxnOpReply::Put {
            prev_kv: prev.as_ref().map(Kv::from),
        },
        OpResponse::Delete { deleted, .. } => TxnOpReply::Delete { deleted: *deleted },
        OpResponse::Get { kv } => TxnOpReply::Get {
            kv: kv.as_ref().map(Kv::from),
        },
        OpResponse::Range { kvs, more } => TxnOpReply::Range {
            kvs: kvs.iter().map(Kv::from).collect(),
            more: *more,
        },
    }
}

async fn txn(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    extracted: Result<Json<TxnBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(extracted)?;
    let command = Command::Txn(Txn {
        compare: b
            .compare
            .into_iter()
            .map(compare)
            .collect::<Result<_, _>>()?,
        success: b.success.into_iter().map(op).collect(),
        failure: b.failure.into_iter().map(op).collect(),
    });
    match write(&ctx, &headers, command).await? {
        Store::Txn {
            succeeded,
            revision,
            responses,
        } => Ok(served_by(
            &ctx,
            Json(TxnReply {
                succeeded,
                revision,
                responses: responses.iter().map(op_reply).collect(),
            }),
        )),
        Store::Rejected(r) => Err(rejected(r)),
        other => Err(unexpected(&other)),
    }
}

async fn compact(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    extracted: Result<Json<CompactBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(extracted)?;
    let command = Command::Compact {
        revision: b.revision,
    };
    match write(&ctx, &headers, command).await? {
        Store::Compact { revision } => Ok(served_by(
            &ctx,
            Json(serde_json::json!({ "compact_revision": revision })),
        )),
        Store::Rejected(r) => Err(rejected(r)),
        other => Err(unexpected(&other)),
    }
}

/// The JSON line of one event.
pub fn event_line(event: &Event) -> Vec<u8> {
    let line = WatchEvent {
        kind: match event.kind {
            EventKind::Put => "PUT".into(),
            EventKind::Delete => "DELETE".into(),
        },
        kv: Kv::from(&event.kv),
        prev_kv: event.prev_kv.as_ref().map(Kv::from),
    };
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

async fn watch(State(ctx): State<Arc<Context>>, uri: Uri) -> Result<Response, ApiError> {
    let q: WatchQuery = query(&uri)?;
    let start = q.from.unwrap_or_else(|| ctx.node.engine().revision());
    let mut cursor = ctx.store.cursor(q.prefix.into_bytes(), start);
    // Fail before the stream starts when the history is gone.
    let first = cursor.poll()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let mut batch = first;
        loop {
            for event in &batch {
                if tx.send(Ok(Bytes::from(event_line(event)))).await.is_err() {
                    return;
                }
            }
            // Wait for news, or for the client to go away.
            batch = tokio::select! {
                next = cursor.next() => match next {
                    Ok(events) => events,
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return;
                    }
                },
                () = tx.closed() => return,
            };
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_parses_targets_and_rejects_unknown() {
        let ok = TxnCompare {
            key: "k".into(),
            target: "mod_revision".into(),
            result: "=".into(),
            number: 7,
            value: String::new(),
        };
        assert!(matches!(
            compare(ok),
            Ok(Compare {
                target: Target::ModRevision(7),
                op: CompareOp::Equal,
                ..
            })
        ));
        let bad = TxnCompare {
            key: "k".into(),
            target: "colour".into(),
            result: "=".into(),
            number: 0,
            value: String::new(),
        };
        assert!(matches!(compare(bad), Err(ApiError::BadRequest(_))));
    }
}
