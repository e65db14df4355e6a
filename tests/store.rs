//! The replicated store, end to end: real `ctl` processes on loopback.
//!
//! What a user of an HA trio checks: three voters from init + two joins;
//! writes through any member; linearizable reads everywhere see the latest
//! acknowledged write; a killed leader is replaced quickly and loses nothing;
//! a restarted member catches up (by snapshot when the log it needs is gone);
//! all three killed at once lose nothing.

mod common;

use common::{wait_for, Cluster};
use std::time::{Duration, Instant};

const ELECTION: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trio_serves_linearizable_reads_everywhere() {
    let mut cluster = Cluster::start(3).await;

    let out = cluster.ctl(&["member", "list", "-o", "json"]);
    assert!(out.ok, "member list failed: {}", out.stderr);
    let members: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("member json");
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(members.iter().all(|m| m["role"] == "voter"), "{members:?}");
    assert_eq!(members.iter().filter(|m| m["leader"] == true).count(), 1);
    for m in &members {
        for field in ["id", "name", "address", "role", "leader"] {
            assert!(m.get(field).is_some(), "member lacks {field}: {m}");
        }
    }

    // A write through each member (followers redirect to the leader), then a
    // linearizable read on every member sees it at once.
    for writer in 0..3 {
        let value = format!("v{writer}");
        let out = cluster.ctl_at(writer, &["kv", "put", "/test/k", &value]);
        assert!(out.ok, "put via m{} failed: {}", writer + 1, out.stderr);
        for reader in 0..3 {
            let got = cluster.get_via(reader, "/test/k", "linearizable").await;
            assert_eq!(
                got,
                Some(Some(value.clone())),
                "linearizable read on m{} after write via m{}",
                reader + 1,
                writer + 1
            );
        }
    }

    // `ctl kv get -o json` names the member that answered.
    let out = cluster.ctl_at(2, &["kv", "get", "/test/k", "-o", "json"]);
    assert!(out.ok, "{}", out.stderr);
    let reply: serde_json::Value = serde_json::from_str(&out.stdout).expect("get json");
    assert_eq!(reply["member"], "m3");
    assert_eq!(reply["kv"]["value"], "v2");
    assert_eq!(reply["kv"]["version"], 3);

    let out = cluster.ctl(&["cluster", "status", "-o", "json"]);
    assert!(out.ok, "{}", out.stderr);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).expect("status json");
    assert!(status["leader"]["name"].is_string(), "{status}");
    assert!(status["term"].as_u64().unwrap_or(0) >= 1);
    let statuses = status["members"].as_array().expect("members");
    assert_eq!(statuses.len(), 3);
    assert!(statuses.iter().all(|m| m["healthy"] == true), "{status}");
    assert!(statuses
        .iter()
        .all(|m| m["applied_index"].as_u64().unwrap_or(0) > 0));

    // `ctl` has learned the members (member list / cluster status cache them
    // beside the kubeconfig): with m1, the kubeconfig's server, down, it still
    // reaches the cluster.
    cluster.members[0].kill();
    let out = cluster.ctl(&["kv", "put", "/test/without-m1", "ok"]);
    assert!(
        out.ok,
        "put with the kubeconfig's master down: {}",
        out.stderr
    );
    let out = cluster.ctl(&["kv", "get", "/test/without-m1"]);
    assert!(
        out.ok,
        "get with the kubeconfig's master down: {}",
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_fails_over_and_loses_nothing() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.await_leader(ELECTION).await;

    let mut acknowledged = Vec::new();
    for i in 0..50 {
        let key = format!("/acked/{i:03}");
        if cluster
            .put_via(leader, &key, &format!("{i}"))
            .await
            .is_some()
        {
            acknowledged.push(key);
        }
    }
    assert_eq!(
        acknowledged.len(),
        50,
        "every write before the kill should be acknowledged"
    );

    cluster.members[leader].kill();
    let killed_at = Instant::now();
    let survivor = (leader + 1) % 3;
    let revision = wait_for(
        "a write accepted after the leader's death",
        ELECTION,
        || cluster.put_via(survivor, "/after/kill", "1"),
    )
    .await;
    let failover = killed_at.elapsed();
    println!(
        "failover: leader killed -> first accepted write in {failover:?} (revision {revision})"
    );

    for key in &acknowledged {
        for i in (0..3).filter(|i| *i != leader) {
            let got = cluster.get_via(i, key, "linearizable").await;
            assert!(
                matches!(got, Some(Some(_))),
                "acknowledged {key} missing on m{}",
                i + 1
            );
        }
    }

    // The killed member comes back by re-running its own command and catches up.
    cluster.members[leader].restart();
    wait_for(
        "the restarted member to have the write made while it was down",
        ELECTION,
        || async {
            let value = cluster
                .get_via(leader, "/after/kill", "serializable")
                .await??;
            (value == "1").then_some(())
        },
    )
    .await;
    let members = cluster.member_list().await.expect("members");
    assert_eq!(
        members.len(),
        3,
        "restart must not add a member: {members:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_behind_member_catches_up_by_snapshot() {
    let mut cluster = Cluster::start(3).await;
    let lagging = 2;
    assert!(
        cluster.members[lagging].terminate().is_some(),
        "m3 did not stop on SIGTERM"
    );
    let leader = cluster.await_leader(ELECTION).await;
    for i in 0..200 {
        assert!(
            cluster
                .put_via(leader, &format!("/bulk/{i:04}"), "x")
                .await
                .is_some(),
            "write {i} not acknowledged with two of three members up"
        );
    }
    // Snapshot and purge the log on both running members, so whoever leads
    // when m3 returns can only catch it up with a snapshot.
    for i in 0..3 {
        if i == lagging {
            continue;
        }
        let out = cluster.ctl_at(i, &["cluster", "snapshot"]);
        assert!(out.ok, "snapshot on m{} failed: {}", i + 1, out.stderr);
    }
    cluster.members[lagging].restart();
    let url = cluster.members[lagging].url();
    wait_for("m3 to install a snapshot", ELECTION, || async {
        let local = cluster.get_json(&url, "/cluster/local").await?;
        (local["snapshot_installs"].as_u64()? >= 1).then_some(())
    })
    .await;
    let got = wait_for("m3 to have the last bulk key", ELECTION, || async {
        cluster
            .get_via(lagging, "/bulk/0199", "serializable")
            .await?
    })
    .await;
    assert_eq!(got, "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_all_at_once_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.await_leader(ELECTION).await;
    // Concurrent writers, so acknowledged writes share log entries and fsyncs.
    let mut acknowledged = Vec::new();
    let writes = (0..8).map(|w| {
        let cluster = &cluster;
        async move {
            let mut mine = Vec::new();
            for i in 0..25 {
                let key = format!("/durable/{w}/{i:02}");
                if cluster
                    .put_via(leader, &key, &format!("{w}-{i}"))
                    .await
                    .is_some()
                {
                    mine.push(key);
                }
            }
            mine
        }
    });
    for keys in futures::future::join_all(writes).await {
        acknowledged.extend(keys);
    }
    assert_eq!(acknowledged.len(), 200);

    for m in &mut cluster.members {
        m.kill();
    }
    for m in &mut cluster.members {
        m.restart();
    }
    let leader = cluster.await_leader(ELECTION).await;
    for key in &acknowledged {
        let got = wait_for(&format!("{key} after restart"), ELECTION, || {
            cluster.get_via(leader, key, "linearizable")
        })
        .await;
        assert!(
            got.is_some(),
            "acknowledged write {key} lost after kill -9 of all members"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_membership_and_bad_input() {
    let mut cluster = Cluster::start(2).await;

    // A join with a wrong, an expired and a revoked token is refused, saying which.
    let server = cluster.members[0].addr.clone();
    let dir = cluster.root.path().join("refused");
    // Runs a join that must be refused: it has to exit (a successful join
    // would serve in the foreground) with a message on stderr.
    let join = |token: &str| {
        let mut child = std::process::Command::new(common::ctl_bin())
            .args([
                "join",
                &server,
                "--token",
                token,
                "--control-plane",
                "--data-dir",
                &dir.display().to_string(),
                "--listen",
                &format!("127.0.0.1:{}", common::free_port()),
                "--name",
                "intruder",
            ])
            .env("FLOTILLA_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run ctl join");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for ctl join") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("join with token {token} was not refused within 30s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success(), "join with token {token} was accepted");
        let mut stderr = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read stderr");
        stderr
    };
    let good = cluster.master_token();
    let (id, _) = good.split_once('.').expect("ID.SECRET");
    let hash = good.rsplit('.').next().expect("CA hash").to_owned();
    let wrong = format!("{id}.0000000000000000.{hash}");
    assert!(
        join(&wrong).contains("wrong secret"),
        "wrong secret not named"
    );
    assert!(join(&format!("zzzzzz.0000000000000000.{hash}")).contains("unknown token"));
    // A token naming another CA: the joiner refuses before sending it.
    let other_ca = format!(
        "{id}.{}.{}",
        good.split('.').nth(1).unwrap_or(""),
        "0".repeat(64)
    );
    assert!(
        join(&other_ca).contains("refusing to send the token"),
        "CA mismatch not detected"
    );
    assert!(join(&format!("{id}.0000000000000000")).contains("no CA fingerprint"));
    assert!(join("not-a-token").contains("malformed"));

    let out = cluster.ctl(&["token", "create", "--role", "master", "--ttl", "1s"]);
    assert!(out.ok, "{}", out.stderr);
    let short = out.stdout.trim().to_owned();
    let (short_id, _) = short.split_once('.').expect("ID.SECRET");
    let listed = cluster.ctl(&["token", "list", "-o", "json"]);
    let records: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).expect("token json");
    let expires = records
        .iter()
        .find(|r| r["id"] == short_id)
        .and_then(|r| r["expires"].as_u64())
        .expect("the new token is listed with its expiry");
    // Wait on the clock (not on a join, which would succeed while the token is valid).
    wait_for(
        "the 1s token to expire",
        Duration::from_secs(10),
        || async {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs();
            (now > expires).then_some(())
        },
    )
    .await;
    assert!(join(&short).contains("expired"), "expired token not named");

    let out = cluster.ctl(&["token", "revoke", id]);
    assert!(out.ok, "revoke failed: {}", out.stderr);
    assert!(join(&good).contains("revoked"), "revoked token not named");
    let listed = cluster.ctl(&["token", "list", "-o", "json"]);
    assert!(
        listed.stdout.contains("\"revoked\": true"),
        "{}",
        listed.stdout
    );
    assert!(
        !dir.join("member.json").exists(),
        "a refused join must leave no member behind"
    );

    // A worker token cannot join a master.
    let out = cluster.ctl(&["token", "create", "--role", "worker"]);
    assert!(join(out.stdout.trim()).contains("worker token"));

    // Member remove: refuses the last voter, warns on an even count.
    cluster.join("m3").await;
    let out = cluster.ctl(&["member", "remove", "m3"]);
    assert!(out.ok, "remove m3 failed: {}", out.stderr);
    assert!(
        out.stderr.contains("even"),
        "no warning about 2 voters: {}",
        out.stderr
    );
    let members = cluster.member_list().await.expect("members");
    assert_eq!(members.len(), 2, "{members:?}");
    cluster.members[2].kill();
    let out = cluster.ctl(&["member", "remove", "m2"]);
    assert!(out.ok, "remove m2 failed: {}", out.stderr);
    cluster.members[1].kill();
    let out = cluster.ctl(&["member", "remove", "m1"]);
    assert!(!out.ok, "removing the last voter was accepted");
    assert!(out.stderr.contains("last voter"), "{}", out.stderr);
    let out = cluster.ctl(&["member", "remove", "nobody"]);
    assert!(
        !out.ok && out.stderr.contains("no member named nobody"),
        "{}",
        out.stderr
    );

    // Malformed bodies get a 400 with a message, and the member lives on.
    let url = format!("{}/kv/put", cluster.members[0].url());
    for body in ["{not json", "{\"key\": 5}", "[]"] {
        let response = cluster
            .http
            .post(&url)
            .bearer_auth(&cluster.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send malformed body");
        assert_eq!(response.status(), 400, "body {body:?}");
        let status: serde_json::Value = response.json().await.expect("Status body");
        assert_eq!(status["kind"], "Status");
        assert!(
            status["message"]
                .as_str()
                .unwrap_or("")
                .contains("malformed"),
            "{status}"
        );
    }
    let response = cluster
        .http
        .post(&url)
        .body("{}")
        .send()
        .await
        .expect("send unauthenticated");
    assert_eq!(response.status(), 401);
    assert!(
        cluster.members[0].is_running(),
        "a malformed request killed the member"
    );
    let leader = cluster.await_leader(ELECTION).await;
    assert!(cluster
        .put_via(leader, "/still/alive", "yes")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replays_follows_and_reports_compaction() {
    use futures::StreamExt;
    let cluster = Cluster::start(1).await;
    let first = cluster.put_via(0, "/w/a", "1").await.expect("put a");
    cluster.put_via(0, "/other/x", "1").await.expect("put x");
    let second = cluster.put_via(0, "/w/b", "2").await.expect("put b");

    // From `first - 1`: replays a and b (not /other), then follows live.
    let url = format!(
        "{}/kv/watch?prefix=%2Fw%2F&from={}",
        cluster.members[0].url(),
        first - 1
    );
    let response = cluster
        .http
        .get(url)
        .bearer_auth(&cluster.token)
        .send()
        .await
        .expect("watch");
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut lines: Vec<serde_json::Value> = Vec::new();
    let mut pending = Vec::new();
    let mut deleted = false;
    tokio::time::timeout(ELECTION, async {
        while lines.len() < 4 {
            let chunk = stream.next().await.expect("stream open").expect("chunk");
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                lines.push(serde_json::from_slice(&line).expect("event json"));
            }
            if lines.len() == 2 && !deleted {
                deleted = true;
                cluster.put_via(0, "/w/c", "3").await.expect("put c");
                let out = cluster.ctl(&["kv", "del", "/w/a"]);
                assert!(out.ok, "{}", out.stderr);
            }
        }
    })
    .await
    .expect("four watch events in time");
    let seen: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["type"].as_str().unwrap_or("").to_owned(),
                l["kv"]["key"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("PUT".into(), "/w/a".into()),
            ("PUT".into(), "/w/b".into()),
            ("PUT".into(), "/w/c".into()),
            ("DELETE".into(), "/w/a".into()),
        ]
    );
    assert_eq!(lines[1]["kv"]["mod_revision"], second);
    assert_eq!(lines[3]["prev_kv"]["value"], "1");

    // Compact, then a watch or a read from before the compaction is refused with 410.
    let response = cluster
        .http
        .post(format!("{}/kv/compact", cluster.members[0].url()))
        .bearer_auth(&cluster.token)
        .json(&serde_json::json!({ "revision": second }))
        .send()
        .await
        .expect("compact");
    assert_eq!(response.status(), 200);
    for path in [
        format!("/kv/watch?prefix=%2Fw%2F&from={}", first - 1),
        format!("/kv/get?key=%2Fw%2Fa&revision={first}"),
    ] {
        let response = cluster
            .http
            .get(format!("{}{path}", cluster.members[0].url()))
            .bearer_auth(&cluster.token)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 410, "{path}");
        let status: serde_json::Value = response.json().await.expect("Status");
        assert!(
            status["message"]
                .as_str()
                .unwrap_or("")
                .contains("compacted"),
            "{status}"
        );
    }
}

/// A watch whose history batch ends just before a multi-key transaction
/// delivers that transaction and everything after it. (A batch never splits a
/// revision, so it can stop short of its limit with more to come; the
/// watch used to take a short batch for "caught up" and jump to the current
/// revision, losing every event in between.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_across_a_batch_boundary_loses_nothing() {
    use futures::StreamExt;
    let cluster = Cluster::start(1).await;
    let base = cluster.members[0].url();
    let from = cluster.put_via(0, "/b/start", "0").await.expect("put");
    // 997 single puts, then one transaction of five keys that does not fit
    // the watch's first batch of 1,000, then five more single puts.
    for i in 0..997 {
        cluster
            .put_via(0, &format!("/b/single-{i:04}"), "x")
            .await
            .expect("put");
    }
    let success: Vec<serde_json::Value> = (0..5)
        .map(|i| serde_json::json!({"op": "put", "key": format!("/b/txn-{i}"), "value": "t"}))
        .collect();
    let txn = cluster
        .http
        .post(format!("{base}/kv/txn"))
        .bearer_auth(&cluster.token)
        .json(&serde_json::json!({"compare": [], "success": success, "failure": []}))
        .send()
        .await
        .expect("txn");
    assert_eq!(txn.status(), 200);
    for i in 0..5 {
        cluster
            .put_via(0, &format!("/b/tail-{i}"), "y")
            .await
            .expect("put");
    }
    let response = cluster
        .http
        .get(format!("{base}/kv/watch?prefix=%2Fb%2F&from={from}"))
        .bearer_auth(&cluster.token)
        .send()
        .await
        .expect("watch");
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut pending = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while keys.len() < 1007 {
            let chunk = stream.next().await.expect("stream open").expect("chunk");
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let event: serde_json::Value = serde_json::from_slice(&line).expect("event");
                keys.push(event["kv"]["key"].as_str().unwrap_or("").to_owned());
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the watch delivered {} of 1,007 events; the last were {:?}",
        keys.len(),
        keys.iter().rev().take(3).collect::<Vec<_>>()
    );
    assert_eq!(keys[996], "/b/single-0996");
    assert_eq!(
        &keys[997..1002],
        ["/b/txn-0", "/b/txn-1", "/b/txn-2", "/b/txn-3", "/b/txn-4"]
    );
    assert_eq!(keys[1006], "/b/tail-4");
}
