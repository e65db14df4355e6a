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
//! Where it sits: the API's list/get/watch handlers call [`wants_table`] on
//! the `Accept` header and, when true, answer [`table`] (content type
//! [`CONTENT_TYPE`]) instead of the plain object or list. A watch sends one
//! single-row Table per event; kube sends the column definitions only in the
//! first event (kubectl also accepts them on every event).

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
    let printer = printer(plural);
    let columns: Vec<Value> = printer
        .columns
        .iter()
        .copied()
        .map(Column::to_json)
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let printed = (printer.row)(object, now);
            debug_assert_eq!(printed.cells.len(), printer.columns.len(), "{plural}");
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

/// kubectl's age format (apimachinery `duration.HumanDuration`): about two
/// or three significant figures, e.g. `45s`, `119s`, `3m20s`, `10m`, `179m`,
/// `3h1m`, `47h`, `2d5h`, `8d`, `729d`, `2y1d`, `8y`. Up to one second in
/// the future (clock skew) prints `0s`; further prints `<invalid>`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 2 * 60 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{years}y")
}

// ---------------------------------------------------------------------------
// Columns

/// One `TableColumnDefinition`.
#[derive(Debug, Clone, Copy)]
struct Column {
    name: &'static str,
    /// OpenAPI type: "string", "integer", ...
    kind: &'static str,
    /// "name" for the column kubectl prefixes with `kind/` in `get all`.
    format: &'static str,
    /// 0: always shown; 1: `-o wide` only.
    priority: u8,
    description: &'static str,
}

impl Column {
    fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// A default column.
const fn col(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority: 0,
        description,
    }
}

/// A `-o wide` column.
const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        priority: 1,
        description,
    }
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DOC: &str = "Names of each container in the template.";
const IMAGES_DOC: &str = "Images referenced by each container in the template.";
const SELECTOR_DOC: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.";

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: NAME_DOC,
};
const AGE: Column = col("Age", "string", AGE_DOC);

const POD_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    wide("IP", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    wide("Node", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName."),
    wide("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
    wide("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness."),
];

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", "Total number of non-terminating pods targeted by this deployment that have the desired template spec."),
    col("Available", "string", "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    wide("Containers", CONTAINERS_DOC),
    wide("Images", IMAGES_DOC),
    wide("Selector", SELECTOR_DOC),
];

const REPLICA_SET_COLUMNS: &[Column] = &[
    NAME,
    col("Desired", "integer", "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1."),
    col("Current", "integer", "Replicas is the most recently observed number of non-terminating pods."),
    col("Ready", "integer", "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition."),
    AGE,
    wide("Containers", CONTAINERS_DOC),
    wide("Images", IMAGES_DOC),
    wide("Selector", "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set."),
];

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP."),
    col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
    col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    col("Port(s)", "string", "The list of ports that are exposed by this service."),
    AGE,
    wide("Selector", "Route service traffic to pods with label keys and values matching this selector."),
];

const NODE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide("Internal-IP", "List of addresses reachable to the node."),
    wide("External-IP", "List of addresses reachable to the node."),
    wide("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    wide("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    wide("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];

const NAMESPACE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

const LEASE_COLUMNS: &[Column] = &[
    NAME,
    col("Holder", "string", "The holder of the lease"),
    AGE,
];

const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

const EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide("Subobject", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]."),
    wide("Source", "The component reporting this event. Should be a short machine understandable string."),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide("First Seen", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    wide("Count", "The number of times this event has occurred."),
    Column {
        name: "Name",
        kind: "string",
        format: "name",
        priority: 1,
        description: NAME_DOC,
    },
];

const DEFAULT_COLUMNS: &[Column] = &[NAME, AGE];

/// What one object prints as.
struct Row {
    cells: Vec<Value>,
    /// `TableRowCondition`s (only completed pods have some).
    conditions: Option<Value>,
}

impl Row {
    fn cells(cells: Vec<Value>) -> Row {
        Row {
            cells,
            conditions: None,
        }
    }
}

/// Prints one object (at `now`, Unix seconds) as a row.
type RowFn = fn(&Value, i64) -> Row;

/// The columns of a resource and the function printing one of its objects.
struct Printer {
    columns: &'static [Column],
    row: RowFn,
}

fn printer(plural: &str) -> Printer {
    let (columns, row): (&'static [Column], RowFn) = match plural {
        "pods" => (POD_COLUMNS, pod_row),
        "deployments" => (DEPLOYMENT_COLUMNS, deployment_row),
        "replicasets" => (REPLICA_SET_COLUMNS, replica_set_row),
        "services" => (SERVICE_COLUMNS, service_row),
        "nodes" => (NODE_COLUMNS, node_row),
        "namespaces" => (NAMESPACE_COLUMNS, namespace_row),
        "endpoints" => (ENDPOINTS_COLUMNS, endpoints_row),
        "events" => (EVENT_COLUMNS, event_row),
        "leases" => (LEASE_COLUMNS, lease_row),
        _ => (DEFAULT_COLUMNS, default_row),
    };
    Printer { columns, row }
}

// ---------------------------------------------------------------------------
// JSON access that tolerates partial objects

/// The string at JSON pointer `ptr`, or "".
fn text<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `ptr`, or 0.
fn int(v: &Value, ptr: &str) -> i64 {
    match v.pointer(ptr) {
        Some(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        None => 0,
    }
}

/// The array at `ptr`, or empty.
fn list<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The non-null value at `ptr` (Go's "pointer field is set").
fn set<'a>(v: &'a Value, ptr: &str) -> Option<&'a Value> {
    v.pointer(ptr).filter(|x| !x.is_null())
}

fn flag(v: &Value, ptr: &str) -> bool {
    v.pointer(ptr).and_then(Value::as_bool).unwrap_or(false)
}

fn name(object: &Value) -> Value {
    Value::from(text(object, "/metadata/name"))
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_owned()
    } else {
        s.to_owned()
    }
}

// ---------------------------------------------------------------------------
// Time

/// Parses an RFC 3339 timestamp (`2026-11-25T04:00:00Z`,
/// `2026-11-25T04:00:00.123456Z`, `…+02:00`) to nanoseconds since the epoch.
fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let sep_ok = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !sep_ok {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos: i128 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let len = frac.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        for (i, c) in frac.bytes().take(len).enumerate() {
            if i < 9 {
                nanos = nanos * 10 + i128::from(c - b'0');
            }
        }
        for _ in len..9 {
            nanos *= 10;
        }
        rest = &frac[len..];
    }
    let offset_seconds: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || rb[3] != b':' {
                return None;
            }
            let sign = match rb[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(i128::from(seconds) * 1_000_000_000 + nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whole seconds from `then` (nanoseconds) to `now` (seconds), truncated
/// toward zero like Go's `int(d.Seconds())`.
fn elapsed(now: i64, then: i128) -> i64 {
    let d = (i128::from(now) * 1_000_000_000 - then) / 1_000_000_000;
    i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
fn since(timestamp: Option<&Value>, now: i64) -> String {
    match timestamp.and_then(Value::as_str).and_then(parse_rfc3339) {
        Some(then) => human_duration(elapsed(now, then)),
        None => "<unknown>".to_owned(),
    }
}

fn age(object: &Value, now: i64) -> Value {
    Value::from(since(object.pointer("/metadata/creationTimestamp"), now))
}

/// The later of two optional instants.
fn later(a: Option<i128>, b: Option<i128>) -> Option<i128> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

// ---------------------------------------------------------------------------
// Labels and selectors

/// `labels.FormatLabels`: `k=v` sorted by key, comma-joined; `<none>` if empty.
fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<(&str, &str)> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    let joined = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    or_none(&joined)
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by
/// key; None when the selector is invalid. A missing or empty selector
/// prints "".
fn selector_string(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Some(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            requirements.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for expr in list(selector, "/matchExpressions") {
        let key = text(expr, "/key");
        let mut values: Vec<&str> = list(expr, "/values")
            .iter()
            .map(|v| v.as_str().unwrap_or(""))
            .collect();
        values.sort_unstable();
        let printed = match text(expr, "/operator") {
            "In" | "NotIn" if values.is_empty() => return None,
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return None,
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        };
        requirements.push((key.to_owned(), printed));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        requirements
            .into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `metav1.FormatLabelSelector`: like [`selector_string`] but `<none>` when
/// empty and `<error>` when invalid.
fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Some(s) => or_none(&s),
        None => "<error>".to_owned(),
    }
}

/// `layoutContainerCells`: comma-joined container names and images.
fn container_cells(template_spec_containers: &[Value]) -> (Value, Value) {
    let names: Vec<&str> = template_spec_containers
        .iter()
        .map(|c| text(c, "/name"))
        .collect();
    let images: Vec<&str> = template_spec_containers
        .iter()
        .map(|c| text(c, "/image"))
        .collect();
    (Value::from(names.join(",")), Value::from(images.join(",")))
}

// ---------------------------------------------------------------------------
// Printers, one per resource (upstream `printPod`, `printDeployment`, ...)

fn default_row(object: &Value, now: i64) -> Row {
    Row::cells(vec![name(object), age(object, now)])
}

/// `printPod`: READY counts ready running containers (plus started
/// restartable init containers); STATUS is the phase, overridden by the pod's
/// reason, an init container's state (`Init:1/2`, `Init:ErrImagePull`), a
/// container's waiting or terminated reason (`CrashLoopBackOff`,
/// `Completed`, `ExitCode:1`), and finally `Terminating` once deletion has
/// begun.
fn pod_row(pod: &Value, now: i64) -> Row {
    let phase = text(pod, "/status/phase");
    let mut reason = match text(pod, "/status/reason") {
        "" => phase.to_owned(),
        r => r.to_owned(),
    };
    for condition in list(pod, "/status/conditions") {
        if text(condition, "/type") == "PodScheduled"
            && text(condition, "/reason") == "SchedulingGated"
        {
            reason = "SchedulingGated".to_owned();
        }
    }
    let conditions = match phase {
        "Succeeded" => Some(json!([{"type": "Completed", "status": "True",
            "reason": "Succeeded", "message": "The pod has completed successfully."}])),
        "Failed" => Some(json!([{"type": "Completed", "status": "True",
            "reason": "Failed", "message": "The pod failed."}])),
        _ => None,
    };

    let init_specs = list(pod, "/spec/initContainers");
    let restartable = |container: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == container && text(c, "/restartPolicy") == "Always")
    };
    let total = list(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| text(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<i128> = None;
    let mut last_sidecar_restart: Option<i128> = None;
    let finished_at = |status: &Value| {
        set(status, "/lastState/terminated")
            .and_then(|t| t.get("finishedAt"))
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
    };

    let mut initializing = false;
    for (i, status) in list(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        restarts += int(status, "/restartCount");
        last_restart = later(last_restart, finished_at(status));
        let sidecar = restartable(text(status, "/name"));
        if sidecar {
            sidecar_restarts += int(status, "/restartCount");
            last_sidecar_restart = later(last_sidecar_restart, finished_at(status));
        }
        let terminated = set(status, "/state/terminated");
        let waiting_reason = set(status, "/state/waiting").map(|w| text(w, "/reason"));
        if terminated.is_some_and(|t| int(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && flag(status, "/started") {
            if flag(status, "/ready") {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            reason = match text(t, "/reason") {
                "" if int(t, "/signal") != 0 => format!("Init:Signal:{}", int(t, "/signal")),
                "" => format!("Init:ExitCode:{}", int(t, "/exitCode")),
                r => format!("Init:{r}"),
            };
        } else if let Some(w) = waiting_reason.filter(|w| !w.is_empty() && *w != "PodInitializing")
        {
            reason = format!("Init:{w}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    let initialized = list(pod, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == "Initialized" && text(c, "/status") == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for status in list(pod, "/status/containerStatuses").iter().rev() {
            restarts += int(status, "/restartCount");
            last_restart = later(last_restart, finished_at(status));
            let waiting_reason = set(status, "/state/waiting").map(|w| text(w, "/reason"));
            let terminated = set(status, "/state/terminated");
            if let Some(w) = waiting_reason.filter(|w| !w.is_empty()) {
                reason = w.to_owned();
            } else if let Some(t) = terminated {
                reason = match text(t, "/reason") {
                    "" if int(t, "/signal") != 0 => format!("Signal:{}", int(t, "/signal")),
                    "" => format!("ExitCode:{}", int(t, "/exitCode")),
                    r => r.to_owned(),
                };
            } else if flag(status, "/ready") && set(status, "/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose other containers completed but one still runs.
        if reason == "Completed" && has_running {
            let pod_ready = list(pod, "/status/conditions")
                .iter()
                .any(|c| text(c, "/type") == "Ready" && text(c, "/status") == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_owned();
        }
    }

    let deleting = set(pod, "/metadata/deletionTimestamp").is_some();
    if deleting && text(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".to_owned();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_owned();
    }

    let restarts_cell = match last_restart {
        Some(last) if restarts != 0 => {
            format!("{restarts} ({} ago)", human_duration(elapsed(now, last)))
        }
        _ => restarts.to_string(),
    };

    let ip = list(pod, "/status/podIPs")
        .first()
        .map(|p| text(p, "/ip"))
        .unwrap_or_else(|| text(pod, "/status/podIP"));
    let gates = list(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let pod_conditions = list(pod, "/status/conditions");
        let passed = gates
            .iter()
            .filter(|gate| {
                let wanted = text(gate, "/conditionType");
                pod_conditions
                    .iter()
                    .find(|c| text(c, "/type") == wanted)
                    .is_some_and(|c| text(c, "/status") == "True")
            })
            .count();
        format!("{passed}/{}", gates.len())
    };

    Row {
        cells: vec![
            name(pod),
            Value::from(format!("{ready}/{total}")),
            Value::from(reason),
            Value::from(restarts_cell),
            age(pod, now),
            Value::from(or_none(ip)),
            Value::from(or_none(text(pod, "/spec/nodeName"))),
            Value::from(or_none(text(pod, "/status/nominatedNodeName"))),
            Value::from(readiness_gates),
        ],
        conditions,
    }
}

/// `printDeployment`: READY is `readyReplicas/spec.replicas`.
fn deployment_row(deployment: &Value, now: i64) -> Row {
    let (names, images) = container_cells(list(deployment, "/spec/template/spec/containers"));
    let selector = selector_string(deployment.pointer("/spec/selector"))
        .unwrap_or_else(|| "<invalid>".to_owned());
    Row::cells(vec![
        name(deployment),
        Value::from(format!(
            "{}/{}",
            int(deployment, "/status/readyReplicas"),
            int(deployment, "/spec/replicas")
        )),
        Value::from(int(deployment, "/status/updatedReplicas")),
        Value::from(int(deployment, "/status/availableReplicas")),
        age(deployment, now),
        names,
        images,
        Value::from(selector),
    ])
}

/// `printReplicaSet`.
fn replica_set_row(rs: &Value, now: i64) -> Row {
    let (names, images) = container_cells(list(rs, "/spec/template/spec/containers"));
    Row::cells(vec![
        name(rs),
        Value::from(int(rs, "/spec/replicas")),
        Value::from(int(rs, "/status/replicas")),
        Value::from(int(rs, "/status/readyReplicas")),
        age(rs, now),
        names,
        images,
        Value::from(format_label_selector(rs.pointer("/spec/selector"))),
    ])
}

/// `getServiceExternalIP` (wide, as the server always prints).
fn service_external_ip(service: &Value, kind: &str) -> String {
    let external: Vec<&str> = list(service, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match kind {
        "ClusterIP" | "NodePort" => or_none(&external.join(",")),
        "LoadBalancer" => {
            let mut ingress: Vec<&str> = Vec::new();
            for i in list(service, "/status/loadBalancer/ingress") {
                let address = match text(i, "/ip") {
                    "" => text(i, "/hostname"),
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
        "ExternalName" => text(service, "/spec/externalName").to_owned(),
        _ => "<unknown>".to_owned(),
    }
}

/// `printService`: PORT(S) is `port/PROTO` or `port:nodePort/PROTO`.
fn service_row(service: &Value, now: i64) -> Row {
    // kube defaults an unset type to ClusterIP and protocol to TCP.
    let kind = match text(service, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = list(service, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| text(service, "/spec/clusterIP"));
    let ports: Vec<String> = list(service, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = match text(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            let port = int(p, "/port");
            match int(p, "/nodePort") {
                n if n > 0 => format!("{port}:{n}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    Row::cells(vec![
        name(service),
        Value::from(kind),
        Value::from(or_none(cluster_ip)),
        Value::from(service_external_ip(service, kind)),
        Value::from(or_none(&ports.join(","))),
        age(service, now),
        Value::from(format_labels(service.pointer("/spec/selector"))),
    ])
}

/// `printNode`: STATUS from the Ready condition (`Ready`, `NotReady` for
/// False or Unknown, `Unknown` when absent), plus `SchedulingDisabled`.
fn node_row(node: &Value, now: i64) -> Row {
    let conditions = list(node, "/status/conditions");
    let mut status: Vec<&str> = match conditions
        .iter()
        .rev()
        .find(|c| text(c, "/type") == "Ready")
    {
        Some(c) if text(c, "/status") == "True" => vec!["Ready"],
        Some(_) => vec!["NotReady"],
        None => vec!["Unknown"],
    };
    if flag(node, "/spec/unschedulable") {
        status.push("SchedulingDisabled");
    }
    let mut roles: Vec<&str> = Vec::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (key, value) in labels {
            let role = match key.strip_prefix("node-role.kubernetes.io/") {
                Some(role) => role,
                None if key == "kubernetes.io/role" => value.as_str().unwrap_or(""),
                None => "",
            };
            if !role.is_empty() && !roles.contains(&role) {
                roles.push(role);
            }
        }
    }
    roles.sort_unstable();
    let address = |kind: &str| {
        list(node, "/status/addresses")
            .iter()
            .find(|a| text(a, "/type") == kind)
            .map(|a| text(a, "/address"))
            .unwrap_or("<none>")
            .to_owned()
    };
    let unknown = |s: &str| {
        if s.is_empty() {
            "<unknown>".to_owned()
        } else {
            s.to_owned()
        }
    };
    Row::cells(vec![
        name(node),
        Value::from(status.join(",")),
        Value::from(or_none(&roles.join(","))),
        age(node, now),
        Value::from(text(node, "/status/nodeInfo/kubeletVersion")),
        Value::from(address("InternalIP")),
        Value::from(address("ExternalIP")),
        Value::from(unknown(text(node, "/status/nodeInfo/osImage"))),
        Value::from(unknown(text(node, "/status/nodeInfo/kernelVersion"))),
        Value::from(unknown(text(
            node,
            "/status/nodeInfo/containerRuntimeVersion",
        ))),
    ])
}

/// `printNamespace` (an unset phase is the default, `Active`).
fn namespace_row(namespace: &Value, now: i64) -> Row {
    let phase = match text(namespace, "/status/phase") {
        "" => "Active",
        p => p,
    };
    Row::cells(vec![
        name(namespace),
        Value::from(phase),
        age(namespace, now),
    ])
}

fn lease_row(lease: &Value, now: i64) -> Row {
    Row::cells(vec![
        name(lease),
        Value::from(text(lease, "/spec/holderIdentity")),
        age(lease, now),
    ])
}

/// `formatEndpoints`: the first three `ip:port` (or bare IPs for subsets
/// without ports), then ` + N more...`; `<none>` without subsets.
fn format_endpoints(endpoints: &Value) -> String {
    const MAXIMUM: usize = 3;
    let subsets = list(endpoints, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    let mut shown: Vec<String> = Vec::new();
    let mut count = 0usize;
    for subset in subsets {
        let addresses = list(subset, "/addresses");
        let ports = list(subset, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses.iter().take(MAXIMUM.saturating_sub(shown.len())) {
                shown.push(text(a, "/ip").to_owned());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for a in addresses.iter().take(MAXIMUM.saturating_sub(shown.len())) {
                let ip = text(a, "/ip");
                let port = int(port, "/port");
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

fn endpoints_row(endpoints: &Value, now: i64) -> Row {
    Row::cells(vec![
        name(endpoints),
        Value::from(format_endpoints(endpoints)),
        age(endpoints, now),
    ])
}

/// `printEvent`: LAST SEEN falls back to the first timestamp, the first to
/// `eventTime`; a series overrides last-seen and count; an unset count is 1.
fn event_row(event: &Value, now: i64) -> Row {
    let first_seen = match set(event, "/firstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(set(event, "/eventTime"), now),
    };
    let mut last_seen = match set(event, "/lastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = int(event, "/count");
    if let Some(series) = set(event, "/series") {
        last_seen = since(set(series, "/lastObservedTime"), now);
        count = int(series, "/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = text(event, "/involvedObject/kind").to_lowercase();
    let object = match text(event, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = match text(event, "/source/component") {
        "" => text(event, "/reportingComponent"),
        c => c,
    };
    let host = match text(event, "/source/host") {
        "" => text(event, "/reportingInstance"),
        h => h,
    };
    let source = if host.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {host}")
    };
    Row::cells(vec![
        Value::from(last_seen),
        Value::from(text(event, "/type")),
        Value::from(text(event, "/reason")),
        Value::from(object),
        Value::from(text(event, "/involvedObject/fieldPath")),
        Value::from(source),
        Value::from(text(event, "/message").trim()),
        Value::from(first_seen),
        Value::from(count),
        name(event),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::registry;

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
