//! Nodes: the workers, registered by their agents. Deleting a Node also
//! revokes its agent's credential (the record under [`CREDENTIAL_PREFIX`]),
//! so the name may join again.

use super::claim::{self, Claim};
use super::meta;
use super::podcidr;
use super::print::{
    col, meta_age, meta_name, or_none, typed, unreadable_row, wide, Column, Row, AGE, NAME,
};
use super::registry::Resource;
use super::strategy::Strategy;
use super::validate::{self, Errors};
use k8s_openapi::api::core::v1 as k8s;
use serde_json::Value;

/// The rules of Node objects.
#[derive(Debug, Clone, Copy)]
pub struct Nodes;

/// The resource served for this kind.
pub const RESOURCE: Resource = Resource {
    group: "",
    version: "v1",
    kind: "Node",
    list_kind: "NodeList",
    plural: "nodes",
    singular: "node",
    short_names: &["no"],
    namespaced: false,
    subresources: &["status"],
    in_all: false,
    strategy: &Nodes,
};

/// Where node credential records live in the store (`security::nodes`
/// writes and reads them; deleting a Node releases its record).
pub const CREDENTIAL_PREFIX: &str = "/flotilla/nodes/";

/// The store key of node `name`'s credential record.
pub fn credential_key(name: &str) -> String {
    format!("{CREDENTIAL_PREFIX}{name}")
}

/// The field types only this kind uses (grammar: [`super::types`]).
const TYPES: &str = "
core.AttachedVolume devicePath:string name:string
core.ConfigMapNodeConfigSource kubeletConfigKey:string name:string namespace:string
        resourceVersion:string uid:string
core.ContainerImage names:[string] sizeBytes:integer
core.DaemonEndpoint Port:integer
core.Node apiVersion:string kind:string metadata:meta.ObjectMeta spec:core.NodeSpec
        status:core.NodeStatus
core.NodeAddress address:string type:string
core.NodeCondition lastHeartbeatTime:time lastTransitionTime:time message:string
        reason:string status:string type:string
core.NodeConfigSource configMap:core.ConfigMapNodeConfigSource
core.NodeConfigStatus active:core.NodeConfigSource assigned:core.NodeConfigSource
        error:string lastKnownGood:core.NodeConfigSource
core.NodeDaemonEndpoints kubeletEndpoint:core.DaemonEndpoint
core.NodeFeatures supplementalGroupsPolicy:boolean
core.NodeRuntimeHandler features:core.NodeRuntimeHandlerFeatures name:string
core.NodeRuntimeHandlerFeatures recursiveReadOnlyMounts:boolean userNamespaces:boolean
core.NodeSpec configSource:core.NodeConfigSource externalID:string podCIDR:string
        podCIDRs:[string]@merge providerID:string taints:[core.Taint] unschedulable:boolean
core.NodeStatus addresses:[core.NodeAddress]@merge/type allocatable:{quantity}
        capacity:{quantity} conditions:[core.NodeCondition]@merge/type
        config:core.NodeConfigStatus daemonEndpoints:core.NodeDaemonEndpoints
        features:core.NodeFeatures images:[core.ContainerImage] nodeInfo:core.NodeSystemInfo
        phase:string runtimeHandlers:[core.NodeRuntimeHandler]
        volumesAttached:[core.AttachedVolume] volumesInUse:[string]
core.NodeSystemInfo architecture:string bootID:string containerRuntimeVersion:string
        kernelVersion:string kubeProxyVersion:string kubeletVersion:string machineID:string
        operatingSystem:string osImage:string systemUUID:string
core.Taint effect:string key:string timeAdded:time value:string
";

/// kube-apiserver's Table columns for this kind (its printers.go).
const COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide("Internal-IP", "List of addresses reachable to the node."),
    wide("External-IP", "List of addresses reachable to the node."),
    wide("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    wide("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    wide("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];

impl Strategy for Nodes {
    fn type_name(&self) -> Option<&'static str> {
        Some("core.Node")
    }

    fn types(&self) -> &'static str {
        TYPES
    }

    fn validate(&self, obj: &Value) -> Errors {
        let mut errors = validate::object(obj, self.name_rule());
        if let Err(message) = podcidr::validate(obj) {
            errors.invalid("spec.podCIDR", message);
        }
        errors
    }

    /// The pod CIDR is immutable once set (kept when an update omits it);
    /// setting one on a Node that had none claims it. A new Node's range is
    /// allocated by the store, which knows the ranges taken
    /// ([`super::podcidr::allocate`]).
    fn reallocate(&self, old: &Value, new: &mut Value) -> Result<Vec<Claim>, Errors> {
        match podcidr::reallocate(old, new) {
            Ok(taken) => Ok(taken
                .map(|cidr| Claim::Take {
                    key: cidr.key(),
                    owner: claim::owner(new),
                })
                .into_iter()
                .collect()),
            Err(message) => {
                let mut errors = Errors::default();
                errors.invalid("spec.podCIDR", message);
                Err(errors)
            }
        }
    }

    fn release(&self, obj: &Value) -> Vec<Claim> {
        // Deleting a Node revokes its agent's credential, whatever it holds,
        // and gives back its pod CIDR range.
        let credential = meta::name(obj).map(|name| Claim::Release {
            key: credential_key(name),
            owner: None,
        });
        let range = podcidr::release(obj).map(|key| Claim::Release {
            key,
            owner: Some(claim::owner(obj)),
        });
        credential.into_iter().chain(range).collect()
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, obj: &Value, now: i64) -> Row {
        node_row(obj, now)
    }
}

/// `printNode`: STATUS from the Ready condition (`Ready`, `NotReady` for
/// False or Unknown, `Unknown` when absent), plus `SchedulingDisabled`.
fn node_row(obj: &Value, now: i64) -> Row {
    let Some(node) = typed::<k8s::Node>(obj) else {
        return unreadable_row(obj, now, COLUMNS);
    };
    let status = node.status.unwrap_or_default();
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let mut state: Vec<&str> = match conditions.iter().rev().find(|c| c.type_ == "Ready") {
        Some(c) if c.status == "True" => vec!["Ready"],
        Some(_) => vec!["NotReady"],
        None => vec!["Unknown"],
    };
    if node.spec.and_then(|s| s.unschedulable) == Some(true) {
        state.push("SchedulingDisabled");
    }
    let mut roles: Vec<&str> = Vec::new();
    for (key, value) in node.metadata.labels.iter().flatten() {
        let role = match key.strip_prefix("node-role.kubernetes.io/") {
            Some(role) => role,
            None if key == "kubernetes.io/role" => value.as_str(),
            None => "",
        };
        if !role.is_empty() && !roles.contains(&role) {
            roles.push(role);
        }
    }
    roles.sort_unstable();
    let addresses = status.addresses.as_deref().unwrap_or_default();
    let address = |kind: &str| {
        addresses
            .iter()
            .find(|a| a.type_ == kind)
            .map_or("<none>", |a| a.address.as_str())
            .to_owned()
    };
    let info = status.node_info.unwrap_or_default();
    let unknown = |s: &str| {
        if s.is_empty() {
            "<unknown>".to_owned()
        } else {
            s.to_owned()
        }
    };
    Row::cells(vec![
        meta_name(&node.metadata),
        Value::from(state.join(",")),
        Value::from(or_none(&roles.join(","))),
        meta_age(&node.metadata, now),
        Value::from(info.kubelet_version.as_str()),
        Value::from(address("InternalIP")),
        Value::from(address("ExternalIP")),
        Value::from(unknown(&info.os_image)),
        Value::from(unknown(&info.kernel_version)),
        Value::from(unknown(&info.container_runtime_version)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deleting_a_node_revokes_its_credential() {
        let node = json!({"metadata": {"name": "n1"}});
        assert_eq!(
            Nodes.release(&node),
            vec![Claim::Release {
                key: "/flotilla/nodes/n1".into(),
                owner: None,
            }]
        );
        assert!(Nodes.release(&json!({"metadata": {}})).is_empty());
        // Node names are subdomains: dots are fine.
        assert!(Nodes
            .validate(&json!({"metadata": {"name": "n1.example.com"}}))
            .is_empty());
    }
}
