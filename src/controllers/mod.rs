//! Leader-only control loops.
//!
//! [`run`] follows this member's leadership. When it becomes leader, one
//! *term* starts under a child cancellation token: an [`crate::store::informer`] lists the
//! cluster from the local store (after the read barrier, so it has applied
//! everything committed) and follows the store's history; the
//! [`crate::scheduler`] and the controllers — [`node`], [`replicaset`],
//! [`deployment`], [`endpoints`], [`gc`] (garbage collection), [`pod_reaper`]
//! and the [`compactor`] — run over that shared cache. When leadership is
//! lost (or the member shuts down) the token is cancelled and the term's
//! tasks are awaited. Nothing carries over between terms: a new leader
//! rebuilds its view from the store.
//!
//! Loops write through [`crate::store::Writer`], the store's compare-and-swap path,
//! so a deposed leader's late write fails instead of clobbering, and the
//! store's Raft log only accepts writes from the current leader anyway.

pub mod compactor;
pub mod deployment;
pub mod endpoints;
pub mod gc;
pub mod node;
pub mod pod_reaper;
pub mod queue;
pub mod reconciler;
pub mod replicaset;

use crate::store::informer::Informer;
pub use crate::store::settings::Settings;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a term's loops get to stop after leadership is lost.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// Runs the leader-only loops whenever this member leads, until `shutdown`.
pub async fn run(ctx: Store, shutdown: CancellationToken) {
    let mut leadership = ctx.node().leadership();
    let mut term: Option<(CancellationToken, TaskTracker)> = None;
    loop {
        let leading = leadership.borrow_and_update().is_self;
        match (leading, &term) {
            (true, None) => {
                let token = shutdown.child_token();
                tracing::info!("leading: starting the control loops");
                let tracker = start_term(&ctx, &token);
                term = Some((token, tracker));
            }
            (false, Some(_)) => {
                if let Some((token, tracker)) = term.take() {
                    tracing::info!("no longer leading: stopping the control loops");
                    stop_term(token, tracker).await;
                }
            }
            _ => {}
        }
        tokio::select! {
            changed = leadership.changed() => if changed.is_err() { break },
            () = shutdown.cancelled() => break,
        }
    }
    if let Some((token, tracker)) = term {
        stop_term(token, tracker).await;
    }
}

async fn stop_term(token: CancellationToken, tracker: TaskTracker) {
    token.cancel();
    tracker.close();
    if tokio::time::timeout(STOP_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("control loops did not stop within {STOP_DEADLINE:?}");
    }
}

/// Starts one term's loops under `token`.
fn start_term(ctx: &Store, token: &CancellationToken) -> TaskTracker {
    let tracker = TaskTracker::new();
    let mut informer = Informer::new();
    let cache = informer.cache();
    let scheduler_feed = informer.subscribe();
    let node_feed = informer.subscribe();
    let rs_feed = informer.subscribe();
    let deploy_feed = informer.subscribe();
    let endpoints_feed = informer.subscribe();
    let gc_feed = informer.subscribe();
    let synced = informer.synced();
    tracker.spawn(informer.run(ctx.clone(), token.clone()));
    tracker.spawn(crate::scheduler::run(
        ctx.clone(),
        scheduler_feed,
        token.clone(),
    ));
    let (ctx, token, tracker2) = (ctx.clone(), token.clone(), tracker.clone());
    tracker.spawn(async move {
        // Settings are read once the informer has passed the read barrier.
        let mut synced = synced;
        tokio::select! {
            ready = synced.wait_for(|s| *s) => if ready.is_err() { return },
            () = token.cancelled() => return,
        }
        let settings = Settings::load(&ctx).unwrap_or_else(|e| {
            tracing::warn!("cluster settings unreadable, using defaults: {e}");
            Settings::default()
        });
        tracker2.spawn(node::run(
            ctx.clone(),
            cache.clone(),
            node_feed,
            settings,
            token.clone(),
        ));
        tracker2.spawn(reconciler::drive(
            Arc::new(replicaset::Controller::new(ctx.clone(), cache.clone())),
            cache.clone(),
            rs_feed,
            token.clone(),
        ));
        tracker2.spawn(reconciler::drive(
            Arc::new(deployment::Controller::new(ctx.clone(), cache.clone())),
            cache.clone(),
            deploy_feed,
            token.clone(),
        ));
        tracker2.spawn(reconciler::drive(
            Arc::new(endpoints::Controller::new(ctx.clone(), cache.clone())),
            cache.clone(),
            endpoints_feed,
            token.clone(),
        ));
        tracker2.spawn(gc::run(ctx.clone(), cache.clone(), gc_feed, token.clone()));
        tracker2.spawn(pod_reaper::run(ctx.clone(), token.clone()));
        tracker2.spawn(compactor::run(ctx.clone(), token.clone()));
    });
    tracker
}
