//! The Docker Engine runtime (bollard). Not written yet: connecting fails
//! with a message saying so, and `--runtime fake` is the alternative.

use super::{
    Container, ContainerConfig, LogOptions, LogStream, PodRef, PullPolicy, Runtime, RuntimeError,
    Sandbox, SandboxConfig,
};
use async_trait::async_trait;
use std::time::Duration;

/// The Docker runtime.
pub struct Docker;

impl Docker {
    /// Connects to the local engine.
    ///
    /// # Errors
    /// Always, until the runtime is written.
    pub async fn connect(_node: &str) -> Result<Docker, RuntimeError> {
        Err(RuntimeError::Other(
            "the Docker runtime is not built yet; run hollow nodes with --runtime fake".into(),
        ))
    }
}

#[async_trait]
impl Runtime for Docker {
    async fn version(&self) -> Result<String, RuntimeError> {
        Err(RuntimeError::Other("unavailable".into()))
    }
    async fn list(&self) -> Result<Vec<Container>, RuntimeError> {
        Err(RuntimeError::Other("unavailable".into()))
    }
    async fn pull(&self, _image: &str, _policy: PullPolicy) -> Result<(), RuntimeError> {
        Err(RuntimeError::Other("unavailable".into()))
    }
    async fn run_sandbox(&self, _config: &SandboxConfig) -> Result<Sandbox, RuntimeError> {
        Err(RuntimeError::Other("unavailable".into()))
    }
    async fn create(
        &self,
        _pod: &PodRef,
        _sandbox: &Sandbox,
        _config: &ContainerConfig,
    ) -> Result<String, RuntimeError> {
        Err(RuntimeError::Other("unavailable".into()))
    }
    async fn start(&self, _id: &str) -> Result<(), RuntimeError> {
        Err(RuntimeError::Other("unavailable".into()))
    }
    async fn stop(&self, _id: &str, _grace: Duration) -> Result<(), RuntimeError> {
        Err(RuntimeError::Other("unavailable".into()))
    }
    async fn remove(&self, _id: &str) -> Result<(), RuntimeError> {
        Err(RuntimeError::Other("unavailable".into()))
    }
    async fn logs(&self, _id: &str, _options: LogOptions) -> Result<LogStream, RuntimeError> {
        Err(RuntimeError::Other("unavailable".into()))
    }
    async fn exec(
        &self,
        _id: &str,
        _command: &[String],
        _timeout: Duration,
    ) -> Result<i64, RuntimeError> {
        Err(RuntimeError::Other("unavailable".into()))
    }
}
