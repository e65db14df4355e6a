//! `ctl`'s kubectl-like commands against a real one-master cluster: what a
//! user types and reads (`apply`, `get`, `describe`, `scale`, `delete`,
//! `rollout status`, `logs`), and the errors they see.

mod common;

use common::{ctl_bin, Cluster, Ran};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const APP: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write manifest");
    path
}

fn ok(cluster: &Cluster, args: &[&str]) -> String {
    let ran = cluster.ctl(args);
    assert!(
        ran.ok,
        "ctl {args:?} failed:\n{}\n{}",
        ran.stdout, ran.stderr
    );
    ran.stdout
}

fn fails(cluster: &Cluster, args: &[&str]) -> Ran {
    let ran = cluster.ctl(args);
    assert!(
        !ran.ok,
        "ctl {args:?} should fail but printed:\n{}",
        ran.stdout
    );
    ran
}

fn apply(cluster: &Cluster, path: &Path) -> String {
    ok(cluster, &["apply", "-f", &path.display().to_string()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_scale_describe_delete() {
    let cluster = Cluster::start(1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write(dir.path(), "app.yaml", APP);

    assert_eq!(
        apply(&cluster, &manifest),
        "deployment.apps/web created\nservice/web created\n"
    );
    assert_eq!(
        apply(&cluster, &manifest),
        "deployment.apps/web unchanged\nservice/web unchanged\n"
    );
    let changed = write(
        dir.path(),
        "app.yaml",
        &APP.replace("nginx:1.25", "nginx:1.26"),
    );
    assert_eq!(
        apply(&cluster, &changed),
        "deployment.apps/web configured\nservice/web unchanged\n"
    );

    // A label removed from the manifest is removed from the live object
    // (three-way apply through the last-applied annotation).
    let labelled = APP.replace("nginx:1.25", "nginx:1.26").replacen(
        "  labels:\n    app: web\n",
        "  labels:\n    app: web\n    tier: front\n",
        1,
    );
    let labelled = write(dir.path(), "labelled.yaml", &labelled);
    apply(&cluster, &labelled);
    let with_tier = ok(&cluster, &["get", "deploy", "web", "-o", "json"]);
    assert!(with_tier.contains("\"tier\": \"front\""), "{with_tier}");
    assert_eq!(
        apply(&cluster, &changed),
        "deployment.apps/web configured\nservice/web unchanged\n"
    );
    let without_tier = ok(&cluster, &["get", "deploy", "web", "-o", "json"]);
    assert!(!without_tier.contains("\"tier\""), "{without_tier}");

    // The table: kubectl's headers, upper-case and aligned.
    let table = ok(&cluster, &["get", "deploy"]);
    let mut lines = table.lines();
    let header = lines.next().expect("a header line");
    assert!(
        header.starts_with("NAME   READY   UP-TO-DATE   AVAILABLE   AGE"),
        "{table}"
    );
    let row = lines.next().expect("a row");
    assert!(row.starts_with("web    0/2"), "{table}");
    let wide = ok(&cluster, &["get", "deployments.apps", "-o", "wide"]);
    assert!(
        wide.contains("IMAGES") && wide.contains("nginx:1.26"),
        "{wide}"
    );

    let json: Value =
        serde_json::from_str(&ok(&cluster, &["get", "deploy", "web", "-o", "json"])).expect("JSON");
    assert_eq!(json["kind"], "Deployment");
    assert_eq!(
        json["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    let yaml = ok(&cluster, &["get", "deploy/web", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Deployment") && yaml.contains("name: web"),
        "{yaml}"
    );
    assert_eq!(
        ok(&cluster, &["get", "deploy", "web", "-o", "name"]),
        "deployment.apps/web\n"
    );
    assert_eq!(
        ok(&cluster, &["get", "svc", "-l", "app=web", "-o", "name"]),
        ""
    );
    assert_eq!(
        ok(&cluster, &["get", "deploy", "-l", "app=web", "-o", "name"]),
        "deployment.apps/web\n"
    );
    let all = ok(&cluster, &["get", "svc", "-A"]);
    assert!(all.starts_with("NAMESPACE   NAME   TYPE"), "{all}");
    assert!(all.contains("\ndefault     web    ClusterIP"), "{all}");
    let none = cluster.ctl(&["get", "po", "-n", "kube-system"]);
    assert!(none.ok && none.stdout.is_empty(), "{}", none.stdout);
    assert!(
        none.stderr.contains("No resources found"),
        "{}",
        none.stderr
    );

    assert_eq!(
        ok(&cluster, &["scale", "deploy/web", "--replicas", "3"]),
        "deployment.apps/web scaled\n"
    );
    let json: Value =
        serde_json::from_str(&ok(&cluster, &["get", "deploy", "web", "-o", "json"])).expect("JSON");
    assert_eq!(json["spec"]["replicas"], 3);

    let described = ok(&cluster, &["describe", "deploy", "web"]);
    assert!(described.starts_with("Name:"), "{described}");
    assert!(
        described.contains("web") && described.contains("Labels:"),
        "{described}"
    );
    assert!(described.contains("replicas: 3"), "{described}");
    assert!(described.contains("Events:"), "{described}");

    // No node runs the pods: the rollout cannot complete, and ctl says so.
    let started = Instant::now();
    let rollout = fails(
        &cluster,
        &["rollout", "status", "deploy/web", "--timeout", "2s"],
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        rollout
            .stdout
            .contains("Waiting for deployment \"web\" rollout to finish"),
        "{}",
        rollout.stdout
    );
    assert!(
        rollout.stderr.contains("timed out after 2s"),
        "{}",
        rollout.stderr
    );

    assert_eq!(
        ok(&cluster, &["delete", "deploy", "web"]),
        "deployment.apps \"web\" deleted\n"
    );
    let gone = fails(&cluster, &["get", "deploy", "web"]);
    assert_eq!(
        gone.stderr.trim(),
        "Error from server (NotFound): deployments.apps \"web\" not found"
    );
    // The Deployment is gone already: the Service still goes, the miss is reported.
    let again = fails(&cluster, &["delete", "-f", &manifest.display().to_string()]);
    assert_eq!(again.stdout, "service \"web\" deleted\n");
    assert!(again.stderr.contains("NotFound"), "{}", again.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_clear() {
    let cluster = Cluster::start(1).await;
    let dir = tempfile::tempdir().expect("tempdir");

    let bad = write(dir.path(), "bad.yaml", "kind: [unclosed\n");
    let ran = fails(&cluster, &["apply", "-f", &bad.display().to_string()]);
    assert!(
        ran.stderr.contains("error parsing") && ran.stderr.contains("bad.yaml"),
        "{}",
        ran.stderr
    );
    let unknown = write(
        dir.path(),
        "widget.yaml",
        "apiVersion: v1\nkind: Widget\nmetadata:\n  name: w\n",
    );
    let ran = fails(&cluster, &["apply", "-f", &unknown.display().to_string()]);
    assert!(ran.stderr.contains("Widget"), "{}", ran.stderr);

    let ran = fails(&cluster, &["logs", "web-1"]);
    assert!(
        ran.stderr
            .contains("Error from server (NotFound): pods \"web-1\" not found"),
        "{}",
        ran.stderr
    );
    let ran = fails(&cluster, &["get", "widgets"]);
    assert!(
        ran.stderr.contains("resource type \"widgets\""),
        "{}",
        ran.stderr
    );
    let ran = fails(
        &cluster,
        &["rollout", "status", "deploy/nope", "--timeout", "5s"],
    );
    assert_eq!(
        ran.stderr.trim(),
        "Error from server (NotFound): deployments.apps \"nope\" not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_changes() {
    let cluster = Cluster::start(1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    apply(&cluster, &write(dir.path(), "app.yaml", APP));

    let mut child = Command::new(ctl_bin())
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .args(["get", "deploy", "-w"])
        .env("FLOTILLA_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ctl get -w");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_line = |what: &str, pred: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    seen.push(line.clone());
                    if pred(&line) {
                        return;
                    }
                }
                Err(_) => panic!("no {what} from ctl get -w; saw {seen:?}"),
            }
        }
    };
    wait_line("header", &|l| l.starts_with("NAME ") && l.contains("READY"));
    wait_line("initial row", &|l| {
        l.starts_with("web ") && l.contains("0/2")
    });
    ok(&cluster, &["scale", "deploy", "web", "--replicas", "4"]);
    wait_line("row after scaling", &|l| {
        l.starts_with("web ") && l.contains("0/4")
    });
    let _ = child.kill();
    let _ = child.wait();
}
