//! The resources the API serves: one table, read by routing, discovery,
//! OpenAPI, storage keys, the table printers and the CLI.
//!
//! Each entry comes from its kind's file (`objects/pod.rs`, ...), which also
//! holds the kind's [`Strategy`]: adding a kind is adding that file and one
//! line to [`RESOURCES`].

use super::strategy::Strategy;

/// One served resource type.
#[derive(Clone, Copy)]
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
    /// The kind's rules: defaulting, validation, allocation, printing, types.
    pub strategy: &'static dyn Strategy,
}

impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        (self.group, self.version, self.plural) == (other.group, other.version, other.plural)
    }
}

impl Eq for Resource {}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resource")
            .field("group", &self.group)
            .field("version", &self.version)
            .field("kind", &self.kind)
            .field("plural", &self.plural)
            .finish_non_exhaustive()
    }
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

/// Every resource served, core group first: one line per kind, whose file
/// under `objects/` holds its [`Resource`] and [`Strategy`].
pub const RESOURCES: &[Resource] = &[
    super::namespace::RESOURCE,
    super::node::RESOURCE,
    super::pod::RESOURCE,
    super::service::RESOURCE,
    super::endpoints::RESOURCE,
    super::event::RESOURCE,
    super::deployment::RESOURCE,
    super::replicaset::RESOURCE,
    super::lease::RESOURCE,
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

/// The strategy of `resource`.
pub fn strategy(resource: &Resource) -> &'static dyn Strategy {
    resource.strategy
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
