//! The Kubernetes REST API over the replicated store.
//!
//! Paths are parsed here rather than by the router, because Kubernetes' URL
//! space is ambiguous to a pattern router (`/api/v1/namespaces/default` is a
//! namespace, `/api/v1/namespaces/default/pods` a collection):
//!
//! ```text
//! /api/v1/PLURAL[/NAME[/SUB]]                          cluster-scoped, or all namespaces
//! /api/v1/namespaces/NS/PLURAL[/NAME[/SUB]]            namespaced
//! /apis/GROUP/VERSION/...                              the same under a group
//! ```
//!
//! Every object is stored as JSON under `/registry/PLURAL[/NS]/NAME`; its
//! `resourceVersion` is the key's mod revision. Writes are compare-and-swap
//! transactions on that revision, so a stale update answers 409 Conflict and a
//! deposed leader's late write fails instead of clobbering. Reads are
//! linearizable unless the client passes `resourceVersion=0`; watches are served
//! from the local store's history.

use super::{read_barrier, write, ApiError, Caller, Consistency, Context};
use crate::api::selectors::Selector;
use crate::api::services::{self, Claim};
use crate::api::store;
use crate::objects::podcidr;
use crate::objects::registry::{self, Resource};
use crate::objects::{kinds, meta};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Extension;
use axum::{Json, Router};
use flotilla_storage::{Command, Compare, CompareOp, Event, EventKind, Op, Revision, Target, Txn};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The REST routes.
pub fn routes() -> Router<Arc<Context>> {
    Router::new()
        .route("/api/v1/{*rest}", any(core))
        .route("/apis/{group}/{version}/{*rest}", any(grouped))
}

/// What a request path names.
#[derive(Debug, Clone)]
struct Addressed {
    resource: &'static Resource,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn not_found_path(path: &str) -> ApiError {
    ApiError::NotFound(format!(
        "the server could not find the requested resource ({path})"
    ))
}

/// Parses the part of the path after the group version.
fn parse(group: &str, version: &str, rest: &str) -> Result<Addressed, ApiError> {
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let lookup = |plural: &str| {
        registry::by_plural(group, version, plural).ok_or_else(|| not_found_path(rest))
    };
    let target = match parts.as_slice() {
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => {
            let resource = lookup(plural)?;
            if !resource.namespaced {
                return Err(not_found_path(rest));
            }
            Addressed {
                resource,
                namespace: Some((*ns).to_owned()),
                name: tail.first().map(|s| (*s).to_owned()),
                sub: tail.get(1).map(|s| (*s).to_owned()),
            }
        }
        [plural, tail @ ..] if tail.len() <= 2 => Addressed {
            resource: lookup(plural)?,
            namespace: None,
            name: tail.first().map(|s| (*s).to_owned()),
            sub: tail.get(1).map(|s| (*s).to_owned()),
        },
        _ => return Err(not_found_path(rest)),
    };
    if let Some(sub) = &target.sub {
        if !target.resource.subresources.contains(&sub.as_str()) {
            return Err(not_found_path(rest));
        }
    }
    Ok(target)
}

async fn core(
    State(ctx): State<Arc<Context>>,
    Extension(caller): Extension<Caller>,
    method: Method,
    Path(rest): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(serve(&ctx, &caller, method, "", "v1", &rest, &uri, &headers, body).await)
}

async fn grouped(
    State(ctx): State<Arc<Context>>,
    Extension(caller): Extension<Caller>,
    method: Method,
    Path((group, version, rest)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(
        serve(
            &ctx, &caller, method, &group, &version, &rest, &uri, &headers, body,
        )
        .await,
    )
}

fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| url_decode_pairs(q).into_iter().collect())
        .unwrap_or_default()
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Percent-decoding of one query component (`+` is a space).
fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    bytes.get(i + 1).and_then(|b| hex_value(*b)),
                    bytes.get(i + 2).and_then(|b| hex_value(*b)),
                ) {
                    (Some(high), Some(low)) => {
                        out.push(high * 16 + low);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn url_decode_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(pair), String::new()),
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    ctx: &Context,
    caller: &Caller,
    method: Method,
    group: &str,
    version: &str,
    rest: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = parse(group, version, rest)?;
    let query = query_map(uri);
    let req = Request {
        ctx,
        caller,
        writes: std::sync::atomic::AtomicU32::new(0),
        target: &target,
        query: &query,
        uri,
        headers,
    };
    match (method, target.name.is_some(), target.sub.as_deref()) {
        (Method::GET, false, None) => {
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
                req.watch().await
            } else {
                req.list().await
            }
        }
        (Method::GET, true, None | Some("status")) => req.get().await,
        (Method::GET, true, Some("scale")) => req.get_scale().await,
        (Method::GET, true, Some("log")) => req.logs().await,
        (Method::POST, false, None) => req.create(decode_body(headers, &body)?).await,
        (Method::POST, true, Some("binding")) => req.bind(decode_body(headers, &body)?).await,
        (Method::PUT, true, sub) => req.update(decode_body(headers, &body)?, sub).await,
        (Method::PATCH, true, sub) => req.patch(headers, &body, sub).await,
        (Method::DELETE, true, None) => req.delete(&body).await,
        (Method::DELETE, false, None) => req.delete_collection(&body).await,
        (method, _, _) => Err(ApiError::Detailed {
            code: StatusCode::METHOD_NOT_ALLOWED,
            reason: "MethodNotAllowed",
            message: format!("{method} is not supported on {}", uri.path()),
            details: json!({}),
        }),
    }
}

/// Parses a JSON or YAML body into a JSON value.
fn decode_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.contains("protobuf") {
        return Err(ApiError::Detailed {
            code: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "UnsupportedMediaType",
            message: format!("the body of the request was in an unknown format ({content_type}); send application/json or application/yaml"),
            details: json!({}),
        });
    }
    if content_type.contains("yaml") {
        serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("malformed YAML body: {e}")))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))
    }
}

struct Request<'a> {
    ctx: &'a Context,
    caller: &'a Caller,
    /// Writes made so far (each gets its own idempotency key).
    writes: std::sync::atomic::AtomicU32,
    target: &'a Addressed,
    query: &'a HashMap<String, String>,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

/// Kubernetes' `details` for an object.
fn details(resource: &Resource, name: &str) -> Value {
    json!({"name": name, "group": resource.group, "kind": resource.plural})
}

fn not_found(resource: &Resource, name: &str) -> ApiError {
    let what = if resource.group.is_empty() {
        resource.plural.to_owned()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    };
    ApiError::Detailed {
        code: StatusCode::NOT_FOUND,
        reason: "NotFound",
        message: format!("{what} \"{name}\" not found"),
        details: details(resource, name),
    }
}

fn conflict(resource: &Resource, name: &str) -> ApiError {
    ApiError::Detailed {
        code: StatusCode::CONFLICT,
        reason: "Conflict",
        message: format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            resource.plural
        ),
        details: details(resource, name),
    }
}

fn invalid(resource: &Resource, name: &str, errors: crate::objects::validate::Errors) -> ApiError {
    let causes: Vec<Value> = errors
        .0
        .iter()
        .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
        .collect();
    let summary: Vec<String> = errors
        .0
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    ApiError::Detailed {
        code: StatusCode::UNPROCESSABLE_ENTITY,
        reason: "Invalid",
        message: format!(
            "{} \"{name}\" is invalid: {}",
            resource.kind,
            summary.join(", ")
        ),
        details: json!({"name": name, "group": resource.group, "kind": resource.kind, "causes": causes}),
    }
}

/// The stored object at `key` with its resourceVersion set, and its mod revision.
fn load(ctx: &Context, key: &str) -> Result<Option<(Value, Revision)>, ApiError> {
    let read = ctx.node.engine().get(key.as_bytes(), None)?;
    match read.value {
        None => Ok(None),
        Some(kv) => {
            let mut obj: Value = serde_json::from_slice(&kv.value)
                .map_err(|e| ApiError::Internal(format!("stored object {key} is corrupt: {e}")))?;
            meta::set_resource_version(&mut obj, kv.mod_revision);
            Ok(Some((obj, kv.mod_revision)))
        }
    }
}

/// How a compare-and-swap went.
enum Swap {
    Done(Revision),
    Lost,
}

impl Request<'_> {
    fn resource(&self) -> &'static Resource {
        self.target.resource
    }

    fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or("")
    }

    fn key(&self, name: &str) -> String {
        self.resource().key(self.target.namespace.as_deref(), name)
    }

    /// NodeRestriction: a node may write only its own Node and Lease, and
    /// pods bound to it (`current`, for writes to an existing object).
    fn restrict(&self, name: &str, current: Option<&Value>) -> Result<(), ApiError> {
        let Some(node) = self.caller.node() else {
            return Ok(());
        };
        let allowed = match self.resource().kind {
            "Node" => name == node,
            "Lease" => {
                name == node
                    && self.target.namespace.as_deref()
                        == Some(crate::controllers::node::LEASE_NAMESPACE)
            }
            "Pod" => current.is_some_and(|p| crate::objects::pod::node_name(p) == Some(node)),
            "Event" => true,
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "node \"{node}\" may not write {} \"{name}\": a node writes only its own Node and Lease and pods bound to it",
                self.resource().plural
            )))
        }
    }

    /// The object at `key`, read for a write. A follower redirects at once
    /// (the write could only be redirected later). The leader reads its own
    /// state without a read barrier: every write acknowledged to any client
    /// was applied here first, and the write itself is a compare-and-swap,
    /// so a stale read costs a retry, never a lost update. When `strict`, the
    /// barrier is taken: before an answer that rests on the read alone
    /// (NotFound, a failed precondition, nothing to change), since only the
    /// barrier proves this member still leads.
    async fn read_for_write(
        &self,
        key: &str,
        strict: bool,
    ) -> Result<Option<(Value, Revision)>, ApiError> {
        super::ensure_leader(self.ctx, self.uri)?;
        if strict {
            read_barrier(self.ctx, Consistency::Linearizable).await?;
        }
        load(self.ctx, key)
    }

    /// [`Self::read_for_write`] of an object that must exist: NotFound once
    /// `strict`, None (read again, strictly) before.
    async fn existing_for_write(
        &self,
        key: &str,
        name: &str,
        strict: bool,
    ) -> Result<Option<(Value, Revision)>, ApiError> {
        match self.read_for_write(key, strict).await? {
            Some(found) => Ok(Some(found)),
            None if strict => Err(not_found(self.resource(), name)),
            None => Ok(None),
        }
    }

    fn consistency(&self) -> Consistency {
        match self.query.get("resourceVersion").map(String::as_str) {
            Some("0") => Consistency::Serializable,
            _ => Consistency::Linearizable,
        }
    }

    /// Writes `obj` at `key` if the key's mod revision is still `expected`
    /// (0: the key must not exist). Namespaced creates also require the
    /// namespace to exist, in the same transaction.
    async fn swap(
        &self,
        key: &str,
        expected: Revision,
        obj: Option<&Value>,
    ) -> Result<Swap, ApiError> {
        self.swap_with(key, expected, obj, &[]).await
    }

    /// [`Self::swap`], also taking or releasing range keys (cluster IPs,
    /// node ports) in the same transaction.
    async fn swap_with(
        &self,
        key: &str,
        expected: Revision,
        obj: Option<&Value>,
        claims: &[Claim],
    ) -> Result<Swap, ApiError> {
        let namespace = if self.resource().namespaced {
            self.target.namespace.as_deref()
        } else {
            None
        };
        let swap = store::Swap {
            key,
            expected,
            object: obj,
            namespace,
            claims,
        };
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = super::nth_request_id(super::request_id(self.headers)?, n);
        Ok(match store::swap(self.ctx, self.uri, id, &swap).await? {
            store::Outcome::Done(revision) => Swap::Done(revision),
            store::Outcome::Lost => Swap::Lost,
        })
    }

    fn namespace_missing(&self) -> ApiError {
        let ns = self.target.namespace.clone().unwrap_or_default();
        ApiError::Detailed {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: format!("namespaces \"{ns}\" not found"),
            details: json!({"name": ns, "kind": "namespaces"}),
        }
    }

    fn render(&self, obj: Value, status: StatusCode) -> Result<Response, ApiError> {
        if self.wants_table() {
            let list_meta =
                json!({"resourceVersion": meta::meta_str(&obj, "resourceVersion").unwrap_or("")});
            let table = super::table::table(
                self.resource().plural,
                std::slice::from_ref(&obj),
                list_meta,
                super::table::IncludeObject::parse(
                    self.query.get("includeObject").map(String::as_str),
                ),
                meta::now() as i64,
            );
            return Ok((status, Json(table)).into_response());
        }
        Ok((status, Json(obj)).into_response())
    }

    fn wants_table(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(super::table::wants_table)
    }

    async fn get(&self) -> Result<Response, ApiError> {
        read_barrier(self.ctx, self.consistency()).await?;
        match load(self.ctx, &self.key(self.name()))? {
            Some((obj, _)) => self.render(obj, StatusCode::OK),
            None => Err(not_found(self.resource(), self.name())),
        }
    }

    fn selectors(&self) -> Result<(Selector, Selector), ApiError> {
        let labels = Selector::labels(
            self.query
                .get("labelSelector")
                .map(String::as_str)
                .unwrap_or(""),
        )
        .map_err(|e| ApiError::BadRequest(format!("unable to parse labelSelector: {e}")))?;
        let fields = Selector::fields(
            self.query
                .get("fieldSelector")
                .map(String::as_str)
                .unwrap_or(""),
        )
        .map_err(|e| ApiError::BadRequest(format!("unable to parse fieldSelector: {e}")))?;
        Ok((labels, fields))
    }

    /// The objects of this resource (in this namespace, if any) matching the
    /// selectors, at the revision read, in key order.
    fn select(&self, at: Option<Revision>) -> Result<(Vec<Value>, Revision), ApiError> {
        let (labels, fields) = self.selectors()?;
        let prefix = self
            .resource()
            .namespace_prefix(self.target.namespace.as_deref());
        let read = self.ctx.node.engine().range(prefix.as_bytes(), 0, at)?;
        let mut objects = Vec::with_capacity(read.value.kvs.len());
        for kv in &read.value.kvs {
            let Ok(mut obj) = serde_json::from_slice::<Value>(&kv.value) else {
                tracing::warn!(key = %String::from_utf8_lossy(&kv.key), "skipping a stored object that is not JSON");
                continue;
            };
            if !labels.matches_labels(&meta::labels(&obj)) || !fields.matches_fields(&obj) {
                continue;
            }
            meta::set_resource_version(&mut obj, kv.mod_revision);
            objects.push(obj);
        }
        Ok((objects, read.revision))
    }

    async fn list(&self) -> Result<Response, ApiError> {
        read_barrier(self.ctx, self.consistency()).await?;
        // A continue token carries the revision of the first page and the
        // last key served, so every page reads the same snapshot.
        let (at, after) = match self.query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                let (rev, key) = decode_continue(token)?;
                (Some(rev), Some(key))
            }
            None => (None, None),
        };
        let (mut objects, revision) = self.select(at)?;
        if let Some(after) = &after {
            objects.retain(|o| {
                let key = self
                    .resource()
                    .key(meta::namespace(o), meta::name(o).unwrap_or(""));
                key.as_str() > after.as_str()
            });
        }
        let limit: usize = self
            .query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut list_meta = json!({"resourceVersion": revision.to_string()});
        if limit > 0 && objects.len() > limit {
            objects.truncate(limit);
            if let Some(last) = objects.last() {
                let key = self
                    .resource()
                    .key(meta::namespace(last), meta::name(last).unwrap_or(""));
                list_meta["continue"] = json!(encode_continue(revision, &key));
            }
        }
        if self.wants_table() {
            let table = super::table::table(
                self.resource().plural,
                &objects,
                list_meta,
                super::table::IncludeObject::parse(
                    self.query.get("includeObject").map(String::as_str),
                ),
                meta::now() as i64,
            );
            return Ok(Json(table).into_response());
        }
        let list = json!({
            "kind": self.resource().list_kind,
            "apiVersion": self.resource().api_version(),
            "metadata": list_meta,
            "items": objects,
        });
        Ok(Json(list).into_response())
    }

    /// Checks the body names this resource and the URL's namespace and name.
    fn check_identity(&self, obj: &mut Value, name: Option<&str>) -> Result<(), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::BadRequest(
                "the body must be a JSON object".into(),
            ));
        }
        let resource = self.resource();
        if let Some(kind) = obj.get("kind").and_then(Value::as_str) {
            if kind != resource.kind {
                return Err(ApiError::BadRequest(format!(
                    "the body is a {kind}, but the URL is for {}",
                    resource.plural
                )));
            }
        }
        obj["kind"] = json!(resource.kind);
        obj["apiVersion"] = json!(resource.api_version());
        let Some(metadata) = meta::metadata_mut(obj) else {
            return Err(ApiError::BadRequest("metadata must be an object".into()));
        };
        if resource.namespaced {
            let url_ns = self
                .target
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            match metadata.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != url_ns => {
                    return Err(ApiError::BadRequest(format!(
                        "the namespace of the object ({ns}) does not match the namespace on the request ({url_ns})"
                    )))
                }
                _ => {
                    metadata.insert("namespace".into(), json!(url_ns));
                }
            }
        } else {
            metadata.remove("namespace");
        }
        if let Some(url_name) = name {
            match metadata.get("name").and_then(Value::as_str) {
                Some(n) if n != url_name => {
                    return Err(ApiError::BadRequest(format!(
                    "the name of the object ({n}) does not match the name on the URL ({url_name})"
                )))
                }
                _ => {
                    metadata.insert("name".into(), json!(url_name));
                }
            }
        }
        Ok(())
    }

    fn validate(&self, obj: &Value) -> Result<(), ApiError> {
        // kubectl asks for strict field validation by default: a field the
        // type does not have is a typo the user wants to hear about.
        if self.query.get("fieldValidation").map(String::as_str) == Some("Strict") {
            let unknown = super::openapi::unknown_fields(self.resource(), obj);
            if !unknown.is_empty() {
                let fields: Vec<String> = unknown
                    .iter()
                    .map(|f| format!("unknown field {f:?}"))
                    .collect();
                return Err(ApiError::BadRequest(format!(
                    "strict decoding error: {}",
                    fields.join(", ")
                )));
            }
        }
        let errors = kinds::validate(self.resource(), obj);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(invalid(
                self.resource(),
                meta::name(obj).unwrap_or(""),
                errors,
            ))
        }
    }

    async fn create(&self, mut obj: Value) -> Result<Response, ApiError> {
        if self.target.namespace.is_none() && self.resource().namespaced {
            return Err(ApiError::BadRequest(format!(
                "{} are namespaced: create them under /namespaces/NAMESPACE/{}",
                self.resource().plural,
                self.resource().plural
            )));
        }
        self.check_identity(&mut obj, None)?;
        if meta::name(&obj).is_none() {
            if let Some(prefix) = meta::meta_str(&obj, "generateName").map(str::to_owned) {
                let suffix: String = crate::security::random_string(5);
                if let Some(m) = meta::metadata_mut(&mut obj) {
                    m.insert("name".into(), json!(format!("{prefix}{suffix}")));
                }
            }
        }
        kinds::default(self.resource(), &mut obj);
        self.validate(&obj)?;
        self.restrict(meta::name(&obj).unwrap_or(""), None)?;
        meta::on_create(&mut obj, meta::now());
        let name = meta::name(&obj).unwrap_or("").to_owned();
        let owner = format!("{}/{name}", self.target.namespace.as_deref().unwrap_or(""));
        let key = self.key(&name);
        // A Service's random IP or node port may be taken: try a few.
        for _ in 0..ALLOCATION_ATTEMPTS {
            let mut candidate = obj.clone();
            let claims = match self.resource().kind {
                "Service" => services::allocate(&mut candidate, &owner),
                "Node" => self.node_cidr_claims(&mut candidate, &name)?,
                _ => Vec::new(),
            };
            match self.swap_with(&key, 0, Some(&candidate), &claims).await? {
                Swap::Done(revision) => {
                    meta::set_resource_version(&mut candidate, revision);
                    return self.render(candidate, StatusCode::CREATED);
                }
                Swap::Lost => {
                    if load(self.ctx, &key)?.is_some() {
                        return Err(ApiError::Detailed {
                            code: StatusCode::CONFLICT,
                            reason: "AlreadyExists",
                            message: format!(
                                "{} \"{name}\" already exists",
                                self.resource().plural
                            ),
                            details: details(self.resource(), &name),
                        });
                    }
                    if self.resource().namespaced && !self.namespace_exists()? {
                        return Err(self.namespace_missing());
                    }
                    if claims.is_empty() {
                        return Err(conflict(self.resource(), &name));
                    }
                }
            }
        }
        let mut errors = crate::objects::validate::Errors::default();
        if self.resource().kind == "Node" {
            errors.invalid("spec.podCIDR", "the pod CIDR range is held by another node");
            return Err(invalid(self.resource(), &name, errors));
        }
        errors.invalid(
            "spec",
            format!("the cluster IP or a node port is already allocated (service range {}, node ports {}-{})",
                services::SERVICE_CIDR, services::NODE_PORTS.start(), services::NODE_PORTS.end()),
        );
        Err(invalid(self.resource(), &name, errors))
    }

    fn namespace_exists(&self) -> Result<bool, ApiError> {
        let Some(ns) = &self.target.namespace else {
            return Ok(true);
        };
        let key = registry::by_kind("Namespace")
            .map(|r| r.key(None, ns))
            .unwrap_or_default();
        Ok(self
            .ctx
            .node
            .engine()
            .get(key.as_bytes(), None)?
            .value
            .is_some())
    }

    /// A new Node's pod CIDR (`objects::podcidr`): the claim of the first
    /// range free in the store, or none when the cluster CIDR is full.
    fn node_cidr_claims(&self, node: &mut Value, name: &str) -> Result<Vec<Claim>, ApiError> {
        let field = |message: String| {
            let mut errors = crate::objects::validate::Errors::default();
            errors.invalid("spec.podCIDR", message);
            invalid(self.resource(), name, errors)
        };
        podcidr::validate(node).map_err(field)?;
        let settings = crate::controllers::Settings::load(self.ctx)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let taken = self
            .ctx
            .node
            .engine()
            .range(podcidr::PREFIX.as_bytes(), 0, None)?
            .value
            .kvs
            .iter()
            .filter_map(|kv| podcidr::Cidr::from_key(&String::from_utf8_lossy(&kv.key)))
            .collect();
        let now = meta::timestamp(meta::now());
        Ok(
            match podcidr::allocate(
                node,
                settings.pod_cidr,
                settings.node_cidr_mask_size,
                &taken,
                &now,
            ) {
                podcidr::Allocation::Take(cidr) => vec![Claim::Take {
                    key: cidr.key(),
                    owner: name.to_owned(),
                }],
                podcidr::Allocation::Full => {
                    tracing::warn!(node = name, cidr = %settings.pod_cidr, "{}: no pod CIDR range left for the node", podcidr::CIDR_NOT_AVAILABLE);
                    Vec::new()
                }
            },
        )
    }

    /// The range keys an update of `current` into `next` takes or gives back.
    fn update_claims(&self, current: &Value, next: &mut Value) -> Result<Vec<Claim>, ApiError> {
        if self.resource().kind == "Node" {
            return match podcidr::reallocate(current, next) {
                Ok(taken) => Ok(taken
                    .map(|cidr| Claim::Take {
                        key: cidr.key(),
                        owner: self.name().to_owned(),
                    })
                    .into_iter()
                    .collect()),
                Err(message) => {
                    let mut errors = crate::objects::validate::Errors::default();
                    errors.invalid("spec.podCIDR", message);
                    Err(invalid(self.resource(), self.name(), errors))
                }
            };
        }
        if self.resource().kind != "Service" {
            return Ok(Vec::new());
        }
        let owner = format!(
            "{}/{}",
            self.target.namespace.as_deref().unwrap_or(""),
            self.name()
        );
        services::reallocate(current, next, &owner).map_err(|message| {
            let mut errors = crate::objects::validate::Errors::default();
            errors.invalid("spec.clusterIP", message);
            invalid(self.resource(), self.name(), errors)
        })
    }

    /// Turns the client's new version into the object to store, given the
    /// current one: status and spec are each owned by one endpoint.
    fn merge_for(
        &self,
        current: &Value,
        mut new: Value,
        sub: Option<&str>,
    ) -> Result<Value, ApiError> {
        let name = self.name().to_owned();
        self.check_identity(&mut new, Some(&name))?;
        let has_status = self.resource().subresources.contains(&"status");
        let mut next = match sub {
            Some("status") => {
                // Only status changes through /status.
                let mut next = current.clone();
                next["status"] = new.get("status").cloned().unwrap_or(json!({}));
                next
            }
            _ => {
                if has_status {
                    if let Some(status) = current.get("status") {
                        new["status"] = status.clone();
                    }
                }
                new
            }
        };
        meta::on_update(current, &mut next);
        kinds::default(self.resource(), &mut next);
        self.validate(&next)?;
        Ok(next)
    }

    async fn update(&self, new: Value, sub: Option<&str>) -> Result<Response, ApiError> {
        if sub == Some("scale") {
            return self.update_scale(|_| Ok(new.clone())).await;
        }
        let key = self.key(self.name());
        let wanted = meta::resource_version(&new);
        // First from the leader's state; a failure is confirmed under the barrier.
        for strict in [false, true] {
            let Some((current, revision)) =
                self.existing_for_write(&key, self.name(), strict).await?
            else {
                continue;
            };
            self.restrict(self.name(), Some(&current))?;
            if wanted.is_some_and(|w| w != revision) {
                if strict {
                    return Err(conflict(self.resource(), self.name()));
                }
                continue;
            }
            let mut next = self.merge_for(&current, new.clone(), sub)?;
            let claims = self.update_claims(&current, &mut next)?;
            if let Swap::Done(rev) = self.swap_with(&key, revision, Some(&next), &claims).await? {
                meta::set_resource_version(&mut next, rev);
                return self.render(next, StatusCode::OK);
            }
        }
        Err(conflict(self.resource(), self.name()))
    }

    async fn patch(
        &self,
        headers: &HeaderMap,
        body: &Bytes,
        sub: Option<&str>,
    ) -> Result<Response, ApiError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let kind = if sub == Some("scale") {
            "Scale"
        } else {
            self.resource().kind
        };
        let ty = super::patch::PatchType::from_content_type(content_type).ok_or_else(|| ApiError::Detailed {
            code: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "UnsupportedMediaType",
            message: format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"),
            details: json!({}),
        })?;
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("malformed patch body: {e}")))?;
        let apply = |current: &Value| -> Result<Value, ApiError> {
            super::patch::apply(kind, current, &patch, ty).map_err(|e| match e {
                super::patch::PatchError::Malformed(m) => ApiError::BadRequest(m),
                super::patch::PatchError::Unprocessable(m) => ApiError::Detailed {
                    code: StatusCode::UNPROCESSABLE_ENTITY,
                    reason: "Invalid",
                    message: m,
                    details: json!({}),
                },
            })
        };
        if sub == Some("scale") {
            return self.update_scale(apply).await;
        }
        let key = self.key(self.name());
        // Retry on a lost race: the patch applies to whatever is current.
        for attempt in 0..RACE_RETRIES {
            let strict = attempt > 0;
            let Some((current, revision)) =
                self.existing_for_write(&key, self.name(), strict).await?
            else {
                continue;
            };
            self.restrict(self.name(), Some(&current))?;
            let patched = apply(&current)?;
            if meta::resource_version(&patched).is_some_and(|rv| rv != revision) {
                if strict {
                    return Err(conflict(self.resource(), self.name()));
                }
                continue;
            }
            let mut next = self.merge_for(&current, patched, sub)?;
            let claims = self.update_claims(&current, &mut next)?;
            if next == current {
                if strict {
                    return self.render(current, StatusCode::OK);
                }
                continue;
            }
            if let Swap::Done(rev) = self.swap_with(&key, revision, Some(&next), &claims).await? {
                meta::set_resource_version(&mut next, rev);
                return self.render(next, StatusCode::OK);
            }
        }
        Err(conflict(self.resource(), self.name()))
    }

    fn scale_of(&self, obj: &Value) -> Value {
        let selector = obj["spec"]["selector"]["matchLabels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta::name(obj),
                "namespace": meta::namespace(obj),
                "uid": meta::meta_str(obj, "uid"),
                "resourceVersion": meta::meta_str(obj, "resourceVersion"),
                "creationTimestamp": meta::meta_str(obj, "creationTimestamp"),
            },
            "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
            "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
        })
    }

    async fn get_scale(&self) -> Result<Response, ApiError> {
        read_barrier(self.ctx, self.consistency()).await?;
        match load(self.ctx, &self.key(self.name()))? {
            Some((obj, _)) => Ok(Json(self.scale_of(&obj)).into_response()),
            None => Err(not_found(self.resource(), self.name())),
        }
    }

    /// Applies a change to the Scale view and writes spec.replicas back.
    async fn update_scale(
        &self,
        change: impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<Response, ApiError> {
        let key = self.key(self.name());
        for attempt in 0..RACE_RETRIES {
            let strict = attempt > 0;
            let Some((current, revision)) =
                self.existing_for_write(&key, self.name(), strict).await?
            else {
                continue;
            };
            let scale = change(&self.scale_of(&current))?;
            if meta::resource_version(&scale).is_some_and(|rv| rv != revision) {
                if strict {
                    return Err(conflict(self.resource(), self.name()));
                }
                continue;
            }
            let replicas = match scale["spec"]["replicas"].as_i64() {
                Some(n) if n >= 0 => n,
                _ => {
                    let mut errors = crate::objects::validate::Errors::default();
                    errors.invalid("spec.replicas", "must be a non-negative integer");
                    return Err(invalid(self.resource(), self.name(), errors));
                }
            };
            let mut next = current.clone();
            next["spec"]["replicas"] = json!(replicas);
            meta::on_update(&current, &mut next);
            if let Swap::Done(rev) = self.swap(&key, revision, Some(&next)).await? {
                meta::set_resource_version(&mut next, rev);
                return Ok(Json(self.scale_of(&next)).into_response());
            }
        }
        Err(conflict(self.resource(), self.name()))
    }

    /// `pods/NAME/log`: the container's output, fetched from the agent of
    /// the pod's node (as kube-apiserver fetches it from the kubelet).
    async fn logs(&self) -> Result<Response, ApiError> {
        read_barrier(self.ctx, self.consistency()).await?;
        let Some((pod, _)) = load(self.ctx, &self.key(self.name()))? else {
            return Err(not_found(self.resource(), self.name()));
        };
        let Some(node) = crate::objects::pod::node_name(&pod) else {
            return Err(ApiError::BadRequest(format!(
                "pod {} is not scheduled to a node yet: it has no logs",
                self.name()
            )));
        };
        let containers: Vec<&str> = crate::objects::pod::list(&pod["spec"], "containers")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        let container = match self.query.get("container") {
            Some(c) if containers.contains(&c.as_str()) => c.clone(),
            Some(c) => {
                return Err(ApiError::BadRequest(format!(
                    "container {c} is not valid for pod {}",
                    self.name()
                )))
            }
            None if containers.len() == 1 => containers[0].to_owned(),
            None => {
                return Err(ApiError::BadRequest(format!(
                    "a container name must be specified for pod {}, choose one of: [{}]",
                    self.name(),
                    containers.join(" ")
                )))
            }
        };
        let nodes = registry::by_kind("Node")
            .ok_or_else(|| ApiError::Internal("Node is not served".into()))?;
        let node_obj = load(self.ctx, &nodes.key(None, node))?
            .map(|(n, _)| n)
            .ok_or_else(|| {
                ApiError::Unavailable(format!("node {node} is gone; its logs went with it"))
            })?;
        let address = crate::objects::pod::list(&node_obj["status"], "addresses")
            .iter()
            .find(|a| a["type"] == "InternalIP")
            .and_then(|a| a["address"].as_str())
            .unwrap_or("")
            .to_owned();
        let port = node_obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            .as_u64()
            .unwrap_or(0);
        if address.is_empty() || port == 0 {
            return Err(ApiError::Unavailable(format!(
                "node {node} does not serve logs (no address or port in its status)"
            )));
        }
        let record = self
            .ctx
            .node
            .engine()
            .get(crate::security::nodes::key(node).as_bytes(), None)?
            .value
            .and_then(|kv| {
                serde_json::from_slice::<crate::security::nodes::NodeRecord>(&kv.value).ok()
            })
            .ok_or_else(|| {
                ApiError::Unavailable(format!("node {node} has no credential record"))
            })?;
        let mut url = format!(
            "https://{}/containerLogs/{}/{}/{container}?",
            crate::client::host_port(&address, port),
            self.target.namespace.as_deref().unwrap_or("default"),
            self.name()
        );
        for flag in ["follow", "timestamps", "previous"] {
            if self.query.get(flag).is_some_and(|v| v == "true") {
                url.push_str(&format!("{flag}=true&"));
            }
        }
        if let Some(tail) = self
            .query
            .get("tailLines")
            .and_then(|t| t.parse::<u64>().ok())
        {
            url.push_str(&format!("tailLines={tail}&"));
        }
        let http = flotilla_raft::network::client_builder(Some(&self.ctx.ca.cert_pem))
            .and_then(|b| b.connect_timeout(Duration::from_secs(5)).build())
            .map_err(|e| ApiError::Internal(format!("building the agent client: {e}")))?;
        let response = http
            .get(url.trim_end_matches(['?', '&']))
            .bearer_auth(&record.agent_secret)
            .send()
            .await
            .map_err(|e| {
                ApiError::Unavailable(format!("cannot reach the agent of node {node}: {e}"))
            })?;
        if !response.status().is_success() {
            let code = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(if code == reqwest::StatusCode::NOT_FOUND {
                ApiError::BadRequest(text)
            } else {
                ApiError::Unavailable(format!("the agent of node {node} answered {code}: {text}"))
            });
        }
        let stream = futures::StreamExt::map(response.bytes_stream(), |chunk| {
            chunk.map_err(std::io::Error::other)
        });
        Ok((
            [(header::CONTENT_TYPE, "text/plain")],
            Body::from_stream(stream),
        )
            .into_response())
    }

    async fn bind(&self, binding: Value) -> Result<Response, ApiError> {
        let node = binding["target"]["name"].as_str().unwrap_or("").to_owned();
        if node.is_empty() {
            let mut errors = crate::objects::validate::Errors::default();
            errors.required("target.name");
            return Err(invalid(self.resource(), self.name(), errors));
        }
        let key = self.key(self.name());
        // The binding subresource's rule needs a fresh view: always strict.
        let Some((current, revision)) = self.read_for_write(&key, true).await? else {
            return Err(not_found(self.resource(), self.name()));
        };
        if current["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        {
            return Err(ApiError::Detailed {
                code: StatusCode::CONFLICT,
                reason: "Conflict",
                message: format!(
                    "pod {} is already assigned to node {:?}",
                    self.name(),
                    current["spec"]["nodeName"]
                ),
                details: details(self.resource(), self.name()),
            });
        }
        let mut next = current.clone();
        next["spec"]["nodeName"] = json!(node);
        match self.swap(&key, revision, Some(&next)).await? {
            Swap::Done(_) => Ok((
                StatusCode::CREATED,
                Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})),
            )
                .into_response()),
            Swap::Lost => Err(conflict(self.resource(), self.name())),
        }
    }

    /// The DeleteOptions of a request: body, else query.
    fn delete_options(&self, body: &Bytes) -> Result<DeleteOptions, ApiError> {
        let options: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("malformed DeleteOptions: {e}")))?
        };
        let grace = options["gracePeriodSeconds"].as_i64().or_else(|| {
            self.query
                .get("gracePeriodSeconds")
                .and_then(|g| g.parse().ok())
        });
        Ok(DeleteOptions {
            grace,
            propagation: Propagation::parse(&options, self.query)?,
            precondition: options["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_owned),
        })
    }

    async fn delete(&self, body: &Bytes) -> Result<Response, ApiError> {
        let options = self.delete_options(body)?;
        let name = self.name().to_owned();
        self.delete_named(&name, &options)
            .await
            .and_then(|(obj, code)| self.render(obj, code))
    }

    /// Deletes object `name` (gracefully where that applies); the object as
    /// deleted or marked, and 200 or 202.
    async fn delete_named(
        &self,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<(Value, StatusCode), ApiError> {
        let key = self.key(name);
        for attempt in 0..RACE_RETRIES {
            let strict = attempt > 0;
            let Some((current, revision)) = self.existing_for_write(&key, name, strict).await?
            else {
                continue;
            };
            self.restrict(name, Some(&current))?;
            if let Some(precondition) = &options.precondition {
                if *precondition != revision.to_string() {
                    if strict {
                        return Err(conflict(self.resource(), name));
                    }
                    continue;
                }
            }
            // A pod bound to a node goes gracefully: it is marked, and its
            // agent removes it (with grace 0) once its containers stopped.
            // Orphan and foreground propagation mark the owner with a
            // finalizer the garbage collector works off.
            match store::deletion(
                self.resource(),
                &current,
                options.grace,
                options.propagation.finalizers(),
                meta::now(),
            ) {
                store::Deletion::AlreadyMarked => {
                    if strict {
                        return Ok((current, StatusCode::ACCEPTED));
                    }
                    continue;
                }
                store::Deletion::Mark(mut next) => {
                    if let Swap::Done(rev) = self.swap(&key, revision, Some(&next)).await? {
                        meta::set_resource_version(&mut next, rev);
                        return Ok((next, StatusCode::ACCEPTED));
                    }
                    continue;
                }
                store::Deletion::Remove => {}
            }
            let claims = match self.resource().kind {
                "Service" => services::release(&current),
                // Deleting a Node revokes its agent's credential.
                "Node" => std::iter::once(crate::security::nodes::key(name))
                    .chain(podcidr::release(&current))
                    .map(|key| Claim::Release { key })
                    .collect(),
                _ => Vec::new(),
            };
            if let Swap::Done(_) = self.swap_with(&key, revision, None, &claims).await? {
                return Ok((current, StatusCode::OK));
            }
        }
        Err(conflict(self.resource(), name))
    }

    /// Deletes every selected object as one DELETE of each would —
    /// gracefully where that applies, retrying lost races — and lists them
    /// as deleted or marked. Objects gone meanwhile are skipped.
    async fn delete_collection(&self, body: &Bytes) -> Result<Response, ApiError> {
        if self.resource().namespaced && self.target.namespace.is_none() {
            return Err(ApiError::BadRequest(format!(
                "{} are namespaced: delete a namespace's collection, /namespaces/NAMESPACE/{}",
                self.resource().plural,
                self.resource().plural
            )));
        }
        let options = self.delete_options(body)?;
        read_barrier(self.ctx, Consistency::Linearizable).await?;
        let (objects, _) = self.select(None)?;
        let mut items = Vec::with_capacity(objects.len());
        for obj in &objects {
            let name = meta::name(obj).unwrap_or("").to_owned();
            match self.delete_named(&name, &options).await {
                Ok((deleted, _)) => items.push(deleted),
                Err(ApiError::Detailed { code, .. }) if code == StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e),
            }
        }
        let list = json!({
            "kind": self.resource().list_kind,
            "apiVersion": self.resource().api_version(),
            "metadata": {},
            "items": items,
        });
        Ok(Json(list).into_response())
    }

    /// `?watch=true`: newline-delimited WatchEvents from `resourceVersion`
    /// (absent or "0": the current objects as ADDED first, then changes).
    async fn watch(&self) -> Result<Response, ApiError> {
        let engine = self.ctx.node.engine().clone();
        let (labels, fields) = self.selectors()?;
        let prefix = self
            .resource()
            .namespace_prefix(self.target.namespace.as_deref());
        let timeout = self
            .query
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(1800));
        let bookmarks = self
            .query
            .get("allowWatchBookmarks")
            .is_some_and(|b| b == "true");
        let table = self.wants_table().then(|| {
            super::table::IncludeObject::parse(self.query.get("includeObject").map(String::as_str))
        });
        let resource = self.resource();
        let mut initial = Vec::new();
        let start: Revision = match self.query.get("resourceVersion").map(String::as_str) {
            Some(rv) if !rv.is_empty() && rv != "0" => rv.parse().map_err(|_| {
                ApiError::BadRequest(format!("resourceVersion {rv:?} is not a number"))
            })?,
            _ => {
                let (objects, revision) = self.select(None)?;
                initial = objects;
                revision
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(256);
        let mut revisions = self.ctx.node.revisions();
        let line = move |kind: &str, obj: Value| -> Bytes {
            let object = match table {
                Some(include) => super::table::table(
                    resource.plural,
                    std::slice::from_ref(&obj),
                    json!({}),
                    include,
                    meta::now() as i64,
                ),
                None => obj,
            };
            let mut bytes =
                serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
            bytes.push(b'\n');
            Bytes::from(bytes)
        };
        let expired = |revision: Revision, compacted: Revision| {
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {revision} ({compacted})"), "reason": "Expired", "code": 410});
            let mut bytes =
                serde_json::to_vec(&json!({"type": "ERROR", "object": status})).unwrap_or_default();
            bytes.push(b'\n');
            Bytes::from(bytes)
        };
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            for obj in initial {
                if tx.send(Ok(line("ADDED", obj))).await.is_err() {
                    return;
                }
            }
            let mut last = start;
            let mut bookmark_at = tokio::time::Instant::now() + BOOKMARK_INTERVAL;
            loop {
                let seen_upto = engine.revision();
                let events = match engine.events(prefix.as_bytes(), last, WATCH_BATCH) {
                    Ok(events) => events,
                    Err(flotilla_storage::Error::Compacted {
                        requested,
                        compacted,
                    }) => {
                        let _ = tx.send(Ok(expired(requested, compacted))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return;
                    }
                };
                for event in &events {
                    last = last.max(event.kv.mod_revision);
                    let Some((kind, obj)) = watch_event(event) else {
                        continue;
                    };
                    if !labels.matches_labels(&meta::labels(&obj)) || !fields.matches_fields(&obj) {
                        continue;
                    }
                    if tx.send(Ok(line(kind, obj))).await.is_err() {
                        return;
                    }
                }
                if events.len() < WATCH_BATCH {
                    last = last.max(seen_upto);
                }
                if !events.is_empty() {
                    continue;
                }
                tokio::select! {
                    changed = revisions.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                    () = tokio::time::sleep_until(deadline) => return,
                    () = tokio::time::sleep_until(bookmark_at), if bookmarks => {
                        bookmark_at = tokio::time::Instant::now() + BOOKMARK_INTERVAL;
                        let mark = json!({"kind": resource.kind, "apiVersion": resource.api_version(),
                            "metadata": {"resourceVersion": last.to_string()}});
                        if tx.send(Ok(line("BOOKMARK", mark))).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok((
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(stream),
        )
            .into_response())
    }
}

/// What a DELETE asks for.
struct DeleteOptions {
    /// `gracePeriodSeconds`.
    grace: Option<i64>,
    /// `propagationPolicy`.
    propagation: Propagation,
    /// `preconditions.resourceVersion`.
    precondition: Option<String>,
}

/// How deleting an owner treats its dependents (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Propagation {
    /// Delete the owner now; the garbage collector deletes the dependents.
    Background,
    /// Delete the dependents first, then the owner.
    Foreground,
    /// Keep the dependents, without their reference to the owner.
    Orphan,
}

impl Propagation {
    /// From DeleteOptions (`propagationPolicy`, or the older
    /// `orphanDependents`) or the query.
    fn parse(options: &Value, query: &HashMap<String, String>) -> Result<Propagation, ApiError> {
        let policy = options["propagationPolicy"]
            .as_str()
            .or_else(|| query.get("propagationPolicy").map(String::as_str));
        match policy {
            Some("Background") => Ok(Propagation::Background),
            Some("Foreground") => Ok(Propagation::Foreground),
            Some("Orphan") => Ok(Propagation::Orphan),
            Some(other) => Err(ApiError::BadRequest(format!(
                "propagationPolicy {other:?} is not one of Background, Foreground, Orphan"
            ))),
            None if options["orphanDependents"].as_bool() == Some(true)
                || query.get("orphanDependents").is_some_and(|o| o == "true") =>
            {
                Ok(Propagation::Orphan)
            }
            None => Ok(Propagation::Background),
        }
    }

    /// The finalizers the owner gets.
    fn finalizers(self) -> &'static [&'static str] {
        match self {
            Propagation::Background => &[],
            Propagation::Foreground => &[crate::objects::owner::FOREGROUND],
            Propagation::Orphan => &[crate::objects::owner::ORPHAN],
        }
    }
}

/// How often a patch, scale or delete without a resourceVersion
/// precondition is retried when another writer (a controller updating
/// status, say) changed the object between its read and its write. Such a
/// request has nothing to conflict with, so it retries — as kube-apiserver's
/// GuaranteedUpdate does — rather than answer 409 after a short burst.
const RACE_RETRIES: usize = 64;

/// Random cluster IPs / node ports tried before a create gives up.
const ALLOCATION_ATTEMPTS: usize = 8;

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);
/// Events read from history per round.
const WATCH_BATCH: usize = 1000;

/// A store event as a Kubernetes watch event (None if the value is not JSON).
fn watch_event(event: &Event) -> Option<(&'static str, Value)> {
    match event.kind {
        EventKind::Put => {
            let mut obj: Value = serde_json::from_slice(&event.kv.value).ok()?;
            meta::set_resource_version(&mut obj, event.kv.mod_revision);
            let kind = if event.kv.version == 1 {
                "ADDED"
            } else {
                "MODIFIED"
            };
            Some((kind, obj))
        }
        EventKind::Delete => {
            let prev = event.prev_kv.as_ref()?;
            let mut obj: Value = serde_json::from_slice(&prev.value).ok()?;
            meta::set_resource_version(&mut obj, event.kv.mod_revision);
            Some(("DELETED", obj))
        }
    }
}

fn encode_continue(revision: Revision, key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{revision}\n{key}"))
}

fn decode_continue(token: &str) -> Result<(Revision, String), ApiError> {
    use base64::Engine as _;
    let bad = || ApiError::BadRequest("invalid continue token; start the list again".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (rev, key) = text.split_once('\n').ok_or_else(bad)?;
    Ok((rev.parse().map_err(|_| bad())?, key.to_owned()))
}

/// Namespaces every cluster has from `ctl init`.
pub const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-node-lease"];

/// Creates namespace `name` unless it exists.
///
/// # Errors
/// As a write: no leader, no quorum.
pub async fn ensure_namespace(ctx: &Context, name: &str) -> Result<(), ApiError> {
    let resource = registry::by_kind("Namespace")
        .ok_or_else(|| ApiError::Internal("Namespace is not registered".into()))?;
    let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    kinds::default(resource, &mut obj);
    meta::on_create(&mut obj, meta::now());
    let key = resource.key(None, name);
    let command = Command::Txn(Txn {
        compare: vec![Compare {
            key: key.clone().into_bytes(),
            target: Target::CreateRevision(0),
            op: CompareOp::Equal,
        }],
        success: vec![Op::Put {
            key: key.into_bytes(),
            value: store::stored_bytes(&obj)?,
        }],
        failure: vec![],
    });
    let uri = Uri::from_static("/api/v1/namespaces");
    write(ctx, &uri, &HeaderMap::new(), command)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_like_kubernetes() {
        let t = parse("", "v1", "namespaces/default/pods/web/status").expect("pod status");
        assert_eq!(
            (
                t.resource.plural,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.sub.as_deref()
            ),
            ("pods", Some("default"), Some("web"), Some("status"))
        );
        let t = parse("", "v1", "namespaces/default").expect("namespace");
        assert_eq!(
            (t.resource.plural, t.name.as_deref()),
            ("namespaces", Some("default"))
        );
        let t = parse("", "v1", "pods").expect("all pods");
        assert_eq!((t.resource.plural, t.namespace.as_deref()), ("pods", None));
        let t = parse("apps", "v1", "namespaces/x/deployments/d/scale").expect("scale");
        assert_eq!(t.sub.as_deref(), Some("scale"));
        assert!(parse("", "v1", "namespaces/default/widgets").is_err());
        assert!(parse("", "v1", "namespaces/default/pods/web/frobnicate").is_err());
        assert!(
            parse("", "v1", "namespaces/default/nodes").is_err(),
            "nodes are cluster-scoped"
        );
    }

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue(42, "/registry/pods/default/web");
        assert_eq!(
            decode_continue(&token).expect("decode"),
            (42, "/registry/pods/default/web".to_owned())
        );
        assert!(decode_continue("!!!").is_err());
    }

    #[test]
    fn query_values_are_decoded() {
        let pairs = url_decode_pairs("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=true&x");
        assert_eq!(
            pairs[0],
            ("labelSelector".into(), "app=web,tier in (a)".into())
        );
        assert_eq!(pairs[2], ("x".into(), String::new()));
    }
}
