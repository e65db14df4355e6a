//! The Endpoints controller: each Service with a selector gets an Endpoints
//! object of the same name listing its pods' IPs and ports.
//!
//! Pods that match the selector, have an IP and are not terminating are
//! listed: ready ones under `addresses`, the others under
//! `notReadyAddresses` (the service proxy sends traffic to ready ones only).
//! A Service port's `targetPort` is a number, or the name of a container
//! port resolved per pod; pods that resolve the ports alike share a subset.
//! Services without a selector keep whatever Endpoints users write.

use super::reconciler::{Action, Reconciler};
use crate::objects::selectors::Selector;
use crate::objects::{meta, pod};
use crate::store::informer::{Cache, Change, Snapshot};
use crate::store::{served, Writer};
use crate::store::{Error as StoreError, Store};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The Endpoints controller.
pub struct Controller {
    writer: Writer,
    cache: Cache,
}

/// The port a Service port reaches on `p`, if it resolves.
fn target_port(service_port: &Value, p: &Value) -> Option<i64> {
    match &service_port["targetPort"] {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => match name.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => pod::list(&p["spec"], "containers")
                .iter()
                .flat_map(|c| pod::list(c, "ports"))
                .find(|port| port["name"] == name.as_str())
                .and_then(|port| port["containerPort"].as_i64()),
        },
        Value::Null => service_port["port"].as_i64(),
        _ => None,
    }
}

/// A Service port resolved for one pod: (name, port, protocol).
type ResolvedPort = (String, i64, String);

/// The `subsets` of a Service's Endpoints given its selected pods.
pub fn subsets(service: &Value, pods: &[&Value]) -> Value {
    let ports = pod::list(&service["spec"], "ports");
    // Pods grouped by how they resolve the ports, so each subset's ports
    // hold for all its addresses.
    let mut groups: BTreeMap<Vec<ResolvedPort>, (Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for p in pods {
        let Some(ip) = p["status"]["podIP"].as_str().filter(|ip| !ip.is_empty()) else {
            continue;
        };
        if pod::is_terminating(p) {
            continue;
        }
        let resolved: Option<Vec<ResolvedPort>> = ports
            .iter()
            .map(|sp| {
                let port = target_port(sp, p)?;
                Some((
                    sp["name"].as_str().unwrap_or("").to_owned(),
                    port,
                    sp["protocol"].as_str().unwrap_or("TCP").to_owned(),
                ))
            })
            .collect();
        let Some(resolved) = resolved else { continue };
        let mut address = json!({
            "ip": ip,
            "targetRef": {"kind": "Pod", "namespace": meta::namespace(p), "name": meta::name(p),
                          "uid": p["metadata"]["uid"]},
        });
        if let Some(node) = pod::node_name(p) {
            address["nodeName"] = json!(node);
        }
        let entry = groups.entry(resolved).or_default();
        if pod::is_ready(p) {
            entry.0.push(address);
        } else {
            entry.1.push(address);
        }
    }
    let subsets: Vec<Value> = groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            let by_ip = |a: &Value, b: &Value| a["ip"].as_str().cmp(&b["ip"].as_str());
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            let ports: Vec<Value> = ports
                .into_iter()
                .map(|(name, port, protocol)| {
                    let mut p = json!({"port": port, "protocol": protocol});
                    if !name.is_empty() {
                        p["name"] = json!(name);
                    }
                    p
                })
                .collect();
            let mut subset = json!({"ports": ports});
            if !ready.is_empty() {
                subset["addresses"] = Value::Array(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = Value::Array(not_ready);
            }
            subset
        })
        .collect();
    Value::Array(subsets)
}

impl Controller {
    /// A controller writing through `ctx`, reading `cache`.
    pub fn new(ctx: Store, cache: Cache) -> Controller {
        Controller {
            writer: Writer::new(ctx),
            cache,
        }
    }
}

fn selector_of(service: &Value) -> Option<Selector> {
    let labels = service["spec"]["selector"].as_object()?;
    if labels.is_empty() {
        return None;
    }
    Selector::from_label_selector(&json!({"matchLabels": labels})).ok()
}

impl Reconciler for Controller {
    const NAME: &'static str = "endpoints";
    const WORKERS: usize = 2;

    fn keys(&self, change: &Change, snapshot: &Snapshot, out: &mut Vec<String>) {
        match change.resource {
            "services" => out.extend(change.object().map(|o| o.key.clone())),
            "endpoints" => {
                // Someone changed or removed an Endpoints we manage: restore it.
                if let Some(o) = change.object() {
                    out.push(format!("/registry/services/{}/{}", o.namespace(), o.name()));
                }
            }
            "pods" => {
                for version in [&change.old, &change.new].into_iter().flatten() {
                    let labels = meta::labels(&version.value);
                    for svc in snapshot.in_namespace("services", version.namespace()) {
                        if selector_of(&svc.value).is_some_and(|s| s.matches_labels(&labels)) {
                            out.push(svc.key.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }

    async fn reconcile(&self, key: &str) -> Result<Action, StoreError> {
        let (service, existing) = self.cache.read(|s| {
            let service = s.get("services", key).cloned();
            let endpoints_key = key.replacen("/registry/services/", "/registry/endpoints/", 1);
            (service, s.get("endpoints", &endpoints_key).cloned())
        });
        let Some(service) = service.filter(|s| !pod::is_terminating(&s.value)) else {
            // The Service is gone: so are its Endpoints (if it was ours to manage).
            if let Some(endpoints) = existing {
                self.writer.remove(served("Endpoints")?, &endpoints).await?;
            }
            return Ok(Action::Done);
        };
        let Some(selector) = selector_of(&service.value) else {
            return Ok(Action::Done);
        };
        let pods: Vec<Arc<crate::store::Object>> = self.cache.read(|s| {
            s.in_namespace("pods", service.namespace())
                .filter(|p| selector.matches_labels(&meta::labels(&p.value)))
                .cloned()
                .collect()
        });
        let values: Vec<&Value> = pods.iter().map(|p| &p.value).collect();
        let subsets = subsets(&service.value, &values);
        let labels = service.value["metadata"]["labels"].clone();
        match existing {
            Some(current) => {
                if current.value["subsets"] == subsets
                    && current.value["metadata"]["labels"] == labels
                {
                    return Ok(Action::Done);
                }
                let mut next = current.value.clone();
                next["subsets"] = subsets;
                next["metadata"]["labels"] = labels;
                self.writer
                    .update(served("Endpoints")?, &current, next)
                    .await?;
            }
            None => {
                let mut obj = json!({
                    "metadata": {"name": service.name(), "namespace": service.namespace()},
                    "subsets": subsets,
                });
                if labels.is_object() {
                    obj["metadata"]["labels"] = labels;
                }
                self.writer.create(served("Endpoints")?, obj).await?;
            }
        }
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_unready_pods_with_named_ports() {
        let service = json!({"spec": {"selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]}});
        let pod = |name: &str, ip: &str, ready: bool, port: i64| {
            json!({"metadata": {"name": name, "namespace": "default", "uid": name},
                "spec": {"nodeName": "n1", "containers": [{"ports": [{"name": "web", "containerPort": port}]}]},
                "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
        };
        let a = pod("a", "10.0.0.2", true, 8080);
        let b = pod("b", "10.0.0.1", true, 8080);
        let c = pod("c", "10.0.0.3", false, 8080);
        let d = pod("d", "10.0.0.4", true, 9090);
        let no_ip = json!({"metadata": {"name": "e"}, "spec": {}, "status": {}});
        let subsets = subsets(&service, &[&a, &b, &c, &d, &no_ip]);
        let subsets = subsets.as_array().expect("subsets");
        assert_eq!(subsets.len(), 2, "two port resolutions: {subsets:?}");
        let first = &subsets[0];
        assert_eq!(first["ports"][0]["port"], 8080);
        assert_eq!(first["ports"][0]["name"], "http");
        assert_eq!(first["addresses"][0]["ip"], "10.0.0.1", "sorted by IP");
        assert_eq!(first["addresses"][1]["ip"], "10.0.0.2");
        assert_eq!(first["notReadyAddresses"][0]["ip"], "10.0.0.3");
        assert_eq!(subsets[1]["ports"][0]["port"], 9090);
        assert_eq!(first["addresses"][0]["targetRef"]["name"], "b");
    }
}
