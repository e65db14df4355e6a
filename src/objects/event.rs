//! Events: what happened to an object, reported by the control loops and
//! agents.

use super::print::{col, int, name, set, since, text, wide, Column, Row, NAME_DOC};
use super::registry::Resource;
use super::strategy::Strategy;
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

const TYPES: &str = "
core.Event action:string apiVersion:string count:integer eventTime:time firstTimestamp:time
        involvedObject:core.ObjectReference kind:string lastTimestamp:time message:string
        metadata:meta.ObjectMeta reason:string related:core.ObjectReference
        reportingComponent:string reportingInstance:string series:core.EventSeries
        source:core.EventSource type:string
core.EventSeries count:integer lastObservedTime:time
core.EventSource component:string host:string
";

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
