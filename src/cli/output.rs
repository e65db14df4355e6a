//! Printing for the kubectl-like commands: server-side Tables as aligned
//! text, objects as YAML, and the key/value layout of `describe`.
//!
//! Everything here is pure: it takes JSON values and returns text, so the
//! commands in [`super::objects`] own all I/O and the layout is unit-tested.

use serde_json::Value;

/// Space between columns, as kubectl's tabwriter pads them.
const COLUMN_GAP: usize = 3;

/// Aligns rows into columns: every column but the last is padded to its
/// widest cell plus [`COLUMN_GAP`] spaces. Each line ends with `\n`.
pub fn align(rows: &[Vec<String>]) -> String {
    let widths = widths(rows);
    let mut out = String::new();
    for row in rows {
        out.push_str(&aligned_row(row, &widths));
        out.push('\n');
    }
    out
}

/// The widest cell of each column.
pub fn widths(rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        grow(&mut widths, row);
    }
    widths
}

/// Widens `widths` to fit `row`.
pub fn grow(widths: &mut Vec<usize>, row: &[String]) {
    for (i, cell) in row.iter().enumerate() {
        let width = cell.chars().count();
        match widths.get_mut(i) {
            Some(w) => *w = (*w).max(width),
            None => widths.push(width),
        }
    }
}

/// One row padded to `widths` (without a newline; the last cell unpadded).
pub fn aligned_row(row: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, cell) in row.iter().enumerate() {
        line.push_str(cell);
        if i + 1 < row.len() {
            let width = widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.chars().count()) + COLUMN_GAP;
            line.push_str(&" ".repeat(pad));
        }
    }
    line.trim_end().to_owned()
}

/// The text of a Table cell: strings as they are, numbers printed, null empty.
pub fn cell_text(cell: &Value) -> String {
    match cell {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Which columns of a `meta.k8s.io/v1` Table to show: indexes of the columns
/// with priority 0, or all of them when `wide`.
pub fn visible_columns(table: &Value, wide: bool) -> Vec<usize> {
    table["columnDefinitions"]
        .as_array()
        .map(|columns| {
            columns
                .iter()
                .enumerate()
                .filter(|(_, c)| wide || c["priority"].as_i64().unwrap_or(0) == 0)
                .map(|(i, _)| i)
                .collect()
        })
        .unwrap_or_default()
}

/// The header row of a Table: the visible column names, upper-case, with
/// NAMESPACE first when `with_namespace`.
pub fn header(table: &Value, columns: &[usize], with_namespace: bool) -> Vec<String> {
    let mut header = Vec::new();
    if with_namespace {
        header.push("NAMESPACE".to_owned());
    }
    for &i in columns {
        let name = table["columnDefinitions"][i]["name"].as_str().unwrap_or("");
        header.push(name.to_uppercase());
    }
    header
}

/// The text rows of a Table (the visible cells, NAMESPACE first when asked:
/// read from each row's object metadata, which the server includes by default).
pub fn rows(table: &Value, columns: &[usize], with_namespace: bool) -> Vec<Vec<String>> {
    let Some(rows) = table["rows"].as_array() else {
        return Vec::new();
    };
    rows.iter()
        .map(|row| {
            let mut line = Vec::new();
            if with_namespace {
                let ns = row["object"]["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("");
                line.push(ns.to_owned());
            }
            for &i in columns {
                line.push(cell_text(&row["cells"][i]));
            }
            line
        })
        .collect()
}

/// The value of the column named `name` (case-insensitive) in a Table row.
pub fn cell_named(table: &Value, row: &Value, name: &str) -> String {
    table["columnDefinitions"]
        .as_array()
        .and_then(|columns| {
            columns.iter().position(|c| {
                c["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        })
        .map(|i| cell_text(&row["cells"][i]))
        .unwrap_or_default()
}

/// An object as YAML.
///
/// # Errors
/// When the value cannot be represented (it always can for JSON values).
pub fn yaml(value: &Value) -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(value)
}

/// `Key=value` pairs of a label or annotation map, one a line, or `<none>`.
fn pairs(map: &Value) -> Vec<String> {
    match map.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| format!("{k}={}", cell_text(v)))
            .collect(),
        _ => vec!["<none>".to_owned()],
    }
}

/// `Spec` from `spec`: how describe titles a top-level field.
fn title(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The body of `ctl describe` for one object, without its Events: the
/// identifying metadata as aligned `Key: value` lines, then every other
/// top-level field (spec, status, data...) as indented YAML under its title.
pub fn describe(object: &Value) -> String {
    let meta = &object["metadata"];
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    lines.push(("Name:".into(), vec![text(&meta["name"])]));
    if let Some(ns) = meta["namespace"].as_str() {
        lines.push(("Namespace:".into(), vec![ns.to_owned()]));
    }
    lines.push(("Kind:".into(), vec![text(&object["kind"])]));
    lines.push(("Labels:".into(), pairs(&meta["labels"])));
    lines.push(("Annotations:".into(), pairs(&meta["annotations"])));
    lines.push((
        "CreationTimestamp:".into(),
        vec![text(&meta["creationTimestamp"])],
    ));
    if let Some(ts) = meta["deletionTimestamp"].as_str() {
        lines.push(("DeletionTimestamp:".into(), vec![ts.to_owned()]));
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    let mut out = String::new();
    for (key, values) in &lines {
        for (i, value) in values.iter().enumerate() {
            let label = if i == 0 { key.as_str() } else { "" };
            let line = format!("{label:width$}{value}");
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    if let Some(fields) = object.as_object() {
        for (key, value) in fields {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            out.push_str(&format!("{}:", title(key)));
            match value {
                Value::Object(_) | Value::Array(_) => {
                    out.push('\n');
                    let body = yaml(value).unwrap_or_default();
                    for line in body.lines() {
                        out.push_str("  ");
                        out.push_str(line);
                        out.push('\n');
                    }
                }
                scalar => out.push_str(&format!("  {}\n", cell_text(scalar))),
            }
        }
    }
    out
}

/// The `Events:` section of describe from a Table of events: kubectl's
/// Type / Reason / Age / From / Message columns, or `<none>`.
pub fn events(table: &Value) -> String {
    let rows = table["rows"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if rows.is_empty() {
        return "Events:  <none>\n".to_owned();
    }
    let mut grid = vec![
        ["Type", "Reason", "Age", "From", "Message"]
            .map(String::from)
            .to_vec(),
        ["----", "------", "----", "----", "-------"]
            .map(String::from)
            .to_vec(),
    ];
    for row in rows {
        grid.push(vec![
            cell_named(table, row, "Type"),
            cell_named(table, row, "Reason"),
            cell_named(table, row, "Last Seen"),
            cell_named(table, row, "Source"),
            cell_named(table, row, "Message"),
        ]);
    }
    let mut out = "Events:\n".to_owned();
    for line in align(&grid).lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Value {
        json!({
            "kind": "Table",
            "columnDefinitions": [
                {"name": "Name", "priority": 0},
                {"name": "Ready", "priority": 0},
                {"name": "Containers", "priority": 1},
            ],
            "rows": [
                {"cells": ["web", "0/1", "nginx"], "object": {"metadata": {"namespace": "default"}}},
                {"cells": ["longer-name", 3, "c"], "object": {"metadata": {"namespace": "kube-system"}}},
            ]
        })
    }

    #[test]
    fn tables_align_like_kubectl() {
        let t = table();
        let columns = visible_columns(&t, false);
        assert_eq!(columns, vec![0, 1]);
        let mut grid = vec![header(&t, &columns, false)];
        grid.extend(rows(&t, &columns, false));
        assert_eq!(
            align(&grid),
            "NAME          READY\nweb           0/1\nlonger-name   3\n"
        );
        let columns = visible_columns(&t, true);
        let mut grid = vec![header(&t, &columns, true)];
        grid.extend(rows(&t, &columns, true));
        let text = align(&grid);
        assert!(
            text.starts_with("NAMESPACE     NAME          READY   CONTAINERS\n"),
            "{text}"
        );
        assert!(
            text.contains("kube-system   longer-name   3       c\n"),
            "{text}"
        );
    }

    #[test]
    fn describe_lists_metadata_then_fields() {
        let text = describe(&json!({
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
            "spec": {"replicas": 2},
        }));
        assert!(text.starts_with("Name:               web\n"), "{text}");
        assert!(
            text.contains("Labels:             app=web\n                    tier=front\n"),
            "{text}"
        );
        assert!(text.contains("Annotations:        <none>\n"), "{text}");
        assert!(text.contains("Spec:\n  replicas: 2\n"), "{text}");
    }

    #[test]
    fn events_section() {
        assert_eq!(events(&json!({"rows": []})), "Events:  <none>\n");
        let t = json!({
            "columnDefinitions": [{"name": "Last Seen"}, {"name": "Type"}, {"name": "Reason"}, {"name": "Source"}, {"name": "Message"}],
            "rows": [{"cells": ["5s", "Normal", "Scheduled", "scheduler", "placed"]}],
        });
        let text = events(&t);
        assert!(text.contains("Type     Reason      Age"), "{text}");
        assert!(
            text.contains("Normal   Scheduled   5s     scheduler   placed"),
            "{text}"
        );
    }
}
