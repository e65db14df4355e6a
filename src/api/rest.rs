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

use super::{ApiError, Caller, Context};
use crate::objects::meta;
use crate::objects::registry::{self, Resource};
use crate::objects::selectors::Selector;
use crate::store::{self, Consistency, Deleted, Object, Outcome, Store, Update, WriteOptions};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Extension;
use axum::{Json, Router};
use flotilla_storage::{Event, EventKind, Revision};
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
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parts = path
        .map_err(bad_path)
        .and_then(|Path(rest)| Ok((rest, body_of(body)?)));
    respond(match parts {
        Ok((rest, body)) => {
            serve(&ctx, &caller, method, "", "v1", &rest, &uri, &headers, body).await
        }
        Err(e) => Err(e),
    })
}

async fn grouped(
    State(ctx): State<Arc<Context>>,
    Extension(caller): Extension<Caller>,
    method: Method,
    path: Result<Path<(String, String, String)>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let parts = path
        .map_err(bad_path)
        .and_then(|Path(segments)| Ok((segments, body_of(body)?)));
    respond(match parts {
        Ok(((group, version, rest), body)) => {
            serve(
                &ctx, &caller, method, &group, &version, &rest, &uri, &headers, body,
            )
            .await
        }
        Err(e) => Err(e),
    })
}

/// A path the router could not decode (not UTF-8 once percent-decoded).
fn bad_path(rejection: PathRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid request path: {}", rejection.body_text()))
}

/// The request body, or the `Status` for one that could not be read (413
/// for a body over the limit sent without a length, chunked).
fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "request body is larger than the limit of {} bytes",
                super::MAX_BODY
            ))
        } else {
            ApiError::BadRequest(format!(
                "unreadable request body: {}",
                rejection.body_text()
            ))
        }
    })
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
        target: &target,
        query: &query,
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

/// The resourceVersion a written object names as its precondition: None
/// when absent or empty (an unconditional write).
///
/// # Errors
/// 400 when it is not a revision: a typo must not turn off optimistic
/// concurrency.
fn precondition(obj: &Value) -> Result<Option<Revision>, ApiError> {
    match meta::meta_str(obj, "resourceVersion").filter(|rv| !rv.is_empty()) {
        None => Ok(None),
        Some(rv) => rv.parse::<Revision>().map(Some).map_err(|_| {
            ApiError::BadRequest(format!(
                "metadata.resourceVersion: Invalid value: {rv:?}: must be a resource version this server issued (a number)"
            ))
        }),
    }
}

/// Kubernetes' `details` for an object.
fn details(resource: &Resource, name: &str) -> Value {
    json!({"name": name, "group": resource.group, "kind": resource.plural})
}

struct Request<'a> {
    ctx: &'a Context,
    caller: &'a Caller,
    target: &'a Addressed,
    query: &'a HashMap<String, String>,
    headers: &'a HeaderMap,
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

    fn store(&self) -> &Store {
        &self.ctx.store
    }

    /// The write options of this request: its idempotency key.
    fn write_options(&self) -> Result<WriteOptions, ApiError> {
        Ok(WriteOptions {
            request_id: super::request_id(self.headers)?,
        })
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
                        == Some(crate::objects::registry::LEASE_NAMESPACE)
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

    /// An integer query parameter.
    ///
    /// # Errors
    /// 400 when it is present but not an integer.
    fn number(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.query.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                ApiError::BadRequest(format!(
                    "{name}: Invalid value: {text:?}: must be an integer"
                ))
            }),
        }
    }

    fn consistency(&self) -> Consistency {
        match self.query.get("resourceVersion").map(String::as_str) {
            Some("0") => Consistency::Serializable,
            _ => Consistency::Linearizable,
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

    /// The object named by the URL, read as the request's consistency asks.
    async fn read(&self) -> Result<Value, ApiError> {
        self.store().barrier(self.consistency()).await?;
        match self.store().load(&self.key(self.name()))? {
            Some(object) => Ok(object.value),
            None => Err(store::Error::NotFound {
                resource: self.resource(),
                name: self.name().to_owned(),
            }
            .into()),
        }
    }

    async fn get(&self) -> Result<Response, ApiError> {
        let obj = self.read().await?;
        self.render(obj, StatusCode::OK)
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
    fn select(&self, at: Option<Revision>) -> Result<(Vec<Object>, Revision), ApiError> {
        let (labels, fields) = self.selectors()?;
        let (objects, revision) = self.store().list(
            self.resource(),
            self.target.namespace.as_deref(),
            at,
            |obj| labels.matches_labels(&meta::labels(obj)) && fields.matches_fields(obj),
        )?;
        Ok((objects, revision))
    }

    async fn list(&self) -> Result<Response, ApiError> {
        self.store().barrier(self.consistency()).await?;
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
            objects.retain(|o| o.key.as_str() > after.as_str());
        }
        // A negative limit is no limit, as in Kubernetes.
        let limit = usize::try_from(self.number("limit")?.unwrap_or(0)).unwrap_or(0);
        let mut list_meta = json!({"resourceVersion": revision.to_string()});
        if limit > 0 && objects.len() > limit {
            objects.truncate(limit);
            if let Some(last) = objects.last() {
                list_meta["continue"] = json!(encode_continue(revision, &last.key));
            }
        }
        let objects: Vec<Value> = objects.into_iter().map(Object::into_value).collect();
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

    /// kubectl asks for strict field validation by default: a field the
    /// type does not have is a typo the user wants to hear about.
    fn check_fields(&self, obj: &Value) -> Result<(), ApiError> {
        if self.query.get("fieldValidation").map(String::as_str) != Some("Strict") {
            return Ok(());
        }
        let unknown = crate::objects::types::unknown_fields(self.resource(), obj);
        if unknown.is_empty() {
            return Ok(());
        }
        let fields: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        Err(ApiError::BadRequest(format!(
            "strict decoding error: {}",
            fields.join(", ")
        )))
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
        self.check_fields(&obj)?;
        self.restrict(meta::name(&obj).unwrap_or(""), None)?;
        let created = self
            .store()
            .create(self.resource(), obj, &self.write_options()?)
            .await?;
        self.render(created, StatusCode::CREATED)
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
        self.check_fields(&new)?;
        let has_status = self.resource().subresources.contains(&"status");
        Ok(match sub {
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
        })
    }

    /// Reads, changes and writes the addressed object through the store's
    /// one update pipeline; `change` sees the current object and its
    /// revision.
    async fn guaranteed_update(
        &self,
        always_write: bool,
        mut change: impl FnMut(&Object) -> Result<Update, ApiError>,
    ) -> Result<Value, ApiError> {
        let key = self.key(self.name());
        self.store()
            .guaranteed_update(
                self.resource(),
                &key,
                &self.write_options()?,
                always_write,
                |current| {
                    self.restrict(self.name(), Some(&current.value))?;
                    change(current)
                },
            )
            .await
    }

    async fn update(&self, new: Value, sub: Option<&str>) -> Result<Response, ApiError> {
        if sub == Some("scale") {
            return self.update_scale(|_| Ok(new.clone())).await;
        }
        let wanted = precondition(&new)?;
        let stored = self
            .guaranteed_update(true, |current| {
                if wanted.is_some_and(|w| w != current.revision) {
                    return Ok(Update::Conflict);
                }
                Ok(Update::Write(self.merge_for(
                    &current.value,
                    new.clone(),
                    sub,
                )?))
            })
            .await?;
        self.render(stored, StatusCode::OK)
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
        // The patch applies to whatever is current, retried on a lost race.
        let stored = self
            .guaranteed_update(false, |current| {
                let patched = apply(&current.value)?;
                if precondition(&patched)?.is_some_and(|rv| rv != current.revision) {
                    return Ok(Update::Conflict);
                }
                Ok(Update::Write(self.merge_for(
                    &current.value,
                    patched,
                    sub,
                )?))
            })
            .await?;
        self.render(stored, StatusCode::OK)
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
        let obj = self.read().await?;
        Ok(Json(self.scale_of(&obj)).into_response())
    }

    /// Applies a change to the Scale view and writes spec.replicas back.
    async fn update_scale(
        &self,
        change: impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<Response, ApiError> {
        let stored = self
            .guaranteed_update(true, |current| {
                let scale = change(&self.scale_of(&current.value))?;
                if precondition(&scale)?.is_some_and(|rv| rv != current.revision) {
                    return Ok(Update::Conflict);
                }
                let replicas = match scale["spec"]["replicas"].as_i64() {
                    Some(n) if n >= 0 => n,
                    _ => {
                        let mut errors = crate::objects::validate::Errors::default();
                        errors.invalid("spec.replicas", "must be a non-negative integer");
                        return Err(store::Error::Invalid {
                            resource: self.resource(),
                            name: self.name().to_owned(),
                            errors,
                        }
                        .into());
                    }
                };
                let mut next = current.value.clone();
                next["spec"]["replicas"] = json!(replicas);
                Ok(Update::Write(next))
            })
            .await?;
        Ok(Json(self.scale_of(&stored)).into_response())
    }

    /// `pods/NAME/log`: the container's output, fetched from the agent of
    /// the pod's node (as kube-apiserver fetches it from the kubelet).
    async fn logs(&self) -> Result<Response, ApiError> {
        let pod = self.read().await?;
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
        let node_obj = self
            .store()
            .load(&nodes.key(None, node))?
            .map(Object::into_value)
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
        // Reach the node's address, but verify its certificate names the
        // node (agent certificates are bound to node names, see pki).
        let reach: Vec<std::net::SocketAddr> =
            tokio::net::lookup_host(crate::client::host_port(&address, port))
                .await
                .map_err(|e| ApiError::Unavailable(format!("node {node} address {address}: {e}")))?
                .collect();
        let mut url = format!(
            "https://{}/containerLogs/{}/{}/{container}?",
            crate::client::host_port(node, port),
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
        let http = flotilla_raft::network::client_builder(Some(&self.ctx.agent_ca.cert_pem))
            .and_then(|b| {
                b.resolve_to_addrs(node, &reach)
                    .connect_timeout(Duration::from_secs(5))
                    .build()
            })
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
            return Err(store::Error::Invalid {
                resource: self.resource(),
                name: self.name().to_owned(),
                errors,
            }
            .into());
        }
        let key = self.key(self.name());
        // The binding subresource's rule needs a fresh view: always strict.
        self.store().ensure_leader()?;
        self.store().barrier(Consistency::Linearizable).await?;
        let Some(current) = self.store().load(&key)? else {
            return Err(store::Error::NotFound {
                resource: self.resource(),
                name: self.name().to_owned(),
            }
            .into());
        };
        if current.value["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        {
            return Err(ApiError::Detailed {
                code: StatusCode::CONFLICT,
                reason: "Conflict",
                message: format!(
                    "pod {} is already assigned to node {:?}",
                    self.name(),
                    current.value["spec"]["nodeName"]
                ),
                details: details(self.resource(), self.name()),
            });
        }
        let mut next = current.value.clone();
        next["spec"]["nodeName"] = json!(node);
        match self.store().swap_raw(&current, &next).await? {
            Outcome::Done(_) => Ok((
                StatusCode::CREATED,
                Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})),
            )
                .into_response()),
            Outcome::Lost => Err(store::Error::Conflict {
                resource: self.resource(),
                name: self.name().to_owned(),
            }
            .into()),
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
        let (obj, code) = self
            .delete_named(&name, &options, &self.write_options()?)
            .await?;
        self.render(obj, code)
    }

    /// Deletes object `name` (gracefully where that applies); the object as
    /// deleted or marked, and 200 or 202.
    async fn delete_named(
        &self,
        name: &str,
        options: &DeleteOptions,
        opts: &WriteOptions,
    ) -> Result<(Value, StatusCode), ApiError> {
        // A pod bound to a node goes gracefully: it is marked, and its agent
        // removes it (with grace 0) once its containers stopped. Orphan and
        // foreground propagation mark the owner with a finalizer the garbage
        // collector works off.
        let deleted = self
            .store()
            .delete(
                self.resource(),
                &self.key(name),
                opts,
                options.grace,
                options.propagation.finalizers(),
                |current| {
                    self.restrict(name, Some(&current.value))?;
                    if let Some(precondition) = &options.precondition {
                        if *precondition != current.revision.to_string() {
                            return Ok::<bool, ApiError>(false);
                        }
                    }
                    Ok(true)
                },
            )
            .await?;
        Ok(match deleted {
            Deleted::Removed(obj) => (obj, StatusCode::OK),
            Deleted::Marked(obj) => (obj, StatusCode::ACCEPTED),
        })
    }

    /// Deletes every selected object as one DELETE of each would —
    /// gracefully where that applies, retrying lost races — and lists them
    /// as deleted or marked. Objects gone meanwhile are skipped. Each
    /// object's delete carries its own idempotency key, derived from the
    /// request's and the object's, so a retried collection delete answers
    /// for each object what its first attempt did.
    async fn delete_collection(&self, body: &Bytes) -> Result<Response, ApiError> {
        if self.resource().namespaced && self.target.namespace.is_none() {
            return Err(ApiError::BadRequest(format!(
                "{} are namespaced: delete a namespace's collection, /namespaces/NAMESPACE/{}",
                self.resource().plural,
                self.resource().plural
            )));
        }
        let options = self.delete_options(body)?;
        let opts = self.write_options()?;
        self.store().barrier(Consistency::Linearizable).await?;
        let (objects, _) = self.select(None)?;
        let mut items = Vec::with_capacity(objects.len());
        for obj in &objects {
            match self
                .delete_named(obj.name(), &options, &opts.for_member(&obj.key))
                .await
            {
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
    ///
    /// With a label or field selector, an object that stops matching is sent
    /// as DELETED and one that starts matching as ADDED, as Kubernetes'
    /// watch cache does: a put event carries the value before it.
    async fn watch(&self) -> Result<Response, ApiError> {
        let (labels, fields) = self.selectors()?;
        let prefix = self
            .resource()
            .namespace_prefix(self.target.namespace.as_deref());
        // Absent or 0: the server's default, as kube-apiserver's.
        let timeout = match self.number("timeoutSeconds")? {
            Some(seconds) if seconds > 0 => Duration::from_secs(seconds.unsigned_abs()),
            _ => Duration::from_secs(1800),
        };
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
        let mut cursor = self.store().cursor(prefix, start);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(256);
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
        let selects = move |obj: &Value| {
            labels.matches_labels(&meta::labels(obj)) && fields.matches_fields(obj)
        };
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            for obj in initial {
                if tx.send(Ok(line("ADDED", obj.value))).await.is_err() {
                    return;
                }
            }
            let mut bookmark_at = tokio::time::Instant::now() + BOOKMARK_INTERVAL;
            loop {
                let delivered = cursor.position();
                let events = tokio::select! {
                    events = cursor.next() => events,
                    () = tx.closed() => return,
                    () = tokio::time::sleep_until(deadline) => return,
                    () = tokio::time::sleep_until(bookmark_at), if bookmarks => {
                        bookmark_at = tokio::time::Instant::now() + BOOKMARK_INTERVAL;
                        let mark = json!({"kind": resource.kind, "apiVersion": resource.api_version(),
                            "metadata": {"resourceVersion": delivered.to_string()}});
                        if tx.send(Ok(line("BOOKMARK", mark))).await.is_err() {
                            return;
                        }
                        continue;
                    }
                };
                let events = match events {
                    Ok(events) => events,
                    Err(store::Error::Compacted {
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
                    let Some((kind, obj)) = watch_event(event, &selects) else {
                        continue;
                    };
                    if tx.send(Ok(line(kind, obj))).await.is_err() {
                        return;
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

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

/// A store event as a Kubernetes watch event for a watcher that sees only
/// the objects `selects` accepts: an object entering the selection is ADDED,
/// one leaving it DELETED (with its previous content at the event's
/// revision), as kube-apiserver's watch cache does. None when the watcher
/// sees nothing (or the value is not JSON).
fn watch_event(event: &Event, selects: impl Fn(&Value) -> bool) -> Option<(&'static str, Value)> {
    let revision = event.kv.mod_revision;
    let decode = |kv: &flotilla_storage::KeyValue| -> Option<Value> {
        let mut obj: Value = serde_json::from_slice(&kv.value).ok()?;
        meta::set_resource_version(&mut obj, revision);
        Some(obj)
    };
    let before = event.prev_kv.as_ref().and_then(decode);
    match event.kind {
        EventKind::Put => {
            let now = decode(&event.kv)?;
            let passes_now = selects(&now);
            // History written before put events carried the previous value:
            // an update is then taken to have matched as it matches now.
            let passed = match &before {
                Some(before) => selects(before),
                None => event.kv.version > 1 && passes_now,
            };
            match (passed, passes_now) {
                (true, true) => Some(("MODIFIED", now)),
                (false, true) => Some(("ADDED", now)),
                (true, false) => before.map(|b| ("DELETED", b)),
                (false, false) => None,
            }
        }
        EventKind::Delete => before.filter(|b| selects(b)).map(|b| ("DELETED", b)),
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
    let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    match ctx
        .store
        .create(resource, obj, &WriteOptions::default())
        .await
    {
        Ok(_) | Err(store::Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
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
