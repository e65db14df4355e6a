//! The resources the API serves: one table, read by routing, discovery,
//! OpenAPI, storage keys and the CLI.

/// One served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group ("" for core).
    pub group: &'static str,
    /// API version ("v1").
    pub version: &'static str,
    /// Kind ("Pod").
    pub kind: &'static str,
    /// Kind of the list ("PodList").
    pub list_kind: &'static str,
    /// Plural, lower case: the URL segment and the storage key segment ("pods").
    pub plural: &'static str,
    /// Singular, lower case ("pod").
    pub singular: &'static str,
    /// kubectl short names ("po").
    pub short_names: &'static [&'static str],
    /// Namespaced (true) or cluster-scoped (false).
    pub namespaced: bool,
    /// Subresources served ("status", "scale", "binding", "log").
    pub subresources: &'static [&'static str],
    /// In kubectl's `all` category.
    pub in_all: bool,
}

impl Resource {
    /// `apiVersion` of objects: "v1" or "apps/v1".
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// URL prefix of the group version: "/api/v1" or "/apis/apps/v1".
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// Storage key prefix of all objects of this resource: `/registry/<plural>/`.
    pub fn key_prefix(&self) -> String {
        format!("/registry/{}/", self.plural)
    }

    /// Storage key prefix of this resource's objects in `namespace`
    /// (all objects when None or cluster-scoped).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("/registry/{}/{ns}/", self.plural),
            _ => self.key_prefix(),
        }
    }

    /// Storage key of one object: `/registry/<plural>/<namespace>/<name>` or
    /// `/registry/<plural>/<name>` for cluster-scoped resources.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("/registry/{}/{ns}/{name}", self.plural),
            _ => format!("/registry/{}/{name}", self.plural),
        }
    }
}

const ALL: bool = true;

/// Every resource served, core group first.
pub const RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        kind: "Namespace",
        list_kind: "NamespaceList",
        plural: "namespaces",
        singular: "namespace",
        short_names: &["ns"],
        namespaced: false,
        subresources: &["status"],
        in_all: false,
    },
    Resource {
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
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Pod",
        list_kind: "PodList",
        plural: "pods",
        singular: "pod",
        short_names: &["po"],
        namespaced: true,
        subresources: &["status", "binding", "log"],
        in_all: ALL,
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Service",
        list_kind: "ServiceList",
        plural: "services",
        singular: "service",
        short_names: &["svc"],
        namespaced: true,
        subresources: &["status"],
        in_all: ALL,
    },
    Resource {
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
    },
    Resource {
        group: "",
        version: "v1",
        kind: "Event",
        list_kind: "EventList",
        plural: "events",
        singular: "event",
        short_names: &["ev"],
        namespaced: true,
        subresources: &[],
        in_all: false,
    },
    Resource {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        list_kind: "DeploymentList",
        plural: "deployments",
        singular: "deployment",
        short_names: &["deploy"],
        namespaced: true,
        subresources: &["status", "scale"],
        in_all: ALL,
    },
    Resource {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        list_kind: "ReplicaSetList",
        plural: "replicasets",
        singular: "replicaset",
        short_names: &["rs"],
        namespaced: true,
        subresources: &["status", "scale"],
        in_all: ALL,
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        list_kind: "LeaseList",
        plural: "leases",
        singular: "lease",
        short_names: &[],
        namespaced: true,
        subresources: &[],
        in_all: false,
    },
];

/// The namespace of nodes' heartbeat Leases (Kubernetes' `kube-node-lease`).
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The group versions served, in discovery order.
pub const GROUP_VERSIONS: &[(&str, &str)] =
    &[("", "v1"), ("apps", "v1"), ("coordination.k8s.io", "v1")];

/// The resource served under `group`/`version` with plural `plural`.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource whose kind is `kind` (kinds are unique across groups here).
pub fn by_kind(kind: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.kind == kind)
}

/// Resolves what a user types (`po`, `pod`, `pods`, `deploy`, `deployments.apps`).
pub fn lookup(name: &str) -> Option<&'static Resource> {
    let lower = name.to_ascii_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((base, group)) => (base.to_owned(), Some(group.to_owned())),
        None => (lower, None),
    };
    RESOURCES.iter().find(|r| {
        group.as_deref().is_none_or(|g| g == r.group)
            && (r.plural == base
                || r.singular == base
                || r.short_names.contains(&base.as_str())
                || r.kind.eq_ignore_ascii_case(&base))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_resolves_what_users_type() {
        for (typed, plural) in [
            ("po", "pods"),
            ("pod", "pods"),
            ("Pods", "pods"),
            ("deploy", "deployments"),
            ("deployments.apps", "deployments"),
            ("rs", "replicasets"),
            ("svc", "services"),
            ("ep", "endpoints"),
            ("no", "nodes"),
            ("ns", "namespaces"),
        ] {
            assert_eq!(lookup(typed).map(|r| r.plural), Some(plural), "{typed}");
        }
        assert!(lookup("widgets").is_none());
    }

    #[test]
    fn keys_follow_kubernetes_layout() {
        let pods = by_plural("", "v1", "pods").expect("pods");
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        assert_eq!(
            pods.namespace_prefix(Some("default")),
            "/registry/pods/default/"
        );
        let nodes = by_kind("Node").expect("nodes");
        assert_eq!(nodes.key(None, "n1"), "/registry/nodes/n1");
        assert_eq!(
            by_kind("Deployment")
                .map(|r| r.group_version_path())
                .as_deref(),
            Some("/apis/apps/v1")
        );
    }
}
