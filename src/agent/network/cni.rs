//! Calling CNI plugins, as the CNI 1.0 specification describes it (what
//! libcni does for containerd and cri-o).
//!
//! A *network configuration list* (`.conflist`) names a chain of plugins.
//! For each plugin the runtime execs `CNI_PATH/<type>` with the command in
//! the environment (`CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`,
//! `CNI_IFNAME`, `CNI_PATH`, `CNI_ARGS`) and the plugin's configuration on
//! stdin — the plugin's own object plus the list's `name` and `cniVersion`,
//! the previous plugin's result as `prevResult`, and `runtimeConfig` for
//! the capabilities the plugin declares (`portMappings`). On success a
//! plugin prints its result; on failure it exits non-zero and prints an
//! error object (`code`, `msg`, `details`).
//!
//! - ADD runs the plugins in order, each given the previous one's result;
//!   the last result is the network's.
//! - DEL runs them in reverse, each given the ADD's result; a DEL of
//!   something already gone succeeds (plugins must be idempotent), so a
//!   DEL may be repeated until it succeeds.
//! - CHECK runs them in order, each given the ADD's result; any error means
//!   the sandbox's network is not as ADD left it.
//!
//! Every exec runs under [`PLUGIN_TIMEOUT`] and is killed past it.

use super::NetworkError;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Longest a single plugin exec may take.
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Wire a sandbox in.
    Add,
    /// Undo an ADD.
    Del,
    /// Verify an ADD still holds.
    Check,
}

impl Command {
    fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
        }
    }
}

/// A host port to map into the sandbox (portmap's `portMappings`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Port on the host.
    pub host_port: u16,
    /// Port in the pod.
    pub container_port: u16,
    /// "tcp" or "udp".
    pub protocol: String,
}

/// What a call is about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The sandbox's container id.
    pub container_id: String,
    /// Its network namespace (`/proc/PID/ns/net`); empty when it is gone
    /// (allowed for DEL).
    pub netns: String,
    /// The interface inside (`eth0`).
    pub if_name: String,
    /// `K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;...` for plugins that want them.
    pub args: String,
    /// Host ports.
    pub port_mappings: Vec<PortMapping>,
}

/// A configuration list read from disk.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfList {
    /// Where it came from.
    pub path: PathBuf,
    /// Its JSON.
    pub json: Value,
}

impl ConfList {
    /// Parses a `.conflist`, or a single-plugin `.conf` (wrapped as a list
    /// of one, as libcni does).
    ///
    /// # Errors
    /// When the file is not JSON or lacks `name`, `cniVersion` or plugins.
    pub fn parse(path: &Path, text: &str) -> Result<ConfList, NetworkError> {
        let bad = |why: String| NetworkError::Config {
            path: path.to_owned(),
            why,
        };
        let mut json: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if json.get("plugins").is_none() && json.get("type").is_some() {
            json =
                json!({"cniVersion": json["cniVersion"], "name": json["name"], "plugins": [json]});
        }
        if json["name"].as_str().is_none_or(str::is_empty) {
            return Err(bad("no \"name\"".into()));
        }
        if json["cniVersion"].as_str().is_none() {
            return Err(bad("no \"cniVersion\"".into()));
        }
        let plugins = json["plugins"]
            .as_array()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad("no \"plugins\"".into()))?;
        if plugins.iter().any(|p| p["type"].as_str().is_none()) {
            return Err(bad("a plugin without \"type\"".into()));
        }
        Ok(ConfList {
            path: path.to_owned(),
            json,
        })
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        self.json["name"].as_str().unwrap_or("")
    }

    fn plugins(&self) -> &[Value] {
        self.json["plugins"].as_array().map_or(&[], Vec::as_slice)
    }

    /// The stdin of `plugin` for a call with `prev` as `prevResult`.
    pub fn plugin_config(&self, plugin: &Value, prev: Option<&Value>, at: &Attachment) -> Value {
        let mut config = plugin.clone();
        config["name"] = self.json["name"].clone();
        config["cniVersion"] = self.json["cniVersion"].clone();
        if let Some(prev) = prev {
            config["prevResult"] = prev.clone();
        }
        if plugin["capabilities"]["portMappings"] == json!(true) && !at.port_mappings.is_empty() {
            config["runtimeConfig"]["portMappings"] = json!(at.port_mappings);
        }
        config
    }
}

/// The first IPv4 address a result gives the sandbox (an `ips` entry whose
/// interface is inside a sandbox, else the first IPv4 entry).
pub fn result_ip(result: &Value) -> Option<Ipv4Addr> {
    let interfaces = result["interfaces"].as_array();
    let ips = result["ips"].as_array()?;
    let parsed = |ip: &Value| {
        ip["address"]
            .as_str()?
            .split('/')
            .next()?
            .parse::<Ipv4Addr>()
            .ok()
    };
    let in_sandbox = |ip: &Value| {
        let i = ip["interface"].as_u64()?;
        let iface = interfaces?.get(usize::try_from(i).ok()?)?;
        iface["sandbox"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
            .then_some(())
    };
    ips.iter()
        .find(|ip| in_sandbox(ip).is_some() && parsed(ip).is_some())
        .or_else(|| ips.iter().find(|ip| parsed(ip).is_some()))
        .and_then(parsed)
}

/// Runs one plugin.
async fn exec(
    bin_dir: &Path,
    command: Command,
    plugin: &str,
    config: &Value,
    at: &Attachment,
) -> Result<Value, NetworkError> {
    let failed = |why: String| NetworkError::Plugin {
        plugin: plugin.to_owned(),
        command: command.as_str(),
        why,
    };
    if plugin.contains('/') || plugin.starts_with('.') {
        return Err(failed("plugin types may not name a path".into()));
    }
    let binary = bin_dir.join(plugin);
    let mut child = tokio::process::Command::new(&binary)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command.as_str())
        .env("CNI_CONTAINERID", &at.container_id)
        .env("CNI_NETNS", &at.netns)
        .env("CNI_IFNAME", &at.if_name)
        .env("CNI_ARGS", &at.args)
        .env("CNI_PATH", bin_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            failed(format!(
                "cannot run {}: {e} (is containernetworking-plugins installed, or --cni-bin-dir right?)",
                binary.display()
            ))
        })?;
    let input = serde_json::to_vec(config).map_err(|e| failed(e.to_string()))?;
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A plugin that fails early may not read it all: its exit
            // status and output say why, not the broken pipe.
            let _ = stdin.write_all(&input).await;
        }
        child.wait_with_output().await
    };
    let output = tokio::time::timeout(PLUGIN_TIMEOUT, run)
        .await
        .map_err(|_| failed(format!("no answer within {PLUGIN_TIMEOUT:?}")))?
        .map_err(|e| failed(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let why = serde_json::from_str::<Value>(&stdout)
            .ok()
            .and_then(|e| {
                let msg = e["msg"].as_str()?.to_owned();
                Some(match e["details"].as_str().filter(|d| !d.is_empty()) {
                    Some(d) => format!("{msg}: {d}"),
                    None => msg,
                })
            })
            .unwrap_or_else(|| {
                format!(
                    "{} {}{}",
                    output.status,
                    stdout.trim(),
                    String::from_utf8_lossy(&output.stderr).trim()
                )
            });
        return Err(failed(why));
    }
    if stdout.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&stdout).map_err(|e| failed(format!("unreadable result: {e}")))
}

/// ADD: the chain in order; the final result.
///
/// # Errors
/// The first plugin's failure (the caller then runs DEL to undo the rest).
pub async fn add(bin_dir: &Path, list: &ConfList, at: &Attachment) -> Result<Value, NetworkError> {
    let mut prev: Option<Value> = None;
    for plugin in list.plugins() {
        let kind = plugin["type"].as_str().unwrap_or("");
        let config = list.plugin_config(plugin, prev.as_ref(), at);
        let result = exec(bin_dir, Command::Add, kind, &config, at).await?;
        if !result.is_null() {
            prev = Some(result);
        }
    }
    prev.ok_or_else(|| NetworkError::Plugin {
        plugin: list.name().to_owned(),
        command: "ADD",
        why: "the chain returned no result".into(),
    })
}

/// DEL: the chain in reverse, each given the ADD's result. Every plugin
/// runs even when one fails; the first failure is returned.
///
/// # Errors
/// A plugin's failure.
pub async fn del(
    bin_dir: &Path,
    list: &ConfList,
    at: &Attachment,
    result: Option<&Value>,
) -> Result<(), NetworkError> {
    let mut first = None;
    for plugin in list.plugins().iter().rev() {
        let kind = plugin["type"].as_str().unwrap_or("");
        let config = list.plugin_config(plugin, result, at);
        if let Err(e) = exec(bin_dir, Command::Del, kind, &config, at).await {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// CHECK: the chain in order, each given the ADD's result.
///
/// # Errors
/// The first plugin that finds the network not as ADD left it.
pub async fn check(
    bin_dir: &Path,
    list: &ConfList,
    at: &Attachment,
    result: &Value,
) -> Result<(), NetworkError> {
    for plugin in list.plugins() {
        let kind = plugin["type"].as_str().unwrap_or("");
        let config = list.plugin_config(plugin, Some(result), at);
        exec(bin_dir, Command::Check, kind, &config, at).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment() -> Attachment {
        Attachment {
            container_id: "abc".into(),
            netns: "/proc/1/ns/net".into(),
            if_name: "eth0".into(),
            args: String::new(),
            port_mappings: vec![PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
            }],
        }
    }

    #[test]
    fn plugin_configs_carry_the_list_and_capabilities() {
        let list = ConfList::parse(
            Path::new("x.conflist"),
            r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .expect("parses");
        let bridge = list.plugin_config(&list.plugins()[0], None, &attachment());
        assert_eq!(bridge["name"], "pods");
        assert_eq!(bridge["cniVersion"], "1.0.0");
        assert!(bridge.get("runtimeConfig").is_none());
        assert!(bridge.get("prevResult").is_none());
        let prev = json!({"ips": []});
        let portmap = list.plugin_config(&list.plugins()[1], Some(&prev), &attachment());
        assert_eq!(portmap["prevResult"], prev);
        assert_eq!(
            portmap["runtimeConfig"]["portMappings"],
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
        );
    }

    #[test]
    fn single_plugin_confs_are_lists_of_one_and_bad_ones_are_refused() {
        let one = ConfList::parse(
            Path::new("10-x.conf"),
            r#"{"cniVersion":"0.4.0","name":"n","type":"ptp"}"#,
        )
        .expect("a .conf");
        assert_eq!(one.plugins().len(), 1);
        for bad in [
            "{",
            r#"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{}]}"#,
        ] {
            assert!(ConfList::parse(Path::new("bad"), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_pod_ip_is_the_sandbox_interfaces() {
        let result = json!({
            "interfaces": [{"name": "flo0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/proc/9/ns/net"}],
            "ips": [{"address": "10.244.0.1/24", "interface": 0}, {"address": "10.244.0.7/24", "gateway": "10.244.0.1", "interface": 2}],
        });
        assert_eq!(result_ip(&result), Some(Ipv4Addr::new(10, 244, 0, 7)));
        let bare = json!({"ips": [{"address": "fd00::5/64"}, {"address": "10.1.2.3/16"}]});
        assert_eq!(result_ip(&bare), Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(result_ip(&json!({})), None);
    }

    #[tokio::test]
    async fn a_missing_plugin_is_a_clear_error() {
        let list = ConfList::parse(
            Path::new("x"),
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"nonexistent"}]}"#,
        )
        .expect("parses");
        let dir = tempfile::tempdir().expect("tempdir");
        let err = add(dir.path(), &list, &attachment())
            .await
            .expect_err("no such plugin");
        assert!(
            err.to_string().contains("containernetworking-plugins"),
            "{err}"
        );
    }
}
