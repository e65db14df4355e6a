//! Load generators behind `ctl bench`.
//!
//! A benchmark here is a client-side measurement over plain HTTP: a fixed
//! number of operations, spread over a fixed number of concurrent client tasks
//! that share one connection pool, each task issuing its operations one after
//! another and timing each with a monotonic clock. Nothing loops without a
//! bound: the total work is fixed up front and every request carries a timeout,
//! so a stuck or dead server turns into counted errors, never a hang.
//!
//! - [`kv`]: `ctl bench kv`: puts and linearizable gets against Flotilla's
//!   `/kv` API or etcd's v3 JSON gateway, so the two stores can be compared
//!   with the same client, the same key space and the same value sizes.
//! - [`api`]: `ctl bench api`: the Kubernetes API — create and get latency,
//!   full lists of many pods, and watch fan-out.
//! - [`scheduler`]: `ctl bench scheduler`: pods bound and running per second
//!   on many hollow nodes.
//! - [`startup`]: `ctl bench startup`: pod start-up latency (create to
//!   Running) on the Docker workers.
//!
//! The benchmark is an edge of the system, like the CLI: it reports failures
//! with `anyhow`, and keeps typed errors only for the per-request failures it
//! counts.

pub mod api;
pub mod kv;
pub mod scheduler;
pub mod startup;
mod stats;

/// One JSON request of a benchmark's setup or cleanup: GETs from any master,
/// the rest to the leader; error statuses are errors.
///
/// # Errors
/// When no master answers or the answer is an error.
pub(crate) async fn call(
    client: &crate::client::Client,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let route = if method == reqwest::Method::GET {
        crate::client::Route::Any
    } else {
        crate::client::Route::Leader
    };
    Ok(client.json(method, path, body.as_ref(), route).await?)
}
