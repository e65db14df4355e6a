//! Removes pods whose graceful deletion ran out on nodes that cannot finish it.
//!
//! Deleting a pod bound to a node only marks it (`deletionTimestamp`,
//! `deletionGracePeriodSeconds`); its agent stops the containers and confirms
//! with a delete of grace 0. A healthy node's agent is left to do so however
//! long its teardown takes — removing the pod under it would let its
//! containers leak if the agent stopped then. Only when the node is gone or
//! not Ready (its agent silent, as the node controller judges it) is the pod
//! removed here, once its grace period has passed: Kubernetes force-deletes
//! on the same condition.

use crate::store;
use crate::store::Store;
use flotilla_storage::{Op, Request, Target};
use serde_json::Value;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often the reaper looks.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Unix seconds at which a pod marked for deletion may be removed, if it is marked.
pub fn expires_at(pod: &Value) -> Option<u64> {
    let marked = pod["metadata"]["deletionTimestamp"].as_str()?;
    let at = humantime::parse_rfc3339(marked).ok()?;
    let at = at.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    let grace = pod["metadata"]["deletionGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(0);
    Some(at.saturating_add(grace))
}

/// Runs until `stop` is cancelled.
pub async fn run(ctx: Store, stop: CancellationToken) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Err(e) = sweep(&ctx).await {
            tracing::debug!("pod reaper: {e}");
        }
    }
}

/// Whether the pod's node exists and is Ready, so its agent will confirm.
fn node_can_finish(ctx: &Store, pod: &Value) -> bool {
    let Some(node) = crate::objects::pod::node_name(pod) else {
        return false;
    };
    let key = format!("/registry/nodes/{node}");
    ctx.node()
        .engine()
        .get(key.as_bytes(), None)
        .ok()
        .and_then(|read| read.value)
        .and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .is_some_and(|n| crate::objects::pod::condition(&n, "Ready") == Some("True"))
}

async fn sweep(ctx: &Store) -> Result<(), String> {
    let now = crate::objects::meta::now();
    let pods = ctx
        .node()
        .engine()
        .range(b"/registry/pods/", 0, None)
        .map_err(|e| e.to_string())?;
    for kv in pods.value.kvs {
        let Ok(pod) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        if expires_at(&pod).is_none_or(|at| at > now) || node_can_finish(ctx, &pod) {
            continue;
        }
        // Only if unchanged since read: a pod the agent just updated waits a round.
        let request = Request {
            id: None,
            command: store::txn::when(
                kv.key.clone(),
                Target::ModRevision(kv.mod_revision),
                Op::Delete {
                    key: kv.key.clone(),
                },
            ),
        };
        ctx.node().write(request).await.map_err(|e| e.to_string())?;
        tracing::info!(pod = %String::from_utf8_lossy(&kv.key), "removed a pod whose grace period ran out");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expiry_is_mark_plus_grace() {
        let pod = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30}});
        assert_eq!(expires_at(&pod), Some(1_767_225_600 + 30));
        assert_eq!(expires_at(&json!({"metadata": {}})), None);
    }
}
