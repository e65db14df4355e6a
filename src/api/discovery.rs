//! API discovery: the documents kubectl reads to learn which resources this
//! server has, their kinds, scopes, verbs and short names.
//!
//! Two forms are served, both built from [`RESOURCES`] so a
//! resource added there is discovered with no further edit:
//!
//! - **Legacy**: `/api` (`APIVersions`), `/apis` (`APIGroupList`), then one
//!   `APIResourceList` per group version (`/api/v1`, `/apis/apps/v1`). A client
//!   needs 2 + one request per group version.
//! - **Aggregated** (`apidiscovery.k8s.io/v2`): `/api` and `/apis` each answer
//!   an `APIGroupDiscoveryList` holding every resource, so two requests do.
//!   kubectl 1.32 asks for it in its Accept header, and decides which form it
//!   got from the response *Content-Type* alone: the aggregated body must go out
//!   as [`AGGREGATED_CONTENT_TYPE`], and anything else is read as legacy.
//!
//! Every function here is pure: the HTTP layer picks the form
//! ([`wants_aggregated`]) and sets the Content-Type.

use crate::objects::registry::{Resource, GROUP_VERSIONS, RESOURCES};
use serde_json::{json, Map, Value};

/// Content-Type to answer aggregated discovery with.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Verbs of every top-level resource: everything the REST layer serves.
const RESOURCE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The kubectl category a resource with `in_all` belongs to.
const CATEGORY_ALL: &str = "all";

/// What a subresource answers with and which verbs it takes.
struct Subresource {
    /// Group and version of the response kind when it differs from the
    /// parent's group version (`deployments/scale` answers `autoscaling/v1`).
    group_version: Option<(&'static str, &'static str)>,
    kind: &'static str,
    verbs: &'static [&'static str],
}

/// Kubernetes' conventions for the subresources the registry names.
fn subresource(resource: &Resource, name: &str) -> Subresource {
    let own = |verbs| Subresource {
        group_version: None,
        kind: resource.kind,
        verbs,
    };
    match name {
        "status" => own(&["get", "patch", "update"]),
        "scale" => Subresource {
            group_version: Some(("autoscaling", "v1")),
            kind: "Scale",
            verbs: &["get", "patch", "update"],
        },
        "binding" => Subresource {
            group_version: None,
            kind: "Binding",
            verbs: &["create"],
        },
        "eviction" => Subresource {
            group_version: Some(("policy", "v1")),
            kind: "Eviction",
            verbs: &["create"],
        },
        "finalize" => own(&["update"]),
        // `log` (text) and anything unforeseen: read-only, answered by the
        // parent's kind as upstream lists `pods/log`.
        _ => own(&["get"]),
    }
}

/// The resources of one group version, in registry order.
fn resources_of<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// A resource's subresource names, sorted as kube-apiserver lists them.
fn sorted_subresources(resource: &Resource) -> Vec<&'static str> {
    let mut names = resource.subresources.to_vec();
    names.sort_unstable();
    names
}

/// `groupVersion` string: "v1" for core, "apps/v1" otherwise.
fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// The non-core groups in discovery order, each with its versions
/// (preferred first, as [`GROUP_VERSIONS`] orders them).
fn named_groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for &(group, version) in GROUP_VERSIONS.iter().filter(|(g, _)| !g.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, versions)) => versions.push(version),
            None => groups.push((group, vec![version])),
        }
    }
    groups
}

/// Legacy `/api` (APIVersions). `server_address`: "HOST:PORT" for
/// `serverAddressByClientCIDRs`.
pub fn api_versions(server_address: &str) -> Value {
    let versions: Vec<&str> = GROUP_VERSIONS
        .iter()
        .filter(|(group, _)| group.is_empty())
        .map(|&(_, version)| version)
        .collect();
    json!({
        "kind": "APIVersions",
        "versions": versions,
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    })
}

/// Legacy `/apis` (APIGroupList) — every non-core group in [`RESOURCES`].
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = named_groups()
        .into_iter()
        .map(|(group, versions)| {
            let entries: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": group_version(group, v), "version": v}))
                .collect();
            let preferred = entries.first().cloned().unwrap_or(Value::Null);
            json!({"name": group, "versions": entries, "preferredVersion": preferred})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/api/v1` or `/apis/apps/v1` (APIResourceList), including subresource
/// entries such as `pods/status`, `deployments/scale` (group `autoscaling`,
/// version `v1`, kind `Scale`), `pods/binding` (kind `Binding`) and `pods/log`.
/// None for a group version that is not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if !GROUP_VERSIONS.contains(&(group, version)) {
        return None;
    }
    let mut entries = Vec::new();
    for resource in resources_of(group, version) {
        let mut entry = Map::new();
        entry.insert("name".into(), resource.plural.into());
        entry.insert("singularName".into(), resource.singular.into());
        entry.insert("namespaced".into(), resource.namespaced.into());
        entry.insert("kind".into(), resource.kind.into());
        entry.insert("verbs".into(), json!(RESOURCE_VERBS));
        if !resource.short_names.is_empty() {
            entry.insert("shortNames".into(), json!(resource.short_names));
        }
        if resource.in_all {
            entry.insert("categories".into(), json!([CATEGORY_ALL]));
        }
        entries.push(Value::Object(entry));
        for name in sorted_subresources(resource) {
            let sub = subresource(resource, name);
            let mut entry = Map::new();
            entry.insert("name".into(), format!("{}/{name}", resource.plural).into());
            entry.insert("singularName".into(), "".into());
            entry.insert("namespaced".into(), resource.namespaced.into());
            if let Some((g, v)) = sub.group_version {
                entry.insert("group".into(), g.into());
                entry.insert("version".into(), v.into());
            }
            entry.insert("kind".into(), sub.kind.into());
            entry.insert("verbs".into(), json!(sub.verbs));
            entries.push(Value::Object(entry));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": entries,
    }))
}

/// True when an Accept header asks for aggregated discovery v2: a media type
/// `application/json` with the parameters `g=apidiscovery.k8s.io`, `v=v2` and
/// `as=APIGroupDiscoveryList` (any order, others allowed), among
/// comma-separated types.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|media_type| {
        let mut parts = media_type.split(';').map(str::trim);
        let essence = parts.next().unwrap_or_default();
        if !essence.eq_ignore_ascii_case("application/json") {
            return false;
        }
        let (mut g, mut v, mut as_) = (false, false, false);
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim() {
                "g" => g = value == "apidiscovery.k8s.io",
                "v" => v = value == "v2",
                "as" => as_ = value == "APIGroupDiscoveryList",
                _ => {}
            }
        }
        g && v && as_
    })
}

/// `responseKind` of aggregated discovery: empty group and version mean
/// "the group version being described".
fn response_kind(group_version: Option<(&str, &str)>, kind: &str) -> Value {
    let (group, version) = group_version.unwrap_or(("", ""));
    json!({"group": group, "version": version, "kind": kind})
}

/// One `APIVersionDiscovery`: every resource of a group version.
fn version_discovery(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = resources_of(group, version)
        .map(|resource| {
            let subresources: Vec<Value> = sorted_subresources(resource)
                .into_iter()
                .map(|name| {
                    let sub = subresource(resource, name);
                    json!({
                        "subresource": name,
                        "responseKind": response_kind(sub.group_version, sub.kind),
                        "verbs": sub.verbs,
                    })
                })
                .collect();
            let mut entry = Map::new();
            entry.insert("resource".into(), resource.plural.into());
            entry.insert("responseKind".into(), response_kind(None, resource.kind));
            let scope = if resource.namespaced {
                "Namespaced"
            } else {
                "Cluster"
            };
            entry.insert("scope".into(), scope.into());
            entry.insert("singularResource".into(), resource.singular.into());
            entry.insert("verbs".into(), json!(RESOURCE_VERBS));
            if !resource.short_names.is_empty() {
                entry.insert("shortNames".into(), json!(resource.short_names));
            }
            if resource.in_all {
                entry.insert("categories".into(), json!([CATEGORY_ALL]));
            }
            if !subresources.is_empty() {
                entry.insert("subresources".into(), subresources.into());
            }
            Value::Object(entry)
        })
        .collect();
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

/// Aggregated discovery for `/api` (`core: true`) or `/apis` (`core: false`):
/// an `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`, to be sent with
/// [`AGGREGATED_CONTENT_TYPE`].
pub fn aggregated(core: bool) -> Value {
    let groups: Vec<(&str, Vec<&str>)> = if core {
        let versions = GROUP_VERSIONS
            .iter()
            .filter(|(g, _)| g.is_empty())
            .map(|&(_, v)| v)
            .collect();
        vec![("", versions)]
    } else {
        named_groups()
    };
    let items: Vec<Value> = groups
        .into_iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| version_discovery(group, version))
                .collect();
            json!({"metadata": {"name": group}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kubectl 1.32's Accept header on `/api` and `/apis`.
    const KUBECTL_DISCOVERY_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
        list["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == name))
            .unwrap_or_else(|| panic!("{name} missing from {list}"))
    }

    #[test]
    fn accept_negotiation() {
        for (accept, aggregated) in [
            (KUBECTL_DISCOVERY_ACCEPT, true),
            ("application/json, */*", false),
            ("application/json", false),
            ("", false),
            // Parameter order and spacing do not matter.
            (
                "application/json; as=APIGroupDiscoveryList; v=v2; g=apidiscovery.k8s.io",
                true,
            ),
            // v2beta1 alone is not what we serve.
            (
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
                false,
            ),
            // Parameters of another media type do not count.
            (
                "application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                false,
            ),
            (
                "application/json;g=meta.k8s.io;v=v2;as=APIGroupDiscoveryList",
                false,
            ),
            ("application/json;as=Table;v=v1;g=meta.k8s.io", false),
        ] {
            assert_eq!(wants_aggregated(accept), aggregated, "{accept}");
        }
    }

    #[test]
    fn legacy_root_documents() {
        let api = api_versions("10.0.0.1:6443");
        assert_eq!(api["kind"], "APIVersions");
        assert_eq!(api["versions"], json!(["v1"]));
        assert_eq!(
            api["serverAddressByClientCIDRs"][0]["serverAddress"],
            "10.0.0.1:6443"
        );

        let apis = api_group_list();
        assert_eq!(apis["kind"], "APIGroupList");
        assert_eq!(apis["apiVersion"], "v1");
        let groups = apis["groups"].as_array().expect("groups");
        let expected: Vec<&str> = named_groups().iter().map(|(g, _)| *g).collect();
        assert!(expected.contains(&"apps"));
        assert_eq!(groups.len(), expected.len());
        let apps = groups
            .iter()
            .find(|g| g["name"] == "apps")
            .expect("apps group");
        assert_eq!(
            apps["preferredVersion"],
            json!({"groupVersion": "apps/v1", "version": "v1"})
        );
        assert_eq!(apps["versions"][0]["groupVersion"], "apps/v1");
        assert!(
            groups.iter().all(|g| g["name"] != ""),
            "core is not a group"
        );
    }

    #[test]
    fn every_resource_is_listed_with_its_attributes() {
        for resource in RESOURCES {
            let list = resource_list(resource.group, resource.version).expect("served");
            assert_eq!(list["kind"], "APIResourceList");
            assert_eq!(list["groupVersion"], resource.api_version());
            let e = entry(&list, resource.plural);
            assert_eq!(e["kind"], resource.kind);
            assert_eq!(e["singularName"], resource.singular);
            assert_eq!(e["namespaced"], resource.namespaced);
            assert_eq!(e["verbs"], json!(RESOURCE_VERBS));
            match resource.short_names {
                [] => assert!(e.get("shortNames").is_none()),
                names => assert_eq!(e["shortNames"], json!(names)),
            }
            if resource.in_all {
                assert_eq!(e["categories"], json!(["all"]), "{}", resource.plural);
            } else {
                assert!(e.get("categories").is_none(), "{}", resource.plural);
            }
            for sub in resource.subresources {
                let e = entry(&list, &format!("{}/{sub}", resource.plural));
                assert_eq!(e["singularName"], "");
                assert_eq!(e["namespaced"], resource.namespaced);
            }
        }
        let count: usize = GROUP_VERSIONS
            .iter()
            .filter_map(|(g, v)| resource_list(g, v))
            .map(|l| l["resources"].as_array().map_or(0, Vec::len))
            .sum();
        let expected: usize = RESOURCES.iter().map(|r| 1 + r.subresources.len()).sum();
        assert_eq!(count, expected, "no entry twice, none invented");
    }

    #[test]
    fn subresources_follow_kubernetes() {
        let core = resource_list("", "v1").expect("core");
        let apps = resource_list("apps", "v1").expect("apps");
        assert_eq!(
            entry(&apps, "deployments/scale"),
            &json!({"name": "deployments/scale", "singularName": "", "namespaced": true,
                    "group": "autoscaling", "version": "v1", "kind": "Scale",
                    "verbs": ["get", "patch", "update"]})
        );
        assert_eq!(entry(&apps, "replicasets/scale")["kind"], "Scale");
        assert_eq!(entry(&apps, "deployments/status")["kind"], "Deployment");
        assert!(entry(&apps, "deployments/status").get("group").is_none());
        assert_eq!(
            entry(&core, "pods/binding"),
            &json!({"name": "pods/binding", "singularName": "", "namespaced": true,
                    "kind": "Binding", "verbs": ["create"]})
        );
        assert_eq!(entry(&core, "pods/log")["kind"], "Pod");
        assert_eq!(entry(&core, "pods/log")["verbs"], json!(["get"]));
        assert_eq!(
            entry(&core, "pods/status")["verbs"],
            json!(["get", "patch", "update"])
        );
        assert_eq!(entry(&core, "nodes/status")["namespaced"], false);
        // Subresources follow their parent, sorted.
        let names: Vec<&str> = core["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .filter(|n| n.starts_with("pods"))
            .collect();
        assert_eq!(names, ["pods", "pods/binding", "pods/log", "pods/status"]);
    }

    #[test]
    fn unknown_group_versions_are_not_served() {
        assert!(resource_list("apps", "v2").is_none());
        assert!(resource_list("", "v2").is_none());
        assert!(resource_list("batch", "v1").is_none());
        assert!(resource_list("v1", "").is_none());
    }

    #[test]
    fn aggregated_documents() {
        let core = aggregated(true);
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = core["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "");
        let v1 = &items[0]["versions"][0];
        assert_eq!(v1["version"], "v1");
        assert_eq!(v1["freshness"], "Current");
        let pods = v1["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["resource"] == "pods"))
            .expect("pods");
        assert_eq!(
            pods["responseKind"],
            json!({"group": "", "version": "", "kind": "Pod"})
        );
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["singularResource"], "pod");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        let binding = pods["subresources"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["subresource"] == "binding"))
            .expect("binding");
        assert_eq!(binding["responseKind"]["kind"], "Binding");
        assert_eq!(binding["verbs"], json!(["create"]));

        let apis = aggregated(false);
        let items = apis["items"].as_array().expect("items");
        assert!(items.iter().all(|i| i["metadata"]["name"] != ""));
        let apps = items
            .iter()
            .find(|i| i["metadata"]["name"] == "apps")
            .expect("apps");
        let deployments = apps["versions"][0]["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["resource"] == "deployments"))
            .expect("deployments");
        let scale = deployments["subresources"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["subresource"] == "scale"))
            .expect("scale");
        assert_eq!(
            scale["responseKind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );

        // Every resource appears once, in the right document, with a kind.
        for resource in RESOURCES {
            let doc = aggregated(resource.group.is_empty());
            let found: Vec<&Value> = doc["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| i["metadata"]["name"] == resource.group)
                .flat_map(|i| i["versions"].as_array().into_iter().flatten())
                .filter(|v| v["version"] == resource.version)
                .flat_map(|v| v["resources"].as_array().into_iter().flatten())
                .filter(|r| r["resource"] == resource.plural)
                .collect();
            assert_eq!(found.len(), 1, "{}", resource.plural);
            let scope = if resource.namespaced {
                "Namespaced"
            } else {
                "Cluster"
            };
            assert_eq!(found[0]["scope"], scope);
            assert_eq!(found[0]["responseKind"]["kind"], resource.kind);
        }
    }
}
