//! Cluster IPs and node ports for Services.
//!
//! A Service of type ClusterIP, NodePort or LoadBalancer gets a virtual IP
//! from [`SERVICE_CIDR`] (10.96.0.0/12, as kubeadm's default), and each port of
//! a NodePort or LoadBalancer Service a node port from [`NODE_PORTS`]. Each
//! allocation is a key in the store (`/registry/ranges/...`) created in the
//! same transaction as the Service, so two Services can never hold the same IP
//! or port, and deleted in the same transaction that deletes it.

use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The service CIDR, as text for messages.
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
/// Node port range, inclusive.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;
const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

/// A store key a write takes (must not exist) or gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Create `key` (owned by `owner`, `NAMESPACE/NAME`) or fail the write.
    Take {
        /// The range key.
        key: String,
        /// Who holds it.
        owner: String,
    },
    /// Delete `key`.
    Release {
        /// The range key.
        key: String,
    },
}

fn random_ip() -> String {
    // 10.96.0.0/12 spans 10.96.0.0 - 10.111.255.255; skip the network
    // address and 10.96.0.1 (Kubernetes gives it to the `kubernetes` Service).
    loop {
        let offset: u32 = rand::random::<u32>() & 0x000f_ffff;
        if offset > 1 && offset != 0x000f_ffff {
            let ip = 0x0a60_0000u32 + offset;
            return std::net::Ipv4Addr::from(ip).to_string();
        }
    }
}

fn random_port() -> u16 {
    let span = u32::from(NODE_PORTS.end() - NODE_PORTS.start()) + 1;
    NODE_PORTS.start() + u16::try_from(rand::random::<u32>() % span).unwrap_or(0)
}

fn wants_ip(svc: &Value) -> bool {
    svc["spec"]["type"].as_str() != Some("ExternalName")
}

fn wants_node_ports(svc: &Value) -> bool {
    matches!(
        svc["spec"]["type"].as_str(),
        Some("NodePort" | "LoadBalancer")
    )
}

/// The cluster IP a Service holds, if it holds one.
fn held_ip(svc: &Value) -> Option<String> {
    svc["spec"]["clusterIP"]
        .as_str()
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .map(str::to_owned)
}

fn held_ports(svc: &Value) -> BTreeSet<i64> {
    svc["spec"]["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p["nodePort"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}

fn set_ip(svc: &mut Value, ip: &str) {
    svc["spec"]["clusterIP"] = json!(ip);
    svc["spec"]["clusterIPs"] = json!([ip]);
}

/// Fills what a new Service needs (a cluster IP unless headless, node ports
/// for NodePort/LoadBalancer) and returns the claims to make with it. Values
/// the user gave are claimed as given.
pub fn allocate(svc: &mut Value, owner: &str) -> Vec<Claim> {
    let mut claims = Vec::new();
    if wants_ip(svc) {
        let ip = match svc["spec"]["clusterIP"].as_str() {
            Some("None") => None,
            Some(ip) if !ip.is_empty() => Some(ip.to_owned()),
            _ => Some(random_ip()),
        };
        if let Some(ip) = ip {
            set_ip(svc, &ip);
            claims.push(Claim::Take {
                key: format!("{IP_PREFIX}{ip}"),
                owner: owner.into(),
            });
        }
    }
    if wants_node_ports(svc) {
        if let Some(ports) = svc["spec"]["ports"].as_array_mut() {
            for port in ports.iter_mut() {
                let node_port = match port["nodePort"].as_i64() {
                    Some(p) => p,
                    None => {
                        let p = i64::from(random_port());
                        port["nodePort"] = json!(p);
                        p
                    }
                };
                claims.push(Claim::Take {
                    key: format!("{PORT_PREFIX}{node_port}"),
                    owner: owner.into(),
                });
            }
        }
    }
    claims
}

/// On update: the cluster IP is immutable (kept when the new version omits
/// it), node ports are kept for ports that omit them, new ones are taken and
/// dropped ones released.
///
/// # Errors
/// A message when the update changes the cluster IP.
pub fn reallocate(old: &Value, new: &mut Value, owner: &str) -> Result<Vec<Claim>, String> {
    let mut claims = Vec::new();
    let old_ip = held_ip(old);
    match (&old_ip, new["spec"]["clusterIP"].as_str()) {
        (Some(ip), None | Some("")) => set_ip(new, ip),
        (Some(ip), Some(given)) if given != ip => {
            return Err(format!(
                "spec.clusterIP: Invalid value: {given:?}: field is immutable"
            ))
        }
        _ => {}
    }
    if wants_node_ports(new) {
        let old_by_port: Vec<(i64, i64)> = old["spec"]["ports"]
            .as_array()
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|p| Some((p["port"].as_i64()?, p["nodePort"].as_i64()?)))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(ports) = new["spec"]["ports"].as_array_mut() {
            for port in ports.iter_mut().filter(|p| p["nodePort"].is_null()) {
                let kept = port["port"]
                    .as_i64()
                    .and_then(|n| old_by_port.iter().find(|(p, _)| *p == n).map(|(_, np)| *np));
                port["nodePort"] = json!(kept.unwrap_or_else(|| i64::from(random_port())));
            }
        }
    } else if let Some(ports) = new["spec"]["ports"].as_array_mut() {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            port.remove("nodePort");
        }
    }
    let (before, after) = (held_ports(old), held_ports(new));
    for port in after.difference(&before) {
        claims.push(Claim::Take {
            key: format!("{PORT_PREFIX}{port}"),
            owner: owner.into(),
        });
    }
    for port in before.difference(&after) {
        claims.push(Claim::Release {
            key: format!("{PORT_PREFIX}{port}"),
        });
    }
    Ok(claims)
}

/// What deleting a Service gives back.
pub fn release(svc: &Value) -> Vec<Claim> {
    let mut claims: Vec<Claim> = held_ip(svc)
        .map(|ip| Claim::Release {
            key: format!("{IP_PREFIX}{ip}"),
        })
        .into_iter()
        .collect();
    claims.extend(held_ports(svc).into_iter().map(|p| Claim::Release {
        key: format!("{PORT_PREFIX}{p}"),
    }));
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_fills_and_claims() {
        let mut svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443, "nodePort": 30443}]}});
        let claims = allocate(&mut svc, "default/web");
        let ip = svc["spec"]["clusterIP"].as_str().expect("ip").to_owned();
        assert!(ip.starts_with("10."), "{ip}");
        let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
        assert!(
            (96..=111).contains(&octets[1]),
            "{ip} outside {SERVICE_CIDR}"
        );
        assert_eq!(svc["spec"]["ports"][1]["nodePort"], 30443);
        let first = svc["spec"]["ports"][0]["nodePort"]
            .as_i64()
            .expect("node port");
        assert!(NODE_PORTS.contains(&u16::try_from(first).expect("u16")));
        assert_eq!(claims.len(), 3);
        assert_eq!(release(&svc).len(), 3);

        let mut headless = json!({"spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
        assert!(allocate(&mut headless, "x").is_empty());
    }

    #[test]
    fn updates_keep_ip_and_ports() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.3.4", "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "nodePort": 30081}]}});
        let claims = reallocate(&old, &mut new, "default/web").expect("reallocate");
        assert_eq!(new["spec"]["clusterIP"], "10.96.3.4");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(
            claims,
            vec![Claim::Take {
                key: format!("{PORT_PREFIX}30081"),
                owner: "default/web".into()
            }]
        );
        let mut moved = json!({"spec": {"clusterIP": "10.96.9.9"}});
        assert!(reallocate(&old, &mut moved, "x").is_err());
        let mut cluster_ip = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        let claims = reallocate(&old, &mut cluster_ip, "x").expect("reallocate");
        assert_eq!(
            claims,
            vec![Claim::Release {
                key: format!("{PORT_PREFIX}30080")
            }]
        );
    }
}
