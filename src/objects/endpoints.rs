//! Endpoints: the ready addresses behind a Service, written by the endpoints
//! controller.

use super::print::{col, meta_age, meta_name, typed, unreadable_row, Column, Row, AGE, NAME};
use super::registry::Resource;
use super::strategy::Strategy;
use k8s_openapi::api::core::v1 as k8s;
use serde_json::Value;

/// The rules of Endpoints objects.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints;

/// The resource served for this kind.
pub const RESOURCE: Resource = Resource {
    group: "",
    version: "v1",
    kind: "Endpoints",
    list_kind: "EndpointsList",
    plural: "endpoints",
    singular: "endpoints",
    short_names: &["ep"],
    namespaced: true,
    subresources: &[],
    in_all: false,
    strategy: &Endpoints,
};

/// The field types only this kind uses (grammar: [`super::types`]).
const TYPES: &str = "
core.EndpointAddress hostname:string ip:string nodeName:string
        targetRef:core.ObjectReference
core.EndpointPort appProtocol:string name:string port:integer protocol:string
core.EndpointSubset addresses:[core.EndpointAddress]
        notReadyAddresses:[core.EndpointAddress] ports:[core.EndpointPort]
core.Endpoints apiVersion:string kind:string metadata:meta.ObjectMeta
        subsets:[core.EndpointSubset]
";

/// kube-apiserver's Table columns for this kind (its printers.go).
const COLUMNS: &[Column] = &[
    NAME,
    col(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

impl Strategy for Endpoints {
    fn type_name(&self) -> Option<&'static str> {
        Some("core.Endpoints")
    }

    fn types(&self) -> &'static str {
        TYPES
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, obj: &Value, now: i64) -> Row {
        endpoints_row(obj, now)
    }
}

/// `formatEndpoints`: the first three `ip:port` (or bare IPs for subsets
/// without ports), then ` + N more...`; `<none>` without subsets.
fn format_endpoints(endpoints: &k8s::Endpoints) -> String {
    const MAXIMUM: usize = 3;
    let subsets = endpoints.subsets.as_deref().unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    let mut shown: Vec<String> = Vec::new();
    let mut count = 0usize;
    for subset in subsets {
        let addresses = subset.addresses.as_deref().unwrap_or_default();
        let ports = subset.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses.iter().take(MAXIMUM.saturating_sub(shown.len())) {
                shown.push(a.ip.clone());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for a in addresses.iter().take(MAXIMUM.saturating_sub(shown.len())) {
                let (ip, port) = (&a.ip, port.port);
                shown.push(if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                });
            }
        }
    }
    let joined = shown.join(",");
    if count > MAXIMUM {
        format!("{joined} + {} more...", count - MAXIMUM)
    } else {
        joined
    }
}

fn endpoints_row(obj: &Value, now: i64) -> Row {
    let Some(endpoints) = typed::<k8s::Endpoints>(obj) else {
        return unreadable_row(obj, now, COLUMNS);
    };
    Row::cells(vec![
        meta_name(&endpoints.metadata),
        Value::from(format_endpoints(&endpoints)),
        meta_age(&endpoints.metadata, now),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_fill_every_column_and_nothing_is_claimed() {
        let mut obj = json!({"metadata": {"name": "x", "namespace": "default"}});
        assert!(Endpoints.validate(&obj).is_empty());
        assert_eq!(
            Endpoints.row(&obj, 0).cells.len(),
            Endpoints.columns().len()
        );
        assert!(Endpoints.allocate(&mut obj).is_empty());
        assert!(Endpoints.release(&obj).is_empty());
        assert!(!Endpoints.validate(&json!({"metadata": {}})).is_empty());
    }
}
