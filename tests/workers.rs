//! Joining workers, and what a worker's credential may do: bad, revoked and
//! master tokens are refused with a message naming the problem; a node
//! writes only its own Node and the pods bound to it (NodeRestriction);
//! deleting a Node revokes its credential; a re-run `ctl join` resumes.

mod common;

use common::{ctl_bin, Cluster};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

fn join(cluster: &Cluster, token: &str, name: &str) -> (bool, String) {
    let dir = cluster.root.path().join(name);
    let child = Command::new(ctl_bin())
        .args([
            "join",
            &cluster.members[0].addr,
            "--token",
            token,
            "--runtime",
            "fake",
            "--name",
            name,
            "--data-dir",
            &dir.display().to_string(),
        ])
        .env("FLOTILLA_LOG", "warn")
        .output()
        .expect("run ctl join");
    (
        child.status.success(),
        String::from_utf8_lossy(&child.stderr).into_owned(),
    )
}

/// Reads the node credential a joined worker keeps.
fn credential(cluster: &Cluster, name: &str) -> String {
    let text = std::fs::read_to_string(cluster.root.path().join(name).join("node.kubeconfig"))
        .expect("the worker keeps node.kubeconfig");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .expect("a token in node.kubeconfig")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_tokens_and_node_restriction() {
    let mut cluster = Cluster::start(1).await;

    // Wrong tokens are refused, each saying why.
    let (ok, err) = join(&cluster, "abcdef.0123456789abcdef", "bad");
    assert!(!ok, "a malformed token joined");
    assert!(
        err.contains("CA fingerprint") || err.contains("token"),
        "{err}"
    );
    let master = cluster.master_token();
    let (ok, err) = join(&cluster, &master, "wrong-role");
    assert!(
        !ok && err.contains("master"),
        "a master token joined a worker: {err}"
    );
    let revoked = cluster.worker_token();
    let id = revoked.split('.').next().expect("token id").to_owned();
    let out = cluster.ctl(&["token", "revoke", &id]);
    assert!(out.ok, "{}", out.stderr);
    let (ok, err) = join(&cluster, &revoked, "revoked");
    assert!(
        !ok && err.contains("revoked"),
        "a revoked token joined: {err}"
    );

    // A good token joins; the node registers and becomes Ready.
    cluster.add_worker("w1", "fake").await;
    cluster.add_worker("w2", "fake").await;
    let token = credential(&cluster, "w1");
    let http = &cluster.http;
    let base = cluster.members[0].url();
    let status = |path: &str, method: reqwest::Method, body: serde_json::Value| {
        let request = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token)
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string());
        async move { request.send().await.expect("request").status().as_u16() }
    };
    // Reads are allowed; its own Node is writable; another's is not.
    assert_eq!(
        status("/api/v1/pods", reqwest::Method::GET, json!(null)).await,
        200
    );
    let patch = json!({"metadata": {"labels": {"x": "y"}}});
    assert_eq!(
        status("/api/v1/nodes/w1", reqwest::Method::PATCH, patch.clone()).await,
        200
    );
    assert_eq!(
        status("/api/v1/nodes/w2", reqwest::Method::PATCH, patch.clone()).await,
        403
    );
    // No raw store, no tokens, no deployments.
    assert_eq!(
        status("/kv/range?prefix=/", reqwest::Method::GET, json!(null)).await,
        403
    );
    assert_eq!(
        status("/cluster/tokens", reqwest::Method::GET, json!(null)).await,
        403
    );
    // A pod bound to w2 is not w1's to update.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"nodeName": "w2", "containers": [{"name": "c", "image": "fake/x:1"}]}});
    let created = cluster
        .http
        .post(format!("{base}/api/v1/namespaces/default/pods"))
        .bearer_auth(&cluster.token)
        .json(&pod)
        .send()
        .await
        .expect("create pod");
    assert_eq!(created.status().as_u16(), 201);
    let body = json!({"status": {"phase": "Failed"}});
    assert_eq!(
        status(
            "/api/v1/namespaces/default/pods/p/status",
            reqwest::Method::PATCH,
            body
        )
        .await,
        403
    );

    // Re-running the same join resumes without asking again.
    cluster.workers[0].kill();
    cluster.workers[0].restart();
    let worker = &cluster.workers[0];
    common::wait_for("w1 to resume", Duration::from_secs(30), || async {
        worker.log().contains("Resuming worker w1").then_some(())
    })
    .await;
    common::wait_for(
        "w1's agent to register again",
        Duration::from_secs(30),
        || async { (worker.log().matches("node registered").count() >= 2).then_some(()) },
    )
    .await;
    assert!(cluster.workers[0].is_running(), "the resumed agent runs");
    let nodes = cluster.get_any("/api/v1/nodes").await.expect("nodes");
    assert_eq!(
        nodes["items"].as_array().map(Vec::len),
        Some(2),
        "no second node: {nodes}"
    );

    // Deleting the Node revokes its credential.
    cluster.workers[0].kill();
    let out = cluster.ctl(&["delete", "node", "w1"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        status("/api/v1/pods", reqwest::Method::GET, json!(null)).await,
        401
    );
}

/// A Node removed by the garbage collector — after a foreground delete set a
/// finalizer — takes its agent's credential with it, as a plain delete does:
/// the credential is released in the transaction that removes the Node,
/// wherever that transaction comes from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_removed_by_the_garbage_collector_loses_its_credential() {
    let mut cluster = Cluster::start(1).await;
    cluster.add_worker("w1", "fake").await;
    let token = credential(&cluster, "w1");
    let base = cluster.members[0].url();
    let pods_as_node = || {
        let request = cluster
            .http
            .get(format!("{base}/api/v1/pods"))
            .bearer_auth(&token);
        async move { request.send().await.expect("request").status().as_u16() }
    };
    assert_eq!(pods_as_node().await, 200);
    cluster.workers[0].kill();
    let deleted = cluster
        .http
        .delete(format!("{base}/api/v1/nodes/w1"))
        .bearer_auth(&cluster.token)
        .json(&json!({"propagationPolicy": "Foreground"}))
        .send()
        .await
        .expect("delete the node");
    assert!(deleted.status().is_success(), "{}", deleted.status());
    common::wait_for("the Node to be gone", Duration::from_secs(30), || async {
        cluster
            .get_any("/api/v1/nodes")
            .await
            .filter(|nodes| nodes["items"].as_array().is_some_and(Vec::is_empty))
    })
    .await;
    assert_eq!(
        pods_as_node().await,
        401,
        "the credential of a Node the garbage collector removed still works"
    );
}
