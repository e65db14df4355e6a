//! The fake runtime of hollow nodes (Kubernetes' kubemark): containers that
//! exist only in memory, "start" after a short simulated delay, report an IP,
//! and never touch Docker — so one process can host hundreds of nodes and
//! the control plane can be measured at scale on one machine.
//!
//! Every image is present; containers run until stopped; exec answers 0;
//! logs are one line per start. The IPs come from 100.64.0.0/10 (shared
//! address space, never routed here), derived from the node name and a
//! counter, so they are unique enough for endpoints and never reachable.

use super::{
    Container, ContainerConfig, LogOptions, LogStream, PodRef, PullPolicy, Runtime, RuntimeError,
    Sandbox, SandboxConfig, State,
};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// How long a fake container takes to start, by default.
pub const DEFAULT_START_DELAY: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
struct Entry {
    container: Container,
    log: String,
}

/// An in-memory runtime.
pub struct Fake {
    start_delay: Duration,
    node_octets: (u8, u8),
    next: AtomicU64,
    containers: Mutex<HashMap<String, Entry>>,
}

impl Fake {
    /// A fake runtime for `node`, whose containers start after `start_delay`.
    pub fn new(node: &str, start_delay: Duration) -> Fake {
        let digest = crate::security::sha256_hex(node);
        let byte =
            |i: usize| u8::from_str_radix(digest.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0);
        Fake {
            start_delay,
            // 100.64.0.0/10: the second octet is 64-127.
            node_octets: (64 + byte(0) % 64, byte(2)),
            next: AtomicU64::new(1),
            containers: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.containers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn id(&self) -> (u64, String) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n, format!("fake-{:016x}", rand::random::<u64>()))
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Entry) -> T) -> Result<T, RuntimeError> {
        self.lock()
            .get_mut(id)
            .map(f)
            .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))
    }
}

#[async_trait]
impl Runtime for Fake {
    async fn version(&self) -> Result<String, RuntimeError> {
        Ok(format!("fake://{}", env!("CARGO_PKG_VERSION")))
    }

    async fn list(&self) -> Result<Vec<Container>, RuntimeError> {
        Ok(self.lock().values().map(|e| e.container.clone()).collect())
    }

    async fn pull(&self, _image: &str, _policy: PullPolicy) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox, RuntimeError> {
        let (n, id) = self.id();
        let ip = format!(
            "100.{}.{}.{}",
            self.node_octets.0,
            self.node_octets
                .1
                .wrapping_add(u8::try_from((n >> 8) & 0xff).unwrap_or(0)),
            u8::try_from(n & 0xff).unwrap_or(0)
        );
        let container = Container {
            id: id.clone(),
            pod: config.pod.clone(),
            name: None,
            attempt: 0,
            image: "fake/pause".into(),
            image_id: "fake/pause".into(),
            state: State::Running {
                started_at: SystemTime::now(),
            },
            ip: Some(ip.clone()),
        };
        self.lock().insert(
            id.clone(),
            Entry {
                container,
                log: String::new(),
            },
        );
        Ok(Sandbox { id, ip })
    }

    async fn create(
        &self,
        pod: &PodRef,
        _sandbox: &Sandbox,
        config: &ContainerConfig,
    ) -> Result<String, RuntimeError> {
        let (_, id) = self.id();
        let container = Container {
            id: id.clone(),
            pod: pod.clone(),
            name: Some(config.name.clone()),
            attempt: config.attempt,
            image: config.image.clone(),
            image_id: format!("fake://{}", config.image),
            state: State::Created,
            ip: None,
        };
        self.lock().insert(
            id.clone(),
            Entry {
                container,
                log: String::new(),
            },
        );
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.with(id, |_| ())?;
        tokio::time::sleep(self.start_delay).await;
        self.with(id, |e| {
            e.container.state = State::Running {
                started_at: SystemTime::now(),
            };
            e.log.push_str(&format!(
                "{} fake container {} started\n",
                crate::objects::meta::timestamp(crate::objects::meta::now()),
                e.container.name.as_deref().unwrap_or("")
            ));
        })
    }

    async fn stop(&self, id: &str, _grace: Duration) -> Result<(), RuntimeError> {
        self.with(id, |e| {
            let started_at = match e.container.state {
                State::Running { started_at } => Some(started_at),
                _ => None,
            };
            if !matches!(e.container.state, State::Exited { .. }) {
                e.container.state = State::Exited {
                    code: 0,
                    started_at,
                    finished_at: SystemTime::now(),
                    reason: "Completed".into(),
                };
            }
        })
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.lock()
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))
    }

    async fn logs(&self, id: &str, options: LogOptions) -> Result<LogStream, RuntimeError> {
        let log = self.with(id, |e| e.log.clone())?;
        let lines: Vec<&str> = log.lines().collect();
        let skip = options
            .tail
            .and_then(|t| usize::try_from(t).ok())
            .map_or(0, |t| lines.len().saturating_sub(t));
        let text: String = lines[skip..].iter().map(|l| format!("{l}\n")).collect();
        Ok(Box::pin(futures::stream::once(async move {
            Ok(Bytes::from(text))
        })))
    }

    async fn exec(
        &self,
        id: &str,
        _command: &[String],
        _timeout: Duration,
    ) -> Result<i64, RuntimeError> {
        self.with(id, |_| 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn containers_start_stop_and_go() {
        let rt = Fake::new("hollow-1", Duration::from_millis(1));
        let pod = PodRef {
            uid: "u".into(),
            namespace: "default".into(),
            name: "p".into(),
        };
        let config = SandboxConfig {
            pod: pod.clone(),
            hostname: "p".into(),
            ports: vec![],
            dns_servers: vec![],
            dns_search: vec![],
        };
        let sandbox = rt.run_sandbox(&config).await.expect("sandbox");
        assert!(sandbox.ip.starts_with("100."));
        let spec = ContainerConfig {
            name: "c".into(),
            image: "anything".into(),
            ..ContainerConfig::default()
        };
        let id = rt.create(&pod, &sandbox, &spec).await.expect("create");
        rt.start(&id).await.expect("start");
        let listed = rt.list().await.expect("list");
        assert_eq!(listed.len(), 2);
        assert!(listed
            .iter()
            .any(|c| c.id == id && matches!(c.state, State::Running { .. })));
        let mut logs = rt.logs(&id, LogOptions::default()).await.expect("logs");
        let text = logs.next().await.expect("a chunk").expect("bytes");
        assert!(String::from_utf8_lossy(&text).contains("fake container c started"));
        rt.stop(&id, Duration::ZERO).await.expect("stop");
        rt.remove(&id).await.expect("remove");
        assert!(matches!(
            rt.remove(&id).await,
            Err(RuntimeError::NotFound(_))
        ));
        assert_eq!(
            rt.exec(&sandbox.id, &[], Duration::ZERO)
                .await
                .expect("exec"),
            0
        );
    }
}
