//! End to end on the real Docker Engine: masters and agents are `ctl`
//! processes, pods are real containers made from the images
//! `docker/build-images.sh` builds (`flotilla/busybox`, `flotilla/pause`).
//!
//! These tests fail — they do not skip — when Docker or the images are
//! missing: run `tests/scripts/setup.sh` (or `docker/build-images.sh`).
//!
//! Each test names its nodes uniquely, so tests (and runs) sharing the
//! engine never see each other's containers, and a [`Guard`] removes every
//! container of those nodes when the test ends, passed or failed.

mod common;

use common::{wait_for, Cluster, Kubectl};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

const NODE_LABEL: &str = "io.flotilla.node";

/// Runs `docker ARGS`; its stdout, failing the test on error.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI is installed (these tests need the Docker Engine)");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails the test, saying what to run, unless the engine answers and the
/// images are built.
fn require_docker() {
    let version = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    match version {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the Docker Engine is not reachable ({}): start dockerd; these tests need it",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("the docker CLI is missing ({e}): install Docker; these tests need it"),
    }
    for image in ["flotilla/busybox:latest", "flotilla/pause:latest"] {
        let found = Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", image])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "image {image} is missing: run tests/scripts/setup.sh (or docker/build-images.sh)"
        );
    }
}

/// A node name no other test or run uses.
fn unique(name: &str) -> String {
    format!("{name}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Removes every container of its nodes on drop, so a failed test leaves
/// nothing behind. Declare it before the cluster: the cluster (its agents)
/// drops first, then this.
struct Guard {
    nodes: Vec<String>,
    /// The test cluster's pod CIDR (a /24 carved into /26 node ranges).
    pod_cidr: String,
}

/// A pod CIDR of its own for a test cluster: the agents of every test share
/// this host's network namespace, so each cluster's nodes need ranges (and
/// bridges) no other cluster on the machine uses. A random /24 of
/// 10.244.0.0/16 (never the first, the one-machine default's), carved into
/// /26 node ranges; distinct within this run.
fn pod_cidr() -> String {
    static USED: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());
    let mut used = USED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let third = 1 + (rand::random::<u8>() % 254);
        if !used.contains(&third) {
            used.push(third);
            return format!("10.244.{third}.0/24");
        }
    }
}

/// `ctl init` flags giving a test cluster `cidr`.
fn pod_cidr_flags(cidr: &str) -> [&str; 4] {
    ["--pod-cidr", cidr, "--node-cidr-mask-size", "26"]
}

impl Drop for Guard {
    fn drop(&mut self) {
        for node in &self.nodes {
            let ids = containers_of(node);
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(ids.keys().map(String::as_str));
                let _ = Command::new("docker").args(&args).output();
            }
        }
        // The pods network is shared by every agent on the engine: it goes
        // only when nothing uses it any more (the engine refuses otherwise,
        // and a runtime that finds it gone makes it again).
        let _ = Command::new("docker")
            .args(["network", "rm", "flotilla-pods"])
            .output();
        // The agents' CNI bridges (one per /26 node range, named after it)
        // and the pod network's iptables rules for this cluster's CIDR.
        if let Some((net, _)) = self.pod_cidr.split_once('/') {
            if let Ok(ip) = net.parse::<std::net::Ipv4Addr>() {
                for quarter in 0..4u32 {
                    let bridge = format!("flo{:08x}", u32::from(ip) + quarter * 64);
                    let _ = Command::new("ip").args(["link", "del", &bridge]).output();
                }
            }
        }
        let c = self.pod_cidr.as_str();
        let comment = ["-m", "comment", "--comment", "flotilla pod network"];
        let rules: [Vec<&str>; 3] = [
            [
                &["-t", "nat", "-D", "POSTROUTING", "-s", c, "!", "-d", c][..],
                &comment,
                &["-j", "MASQUERADE"],
            ]
            .concat(),
            [&["-D", "FORWARD", "-s", c][..], &comment, &["-j", "ACCEPT"]].concat(),
            [&["-D", "FORWARD", "-d", c][..], &comment, &["-j", "ACCEPT"]].concat(),
        ];
        for rule in rules {
            let _ = Command::new("iptables").args(&rule).output();
        }
    }
}

/// One container as `docker ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    state: String,
    pod: String,
    container: String,
}

/// Every container (running or not) labelled with `node`: id → what it is.
fn containers_of(node: &str) -> BTreeMap<String, Seen> {
    let Ok(out) = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label={NODE_LABEL}={node}"),
            "--format",
            "{{.ID}}\t{{.State}}\t{{.Label \"io.kubernetes.pod.name\"}}\t{{.Label \"io.kubernetes.container.name\"}}",
        ])
        .output()
    else {
        return BTreeMap::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let id = f.next()?.to_owned();
            Some((
                id,
                Seen {
                    state: f.next()?.to_owned(),
                    pod: f.next()?.to_owned(),
                    container: f.next().unwrap_or("").to_owned(),
                },
            ))
        })
        .collect()
}

async fn pods(cluster: &Cluster, selector: &str) -> Vec<Value> {
    cluster
        .get_any(&format!(
            "/api/v1/namespaces/default/pods?labelSelector={selector}"
        ))
        .await
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

fn running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|s| s.iter().all(|c| c["state"]["running"].is_object()))
}

/// Running, and Ready (its readiness probe, if any, passes).
fn ready(pod: &Value) -> bool {
    running(pod)
        && pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Waits until `n` pods matching `selector` run; returns them.
async fn wait_running(
    cluster: &Cluster,
    selector: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Value> {
    wait_for(&format!("{n} pods {selector} Running"), timeout, || async {
        let pods = pods(cluster, selector).await;
        (pods.len() == n && pods.iter().all(running)).then_some(pods)
    })
    .await
}

/// GET http://IP/ from the host, through the pods' bridge.
async fn http_get(ip: &str) -> Option<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .no_proxy()
        .build()
        .ok()?;
    let response = client.get(format!("http://{ip}/")).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

fn name(pod: &Value) -> String {
    pod["metadata"]["name"].as_str().unwrap_or("").to_owned()
}

fn restart_count(pod: &Value) -> i64 {
    pod["status"]["containerStatuses"][0]["restartCount"]
        .as_i64()
        .unwrap_or(0)
}

/// A Deployment of busybox httpd pods that say their name, pinned to `node`.
fn web(node: &str, replicas: usize) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {node}}}
      terminationGracePeriodSeconds: 2
      containers:
      - name: httpd
        image: flotilla/busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c"]
        args: ["echo serving $POD_NAME; echo hello from $POD_NAME > /var/www/index.html; exec httpd -f -p 80 -h /var/www"]
        env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
        ports: [{{containerPort: 80}}]
        readinessProbe: {{httpGet: {{path: /, port: 80}}, periodSeconds: 1}}
        livenessProbe: {{exec: {{command: [cat, /var/www/index.html]}}, periodSeconds: 2}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_runs_restarts_adopts_and_cleans_up() {
    require_docker();
    let node = unique("dk-web");
    let cidr = pod_cidr();
    let _guard = Guard {
        nodes: vec![node.clone()],
        pod_cidr: cidr.clone(),
    };
    let mut cluster = Cluster::start_with(1, &pod_cidr_flags(&cidr)).await;
    let worker = cluster.add_worker(&node, "docker").await;
    let kubectl = Kubectl::new(&cluster);

    // Three httpd pods, each answering on its own pod IP; the readiness
    // (httpGet) and liveness (exec) probes pass.
    kubectl.apply(&web(&node, 3));
    wait_running(&cluster, "app%3Dweb", 3, Duration::from_secs(60)).await;
    let up = wait_for("three pods Ready", Duration::from_secs(30), || async {
        let pods = pods(&cluster, "app%3Dweb").await;
        (pods.len() == 3 && pods.iter().all(ready)).then_some(pods)
    })
    .await;
    let mut ips = BTreeSet::new();
    for pod in &up {
        let ip = pod["status"]["podIP"]
            .as_str()
            .expect("a pod IP")
            .to_owned();
        assert!(
            ip.starts_with("10.244."),
            "pod IP {ip} is on the pods network"
        );
        let body = wait_for(&format!("HTTP from {ip}"), Duration::from_secs(20), || {
            http_get(&ip)
        })
        .await;
        assert_eq!(body.trim(), format!("hello from {}", name(pod)));
        ips.insert(ip);
    }
    assert_eq!(ips.len(), 3, "three distinct pod IPs");
    let docker_ps = containers_of(&node);
    assert_eq!(
        docker_ps.len(),
        6,
        "a sandbox and an app container per pod: {docker_ps:?}"
    );

    // kubectl logs reaches the container's output through the masters.
    let first = name(&up[0]);
    let logs = wait_for("kubectl logs", Duration::from_secs(20), || {
        let out = kubectl.run(&["logs", &first]);
        async move { (out.ok && out.stdout.contains("serving")).then_some(out.stdout) }
    })
    .await;
    assert!(logs.contains(&format!("serving {first}")), "{logs}");

    // A container killed behind the agent's back is restarted.
    let victim = docker_ps
        .iter()
        .find(|(_, c)| c.pod == first && c.container == "httpd")
        .map(|(id, _)| id.clone())
        .expect("the first pod's httpd container");
    docker(&["kill", &victim]);
    let restarted = wait_for(
        "a restart after docker kill",
        Duration::from_secs(30),
        || async {
            let pods = pods(&cluster, "app%3Dweb").await;
            let pod = pods.into_iter().find(|p| name(p) == first)?;
            (restart_count(&pod) >= 1 && running(&pod)).then_some(pod)
        },
    )
    .await;
    let status = &restarted["status"]["containerStatuses"][0];
    assert_eq!(
        status["lastState"]["terminated"]["exitCode"], 137,
        "{status}"
    );
    assert_ne!(
        status["containerID"].as_str().unwrap_or(""),
        format!("docker://{victim}")
    );
    let ip = restarted["status"]["podIP"]
        .as_str()
        .expect("pod IP")
        .to_owned();
    wait_for("HTTP after the restart", Duration::from_secs(20), || {
        http_get(&ip)
    })
    .await;

    // A pod whose image is nowhere reports the pull failure, Docker's words
    // included.
    kubectl.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: missing}}\nspec:\n  nodeName: {node}\n  containers: [{{name: c, image: \"flotilla/no-such-image:1\"}}]\n"
    ));
    let waiting = wait_for("ErrImagePull", Duration::from_secs(30), || async {
        let pod = cluster
            .get_any("/api/v1/namespaces/default/pods/missing")
            .await?;
        let waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        let reason = waiting["reason"].as_str()?;
        matches!(reason, "ErrImagePull" | "ImagePullBackOff").then_some(waiting)
    })
    .await;
    let message = waiting["message"].as_str().unwrap_or("");
    assert!(
        message.contains("flotilla/no-such-image") && message.contains("Failed to pull image"),
        "the pull error is shown: {waiting}"
    );
    let out = kubectl.ok(&["get", "pod", "missing"]);
    assert!(
        out.contains("ErrImagePull") || out.contains("ImagePullBackOff"),
        "{out}"
    );
    kubectl.ok(&["delete", "pod", "missing", "--wait=true"]);

    // SIGKILL the agent; meanwhile one pod is force-deleted from the API.
    // The restarted agent adopts the running containers (same ids, nothing
    // started twice) and removes the orphan's.
    let before = containers_of(&node);
    cluster.workers[worker].kill();
    let orphan = name(&up[2]);
    kubectl.ok(&["delete", "pod", &orphan, "--grace-period=0", "--force"]);
    cluster.workers[worker].restart();
    cluster
        .wait_node_ready(&node, Duration::from_secs(30))
        .await;
    let after = wait_for(
        "the agent to adopt and clean up",
        Duration::from_secs(60),
        || async {
            let now = containers_of(&node);
            let orphan_gone = now.values().all(|c| c.pod != orphan);
            // The replacement the ReplicaSet made runs too.
            let pods = pods(&cluster, "app%3Dweb").await;
            let all_running = pods.len() == 3 && pods.iter().all(running);
            let live = now.values().filter(|c| c.state == "running").count();
            (orphan_gone && all_running && live == 6).then_some(now)
        },
    )
    .await;
    for (id, c) in &before {
        if c.pod == orphan || c.state != "running" {
            continue;
        }
        assert_eq!(
            after.get(id).map(|a| a.state.as_str()),
            Some("running"),
            "container {id} of {} kept running through the agent restart",
            c.pod
        );
    }
    let mut per_pod: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for c in after.values().filter(|c| c.state == "running") {
        *per_pod.entry((&c.pod, &c.container)).or_default() += 1;
    }
    assert!(
        per_pod.values().all(|&n| n == 1),
        "one running container per pod and name: {per_pod:?}"
    );

    // Deleting the Deployment removes every container of the node.
    kubectl.ok(&["delete", "deployment", "web"]);
    wait_for(
        "every container removed",
        Duration::from_secs(60),
        || async { containers_of(&node).is_empty().then_some(()) },
    )
    .await;
    let left = pods(&cluster, "app%3Dweb").await;
    assert!(left.is_empty(), "pods left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_on_one_engine_survive_a_master() {
    require_docker();
    let (a, b) = (unique("dk-a"), unique("dk-b"));
    let cidr = pod_cidr();
    let _guard = Guard {
        nodes: vec![a.clone(), b.clone()],
        pod_cidr: cidr.clone(),
    };
    let mut cluster = Cluster::start_with(3, &pod_cidr_flags(&cidr)).await;
    cluster.add_worker(&a, "docker").await;
    cluster.add_worker(&b, "docker").await;
    let kubectl = Kubectl::new(&cluster);

    // Two pods on each node.
    for (node, app) in [(&a, "on-a"), (&b, "on-b")] {
        kubectl.apply(&format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {app}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {app}}}}}
  template:
    metadata: {{labels: {{app: {app}}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {node}}}
      terminationGracePeriodSeconds: 0
      containers:
      - name: sleep
        image: flotilla/busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["sleep", "3600"]
"#
        ));
    }
    let on_a = wait_running(&cluster, "app%3Don-a", 2, Duration::from_secs(60)).await;
    let on_b = wait_running(&cluster, "app%3Don-b", 2, Duration::from_secs(60)).await;
    assert!(on_a.iter().all(|p| p["spec"]["nodeName"] == a.as_str()));
    assert!(on_b.iter().all(|p| p["spec"]["nodeName"] == b.as_str()));
    // Each agent labels its own containers, and neither removes the
    // other's as orphans.
    let (ca, cb) = (containers_of(&a), containers_of(&b));
    assert_eq!((ca.len(), cb.len()), (4, 4), "{ca:?} {cb:?}");
    assert!(ca.values().all(|c| c.pod.starts_with("on-a")), "{ca:?}");
    assert!(cb.values().all(|c| c.pod.starts_with("on-b")), "{cb:?}");
    let node_b = cluster
        .get_any(&format!("/api/v1/nodes/{b}"))
        .await
        .expect("node b");
    assert!(
        node_b["status"]["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("docker://")),
        "{}",
        node_b["status"]["nodeInfo"]
    );

    // The leader dies: containers keep running, pods stay Running, and the
    // cluster still starts pods.
    let leader = cluster.await_leader(Duration::from_secs(10)).await;
    cluster.members[leader].kill();
    wait_for("a new leader", Duration::from_secs(30), || async {
        cluster.leader().await.filter(|l| *l != leader)
    })
    .await;
    // The kubeconfig names m1 only, which may be the dead one: ask a live one.
    let alive = (0..cluster.members.len())
        .find(|i| *i != leader)
        .expect("a live master");
    let out = cluster.ctl_at(alive, &["scale", "deploy/on-b", "--replicas", "3"]);
    assert!(out.ok, "ctl scale: {}", out.stderr);
    let after_b = wait_running(&cluster, "app%3Don-b", 3, Duration::from_secs(60)).await;
    let after_a = wait_running(&cluster, "app%3Don-a", 2, Duration::from_secs(30)).await;
    for pod in on_a.iter().chain(&on_b) {
        let now = after_a
            .iter()
            .chain(&after_b)
            .find(|p| name(p) == name(pod))
            .unwrap_or_else(|| panic!("pod {} survived", name(pod)));
        assert_eq!(restart_count(now), 0, "{}", name(pod));
        assert_eq!(
            now["status"]["containerStatuses"][0]["containerID"],
            pod["status"]["containerStatuses"][0]["containerID"],
            "{} kept its container",
            name(pod)
        );
    }
    for (id, c) in ca.iter().chain(&cb) {
        let state = docker(&["inspect", "--format", "{{.State.Status}}", id]);
        assert_eq!(state.trim(), "running", "{c:?}");
    }

    for app in ["on-a", "on-b"] {
        let out = cluster.ctl_at(alive, &["delete", "deployment", app]);
        assert!(out.ok, "ctl delete: {}", out.stderr);
    }
    wait_for(
        "every container removed",
        Duration::from_secs(60),
        || async { (containers_of(&a).is_empty() && containers_of(&b).is_empty()).then_some(()) },
    )
    .await;

    // `ctl bench startup` starts pods on both Docker workers, reports the
    // latency, and leaves nothing behind.
    let out = cluster.ctl_at(alive, &["bench", "startup", "--pods", "4", "-o", "json"]);
    assert!(out.ok, "ctl bench startup: {}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).expect("a JSON report");
    assert_eq!(report["pods"], 4, "{report}");
    assert_eq!(report["nodes"], 2, "{report}");
    let p99 = report["p99_ms"].as_f64().expect("p99_ms");
    assert!(
        p99 > 0.0 && p99 >= report["p50_ms"].as_f64().unwrap_or(f64::MAX),
        "{report}"
    );
    assert!(
        containers_of(&a).is_empty() && containers_of(&b).is_empty(),
        "the benchmark's pods were removed with their containers"
    );
}
