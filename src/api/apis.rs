//! Discovery and OpenAPI routes: what kubectl reads before anything else.
//!
//! `/api` and `/apis` answer aggregated discovery when asked for it (one
//! request per root instead of one per group version), the legacy documents
//! otherwise; `/api/v1` and `/apis/GROUP/VERSION` list resources; `/openapi/v3`
//! is what `kubectl apply` downloads to learn that the server validates fields.

use super::{discovery, openapi, ApiError, Context};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

/// The discovery and OpenAPI routes.
pub fn routes() -> Router<Arc<Context>> {
    Router::new()
        .route("/api", get(api))
        .route("/apis", get(apis))
        .route("/api/v1", get(core_resources))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/openapi/v3", get(openapi_index))
        .route("/openapi/v3/{*path}", get(openapi_document))
}

fn accept(headers: &HeaderMap) -> &str {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn aggregated(core: bool) -> Response {
    (
        [(header::CONTENT_TYPE, discovery::AGGREGATED_CONTENT_TYPE)],
        Json(discovery::aggregated(core)),
    )
        .into_response()
}

async fn api(State(ctx): State<Arc<Context>>, headers: HeaderMap) -> Response {
    if discovery::wants_aggregated(accept(&headers)) {
        return aggregated(true);
    }
    Json(discovery::api_versions(&ctx.node.member().addr)).into_response()
}

async fn apis(headers: HeaderMap) -> Response {
    if discovery::wants_aggregated(accept(&headers)) {
        return aggregated(false);
    }
    Json(discovery::api_group_list()).into_response()
}

async fn core_resources() -> Result<Response, ApiError> {
    resources("", "v1")
}

async fn group_resources(
    Path((group, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    resources(&group, &version)
}

fn resources(group: &str, version: &str) -> Result<Response, ApiError> {
    discovery::resource_list(group, version)
        .map(|list| Json(list).into_response())
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "the server could not find the requested resource (group version {group}/{version})"
            ))
        })
}

async fn openapi_index() -> Response {
    Json(openapi::index()).into_response()
}

async fn openapi_document(Path(path): Path<String>) -> Result<Response, ApiError> {
    openapi::document(path.trim_start_matches('/'))
        .map(|doc| Json(doc).into_response())
        .ok_or_else(|| ApiError::NotFound(format!("no OpenAPI document for {path}")))
}
