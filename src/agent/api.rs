//! What the agent asks of the masters, over the Kubernetes API with its
//! node credential: register and update its Node, renew its Lease, watch
//! the pods bound to it, post their status, and confirm their deletion.
//!
//! Requests go through [`Client`], which follows leader redirects and moves
//! to another master with back-off when one is down; reads use
//! `resourceVersion=0` (served by whichever master answers) where staleness
//! is harmless.

use crate::client::{self, Client, ClientError, Extras, Route};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// How long one API call may keep retrying across masters.
const CALL_DEADLINE: Duration = Duration::from_secs(20);
/// How long a watch request may stay open.
pub const WATCH_TIMEOUT: Duration = Duration::from_secs(300);

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiCallError {
    /// The server answered with an error status.
    #[error("{method} {path}: {message} (HTTP {code})")]
    Status {
        /// Method.
        method: Method,
        /// Path.
        path: String,
        /// HTTP status.
        code: u16,
        /// The Status message.
        message: String,
    },
    /// No master could be reached, or the answer was unreadable.
    #[error("{0}")]
    Client(#[from] ClientError),
}

impl ApiCallError {
    /// The HTTP status, when the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiCallError::Status { code, .. } => Some(*code),
            ApiCallError::Client(ClientError::Status { code, .. }) => Some(*code),
            ApiCallError::Client(_) => None,
        }
    }
}

pub use crate::client::encode;

/// The agent's view of the API.
pub struct Api {
    client: Client,
}

impl Api {
    /// An API over `client` (which carries the node's credential).
    pub fn new(client: Client) -> Api {
        Api { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        content_type: Option<&'static str>,
    ) -> Result<Option<Value>, ApiCallError> {
        let route = if method == Method::GET {
            Route::Any
        } else {
            Route::Leader
        };
        let bytes = body.map(|b| b.to_string().into_bytes());
        let extras = Extras {
            content_type,
            ..Extras::default()
        };
        let response = self
            .client
            .send_with(method.clone(), path, bytes, route, CALL_DEADLINE, &extras)
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND && method == Method::GET {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(ApiCallError::Status {
                method,
                path: path.to_owned(),
                code: status.as_u16(),
                message: client::error_message(response).await,
            });
        }
        let value: Value = client::decode(response).await?;
        Ok(Some(value))
    }

    /// GET an object; None when it does not exist.
    ///
    /// # Errors
    /// Unreachable masters, error answers.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, ApiCallError> {
        self.call(Method::GET, path, None, None).await
    }

    /// POST (create) an object.
    ///
    /// # Errors
    /// Unreachable masters, error answers (409 when it exists).
    pub async fn create(&self, path: &str, body: &Value) -> Result<Value, ApiCallError> {
        Ok(self
            .call(Method::POST, path, Some(body), None)
            .await?
            .unwrap_or_default())
    }

    /// PUT (replace) an object; 409 when its resourceVersion is stale.
    ///
    /// # Errors
    /// Unreachable masters, error answers.
    pub async fn replace(&self, path: &str, body: &Value) -> Result<Value, ApiCallError> {
        Ok(self
            .call(Method::PUT, path, Some(body), None)
            .await?
            .unwrap_or_default())
    }

    /// Merge-patches an object (or its status with a `/status` path).
    ///
    /// # Errors
    /// Unreachable masters, error answers (404 when it is gone).
    pub async fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, ApiCallError> {
        Ok(self
            .call(
                Method::PATCH,
                path,
                Some(patch),
                Some("application/merge-patch+json"),
            )
            .await?
            .unwrap_or_default())
    }

    /// DELETE an object with the given grace period.
    ///
    /// # Errors
    /// Unreachable masters, error answers (404 when it is already gone).
    pub async fn delete(&self, path: &str, grace: i64) -> Result<(), ApiCallError> {
        let body = serde_json::json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace});
        self.call(Method::DELETE, path, Some(&body), None).await?;
        Ok(())
    }

    /// Opens a watch (`?watch=true` is added) on a collection path with a
    /// query; the streaming response.
    ///
    /// # Errors
    /// Unreachable masters, error answers (410 when `resourceVersion` is compacted).
    pub async fn watch(&self, path_and_query: &str) -> Result<reqwest::Response, ApiCallError> {
        let extras = Extras {
            timeout: Some(WATCH_TIMEOUT + Duration::from_secs(30)),
            ..Extras::default()
        };
        let response = self
            .client
            .send_with(
                Method::GET,
                path_and_query,
                None,
                Route::Any,
                CALL_DEADLINE,
                &extras,
            )
            .await?;
        if !response.status().is_success() {
            return Err(ApiCallError::Status {
                method: Method::GET,
                path: path_and_query.to_owned(),
                code: response.status().as_u16(),
                message: client::error_message(response).await,
            });
        }
        Ok(response)
    }
}
