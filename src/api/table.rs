//! Server-side printing: the `meta.k8s.io/v1` `Table` that `kubectl get` asks for.
//!
//! Stock kubectl no longer knows how to print Pods or Deployments: for every
//! human-readable `get` (default and `-o wide`) it sends
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,…` and prints the
//! columns and cells the server returns. Without a Table it can only print
//! `NAME AGE`. This module is the Flotilla counterpart of kube-apiserver's
//! printers (`pkg/printers/internalversion/printers.go`): given the JSON
//! objects of one resource it builds the Table, with the same column
//! definitions and the same cell text, so that `kubectl get po` reads exactly
//! as it does against Kubernetes.
//!
//! Invariants:
//! - Every row has one cell per column definition, wide (`priority: 1`)
//!   columns included: the server always generates all cells and kubectl
//!   hides the wide ones unless `-o wide`.
//! - Cells are JSON strings, or JSON numbers where kube's printer puts an
//!   integer (which is not always where the column `type` says `integer`:
//!   Deployment `Up-to-date` is typed `string` but carries a number, as
//!   upstream).
//! - Objects may be partial (a pod never scheduled, a service without
//!   status): missing fields read as empty, zero or `<none>`, never panic.
//! - Printing is pure: the caller passes `now` (Unix seconds) for the AGE
//!   column, so the same input gives the same Table.
//!
//! The columns and rows are each kind's, from its strategy
//! ([`crate::objects::Strategy::columns`] and
//! [`crate::objects::Strategy::row`], in the kind's file under `objects/`);
//! this module only wraps them in a Table.
//!
//! Where it sits: the API's list/get/watch handlers call [`wants_table`] on
//! the `Accept` header and, when true, answer [`table`] (content type
//! [`CONTENT_TYPE`]) instead of the plain object or list. A watch sends one
//! single-row Table per event; kube sends the column definitions only in the
//! first event (kubectl also accepts them on every event).

use crate::objects::print::{self, Column};
use crate::objects::registry;
use serde_json::{json, Map, Value};

/// Content type kube-apiserver answers a Table with.
pub const CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// True when an Accept header asks for a meta.k8s.io/v1 (or v1beta1) Table
/// (`application/json;as=Table;v=v1;g=meta.k8s.io`, parameters in any order),
/// possibly among several comma-separated media types: kubectl lists the
/// Table first and plain `application/json` as the fallback, so any Table
/// media type in the list means "send a Table".
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(is_table_media_type)
}

/// One media type of an Accept header: `application/json` with `as=Table`,
/// `g=meta.k8s.io` and `v=v1|v1beta1`.
fn is_table_media_type(media: &str) -> bool {
    let mut parts = media.split(';');
    let essence = parts.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    let (mut as_table, mut group, mut version) = (false, false, false);
    for param in parts {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match key.trim().to_ascii_lowercase().as_str() {
            "as" => as_table = value == "Table",
            "g" => group = value == "meta.k8s.io",
            "v" => version = value == "v1" || value == "v1beta1",
            _ => {}
        }
    }
    as_table && group && version
}

/// How much of each object a row carries (`includeObject` query:
/// `None` | `Metadata` (default) | `Object`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No `object` in rows.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default;
    /// kubectl needs it for `-A`, `--show-labels` and `-L`).
    #[default]
    Metadata,
    /// The whole object (kubectl asks for it with `--sort-by`).
    Object,
}

impl IncludeObject {
    /// Reads the `includeObject` query parameter; absent or unknown values
    /// mean [`IncludeObject::Metadata`], as kube-apiserver's default.
    pub fn parse(q: Option<&str>) -> IncludeObject {
        match q {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// A Table of `objects` (full JSON objects of the resource with plural
/// `plural`, e.g. "pods") as kube-apiserver prints it: `columnDefinitions`
/// (name, type, format, description, priority: 0 for default columns, 1 for
/// `-o wide` ones), then one row per object with its `cells` and an `object`
/// chosen by `include` (a `PartialObjectMetadata` for
/// [`IncludeObject::Metadata`], the whole object for
/// [`IncludeObject::Object`], absent for [`IncludeObject::None`]).
/// Succeeded and Failed pods also carry row `conditions`, as upstream.
///
/// `list_metadata` becomes the Table's `metadata`
/// (`{"resourceVersion": "...", "continue": ...}`; null becomes `{}`).
/// `now` is Unix seconds, for AGE. An unknown plural prints `Name` and `Age`.
pub fn table(
    plural: &str,
    objects: &[Value],
    list_metadata: Value,
    include: IncludeObject,
    now: i64,
) -> Value {
    // Every kind prints itself (its strategy); an unknown one as Name, Age.
    let strategy = registry::RESOURCES
        .iter()
        .find(|r| r.plural == plural)
        .map(|r| r.strategy);
    let column_defs = strategy.map_or(print::DEFAULT_COLUMNS, |s| s.columns());
    let columns: Vec<Value> = column_defs.iter().copied().map(Column::to_json).collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let printed = match strategy {
                Some(strategy) => strategy.row(object, now),
                None => print::default_row(object, now),
            };
            debug_assert_eq!(printed.cells.len(), column_defs.len(), "{plural}");
            let mut row = Map::new();
            row.insert("cells".to_owned(), Value::Array(printed.cells));
            if let Some(conditions) = printed.conditions {
                row.insert("conditions".to_owned(), conditions);
            }
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row.insert("object".to_owned(), partial_object_metadata(object));
                }
                IncludeObject::Object => {
                    row.insert("object".to_owned(), object.clone());
                }
            }
            Value::Object(row)
        })
        .collect();
    let metadata = if list_metadata.is_null() {
        json!({})
    } else {
        list_metadata
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The row object for `includeObject=Metadata`: the object's whole
/// `metadata`, as apiserver's `meta.AsPartialObjectMetadata`.
fn partial_object_metadata(object: &Value) -> Value {
    let metadata = match object.get("metadata") {
        Some(m) if m.is_object() => m.clone(),
        _ => json!({}),
    };
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::print::{
        elapsed, format_label_selector, human_duration, parse_rfc3339, selector_string, since,
    };

    /// 2026-11-25T04:00:00Z, the creation time of every fixture.
    const CREATED: i64 = 1_795_579_200;
    const TS: &str = "2026-11-25T04:00:00Z";

    fn cells(plural: &str, object: Value, now: i64) -> Vec<Value> {
        let t = table(plural, &[object], json!({}), IncludeObject::None, now);
        let row = &t["rows"][0];
        let cells = row["cells"].as_array().expect("cells").clone();
        assert_eq!(
            cells.len(),
            t["columnDefinitions"].as_array().expect("columns").len(),
            "one cell per column for {plural}"
        );
        cells
    }

    fn column_names(plural: &str) -> Vec<(String, i64)> {
        let t = table(plural, &[], json!({}), IncludeObject::None, 0);
        t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().expect("name").to_owned(),
                    c["priority"].as_i64().expect("priority"),
                )
            })
            .collect()
    }

    #[test]
    fn wants_table_on_kubectl_accept_headers() {
        for (accept, want) in [
            ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json", true),
            ("application/json;as=Table;v=v1;g=meta.k8s.io", true),
            ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", true),
            ("application/json; g=meta.k8s.io; v=v1; as=Table", true),
            ("application/json, application/json;as=Table;g=meta.k8s.io;v=v1", true),
            ("application/json", false),
            ("application/json, */*", false),
            ("application/vnd.kubernetes.protobuf,application/json", false),
            ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json", false),
            ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", false),
            ("application/json;as=Table;v=v2;g=meta.k8s.io", false),
            ("application/json;as=Table;v=v1", false),
            ("", false),
        ] {
            assert_eq!(wants_table(accept), want, "{accept}");
        }
    }

    #[test]
    fn include_object_parses_query() {
        assert_eq!(IncludeObject::parse(None), IncludeObject::Metadata);
        assert_eq!(
            IncludeObject::parse(Some("Metadata")),
            IncludeObject::Metadata
        );
        assert_eq!(IncludeObject::parse(Some("None")), IncludeObject::None);
        assert_eq!(IncludeObject::parse(Some("Object")), IncludeObject::Object);
        assert_eq!(IncludeObject::parse(Some("bogus")), IncludeObject::Metadata);
    }

    /// apimachinery `TestHumanDuration` and `TestHumanDurationBoundaries`,
    /// with sub-second offsets truncated to whole seconds.
    #[test]
    fn human_duration_matches_apimachinery() {
        const M: i64 = 60;
        const H: i64 = 3600;
        const D: i64 = 24 * H;
        const Y: i64 = 365 * D;
        for (seconds, want) in [
            (1, "1s"),
            (70, "70s"),
            (190, "3m10s"),
            (70 * M, "70m"),
            (47 * H, "47h"),
            (49 * H, "2d1h"),
            ((8 * 24 + 2) * H, "8d"),
            (367 * D, "367d"),
            (2 * Y + 25 * H, "2y1d"),
            (8 * Y + 2 * H, "8y"),
            // Boundaries.
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (2 * M - 1, "119s"),
            (2 * M, "2m"),
            (2 * M + 1, "2m1s"),
            (10 * M - 1, "9m59s"),
            (10 * M, "10m"),
            (10 * M + 1, "10m"),
            (3 * H - 1, "179m"),
            (3 * H, "3h"),
            (3 * H + M, "3h1m"),
            (8 * H - 1, "7h59m"),
            (8 * H, "8h"),
            (8 * H + 59 * M, "8h"),
            (2 * D - 1, "47h"),
            (2 * D, "2d"),
            (2 * D + H, "2d1h"),
            (8 * D - 1, "7d23h"),
            (8 * D, "8d"),
            (8 * D + 23 * H, "8d"),
            (2 * Y - 1, "729d"),
            (2 * Y, "2y"),
            (2 * Y + 23 * H, "2y"),
            (2 * Y + 23 * H + 59 * M, "2y"),
            (2 * Y + D - 1, "2y"),
            (2 * Y + D, "2y1d"),
            (3 * Y, "3y"),
            (4 * Y, "4y"),
            (5 * Y, "5y"),
            (6 * Y, "6y"),
            (7 * Y, "7y"),
            (8 * Y - 1, "7y364d"),
            (8 * Y, "8y"),
            (8 * Y + 364 * D, "8y"),
            (9 * Y, "9y"),
            // The examples kubectl users see.
            (45, "45s"),
            (200, "3m20s"),
            (2 * D + 5 * H, "2d5h"),
        ] {
            assert_eq!(human_duration(seconds), want, "{seconds}s");
        }
    }

    #[test]
    fn parses_rfc3339() {
        const NS: i128 = 1_000_000_000;
        for (text, want) in [
            ("1970-01-01T00:00:00Z", Some(0)),
            ("1969-12-31T23:59:59Z", Some(-NS)),
            (TS, Some(i128::from(CREATED) * NS)),
            ("2000-02-29T23:59:59Z", Some(951_868_799 * NS)),
            ("2024-03-01T12:30:45Z", Some(1_709_296_245 * NS)),
            ("2024-03-01T14:30:45+02:00", Some(1_709_296_245 * NS)),
            ("2024-03-01T11:30:45-01:00", Some(1_709_296_245 * NS)),
            ("2024-03-01T12:30:45.5Z", Some(1_709_296_245 * NS + NS / 2)),
            (
                "2024-03-01T12:30:45.123456Z",
                Some(1_709_296_245 * NS + 123_456_000),
            ),
            ("2024-03-01 12:30:45Z", Some(1_709_296_245 * NS)),
            ("2024-03-01T12:30:45", None),
            ("2024-13-01T12:30:45Z", None),
            ("2024-03-01T25:30:45Z", None),
            ("2024-03-01T12:30:45.Z", None),
            ("2024-03-01T12:30:45+0200", None),
            ("yesterday", None),
            ("", None),
        ] {
            assert_eq!(parse_rfc3339(text), want, "{text}");
        }
        // Go truncates the elapsed time toward zero.
        assert_eq!(elapsed(CREATED + 10, i128::from(CREATED) * NS + NS / 2), 9);
        assert_eq!(since(Some(&json!(TS)), CREATED + 200), "3m20s");
        assert_eq!(since(None, CREATED), "<unknown>");
        assert_eq!(since(Some(&json!("garbage")), CREATED), "<unknown>");
    }

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "uid": "u-1",
               "resourceVersion": "105", "creationTimestamp": TS, "labels": {"app": "web"}})
    }

    #[test]
    fn pod_rows_read_like_kubectl() {
        let running = json!({
            "metadata": meta("web-0"),
            "spec": {"nodeName": "node-1", "containers": [{"name": "web", "image": "nginx"}]},
            "status": {"phase": "Running", "podIP": "10.1.0.7", "podIPs": [{"ip": "10.1.0.7"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0,
                    "state": {"running": {"startedAt": TS}}}]}
        });
        let image_pull = json!({
            "metadata": meta("bad"),
            "spec": {"nodeName": "node-2", "containers": [{"name": "c", "image": "nope:1"}]},
            "status": {"phase": "Pending",
                "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}]}
        });
        let mut terminating_meta = meta("old");
        terminating_meta["deletionTimestamp"] = json!("2026-11-25T04:05:00Z");
        let terminating = json!({
            "metadata": terminating_meta,
            "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.1.0.9"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 1,
                     "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-25T04:08:00Z"}}},
                    {"name": "b", "ready": true, "restartCount": 2, "state": {"running": {}}}]}
        });
        let crash_loop = json!({
            "metadata": meta("crash"),
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running",
                "containerStatuses": [{"name": "c", "ready": false, "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                        "finishedAt": "2026-11-25T04:09:30Z"}}}]}
        });
        let completed = json!({
            "metadata": meta("job"),
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Succeeded",
                "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
        });
        let exit_code = json!({
            "metadata": meta("failed"),
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Failed",
                "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 3}}}]}
        });
        let init = json!({
            "metadata": meta("init"),
            "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending",
                "initContainerStatuses": [
                    {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                    {"name": "i2", "state": {"running": {}}}]}
        });
        let init_pull = json!({
            "metadata": meta("init-pull"),
            "spec": {"initContainers": [{"name": "i1"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending",
                "initContainerStatuses": [
                    {"name": "i1", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
        });
        let gated = json!({
            "metadata": meta("gated"),
            "spec": {"containers": [{"name": "c"}], "readinessGates": [
                {"conditionType": "example.com/a"}, {"conditionType": "example.com/b"}]},
            "status": {"phase": "Pending", "nominatedNodeName": "node-3", "conditions": [
                {"type": "example.com/a", "status": "True"},
                {"type": "example.com/b", "status": "False"}]}
        });
        let bare = json!({"metadata": {"name": "bare"}});

        let now = CREATED + 10 * 60;
        for (pod, want) in [
            (
                running,
                json!([
                    "web-0", "1/1", "Running", "0", "10m", "10.1.0.7", "node-1", "<none>", "<none>"
                ]),
            ),
            (
                image_pull,
                json!([
                    "bad",
                    "0/1",
                    "ErrImagePull",
                    "0",
                    "10m",
                    "<none>",
                    "node-2",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                terminating,
                json!([
                    "old",
                    "2/2",
                    "Terminating",
                    "3 (2m ago)",
                    "10m",
                    "10.1.0.9",
                    "node-1",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                crash_loop,
                json!([
                    "crash",
                    "0/1",
                    "CrashLoopBackOff",
                    "4 (30s ago)",
                    "10m",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                completed,
                json!([
                    "job",
                    "0/1",
                    "Completed",
                    "0",
                    "10m",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                exit_code,
                json!([
                    "failed",
                    "0/1",
                    "ExitCode:3",
                    "0",
                    "10m",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                init,
                json!([
                    "init", "0/1", "Init:1/2", "0", "10m", "<none>", "<none>", "<none>", "<none>"
                ]),
            ),
            (
                init_pull,
                json!([
                    "init-pull",
                    "0/1",
                    "Init:ImagePullBackOff",
                    "0",
                    "10m",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            (
                gated,
                json!(["gated", "0/1", "Pending", "0", "10m", "<none>", "<none>", "node-3", "1/2"]),
            ),
            (
                bare,
                json!([
                    "bare",
                    "0/0",
                    "",
                    "0",
                    "<unknown>",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
        ] {
            assert_eq!(Value::Array(cells("pods", pod, now)), want);
        }
    }

    #[test]
    fn completed_pods_carry_row_conditions() {
        let pod = json!({"metadata": meta("job"), "status": {"phase": "Succeeded"}});
        let t = table("pods", &[pod], json!({}), IncludeObject::None, CREATED);
        assert_eq!(t["rows"][0]["conditions"][0]["type"], "Completed");
        assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
        let pod = json!({"metadata": meta("web"), "status": {"phase": "Running"}});
        let t = table("pods", &[pod], json!({}), IncludeObject::None, CREATED);
        assert!(t["rows"][0].get("conditions").is_none());
    }

    #[test]
    fn deployment_and_replica_set_rows() {
        let template = json!({"spec": {"containers": [
            {"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}});
        let deployment = json!({
            "metadata": meta("web"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"}},
                     "template": template},
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        });
        assert_eq!(
            Value::Array(cells("deployments", deployment, CREATED + 3 * 3600)),
            json!([
                "web",
                "2/3",
                3,
                2,
                "3h",
                "web,log",
                "nginx:1.27,busybox",
                "app=web,tier=fe"
            ])
        );
        let rs = json!({
            "metadata": meta("web-6d4b"),
            "spec": {"replicas": 3, "template": template, "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                     {"key": "canary", "operator": "DoesNotExist"}]}},
            "status": {"replicas": 3, "readyReplicas": 1}
        });
        assert_eq!(
            Value::Array(cells("replicasets", rs, CREATED + 45)),
            json!([
                "web-6d4b",
                3,
                3,
                1,
                "45s",
                "web,log",
                "nginx:1.27,busybox",
                "app=web,!canary,env in (dev,prod)"
            ])
        );
        // Partial objects: zeroes, and selectors printed as upstream does.
        assert_eq!(
            Value::Array(cells(
                "deployments",
                json!({"metadata": {"name": "d"}}),
                CREATED
            )),
            json!(["d", "0/0", 0, 0, "<unknown>", "", "", ""])
        );
        assert_eq!(
            Value::Array(cells(
                "replicasets",
                json!({"metadata": {"name": "r"}}),
                CREATED
            )),
            json!(["r", 0, 0, 0, "<unknown>", "", "", "<none>"])
        );
    }

    #[test]
    fn selectors_format_like_apimachinery() {
        for (selector, want) in [
            (json!(null), Some("")),
            (json!({}), Some("")),
            (
                json!({"matchLabels": {"b": "2", "a": "1"}}),
                Some("a=1,b=2"),
            ),
            (
                json!({"matchExpressions": [{"key": "k", "operator": "NotIn", "values": ["y", "x"]}]}),
                Some("k notin (x,y)"),
            ),
            (
                json!({"matchExpressions": [{"key": "k", "operator": "Exists"}]}),
                Some("k"),
            ),
            (
                json!({"matchExpressions": [{"key": "k", "operator": "In", "values": []}]}),
                None,
            ),
            (
                json!({"matchExpressions": [{"key": "k", "operator": "Near"}]}),
                None,
            ),
        ] {
            assert_eq!(
                selector_string(Some(&selector)).as_deref(),
                want,
                "{selector}"
            );
        }
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(
            format_label_selector(Some(
                &json!({"matchExpressions": [{"key": "k", "operator": "?"}]})
            )),
            "<error>"
        );
    }

    #[test]
    fn service_rows() {
        let node_port = json!({
            "metadata": meta("web"),
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                     "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                               {"port": 53, "protocol": "UDP"}]}
        });
        let cluster_ip = json!({
            "metadata": meta("db"),
            "spec": {"clusterIP": "10.96.0.30", "ports": [{"port": 5432}]}
        });
        let headless = json!({
            "metadata": meta("peers"),
            "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
                     "selector": {"app": "db"}}
        });
        let load_balancer = json!({
            "metadata": meta("lb"),
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.40",
                     "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example"}]}}
        });
        let pending_lb = json!({"metadata": meta("lb2"), "spec": {"type": "LoadBalancer"}});
        let external_name = json!({"metadata": meta("ext"),
            "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        let now = CREATED + 49 * 3600;
        for (svc, want) in [
            (
                node_port,
                json!([
                    "web",
                    "NodePort",
                    "10.96.0.20",
                    "<none>",
                    "80:30080/TCP,53/UDP",
                    "2d1h",
                    "app=web"
                ]),
            ),
            (
                cluster_ip,
                json!([
                    "db",
                    "ClusterIP",
                    "10.96.0.30",
                    "<none>",
                    "5432/TCP",
                    "2d1h",
                    "<none>"
                ]),
            ),
            (
                headless,
                json!([
                    "peers",
                    "ClusterIP",
                    "None",
                    "<none>",
                    "<none>",
                    "2d1h",
                    "app=db"
                ]),
            ),
            (
                load_balancer,
                json!([
                    "lb",
                    "LoadBalancer",
                    "10.96.0.40",
                    "203.0.113.7,lb.example",
                    "443:31443/TCP",
                    "2d1h",
                    "<none>"
                ]),
            ),
            (
                pending_lb,
                json!([
                    "lb2",
                    "LoadBalancer",
                    "<none>",
                    "<pending>",
                    "<none>",
                    "2d1h",
                    "<none>"
                ]),
            ),
            (
                external_name,
                json!([
                    "ext",
                    "ExternalName",
                    "<none>",
                    "db.example.com",
                    "<none>",
                    "2d1h",
                    "<none>"
                ]),
            ),
        ] {
            assert_eq!(Value::Array(cells("services", svc, now)), want);
        }
    }

    #[test]
    fn node_rows() {
        let ready = json!({
            "metadata": {"name": "node-1", "creationTimestamp": TS, "labels": {
                "kubernetes.io/hostname": "node-1", "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/worker": ""}},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"},
                               {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                              {"type": "Hostname", "address": "node-1"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0-flotilla", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "docker://27.3.1"}}
        });
        let cordoned = json!({
            "metadata": {"name": "node-2", "creationTimestamp": TS, "labels": {"kubernetes.io/role": "edge"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}],
                       "addresses": [{"type": "ExternalIP", "address": "203.0.113.9"}]}
        });
        let fresh = json!({"metadata": {"name": "node-3", "creationTimestamp": TS}});
        let now = CREATED + 8 * 24 * 3600;
        for (node, want) in [
            (
                ready,
                json!([
                    "node-1",
                    "Ready",
                    "control-plane,worker",
                    "8d",
                    "v1.32.0-flotilla",
                    "192.168.1.10",
                    "<none>",
                    "Debian GNU/Linux 12 (bookworm)",
                    "6.1.0-18-amd64",
                    "docker://27.3.1"
                ]),
            ),
            (
                cordoned,
                json!([
                    "node-2",
                    "NotReady,SchedulingDisabled",
                    "edge",
                    "8d",
                    "",
                    "<none>",
                    "203.0.113.9",
                    "<unknown>",
                    "<unknown>",
                    "<unknown>"
                ]),
            ),
            (
                fresh,
                json!([
                    "node-3",
                    "Unknown",
                    "<none>",
                    "8d",
                    "",
                    "<none>",
                    "<none>",
                    "<unknown>",
                    "<unknown>",
                    "<unknown>"
                ]),
            ),
        ] {
            assert_eq!(Value::Array(cells("nodes", node, now)), want);
        }
    }

    #[test]
    fn namespace_and_endpoints_rows() {
        assert_eq!(
            Value::Array(cells(
                "namespaces",
                json!({"metadata": {"name": "default", "creationTimestamp": TS}}),
                CREATED + 5
            )),
            json!(["default", "Active", "5s"])
        );
        assert_eq!(
            Value::Array(cells(
                "namespaces",
                json!({"metadata": {"name": "old"}, "status": {"phase": "Terminating"}}),
                CREATED
            )),
            json!(["old", "Terminating", "<unknown>"])
        );
        let few = json!({"metadata": meta("web"), "subsets": [{
            "addresses": [{"ip": "10.1.0.7"}, {"ip": "10.1.0.8"}],
            "ports": [{"port": 80, "protocol": "TCP"}]}]});
        let many = json!({"metadata": meta("web"), "subsets": [
            {"addresses": [{"ip": "10.1.0.7"}, {"ip": "10.1.0.8"}, {"ip": "fd00::1"}],
             "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
            {"addresses": [{"ip": "10.1.0.9"}]}]});
        let none = json!({"metadata": meta("web")});
        for (endpoints, want) in [
            (few, "10.1.0.7:80,10.1.0.8:80"),
            (many, "10.1.0.7:80,10.1.0.8:80,[fd00::1]:80 + 4 more..."),
            (none, "<none>"),
        ] {
            assert_eq!(cells("endpoints", endpoints, CREATED)[1], json!(want));
        }
    }

    #[test]
    fn event_rows() {
        let event = json!({
            "metadata": {"name": "web-0.17a", "namespace": "default", "creationTimestamp": TS},
            "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default",
                               "fieldPath": "spec.containers{web}"},
            "reason": "Pulled", "type": "Normal", "message": "Successfully pulled image \"nginx\"\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": TS, "lastTimestamp": "2026-11-25T04:09:00Z", "count": 3
        });
        let new_api = json!({
            "metadata": {"name": "web.18b"},
            "involvedObject": {"kind": "Deployment", "name": "web"},
            "reason": "ScalingReplicaSet", "type": "Normal", "message": "Scaled up to 3",
            "eventTime": "2026-11-25T04:00:00.250000Z", "reportingComponent": "deployment-controller"
        });
        let series = json!({
            "metadata": {"name": "n.1"}, "involvedObject": {"kind": "Node"},
            "type": "Warning", "reason": "Rebooted", "message": "",
            "firstTimestamp": TS, "count": 9,
            "series": {"count": 5, "lastObservedTime": "2026-11-25T04:08:20.000000Z"}
        });
        let now = CREATED + 10 * 60;
        for (ev, want) in [
            (
                event,
                json!([
                    "60s",
                    "Normal",
                    "Pulled",
                    "pod/web-0",
                    "spec.containers{web}",
                    "kubelet, node-1",
                    "Successfully pulled image \"nginx\"",
                    "10m",
                    3,
                    "web-0.17a"
                ]),
            ),
            (
                new_api,
                json!([
                    "9m59s",
                    "Normal",
                    "ScalingReplicaSet",
                    "deployment/web",
                    "",
                    "deployment-controller",
                    "Scaled up to 3",
                    "9m59s",
                    1,
                    "web.18b"
                ]),
            ),
            (
                series,
                json!(["100s", "Warning", "Rebooted", "node", "", "", "", "10m", 5, "n.1"]),
            ),
        ] {
            assert_eq!(Value::Array(cells("events", ev, now)), want);
        }
    }

    #[test]
    fn columns_match_kube_apiserver() {
        let names = |plural: &str| -> Vec<String> {
            column_names(plural)
                .into_iter()
                .map(|(n, p)| if p == 1 { format!("({n})") } else { n })
                .collect()
        };
        assert_eq!(
            names("pods"),
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "(IP)",
                "(Node)",
                "(Nominated Node)",
                "(Readiness Gates)"
            ]
        );
        assert_eq!(
            names("deployments"),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "(Containers)",
                "(Images)",
                "(Selector)"
            ]
        );
        assert_eq!(
            names("replicasets"),
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Age",
                "(Containers)",
                "(Images)",
                "(Selector)"
            ]
        );
        assert_eq!(
            names("services"),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "(Selector)"
            ]
        );
        assert_eq!(
            names("nodes"),
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "(Internal-IP)",
                "(External-IP)",
                "(OS-Image)",
                "(Kernel-Version)",
                "(Container-Runtime)"
            ]
        );
        assert_eq!(names("namespaces"), ["Name", "Status", "Age"]);
        assert_eq!(names("endpoints"), ["Name", "Endpoints", "Age"]);
        assert_eq!(
            names("events"),
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "(Subobject)",
                "(Source)",
                "Message",
                "(First Seen)",
                "(Count)",
                "(Name)"
            ]
        );
        assert_eq!(names("widgets"), ["Name", "Age"]);

        let t = table("pods", &[], json!({}), IncludeObject::None, 0);
        let first = &t["columnDefinitions"][0];
        assert_eq!(first["type"], "string");
        assert_eq!(first["format"], "name");
        assert_eq!(t["columnDefinitions"][4]["format"], "");
        let rs = table("replicasets", &[], json!({}), IncludeObject::None, 0);
        assert_eq!(rs["columnDefinitions"][1]["type"], "integer");
    }

    #[test]
    fn every_served_resource_has_its_own_printer() {
        for resource in registry::RESOURCES {
            assert!(
                column_names(resource.plural).len() > 2,
                "{} prints only NAME and AGE",
                resource.plural
            );
        }
    }

    #[test]
    fn table_shape_and_row_objects() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("web-0"),
                         "spec": {"containers": [{"name": "web"}]}});
        let list_meta = json!({"resourceVersion": "107", "continue": ""});

        let t = table(
            "pods",
            std::slice::from_ref(&pod),
            list_meta.clone(),
            IncludeObject::default(),
            CREATED,
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], list_meta);
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta("web-0")})
        );

        let t = table(
            "pods",
            std::slice::from_ref(&pod),
            Value::Null,
            IncludeObject::Object,
            CREATED,
        );
        assert_eq!(t["rows"][0]["object"], pod);
        assert_eq!(t["metadata"], json!({}));

        let t = table(
            "pods",
            std::slice::from_ref(&pod),
            json!({}),
            IncludeObject::None,
            CREATED,
        );
        assert!(t["rows"][0].get("object").is_none());

        let t = table(
            "pods",
            &[],
            json!({"resourceVersion": "1"}),
            IncludeObject::Metadata,
            CREATED,
        );
        assert_eq!(t["rows"], json!([]));

        // Unknown resources and objects without metadata still print.
        let t = table(
            "widgets",
            &[json!({})],
            json!({}),
            IncludeObject::Metadata,
            CREATED,
        );
        assert_eq!(t["rows"][0]["cells"], json!(["", "<unknown>"]));
        assert_eq!(t["rows"][0]["object"]["metadata"], json!({}));
    }
}
