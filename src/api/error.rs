//! Every API error becomes a Kubernetes `metav1.Status` body here, in one place.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; the message says what to fix.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or wrong credential.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a credential that may not do this (e.g. a refused join token).
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 410: the requested revision was compacted.
    #[error("{0}")]
    Gone(String),
    /// 413.
    #[error("{0}")]
    TooLarge(String),
    /// 307 to the leader: `location` is the same request on the leader.
    #[error("not the leader; the leader is {leader}")]
    Redirect {
        /// Absolute URL on the leader.
        location: String,
        /// The leader's `HOST:PORT`.
        leader: String,
    },
    /// 429 with `Retry-After`: this member has too many requests in flight.
    #[error("{0}")]
    TooManyRequests(String),
    /// 503 with `Retry-After`: no leader, or no quorum, right now.
    #[error("{0}")]
    Unavailable(String),
    /// 504: the outcome is unknown (the write may still commit).
    #[error("{0}")]
    Timeout(String),
    /// 500: a bug or an I/O failure on this member.
    #[error("{0}")]
    Internal(String),
    /// A Kubernetes Status with a specific reason and `details` (NotFound,
    /// AlreadyExists, Conflict, Invalid with causes...).
    #[error("{message}")]
    Detailed {
        /// HTTP status.
        code: StatusCode,
        /// Kubernetes reason (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`...).
        reason: &'static str,
        /// Human message.
        message: String,
        /// `details` object: name, group, kind, causes.
        details: serde_json::Value,
    },
}

impl ApiError {
    fn status_and_reason(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            ApiError::Gone(_) => (StatusCode::GONE, "Expired"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge"),
            ApiError::Redirect { .. } => (StatusCode::TEMPORARY_REDIRECT, "NotLeader"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            ApiError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "Timeout"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
            ApiError::Detailed { code, reason, .. } => (*code, reason),
        }
    }
}

/// Seconds a client should wait before retrying a 503 or 429.
pub const RETRY_AFTER_SECS: &str = "1";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, reason) = self.status_and_reason();
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": status.as_u16(),
        });
        if let ApiError::Detailed { details, .. } = &self {
            body["details"] = details.clone();
        }
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Redirect { location, leader } => {
                if let Some(v) = HeaderValue::from_str(location)
                    .ok()
                    .filter(|_| !location.is_empty())
                {
                    headers.insert(header::LOCATION, v);
                }
                if let Ok(v) = HeaderValue::from_str(leader) {
                    headers.insert(super::LEADER_HEADER, v);
                }
            }
            ApiError::Unavailable(_) | ApiError::TooManyRequests(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<flotilla_storage::Error> for ApiError {
    fn from(e: flotilla_storage::Error) -> ApiError {
        use flotilla_storage::Error as E;
        match e {
            E::Compacted { requested, compacted } => ApiError::Gone(format!(
                "revision {requested} has been compacted; the oldest readable revision is {compacted}"
            )),
            E::FutureRevision { requested, current } => ApiError::BadRequest(format!(
                "revision {requested} is in the future; the current revision is {current}"
            )),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<flotilla_raft::ReadError> for ApiError {
    fn from(e: flotilla_raft::ReadError) -> ApiError {
        use flotilla_raft::ReadError as E;
        match e {
            E::Timeout => ApiError::Timeout(format!("linearizable read: {e}")),
            other => ApiError::Unavailable(format!("linearizable read: {other}")),
        }
    }
}

impl From<crate::store::Error> for ApiError {
    /// The one mapping from the object store's errors to Kubernetes' answers.
    /// A redirect gets its `Location` from the router, which knows the
    /// request (see `locate_leader`).
    fn from(e: crate::store::Error) -> ApiError {
        use crate::store::Error as E;
        let details = |resource: &crate::objects::Resource, name: &str| json!({"name": name, "group": resource.group, "kind": resource.plural});
        let message = e.to_string();
        match e {
            E::AlreadyExists { resource, name } => ApiError::Detailed {
                code: StatusCode::CONFLICT,
                reason: "AlreadyExists",
                message,
                details: details(resource, &name),
            },
            E::Conflict { resource, name } => ApiError::Detailed {
                code: StatusCode::CONFLICT,
                reason: "Conflict",
                message,
                details: details(resource, &name),
            },
            E::NotFound { resource, name } => ApiError::Detailed {
                code: StatusCode::NOT_FOUND,
                reason: "NotFound",
                message,
                details: details(resource, &name),
            },
            E::NamespaceMissing { namespace } => ApiError::Detailed {
                code: StatusCode::NOT_FOUND,
                reason: "NotFound",
                message,
                details: json!({"name": namespace, "kind": "namespaces"}),
            },
            E::Invalid {
                resource,
                name,
                errors,
            } => {
                let causes: Vec<serde_json::Value> = errors
                    .0
                    .iter()
                    .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
                    .collect();
                ApiError::Detailed {
                    code: StatusCode::UNPROCESSABLE_ENTITY,
                    reason: "Invalid",
                    message,
                    details: json!({"name": name, "group": resource.group, "kind": resource.kind, "causes": causes}),
                }
            }
            E::NotLeader {
                leader: Some(leader),
            } => ApiError::Redirect {
                location: String::new(),
                leader: leader.addr,
            },
            E::NotLeader { leader: None } | E::Replication(_) => ApiError::Unavailable(message),
            E::Timeout { .. } => ApiError::Timeout(message),
            E::Read(flotilla_raft::ReadError::Timeout) => ApiError::Timeout(message),
            E::Read(_) => ApiError::Unavailable(message),
            E::Compacted { .. } => ApiError::Gone(message),
            E::Storage(_) | E::Corrupt { .. } | E::Unserved(_) => ApiError::Internal(message),
        }
    }
}
