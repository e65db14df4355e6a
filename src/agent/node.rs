//! The agent's Node: registration, Lease heartbeats, node status.
//!
//! - On start the agent creates its Node (or, when it exists, refreshes its
//!   status): capacity and allocatable (CPUs, memory, max pods), addresses,
//!   the daemon endpoint masters fetch logs from, node info, and the Ready
//!   condition.
//! - Every [`Config::lease_interval`] it renews `kube-node-lease/NODE`
//!   (Kubernetes' cheap heartbeat: a small object, not the whole Node).
//! - Every [`Config::status_interval`] it reads its Node back and posts the
//!   status when it is not Ready (the node controller marked it Unknown while
//!   the agent was away) or older than [`STATUS_REPORT`].

use super::api::{encode, Api, ApiCallError};
use crate::objects::registry::LEASE_NAMESPACE;
use crate::objects::{meta, pod, quantity};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often an agent renews its Lease at most (kubelet's default).
pub const LEASE_RENEW_MAX: Duration = Duration::from_secs(10);

/// The Lease renewal period for a cluster whose nodes are judged silent after
/// `grace`: a quarter of it (kubelet renews every 10 s against the default
/// 40 s), between 200 ms and [`LEASE_RENEW_MAX`].
pub fn renew_interval(grace: Duration) -> Duration {
    (grace / 4).clamp(Duration::from_millis(200), LEASE_RENEW_MAX)
}

/// The Lease's duration, as written in it.
pub const LEASE_DURATION_SECONDS: u64 = 40;
/// Node status is posted at least this often.
pub const STATUS_REPORT: Duration = Duration::from_secs(60);

/// What a node offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory: u64,
    /// Pods at most.
    pub pods: u32,
}

impl Capacity {
    /// This host's CPUs and memory, and Kubernetes' default of 110 pods.
    pub fn of_host() -> Capacity {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024);
        Capacity {
            cpu_millis: i64::try_from(cpus).unwrap_or(1) * 1000,
            memory,
            pods: 110,
        }
    }

    fn to_json(self) -> Value {
        let cpu = if self.cpu_millis % 1000 == 0 {
            (self.cpu_millis / 1000).to_string()
        } else {
            format!("{}m", self.cpu_millis)
        };
        json!({"cpu": cpu, "memory": quantity::kibibytes(self.memory), "pods": self.pods.to_string(),
               "ephemeral-storage": "100Gi"})
    }
}

/// How the node presents itself.
#[derive(Debug, Clone)]
pub struct Config {
    /// Node name.
    pub name: String,
    /// The address masters and pods reach it at.
    pub address: String,
    /// The port its log server listens on (0: none).
    pub daemon_port: u16,
    /// Capacity.
    pub capacity: Capacity,
    /// The runtime's version (`docker://28.2.2`).
    pub runtime_version: String,
    /// Extra labels.
    pub labels: Vec<(String, String)>,
    /// Lease renewal period.
    pub lease_interval: Duration,
    /// How often the Node is read back.
    pub status_interval: Duration,
}

fn conditions(now: &str) -> Value {
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!([
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

/// The node's status as the agent reports it at `now`, keeping the
/// transition times of conditions that did not change.
pub fn status(config: &Config, previous: Option<&Value>, now: u64) -> Value {
    let stamp = meta::timestamp(now);
    let mut conditions = conditions(&stamp);
    if let (Some(previous), Some(list)) = (previous, conditions.as_array_mut()) {
        for c in list.iter_mut() {
            let old = pod::list(&previous["status"], "conditions")
                .iter()
                .find(|o| o["type"] == c["type"] && o["status"] == c["status"]);
            if let Some(old) = old {
                c["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
        }
        // Conditions others own (NetworkUnavailable, set by the masters'
        // pod CIDR allocation) are kept, as the kubelet's patches keep them.
        let foreign: Vec<Value> = pod::list(&previous["status"], "conditions")
            .iter()
            .filter(|o| !list.iter().any(|c| c["type"] == o["type"]))
            .cloned()
            .collect();
        list.extend(foreign);
    }
    let capacity = config.capacity.to_json();
    json!({
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": conditions,
        "addresses": [{"type": "InternalIP", "address": config.address}, {"type": "Hostname", "address": config.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.daemon_port}},
        "nodeInfo": {
            "kubeletVersion": "v1.32.0-flotilla",
            "kubeProxyVersion": "",
            "containerRuntimeVersion": config.runtime_version,
            "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "osImage": "Flotilla",
            "kernelVersion": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "machineID": "", "systemUUID": "", "bootID": "",
        },
    })
}

/// The Node object to register.
pub fn object(config: &Config, now: u64) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": config.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
    });
    for (k, v) in &config.labels {
        labels[k] = json!(v);
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": config.name, "labels": labels},
        "spec": {},
        "status": status(config, None, now),
    })
}

fn node_path(name: &str) -> String {
    format!("/api/v1/nodes/{}", encode(name))
}

/// Creates the Node, or refreshes the status of the existing one.
///
/// # Errors
/// When the API refuses (e.g. the credential is for another node).
pub async fn register(api: &Api, config: &Config) -> Result<(), ApiCallError> {
    let now = meta::now();
    match api.create("/api/v1/nodes", &object(config, now)).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(409) => {
            let current = api.get(&node_path(&config.name)).await?;
            let patch = json!({"status": status(config, current.as_ref(), now)});
            api.merge_patch(&format!("{}/status", node_path(&config.name)), &patch)
                .await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Renews the node's Lease (creating it the first time).
///
/// # Errors
/// When the API refuses or no master answers.
pub async fn renew_lease(api: &Api, config: &Config) -> Result<(), ApiCallError> {
    let path = format!(
        "/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{}",
        encode(&config.name)
    );
    let now = micro_time();
    let spec = json!({"holderIdentity": config.name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": now});
    match api.merge_patch(&path, &json!({"spec": spec})).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(404) => {
            let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": config.name, "namespace": LEASE_NAMESPACE}, "spec": spec});
            api.create(
                &format!("/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"),
                &lease,
            )
            .await
            .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// The current time as a `MicroTime` (RFC 3339 with microseconds).
pub fn micro_time() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

/// Reads the Node back and posts its status if it is not Ready or stale.
///
/// # Errors
/// When the API refuses or no master answers.
pub async fn refresh_status(api: &Api, config: &Config) -> Result<(), ApiCallError> {
    let Some(node) = api
        .get(&format!("{}?resourceVersion=0", node_path(&config.name)))
        .await?
    else {
        // Deleted while we ran: register again.
        return register(api, config).await;
    };
    let now = meta::now();
    let heartbeat = pod::list(&node["status"], "conditions")
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["lastHeartbeatTime"].as_str())
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let ready = pod::condition(&node, "Ready") == Some("True");
    if ready && now.saturating_sub(heartbeat) < STATUS_REPORT.as_secs() {
        return Ok(());
    }
    let patch = json!({"status": status(config, Some(&node), now)});
    api.merge_patch(&format!("{}/status", node_path(&config.name)), &patch)
        .await?;
    Ok(())
}

/// Heartbeats until `stop`: the Lease every `lease_interval`, the status
/// check every `status_interval`.
pub async fn heartbeat(api: &Api, config: &Config, stop: CancellationToken) {
    // Spread the beats over the period, so a fleet started at once does not
    // renew in lockstep (a thundering herd every ten seconds).
    let jitter = |period: Duration| {
        let millis = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
        tokio::time::Instant::now() + Duration::from_millis(rand::random::<u64>() % millis)
    };
    let mut lease = tokio::time::interval_at(tokio::time::Instant::now(), config.lease_interval);
    let mut status =
        tokio::time::interval_at(jitter(config.status_interval), config.status_interval);
    lease.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first lease at once, the next ones at a random phase.
    let mut first = true;
    loop {
        tokio::select! {
            _ = lease.tick() => {
                if std::mem::take(&mut first) {
                    lease.reset_at(jitter(config.lease_interval));
                }
                if let Err(e) = renew_lease(api, config).await {
                    tracing::warn!(node = %config.name, "renewing the node lease: {e}");
                }
            }
            _ = status.tick() => {
                if let Err(e) = refresh_status(api, config).await {
                    tracing::warn!(node = %config.name, "posting node status: {e}");
                }
            }
            () = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            name: "w1".into(),
            address: "10.0.0.9".into(),
            daemon_port: 10250,
            capacity: Capacity {
                cpu_millis: 2000,
                memory: 4 << 30,
                pods: 110,
            },
            runtime_version: "fake://1".into(),
            labels: vec![("flotilla.io/runtime".into(), "fake".into())],
            lease_interval: Duration::from_secs(10),
            status_interval: Duration::from_secs(10),
        }
    }

    #[test]
    fn nodes_register_with_capacity_and_ready() {
        let node = object(&config(), 100);
        assert_eq!(node["status"]["capacity"]["cpu"], "2");
        assert_eq!(node["status"]["capacity"]["memory"], "4194304Ki");
        assert_eq!(node["status"]["allocatable"]["pods"], "110");
        assert_eq!(node["metadata"]["labels"]["flotilla.io/runtime"], "fake");
        assert_eq!(
            node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
            10250
        );
        assert_eq!(pod::condition(&node, "Ready"), Some("True"));
        assert_eq!(node["status"]["addresses"][0]["address"], "10.0.0.9");
    }

    #[test]
    fn transition_times_survive_refreshes() {
        let first = object(&config(), 100);
        let later = status(&config(), Some(&first), 500);
        let ready = pod::list(&later, "conditions")
            .iter()
            .find(|c| c["type"] == "Ready")
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready["lastTransitionTime"], meta::timestamp(100));
        assert_eq!(ready["lastHeartbeatTime"], meta::timestamp(500));
    }

    #[test]
    fn leases_renew_four_times_per_grace_period() {
        assert_eq!(
            renew_interval(Duration::from_secs(40)),
            Duration::from_secs(10)
        );
        assert_eq!(
            renew_interval(Duration::from_secs(4)),
            Duration::from_secs(1)
        );
        assert_eq!(renew_interval(Duration::from_secs(600)), LEASE_RENEW_MAX);
        assert_eq!(renew_interval(Duration::ZERO), Duration::from_millis(200));
    }

    #[test]
    fn host_capacity_is_read() {
        let c = Capacity::of_host();
        assert!(c.cpu_millis >= 1000);
        assert!(c.memory > 0, "/proc/meminfo is readable here");
    }
}
