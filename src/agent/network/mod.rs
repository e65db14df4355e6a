//! The pod network: how a pod's sandbox gets its IP and how pods on
//! different nodes reach each other — the kubelet's CNI side plus what
//! flannel does between hosts.
//!
//! - **CNI** ([`cni`], [`wired`]). The Docker runtime creates each sandbox
//!   with network mode `none`; [`wired::Wired`] (a [`Runtime`] around it)
//!   then calls the CNI plugins of the agent's network configuration with
//!   `CNI_NETNS=/proc/<sandbox pid>/ns/net`, `CNI_IFNAME=eth0`, and reads the
//!   pod IP from the result. DEL runs when the sandbox is stopped or
//!   removed, and for sandboxes gone while the agent was away; CHECK runs on
//!   agent start, and (then every [`wired::CHECK_INTERVAL`]) a sandbox that
//!   lost its interface is added again with the same IP. Each ADD's result is cached in
//!   `DATA_DIR/cni/results/<sandbox id>.json` (libcni's cache), so a
//!   restarted agent knows its pods' IPs and can DEL and CHECK them.
//! - **Configuration.** The conf dir (`--cni-conf-dir`, default
//!   `DATA_DIR/cni/net.d` — per agent, so several agents on one machine do
//!   not share one) is read as libcni does: the lexically first `.conflist`
//!   or `.conf`. When the only file there is the agent's own
//!   [`OWN_CONFLIST`] (or there is none), the agent writes it from its
//!   Node's `spec.podCIDR` ([`default_conflist`]): `bridge` (the node's
//!   bridge, the pod gateway on it, no masquerade), `host-local` IPAM on the
//!   podCIDR (its store in `DATA_DIR/cni/ipam`), `portmap` for hostPorts,
//!   `loopback`. Any other file (flannel's, calico's) is used as it is.
//!   Plugins come from `--cni-bin-dir` (default `/usr/lib/cni`, Debian's
//!   `containernetworking-plugins`).
//! - **Between nodes** ([`routes`]). The agent follows the Node list and
//!   keeps a route to every other node's podCIDR: next hop the node's
//!   InternalIP (`--backend host-gw`, nodes on one L2 segment), or through
//!   a VXLAN device (`--backend vxlan`, flannel's design). Traffic from the
//!   pod network to outside it is masqueraded; pod-to-pod traffic is not.

pub mod cni;
pub mod routes;
pub mod wired;

use crate::objects::podcidr::Cidr;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The agent's own configuration file in the conf dir.
pub const OWN_CONFLIST: &str = "50-flotilla.conflist";
/// The network's name in the default configuration.
pub const NETWORK_NAME: &str = "flotilla";
/// Debian's `containernetworking-plugins` install here.
pub const DEFAULT_BIN_DIR: &str = "/usr/lib/cni";

/// How pod traffic crosses between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Backend {
    /// A route per node: next hop the node's InternalIP (one L2 segment).
    #[default]
    HostGw,
    /// A VXLAN overlay (VNI 1, UDP 8472), flannel's design.
    Vxlan,
    /// No routes, device or rules of the agent's: another plugin given in
    /// the conf dir (flannel, calico) connects the nodes.
    None,
}

/// The agent's pod network flags (`ctl init` and `ctl join`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Flags {
    /// CNI configuration directory (default DATA_DIR/cni/net.d); a
    /// `.conflist` placed here replaces the default network.
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
    /// CNI plugin binaries (default /usr/lib/cni).
    #[arg(long)]
    pub cni_bin_dir: Option<PathBuf>,
    /// How pod traffic reaches other nodes.
    #[arg(long, value_enum, default_value_t = Backend::HostGw)]
    pub backend: Backend,
}

/// Why the pod network failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A CNI plugin failed or did not answer.
    #[error("CNI plugin {plugin} {command}: {why}")]
    Plugin {
        /// The plugin's type (or the network's name).
        plugin: String,
        /// ADD, DEL or CHECK.
        command: &'static str,
        /// What it said.
        why: String,
    },
    /// A configuration file is unusable.
    #[error("CNI configuration {path}: {why}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The node has no pod range yet (or none was free).
    #[error("this node has no spec.podCIDR (yet; or the cluster's pod CIDR is full): the default pod network cannot be configured")]
    NoPodCidr,
    /// A host command (`ip`, `iptables`, `bridge`) failed.
    #[error("{command}: {why}")]
    Host {
        /// The command line.
        command: String,
        /// Its error output.
        why: String,
    },
    /// Files.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where the agent keeps its CNI state.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Configuration files.
    pub conf: PathBuf,
    /// Plugins.
    pub bin: PathBuf,
    /// ADD results, one file per sandbox.
    pub results: PathBuf,
    /// host-local's reservations.
    pub ipam: PathBuf,
}

impl Dirs {
    /// The directories for an agent whose data lives in `data_dir`.
    pub fn new(flags: &Flags, data_dir: &Path) -> Dirs {
        let cni = data_dir.join("cni");
        Dirs {
            conf: flags
                .cni_conf_dir
                .clone()
                .unwrap_or_else(|| cni.join("net.d")),
            bin: flags
                .cni_bin_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN_DIR)),
            results: cni.join("results"),
            ipam: cni.join("ipam"),
        }
    }
}

/// The node's bridge: named after its range, so agents of several clusters
/// (or nodes) sharing one machine never share a bridge (`flo` + the
/// range's network address in hex, e.g. `flo0af40000` for 10.244.0.0/24;
/// 11 characters, within Linux's 15).
pub fn bridge_name(range: Cidr) -> String {
    format!("flo{:08x}", u32::from(range.network))
}

/// The agent's default network for a node holding `range`: bridge +
/// host-local, portmap, loopback. The bridge does not masquerade
/// ([`routes`] owns one rule that masquerades only traffic leaving the
/// cluster's pod CIDR, so pods on other nodes see each other's IPs).
pub fn default_conflist(range: Cidr, ipam_dir: &Path, mtu: Option<u32>) -> Value {
    let mut bridge = json!({
        "type": "bridge",
        "bridge": bridge_name(range),
        "isGateway": true,
        "ipMasq": false,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": range.to_string(), "gateway": range.host(1).to_string()}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": ipam_dir.display().to_string(),
        },
    });
    if let Some(mtu) = mtu {
        bridge["mtu"] = json!(mtu);
    }
    json!({
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            bridge,
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
            {"type": "loopback"},
        ],
    })
}

/// The configuration to use from `conf_dir`: the lexically first
/// `.conflist`/`.conf`/`.json` other than the agent's own, else None.
///
/// # Errors
/// When the directory cannot be read or the chosen file is unusable.
pub fn user_conflist(conf_dir: &Path) -> Result<Option<cni::ConfList>, NetworkError> {
    let entries = match std::fs::read_dir(conf_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| n != OWN_CONFLIST)
                && p.extension()
                    .is_some_and(|x| x == "conflist" || x == "conf" || x == "json")
        })
        .collect();
    files.sort();
    match files.first() {
        Some(path) => {
            let text = std::fs::read_to_string(path)?;
            Ok(Some(cni::ConfList::parse(path, &text)?))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_network_is_a_bridge_on_the_nodes_range() {
        let range: Cidr = "10.244.3.0/24".parse().expect("cidr");
        let list = default_conflist(range, Path::new("/d/ipam"), Some(1450));
        let plugins = list["plugins"].as_array().expect("plugins");
        let types: Vec<&str> = plugins.iter().filter_map(|p| p["type"].as_str()).collect();
        assert_eq!(types, ["bridge", "portmap", "loopback"]);
        assert_eq!(plugins[0]["bridge"], "flo0af40300");
        assert_eq!(plugins[0]["ipMasq"], false);
        assert_eq!(plugins[0]["mtu"], 1450);
        assert_eq!(
            plugins[0]["ipam"]["ranges"][0][0],
            json!({"subnet": "10.244.3.0/24", "gateway": "10.244.3.1"})
        );
        assert_eq!(plugins[0]["ipam"]["dataDir"], "/d/ipam");
        assert!(bridge_name(range).len() <= 15);
    }

    #[test]
    fn a_users_conflist_wins_over_the_agents_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(user_conflist(dir.path()).expect("empty").is_none());
        std::fs::write(dir.path().join(OWN_CONFLIST), "{}").expect("write");
        std::fs::write(dir.path().join("README"), "not a config").expect("write");
        assert!(user_conflist(dir.path()).expect("own only").is_none());
        std::fs::write(
            dir.path().join("10-flannel.conflist"),
            r#"{"cniVersion":"0.4.0","name":"cbr0","plugins":[{"type":"flannel"}]}"#,
        )
        .expect("write");
        let found = user_conflist(dir.path()).expect("read").expect("flannel");
        assert_eq!(found.name(), "cbr0");
        std::fs::write(dir.path().join("05-bad.conf"), "{").expect("write");
        assert!(
            user_conflist(dir.path()).is_err(),
            "a broken file is an error, not skipped"
        );
    }
}
