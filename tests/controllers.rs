//! The leader's control loops on a three-master cluster with three hollow
//! nodes (`ctl join --runtime fake`): scheduling and spreading, failover of
//! the loops with the leader, node loss, rolling updates, garbage
//! collection, endpoints, unschedulable pods. An auditor follows every pod
//! event of the whole run and fails the test if a pod is ever bound to two
//! nodes or a Deployment ever has more live pods than replicas + maxSurge.

mod common;

use common::{wait_for, Cluster, Kubectl};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GRACE: &str = "4s";
const EVICTION: &str = "6s";

fn deployment(replicas: usize, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 2, maxUnavailable: 1}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 8080
"
    )
}

/// What the auditor saw.
#[derive(Default)]
struct Audit {
    /// uid → the node it was first bound to.
    bound: HashMap<String, String>,
    /// uid → (live, has label app=web, name, node).
    pods: HashMap<String, (bool, bool, String, String)>,
    /// uid → image, of unfinished pods of the Recreate deployment.
    recreate: HashMap<String, String>,
    /// When each pod name was first seen.
    added: Vec<(Instant, String)>,
    violations: Vec<String>,
    most_live: usize,
    events: usize,
    last_version: String,
}

impl Audit {
    fn live_web(&self) -> usize {
        self.pods
            .values()
            .filter(|(live, web, _, _)| *live && *web)
            .count()
    }

    fn observe(&mut self, kind: &str, pod: &Value, limit: usize) {
        self.events += 1;
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        let name = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();
        if let Some(rv) = pod["metadata"]["resourceVersion"].as_str() {
            self.last_version = rv.to_owned();
        }
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("").to_owned();
        if !node.is_empty() {
            match self.bound.get(&uid) {
                Some(first) if *first != node => self
                    .violations
                    .push(format!("pod {name} bound to {first} and then to {node}")),
                Some(_) => {}
                None => {
                    self.bound.insert(uid.clone(), node.clone());
                }
            }
        }
        if kind == "DELETED" {
            self.pods.remove(&uid);
            self.recreate.remove(&uid);
            return;
        }
        if !self.pods.contains_key(&uid) {
            self.added.push((Instant::now(), name.clone()));
        }
        let live = pod["metadata"].get("deletionTimestamp").is_none()
            && !matches!(
                pod["status"]["phase"].as_str(),
                Some("Succeeded" | "Failed")
            );
        let web = pod["metadata"]["labels"]["app"] == "web";
        if pod["metadata"]["labels"]["app"] == "recreate" {
            // Terminating pods still run: Recreate must wait for them too.
            let finished = matches!(
                pod["status"]["phase"].as_str(),
                Some("Succeeded" | "Failed")
            );
            if !finished {
                let image = pod["spec"]["containers"][0]["image"].as_str().unwrap_or("");
                self.recreate.insert(uid.clone(), image.to_owned());
            } else {
                self.recreate.remove(&uid);
            }
            let mut images: Vec<&String> = self.recreate.values().collect();
            images.sort();
            images.dedup();
            if images.len() > 1 {
                self.violations.push(format!(
                    "Recreate deployment ran two templates at once: {images:?}"
                ));
            }
        }
        self.pods.insert(uid, (live, web, name, node));
        let count = self.live_web();
        self.most_live = self.most_live.max(count);
        if count > limit {
            self.violations.push(format!(
                "{count} live pods of deployment web, over replicas + maxSurge = {limit}"
            ));
        }
    }
}

/// Follows every pod event of the cluster into `audit`, moving to another
/// master when one dies, resuming from the last version seen.
async fn audit(
    cluster_urls: Vec<String>,
    http: reqwest::Client,
    token: String,
    audit: Arc<Mutex<Audit>>,
    limit: Arc<AtomicUsize>,
    from: String,
) {
    let mut version = from;
    let mut i = 0;
    loop {
        let url = format!(
            "{}/api/v1/pods?watch=true&resourceVersion={version}&timeoutSeconds=600",
            cluster_urls[i % cluster_urls.len()]
        );
        i += 1;
        let Ok(mut response) = http
            .get(&url)
            .bearer_auth(&token)
            .timeout(Duration::from_secs(700))
            .send()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if !response.status().is_success() {
            audit.lock().expect("audit").violations.push(format!(
                "the audit watch was refused: {}",
                response.status()
            ));
            return;
        }
        let mut buffer = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let kind = event["type"].as_str().unwrap_or("");
                if kind == "ERROR" {
                    audit
                        .lock()
                        .expect("audit")
                        .violations
                        .push(format!("the audit watch broke: {event}"));
                    return;
                }
                if kind == "BOOKMARK" {
                    continue;
                }
                let mut a = audit.lock().expect("audit");
                a.observe(kind, &event["object"], limit.load(Ordering::SeqCst));
                version = a.last_version.clone();
            }
        }
    }
}

/// Pods of deployment web: (name, node, phase, image) of the live ones.
async fn web_pods(cluster: &Cluster) -> Option<Vec<(String, String, String, String)>> {
    let list = cluster
        .get_any("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
        .await?;
    Some(
        list["items"]
            .as_array()?
            .iter()
            .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                    p["spec"]["nodeName"].as_str().unwrap_or("").to_owned(),
                    p["status"]["phase"].as_str().unwrap_or("").to_owned(),
                    p["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                )
            })
            .collect(),
    )
}

async fn running_web(
    cluster: &Cluster,
    count: usize,
) -> Option<Vec<(String, String, String, String)>> {
    let pods = web_pods(cluster).await?;
    (pods.len() == count && pods.iter().all(|p| p.2 == "Running")).then_some(pods)
}

fn per_node(pods: &[(String, String, String, String)]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for p in pods {
        *counts.entry(p.1.clone()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_loops_schedule_heal_roll_and_collect() {
    let mut cluster = Cluster::start_with(
        3,
        &[
            "--node-monitor-grace-period",
            GRACE,
            "--pod-eviction-timeout",
            EVICTION,
        ],
    )
    .await;
    for name in ["h1", "h2", "h3"] {
        cluster.add_worker(name, "fake").await;
    }
    let k = Kubectl::new(&cluster);

    // The auditor starts before the first pod.
    let from = cluster.get_any("/api/v1/pods").await.expect("list pods")["metadata"]
        ["resourceVersion"]
        .as_str()
        .expect("a list version")
        .to_owned();
    let record = Arc::new(Mutex::new(Audit::default()));
    let limit = Arc::new(AtomicUsize::new(9 + 2));
    let urls: Vec<String> = cluster.members.iter().map(common::Member::url).collect();
    let auditor = tokio::spawn(audit(
        urls,
        cluster.http.clone(),
        cluster.token.clone(),
        record.clone(),
        limit.clone(),
        from,
    ));

    // 9 replicas on three identical nodes: 3/3/3.
    assert!(k.apply(&deployment(9, "fake/web:1")).contains("created"));
    let pods = wait_for("9 web pods Running", Duration::from_secs(60), || {
        running_web(&cluster, 9)
    })
    .await;
    let spread = per_node(&pods);
    assert_eq!(spread.len(), 3, "every node got pods: {spread:?}");
    assert!(spread.values().all(|n| *n == 3), "spread 3/3/3: {spread:?}");
    let rollout = k.run(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert!(
        rollout.ok && rollout.stdout.contains("successfully rolled out"),
        "{}{}",
        rollout.stdout,
        rollout.stderr
    );

    // A Service gets Endpoints listing the ready pods.
    k.apply("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n  - port: 80\n    targetPort: 8080\n");
    wait_for(
        "endpoints with 9 addresses",
        Duration::from_secs(30),
        || async {
            let ep = cluster
                .get_any("/api/v1/namespaces/default/endpoints/web")
                .await?;
            let addresses = ep["subsets"][0]["addresses"].as_array()?;
            (addresses.len() == 9 && ep["subsets"][0]["ports"][0]["port"] == 8080).then_some(())
        },
    )
    .await;

    // Kill the leader; scale through a survivor; the new leader's loops act.
    let leader = cluster.await_leader(Duration::from_secs(10)).await;
    let killed_at = Instant::now();
    cluster.members[leader].kill();
    let survivor = (leader + 1) % 3;
    let elected = wait_for("a new leader", Duration::from_secs(15), || async {
        for (i, m) in cluster.members.iter().enumerate() {
            if i == leader {
                continue;
            }
            if let Some(local) = cluster.get_json(&m.url(), "/cluster/local").await {
                if local["state"] == "Leader" {
                    return Some(Instant::now());
                }
            }
        }
        None
    })
    .await;
    limit.store(15 + 2, Ordering::SeqCst);
    let scaled = cluster.ctl_at(survivor, &["scale", "deploy/web", "--replicas", "15"]);
    assert!(
        scaled.ok,
        "scale through a surviving master: {}",
        scaled.stderr
    );
    let first_new = wait_for(
        "the first pod made by the new leader",
        Duration::from_secs(30),
        || async {
            let a = record.lock().expect("audit");
            a.added
                .iter()
                .find(|(at, _)| *at > elected)
                .map(|(at, _)| *at)
        },
    )
    .await;
    println!(
        "leader killed: new leader after {:.2} s; first new pod {:.2} s after the election ({:.2} s after the kill)",
        elected.duration_since(killed_at).as_secs_f64(),
        first_new.duration_since(elected).as_secs_f64(),
        first_new.duration_since(killed_at).as_secs_f64()
    );
    wait_for("15 web pods Running", Duration::from_secs(60), || {
        running_web(&cluster, 15)
    })
    .await;
    cluster.members[leader].restart();

    // A dead node's pods are replaced on the live ones.
    cluster.workers[2].kill();
    let moved = wait_for(
        "the pods of h3 replaced on h1 and h2",
        Duration::from_secs(90),
        || async {
            let pods = running_web(&cluster, 15).await?;
            pods.iter().all(|p| p.1 != "h3").then_some(pods)
        },
    )
    .await;
    let spread = per_node(&moved);
    assert_eq!(
        spread.keys().filter(|n| n.as_str() != "h3").count(),
        2,
        "{spread:?}"
    );
    let h3 = cluster.get_any("/api/v1/nodes/h3").await.expect("node h3");
    let taints = h3["spec"]["taints"].to_string();
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "h3 is tainted unreachable: {taints}"
    );
    assert!(
        h3["status"]["conditions"].to_string().contains("Unknown"),
        "h3's Ready is Unknown"
    );

    // A rolling update replaces every pod; kubectl sees it finish.
    let updated = k.ok(&["set", "image", "deploy/web", "web=fake/web:2"]);
    assert!(updated.contains("image updated"), "{updated}");
    let rollout = k.run(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    assert!(
        rollout.ok && rollout.stdout.contains("successfully rolled out"),
        "{}{}",
        rollout.stdout,
        rollout.stderr
    );
    let pods = wait_for(
        "15 pods of the new template",
        Duration::from_secs(30),
        || async {
            let pods = running_web(&cluster, 15).await?;
            pods.iter().all(|p| p.3 == "fake/web:2").then_some(pods)
        },
    )
    .await;
    assert_eq!(pods.len(), 15);
    let history = k.ok(&["rollout", "history", "deploy/web"]);
    assert!(
        history.contains('1') && history.contains('2'),
        "two revisions: {history}"
    );

    // An unschedulable pod says why, and is placed once a node fits.
    k.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: picky\nspec:\n  nodeSelector: {disk: ssd}\n  containers:\n  - name: c\n    image: fake/x:1\n");
    wait_for(
        "picky to be marked unschedulable",
        Duration::from_secs(30),
        || async {
            let pod = cluster
                .get_any("/api/v1/namespaces/default/pods/picky")
                .await?;
            let condition = pod["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "PodScheduled")?
                .clone();
            (condition["status"] == "False"
                && condition["reason"] == "Unschedulable"
                && condition["message"]
                    .as_str()?
                    .contains("didn't match Pod's node affinity/selector"))
            .then_some(())
        },
    )
    .await;
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=picky",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("FailedScheduling"), "{events}");
    k.ok(&["label", "node", "h1", "disk=ssd"]);
    wait_for("picky bound to h1", Duration::from_secs(30), || async {
        let pod = cluster
            .get_any("/api/v1/namespaces/default/pods/picky")
            .await?;
        (pod["spec"]["nodeName"] == "h1").then_some(())
    })
    .await;

    // Deleting the Deployment removes its ReplicaSets and pods.
    limit.store(usize::MAX, Ordering::SeqCst);
    assert!(k.ok(&["delete", "deploy", "web"]).contains("deleted"));
    wait_for(
        "web's ReplicaSets and pods to be gone",
        Duration::from_secs(60),
        || async {
            let rs = cluster
                .get_any("/apis/apps/v1/namespaces/default/replicasets")
                .await?;
            let pods = web_pods(&cluster).await?;
            (rs["items"].as_array()?.is_empty() && pods.is_empty()).then_some(())
        },
    )
    .await;

    // Orphan, then foreground deletion.
    let keep = deployment(2, "fake/keep:1")
        .replace("name: web", "name: keep")
        .replace("app: web", "app: keep");
    k.apply(&keep);
    wait_for("2 keep pods Running", Duration::from_secs(60), || async {
        let list = cluster
            .get_any("/api/v1/namespaces/default/pods?labelSelector=app%3Dkeep")
            .await?;
        let items = list["items"].as_array()?;
        (items.len() == 2 && items.iter().all(|p| p["status"]["phase"] == "Running")).then_some(())
    })
    .await;
    k.ok(&["delete", "deploy", "keep", "--cascade=orphan"]);
    let rs_name = wait_for(
        "the orphaned ReplicaSet to lose its owner",
        Duration::from_secs(30),
        || async {
            let deploy_gone = cluster
                .get_any("/apis/apps/v1/namespaces/default/deployments/keep")
                .await
                .is_none();
            let list = cluster
                .get_any("/apis/apps/v1/namespaces/default/replicasets")
                .await?;
            let rs = list["items"].as_array()?.first()?.clone();
            (deploy_gone && rs["metadata"].get("ownerReferences").is_none())
                .then(|| rs["metadata"]["name"].as_str().unwrap_or("").to_owned())
        },
    )
    .await;
    let pods = cluster
        .get_any("/api/v1/namespaces/default/pods?labelSelector=app%3Dkeep")
        .await
        .expect("pods");
    assert_eq!(
        pods["items"].as_array().map(Vec::len),
        Some(2),
        "orphaned pods stay"
    );
    k.ok(&["delete", "rs", &rs_name, "--cascade=foreground"]);
    wait_for(
        "foreground deletion of the ReplicaSet and its pods",
        Duration::from_secs(60),
        || async {
            let rs_gone = cluster
                .get_any(&format!(
                    "/apis/apps/v1/namespaces/default/replicasets/{rs_name}"
                ))
                .await
                .is_none();
            let pods = cluster
                .get_any("/api/v1/namespaces/default/pods?labelSelector=app%3Dkeep")
                .await?;
            (rs_gone && pods["items"].as_array()?.is_empty()).then_some(())
        },
    )
    .await;

    // Recreate: the old pods are gone before a new one starts.
    let recreate = deployment(3, "fake/recreate:1")
        .replace("name: web", "name: recreate")
        .replace("app: web", "app: recreate")
        .replace(
            "type: RollingUpdate\n    rollingUpdate: {maxSurge: 2, maxUnavailable: 1}",
            "type: Recreate",
        );
    assert!(recreate.contains("type: Recreate"));
    k.apply(&recreate);
    let rollout = k.run(&["rollout", "status", "deploy/recreate", "--timeout=60s"]);
    assert!(rollout.ok, "{}{}", rollout.stdout, rollout.stderr);
    k.ok(&[
        "set",
        "image",
        "deploy/recreate",
        "recreate=fake/recreate:2",
    ]);
    let rollout = k.run(&["rollout", "status", "deploy/recreate", "--timeout=60s"]);
    assert!(rollout.ok, "{}{}", rollout.stdout, rollout.stderr);
    wait_for(
        "3 recreated pods of the new template",
        Duration::from_secs(30),
        || async {
            let list = cluster
                .get_any("/api/v1/namespaces/default/pods?labelSelector=app%3Drecreate")
                .await?;
            let items = list["items"].as_array()?;
            let live: Vec<&Value> = items
                .iter()
                .filter(|p| p["metadata"].get("deletionTimestamp").is_none())
                .collect();
            (live.len() == 3
                && live.iter().all(|p| {
                    p["spec"]["containers"][0]["image"] == "fake/recreate:2"
                        && p["status"]["phase"] == "Running"
                }))
            .then_some(())
        },
    )
    .await;

    auditor.abort();
    let a = record.lock().expect("audit");
    println!(
        "audit: {} pod events, at most {} live web pods",
        a.events, a.most_live
    );
    assert!(
        a.events > 100,
        "the auditor saw the run ({} events)",
        a.events
    );
    assert!(
        a.violations.is_empty(),
        "violations over the run: {:#?}",
        a.violations
    );
}
