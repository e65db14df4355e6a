//! Liveness and readiness probes: `exec` (through the runtime), `httpGet`
//! and `tcpSocket` (to the pod's IP, from the agent's host).
//!
//! One task per probe of a running container. It waits
//! `initialDelaySeconds`, then probes every `periodSeconds` with a
//! `timeoutSeconds` limit, and flips its result after `successThreshold`
//! successes or `failureThreshold` failures in a row (Kubernetes' defaults:
//! 10 s, 1 s, 1, 3). Results land in [`Results`] and wake the pod's worker:
//! readiness feeds the Ready condition, a failed liveness probe makes the
//! worker kill the container (and restart it per the restart policy).

use super::runtime::Runtime;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Decides restarts.
    Liveness,
    /// Decides readiness.
    Readiness,
}

/// How to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run a command in the container; exit 0 passes.
    Exec(Vec<String>),
    /// GET http(s)://POD_IP:port/path; 200-399 passes.
    Http {
        /// Port.
        port: u16,
        /// Path.
        path: String,
        /// "HTTP" or "HTTPS".
        scheme: String,
    },
    /// Connect to POD_IP:port; a connection passes.
    Tcp(u16),
}

/// A probe as the pod spec gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// What to do.
    pub action: Action,
    /// Wait before the first probe.
    pub initial_delay: Duration,
    /// Between probes.
    pub period: Duration,
    /// Per probe.
    pub timeout: Duration,
    /// Successes in a row to pass.
    pub success_threshold: u32,
    /// Failures in a row to fail.
    pub failure_threshold: u32,
}

fn seconds(value: &Value, default: u64) -> Duration {
    Duration::from_secs(value.as_u64().unwrap_or(default))
}

/// Resolves a probe port: a number, or the name of a container port.
fn port(value: &Value, container: &Value) -> Option<u16> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Value::String(name) => name.parse().ok().or_else(|| {
            crate::objects::pod::list(container, "ports")
                .iter()
                .find(|p| p["name"] == name.as_str())
                .and_then(|p| p["containerPort"].as_u64())
                .and_then(|p| u16::try_from(p).ok())
        }),
        _ => None,
    }
}

/// The `livenessProbe` or `readinessProbe` of a container spec, if any.
pub fn from_spec(container: &Value, kind: Kind) -> Option<Probe> {
    let field = match kind {
        Kind::Liveness => "livenessProbe",
        Kind::Readiness => "readinessProbe",
    };
    let p = container.get(field).filter(|p| p.is_object())?;
    let action = if let Some(command) = p["exec"]["command"].as_array() {
        Action::Exec(
            command
                .iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect(),
        )
    } else if p["httpGet"].is_object() {
        Action::Http {
            port: port(&p["httpGet"]["port"], container)?,
            path: p["httpGet"]["path"].as_str().unwrap_or("/").to_owned(),
            scheme: p["httpGet"]["scheme"].as_str().unwrap_or("HTTP").to_owned(),
        }
    } else if p["tcpSocket"].is_object() {
        Action::Tcp(port(&p["tcpSocket"]["port"], container)?)
    } else {
        return None;
    };
    Some(Probe {
        action,
        initial_delay: seconds(&p["initialDelaySeconds"], 0),
        period: seconds(&p["periodSeconds"], 10).max(Duration::from_secs(1)),
        timeout: seconds(&p["timeoutSeconds"], 1).max(Duration::from_secs(1)),
        success_threshold: u32::try_from(p["successThreshold"].as_u64().unwrap_or(1))
            .unwrap_or(1)
            .max(1),
        failure_threshold: u32::try_from(p["failureThreshold"].as_u64().unwrap_or(3))
            .unwrap_or(3)
            .max(1),
    })
}

/// Probe results of one agent: (container id, kind) → passing.
#[derive(Clone, Default)]
pub struct Results {
    map: Arc<Mutex<HashMap<(String, Kind), bool>>>,
}

impl Results {
    /// The result of a probe; None until it has one.
    pub fn get(&self, container: &str, kind: Kind) -> Option<bool> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(container.to_owned(), kind))
            .copied()
    }

    fn set(&self, container: &str, kind: Kind, passing: bool) -> bool {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert((container.to_owned(), kind), passing) != Some(passing)
    }

    /// Forgets a container's results.
    pub fn forget(&self, container: &str) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(&(container.to_owned(), Kind::Liveness));
        map.remove(&(container.to_owned(), Kind::Readiness));
    }
}

/// Runs one probe attempt.
async fn attempt(
    runtime: &Arc<dyn Runtime>,
    http: &reqwest::Client,
    container_id: &str,
    pod_ip: &str,
    probe: &Probe,
) -> bool {
    match &probe.action {
        Action::Exec(command) => matches!(
            runtime.exec(container_id, command, probe.timeout).await,
            Ok(0)
        ),
        Action::Http { port, path, scheme } => {
            let scheme = if scheme.eq_ignore_ascii_case("HTTPS") {
                "https"
            } else {
                "http"
            };
            let url = format!("{scheme}://{pod_ip}:{port}{path}");
            match http.get(&url).timeout(probe.timeout).send().await {
                Ok(r) => r.status().as_u16() >= 200 && r.status().as_u16() < 400,
                Err(_) => false,
            }
        }
        Action::Tcp(port) => matches!(
            tokio::time::timeout(
                probe.timeout,
                tokio::net::TcpStream::connect((pod_ip, *port))
            )
            .await,
            Ok(Ok(_))
        ),
    }
}

/// Runs `probe` of `kind` against container `container_id` until `stop`,
/// recording into `results` and waking `wake` when the result flips.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    runtime: Arc<dyn Runtime>,
    http: reqwest::Client,
    container_id: String,
    pod_ip: String,
    kind: Kind,
    probe: Probe,
    results: Results,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    tokio::select! {
        () = tokio::time::sleep(probe.initial_delay) => {}
        () = stop.cancelled() => return,
    }
    let (mut successes, mut failures) = (0u32, 0u32);
    let mut tick = tokio::time::interval(probe.period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let passed = tokio::select! {
            passed = attempt(&runtime, &http, &container_id, &pod_ip, &probe) => passed,
            () = stop.cancelled() => return,
        };
        if passed {
            successes += 1;
            failures = 0;
        } else {
            failures += 1;
            successes = 0;
        }
        let verdict = if successes >= probe.success_threshold {
            Some(true)
        } else if failures >= probe.failure_threshold {
            Some(false)
        } else {
            None
        };
        if let Some(passing) = verdict {
            if results.set(&container_id, kind, passing) {
                tracing::debug!(container = %container_id, ?kind, passing, "probe result changed");
                wake.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probes_parse_with_kubernetes_defaults() {
        let c = json!({"ports": [{"name": "web", "containerPort": 8080}],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "web"}, "periodSeconds": 2},
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "failureThreshold": 1}});
        let live = from_spec(&c, Kind::Liveness).expect("liveness");
        assert_eq!(
            live.action,
            Action::Http {
                port: 8080,
                path: "/healthz".into(),
                scheme: "HTTP".into()
            }
        );
        assert_eq!(live.period, Duration::from_secs(2));
        assert_eq!(live.failure_threshold, 3);
        let ready = from_spec(&c, Kind::Readiness).expect("readiness");
        assert_eq!(
            ready.action,
            Action::Exec(vec!["cat".into(), "/tmp/ready".into()])
        );
        assert_eq!(ready.failure_threshold, 1);
        assert_eq!(ready.timeout, Duration::from_secs(1));
        let tcp = json!({"livenessProbe": {"tcpSocket": {"port": 5432}}});
        assert_eq!(
            from_spec(&tcp, Kind::Liveness).map(|p| p.action),
            Some(Action::Tcp(5432))
        );
        assert_eq!(from_spec(&json!({}), Kind::Liveness), None);
        let bad = json!({"livenessProbe": {"httpGet": {"port": "nope"}}});
        assert_eq!(from_spec(&bad, Kind::Liveness), None);
    }

    #[test]
    fn results_report_flips_only() {
        let r = Results::default();
        assert_eq!(r.get("c", Kind::Readiness), None);
        assert!(r.set("c", Kind::Readiness, true));
        assert!(!r.set("c", Kind::Readiness, true));
        assert_eq!(r.get("c", Kind::Readiness), Some(true));
        r.forget("c");
        assert_eq!(r.get("c", Kind::Readiness), None);
    }
}
