//! What every kind's table printer shares: column definitions, rows, and the
//! cell formatting of kubectl's printers (ages, label maps, selectors).
//!
//! Each kind's file under `objects/` declares its columns and prints its rows
//! from the typed `k8s-openapi` object (read with [`typed`]) with these (see [`super::Strategy::columns`] and [`super::Strategy::row`]);
//! `api::table` wraps them in a `meta.k8s.io/v1` Table. Everything here is
//! pure: the caller passes `now` (Unix seconds), so the same object prints the
//! same cells. Objects may be partial: missing fields read as empty, zero or
//! `<none>`, never panic.

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One `TableColumnDefinition`.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Header.
    pub name: &'static str,
    /// OpenAPI type: "string", "integer", ...
    pub kind: &'static str,
    /// "name" for the column kubectl prefixes with `kind/` in `get all`.
    pub format: &'static str,
    /// 0: always shown; 1: `-o wide` only.
    pub priority: u8,
    /// What the column shows.
    pub description: &'static str,
}

impl Column {
    /// The `TableColumnDefinition` JSON.
    pub fn to_json(self) -> Value {
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
pub const fn col(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority: 0,
        description,
    }
}

/// A `-o wide` column.
pub const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        priority: 1,
        description,
    }
}

/// Description of the Name column.
pub const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
/// Description of the Age column.
pub const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
/// Description of a template's Containers column.
pub const CONTAINERS_DOC: &str = "Names of each container in the template.";
/// Description of a template's Images column.
pub const IMAGES_DOC: &str = "Images referenced by each container in the template.";
/// Description of a Deployment's Selector column.
pub const SELECTOR_DOC: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.";

/// The Name column (`format: name`, so `get all` prefixes `kind/`).
pub const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: NAME_DOC,
};
/// The Age column.
pub const AGE: Column = col("Age", "string", AGE_DOC);

/// Columns of a kind without its own printer.
pub const DEFAULT_COLUMNS: &[Column] = &[NAME, AGE];

/// What one object prints as.
pub struct Row {
    /// One cell per column.
    pub cells: Vec<Value>,
    /// `TableRowCondition`s (only completed pods have some).
    pub conditions: Option<Value>,
}

impl Row {
    /// A row without conditions.
    pub fn cells(cells: Vec<Value>) -> Row {
        Row {
            cells,
            conditions: None,
        }
    }
}

/// The row of a kind without its own printer: Name and Age.
pub fn default_row(object: &Value, now: i64) -> Row {
    Row::cells(vec![name(object), age(object, now)])
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

// JSON access that tolerates partial objects

/// The string at JSON pointer `ptr`, or "".
pub fn text<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The Name cell.
pub fn name(object: &Value) -> Value {
    Value::from(text(object, "/metadata/name"))
}

/// `s`, or `<none>` when empty.
pub fn or_none(s: &str) -> String {
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
pub fn parse_rfc3339(s: &str) -> Option<i128> {
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
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
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
pub fn elapsed(now: i64, then: i128) -> i64 {
    let d = (i128::from(now) * 1_000_000_000 - then) / 1_000_000_000;
    i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
pub fn since(timestamp: Option<&Value>, now: i64) -> String {
    match timestamp.and_then(Value::as_str).and_then(parse_rfc3339) {
        Some(then) => human_duration(elapsed(now, then)),
        None => "<unknown>".to_owned(),
    }
}

/// The Age cell.
pub fn age(object: &Value, now: i64) -> Value {
    Value::from(since(object.pointer("/metadata/creationTimestamp"), now))
}

/// The later of two optional instants.
pub fn later(a: Option<i128>, b: Option<i128>) -> Option<i128> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

// ---------------------------------------------------------------------------
// Typed objects

/// `obj` read as the typed `k8s-openapi` object `T`; None when a field has
/// the wrong JSON type (the object then prints as [`unreadable_row`]).
pub fn typed<T: DeserializeOwned>(obj: &Value) -> Option<T> {
    T::deserialize(obj).ok()
}

/// The row of an object its kind's type cannot read: the Name and Age
/// cells as usual, the others empty.
pub fn unreadable_row(obj: &Value, now: i64, columns: &[Column]) -> Row {
    let cells = columns
        .iter()
        .map(|c| {
            if c.format == "name" {
                name(obj)
            } else if c.description == AGE_DOC {
                age(obj, now)
            } else {
                Value::from("")
            }
        })
        .collect();
    Row::cells(cells)
}

/// The Name cell of typed metadata.
pub fn meta_name(meta: &ObjectMeta) -> Value {
    Value::from(meta.name.as_deref().unwrap_or(""))
}

/// The Age cell of typed metadata.
pub fn meta_age(meta: &ObjectMeta, now: i64) -> Value {
    Value::from(since_time(
        meta.creation_timestamp.as_ref().map(|t| &t.0),
        now,
    ))
}

/// An instant as nanoseconds since the epoch.
pub fn instant(t: &DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
}

/// `translateTimestampSince` of a typed time: `<unknown>` when unset.
pub fn since_time(t: Option<&DateTime<Utc>>, now: i64) -> String {
    match t {
        Some(t) => human_duration(elapsed(now, instant(t))),
        None => "<unknown>".to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Labels and selectors

/// `labels.FormatLabels`: `k=v` sorted by key, comma-joined; `<none>` if empty.
pub fn format_labels(map: Option<&BTreeMap<String, String>>) -> String {
    let joined = map
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    or_none(&joined)
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by
/// key; None when the selector is invalid. A missing or empty selector
/// prints "".
pub fn label_selector(selector: Option<&LabelSelector>) -> Option<String> {
    let Some(selector) = selector else {
        return Some(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        requirements.push((k.clone(), format!("{k}={v}")));
    }
    for expr in selector.match_expressions.iter().flatten() {
        let key = expr.key.as_str();
        let mut values: Vec<&str> = expr.values.iter().flatten().map(String::as_str).collect();
        values.sort_unstable();
        let printed = match expr.operator.as_str() {
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

/// [`label_selector`] of a selector still in JSON (null or missing prints
/// ""; one that is not a LabelSelector is invalid).
pub fn selector_string(selector: Option<&Value>) -> Option<String> {
    match selector.filter(|s| !s.is_null()) {
        None => Some(String::new()),
        Some(value) => label_selector(Some(&typed::<LabelSelector>(value)?)),
    }
}

/// `metav1.FormatLabelSelector`: like [`label_selector`] but `<none>` when
/// empty and `<error>` when invalid.
pub fn format_selector(selector: Option<&LabelSelector>) -> String {
    match label_selector(selector) {
        Some(s) => or_none(&s),
        None => "<error>".to_owned(),
    }
}

/// [`format_selector`] of a selector still in JSON.
pub fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Some(s) => or_none(&s),
        None => "<error>".to_owned(),
    }
}

/// `layoutContainerCells`: comma-joined container names and images.
pub fn container_cells(containers: &[Container]) -> (Value, Value) {
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c.image.as_deref().unwrap_or(""))
        .collect();
    (Value::from(names.join(",")), Value::from(images.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::pod;
    use crate::objects::Strategy;

    #[test]
    fn objects_their_type_cannot_read_print_name_and_age() {
        // restartCount must be an integer.
        let pod = json!({"metadata": {"name": "p", "creationTimestamp": "2026-11-25T04:00:00Z"},
            "status": {"containerStatuses": [{"name": "c", "restartCount": "lots"}]}});
        let row = pod::Pods.row(&pod, 1_795_579_245);
        assert_eq!(row.cells.len(), pod::Pods.columns().len());
        assert_eq!(row.cells[0], json!("p"));
        assert_eq!(row.cells[4], json!("45s"));
        assert!(row.cells[1..4].iter().all(|c| c == ""), "{:?}", row.cells);
    }

    #[test]
    fn typed_times_print_ages() {
        let meta: ObjectMeta =
            typed(&json!({"name": "x", "creationTimestamp": "2026-11-25T04:00:00.5Z"}))
                .expect("metadata");
        assert_eq!(meta_name(&meta), json!("x"));
        assert_eq!(meta_age(&meta, 1_795_579_200 + 200), json!("3m19s"));
        assert_eq!(meta_age(&ObjectMeta::default(), 0), json!("<unknown>"));
    }
}
