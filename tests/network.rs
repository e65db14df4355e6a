//! The pod network end to end: two workers that are separate network hosts,
//! pods wired by the real CNI plugins, routes between the hosts.
//!
//! Each worker is a `ctl join` agent run inside its own network namespace
//! (`ip netns exec`), the way a kind node is its own host: its own address
//! on a shared L2 segment (a bridge in the root namespace), its own pod
//! bridge, routes, iptables rules and pod CIDR. Docker's sandboxes (network
//! mode `none`) are wired into the agent's namespace through
//! `/proc/<pid>/ns/net`, as in the compose cluster. Namespaces give two hosts
//! on one machine without building an image from a release binary, and
//! everything they hold disappears with them.
//!
//! Needs root, the Docker Engine with the images of `docker/build-images.sh`
//! and Debian's `containernetworking-plugins` in /usr/lib/cni; it fails,
//! never skips, when one is missing (`tests/scripts/setup.sh` installs them).
//! Everything it makes (namespaces, links, the iptables rule on the segment,
//! containers, processes) is removed on drop, passed or failed.

mod common;

use common::{ctl_bin, free_port, wait_for};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CNI_BIN: &str = "/usr/lib/cni";

/// Runs a command; its stdout, failing the test when it fails.
fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?} cannot run: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command, ignoring failure (cleanup).
fn quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

/// Fails, naming what to install, unless everything the test needs is here.
fn require() {
    let root = sh(&["id", "-u"]);
    assert_eq!(
        root.trim(),
        "0",
        "the pod network test needs root (network namespaces, iptables)"
    );
    let docker = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    assert!(
        docker.is_ok_and(|o| o.status.success()),
        "the Docker Engine is not reachable: start dockerd (tests/scripts/setup.sh does)"
    );
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
    for plugin in ["bridge", "host-local", "portmap", "loopback"] {
        assert!(
            Path::new(CNI_BIN).join(plugin).exists(),
            "the CNI plugin {CNI_BIN}/{plugin} is missing: run tests/scripts/setup.sh (apt-get install containernetworking-plugins)"
        );
    }
    for tool in ["ip", "bridge", "iptables"] {
        assert!(
            Command::new(tool).arg("-V").output().is_ok(),
            "{tool} is missing (iproute2, iptables)"
        );
    }
}

/// One `ctl` process, its output in a log file.
struct Proc {
    name: String,
    args: Vec<String>,
    netns: Option<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log");
        let err = log.try_clone().expect("clone log");
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, ctl_bin()]);
                c
            }
            None => Command::new(ctl_bin()),
        };
        let child = command
            .args(&self.args)
            .env(
                "FLOTILLA_LOG",
                "info,openraft=warn,flotilla::agent::network=debug",
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn ctl");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A master on the segment and two workers, each in its own namespace.
struct Net {
    tag: String,
    prefix: String,
    root: tempfile::TempDir,
    master: Proc,
    workers: Vec<Proc>,
    nodes: Vec<String>,
    kubeconfig: PathBuf,
}

impl Net {
    fn bridge(&self) -> String {
        format!("{}-br", self.tag)
    }

    fn ns(&self, i: usize) -> String {
        format!("{}-{}", self.tag, i)
    }

    fn address(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, i + 2)
    }

    fn forward_rule(&self) -> Vec<String> {
        let br = self.bridge();
        ["FORWARD", "-i", &br, "-o", &br, "-j", "ACCEPT"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    /// Builds the segment, starts the master, joins the workers.
    async fn start(tag: &str, prefix: &str, cluster_cidr: &str, backend: &'static str) -> Net {
        let root = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let master_addr = format!("{prefix}.1:{port}");
        let mut net = Net {
            tag: tag.to_owned(),
            prefix: prefix.to_owned(),
            kubeconfig: root.path().join("m1").join("admin.kubeconfig"),
            master: Proc {
                name: "m1".into(),
                args: vec![
                    "init".into(),
                    "--data-dir".into(),
                    root.path().join("m1").display().to_string(),
                    "--listen".into(),
                    master_addr.clone(),
                    "--name".into(),
                    "m1".into(),
                    "--no-agent".into(),
                    "--pod-cidr".into(),
                    cluster_cidr.into(),
                ],
                netns: None,
                log: root.path().join("m1.log"),
                child: None,
            },
            root,
            workers: Vec::new(),
            nodes: Vec::new(),
        };
        net.cleanup_links();
        // The segment: a bridge in the root namespace, one veth per host.
        let br = net.bridge();
        sh(&["ip", "link", "add", &br, "type", "bridge"]);
        sh(&["ip", "addr", "add", &format!("{prefix}.1/24"), "dev", &br]);
        sh(&["ip", "link", "set", &br, "up"]);
        // A Docker host drops forwarded (and, with br_netfilter, bridged)
        // packets by default; the segment between the hosts must pass.
        let mut rule = vec!["iptables".to_owned(), "-I".into()];
        rule.extend(net.forward_rule());
        sh(&rule.iter().map(String::as_str).collect::<Vec<_>>());
        for i in 0..2 {
            let ns = net.ns(i);
            let host_end = format!("{ns}-h");
            sh(&["ip", "netns", "add", &ns]);
            sh(&[
                "ip", "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            sh(&["ip", "link", "set", &host_end, "master", &br, "up"]);
            sh(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", net.address(i)),
                "dev",
                "eth0",
            ]);
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        net.master.spawn();
        let kubeconfig = net.kubeconfig.clone();
        wait_for(
            "the master's admin.kubeconfig",
            Duration::from_secs(60),
            || {
                let k = kubeconfig.clone();
                async move { k.exists().then_some(()) }
            },
        )
        .await;
        for i in 0..2 {
            let node = format!("{tag}-w{i}-{:04x}", rand::random::<u16>());
            let token = net.ctl(&["token", "create", "--role", "worker"]);
            let dir = net.root.path().join(&node);
            let mut worker = Proc {
                name: node.clone(),
                args: vec![
                    "join".into(),
                    master_addr.clone(),
                    "--token".into(),
                    token.trim().to_owned(),
                    "--name".into(),
                    node.clone(),
                    "--data-dir".into(),
                    dir.display().to_string(),
                    "--advertise".into(),
                    net.address(i),
                    "--backend".into(),
                    backend.into(),
                ],
                netns: Some(net.ns(i)),
                log: net.root.path().join(format!("{node}.log")),
                child: None,
            };
            worker.spawn();
            net.workers.push(worker);
            net.nodes.push(node);
        }
        for node in net.nodes.clone() {
            net.wait(
                &format!("node {node} Ready"),
                Duration::from_secs(60),
                |n| {
                    let nodes = n.get("nodes");
                    nodes
                        .iter()
                        .any(|x| {
                            x["metadata"]["name"] == node.as_str()
                                && x["status"]["conditions"].as_array().is_some_and(|c| {
                                    c.iter()
                                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                                })
                        })
                        .then_some(())
                },
            )
            .await;
        }
        net
    }

    fn ctl(&self, args: &[&str]) -> String {
        let mut all = vec![
            "--kubeconfig",
            self.kubeconfig.to_str().expect("utf-8 path"),
        ];
        all.extend_from_slice(args);
        let out = Command::new(ctl_bin())
            .args(&all)
            .env("FLOTILLA_LOG", "warn")
            .output()
            .expect("run ctl");
        assert!(
            out.status.success(),
            "ctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, manifest: &str) {
        let mut child = Command::new(ctl_bin())
            .args([
                "--kubeconfig",
                self.kubeconfig.to_str().expect("utf-8"),
                "apply",
                "-f",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ctl apply");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), manifest.as_bytes())
            .expect("write manifest");
        let out = child.wait_with_output().expect("ctl apply");
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The items of `ctl get KIND -o json`.
    fn get(&self, kind: &str) -> Vec<Value> {
        let text = self.ctl(&["get", kind, "-o", "json"]);
        let list: Value = serde_json::from_str(&text).expect("json list");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    async fn wait<T>(&self, what: &str, timeout: Duration, f: impl Fn(&Net) -> Option<T>) -> T {
        wait_for(what, timeout, || {
            let v = f(self);
            async move { v }
        })
        .await
    }

    fn pod_cidr(&self, node: &str) -> String {
        self.get("nodes")
            .iter()
            .find(|n| n["metadata"]["name"] == node)
            .and_then(|n| n["spec"]["podCIDR"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("node {node} has no podCIDR"))
    }

    fn worker_dir(&self, i: usize) -> PathBuf {
        self.root.path().join(&self.nodes[i])
    }

    /// The IPs host-local holds for worker `i`.
    fn reservations(&self, i: usize) -> BTreeSet<String> {
        let dir = self.worker_dir(i).join("cni").join("ipam").join("flotilla");
        std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .filter(|n| n.parse::<Ipv4Addr>().is_ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs `ip ARGS` in worker `i`'s namespace.
    fn ip(&self, i: usize, args: &[&str]) -> String {
        let ns = self.ns(i);
        let mut all = vec!["ip", "-n", ns.as_str()];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// The pods' veths on worker `i` (every veth but its uplink, eth0).
    fn pod_veths(&self, i: usize) -> Vec<String> {
        self.ip(i, &["-o", "link", "show", "type", "veth"])
            .lines()
            .filter_map(|line| {
                let name = line.split(':').nth(1)?.trim().split('@').next()?;
                (name != "eth0").then(|| name.to_owned())
            })
            .collect()
    }

    fn veths(&self, i: usize) -> usize {
        self.pod_veths(i).len()
    }

    fn routes(&self, i: usize) -> String {
        self.ip(i, &["-4", "route", "show", "proto", "241"])
    }

    fn cleanup_links(&self) {
        for i in 0..2 {
            quiet(&["ip", "netns", "del", &self.ns(i)]);
            quiet(&["ip", "link", "del", &format!("{}-h", self.ns(i))]);
        }
        quiet(&["ip", "link", "del", &self.bridge()]);
        let mut rule = vec!["iptables".to_owned(), "-D".into()];
        rule.extend(self.forward_rule());
        while Command::new(&rule[0])
            .args(&rule[1..])
            .output()
            .is_ok_and(|o| o.status.success())
        {}
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in std::iter::once(&self.master).chain(&self.workers) {
                eprintln!(
                    "===== log of {} =====\n{}",
                    p.name,
                    std::fs::read_to_string(&p.log).unwrap_or_default()
                );
            }
        }
        for w in &mut self.workers {
            w.kill();
        }
        self.master.kill();
        for node in &self.nodes {
            let ids = sh(&[
                "docker",
                "ps",
                "-aq",
                "--filter",
                &format!("label=io.flotilla.node={node}"),
            ]);
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["docker", "rm", "-f", "-v"];
                args.extend(ids);
                quiet(&args);
            }
        }
        self.cleanup_links();
    }
}

/// Busybox httpd pods that answer `/cgi-bin/ip` with the client address
/// they see, spread over the nodes.
fn web(replicas: usize) -> String {
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
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: flotilla/busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c"]
        args: ["mkdir -p /www/cgi-bin && printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && echo ok > /www/index.html && exec httpd -f -p 80 -h /www"]
        readinessProbe: {{httpGet: {{path: /, port: 80}}, periodSeconds: 1}}
"#
    )
}

fn running_pods(net: &Net) -> Vec<Value> {
    net.get("pods")
        .into_iter()
        .filter(|p| p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string())
        .collect()
}

fn pod_ip(p: &Value) -> String {
    p["status"]["podIP"].as_str().unwrap_or("").to_owned()
}

/// Runs `wget` in pod `from` (its app container) for `url`; the body.
fn wget_in(node: &str, from: &str, url: &str) -> Option<String> {
    let id = sh(&[
        "docker",
        "ps",
        "-q",
        "--filter",
        &format!("label=io.flotilla.node={node}"),
        "--filter",
        &format!("label=io.kubernetes.pod.name={from}"),
        "--filter",
        "label=io.kubernetes.container.name=httpd",
    ]);
    let id = id.split_whitespace().next()?;
    let out = Command::new("docker")
        // Busybox's wget -T crashes (static build): its own timeout applet
        // bounds the call instead.
        .args(["exec", id, "timeout", "5", "wget", "-q", "-O", "-", url])
        .output()
        .ok()?;
    // httpd reports an IPv4 client as `[::ffff:10.x.y.z]`.
    out.status.success().then(|| {
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_start_matches("::ffff:")
            .to_owned()
    })
}

/// From each pod, every pod on the other node answers with the caller's
/// own pod IP: routed, not masqueraded.
async fn across(net: &Net, pods: &[Value]) {
    for client in pods {
        for server in pods
            .iter()
            .filter(|s| s["spec"]["nodeName"] != client["spec"]["nodeName"])
        {
            let (node, name) = (
                client["spec"]["nodeName"].as_str().expect("bound"),
                client["metadata"]["name"].as_str().expect("named"),
            );
            let url = format!("http://{}/cgi-bin/ip", pod_ip(server));
            let seen = net
                .wait(
                    &format!("{name} on {node} reaching {url}"),
                    Duration::from_secs(20),
                    |_| wget_in(node, name, &url),
                )
                .await;
            assert_eq!(
                seen,
                pod_ip(client),
                "the server at {url} sees the client's pod IP (no NAT between pods)"
            );
        }
    }
}

async fn scenario(tag: &str, prefix: &str, cluster_cidr: &str, backend: &'static str) {
    require();
    let mut net = Net::start(tag, prefix, cluster_cidr, backend).await;
    let cluster: common_cidr::Cidr = cluster_cidr.parse().expect("cluster cidr");

    // Distinct ranges inside the cluster CIDR.
    let ranges: Vec<String> = net.nodes.iter().map(|n| net.pod_cidr(n)).collect();
    assert_ne!(ranges[0], ranges[1], "each node its own podCIDR");
    for r in &ranges {
        let c: common_cidr::Cidr = r.parse().expect("a CIDR");
        assert!(cluster.covers(c), "{r} inside {cluster_cidr}");
    }

    // Each worker routes to the other's range (host-gw: via its address;
    // vxlan: through flotilla.1), within 2 s of both being known.
    for i in 0..2 {
        let other = 1 - i;
        let want = ranges[other].clone();
        let via = if backend == "vxlan" {
            "flotilla.1".to_owned()
        } else {
            net.address(other)
        };
        net.wait(
            &format!("worker {i}'s route to {want}"),
            Duration::from_secs(5),
            |n| {
                n.routes(i)
                    .lines()
                    .any(|l| l.starts_with(&want) && l.contains(&via))
                    .then_some(())
            },
        )
        .await;
    }
    if backend == "vxlan" {
        let nodes = net.get("nodes");
        for n in &nodes {
            assert!(
                n["metadata"]["annotations"]["flotilla.io/vtep-mac"].is_string(),
                "the VTEP MAC is published: {}",
                n["metadata"]
            );
        }
        let link = net.ip(0, &["-d", "link", "show", "flotilla.1"]);
        assert!(
            link.contains("vxlan id 1") && link.contains("dstport 8472"),
            "{link}"
        );
    }

    // A Deployment of four httpd pods over both nodes.
    net.apply(&web(4));
    let pods = net
        .wait(
            "4 pods Running and Ready on both nodes",
            Duration::from_secs(120),
            |n| {
                let pods = running_pods(n);
                let ready = pods.iter().all(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                });
                let nodes: BTreeSet<&str> = pods
                    .iter()
                    .filter_map(|p| p["spec"]["nodeName"].as_str())
                    .collect();
                (pods.len() == 4 && ready && nodes.len() == 2).then_some(pods)
            },
        )
        .await;
    let ips: BTreeSet<String> = pods.iter().map(pod_ip).collect();
    assert_eq!(ips.len(), 4, "four distinct pod IPs: {ips:?}");
    for p in &pods {
        let node = p["spec"]["nodeName"].as_str().expect("bound");
        let i = net
            .nodes
            .iter()
            .position(|n| n == node)
            .expect("one of ours");
        let range: common_cidr::Cidr = ranges[i].parse().expect("cidr");
        let ip: Ipv4Addr = pod_ip(p).parse().expect("an IPv4 pod IP");
        assert!(
            range.contains(ip),
            "pod IP {ip} inside its node's range {range}"
        );
        assert!(
            net.reservations(i).contains(&ip.to_string()),
            "host-local holds {ip}"
        );
    }
    across(&net, &pods).await;

    // A worker killed while its pods' links are torn down (its namespace
    // "rebuilt"), then restarted: CHECK fails, the pods are added again
    // with the same IPs, and answer again.
    let victim = 0;
    let before: BTreeMap<String, String> = pods
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                pod_ip(p),
            )
        })
        .collect();
    net.workers[victim].kill();
    for name in net.pod_veths(victim) {
        quiet(&["ip", "-n", &net.ns(victim), "link", "del", &name]);
    }
    assert_eq!(net.veths(victim), 0, "the victim's pods lost their links");
    net.workers[victim].spawn();
    let expected_veths = pods
        .iter()
        .filter(|p| p["spec"]["nodeName"] == net.nodes[victim].as_str())
        .count();
    net.wait(
        "the restarted worker re-adds its pods",
        Duration::from_secs(60),
        |n| (n.veths(victim) == expected_veths).then_some(()),
    )
    .await;
    let after = running_pods(&net);
    let after_ips: BTreeMap<String, String> = after
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                pod_ip(p),
            )
        })
        .collect();
    assert_eq!(
        before, after_ips,
        "the same pods with the same IPs after the restart"
    );
    across(&net, &after).await;

    // A node appearing and leaving: the routes follow within 2 s.
    let ghost = format!("{tag}-ghost");
    net.apply(&format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: {ghost}, annotations: {{flotilla.io/vtep-mac: '02:00:00:00:00:09'}}}}\nstatus: {{addresses: [{{type: InternalIP, address: {}}}]}}\n",
        net.address(7)
    ));
    let ghost_range = net.pod_cidr(&ghost);
    assert!(
        !ranges.contains(&ghost_range),
        "a third node gets a third range"
    );
    let added = Instant::now();
    net.wait("the route to the new node", Duration::from_secs(5), |n| {
        n.routes(1).contains(&ghost_range).then_some(())
    })
    .await;
    let add_took = added.elapsed();
    net.ctl(&["delete", "node", &ghost]);
    let deleted = Instant::now();
    net.wait("the new node's route to go", Duration::from_secs(5), |n| {
        (!n.routes(1).contains(&ghost_range)).then_some(())
    })
    .await;
    let del_took = deleted.elapsed();
    eprintln!("{backend}: route added {add_took:?} after the Node create, removed {del_took:?} after its delete");
    assert!(add_took < Duration::from_secs(2) && del_took < Duration::from_secs(2));

    // Removing the pods leaves no veth, no reservation, no stale route.
    net.ctl(&["delete", "deployment", "web"]);
    net.wait("every pod gone", Duration::from_secs(60), |n| {
        n.get("pods").is_empty().then_some(())
    })
    .await;
    for i in 0..2 {
        net.wait(
            &format!("worker {i}'s veths and reservations gone"),
            Duration::from_secs(30),
            |n| (n.veths(i) == 0 && n.reservations(i).is_empty()).then_some(()),
        )
        .await;
        let routes = net.routes(i);
        assert_eq!(
            routes.lines().count(),
            1,
            "only the route to the other worker remains: {routes}"
        );
    }
    let left = sh(&[
        "docker",
        "ps",
        "-aq",
        "--filter",
        &format!("label=io.flotilla.node={}", net.nodes[0]),
    ]);
    assert!(left.trim().is_empty(), "no container left: {left}");
    net.workers.iter_mut().for_each(Proc::kill);
}

/// A CIDR parser for the assertions (the test does not link the crate's).
mod common_cidr {
    use std::net::Ipv4Addr;

    #[derive(Debug, Clone, Copy)]
    pub struct Cidr(u32, u8);

    impl std::fmt::Display for Cidr {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}/{}", Ipv4Addr::from(self.0), self.1)
        }
    }

    impl std::str::FromStr for Cidr {
        type Err = String;
        fn from_str(s: &str) -> Result<Cidr, String> {
            let (ip, p) = s.split_once('/').ok_or(format!("{s}: no prefix"))?;
            let ip: Ipv4Addr = ip.parse().map_err(|_| format!("{s}: bad address"))?;
            let p: u8 = p.parse().map_err(|_| format!("{s}: bad prefix"))?;
            Ok(Cidr(u32::from(ip), p))
        }
    }

    impl Cidr {
        fn mask(self) -> u32 {
            if self.1 == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(self.1))
            }
        }
        pub fn contains(self, ip: Ipv4Addr) -> bool {
            u32::from(ip) & self.mask() == self.0 & self.mask()
        }
        pub fn covers(self, other: Cidr) -> bool {
            other.1 >= self.1 && self.contains(Ipv4Addr::from(other.0))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_reach_pods_on_other_hosts_with_host_gw() {
    scenario("nethg", "10.250.71", "10.247.0.0/16", "host-gw").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_reach_pods_on_other_hosts_with_vxlan() {
    scenario("netvx", "10.250.72", "10.248.0.0/16", "vxlan").await;
}

/// POSTs `body` to `path` through any running member (following the 307 a
/// follower answers); the status and the reply.
async fn post(
    cluster: &common::Cluster,
    alive: &[usize],
    path: &str,
    body: &Value,
) -> (u16, Value) {
    for &i in alive {
        let mut url = format!("{}{path}", cluster.members[i].url());
        for _ in 0..3 {
            let Ok(response) = cluster
                .http
                .post(&url)
                .bearer_auth(&cluster.token)
                .json(body)
                .send()
                .await
            else {
                break;
            };
            let status = response.status().as_u16();
            if status == 307 {
                match response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                {
                    Some(location) => {
                        url = location.to_owned();
                        continue;
                    }
                    None => break,
                }
            }
            let reply = response.json().await.unwrap_or(Value::Null);
            return (status, reply);
        }
    }
    panic!("no member answered POST {path}");
}

async fn create_node(cluster: &common::Cluster, alive: &[usize], name: &str) -> Value {
    let body = serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    let (status, reply) = post(cluster, alive, "/api/v1/nodes", &body).await;
    assert_eq!(status, 201, "creating node {name}: {reply}");
    reply
}

async fn node_object(cluster: &common::Cluster, name: &str) -> Value {
    cluster
        .get_any(&format!("/api/v1/nodes/{name}"))
        .await
        .unwrap_or_else(|| panic!("node {name} is readable"))
}

/// The masters' node IPAM: ranges in order, none handed out twice (also
/// across a leader kill), a full cluster CIDR marks the node instead of
/// failing it, a deleted node's range is reused, a podCIDR cannot change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_cidrs_are_claimed_with_nodes_and_never_shared() {
    let mut cluster = common::Cluster::start_with(
        3,
        &["--pod-cidr", "10.9.0.0/22", "--node-cidr-mask-size", "24"],
    )
    .await;
    let mut alive = vec![0, 1, 2];
    let n1 = create_node(&cluster, &alive, "n1").await;
    let n2 = create_node(&cluster, &alive, "n2").await;
    assert_eq!(n1["spec"]["podCIDR"], "10.9.0.0/24");
    assert_eq!(n1["spec"]["podCIDRs"], serde_json::json!(["10.9.0.0/24"]));
    assert_eq!(n2["spec"]["podCIDR"], "10.9.1.0/24");

    // A new leader, knowing nothing of the old one's allocations, hands
    // out the next free range: the claims are in the store.
    let leader = cluster.await_leader(Duration::from_secs(10)).await;
    cluster.members[leader].kill();
    alive.retain(|&i| i != leader);
    wait_for("a new leader", Duration::from_secs(20), || async {
        cluster.leader().await.filter(|l| *l != leader)
    })
    .await;
    let n3 = create_node(&cluster, &alive, "n3").await;
    assert_eq!(n3["spec"]["podCIDR"], "10.9.2.0/24");
    let n4 = create_node(&cluster, &alive, "n4").await;
    assert_eq!(n4["spec"]["podCIDR"], "10.9.3.0/24");

    // The CIDR is full: the node registers without a range, marked.
    let n5 = create_node(&cluster, &alive, "n5").await;
    assert!(n5["spec"]["podCIDR"].is_null(), "{n5}");
    let marked = n5["status"]["conditions"]
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|c| c["type"] == "NetworkUnavailable")
                .cloned()
        })
        .expect("a NetworkUnavailable condition");
    assert_eq!(marked["status"], "True");
    assert_eq!(marked["reason"], "CIDRNotAvailable");
    assert!(
        marked["message"]
            .as_str()
            .is_some_and(|m| m.contains("10.9.0.0/22")),
        "{marked}"
    );

    // A deleted node's range goes to the next node, once.
    let out = cluster.ctl_at(alive[0], &["delete", "node", "n2"]);
    assert!(out.ok, "delete node n2: {}", out.stderr);
    let n6 = create_node(&cluster, &alive, "n6").await;
    assert_eq!(n6["spec"]["podCIDR"], "10.9.1.0/24");
    let n7 = create_node(&cluster, &alive, "n7").await;
    assert!(
        n7["spec"]["podCIDR"].is_null(),
        "no range is handed out twice: {n7}"
    );

    // Every live node's range is distinct.
    let mut seen = BTreeSet::new();
    for name in ["n1", "n3", "n4", "n6"] {
        let n = node_object(&cluster, name).await;
        let range = n["spec"]["podCIDR"].as_str().expect("a range").to_owned();
        assert!(seen.insert(range.clone()), "{range} held twice");
    }

    // A range is immutable once set; an update that omits it keeps it.
    let mut moved = node_object(&cluster, "n1").await;
    moved["spec"]["podCIDR"] = serde_json::json!("10.9.3.0/24");
    moved["spec"]["podCIDRs"] = serde_json::json!(["10.9.3.0/24"]);
    let leader = cluster.await_leader(Duration::from_secs(10)).await;
    let url = format!("{}/api/v1/nodes/n1", cluster.members[leader].url());
    let response = cluster
        .http
        .put(&url)
        .bearer_auth(&cluster.token)
        .json(&moved)
        .send()
        .await
        .expect("PUT answered");
    assert_eq!(response.status().as_u16(), 422, "a podCIDR cannot change");
    let mut kept = node_object(&cluster, "n1").await;
    kept["spec"] = serde_json::json!({"unschedulable": true});
    let response = cluster
        .http
        .put(&url)
        .bearer_auth(&cluster.token)
        .json(&kept)
        .send()
        .await
        .expect("PUT answered");
    assert!(
        response.status().is_success(),
        "update: {}",
        response.status()
    );
    assert_eq!(
        node_object(&cluster, "n1").await["spec"]["podCIDR"],
        "10.9.0.0/24"
    );
}
