//! Compaction of the store's history, as kube-apiserver asks etcd for it.
//!
//! Every [`INTERVAL`] the leader compacts the history up to the revision it
//! saw one interval earlier, so watchers and informers always have at least
//! one interval of history to resume from, and the history does not grow
//! without bound. A watch from an older revision gets 410 Gone and lists again.

use crate::store::Store;
use flotilla_storage::{Command, Request};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often history is compacted (kube-apiserver's default too).
pub const INTERVAL: Duration = Duration::from_secs(300);

/// Runs until `stop`.
pub async fn run(ctx: Store, stop: CancellationToken) {
    let mut previous: Option<i64> = None;
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let current = ctx.node().engine().revision();
        if let Some(revision) = previous.filter(|r| *r > ctx.node().engine().compact_revision()) {
            let request = Request {
                id: None,
                command: Command::Compact { revision },
            };
            match ctx.node().write(request).await {
                Ok(_) => tracing::info!(revision, "compacted the store's history"),
                Err(e) => tracing::debug!("compaction failed: {e}"),
            }
        }
        previous = Some(current);
    }
}
