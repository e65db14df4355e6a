//! Test harness: clusters of real `ctl` processes on loopback.
//!
//! Every member is a child process with its own data directory and port; its
//! output goes to a log file that is printed when a test fails. Waits are
//! conditions with deadlines, never bare sleeps. Dropping a [`Cluster`] kills
//! its processes.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `ctl` binary under test.
pub fn ctl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ctl")
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Polls `condition` every 50 ms until it returns Some or `timeout` passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One master process.
pub struct Member {
    /// Member name.
    pub name: String,
    /// Data directory.
    pub dir: PathBuf,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The exact command line that (re)starts it.
    pub args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
}

impl Member {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open member log");
        let err = log.try_clone().expect("clone log handle");
        let child = Command::new(ctl_bin())
            .args(&self.args)
            .env("FLOTILLA_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn ctl");
        self.child = Some(child);
    }

    /// Restarts the member by re-running its own command.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        self.spawn();
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait (up to 15 s) for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The member's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `https://ADDR` (masters serve TLS with the cluster CA).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// A cluster of master processes, and worker agents.
pub struct Cluster {
    /// Holds every data directory; removed on drop.
    pub root: tempfile::TempDir,
    /// The members, in start order.
    pub members: Vec<Member>,
    /// Worker agents (`ctl join` without `--control-plane`).
    pub workers: Vec<Member>,
    /// The founder's admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The admin bearer token.
    pub token: String,
    /// HTTP client for direct API calls.
    pub http: reqwest::Client,
    /// Flags every master gets (init and join), e.g. connection limits.
    pub member_args: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for m in self.members.iter().chain(&self.workers) {
                eprintln!("===== log of {} ({}) =====\n{}", m.name, m.addr, m.log());
            }
        }
        for m in self.workers.iter_mut().chain(self.members.iter_mut()) {
            m.kill();
        }
    }
}

/// Result of a `ctl` run.
pub struct Ran {
    /// Exit success.
    pub ok: bool,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

fn ran(output: Output) -> Ran {
    Ran {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Cluster {
    /// Starts `ctl init` and then `size - 1` `ctl join --control-plane`, each
    /// waited on until it is a voter.
    pub async fn start(size: usize) -> Cluster {
        Cluster::start_with(size, &[]).await
    }

    /// [`Cluster::start`], passing `init_args` to `ctl init` (cluster settings).
    pub async fn start_with(size: usize, init_args: &[&str]) -> Cluster {
        Cluster::start_configured(size, init_args, &[]).await
    }

    /// [`Cluster::start_with`], passing `member_args` to every master.
    pub async fn start_configured(
        size: usize,
        init_args: &[&str],
        member_args: &[&str],
    ) -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let http = http_client(None);
        let mut cluster = Cluster {
            kubeconfig: root.path().join("m1").join("admin.kubeconfig"),
            root,
            members: Vec::new(),
            workers: Vec::new(),
            token: String::new(),
            http,
            member_args: member_args.iter().map(|a| (*a).to_owned()).collect(),
        };
        let mut extra: Vec<String> = init_args.iter().map(|a| (*a).to_owned()).collect();
        extra.extend(cluster.member_args.iter().cloned());
        let founder = cluster.new_member("m1", |dir, addr| {
            let mut args = vec![
                "init".into(),
                "--data-dir".into(),
                dir.display().to_string(),
                "--listen".into(),
                addr.into(),
                "--name".into(),
                "m1".into(),
                "--no-agent".into(),
            ];
            args.extend(extra);
            args
        });
        cluster.members.push(founder);
        cluster.members[0].spawn();
        let kubeconfig = cluster.kubeconfig.clone();
        cluster
            .wait_until(
                "the founder writes admin.kubeconfig",
                Duration::from_secs(30),
                || {
                    let k = kubeconfig.clone();
                    async move { k.exists().then_some(()) }
                },
            )
            .await;
        let ca = std::fs::read(cluster.root.path().join("m1").join("pki").join("ca.crt"))
            .expect("the founder's CA certificate");
        cluster.http = http_client(Some(&ca));
        let text = std::fs::read_to_string(&cluster.kubeconfig).expect("read kubeconfig");
        cluster.token = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .expect("token in kubeconfig")
            .trim()
            .to_owned();
        for i in 2..=size {
            cluster.join(&format!("m{i}")).await;
        }
        cluster
    }

    fn new_member(&self, name: &str, args: impl FnOnce(&Path, &str) -> Vec<String>) -> Member {
        let dir = self.root.path().join(name);
        let addr = format!("127.0.0.1:{}", free_port());
        Member {
            name: name.into(),
            args: args(&dir, &addr),
            log: self.root.path().join(format!("{name}.log")),
            dir,
            addr,
            child: None,
        }
    }

    /// Adds a master with `ctl join --control-plane` and waits until it votes.
    pub async fn join(&mut self, name: &str) {
        let token = self.master_token();
        let server = self.members[0].addr.clone();
        let member_args = self.member_args.clone();
        let member = self.new_member(name, |dir, addr| {
            let mut args: Vec<String> = vec![
                "join".into(),
                server,
                "--token".into(),
                token,
                "--control-plane".into(),
                "--data-dir".into(),
                dir.display().to_string(),
                "--listen".into(),
                addr.into(),
                "--name".into(),
                name.into(),
            ];
            args.extend(member_args);
            args
        });
        self.members.push(member);
        let index = self.members.len() - 1;
        self.members[index].spawn();
        let name = name.to_owned();
        let this = &*self;
        this.wait_until(
            &format!("{name} to become a voter"),
            Duration::from_secs(60),
            || {
                let name = name.clone();
                async move {
                    let members = this.member_list().await?;
                    members
                        .iter()
                        .any(|m| m["name"] == name.as_str() && m["role"] == "voter")
                        .then_some(())
                }
            },
        )
        .await;
    }

    /// A fresh worker token, made with `ctl token create`.
    pub fn worker_token(&self) -> String {
        let out = self.ctl(&["token", "create", "--role", "worker"]);
        assert!(out.ok, "token create failed: {}", out.stderr);
        out.stdout.trim().to_owned()
    }

    /// Starts a worker agent with `ctl join SERVER --token T --runtime RUNTIME
    /// --name NAME` and waits until its Node is Ready; returns its index.
    pub async fn add_worker(&mut self, name: &str, runtime: &str) -> usize {
        let token = self.worker_token();
        let server = self.members[0].addr.clone();
        let worker = self.new_member(name, |dir, _| {
            vec![
                "join".into(),
                server,
                "--token".into(),
                token,
                "--runtime".into(),
                runtime.into(),
                "--name".into(),
                name.into(),
                "--data-dir".into(),
                dir.display().to_string(),
            ]
        });
        self.workers.push(worker);
        let index = self.workers.len() - 1;
        self.workers[index].spawn();
        self.wait_node_ready(name, Duration::from_secs(60)).await;
        index
    }

    /// Waits until Node `name` reports Ready.
    pub async fn wait_node_ready(&self, name: &str, timeout: Duration) {
        let this = self;
        wait_for(
            &format!("node {name} to be Ready"),
            timeout,
            || async move {
                let node = this.get_any(&format!("/api/v1/nodes/{name}")).await?;
                let ready = node["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                ready.then_some(())
            },
        )
        .await;
    }

    /// GET from the first member that answers with success.
    pub async fn get_any(&self, path: &str) -> Option<serde_json::Value> {
        for m in &self.members {
            if let Some(v) = self.get_json(&m.url(), path).await {
                return Some(v);
            }
        }
        None
    }

    /// Waits with a deadline, failing the test if the founder died meanwhile.
    pub async fn wait_until<T, F, Fut>(&self, what: &str, timeout: Duration, condition: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        wait_for(what, timeout, condition).await
    }

    /// A fresh master token, made with `ctl token create`.
    pub fn master_token(&self) -> String {
        let out = self.ctl(&["token", "create", "--role", "master"]);
        assert!(out.ok, "token create failed: {}", out.stderr);
        out.stdout.trim().to_owned()
    }

    /// Runs `ctl --kubeconfig FOUNDER_KUBECONFIG ARGS...`.
    pub fn ctl(&self, args: &[&str]) -> Ran {
        self.run_ctl(None, args)
    }

    /// Runs `ctl ARGS...` against one member only (`--server`), with the admin token.
    pub fn ctl_at(&self, member: usize, args: &[&str]) -> Ran {
        self.run_ctl(Some(&self.members[member].addr), args)
    }

    fn run_ctl(&self, server: Option<&str>, args: &[&str]) -> Ran {
        let kubeconfig = self.kubeconfig.display().to_string();
        let mut all = vec!["--kubeconfig", kubeconfig.as_str()];
        if let Some(server) = server {
            all.extend_from_slice(&["--server", server]);
        }
        all.extend_from_slice(args);
        ran(Command::new(ctl_bin())
            .args(&all)
            .env("FLOTILLA_LOG", "warn")
            .output()
            .expect("run ctl"))
    }

    /// `GET /cluster/members` from any running member.
    pub async fn member_list(&self) -> Option<Vec<serde_json::Value>> {
        for m in &self.members {
            if let Some(v) = self.get_json(&m.url(), "/cluster/members").await {
                return v.as_array().cloned();
            }
        }
        None
    }

    /// GET with the admin token; None on any failure.
    pub async fn get_json(&self, base: &str, path: &str) -> Option<serde_json::Value> {
        let response = self
            .http
            .get(format!("{base}{path}"))
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// The member a running member reports as leader and itself being leader.
    pub async fn leader(&self) -> Option<usize> {
        for (i, m) in self.members.iter().enumerate() {
            if let Some(local) = self.get_json(&m.url(), "/cluster/local").await {
                if local["state"] == "Leader" {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Waits until some member leads and returns its index.
    pub async fn await_leader(&self, timeout: Duration) -> usize {
        wait_for("a leader", timeout, || self.leader()).await
    }

    /// Puts `key=value` through member `i` directly (following one redirect),
    /// returning the revision, or None if it was not acknowledged.
    pub async fn put_via(&self, i: usize, key: &str, value: &str) -> Option<i64> {
        let body = serde_json::json!({ "key": key, "value": value });
        let mut url = format!("{}/kv/put", self.members[i].url());
        for _ in 0..3 {
            let response = self
                .http
                .post(&url)
                .bearer_auth(&self.token)
                .json(&body)
                .send()
                .await
                .ok()?;
            if response.status() == reqwest::StatusCode::TEMPORARY_REDIRECT {
                url = response
                    .headers()
                    .get("location")?
                    .to_str()
                    .ok()?
                    .to_owned();
                continue;
            }
            if !response.status().is_success() {
                return None;
            }
            let reply: serde_json::Value = response.json().await.ok()?;
            return reply["revision"].as_i64();
        }
        None
    }

    /// Reads a key from member `i` with the given consistency.
    pub async fn get_via(&self, i: usize, key: &str, consistency: &str) -> Option<Option<String>> {
        let url = format!(
            "{}/kv/get?key={}&consistency={consistency}",
            self.members[i].url(),
            encode(key)
        );
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let reply: serde_json::Value = response.json().await.ok()?;
        Some(reply["kv"]["value"].as_str().map(str::to_owned))
    }
}

/// An HTTP client that trusts `ca` (PEM) and follows no redirects.
pub fn http_client(ca: Option<&[u8]>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    if let Some(ca) = ca {
        builder = builder
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca).expect("CA PEM"));
    }
    builder.build().expect("http client")
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The stock `kubectl`, pointed at a cluster's admin kubeconfig.
pub struct Kubectl {
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// kubectl's discovery cache, private to the test.
    pub cache: tempfile::TempDir,
}

/// What a kubectl run printed.
pub struct Out {
    /// Exit success.
    pub ok: bool,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

impl Kubectl {
    /// kubectl for `cluster`.
    pub fn new(cluster: &Cluster) -> Kubectl {
        Kubectl {
            kubeconfig: cluster.kubeconfig.clone(),
            cache: tempfile::tempdir().expect("cache dir"),
        }
    }

    /// The command, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args);
        command
    }

    /// Runs kubectl.
    pub fn run(&self, args: &[&str]) -> Out {
        let output = self
            .command(args)
            .output()
            .expect("kubectl is installed on this machine (see README)");
        Out {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs kubectl, failing the test unless it succeeds; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// `kubectl apply -f` of a manifest's text.
    pub fn apply(&self, manifest: &str) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("manifest.yaml");
        std::fs::write(&path, manifest).expect("write manifest");
        self.ok(&["apply", "-f", &path.display().to_string()])
    }
}
