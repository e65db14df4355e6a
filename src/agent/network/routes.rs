//! Routes between nodes' pod ranges: flannel's host-gw and VXLAN backends,
//! kept in step with the Node list by the agent.
//!
//! Every [`SYNC_INTERVAL`] the agent reads the Node list (from its master's
//! local copy) and computes what its host should have ([`desired`], pure):
//!
//! - **host-gw**: `ip route replace <node's podCIDR> via <node's
//!   InternalIP> proto 241` for every other node. The next hop must be on a
//!   shared L2 segment; when it is not, the kernel refuses and the agent
//!   logs that `--backend vxlan` is needed.
//! - **vxlan**: one device `flotilla.1` (VNI 1, UDP 8472, no learning, MTU
//!   50 below the uplink's, its address the first of the node's range as a
//!   /32), its MAC published in the Node annotation [`VTEP_MAC`]; per other
//!   node a route `<podCIDR> via <its range's .0> dev flotilla.1 onlink`, a
//!   permanent neighbour entry for that .0 with the node's VTEP MAC, and an
//!   FDB entry sending that MAC to the node's InternalIP.
//!
//! Routes are marked with protocol [`ROUTE_PROTO`], so stale ones (a node
//! deleted while the agent was down) are found and removed on start — only
//! those inside the cluster's pod CIDR. Nodes sharing this agent's own
//! address (several agents on one machine) need no route: their bridge is
//! on this host already.
//!
//! Pod traffic is never masqueraded inside the pod CIDR; traffic leaving
//! it is, by one iptables rule per cluster CIDR owned by flotilla (comment
//! `flotilla pod network`), and the FORWARD chain accepts pod traffic (a
//! Docker host's FORWARD policy is DROP). Host commands are `ip`,
//! `bridge` and `iptables`, each under [`COMMAND_TIMEOUT`]: the same tools
//! an operator reads the result with, no netlink code to trust, and the
//! agent already runs plugins as processes; at one pass a second with
//! changes only on Node changes, their cost does not matter.

use super::wired::Local;
use super::{Backend, NetworkError};
use crate::agent::api::{encode, Api};
use crate::objects::podcidr::Cidr;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the Node list is compared with the host's routes.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Longest a host command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// The routing protocol number marking flotilla's routes.
pub const ROUTE_PROTO: &str = "241";
/// The VXLAN device.
pub const VXLAN_DEVICE: &str = "flotilla.1";
/// VXLAN network identifier (flannel's default).
pub const VNI: u32 = 1;
/// VXLAN UDP port (the Linux kernel's and flannel's default).
pub const VXLAN_PORT: u16 = 8472;
/// What VXLAN adds to a packet (outer Ethernet, IP, UDP, VXLAN headers).
pub const VXLAN_OVERHEAD: u32 = 50;
/// The Node annotation carrying a node's VTEP MAC.
pub const VTEP_MAC: &str = "flotilla.io/vtep-mac";
const RULE_COMMENT: &str = "flotilla pod network";

/// How a remote range is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// host-gw: via the node's InternalIP.
    Gateway(Ipv4Addr),
    /// vxlan: via the range's .0 on the VXLAN device, whose MAC is
    /// `mac`, tunnelled to `node`.
    Vxlan {
        /// The remote VTEP's address (its range's network address).
        vtep: Ipv4Addr,
        /// The remote VTEP's MAC.
        mac: String,
        /// The remote node's InternalIP.
        node: Ipv4Addr,
    },
}

/// A node's InternalIP.
fn internal_ip(node: &Value) -> Option<Ipv4Addr> {
    node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()?
        .parse()
        .ok()
}

/// The routes this host should have, given the Node list: every other
/// node's podCIDR (inside `cluster`) by `backend`. Nodes at this host's own
/// address and nodes not yet fit to route to (no range, no address, no
/// VTEP MAC under VXLAN) are left out.
pub fn desired(
    nodes: &[Value],
    me: &str,
    my_ip: Ipv4Addr,
    cluster: Cidr,
    backend: Backend,
) -> BTreeMap<Cidr, Hop> {
    let mut routes = BTreeMap::new();
    for node in nodes {
        if node["metadata"]["name"] == me {
            continue;
        }
        let (Some(range), Some(ip)) = (crate::objects::podcidr::held(node), internal_ip(node))
        else {
            continue;
        };
        if ip == my_ip || !cluster.covers(range) {
            continue;
        }
        let hop = match backend {
            Backend::None => continue,
            Backend::HostGw => Hop::Gateway(ip),
            Backend::Vxlan => {
                let Some(mac) = node["metadata"]["annotations"][VTEP_MAC].as_str() else {
                    continue;
                };
                Hop::Vxlan {
                    vtep: range.network,
                    mac: mac.to_owned(),
                    node: ip,
                }
            }
        };
        routes.insert(range, hop);
    }
    routes
}

/// Runs a host command; its stdout.
///
/// # Errors
/// When it cannot run, fails, or takes longer than [`COMMAND_TIMEOUT`].
pub async fn host(args: &[&str]) -> Result<String, NetworkError> {
    let line = args.join(" ");
    let (program, rest) = args.split_first().ok_or_else(|| NetworkError::Host {
        command: line.clone(),
        why: "empty command".into(),
    })?;
    let run = tokio::process::Command::new(program)
        .args(rest)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(COMMAND_TIMEOUT, run)
        .await
        .map_err(|_| NetworkError::Host {
            command: line.clone(),
            why: format!("no answer within {COMMAND_TIMEOUT:?}"),
        })?
        .map_err(|e| NetworkError::Host {
            command: line.clone(),
            why: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(NetworkError::Host {
            command: line,
            why: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Makes sure the iptables rule `rule` (without -A/-C) exists in `table`.
async fn ensure_rule(table: &str, rule: &[&str]) -> Result<(), NetworkError> {
    let with = |op: &'static str| {
        let mut args = vec!["iptables", "-w", "-t", table, op];
        args.extend_from_slice(rule);
        args
    };
    if host(&with("-C")).await.is_ok() {
        return Ok(());
    }
    host(&with("-A")).await.map(|_| ())
}

/// The masquerade and forward rules for the cluster's pod CIDR.
///
/// # Errors
/// When iptables refuses.
pub async fn ensure_rules(cluster: Cidr) -> Result<(), NetworkError> {
    let c = cluster.to_string();
    let comment = ["-m", "comment", "--comment", RULE_COMMENT];
    let c = c.as_str();
    let mut masq = vec!["POSTROUTING", "-s", c, "!", "-d", c];
    masq.extend_from_slice(&comment);
    masq.extend_from_slice(&["-j", "MASQUERADE"]);
    ensure_rule("nat", &masq).await?;
    for dir in ["-s", "-d"] {
        let mut fwd = vec!["FORWARD", dir, c];
        fwd.extend_from_slice(&comment);
        fwd.extend_from_slice(&["-j", "ACCEPT"]);
        ensure_rule("filter", &fwd).await?;
    }
    Ok(())
}

/// The flotilla routes present, inside `cluster`.
async fn present(cluster: Cidr) -> Result<Vec<Cidr>, NetworkError> {
    let out = host(&["ip", "-4", "route", "show", "proto", ROUTE_PROTO]).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse::<Cidr>().ok())
        .filter(|c| cluster.covers(*c))
        .collect())
}

async fn apply(range: Cidr, hop: &Hop) -> Result<(), NetworkError> {
    let dst = range.to_string();
    match hop {
        Hop::Gateway(via) => {
            let via = via.to_string();
            host(&[
                "ip",
                "route",
                "replace",
                &dst,
                "via",
                &via,
                "proto",
                ROUTE_PROTO,
            ])
            .await?;
        }
        Hop::Vxlan { vtep, mac, node } => {
            let (vtep, node) = (vtep.to_string(), node.to_string());
            host(&[
                "ip",
                "neigh",
                "replace",
                &vtep,
                "lladdr",
                mac.as_str(),
                "dev",
                VXLAN_DEVICE,
                "nud",
                "permanent",
            ])
            .await?;
            host(&[
                "bridge",
                "fdb",
                "replace",
                mac.as_str(),
                "dev",
                VXLAN_DEVICE,
                "dst",
                &node,
                "self",
                "permanent",
            ])
            .await?;
            host(&[
                "ip",
                "route",
                "replace",
                &dst,
                "via",
                &vtep,
                "dev",
                VXLAN_DEVICE,
                "onlink",
                "proto",
                ROUTE_PROTO,
            ])
            .await?;
        }
    }
    Ok(())
}

async fn withdraw(range: Cidr, hop: Option<&Hop>) {
    let dst = range.to_string();
    if let Err(e) = host(&["ip", "route", "del", &dst, "proto", ROUTE_PROTO]).await {
        tracing::debug!(%range, "removing a route: {e}");
    }
    if let Some(Hop::Vxlan { vtep, mac, node }) = hop {
        let (vtep, node) = (vtep.to_string(), node.to_string());
        let _ = host(&["ip", "neigh", "del", &vtep, "dev", VXLAN_DEVICE]).await;
        let _ = host(&[
            "bridge",
            "fdb",
            "del",
            mac.as_str(),
            "dev",
            VXLAN_DEVICE,
            "dst",
            &node,
            "self",
        ])
        .await;
    }
}

/// The uplink carrying `ip` and its MTU.
async fn uplink(ip: Ipv4Addr) -> Result<(String, u32), NetworkError> {
    let out = host(&["ip", "-o", "-4", "addr", "show"]).await?;
    let needle = format!(" {ip}/");
    let dev = out
        .lines()
        .find(|l| l.contains(&needle))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(|d| d.split('@').next().unwrap_or(d).to_owned())
        .ok_or_else(|| NetworkError::Host {
            command: "ip -o -4 addr show".into(),
            why: format!("no interface holds this node's address {ip}"),
        })?;
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{dev}/mtu"))?
        .trim()
        .parse()
        .unwrap_or(1500);
    Ok((dev, mtu))
}

/// Creates (or keeps) the VXLAN device for a node at `ip` holding `range`;
/// its MAC and the pods' MTU.
async fn ensure_vxlan(ip: Ipv4Addr, range: Cidr) -> Result<(String, u32), NetworkError> {
    let (dev, mtu) = uplink(ip).await?;
    let pod_mtu = mtu.saturating_sub(VXLAN_OVERHEAD);
    let sys = format!("/sys/class/net/{VXLAN_DEVICE}/address");
    if std::fs::metadata(&sys).is_err() {
        let (vni, port, local) = (VNI.to_string(), VXLAN_PORT.to_string(), ip.to_string());
        host(&[
            "ip",
            "link",
            "add",
            VXLAN_DEVICE,
            "type",
            "vxlan",
            "id",
            &vni,
            "local",
            &local,
            "dev",
            &dev,
            "dstport",
            &port,
            "nolearning",
        ])
        .await?;
    }
    let m = pod_mtu.to_string();
    host(&["ip", "link", "set", VXLAN_DEVICE, "mtu", &m, "up"]).await?;
    let addr = format!("{}/32", range.network);
    host(&["ip", "addr", "replace", &addr, "dev", VXLAN_DEVICE]).await?;
    let mac = std::fs::read_to_string(&sys)?.trim().to_owned();
    Ok((mac, pod_mtu))
}

/// Posts a Warning event on the node when the masters found no free range
/// for it (the `NetworkUnavailable` condition they set says why); true once
/// posted.
async fn report_no_range(api: &Api, node: &Value) -> bool {
    let Some(message) = node["status"]["conditions"]
        .as_array()
        .and_then(|c| {
            c.iter().find(|c| {
                c["type"] == "NetworkUnavailable"
                    && c["reason"] == crate::objects::podcidr::CIDR_NOT_AVAILABLE
            })
        })
        .and_then(|c| c["message"].as_str())
    else {
        return false;
    };
    tracing::warn!("{}: {message}", crate::objects::podcidr::CIDR_NOT_AVAILABLE);
    let mut involved = node.clone();
    involved["kind"] = json!("Node");
    involved["apiVersion"] = json!("v1");
    let event = crate::store::events::event(
        "flotilla-agent",
        &involved,
        crate::store::events::Severity::Warning,
        crate::objects::podcidr::CIDR_NOT_AVAILABLE,
        message,
    );
    match api
        .create("/api/v1/namespaces/default/events", &event)
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!("recording the CIDRNotAvailable event: {e}");
            false
        }
    }
}

/// What the route keeper needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node.
    pub node: String,
    /// Its InternalIP.
    pub address: Ipv4Addr,
    /// The cluster's pod CIDR.
    pub cluster: Cidr,
    /// How to reach other nodes.
    pub backend: Backend,
}

/// Keeps routes, rules and (under VXLAN) the device in step with the Node
/// list until `stop`, publishing this node's range and pod MTU to `local`.
pub async fn run(
    api: Api,
    config: Config,
    local: watch::Sender<Option<Local>>,
    stop: CancellationToken,
) {
    let mut applied: BTreeMap<Cidr, Option<Hop>> = match present(config.cluster).await {
        Ok(found) => found.into_iter().map(|c| (c, None)).collect(),
        Err(e) => {
            tracing::warn!("listing routes: {e}");
            BTreeMap::new()
        }
    };
    let mut rules = false;
    let mut reported = false;
    let mut vxlan: Option<(Cidr, String, u32)> = None;
    let mut failing: BTreeMap<Cidr, String> = BTreeMap::new();
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        if !rules && config.backend != Backend::None {
            match ensure_rules(config.cluster).await {
                Ok(()) => rules = true,
                Err(e) => tracing::warn!("pod network rules: {e}"),
            }
        }
        let nodes = match api.get("/api/v1/nodes?resourceVersion=0").await {
            Ok(Some(list)) => list["items"].as_array().cloned().unwrap_or_default(),
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!("listing nodes: {e}");
                continue;
            }
        };
        let me = nodes
            .iter()
            .find(|n| n["metadata"]["name"] == config.node.as_str());
        let range = me.and_then(crate::objects::podcidr::held);
        let Some(range) = range else {
            if let Some(me) = me.filter(|_| !reported) {
                reported = report_no_range(&api, me).await;
            }
            continue;
        };
        let mut mtu = None;
        if config.backend == Backend::Vxlan {
            if vxlan.as_ref().is_none_or(|(r, _, _)| *r != range) {
                match ensure_vxlan(config.address, range).await {
                    Ok((mac, m)) => vxlan = Some((range, mac, m)),
                    Err(e) => {
                        tracing::warn!("the VXLAN device: {e}");
                        continue;
                    }
                }
            }
            if let (Some((_, mac, m)), Some(me)) = (&vxlan, me) {
                mtu = Some(*m);
                if me["metadata"]["annotations"][VTEP_MAC].as_str() != Some(mac.as_str()) {
                    let patch = json!({"metadata": {"annotations": {VTEP_MAC: mac}}});
                    let path = format!("/api/v1/nodes/{}", encode(&config.node));
                    if let Err(e) = api.merge_patch(&path, &patch).await {
                        tracing::warn!("publishing the VTEP MAC: {e}");
                    }
                }
            }
        }
        local.send_if_modified(|l| {
            let next = Some(Local { range, mtu });
            if *l == next {
                false
            } else {
                *l = next;
                true
            }
        });
        let want = desired(
            &nodes,
            &config.node,
            config.address,
            config.cluster,
            config.backend,
        );
        let stale: Vec<Cidr> = applied
            .keys()
            .filter(|c| !want.contains_key(c))
            .copied()
            .collect();
        for c in stale {
            let hop = applied.remove(&c).flatten();
            withdraw(c, hop.as_ref()).await;
            tracing::info!(range = %c, "route to a departed node's pods removed");
        }
        for (c, hop) in &want {
            if applied.get(c).and_then(Option::as_ref) == Some(hop) {
                continue;
            }
            if let Some(Some(old)) = applied.get(c) {
                withdraw(*c, Some(old)).await;
            }
            match apply(*c, hop).await {
                Ok(()) => {
                    failing.remove(c);
                    applied.insert(*c, Some(hop.clone()));
                    tracing::info!(range = %c, ?hop, "route to a node's pods set");
                }
                Err(e) => {
                    let text = e.to_string();
                    if failing.get(c) != Some(&text) {
                        let hint = if config.backend == Backend::HostGw {
                            " (host-gw needs the nodes on one L2 segment; use --backend vxlan otherwise)"
                        } else {
                            ""
                        };
                        tracing::warn!(range = %c, "cannot route to a node's pods: {text}{hint}");
                        failing.insert(*c, text);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ip: &str, cidr: Option<&str>, mac: Option<&str>) -> Value {
        let mut n = json!({"metadata": {"name": name, "annotations": {}}, "spec": {},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}});
        if let Some(c) = cidr {
            n["spec"]["podCIDR"] = json!(c);
        }
        if let Some(m) = mac {
            n["metadata"]["annotations"][VTEP_MAC] = json!(m);
        }
        n
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().expect("cidr")
    }

    #[test]
    fn host_gw_routes_every_other_nodes_range_via_its_address() {
        let nodes = [
            node("a", "10.0.0.1", Some("10.244.0.0/24"), None),
            node("b", "10.0.0.2", Some("10.244.1.0/24"), None),
            node("c", "10.0.0.3", None, None),
            node("d", "10.0.0.1", Some("10.244.3.0/24"), None),
            node("e", "10.0.0.5", Some("192.168.0.0/24"), None),
        ];
        let want = desired(
            &nodes,
            "a",
            "10.0.0.1".parse().expect("ip"),
            cidr("10.244.0.0/16"),
            Backend::HostGw,
        );
        assert_eq!(
            want,
            BTreeMap::from([(cidr("10.244.1.0/24"), Hop::Gateway("10.0.0.2".parse().expect("ip")))]),
            "not itself, not a node without a range, not one sharing its address, not outside the cluster CIDR"
        );
    }

    #[test]
    fn vxlan_routes_need_the_remote_vtep_mac() {
        let nodes = [
            node(
                "a",
                "10.0.0.1",
                Some("10.244.0.0/24"),
                Some("aa:aa:aa:aa:aa:aa"),
            ),
            node(
                "b",
                "10.0.0.2",
                Some("10.244.1.0/24"),
                Some("bb:bb:bb:bb:bb:bb"),
            ),
            node("c", "10.0.0.3", Some("10.244.2.0/24"), None),
        ];
        let want = desired(
            &nodes,
            "a",
            "10.0.0.1".parse().expect("ip"),
            cidr("10.244.0.0/16"),
            Backend::Vxlan,
        );
        assert_eq!(
            want,
            BTreeMap::from([(
                cidr("10.244.1.0/24"),
                Hop::Vxlan {
                    vtep: "10.244.1.0".parse().expect("ip"),
                    mac: "bb:bb:bb:bb:bb:bb".into(),
                    node: "10.0.0.2".parse().expect("ip"),
                }
            )])
        );
    }
}
