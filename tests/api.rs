//! The Kubernetes-shaped API over HTTP, as client libraries use it: CRUD,
//! conflicts, patches, selectors, watch resume and expiry, hostile bodies.

mod common;

use common::Cluster;
use serde_json::{json, Value};
use std::time::Duration;

struct Api<'a> {
    cluster: &'a Cluster,
    base: String,
}

impl Api<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> (u16, Value) {
        let mut request = self
            .cluster
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.cluster.token);
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.expect("request");
        let code = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            path,
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(
            reqwest::Method::PUT,
            path,
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    async fn patch(&self, path: &str, content_type: &str, body: &Value) -> (u16, Value) {
        self.call(
            reqwest::Method::PATCH,
            path,
            Some((content_type, body.to_string().into_bytes())),
        )
        .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

/// A pod no scheduler serves (as for a custom scheduler that is not
/// running), so these tests see only their own writes to it.
fn pod(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
           "spec": {"schedulerName": "api-test", "containers": [{"name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 80}],
                                     "env": [{"name": "A", "value": "1"}]}]}})
}

const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_conflicts_and_errors() {
    let cluster = Cluster::start(1).await;
    let api = Api {
        cluster: &cluster,
        base: cluster.members[0].url(),
    };

    let (code, created) = api.post(PODS, &pod("web", json!({"app": "web"}))).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(created["status"]["phase"], "Pending");
    assert_eq!(created["spec"]["restartPolicy"], "Always", "defaulted");
    assert!(created["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| u.len() == 36));
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();

    let (code, again) = api.post(PODS, &pod("web", json!({}))).await;
    assert_eq!(
        (code, again["reason"].as_str()),
        (409, Some("AlreadyExists")),
        "{again}"
    );

    let (code, got) = api.get(&format!("{PODS}/web")).await;
    assert_eq!(code, 200);
    assert_eq!(got["metadata"]["resourceVersion"], rv.as_str());

    // Update with the current resourceVersion works; with a stale one: 409 Conflict.
    let mut changed = got.clone();
    changed["metadata"]["labels"]["tier"] = json!("front");
    let (code, updated) = api.put(&format!("{PODS}/web"), &changed).await;
    assert_eq!(code, 200, "{updated}");
    let (code, stale) = api.put(&format!("{PODS}/web"), &changed).await;
    assert_eq!(
        (code, stale["reason"].as_str()),
        (409, Some("Conflict")),
        "{stale}"
    );

    // Status changes only through /status.
    let mut status = updated.clone();
    status["status"]["phase"] = json!("Running");
    status["spec"]["nodeName"] = json!("ignored");
    let (code, after) = api.put(&format!("{PODS}/web/status"), &status).await;
    assert_eq!(code, 200, "{after}");
    assert_eq!(after["status"]["phase"], "Running");
    assert!(
        after["spec"].get("nodeName").is_none(),
        "spec must not change through /status"
    );

    // Invalid objects: 422 naming each bad field.
    let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "c"}]}});
    let (code, invalid) = api.post(PODS, &bad).await;
    assert_eq!(
        (code, invalid["reason"].as_str()),
        (422, Some("Invalid")),
        "{invalid}"
    );
    let fields: Vec<&str> = invalid["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(fields, vec!["metadata.name", "spec.containers[0].image"]);
    assert!(invalid["message"]
        .as_str()
        .unwrap_or("")
        .contains("invalid"));

    let mut bad_quantity = pod("q", json!({}));
    bad_quantity["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "lots"}, "limits": {"memory": "64Mi"}});
    let (code, invalid) = api.post(PODS, &bad_quantity).await;
    assert_eq!(code, 422, "{invalid}");
    assert_eq!(
        invalid["details"]["causes"][0]["field"],
        "spec.containers[0].resources.requests[cpu]"
    );

    // fieldValidation=Strict (kubectl's default) refuses fields the type lacks.
    let mut typo = pod("typo", json!({}));
    typo["spec"]["containers"][0]["imge"] = json!("x");
    typo["spec"]["restartPolcy"] = json!("Never");
    let (code, strict) = api
        .post(&format!("{PODS}?fieldValidation=Strict"), &typo)
        .await;
    assert_eq!(code, 400, "{strict}");
    let message = strict["message"].as_str().unwrap_or("");
    assert!(
        message.contains("unknown field \"spec.containers[0].imge\"")
            && message.contains("spec.restartPolcy"),
        "{message}"
    );
    let (code, strict_ok) = api
        .post(
            &format!("{PODS}?fieldValidation=Strict"),
            &pod("fine", json!({"a": "b"})),
        )
        .await;
    assert_eq!(
        code, 201,
        "a valid pod passes strict validation: {strict_ok}"
    );

    // Unknown namespace, unknown object, unknown resource.
    let (code, _) = api
        .post("/api/v1/namespaces/nowhere/pods", &pod("p", json!({})))
        .await;
    assert_eq!(code, 404);
    let (code, missing) = api.get(&format!("{PODS}/ghost")).await;
    assert_eq!((code, missing["reason"].as_str()), (404, Some("NotFound")));
    assert_eq!(missing["details"]["name"], "ghost");
    let (code, _) = api.get("/api/v1/namespaces/default/widgets").await;
    assert_eq!(code, 404);

    // Hostile bodies: wrong types, truncated, deep nesting, huge, non-JSON.
    let hostile: Vec<(&str, Vec<u8>, u16)> = vec![
        ("application/json", br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":"no"}}"#.to_vec(), 422),
        ("application/json", br#"{"metadata":{"name":5}}"#.to_vec(), 422),
        ("application/json", br#"{"metadata":{"name":"x""#.to_vec(), 400),
        ("application/json", format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(), 400),
        ("application/json", vec![b'x'; 4 * 1024 * 1024], 413),
        ("application/yaml", b"metadata: [unclosed".to_vec(), 400),
        ("application/json", b"[1,2,3]".to_vec(), 400),
    ];
    for (content_type, body, want) in hostile {
        let size = body.len();
        let (code, status) = api
            .call(reqwest::Method::POST, PODS, Some((content_type, body)))
            .await;
        assert_eq!(code, want, "{content_type} body of {size} bytes: {status}");
    }
    assert!(cluster.members.iter().all(|m| m.log().len() < 50_000_000));
    let (code, _) = api.get(&format!("{PODS}/web")).await;
    assert_eq!(code, 200, "the server survived hostile bodies");

    // Delete: an unbound pod goes at once; then 404.
    let (code, _) = api.delete(&format!("{PODS}/web")).await;
    assert_eq!(code, 200);
    let (code, _) = api.get(&format!("{PODS}/web")).await;
    assert_eq!(code, 404);

    // Without the admin credential: 401.
    let response = cluster
        .http
        .get(format!("{}{PODS}", api.base))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_and_selectors() {
    let cluster = Cluster::start(1).await;
    let api = Api {
        cluster: &cluster,
        base: cluster.members[0].url(),
    };
    for (name, app, tier) in [
        ("a", "web", "front"),
        ("b", "web", "back"),
        ("c", "db", "back"),
    ] {
        let (code, body) = api
            .post(PODS, &pod(name, json!({"app": app, "tier": tier})))
            .await;
        assert_eq!(code, 201, "{body}");
    }
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    for (selector, want) in [
        ("labelSelector=app%3Dweb", vec!["a", "b"]),
        ("labelSelector=tier%20in%20(back),app!%3Dweb", vec!["c"]),
        ("labelSelector=!tier", vec![]),
        ("fieldSelector=metadata.name%3Db", vec!["b"]),
        ("fieldSelector=spec.nodeName%3D", vec!["a", "b", "c"]),
    ] {
        let (code, list) = api.get(&format!("{PODS}?{selector}")).await;
        assert_eq!(code, 200, "{list}");
        assert_eq!(names(&list), want, "{selector}");
    }
    // limit / continue pages through a consistent snapshot.
    let (_, page) = api.get(&format!("{PODS}?limit=2")).await;
    assert_eq!(names(&page), vec!["a", "b"]);
    let token = page["metadata"]["continue"]
        .as_str()
        .expect("continue token")
        .to_owned();
    let (_, rest) = api.get(&format!("{PODS}?limit=2&continue={token}")).await;
    assert_eq!(names(&rest), vec!["c"]);
    assert!(rest["metadata"].get("continue").is_none());

    // Strategic merge: change the image, keep ports and env, add a container.
    let smp = json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "d"}],
        "containers": [{"name": "c", "image": "busybox:1.37"}, {"name": "d", "image": "nginx"}]}});
    let (code, patched) = api
        .patch(
            &format!("{PODS}/a"),
            "application/strategic-merge-patch+json",
            &smp,
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    let c = &patched["spec"]["containers"];
    assert_eq!(
        (
            c[0]["image"].as_str(),
            c[0]["ports"][0]["containerPort"].as_i64(),
            c[0]["env"][0]["name"].as_str()
        ),
        (Some("busybox:1.37"), Some(80), Some("A"))
    );
    assert_eq!(c[1]["name"], "d");
    // Merge patch replaces lists; JSON patch edits by path.
    let (code, merged) = api
        .patch(
            &format!("{PODS}/b"),
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"tier": null}}}),
        )
        .await;
    assert_eq!(code, 200);
    assert!(merged["metadata"]["labels"].get("tier").is_none());
    let (code, jp) = api
        .patch(
            &format!("{PODS}/b"),
            "application/json-patch+json",
            &json!([{"op": "replace", "path": "/metadata/labels/app", "value": "api"}]),
        )
        .await;
    assert_eq!(
        (code, jp["metadata"]["labels"]["app"].as_str()),
        (200, Some("api"))
    );
    let (code, _) = api
        .patch(
            &format!("{PODS}/b"),
            "application/json-patch+json",
            &json!([{"op": "test", "path": "/metadata/labels/app", "value": "nope"}]),
        )
        .await;
    assert_eq!(code, 422);
    let (code, _) = api
        .patch(&format!("{PODS}/b"), "text/plain", &json!({}))
        .await;
    assert_eq!(code, 415);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_and_expires() {
    use futures::StreamExt;
    let cluster = Cluster::start(1).await;
    let api = Api {
        cluster: &cluster,
        base: cluster.members[0].url(),
    };
    let (_, first) = api.post(PODS, &pod("w1", json!({"app": "w"}))).await;
    let from = first["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    api.post(PODS, &pod("w2", json!({"app": "w"}))).await;
    api.delete(&format!("{PODS}/w1")).await;

    let response = cluster
        .http
        .get(format!(
            "{}{PODS}?watch=true&resourceVersion={from}&labelSelector=app%3Dw",
            api.base
        ))
        .bearer_auth(&cluster.token)
        .send()
        .await
        .expect("watch");
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut events: Vec<(String, String)> = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while events.len() < 2 {
            buffer.extend_from_slice(&stream.next().await.expect("open").expect("chunk"));
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line).expect("event");
                events.push((
                    event["type"].as_str().unwrap_or("").into(),
                    event["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .into(),
                ));
            }
        }
    })
    .await
    .expect("events in time");
    assert_eq!(
        events,
        vec![
            ("ADDED".to_owned(), "w2".to_owned()),
            ("DELETED".to_owned(), "w1".to_owned())
        ]
    );

    // Compact past `from`: the same watch now ends with 410 Expired.
    let (_, now) = api.get(PODS).await;
    let current: i64 = now["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .expect("list rv");
    let response = cluster
        .http
        .post(format!("{}/kv/compact", api.base))
        .bearer_auth(&cluster.token)
        .json(&json!({"revision": current}))
        .send()
        .await
        .expect("compact");
    assert_eq!(response.status(), 200);
    let text = cluster
        .http
        .get(format!(
            "{}{PODS}?watch=true&resourceVersion={from}",
            api.base
        ))
        .bearer_auth(&cluster.token)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("watch")
        .text()
        .await
        .unwrap_or_default();
    let event: Value =
        serde_json::from_str(text.lines().next().unwrap_or("{}")).expect("error event");
    assert_eq!(
        (
            event["type"].as_str(),
            event["object"]["code"].as_i64(),
            event["object"]["reason"].as_str()
        ),
        (Some("ERROR"), Some(410), Some("Expired")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_cluster_ips_and_node_ports() {
    let cluster = Cluster::start(1).await;
    let api = Api {
        cluster: &cluster,
        base: cluster.members[0].url(),
    };
    const SVCS: &str = "/api/v1/namespaces/default/services";
    let svc = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec});
    let (code, a) = api
        .post(
            SVCS,
            &svc(
                "a",
                json!({"selector": {"app": "a"}, "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{a}");
    let (_, b) = api.post(SVCS, &svc("b", json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "nodePort": 30081}]}))).await;
    let ip_a = a["spec"]["clusterIP"]
        .as_str()
        .expect("cluster IP")
        .to_owned();
    let ip_b = b["spec"]["clusterIP"]
        .as_str()
        .expect("cluster IP")
        .to_owned();
    assert!(ip_a.starts_with("10.") && ip_a != ip_b, "{ip_a} {ip_b}");
    assert_eq!(
        a["spec"]["ports"][0]["targetPort"], 80,
        "targetPort defaults to port"
    );
    let node_port = b["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .expect("allocated node port");
    assert!((30000..=32767).contains(&node_port));
    assert_eq!(b["spec"]["ports"][1]["nodePort"], 30081);

    // A node port in use is refused; once its Service is gone it is free again.
    let (code, taken) = api
        .post(
            SVCS,
            &svc(
                "c",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30081}]}),
            ),
        )
        .await;
    assert_eq!(code, 422, "{taken}");
    let (code, _) = api.delete(&format!("{SVCS}/b")).await;
    assert_eq!(code, 200);
    let (code, c) = api
        .post(
            SVCS,
            &svc(
                "c",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30081}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{c}");

    // The cluster IP survives updates that omit it and cannot be changed.
    let (code, kept) = api
        .patch(
            &format!("{SVCS}/a"),
            "application/merge-patch+json",
            &json!({"spec": {"clusterIP": null, "selector": {"app": "b"}}}),
        )
        .await;
    assert_eq!(
        (code, kept["spec"]["clusterIP"].as_str()),
        (200, Some(ip_a.as_str())),
        "{kept}"
    );
    let (code, moved) = api
        .patch(
            &format!("{SVCS}/a"),
            "application/merge-patch+json",
            &json!({"spec": {"clusterIP": "10.96.0.99"}}),
        )
        .await;
    assert_eq!(code, 422, "{moved}");
    assert!(moved["message"]
        .as_str()
        .unwrap_or("")
        .contains("immutable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_release_only_what_they_hold() {
    // Issue 15 #9: an ExternalName Service naming another Service's IP, or a
    // ClusterIP Service naming a node port, must not free the other's claim
    // when it is deleted.
    let cluster = Cluster::start(1).await;
    let api = Api {
        cluster: &cluster,
        base: cluster.members[0].url(),
    };
    const SVCS: &str = "/api/v1/namespaces/default/services";
    let svc = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec});
    let (code, a) = api
        .post(
            SVCS,
            &svc("a", json!({"type": "NodePort", "ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(code, 201, "{a}");
    let ip = a["spec"]["clusterIP"]
        .as_str()
        .expect("cluster IP")
        .to_owned();
    let node_port = a["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .expect("node port");

    // Services whose type holds no such thing may not name them.
    let (code, named_ip) = api
        .post(
            SVCS,
            &svc(
                "b",
                json!({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": ip}),
            ),
        )
        .await;
    assert_eq!(code, 422, "{named_ip}");
    assert_eq!(
        named_ip["details"]["causes"][0]["field"], "spec.clusterIP",
        "{named_ip}"
    );
    let (code, named_port) = api
        .post(
            SVCS,
            &svc(
                "c",
                json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": node_port}]}),
            ),
        )
        .await;
    assert_eq!(code, 422, "{named_port}");
    assert_eq!(
        named_port["details"]["causes"][0]["field"], "spec.ports[0].nodePort",
        "{named_port}"
    );
    let (code, no_name) = api
        .post(SVCS, &svc("d", json!({"type": "ExternalName"})))
        .await;
    assert_eq!(code, 422, "{no_name}");

    // A proper ExternalName Service comes and goes without touching a's.
    let (code, e) = api
        .post(
            SVCS,
            &svc(
                "e",
                json!({"type": "ExternalName", "externalName": "db.example.com"}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{e}");
    assert!(e["spec"].get("clusterIP").is_none(), "{e}");
    let (code, _) = api.delete(&format!("{SVCS}/e")).await;
    assert_eq!(code, 200);

    // a still holds its IP and node port.
    let (code, taken_ip) = api
        .post(
            SVCS,
            &svc("f", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(code, 422, "{taken_ip}");
    let (code, taken_port) = api
        .post(
            SVCS,
            &svc(
                "g",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": node_port}]}),
            ),
        )
        .await;
    assert_eq!(code, 422, "{taken_port}");

    // Turned into an ExternalName Service, a gives its IP back.
    let (code, turned) = api
        .patch(
            &format!("{SVCS}/a"),
            "application/merge-patch+json",
            &json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
        )
        .await;
    assert_eq!(code, 200, "{turned}");
    assert!(turned["spec"].get("clusterIP").is_none(), "{turned}");
    assert!(
        turned["spec"]["ports"][0].get("nodePort").is_none(),
        "{turned}"
    );
    let (code, reused) = api
        .post(
            SVCS,
            &svc(
                "h",
                json!({"type": "NodePort", "clusterIP": ip, "ports": [{"port": 80, "nodePort": node_port}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{reused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_pods_are_deleted_gracefully() {
    let cluster = Cluster::start(1).await;
    let api = Api {
        cluster: &cluster,
        base: cluster.members[0].url(),
    };
    for name in ["g1", "g2"] {
        let (code, _) = api.post(PODS, &pod(name, json!({}))).await;
        assert_eq!(code, 201);
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}, "target": {"kind": "Node", "name": "n1"}});
        let (code, body) = api.post(&format!("{PODS}/{name}/binding"), &binding).await;
        assert_eq!(code, 201, "{body}");
    }
    let (code, again) = api
        .post(
            &format!("{PODS}/g1/binding"),
            &json!({"target": {"name": "n2"}}),
        )
        .await;
    assert_eq!(code, 409, "a bound pod cannot be bound again: {again}");

    // A bound pod is marked, not removed, and goes when its grace runs out.
    let (code, marked) = api
        .call(
            reqwest::Method::DELETE,
            &format!("{PODS}/g1"),
            Some(("application/json", br#"{"gracePeriodSeconds": 1}"#.to_vec())),
        )
        .await;
    assert_eq!(code, 202, "{marked}");
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let (code, _) = api.get(&format!("{PODS}/g1")).await;
    assert_eq!(code, 200, "still there during its grace period");
    common::wait_for(
        "the pod to go after its grace period",
        Duration::from_secs(15),
        || async {
            let (code, _) = api.get(&format!("{PODS}/g1")).await;
            (code == 404).then_some(())
        },
    )
    .await;

    // Its agent confirms with grace 0: removed at once.
    let (code, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("{PODS}/g2"),
            Some(("application/json", br#"{"gracePeriodSeconds": 0}"#.to_vec())),
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = api.get(&format!("{PODS}/g2")).await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_are_deleted_like_their_members() {
    let cluster = Cluster::start(1).await;
    let api = Api {
        cluster: &cluster,
        base: cluster.members[0].url(),
    };
    for name in ["c1", "c2", "c3"] {
        let (code, _) = api.post(PODS, &pod(name, json!({"set": "c"}))).await;
        assert_eq!(code, 201);
    }
    let binding = json!({"target": {"kind": "Node", "name": "n1"}});
    let (code, _) = api.post(&format!("{PODS}/c3/binding"), &binding).await;
    assert_eq!(code, 201);

    // All namespaces at once is not a collection one deletes.
    let (code, refused) = api.delete("/api/v1/pods").await;
    assert_eq!(code, 400, "{refused}");

    // Unbound pods go at once; the bound one is marked for its agent.
    let (code, deleted) = api.delete(&format!("{PODS}?labelSelector=set%3Dc")).await;
    assert_eq!(code, 200, "{deleted}");
    let items = deleted["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{deleted}");
    for name in ["c1", "c2"] {
        let (code, _) = api.get(&format!("{PODS}/{name}")).await;
        assert_eq!(code, 404, "{name} is gone");
    }
    let (code, c3) = api.get(&format!("{PODS}/c3")).await;
    assert_eq!(code, 200);
    assert!(c3["metadata"]["deletionTimestamp"].is_string(), "{c3}");
}

/// Reads watch events (type, name, app label) from `response` until `count`.
async fn watch_events(response: reqwest::Response, count: usize) -> Vec<(String, String, String)> {
    use futures::StreamExt;
    let mut stream = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut events = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while events.len() < count {
            buffer.extend_from_slice(&stream.next().await.expect("open").expect("chunk"));
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line).expect("event");
                let object = &event["object"];
                events.push((
                    event["type"].as_str().unwrap_or("").to_owned(),
                    object["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                    object["metadata"]["labels"]["app"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                ));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} watch events in time; got {events:?}"));
    events
}

/// A label-selector watch sees an object leave its selection as DELETED and
/// enter it as ADDED (Kubernetes' watch cache does; without it, informers on
/// selectors keep ghosts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_watches_see_objects_enter_and_leave() {
    let cluster = Cluster::start(1).await;
    let api = Api {
        cluster: &cluster,
        base: cluster.members[0].url(),
    };
    let (_, first) = api.post(PODS, &pod("s1", json!({"app": "web"}))).await;
    let from = first["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    let relabel = |app: &'static str| {
        let api = &api;
        async move {
            let (code, body) = api
                .patch(
                    &format!("{PODS}/s1"),
                    "application/merge-patch+json",
                    &json!({"metadata": {"labels": {"app": app}}}),
                )
                .await;
            assert_eq!(code, 200, "{body}");
        }
    };
    relabel("db").await; // leaves app=web
    relabel("web").await; // enters again
    relabel("web2").await; // leaves
    relabel("db").await; // neither: unseen
    api.delete(&format!("{PODS}/s1")).await; // not in the selection: unseen
    api.post(PODS, &pod("s2", json!({"app": "web"}))).await;
    let response = cluster
        .http
        .get(format!(
            "{}{PODS}?watch=true&resourceVersion={from}&labelSelector=app%3Dweb",
            api.base
        ))
        .bearer_auth(&cluster.token)
        .send()
        .await
        .expect("watch");
    assert_eq!(response.status(), 200);
    let events = watch_events(response, 4).await;
    let expected = [
        ("DELETED", "s1", "web"),
        ("ADDED", "s1", "web"),
        ("DELETED", "s1", "web"),
        ("ADDED", "s2", "web"),
    ];
    assert_eq!(
        events,
        expected
            .iter()
            .map(|(t, n, a)| (t.to_string(), n.to_string(), a.to_string()))
            .collect::<Vec<_>>(),
        "a DELETED carries the object as it last matched"
    );
}

/// A retried write answers with exactly what its first attempt did: the
/// generated name that was stored, the cluster IP that was allocated, the
/// objects a collection delete removed — never an object that was not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_writes_answer_the_first_attempts_outcome() {
    let cluster = Cluster::start(1).await;
    let base = cluster.members[0].url();
    let send = |method: reqwest::Method, path: &str, id: &str, body: Value| {
        let request = cluster
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&cluster.token)
            .header("x-flotilla-request-id", id)
            .json(&body);
        async move {
            let response = request.send().await.expect("request");
            let code = response.status().as_u16();
            (code, response.json::<Value>().await.expect("json"))
        }
    };
    let api = Api {
        cluster: &cluster,
        base: base.clone(),
    };

    // generateName: the retry names the pod the first attempt created.
    let mut generated = pod("", json!({"app": "gen"}));
    generated["metadata"] = json!({"generateName": "gen-", "labels": {"app": "gen"}});
    let id = "0123456789abcdef0123456789abcdef";
    let (code, first) = send(reqwest::Method::POST, PODS, id, generated.clone()).await;
    assert_eq!(code, 201, "{first}");
    let (code, retry) = send(reqwest::Method::POST, PODS, id, generated).await;
    assert_eq!(code, 201, "{retry}");
    assert_eq!(retry["metadata"]["name"], first["metadata"]["name"]);
    assert_eq!(
        retry["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    let (_, list) = api.get(&format!("{PODS}?labelSelector=app%3Dgen")).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");

    // A Service: the retry reports the cluster IP that was stored.
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "retried"},
        "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}});
    let services = "/api/v1/namespaces/default/services";
    let id = "11111111111111111111111111111111";
    let (_, first) = send(reqwest::Method::POST, services, id, svc.clone()).await;
    let (code, retry) = send(reqwest::Method::POST, services, id, svc).await;
    assert_eq!(code, 201, "{retry}");
    let (_, stored) = api.get(&format!("{services}/retried")).await;
    assert_eq!(retry["spec"]["clusterIP"], stored["spec"]["clusterIP"]);
    assert_eq!(first["spec"]["clusterIP"], stored["spec"]["clusterIP"]);

    // A collection delete retried after the selection changed: every
    // object the retry reports deleted is really gone (each object's delete
    // has its own key; numbering them by order made the retry's first delete
    // look like the first attempt's, reporting a pod it never deleted).
    api.post(PODS, &pod("c1", json!({"app": "coll"}))).await;
    api.post(PODS, &pod("c2", json!({"app": "other"}))).await;
    let id = "22222222222222222222222222222222";
    let path = format!("{PODS}?labelSelector=app%3Dcoll");
    let (code, first) = send(reqwest::Method::DELETE, &path, id, json!({})).await;
    assert_eq!(code, 200, "{first}");
    let (code, _) = api
        .patch(
            &format!("{PODS}/c2"),
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"app": "coll"}}}),
        )
        .await;
    assert_eq!(code, 200);
    let (code, retry) = send(reqwest::Method::DELETE, &path, id, json!({})).await;
    assert_eq!(code, 200, "{retry}");
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(names(&first), ["c1"]);
    for name in names(&retry) {
        let (code, body) = api.get(&format!("{PODS}/{name}")).await;
        assert_eq!(code, 404, "the retry reported {name} deleted, yet: {body}");
    }
}

/// Requests found by fuzzing the served OpenAPI documents (schemathesis):
/// every error is a Kubernetes `Status` with the right code, and what
/// Kubernetes refuses is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_status() {
    let cluster = Cluster::start(1).await;
    let api = Api {
        cluster: &cluster,
        base: cluster.members[0].url(),
    };
    let is_status = |body: &Value, code: u16| {
        body["kind"] == "Status" && body["code"] == code && body["status"] == "Failure"
    };
    for (method, path, code) in [
        (reqwest::Method::GET, "/no/such/path", 404),
        (reqwest::Method::GET, "/apis/apps", 404),
        (reqwest::Method::POST, "/api", 405),
        (reqwest::Method::DELETE, "/openapi/v3", 405),
        (reqwest::Method::GET, "/api/v1/namespaces/%FF/pods", 400),
        (reqwest::Method::GET, &format!("{PODS}?limit=abc"), 400),
        (
            reqwest::Method::GET,
            &format!("{PODS}?watch=true&timeoutSeconds=abc"),
            400,
        ),
    ] {
        let (got, body) = api.call(method.clone(), path, None).await;
        assert!(
            got == code && is_status(&body, code),
            "{method} {path}: {got} {body}"
        );
    }

    // A chunked body over the limit (no Content-Length): 413 Status.
    let big = vec![b' '; 4 << 20];
    let stream = futures::stream::iter(
        big.chunks(64 << 10)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let response = cluster
        .http
        .post(format!("{}{PODS}", api.base))
        .bearer_auth(&cluster.token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("chunked post");
    let code = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(code == 413 && is_status(&body, 413), "{code} {body}");

    // Replicas beyond int32 are refused (one request must not flood the
    // cluster with pods).
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "huge"},
        "spec": {"replicas": 99_999_999_999_i64, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    let (code, body) = api
        .post("/apis/apps/v1/namespaces/default/deployments", &deployment)
        .await;
    assert!(code == 422 && is_status(&body, 422), "{code} {body}");

    // A resourceVersion that is no revision does not turn off optimistic
    // concurrency: 400, and nothing is written.
    let (_, created) = api.post(PODS, &pod("rv", json!({"app": "rv"}))).await;
    let mut changed = created.clone();
    changed["metadata"]["resourceVersion"] = json!("abc");
    changed["metadata"]["labels"]["app"] = json!("changed");
    let (code, body) = api.put(&format!("{PODS}/rv"), &changed).await;
    assert!(code == 400 && is_status(&body, 400), "{code} {body}");
    let (code, body) = api
        .patch(
            &format!("{PODS}/rv"),
            "application/merge-patch+json",
            &json!({"metadata": {"resourceVersion": "99999999999999999999999", "labels": {"app": "changed"}}}),
        )
        .await;
    assert!(code == 400 && is_status(&body, 400), "{code} {body}");
    let (_, now) = api.get(&format!("{PODS}/rv")).await;
    assert_eq!(now["metadata"]["labels"]["app"], "rv");
}
