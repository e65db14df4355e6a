//! Services: a stable virtual IP (and, for NodePort and LoadBalancer, a port
//! on every node) in front of the pods their selector picks.
//!
//! A Service of type ClusterIP, NodePort or LoadBalancer gets a virtual IP
//! from [`SERVICE_CIDR`] (10.96.0.0/12, as kubeadm's default) unless it is
//! headless (`clusterIP: None`), and each port of a NodePort or LoadBalancer
//! Service a node port from [`NODE_PORTS`]. Each is a [`Claim`] on a key under
//! `/registry/ranges/` made in the same transaction as the Service, so two
//! Services can never hold the same IP or port.
//!
//! A Service owns only what its type allocates: an ExternalName Service holds
//! no IP and no node port, a ClusterIP Service no node port, and validation
//! refuses such fields on them (as Kubernetes does), so that deleting a
//! Service never gives back another Service's IP or port. Releases also name
//! their owner, so the store deletes a range key only while it still holds
//! this Service.

use super::claim::{self, Claim};
use super::print::{
    col, format_labels, meta_age, meta_name, or_none, typed, unreadable_row, wide, Column, Row,
    AGE, NAME,
};
use super::registry::Resource;
use super::strategy::{NameRule, Strategy};
use super::validate::{self, Errors};
use k8s_openapi::api::core::v1 as k8s;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The service CIDR, as text for messages.
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
/// Node port range, inclusive.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;
/// Store key prefix of cluster IP claims.
pub const IP_PREFIX: &str = "/registry/ranges/serviceips/";
/// Store key prefix of node port claims.
pub const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

/// The rules of Service objects.
#[derive(Debug, Clone, Copy)]
pub struct Services;

/// The resource served for this kind.
pub const RESOURCE: Resource = Resource {
    group: "",
    version: "v1",
    kind: "Service",
    list_kind: "ServiceList",
    plural: "services",
    singular: "service",
    short_names: &["svc"],
    namespaced: true,
    subresources: &["status"],
    in_all: true,
    strategy: &Services,
};
/// The field types only this kind uses (grammar: [`super::types`]).
const TYPES: &str = "
core.ClientIPConfig timeoutSeconds:integer
core.LoadBalancerIngress hostname:string ip:string ipMode:string ports:[core.PortStatus]
core.LoadBalancerStatus ingress:[core.LoadBalancerIngress]
core.PortStatus error:string port:integer protocol:string
core.Service apiVersion:string kind:string metadata:meta.ObjectMeta spec:core.ServiceSpec
        status:core.ServiceStatus
core.ServicePort appProtocol:string name:string nodePort:integer port:integer
        protocol:string targetPort:int-or-string
core.ServiceSpec allocateLoadBalancerNodePorts:boolean clusterIP:string clusterIPs:[string]
        externalIPs:[string] externalName:string externalTrafficPolicy:string
        healthCheckNodePort:integer internalTrafficPolicy:string ipFamilies:[string]
        ipFamilyPolicy:string loadBalancerClass:string loadBalancerIP:string
        loadBalancerSourceRanges:[string] ports:[core.ServicePort]@merge/port
        publishNotReadyAddresses:boolean selector:{string} sessionAffinity:string
        sessionAffinityConfig:core.SessionAffinityConfig trafficDistribution:string type:string
core.ServiceStatus conditions:[meta.Condition]@merge/type
        loadBalancer:core.LoadBalancerStatus
core.SessionAffinityConfig clientIP:core.ClientIPConfig
";
/// kube-apiserver's Table columns for this kind (its printers.go).
const COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP."),
    col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
    col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    col("Port(s)", "string", "The list of ports that are exposed by this service."),
    AGE,
    wide("Selector", "Route service traffic to pods with label keys and values matching this selector."),
];
impl Strategy for Services {
    fn type_name(&self) -> Option<&'static str> {
        Some("core.Service")
    }

    fn types(&self) -> &'static str {
        TYPES
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn default(&self, obj: &mut Value) {
        let Some(Value::Object(spec)) = obj.get_mut("spec") else {
            return;
        };
        spec.entry("type").or_insert(json!("ClusterIP"));
        spec.entry("sessionAffinity").or_insert(json!("None"));
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                port.entry("protocol").or_insert(json!("TCP"));
                if let Some(p) = port.get("port").cloned() {
                    port.entry("targetPort").or_insert(p);
                }
            }
        }
    }

    fn validate(&self, obj: &Value) -> Errors {
        let mut errors = validate::object(obj, self.name_rule());
        if obj.is_object() {
            spec(obj, None, &mut errors);
        }
        errors
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Errors {
        let mut errors = validate::object(new, self.name_rule());
        if new.is_object() {
            spec(new, Some(old), &mut errors);
        }
        super::strategy::immutable_fields(self.immutable(), old, new, &mut errors);
        errors
    }

    fn allocate(&self, svc: &mut Value) -> Vec<Claim> {
        let owner = claim::owner(svc);
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
                    key: ip_key(&ip),
                    owner: owner.clone(),
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
                        key: port_key(node_port),
                        owner: owner.clone(),
                    });
                }
            }
        }
        claims
    }

    /// The cluster IP is immutable (kept when the new version omits it) while
    /// the type has one; an ExternalName Service turned into another type
    /// gets one, and one turned into ExternalName gives its IP back. Node
    /// ports are kept for ports that omit them, new ones are taken and
    /// dropped ones released; a type without node ports drops them.
    fn reallocate(&self, old: &Value, new: &mut Value) -> Result<Vec<Claim>, Errors> {
        let owner = claim::owner(new);
        let mut claims = Vec::new();
        let old_ip = owned_ip(old);
        if wants_ip(new) {
            let given = new["spec"]["clusterIP"].as_str().map(str::to_owned);
            match (&old_ip, given.as_deref()) {
                (Some(ip), None | Some("")) => set_ip(new, ip),
                (Some(ip), Some(given)) if given != ip => return Err(immutable_ip(given)),
                (Some(_), Some(_)) => {}
                // Headless stays headless.
                (None, given) if wants_ip(old) => match given {
                    None | Some("" | "None") => set_ip(new, "None"),
                    Some(given) => return Err(immutable_ip(given)),
                },
                // From ExternalName: allocate as a create would.
                (None, given) => {
                    let ip = match given {
                        Some("None") => None,
                        Some(ip) if !ip.is_empty() => Some(ip.to_owned()),
                        _ => Some(random_ip()),
                    };
                    if let Some(ip) = ip {
                        set_ip(new, &ip);
                        claims.push(Claim::Take {
                            key: ip_key(&ip),
                            owner: owner.clone(),
                        });
                    }
                }
            }
        } else {
            if let Some(spec) = new["spec"].as_object_mut() {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
            if let Some(ip) = old_ip {
                claims.push(Claim::Release {
                    key: ip_key(&ip),
                    owner: Some(owner.clone()),
                });
            }
        }
        if wants_node_ports(new) {
            let old_by_port: Vec<(i64, i64)> = if wants_node_ports(old) {
                old["spec"]["ports"]
                    .as_array()
                    .map(|ports| {
                        ports
                            .iter()
                            .filter_map(|p| Some((p["port"].as_i64()?, p["nodePort"].as_i64()?)))
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
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
        let (before, after) = (owned_ports(old), owned_ports(new));
        for port in after.difference(&before) {
            claims.push(Claim::Take {
                key: port_key(*port),
                owner: owner.clone(),
            });
        }
        for port in before.difference(&after) {
            claims.push(Claim::Release {
                key: port_key(*port),
                owner: Some(owner.clone()),
            });
        }
        Ok(claims)
    }

    fn release(&self, svc: &Value) -> Vec<Claim> {
        let owner = claim::owner(svc);
        let mut claims: Vec<Claim> = owned_ip(svc)
            .map(|ip| Claim::Release {
                key: ip_key(&ip),
                owner: Some(owner.clone()),
            })
            .into_iter()
            .collect();
        claims.extend(owned_ports(svc).into_iter().map(|p| Claim::Release {
            key: port_key(p),
            owner: Some(owner.clone()),
        }));
        claims
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, obj: &Value, now: i64) -> Row {
        service_row(obj, now)
    }
}

fn ip_key(ip: &str) -> String {
    format!("{IP_PREFIX}{ip}")
}

fn port_key(port: i64) -> String {
    format!("{PORT_PREFIX}{port}")
}

fn immutable_ip(given: &str) -> Errors {
    let mut errors = Errors::default();
    errors.invalid(
        "spec.clusterIP",
        format!("Invalid value: {given:?}: field is immutable"),
    );
    errors
}

/// Checks `spec`; `old` is the version an update replaces (whose IP and node
/// ports the update may still carry while changing the type: they are
/// dropped by [`Strategy::reallocate`]).
fn spec(obj: &Value, old: Option<&Value>, errors: &mut Errors) {
    let Some(spec) = obj.get("spec") else {
        errors.required("spec");
        return;
    };
    let kind = spec.get("type");
    if let Some(kind) = kind {
        if !matches!(
            kind.as_str(),
            Some("ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName")
        ) {
            validate::not_supported(
                "spec.type",
                kind,
                &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
                errors,
            );
        }
    }
    validate::string_map(spec.get("selector"), "spec.selector", errors);
    let kind = kind.and_then(Value::as_str).unwrap_or("ClusterIP");
    if kind == "ExternalName" {
        let old_ip = old.and_then(owned_ip);
        match spec.get("clusterIP") {
            None => {}
            Some(Value::String(ip)) if ip.is_empty() || ip == "None" => {}
            Some(Value::String(ip)) if old_ip.as_deref() == Some(ip.as_str()) => {}
            Some(_) => validate::forbidden(
                "spec.clusterIP",
                "may not be set for ExternalName services",
                errors,
            ),
        }
        match spec.get("externalName").and_then(Value::as_str) {
            None | Some("") => errors.required("spec.externalName"),
            Some(name) => {
                if let Some(message) = validate::dns1123_subdomain(name.trim_end_matches('.')) {
                    errors.invalid("spec.externalName", message);
                }
            }
        }
    }
    // Node ports belong to NodePort and LoadBalancer Services; an update
    // away from those may still carry them (they are dropped).
    let ports_allowed =
        matches!(kind, "NodePort" | "LoadBalancer") || old.is_some_and(wants_node_ports);
    if let Some(ports) = spec.get("ports") {
        match ports.as_array() {
            None => errors.invalid("spec.ports", "must be an array"),
            Some(ports) => {
                for (i, p) in ports.iter().enumerate() {
                    validate::port_number(
                        p.get("port"),
                        &format!("spec.ports[{i}].port"),
                        true,
                        errors,
                    );
                    if let Some(node_port) = p.get("nodePort").filter(|n| !n.is_null()) {
                        if ports_allowed {
                            validate::port_number(
                                Some(node_port),
                                &format!("spec.ports[{i}].nodePort"),
                                false,
                                errors,
                            );
                        } else {
                            validate::forbidden(
                                format!("spec.ports[{i}].nodePort"),
                                format!("may not be used when `type` is '{kind}'"),
                                errors,
                            );
                        }
                    }
                }
            }
        }
    }
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

/// The cluster IP a Service holds: one its type allocates, not headless.
fn owned_ip(svc: &Value) -> Option<String> {
    if !wants_ip(svc) {
        return None;
    }
    svc["spec"]["clusterIP"]
        .as_str()
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .map(str::to_owned)
}

/// The node ports a Service holds: none unless its type allocates them.
fn owned_ports(svc: &Value) -> BTreeSet<i64> {
    if !wants_node_ports(svc) {
        return BTreeSet::new();
    }
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

/// `getServiceExternalIP` (wide, as the server always prints).
fn service_external_ip(service: &k8s::Service, kind: &str) -> String {
    let spec = service.spec.as_ref();
    let external: Vec<&str> = spec
        .and_then(|s| s.external_ips.as_deref())
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect();
    match kind {
        "ClusterIP" | "NodePort" => or_none(&external.join(",")),
        "LoadBalancer" => {
            let ingresses = service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_deref())
                .unwrap_or_default();
            let mut ingress: Vec<&str> = Vec::new();
            for i in ingresses {
                let address = match i.ip.as_deref().unwrap_or("") {
                    "" => i.hostname.as_deref().unwrap_or(""),
                    ip => ip,
                };
                if !address.is_empty() && !ingress.contains(&address) {
                    ingress.push(address);
                }
            }
            ingress.extend(external);
            if ingress.is_empty() {
                "<pending>".to_owned()
            } else {
                ingress.join(",")
            }
        }
        "ExternalName" => spec
            .and_then(|s| s.external_name.clone())
            .unwrap_or_default(),
        _ => "<unknown>".to_owned(),
    }
}

/// `printService`: PORT(S) is `port/PROTO` or `port:nodePort/PROTO`.
fn service_row(obj: &Value, now: i64) -> Row {
    let Some(service) = typed::<k8s::Service>(obj) else {
        return unreadable_row(obj, now, COLUMNS);
    };
    let spec = service.spec.clone().unwrap_or_default();
    // kube defaults an unset type to ClusterIP and protocol to TCP.
    let kind = match spec.type_.as_deref().unwrap_or("") {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = match spec.cluster_ips.as_deref().and_then(<[_]>::first) {
        Some(ip) => ip.as_str(),
        None => spec.cluster_ip.as_deref().unwrap_or(""),
    };
    let ports: Vec<String> = spec
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let protocol = match p.protocol.as_deref().unwrap_or("") {
                "" => "TCP",
                proto => proto,
            };
            match p.node_port.unwrap_or(0) {
                n if n > 0 => format!("{}:{n}/{protocol}", p.port),
                _ => format!("{}/{protocol}", p.port),
            }
        })
        .collect();
    Row::cells(vec![
        meta_name(&service.metadata),
        Value::from(kind),
        Value::from(or_none(cluster_ip)),
        Value::from(service_external_ip(&service, kind)),
        Value::from(or_none(&ports.join(","))),
        meta_age(&service.metadata, now),
        Value::from(format_labels(spec.selector.as_ref())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn fields(errors: Errors) -> Vec<(String, &'static str)> {
        errors.0.into_iter().map(|e| (e.field, e.reason)).collect()
    }

    #[test]
    fn allocation_fills_and_claims() {
        let mut svc = svc(
            json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 443, "nodePort": 30443}]}),
        );
        let claims = Services.allocate(&mut svc);
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
        assert!(claims
            .iter()
            .all(|c| matches!(c, Claim::Take { owner, .. } if owner == "default/web")));
        assert_eq!(Services.release(&svc).len(), 3);

        let mut headless = json!({"spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
        assert!(Services.allocate(&mut headless).is_empty());
    }

    #[test]
    fn updates_keep_ip_and_ports() {
        let old = svc(
            json!({"type": "NodePort", "clusterIP": "10.96.3.4", "ports": [{"port": 80, "nodePort": 30080}]}),
        );
        let mut new = svc(
            json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "nodePort": 30081}]}),
        );
        let claims = Services.reallocate(&old, &mut new).expect("reallocate");
        assert_eq!(new["spec"]["clusterIP"], "10.96.3.4");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(
            claims,
            vec![Claim::Take {
                key: format!("{PORT_PREFIX}30081"),
                owner: "default/web".into()
            }]
        );
        let mut moved = svc(json!({"clusterIP": "10.96.9.9"}));
        let errors = Services
            .reallocate(&old, &mut moved)
            .expect_err("immutable");
        assert_eq!(errors.0[0].field, "spec.clusterIP");
        assert!(errors.0[0].message.ends_with("field is immutable"));
        let mut cluster_ip = svc(json!({"type": "ClusterIP", "ports": [{"port": 80}]}));
        let claims = Services
            .reallocate(&old, &mut cluster_ip)
            .expect("reallocate");
        assert_eq!(
            claims,
            vec![Claim::Release {
                key: format!("{PORT_PREFIX}30080"),
                owner: Some("default/web".into()),
            }]
        );
    }

    #[test]
    fn type_changes_take_and_give_back_the_ip() {
        let cluster_ip = svc(json!({"type": "ClusterIP", "clusterIP": "10.96.3.4"}));
        let mut external = svc(
            json!({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "10.96.3.4"}),
        );
        assert!(Services.validate_update(&cluster_ip, &external).is_empty());
        let claims = Services
            .reallocate(&cluster_ip, &mut external)
            .expect("reallocate");
        assert!(external["spec"].get("clusterIP").is_none());
        assert_eq!(
            claims,
            vec![Claim::Release {
                key: format!("{IP_PREFIX}10.96.3.4"),
                owner: Some("default/web".into()),
            }]
        );
        let mut back = svc(json!({"type": "ClusterIP"}));
        let claims = Services
            .reallocate(&external, &mut back)
            .expect("reallocate");
        let ip = back["spec"]["clusterIP"].as_str().expect("an IP");
        assert_eq!(
            claims,
            vec![Claim::Take {
                key: format!("{IP_PREFIX}{ip}"),
                owner: "default/web".into(),
            }]
        );
    }

    #[test]
    fn each_type_carries_only_what_it_allocates() {
        // ExternalName: a name, no cluster IP.
        let named_ip = svc(
            json!({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "10.96.3.4"}),
        );
        assert_eq!(
            fields(Services.validate(&named_ip)),
            vec![("spec.clusterIP".to_owned(), "FieldValueForbidden")]
        );
        assert_eq!(
            fields(Services.validate(&svc(json!({"type": "ExternalName"})))),
            vec![("spec.externalName".to_owned(), "FieldValueRequired")]
        );
        let fine = svc(json!({"type": "ExternalName", "externalName": "db.example.com."}));
        assert!(Services.validate(&fine).is_empty());
        // ClusterIP: no node port; headless is fine.
        let with_node_port =
            svc(json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}]}));
        assert_eq!(
            fields(Services.validate(&with_node_port)),
            vec![("spec.ports[0].nodePort".to_owned(), "FieldValueForbidden")]
        );
        let headless =
            svc(json!({"type": "ClusterIP", "clusterIP": "None", "ports": [{"port": 80}]}));
        assert!(Services.validate(&headless).is_empty());
        // An update from NodePort may still carry the ports it drops.
        let node_port =
            svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
        assert!(Services
            .validate_update(&node_port, &with_node_port)
            .is_empty());
        // Deleting gives back only what the type allocates.
        assert!(Services.release(&named_ip).is_empty());
        assert!(Services
            .release(&svc(json!({"type": "ClusterIP", "clusterIP": "None", "ports": [{"port": 80, "nodePort": 30080}]})))
            .is_empty());
    }

    #[test]
    fn defaults_and_names() {
        let mut obj = svc(json!({"ports": [{"port": 80}]}));
        Services.default(&mut obj);
        assert_eq!(obj["spec"]["type"], "ClusterIP");
        assert_eq!(obj["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(obj["spec"]["ports"][0]["targetPort"], 80);
        // Service names are DNS labels: no dots.
        let dotted = json!({"metadata": {"name": "a.b"}, "spec": {}});
        assert_eq!(
            fields(Services.validate(&dotted)),
            vec![("metadata.name".to_owned(), "FieldValueInvalid")]
        );
    }
}
