//! Per-node pod CIDRs: kube-controller-manager's node IPAM, as a pure
//! function of the Node, the cluster's pod CIDR and the ranges already held.
//!
//! The masters carve the cluster pod CIDR (`ctl init --pod-cidr`, default
//! [`DEFAULT_CLUSTER_CIDR`]) into ranges of `--node-cidr-mask-size` bits
//! (default [`DEFAULT_NODE_MASK`]) and give each Node the first free one in
//! `spec.podCIDR` / `spec.podCIDRs` when it registers. Each range held is a
//! store key under [`PREFIX`] (its value: the node's name), *created in the
//! same compare-and-swap transaction as the Node* and deleted in the one that
//! deletes it — the same scheme as a Service's cluster IP
//! (`api/services.rs`). So a range is never handed to two live nodes, even
//! when the list of taken ranges a master read was stale or a new leader
//! restarted with no memory: the create of a second holder fails and is
//! retried with the next range.
//!
//! A cluster CIDR with no free range left is not an error: the Node is
//! registered without a podCIDR and carries the condition
//! `NetworkUnavailable=True` with reason [`CIDR_NOT_AVAILABLE`] (the reason
//! kube-controller-manager's event uses); its agent reports the same as an
//! Event.
//!
//! No I/O here: the API's create and delete paths read the taken ranges and
//! write the claims this module returns.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Where range claims live: `/registry/ranges/podcidrs/10.244.3.0-24`.
pub const PREFIX: &str = "/registry/ranges/podcidrs/";
/// The cluster pod CIDR when `ctl init` is given none (flannel's and
/// kubeadm's documentation default).
pub const DEFAULT_CLUSTER_CIDR: Cidr = Cidr {
    network: Ipv4Addr::new(10, 244, 0, 0),
    prefix: 16,
};
/// The size of each node's range when none is given: a /24, 254 pods.
pub const DEFAULT_NODE_MASK: u8 = 24;
/// The condition reason (and event reason) of a node that got no range.
pub const CIDR_NOT_AVAILABLE: &str = "CIDRNotAvailable";

/// An IPv4 network: its address (host bits zero) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// The network address.
    pub network: Ipv4Addr,
    /// The prefix length, 0-32.
    pub prefix: u8,
}

/// Why a CIDR does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an IPv4 CIDR like 10.244.0.0/16: {why}")]
pub struct CidrError {
    /// What was given.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Cidr {
    /// The netmask as a number.
    pub fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// Whether `ip` lies inside.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// Whether `other` lies wholly inside.
    pub fn covers(self, other: Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network)
    }

    /// Whether the two share any address.
    pub fn overlaps(self, other: Cidr) -> bool {
        self.covers(other) || other.covers(self)
    }

    /// The `n`th address inside (1: the first host address).
    pub fn host(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(n))
    }

    /// The store key that claims this range.
    pub fn key(self) -> String {
        format!("{PREFIX}{}-{}", self.network, self.prefix)
    }

    /// The range a claim key names, if it is one.
    pub fn from_key(key: &str) -> Option<Cidr> {
        let (ip, prefix) = key.strip_prefix(PREFIX)?.split_once('-')?;
        format!("{ip}/{prefix}").parse().ok()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let err = |why| CidrError {
            text: text.to_owned(),
            why,
        };
        let (ip, prefix) = text.split_once('/').ok_or_else(|| err("no /prefix"))?;
        let network: Ipv4Addr = ip.parse().map_err(|_| err("not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| err("the prefix length is not 0-32"))?;
        let cidr = Cidr { network, prefix };
        if u32::from(network) & !cidr.mask() != 0 {
            return Err(err("host bits are set"));
        }
        Ok(cidr)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How a cluster CIDR is carved: checked when `ctl init` is given it.
///
/// # Errors
/// When the node mask is shorter than the cluster's or longer than /30
/// (a node needs a gateway and at least one pod address).
pub fn check(cluster: Cidr, node_mask: u8) -> Result<(), String> {
    if node_mask < cluster.prefix || node_mask > 30 {
        return Err(format!(
            "--node-cidr-mask-size {node_mask} must be between the pod CIDR's prefix ({}) and 30",
            cluster.prefix
        ));
    }
    Ok(())
}

/// What registering a Node takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// Claim this range (written into the Node).
    Take(Cidr),
    /// The Node carries no podCIDR and none is free: it was marked with
    /// the `NetworkUnavailable` condition and registers without one.
    Full,
}

/// The podCIDR a Node holds, if any (a malformed one counts as none).
pub fn held(node: &Value) -> Option<Cidr> {
    node["spec"]["podCIDR"].as_str()?.parse().ok()
}

/// Checks a podCIDR the client gave (a node may re-register with its
/// range), as a field error message.
///
/// # Errors
/// When `spec.podCIDR` is present and not a CIDR, or `podCIDRs` disagrees.
pub fn validate(node: &Value) -> Result<(), String> {
    let given = &node["spec"]["podCIDR"];
    if given.is_null() {
        return Ok(());
    }
    let cidr: Cidr = given
        .as_str()
        .ok_or_else(|| "spec.podCIDR: must be a string".to_owned())?
        .parse()
        .map_err(|e: CidrError| format!("spec.podCIDR: {e}"))?;
    match node["spec"]["podCIDRs"].as_array() {
        Some(list) if list.first().and_then(Value::as_str) != Some(&cidr.to_string()) => {
            Err("spec.podCIDRs: the first entry must equal spec.podCIDR".to_owned())
        }
        _ => Ok(()),
    }
}

fn set(node: &mut Value, cidr: Cidr) {
    if !node["spec"].is_object() {
        node["spec"] = json!({});
    }
    node["spec"]["podCIDR"] = json!(cidr.to_string());
    node["spec"]["podCIDRs"] = json!([cidr.to_string()]);
}

/// The first range of `node_mask` bits in `cluster` not in `taken`
/// (a taken range of another size blocks every range it overlaps).
pub fn first_free(cluster: Cidr, node_mask: u8, taken: &BTreeSet<Cidr>) -> Option<Cidr> {
    if check(cluster, node_mask).is_err() {
        return None;
    }
    let count = 1u64 << (node_mask - cluster.prefix);
    let step = 1u64 << (32 - node_mask);
    (0..count)
        .map(|i| Cidr {
            network: Ipv4Addr::from(
                u32::try_from(u64::from(u32::from(cluster.network)) + i * step).unwrap_or(u32::MAX),
            ),
            prefix: node_mask,
        })
        .find(|c| !taken.iter().any(|t| t.overlaps(*c)))
}

/// Gives a new `node` its range: the one it carries (kept as given), else
/// the first free one of `cluster` carved at `node_mask`. When none is
/// free, the Node gets `NetworkUnavailable=True` ([`CIDR_NOT_AVAILABLE`])
/// at `now` (RFC 3339) and registers without a range.
pub fn allocate(
    node: &mut Value,
    cluster: Cidr,
    node_mask: u8,
    taken: &BTreeSet<Cidr>,
    now: &str,
) -> Allocation {
    if let Some(given) = held(node) {
        set(node, given);
        return Allocation::Take(given);
    }
    match first_free(cluster, node_mask, taken) {
        Some(cidr) => {
            set(node, cidr);
            Allocation::Take(cidr)
        }
        None => {
            let condition = json!({
                "type": "NetworkUnavailable", "status": "True", "reason": CIDR_NOT_AVAILABLE,
                "message": format!("no free /{node_mask} range is left in the cluster's pod CIDR {cluster}: the node gets no pod network"),
                "lastHeartbeatTime": now, "lastTransitionTime": now,
            });
            if !node["status"].is_object() {
                node["status"] = json!({});
            }
            match node["status"]["conditions"].as_array_mut() {
                Some(list) => {
                    list.retain(|c| c["type"] != "NetworkUnavailable");
                    list.push(condition);
                }
                None => node["status"]["conditions"] = json!([condition]),
            }
            Allocation::Full
        }
    }
}

/// On update: the podCIDR is immutable once set (kept when the new version
/// omits it, as kube's Node strategy does); setting one on a Node that had
/// none claims it. Returns the range to claim, if any.
///
/// # Errors
/// A message when the update changes a set podCIDR.
pub fn reallocate(old: &Value, new: &mut Value) -> Result<Option<Cidr>, String> {
    match (held(old), held(new)) {
        (Some(cidr), None) => {
            set(new, cidr);
            Ok(None)
        }
        (Some(a), Some(b)) if a != b => Err(format!(
            "spec.podCIDR: Invalid value: \"{b}\": may not change once set (it is {a})"
        )),
        (None, Some(b)) => Ok(Some(b)),
        _ => Ok(None),
    }
}

/// The claim key deleting `node` gives back.
pub fn release(node: &Value) -> Option<String> {
    held(node).map(Cidr::key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().expect("test CIDR")
    }

    #[test]
    fn cidrs_parse_and_print() {
        assert_eq!(cidr("10.244.0.0/16"), DEFAULT_CLUSTER_CIDR);
        assert_eq!(DEFAULT_CLUSTER_CIDR.to_string(), "10.244.0.0/16");
        for bad in ["10.244.0.0", "10.244.0.1/16", "10.244.0.0/33", "x/8", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} should not parse");
        }
        let c = cidr("10.244.3.0/24");
        assert_eq!(Cidr::from_key(&c.key()), Some(c));
        assert!(c.contains(Ipv4Addr::new(10, 244, 3, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 244, 4, 1)));
        assert_eq!(c.host(1), Ipv4Addr::new(10, 244, 3, 1));
        assert!(cidr("10.244.0.0/16").covers(c));
        assert!(!c.covers(cidr("10.244.0.0/16")));
        assert_eq!(
            serde_json::to_string(&c).expect("json"),
            "\"10.244.3.0/24\""
        );
    }

    #[test]
    fn nodes_get_the_first_free_range_in_order() {
        let mut taken = BTreeSet::new();
        let mut seen = Vec::new();
        for i in 0..3 {
            let mut node = json!({"metadata": {"name": format!("n{i}")}, "spec": {}});
            let Allocation::Take(c) = allocate(&mut node, DEFAULT_CLUSTER_CIDR, 24, &taken, "t")
            else {
                panic!("a /16 has room for three /24s");
            };
            assert_eq!(node["spec"]["podCIDR"], c.to_string());
            assert_eq!(node["spec"]["podCIDRs"], json!([c.to_string()]));
            taken.insert(c);
            seen.push(c.to_string());
        }
        assert_eq!(seen, ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]);
        // The middle node leaves: its range is the next one handed out.
        taken.remove(&cidr("10.244.1.0/24"));
        assert_eq!(
            first_free(DEFAULT_CLUSTER_CIDR, 24, &taken),
            Some(cidr("10.244.1.0/24"))
        );
        // A taken range of another size blocks what it overlaps.
        taken.insert(cidr("10.244.0.0/22"));
        assert_eq!(
            first_free(DEFAULT_CLUSTER_CIDR, 24, &taken),
            Some(cidr("10.244.4.0/24"))
        );
    }

    #[test]
    fn a_full_cluster_cidr_marks_the_node_instead_of_failing() {
        let cluster = cidr("10.9.0.0/25");
        let taken: BTreeSet<Cidr> = [cidr("10.9.0.0/26"), cidr("10.9.0.64/26")].into();
        let mut node =
            json!({"spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(
            allocate(&mut node, cluster, 26, &taken, "2026-01-01T00:00:00Z"),
            Allocation::Full
        );
        assert!(node["spec"]["podCIDR"].is_null());
        let conditions = node["status"]["conditions"].as_array().expect("conditions");
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[1]["type"], "NetworkUnavailable");
        assert_eq!(conditions[1]["reason"], CIDR_NOT_AVAILABLE);
        assert!(conditions[1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("10.9.0.0/25")));
        assert_eq!(release(&node), None);
    }

    #[test]
    fn a_given_range_is_claimed_as_is_and_released_on_delete() {
        let mut node = json!({"spec": {"podCIDR": "10.244.7.0/24"}});
        assert_eq!(
            allocate(&mut node, DEFAULT_CLUSTER_CIDR, 24, &BTreeSet::new(), "t"),
            Allocation::Take(cidr("10.244.7.0/24"))
        );
        assert_eq!(release(&node), Some(format!("{PREFIX}10.244.7.0-24")));
        assert!(validate(&json!({"spec": {"podCIDR": "nope"}})).is_err());
        assert!(validate(
            &json!({"spec": {"podCIDR": "10.1.0.0/24", "podCIDRs": ["10.2.0.0/24"]}})
        )
        .is_err());
        assert!(validate(&json!({"spec": {}})).is_ok());
    }

    #[test]
    fn updates_keep_the_range_and_refuse_changing_it() {
        let old = json!({"spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}});
        let mut omitted = json!({"spec": {"unschedulable": true}});
        assert_eq!(reallocate(&old, &mut omitted), Ok(None));
        assert_eq!(omitted["spec"]["podCIDR"], "10.244.1.0/24");
        let mut moved = json!({"spec": {"podCIDR": "10.244.2.0/24"}});
        assert!(reallocate(&old, &mut moved).is_err());
        let mut first = json!({"spec": {"podCIDR": "10.244.9.0/24"}});
        assert_eq!(
            reallocate(&json!({"spec": {}}), &mut first),
            Ok(Some(cidr("10.244.9.0/24")))
        );
    }

    #[test]
    fn node_masks_are_checked() {
        assert!(check(DEFAULT_CLUSTER_CIDR, 24).is_ok());
        assert!(check(DEFAULT_CLUSTER_CIDR, 12).is_err());
        assert!(check(DEFAULT_CLUSTER_CIDR, 31).is_err());
        assert_eq!(first_free(DEFAULT_CLUSTER_CIDR, 31, &BTreeSet::new()), None);
        assert_eq!(
            first_free(cidr("10.0.0.0/30"), 30, &BTreeSet::new()),
            Some(cidr("10.0.0.0/30"))
        );
    }
}
