//! Events: what happened to an object, reported by the control loops and
//! agents.

use super::print::{
    col, meta_name, since_time, typed, unreadable_row, wide, Column, Row, NAME_DOC,
};
use super::registry::Resource;
use super::strategy::Strategy;
use k8s_openapi::api::core::v1 as k8s;
use serde_json::Value;

/// The rules of Event objects.
#[derive(Debug, Clone, Copy)]
pub struct Events;

/// The resource served for this kind.
pub const RESOURCE: Resource = Resource {
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
    strategy: &Events,
};

/// The field types only this kind uses (grammar: [`super::types`]).
const TYPES: &str = "
core.Event action:string apiVersion:string count:integer eventTime:time firstTimestamp:time
        involvedObject:core.ObjectReference kind:string lastTimestamp:time message:string
        metadata:meta.ObjectMeta reason:string related:core.ObjectReference
        reportingComponent:string reportingInstance:string series:core.EventSeries
        source:core.EventSource type:string
core.EventSeries count:integer lastObservedTime:time
core.EventSource component:string host:string
";

/// kube-apiserver's Table columns for this kind (its printers.go).
const COLUMNS: &[Column] = &[
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

impl Strategy for Events {
    fn type_name(&self) -> Option<&'static str> {
        Some("core.Event")
    }

    fn types(&self) -> &'static str {
        TYPES
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, obj: &Value, now: i64) -> Row {
        event_row(obj, now)
    }
}

/// `printEvent`: LAST SEEN falls back to the first timestamp, the first to
/// `eventTime`; a series overrides last-seen and count; an unset count is 1.
fn event_row(obj: &Value, now: i64) -> Row {
    let Some(event) = typed::<k8s::Event>(obj) else {
        return unreadable_row(obj, now, COLUMNS);
    };
    let first_seen = match &event.first_timestamp {
        Some(t) => since_time(Some(&t.0), now),
        None => since_time(event.event_time.as_ref().map(|t| &t.0), now),
    };
    let mut last_seen = match &event.last_timestamp {
        Some(t) => since_time(Some(&t.0), now),
        None => first_seen.clone(),
    };
    let mut count = event.count.unwrap_or(0);
    if let Some(series) = &event.series {
        last_seen = since_time(series.last_observed_time.as_ref().map(|t| &t.0), now);
        count = series.count.unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let involved = &event.involved_object;
    let kind = involved.kind.as_deref().unwrap_or("").to_lowercase();
    let object = match involved.name.as_deref().unwrap_or("") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let source = event.source.unwrap_or_default();
    let component = match source.component.as_deref().unwrap_or("") {
        "" => event.reporting_component.as_deref().unwrap_or(""),
        c => c,
    };
    let host = match source.host.as_deref().unwrap_or("") {
        "" => event.reporting_instance.as_deref().unwrap_or(""),
        h => h,
    };
    let source = if host.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {host}")
    };
    Row::cells(vec![
        Value::from(last_seen),
        Value::from(event.type_.unwrap_or_default()),
        Value::from(event.reason.unwrap_or_default()),
        Value::from(object),
        Value::from(involved.field_path.as_deref().unwrap_or("")),
        Value::from(source),
        Value::from(event.message.as_deref().unwrap_or("").trim()),
        Value::from(first_seen),
        Value::from(count),
        meta_name(&event.metadata),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_fill_every_column_and_nothing_is_claimed() {
        let mut obj = json!({"metadata": {"name": "x", "namespace": "default"}});
        assert!(Events.validate(&obj).is_empty());
        assert_eq!(Events.row(&obj, 0).cells.len(), Events.columns().len());
        assert!(Events.allocate(&mut obj).is_empty());
        assert!(Events.release(&obj).is_empty());
        assert!(!Events.validate(&json!({"metadata": {}})).is_empty());
    }
}
