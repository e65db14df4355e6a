//! The stock `kubectl` against a three-master Flotilla cluster: what a
//! Kubernetes user does on day one.

mod common;

use common::{wait_for, Cluster, Kubectl};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 8080
        env:
        - name: MODE
          value: demo
      - name: sidecar
        image: busybox:1.36
        command: [sleep, '3600']
"
    )
}

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drives_the_cluster() {
    let cluster = Cluster::start(3).await;
    let k = Kubectl::new(&cluster);

    let resources = k.ok(&["api-resources"]);
    for expected in [
        "pods",
        "po",
        "deployments",
        "deploy",
        "apps/v1",
        "services",
        "svc",
        "namespaces",
    ] {
        assert!(
            resources.contains(expected),
            "api-resources lacks {expected}:\n{resources}"
        );
    }
    let namespaces = k.ok(&["get", "namespaces"]);
    assert!(
        namespaces.contains("default") && namespaces.contains("kube-system"),
        "{namespaces}"
    );
    let nodes = k.run(&["get", "nodes"]);
    assert!(nodes.ok, "get nodes: {}", nodes.stderr);

    // apply: created, unchanged, configured.
    assert!(k
        .apply(&deployment("nginx:1.25"))
        .contains("deployment.apps/web created"));
    assert!(k
        .apply(&deployment("nginx:1.25"))
        .contains("deployment.apps/web unchanged"));
    assert!(k
        .apply(&deployment("nginx:1.26"))
        .contains("deployment.apps/web configured"));
    let containers = k.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={range .spec.template.spec.containers[*]}{.name}={.image};{end}",
    ]);
    assert_eq!(
        containers, "web=nginx:1.26;sidecar=busybox:1.36;",
        "strategic merge kept both containers"
    );
    let ports = k.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].ports[0].containerPort}",
    ]);
    assert_eq!(ports, "8080");

    // get -w sees a scale.
    let mut watch = k
        .command(&[
            "get",
            "deploy",
            "web",
            "-w",
            "-o",
            "jsonpath={.spec.replicas}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let stdout = watch.stdout.take().expect("stdout");
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(20), lines_rx.recv())
        .await
        .expect("watch prints the current state")
        .expect("line");
    assert_eq!(first.trim(), "2");
    assert!(k
        .ok(&["scale", "deploy/web", "--replicas", "3"])
        .contains("scaled"));
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines_rx.recv().await {
            if line.trim() == "3" {
                return true;
            }
        }
        false
    })
    .await
    .expect("watch sees the scale in time");
    assert!(seen);
    let _ = watch.kill();
    let _ = watch.wait();

    let table = k.ok(&["get", "deploy"]);
    assert!(
        table.contains("READY") && table.contains("UP-TO-DATE") && table.contains("AVAILABLE"),
        "{table}"
    );

    assert!(k.apply(SERVICE).contains("service/web created"));
    let svc = k.ok(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.ports[0].targetPort}",
    ]);
    assert_eq!(svc, "8080");

    // An invalid name is refused, saying so.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        deployment("nginx:1.25").replacen("name: web", "name: Bad_Name", 1),
    )
    .expect("write");
    let refused = k.run(&["apply", "-f", &path.display().to_string()]);
    assert!(!refused.ok, "an invalid name was accepted");
    assert!(
        refused.stderr.to_lowercase().contains("invalid"),
        "{}",
        refused.stderr
    );

    // A misspelt field is refused (kubectl asks for strict validation).
    let path = dir.path().join("typo.yaml");
    std::fs::write(
        &path,
        deployment("nginx:1.25").replacen("replicas: 2", "replcas: 2", 1),
    )
    .expect("write");
    let typo = k.run(&["apply", "-f", &path.display().to_string()]);
    assert!(
        !typo.ok && typo.stderr.contains("unknown field \"spec.replcas\""),
        "{}",
        typo.stderr
    );

    // -o yaml round-trips through replace.
    let yaml = k.ok(&["get", "deploy", "web", "-o", "yaml"]);
    let path = dir.path().join("web.yaml");
    std::fs::write(&path, &yaml).expect("write");
    assert!(k
        .ok(&["replace", "-f", &path.display().to_string()])
        .contains("replaced"));
    // ...and the same yaml is now stale: a 409 Conflict.
    let stale = k.run(&["replace", "-f", &path.display().to_string()]);
    assert!(
        !stale.ok && stale.stderr.contains("the object has been modified"),
        "{}",
        stale.stderr
    );

    // rollout status waits: with no nodes, no pod can run.
    let rollout = k.run(&["rollout", "status", "deploy/web", "--timeout=2s"]);
    assert!(
        !rollout.ok,
        "rollout status finished without a node to run pods"
    );
    assert!(
        rollout.stdout.contains("Waiting for deployment"),
        "{}{}",
        rollout.stdout,
        rollout.stderr
    );

    // delete, then get says NotFound.
    assert!(k.ok(&["delete", "deploy", "web"]).contains("deleted"));
    let gone = k.run(&["get", "deploy", "web"]);
    assert!(
        !gone.ok && gone.stderr.contains("NotFound"),
        "{}",
        gone.stderr
    );
    wait_for(
        "the service to be listed",
        Duration::from_secs(5),
        || async { k.ok(&["get", "svc"]).contains("web").then_some(()) },
    )
    .await;
}
