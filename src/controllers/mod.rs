//! Leader-only control loops.
//!
//! [`run`] follows this member's leadership: when it becomes leader, the
//! loops start under a child cancellation token for that term; when it stops
//! being leader (or the member shuts down) the token is cancelled. Loops write
//! through compare-and-swap transactions, so a deposed leader's late write
//! fails instead of clobbering. The scheduler and the node, replica set,
//! deployment, endpoints and garbage-collection controllers join
//! [`pod_reaper`] here.

pub mod pod_reaper;

use crate::api::Context;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs the leader-only loops whenever this member leads, until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let mut leadership = ctx.node.leadership();
    let mut term: Option<CancellationToken> = None;
    loop {
        let leading = leadership.borrow_and_update().is_self;
        match (leading, &term) {
            (true, None) => {
                let token = shutdown.child_token();
                tracing::info!("leading: starting the control loops");
                tokio::spawn(pod_reaper::run(ctx.clone(), token.clone()));
                term = Some(token);
            }
            (false, Some(token)) => {
                tracing::info!("no longer leading: stopping the control loops");
                token.cancel();
                term = None;
            }
            _ => {}
        }
        tokio::select! {
            changed = leadership.changed() => if changed.is_err() { break },
            () = shutdown.cancelled() => break,
        }
    }
    if let Some(token) = term {
        token.cancel();
    }
}
