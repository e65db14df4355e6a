//! Applying the bodies of PATCH requests: JSON patch (RFC 6902), JSON merge
//! patch (RFC 7386) and Kubernetes' strategic merge patch.
//!
//! The API server reads the current object, calls [`apply`] with the request's
//! body and [`PatchType`], and then validates and stores the result like the
//! body of a PUT. This module is pure: it never sees the store, and the target
//! is borrowed, so a failed patch leaves nothing half-applied. Errors come in
//! two kinds that map to two answers: a patch that is malformed whatever it
//! applies to ([`PatchError::Malformed`], 400 BadRequest) and one that is
//! well-formed but does not fit this object ([`PatchError::Unprocessable`],
//! 422 Invalid).
//!
//! # Strategic merge patch
//!
//! kubectl sends strategic merge patches for `apply`, `set image`, `rollout
//! restart` and `cordon`, and relies on them to edit lists without resending
//! them. This is a port of apimachinery's `pkg/util/strategicpatch` apply path
//! (`StrategicMergeMapPatch`), reading the Go struct tags from the type table
//! the OpenAPI documents are built from (`objects::types`: each kind's types
//! in its file under `objects/`), so merge keys are written once:
//!
//! - Objects merge recursively and `null` deletes a field, as in a merge patch.
//! - Lists whose field declares a merge key (`containers` by `name`, container
//!   `ports` by `containerPort`, Service `ports` by `port`, `conditions` by
//!   `type`...) merge element by element; `metadata.finalizers` is a set of
//!   scalars; every other list is replaced.
//! - Directives: `$patch: replace|delete|merge` in an object or a list element,
//!   `$retainKeys`, `$setElementOrder/<list>` and
//!   `$deleteFromPrimitiveList/<list>`. Directives are consumed: none is ever
//!   left in the result, not even inside a value that is added whole. Any other
//!   key starting with `$` is rejected.
//! - Order of a merged list follows apimachinery exactly: `$setElementOrder`
//!   first, then the order of the patch list, then the order on the server.
//!   Without `$setElementOrder`, an element the server does not have yet lands
//!   right after the element before it in the patch list, or at the front when
//!   it comes first there (kube-apiserver does the same; kubectl apply always
//!   sends `$setElementOrder` when it changes a list, and the order is then
//!   exactly the one it gives).
//!
//! Where apimachinery is quirky this module differs on purpose, never on
//! anything kubectl sends: `$patch: delete` in an object removes the field
//! (instead of leaving `{}`), `$patch: merge` is accepted as the no-op it names
//! (instead of an error), and unknown directives are errors (instead of
//! fields).
//!
//! # Hostile input
//!
//! Patches arrive from the network, so [`apply`] never panics and its work is
//! bounded. Nesting is measured without recursion and a patch deeper than
//! [`MAX_DEPTH`] is refused before anything recurses over it; the merges then
//! recurse at most once per level of the patch. Merged lists are matched by
//! hashing merge keys, never by nested scans. A JSON patch may have at most
//! [`MAX_JSON_PATCH_OPERATIONS`] operations (kube-apiserver's limit), may not
//! build a document deeper than [`MAX_DEPTH`], and `copy` cannot double the
//! document until memory runs out.

use crate::objects::{registry, types};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// The deepest nesting of objects and lists accepted in a patch, and built by
/// a JSON patch.
pub const MAX_DEPTH: usize = 100;

/// The most operations one JSON patch may hold (kube-apiserver's limit).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most JSON values a JSON patch may grow a document to, counting every
/// value it adds or copies: a guard against `copy` doubling the document.
const MAX_VALUES: usize = 1 << 21;

/// The directive key of an object: `$patch: replace|delete|merge`.
const DIRECTIVE: &str = "$patch";
/// The list of fields an object keeps before the patch merges into it.
const RETAIN_KEYS: &str = "$retainKeys";
/// Prefix of the directive giving the final order of a merged list.
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
/// Prefix of the directive listing values to remove from a set of scalars.
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Patch formats, by request Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`: a list of RFC 6902 operations.
    Json,
    /// `application/merge-patch+json`: an RFC 7386 merge patch.
    Merge,
    /// `application/strategic-merge-patch+json`: Kubernetes' strategic merge patch.
    StrategicMerge,
}

impl PatchType {
    /// The patch type a request's `Content-Type` names, ignoring parameters
    /// such as `;charset=utf-8` and letter case; `None` for anything else
    /// (which the API answers with 415 Unsupported Media Type).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media_type = content_type
            .split_once(';')
            .map_or(content_type, |(media_type, _)| media_type)
            .trim();
        [Self::Json, Self::Merge, Self::StrategicMerge]
            .into_iter()
            .find(|ty| media_type.eq_ignore_ascii_case(ty.content_type()))
    }

    /// The media type of this patch format, e.g. to list the accepted ones.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json-patch+json",
            Self::Merge => "application/merge-patch+json",
            Self::StrategicMerge => "application/strategic-merge-patch+json",
        }
    }
}

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch document is malformed (answers 400 BadRequest): wrong shape,
    /// unknown directive, bad JSON pointer...
    #[error("{0}")]
    Malformed(String),
    /// The patch is well-formed but cannot apply to this object (answers 422
    /// Invalid), e.g. a JSON-patch `test` op failed or a path does not exist.
    #[error("{0}")]
    Unprocessable(String),
}

fn malformed(message: impl Into<String>) -> PatchError {
    PatchError::Malformed(message.into())
}

fn unprocessable(message: impl Into<String>) -> PatchError {
    PatchError::Unprocessable(message.into())
}

/// Applies `patch` of type `ty` to `target` (the current object as JSON) for
/// an object of kind `kind` ("Pod", "Deployment", "ReplicaSet", "Service",
/// "Endpoints", "Event", "Namespace", "Node", or "Scale") and returns the
/// patched object.
///
/// `kind` only matters to a strategic merge patch, which needs to know which
/// lists merge by which key; an unknown kind gets the rules of `metadata` and
/// `status` only. `target` is left untouched.
///
/// # Errors
/// [`PatchError::Malformed`] when the patch is not a JSON object (merge and
/// strategic merge) or a list of operations (JSON patch), nests deeper than
/// [`MAX_DEPTH`], or carries a bad pointer, an unknown operation or directive,
/// or a list element without its merge key. [`PatchError::Unprocessable`] when
/// a JSON patch's `test` fails or its path does not exist in `target`, when a
/// JSON patch would grow the document past the limits, or when `target` is not
/// an object for a strategic merge patch.
pub fn apply(
    kind: &str,
    target: &Value,
    patch: &Value,
    ty: PatchType,
) -> Result<Value, PatchError> {
    if nesting(patch, MAX_DEPTH) > MAX_DEPTH {
        return Err(malformed(format!(
            "the patch nests objects and lists deeper than {MAX_DEPTH} levels"
        )));
    }
    match ty {
        PatchType::Json => apply_json(target, patch),
        PatchType::Merge => apply_merge(target, patch),
        PatchType::StrategicMerge => apply_strategic(kind, target, patch),
    }
}

// ---------------------------------------------------------------------------
// Measuring values without recursion.

/// The direct children of a list or an object.
fn children(value: &Value) -> impl Iterator<Item = &Value> {
    let items = value.as_array().into_iter().flatten();
    let fields = value
        .as_object()
        .into_iter()
        .flat_map(|fields| fields.values());
    items.chain(fields)
}

/// How many objects and lists deep `value` nests (0 for a scalar), or any
/// number above `limit` as soon as that is known.
fn nesting(value: &Value, limit: usize) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 1)];
    while let Some((value, level)) = pending.pop() {
        if !(value.is_array() || value.is_object()) {
            continue;
        }
        deepest = deepest.max(level);
        if deepest > limit {
            break;
        }
        pending.extend(children(value).map(|child| (child, level + 1)));
    }
    deepest
}

/// How many JSON values `value` holds, itself included, or any number above
/// `limit` as soon as that is known.
fn size(value: &Value, limit: usize) -> usize {
    let mut count = 0;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        count += 1;
        if count > limit {
            break;
        }
        pending.extend(children(value));
    }
    count
}

/// "an object", "a list"... for error messages.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `text` cut to a length fit for an error message.
fn shorten(text: &str) -> String {
    const LIMIT: usize = 64;
    match text.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// JSON merge patch (RFC 7386).

fn apply_merge(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(malformed(format!(
            "a merge patch must be a JSON object, not {}",
            describe(patch)
        )));
    }
    let mut document = target.clone();
    merge_patch(&mut document, patch);
    Ok(document)
}

/// RFC 7386 `MergePatch`, recursing once per level of `patch` (whose depth
/// [`apply`] has bounded).
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (name, value) in fields {
            if value.is_null() {
                target.remove(name);
            } else {
                merge_patch(target.entry(name.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// JSON patch (RFC 6902).

fn apply_json(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    use json_patch::{
        AddOperation, CopyOperation, MoveOperation, PatchOperation, ReplaceOperation,
    };

    if !patch.is_array() {
        return Err(malformed(format!(
            "a JSON patch must be a list of operations, not {}",
            describe(patch)
        )));
    }
    let operations = json_patch::Patch::deserialize(patch)
        .map_err(|e| malformed(format!("malformed JSON patch: {e}")))?;
    if operations.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(malformed(format!(
            "a JSON patch may hold at most {MAX_JSON_PATCH_OPERATIONS} operations, this one has {}",
            operations.len()
        )));
    }
    // Work on a copy, one operation at a time: the copy makes the patch atomic
    // (it is dropped on error), and stepping lets each operation be checked
    // against the limits before it runs.
    let mut document = target.clone();
    let mut values = size(&document, MAX_VALUES);
    for (index, operation) in operations.iter().enumerate() {
        let inserted = match operation {
            PatchOperation::Add(AddOperation { path, value })
            | PatchOperation::Replace(ReplaceOperation { path, value }) => {
                Some((path, Some(value)))
            }
            PatchOperation::Copy(CopyOperation { from, path })
            | PatchOperation::Move(MoveOperation { from, path }) => {
                Some((path, document.pointer(from.as_str())))
            }
            PatchOperation::Remove(_) | PatchOperation::Test(_) => None,
        };
        if let Some((path, Some(value))) = inserted {
            if path.count() + nesting(value, MAX_DEPTH) > MAX_DEPTH {
                return Err(unprocessable(format!(
                    "JSON patch operation {index} ({}) would nest the object deeper than {MAX_DEPTH} levels",
                    operation_name(operation)
                )));
            }
            if !matches!(operation, PatchOperation::Move(_)) {
                values = values.saturating_add(size(value, MAX_VALUES));
                if values > MAX_VALUES {
                    return Err(unprocessable(format!(
                        "JSON patch operation {index} ({}) would grow the object past {MAX_VALUES} values",
                        operation_name(operation)
                    )));
                }
            }
        }
        json_patch::patch_unsafe(&mut document, std::slice::from_ref(operation))
            .map_err(|e| json_patch_error(index, operation, &e))?;
    }
    Ok(document)
}

fn operation_name(operation: &json_patch::PatchOperation) -> &'static str {
    use json_patch::PatchOperation;
    match operation {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

/// Maps a failed operation to our errors: moving a value into itself can
/// never work (400), everything else depends on the object (422).
fn json_patch_error(
    index: usize,
    operation: &json_patch::PatchOperation,
    error: &json_patch::PatchError,
) -> PatchError {
    use json_patch::PatchErrorKind;
    let name = operation_name(operation);
    let path = shorten(operation.path().as_str());
    match &error.kind {
        PatchErrorKind::TestFailed => unprocessable(format!(
            "JSON patch operation {index} (test) failed: the value at \"{path}\" is not the expected value"
        )),
        PatchErrorKind::InvalidFromPointer => unprocessable(format!(
            "JSON patch operation {index} ({name}) failed: its \"from\" path does not exist in the object"
        )),
        PatchErrorKind::InvalidPointer => unprocessable(format!(
            "JSON patch operation {index} ({name}) failed: the path \"{path}\" does not exist in the object"
        )),
        PatchErrorKind::CannotMoveInsideItself => malformed(format!(
            "JSON patch operation {index} (move) moves a value inside itself (to \"{path}\")"
        )),
        other => unprocessable(format!(
            "JSON patch operation {index} ({name}) failed at \"{path}\": {other}"
        )),
    }
}

// ---------------------------------------------------------------------------
// Strategic merge patch: the schema.

/// The type an object in the document stands for, as far as patching
/// cares: a type of [`types`] (whose `patchStrategy`/`patchMergeKey` tags,
/// the same the OpenAPI documents publish, say which lists merge and by
/// which key), the root or status of a kind without a type tree, or
/// `Opaque` for everything else (its maps merge, its lists are replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    /// A named type of [`types`] (`core.PodSpec`).
    Typed(&'static str),
    /// The root of a kind without a type tree: `metadata` is an ObjectMeta.
    Untyped,
    /// Its `status`: `conditions` merge by `type`.
    UntypedStatus,
    Opaque,
}

/// How a list merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    /// Objects, matched by the value of this field.
    Keyed(&'static str),
    /// Scalars, as a set.
    Scalars,
}

impl From<types::ListKind> for ListKind {
    fn from(kind: types::ListKind) -> ListKind {
        match kind {
            types::ListKind::Keyed(key) => ListKind::Keyed(key),
            types::ListKind::Scalars => ListKind::Scalars,
        }
    }
}

/// What the schema says about one field.
#[derive(Debug, Clone, Copy)]
struct Field {
    /// The type of the field's value, or of its elements for a list.
    schema: Schema,
    /// How it merges if it is a list; `None` replaces it.
    list: Option<ListKind>,
}

impl Schema {
    /// The schema of a whole object of `kind`.
    fn root(kind: &str) -> Schema {
        registry::by_kind(kind)
            .and_then(types::kind_type)
            .map_or(Schema::Untyped, Schema::Typed)
    }

    /// What the type table says about field `name` of this type.
    fn field(self, name: &str) -> Field {
        const OPAQUE: Field = Field {
            schema: Schema::Opaque,
            list: None,
        };
        match self {
            Schema::Typed(ty) => match types::field(ty, name) {
                Some(field) => {
                    // A map of T is opaque: its keys are not T's fields.
                    let schema = match field.referenced() {
                        Some(inner) if !field.ty.starts_with('{') => {
                            types::fields(inner).map_or(Schema::Opaque, |_| Schema::Typed(inner))
                        }
                        _ => Schema::Opaque,
                    };
                    Field {
                        schema,
                        list: field.list().map(ListKind::from),
                    }
                }
                None => OPAQUE,
            },
            Schema::Untyped => match name {
                "metadata" => Field {
                    schema: Schema::Typed("meta.ObjectMeta"),
                    list: None,
                },
                "status" => Field {
                    schema: Schema::UntypedStatus,
                    list: None,
                },
                _ => OPAQUE,
            },
            Schema::UntypedStatus if name == "conditions" => Field {
                schema: Schema::Opaque,
                list: Some(ListKind::Keyed("type")),
            },
            Schema::UntypedStatus | Schema::Opaque => OPAQUE,
        }
    }
}

/// A merge key's value, hashable. Numbers compare as JSON numbers (`80` equals
/// `80.0`), as they do in Go where both decode to `float64`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Bool(bool),
    Number(u64),
    String(String),
}

impl Key {
    fn of(value: &Value) -> Option<Key> {
        match value {
            Value::Bool(b) => Some(Key::Bool(*b)),
            // `+ 0.0` turns -0 into 0 so both hash alike.
            Value::Number(n) => n.as_f64().map(|f| Key::Number((f + 0.0).to_bits())),
            Value::String(s) => Some(Key::String(s.clone())),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }
}

impl ListKind {
    /// The key an element is matched by: its merge key's value, or itself.
    fn key_of(self, element: &Value) -> Option<Key> {
        match self {
            ListKind::Keyed(field) => element.as_object()?.get(field).and_then(Key::of),
            ListKind::Scalars => Key::of(element),
        }
    }

    /// What an element must be, for error messages.
    fn expectation(self) -> String {
        match self {
            ListKind::Keyed(field) => {
                format!("an object whose merge key `{field}` is a string, number or boolean")
            }
            ListKind::Scalars => "a string, number or boolean".to_owned(),
        }
    }
}

/// What `$patch` asks of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MapDirective {
    Merge,
    Replace,
    Delete,
}

impl MapDirective {
    fn of(fields: &Map<String, Value>) -> Result<MapDirective, PatchError> {
        match fields.get(DIRECTIVE) {
            None => Ok(MapDirective::Merge),
            Some(Value::String(directive)) => match directive.as_str() {
                "merge" => Ok(MapDirective::Merge),
                "replace" => Ok(MapDirective::Replace),
                "delete" => Ok(MapDirective::Delete),
                other => Err(malformed(format!(
                    "unknown `$patch` directive \"{}\": expected \"merge\", \"replace\" or \"delete\"",
                    shorten(other)
                ))),
            },
            Some(other) => Err(malformed(format!(
                "`$patch` must be a string, not {}",
                describe(other)
            ))),
        }
    }
}

fn is_directive(name: &str) -> bool {
    name == DIRECTIVE
        || name == RETAIN_KEYS
        || name.starts_with(SET_ELEMENT_ORDER)
        || name.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

// ---------------------------------------------------------------------------
// Strategic merge patch: merging.

fn apply_strategic(kind: &str, target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(malformed(format!(
            "a strategic merge patch must be a JSON object, not {}",
            describe(patch)
        )));
    };
    let Value::Object(current) = target else {
        return Err(unprocessable(format!(
            "a strategic merge patch applies to an object, and this one is {}",
            describe(target)
        )));
    };
    match merge_map(current.clone(), patch, Schema::root(kind), 0)? {
        Some(merged) => Ok(Value::Object(merged)),
        None => Err(malformed(
            "`$patch: delete` at the top of a patch would delete the whole object; use DELETE",
        )),
    }
}

/// Merges `patch` into `current` after its `$patch` directive; `None` when
/// the directive deletes the object.
fn merge_map(
    current: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Schema,
    depth: usize,
) -> Result<Option<Map<String, Value>>, PatchError> {
    match MapDirective::of(patch)? {
        MapDirective::Delete => Ok(None),
        MapDirective::Replace => merge_fields(Map::new(), patch, schema, depth).map(Some),
        MapDirective::Merge => merge_fields(current, patch, schema, depth).map(Some),
    }
}

/// Merges the fields of `patch` into `current`, in apimachinery's order:
/// `$retainKeys`, then the lists named by `$setElementOrder`, then the other
/// fields, then `$deleteFromPrimitiveList`. `$patch` is the caller's business.
fn merge_fields(
    mut current: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Schema,
    depth: usize,
) -> Result<Map<String, Value>, PatchError> {
    // [`apply`] bounds the patch's depth and every recursion here descends
    // one level of it, so this only guards against a future bug.
    if depth >= MAX_DEPTH {
        return Err(malformed(format!(
            "the patch nests objects and lists deeper than {MAX_DEPTH} levels"
        )));
    }

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        retain_keys(&mut current, patch, retain)?;
    }

    let mut ordered = HashSet::new();
    for (name, order) in patch {
        let Some(field) = name.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        if set_element_order(&mut current, patch, field, order, schema, depth)? {
            ordered.insert(field);
        }
    }

    for (name, value) in patch {
        if name.starts_with('$') {
            if is_directive(name) {
                continue;
            }
            return Err(malformed(format!(
                "unknown patch directive `{}`",
                shorten(name)
            )));
        }
        if ordered.contains(name.as_str()) {
            continue;
        }
        if value.is_null() {
            current.remove(name);
            continue;
        }
        let field = schema.field(name);
        let merged = match current.get_mut(name) {
            Some(slot) => merge_value(std::mem::take(slot), value, name, field, depth)?,
            None => fresh(value, name, field, depth)?,
        };
        match merged {
            Some(merged) => {
                current.insert(name.clone(), merged);
            }
            None => {
                current.remove(name);
            }
        }
    }

    for (name, values) in patch {
        if let Some(field) = name.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            delete_from_primitive_list(&mut current, field, values)?;
        }
    }
    Ok(current)
}

/// `$retainKeys`: clears the fields of `current` not listed, after checking
/// that the patch sets no field outside the list.
fn retain_keys(
    current: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
) -> Result<(), PatchError> {
    let Value::Array(names) = retain else {
        return Err(malformed(format!(
            "`$retainKeys` must be a list of field names, not {}",
            describe(retain)
        )));
    };
    let mut kept = HashSet::with_capacity(names.len());
    for name in names {
        let Some(name) = name.as_str() else {
            return Err(malformed(format!(
                "`$retainKeys` must list field names, not {}",
                describe(name)
            )));
        };
        kept.insert(name);
    }
    if let Some(name) = patch
        .iter()
        .find(|(name, value)| {
            !name.starts_with('$') && !value.is_null() && !kept.contains(name.as_str())
        })
        .map(|(name, _)| name)
    {
        return Err(malformed(format!(
            "the patch sets field `{}`, which its `$retainKeys` does not keep",
            shorten(name)
        )));
    }
    current.retain(|name, _| kept.contains(name.as_str()));
    Ok(())
}

/// `$setElementOrder/<field>`: merges the list `field` (when the patch has it)
/// and orders the result. Returns whether `field` was handled, so that the
/// patch's value for it is not merged again; a field that is not a merging
/// list is left to the ordinary merge, and the directive is dropped.
fn set_element_order(
    current: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    field: &str,
    order: &Value,
    schema: Schema,
    depth: usize,
) -> Result<bool, PatchError> {
    if field.is_empty() {
        return Err(malformed("`$setElementOrder/` must name a list field"));
    }
    let Value::Array(order) = order else {
        return Err(malformed(format!(
            "`$setElementOrder/{}` must be a list, not {}",
            shorten(field),
            describe(order)
        )));
    };
    let spec = schema.field(field);
    let Some(kind) = spec.list else {
        return Ok(false);
    };
    let patch_list = match patch.get(field) {
        None => None,
        Some(Value::Array(list)) => Some(list.as_slice()),
        Some(other) => {
            return Err(malformed(format!(
                "`{0}` must be a list when `$setElementOrder/{0}` is given, not {1}",
                shorten(field),
                describe(other)
            )))
        }
    };
    check_order(patch_list, order, field, kind)?;

    let existing = match current.get_mut(field) {
        Some(Value::Array(list)) => Some(std::mem::take(list)),
        _ => None,
    };
    let server = existing
        .as_deref()
        .map(|list| positions(list.iter().map(|element| kind.key_of(element))))
        .unwrap_or_default();
    let merged = match (existing, patch_list) {
        (None, None) => return Ok(true),
        (Some(existing), None) => existing,
        (existing, Some(list)) => merge_list(
            existing.unwrap_or_default(),
            list,
            field,
            kind,
            spec.schema,
            depth + 1,
        )?,
    };
    let rank = positions(order.iter().map(|element| kind.key_of(element)));
    current.insert(
        field.to_owned(),
        Value::Array(arrange(merged, &rank, &server, kind)),
    );
    Ok(true)
}

/// apimachinery's `validatePatchWithSetOrderList`: every entry of the order
/// names an element, and the patch's elements (directives aside) appear in
/// the same relative order as in the order list.
fn check_order(
    patch_list: Option<&[Value]>,
    order: &[Value],
    field: &str,
    kind: ListKind,
) -> Result<(), PatchError> {
    if let Some(bad) = order.iter().find(|entry| kind.key_of(entry).is_none()) {
        return Err(malformed(format!(
            "every entry of `$setElementOrder/{}` must be {}, not {}",
            shorten(field),
            kind.expectation(),
            describe(bad)
        )));
    }
    let Some(patch_list) = patch_list else {
        return Ok(());
    };
    if order.is_empty() {
        return Ok(());
    }
    let mut remaining = order.iter().map(|entry| kind.key_of(entry));
    for element in patch_list {
        if element
            .as_object()
            .is_some_and(|fields| fields.contains_key(DIRECTIVE))
        {
            continue;
        }
        let Some(key) = kind.key_of(element) else {
            return Err(malformed(format!(
                "every element of `{}` must be {}, not {}",
                shorten(field),
                kind.expectation(),
                describe(element)
            )));
        };
        if !remaining.any(|entry| entry.as_ref() == Some(&key)) {
            return Err(malformed(format!(
                "the order of `{0}` in the patch does not match `$setElementOrder/{0}`",
                shorten(field)
            )));
        }
    }
    Ok(())
}

/// `$deleteFromPrimitiveList/<field>`: removes every listed value from the
/// list `field`; nothing happens when the object has no such list.
fn delete_from_primitive_list(
    current: &mut Map<String, Value>,
    field: &str,
    values: &Value,
) -> Result<(), PatchError> {
    if field.is_empty() {
        return Err(malformed(
            "`$deleteFromPrimitiveList/` must name a list field",
        ));
    }
    let Value::Array(values) = values else {
        return Err(malformed(format!(
            "`$deleteFromPrimitiveList/{}` must be a list, not {}",
            shorten(field),
            describe(values)
        )));
    };
    let mut doomed = HashSet::with_capacity(values.len());
    for value in values {
        let Some(key) = Key::of(value) else {
            return Err(malformed(format!(
                "`$deleteFromPrimitiveList/{}` must list strings, numbers or booleans, not {}",
                shorten(field),
                describe(value)
            )));
        };
        doomed.insert(key);
    }
    if let Some(Value::Array(list)) = current.get_mut(field) {
        list.retain(|element| Key::of(element).is_none_or(|key| !doomed.contains(&key)));
    }
    Ok(())
}

/// Merges the patch's `value` for field `name` into the object's `current`
/// value; `None` when a directive deletes the field.
fn merge_value(
    current: Value,
    value: &Value,
    name: &str,
    field: Field,
    depth: usize,
) -> Result<Option<Value>, PatchError> {
    match (current, value) {
        (Value::Object(current), Value::Object(patch)) => {
            Ok(merge_map(current, patch, field.schema, depth + 1)?.map(Value::Object))
        }
        (Value::Array(current), Value::Array(patch)) => match field.list {
            Some(kind) => merge_list(current, patch, name, kind, field.schema, depth + 1)
                .map(|merged| Some(Value::Array(merged))),
            None => fresh(value, name, field, depth),
        },
        (_, value) => fresh(value, name, field, depth),
    }
}

/// The patch's `value` for field `name` where nothing merges with it (the
/// object lacks the field, has another type there, or the list is atomic),
/// with its directives resolved as if merged into an empty value. `None`
/// when a directive deletes it.
fn fresh(
    value: &Value,
    name: &str,
    field: Field,
    depth: usize,
) -> Result<Option<Value>, PatchError> {
    match value {
        Value::Object(patch) => {
            Ok(merge_map(Map::new(), patch, field.schema, depth + 1)?.map(Value::Object))
        }
        Value::Array(list) => match field.list {
            Some(kind) => merge_list(Vec::new(), list, name, kind, field.schema, depth + 1)
                .map(|merged| Some(Value::Array(merged))),
            None => {
                let mut replaced = Vec::with_capacity(list.len());
                for element in list {
                    replaced.extend(fresh(element, name, field, depth + 1)?);
                }
                Ok(Some(Value::Array(replaced)))
            }
        },
        scalar => Ok(Some(scalar.clone())),
    }
}

fn merge_list(
    current: Vec<Value>,
    patch: &[Value],
    field: &str,
    kind: ListKind,
    schema: Schema,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    match kind {
        ListKind::Keyed(key) => merge_keyed(current, patch, field, key, schema, depth),
        ListKind::Scalars => merge_scalars(current, patch, field),
    }
}

/// apimachinery's `mergeSlice` for a list of objects merged by `key`.
fn merge_keyed(
    current: Vec<Value>,
    patch: &[Value],
    field: &str,
    key: &'static str,
    schema: Schema,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    let kind = ListKind::Keyed(key);
    let merge_key = |fields: &Map<String, Value>| {
        fields.get(key).and_then(Key::of).ok_or_else(|| {
            malformed(format!(
                "every element of `{}` needs its merge key `{key}` (a string, number or boolean)",
                shorten(field)
            ))
        })
    };
    let mut doomed = HashSet::new();
    let mut replace = false;
    let mut updates = Vec::with_capacity(patch.len());
    for element in patch {
        let Value::Object(fields) = element else {
            return Err(malformed(format!(
                "`{}` merges its elements by `{key}`, so each must be an object, not {}",
                shorten(field),
                describe(element)
            )));
        };
        match MapDirective::of(fields)? {
            MapDirective::Delete => {
                doomed.insert(merge_key(fields)?);
            }
            MapDirective::Replace => replace = true,
            MapDirective::Merge => updates.push((merge_key(fields)?, fields)),
        }
    }

    if replace {
        // `{"$patch": "replace"}` as an element: the list becomes the patch's
        // other elements.
        let mut replaced = Vec::with_capacity(updates.len());
        for (_, fields) in updates {
            replaced.push(Value::Object(merge_fields(
                Map::new(),
                fields,
                schema,
                depth + 1,
            )?));
        }
        return Ok(replaced);
    }

    let mut merged: Vec<Value> = current
        .into_iter()
        .filter(|element| {
            kind.key_of(element)
                .is_none_or(|key| !doomed.contains(&key))
        })
        .collect();
    let server = positions(merged.iter().map(|element| kind.key_of(element)));
    let mut index = server.clone();
    for (key, fields) in &updates {
        match index.get(key).and_then(|&at| merged.get_mut(at)) {
            Some(slot) => {
                let existing = match std::mem::take(slot) {
                    Value::Object(existing) => existing,
                    _ => Map::new(),
                };
                *slot = Value::Object(merge_fields(existing, fields, schema, depth + 1)?);
            }
            None => {
                merged.push(Value::Object(merge_fields(
                    Map::new(),
                    fields,
                    schema,
                    depth + 1,
                )?));
                index.insert(key.clone(), merged.len() - 1);
            }
        }
    }
    let rank = positions(updates.iter().map(|(key, _)| Some(key.clone())));
    Ok(arrange(merged, &rank, &server, kind))
}

/// apimachinery's `mergeSlice` for a set of scalars: the union, without
/// duplicates.
fn merge_scalars(
    current: Vec<Value>,
    patch: &[Value],
    field: &str,
) -> Result<Vec<Value>, PatchError> {
    let kind = ListKind::Scalars;
    let mut added = Vec::with_capacity(patch.len());
    for element in patch {
        let Some(key) = Key::of(element) else {
            return Err(malformed(format!(
                "`{}` is a set of strings, numbers or booleans; {} cannot merge into it",
                shorten(field),
                describe(element)
            )));
        };
        added.push(Some(key));
    }
    let server = positions(current.iter().map(|element| kind.key_of(element)));
    let mut seen = HashSet::new();
    let mut merged = Vec::with_capacity(current.len() + patch.len());
    for element in current.into_iter().chain(patch.iter().cloned()) {
        let duplicate = Key::of(&element).is_some_and(|key| !seen.insert(key));
        if !duplicate {
            merged.push(element);
        }
    }
    Ok(arrange(
        merged,
        &positions(added.into_iter()),
        &server,
        kind,
    ))
}

/// The position of the first element with each key.
fn positions(keys: impl Iterator<Item = Option<Key>>) -> HashMap<Key, usize> {
    let mut first = HashMap::new();
    for (at, key) in keys.enumerate() {
        if let Some(key) = key {
            first.entry(key).or_insert(at);
        }
    }
    first
}

/// apimachinery's `normalizeElementOrder`: the elements named in `rank` come
/// in that order, the others keep their relative order, and the two runs are
/// interleaved by the positions the elements had on the server (`server`).
fn arrange(
    elements: Vec<Value>,
    rank: &HashMap<Key, usize>,
    server: &HashMap<Key, usize>,
    kind: ListKind,
) -> Vec<Value> {
    let total = elements.len();
    let mut named = Vec::new();
    let mut others = Vec::new();
    for element in elements {
        let key = kind.key_of(&element);
        let on_server = key.as_ref().and_then(|key| server.get(key).copied());
        match key.as_ref().and_then(|key| rank.get(key).copied()) {
            Some(at) => named.push((at, on_server, element)),
            None => others.push((on_server, element)),
        }
    }
    named.sort_by_key(|(at, _, _)| *at);

    // `mergeSortedSlice`: take a server-only element first only when both
    // were on the server and it came first there.
    let mut arranged = Vec::with_capacity(total);
    let mut left = others.into_iter().peekable();
    let mut right = named
        .into_iter()
        .map(|(_, on_server, element)| (on_server, element))
        .peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((l, _)), Some((r, _))) => matches!((l, r), (Some(l), Some(r)) if l < r),
        };
        let next = if take_left { left.next() } else { right.next() };
        arranged.extend(next.map(|(_, element)| element));
    }
    arranged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(kind: &str, target: &Value, patch: &Value) -> Result<Value, PatchError> {
        apply(kind, target, patch, PatchType::StrategicMerge)
    }

    /// Fails when any key of `value` starts with `$`.
    fn assert_no_directives(value: &Value) {
        let mut pending = vec![value];
        while let Some(value) = pending.pop() {
            if let Value::Object(fields) = value {
                if let Some(name) = fields.keys().find(|name| name.starts_with('$')) {
                    panic!("directive `{name}` left in the result: {value}");
                }
            }
            pending.extend(children(value));
        }
    }

    /// `levels` objects nested as `{"a": {"a": ... leaf}}`, built without recursion.
    fn nested(levels: usize, leaf: Value) -> Value {
        let mut value = leaf;
        for _ in 0..levels {
            let mut fields = Map::new();
            fields.insert("a".to_owned(), value);
            value = Value::Object(fields);
        }
        value
    }

    /// Drops a value of any depth without recursing (serde_json's drop recurses).
    fn dismantle(value: Value) {
        let mut pending = vec![value];
        while let Some(value) = pending.pop() {
            match value {
                Value::Array(items) => pending.extend(items),
                Value::Object(fields) => pending.extend(fields.into_iter().map(|(_, v)| v)),
                _ => {}
            }
        }
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}\n"},
                "finalizers": ["a.example/one", "a.example/two", "a.example/three"]
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
                },
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "securityContext": {"runAsNonRoot": true},
                        "containers": [
                            {
                                "name": "nginx",
                                "image": "nginx:1.25",
                                "ports": [
                                    {"containerPort": 80, "protocol": "TCP", "name": "http"},
                                    {"containerPort": 443, "protocol": "TCP", "name": "https"}
                                ],
                                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "b"}]
                            },
                            {"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "infinity"]}
                        ],
                        "tolerations": [{"key": "k", "operator": "Exists"}]
                    }
                }
            },
            "status": {
                "replicas": 2,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
                ]
            }
        })
    }

    /// `deployment()` with `edit` applied to its JSON.
    fn deployment_with(edit: impl FnOnce(&mut Value)) -> Value {
        let mut object = deployment();
        edit(&mut object);
        object
    }

    fn containers(object: &mut Value) -> &mut Vec<Value> {
        object["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("the fixture has containers")
    }

    fn service() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "type": "ClusterIP",
                "selector": {"app": "web"},
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                    {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}
                ]
            }
        })
    }

    #[test]
    fn content_types() {
        let cases = [
            ("application/json-patch+json", Some(PatchType::Json)),
            ("application/merge-patch+json", Some(PatchType::Merge)),
            (
                "application/strategic-merge-patch+json",
                Some(PatchType::StrategicMerge),
            ),
            (
                "application/strategic-merge-patch+json; charset=utf-8",
                Some(PatchType::StrategicMerge),
            ),
            (
                "Application/Merge-Patch+JSON;charset=UTF-8",
                Some(PatchType::Merge),
            ),
            (" application/json-patch+json ", Some(PatchType::Json)),
            ("application/apply-patch+yaml", None),
            ("application/json", None),
            ("", None),
        ];
        for (content_type, want) in cases {
            assert_eq!(
                PatchType::from_content_type(content_type),
                want,
                "{content_type:?}"
            );
        }
        for ty in [PatchType::Json, PatchType::Merge, PatchType::StrategicMerge] {
            assert_eq!(PatchType::from_content_type(ty.content_type()), Some(ty));
        }
    }

    #[test]
    fn merge_patch_rfc7386() {
        let cases = [
            (
                "null deletes, objects merge",
                json!({"a": 1, "b": {"c": 2, "d": 3}}),
                json!({"a": null, "b": {"c": null, "e": 4}}),
                json!({"b": {"d": 3, "e": 4}}),
            ),
            (
                "arrays replace",
                json!({"list": [1, 2, 3], "objects": [{"name": "x", "v": 1}]}),
                json!({"list": [4], "objects": [{"name": "x"}]}),
                json!({"list": [4], "objects": [{"name": "x"}]}),
            ),
            (
                "scalar replaced by object, nulls inside new objects dropped",
                json!({"a": "text"}),
                json!({"a": {"b": 1, "c": null}, "new": {"d": null}}),
                json!({"a": {"b": 1}, "new": {}}),
            ),
            (
                "object replaced by scalar",
                json!({"a": {"b": 1}}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                "deleting a missing key is a no-op",
                json!({"a": 1}),
                json!({"zzz": null}),
                json!({"a": 1}),
            ),
            (
                "directives are ordinary keys in a merge patch",
                json!({"spec": {"replicas": 1}}),
                json!({"spec": {"replicas": 3, "$patch": "replace"}}),
                json!({"spec": {"replicas": 3, "$patch": "replace"}}),
            ),
            (
                "kubectl scale",
                json!({"kind": "Scale", "spec": {"replicas": 1}, "status": {"replicas": 1}}),
                json!({"spec": {"replicas": 5}}),
                json!({"kind": "Scale", "spec": {"replicas": 5}, "status": {"replicas": 1}}),
            ),
            ("empty patch", json!({"a": 1}), json!({}), json!({"a": 1})),
        ];
        for (name, target, patch, want) in cases {
            let got = apply("Pod", &target, &patch, PatchType::Merge)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn json_patch_ops() {
        let target =
            json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"list": [1, 2, 3]}});
        let cases = [
            (
                "add to an object and to a list",
                json!([
                    {"op": "add", "path": "/metadata/labels/b", "value": "2"},
                    {"op": "add", "path": "/spec/list/1", "value": 9},
                    {"op": "add", "path": "/spec/list/-", "value": 4}
                ]),
                json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}, "spec": {"list": [1, 9, 2, 3, 4]}}),
            ),
            (
                "remove and replace",
                json!([
                    {"op": "remove", "path": "/metadata/labels/a"},
                    {"op": "replace", "path": "/spec/list", "value": []}
                ]),
                json!({"metadata": {"name": "p", "labels": {}}, "spec": {"list": []}}),
            ),
            (
                "move and copy",
                json!([
                    {"op": "copy", "from": "/metadata/name", "path": "/metadata/labels/name"},
                    {"op": "move", "from": "/spec/list", "path": "/spec/items"}
                ]),
                json!({"metadata": {"name": "p", "labels": {"a": "1", "name": "p"}}, "spec": {"items": [1, 2, 3]}}),
            ),
            (
                "passing test",
                json!([
                    {"op": "test", "path": "/metadata/labels/a", "value": "1"},
                    {"op": "replace", "path": "/metadata/labels/a", "value": "2"}
                ]),
                json!({"metadata": {"name": "p", "labels": {"a": "2"}}, "spec": {"list": [1, 2, 3]}}),
            ),
            (
                "escaped pointer",
                json!([{"op": "add", "path": "/metadata/labels/example.com~1tier", "value": "web"}]),
                json!({"metadata": {"name": "p", "labels": {"a": "1", "example.com/tier": "web"}}, "spec": {"list": [1, 2, 3]}}),
            ),
            ("no operations", json!([]), target.clone()),
        ];
        for (name, patch, want) in cases {
            let got = apply("Pod", &target, &patch, PatchType::Json)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn json_patch_that_does_not_fit_is_unprocessable() {
        let target =
            json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"list": [1]}});
        let cases = [
            (
                "failing test",
                json!([{"op": "test", "path": "/metadata/labels/a", "value": "2"}]),
            ),
            (
                "test of a missing path",
                json!([{"op": "test", "path": "/nope", "value": 1}]),
            ),
            (
                "remove a missing path",
                json!([{"op": "remove", "path": "/metadata/labels/zzz"}]),
            ),
            (
                "replace a missing path",
                json!([{"op": "replace", "path": "/spec/nope/x", "value": 1}]),
            ),
            (
                "add under a missing parent",
                json!([{"op": "add", "path": "/spec/nope/x", "value": 1}]),
            ),
            (
                "index out of range",
                json!([{"op": "add", "path": "/spec/list/5", "value": 1}]),
            ),
            (
                "copy from a missing path",
                json!([{"op": "copy", "from": "/nope", "path": "/x"}]),
            ),
            (
                "second op fails after the first applied",
                json!([
                    {"op": "replace", "path": "/metadata/name", "value": "q"},
                    {"op": "test", "path": "/metadata/name", "value": "p"}
                ]),
            ),
        ];
        for (name, patch) in cases {
            match apply("Pod", &target, &patch, PatchType::Json) {
                Err(PatchError::Unprocessable(message)) => assert!(!message.is_empty(), "{name}"),
                other => panic!("{name}: expected Unprocessable, got {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_patches() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let cases = [
            ("merge patch that is a list", PatchType::Merge, json!([1])),
            ("merge patch that is a string", PatchType::Merge, json!("x")),
            ("merge patch that is null", PatchType::Merge, Value::Null),
            (
                "json patch that is an object",
                PatchType::Json,
                json!({"op": "add"}),
            ),
            (
                "json patch with an unknown op",
                PatchType::Json,
                json!([{"op": "frobnicate", "path": "/a"}]),
            ),
            (
                "json patch without value",
                PatchType::Json,
                json!([{"op": "add", "path": "/a"}]),
            ),
            (
                "json patch with a relative pointer",
                PatchType::Json,
                json!([{"op": "add", "path": "a", "value": 1}]),
            ),
            (
                "json patch op that is not an object",
                PatchType::Json,
                json!([1]),
            ),
            (
                "json patch moving a value into itself",
                PatchType::Json,
                json!([{"op": "move", "from": "/spec", "path": "/spec/containers/0/x"}]),
            ),
            (
                "strategic patch that is a list",
                PatchType::StrategicMerge,
                json!([]),
            ),
            (
                "strategic patch that is a number",
                PatchType::StrategicMerge,
                json!(3),
            ),
            (
                "unknown $patch value",
                PatchType::StrategicMerge,
                json!({"spec": {"$patch": "explode"}}),
            ),
            (
                "$patch that is not a string",
                PatchType::StrategicMerge,
                json!({"spec": {"$patch": true}}),
            ),
            (
                "unknown $patch value in a list element",
                PatchType::StrategicMerge,
                json!({"spec": {"containers": [{"name": "c", "$patch": "explode"}]}}),
            ),
            (
                "unknown directive",
                PatchType::StrategicMerge,
                json!({"metadata": {"$frobnicate": 1}}),
            ),
            (
                "$patch: delete of the whole object",
                PatchType::StrategicMerge,
                json!({"$patch": "delete"}),
            ),
            (
                "container without its merge key",
                PatchType::StrategicMerge,
                json!({"spec": {"containers": [{"image": "nginx"}]}}),
            ),
            (
                "container that is not an object",
                PatchType::StrategicMerge,
                json!({"spec": {"containers": ["nginx"]}}),
            ),
            (
                "$patch: delete without the merge key",
                PatchType::StrategicMerge,
                json!({"spec": {"containers": [{"$patch": "delete"}]}}),
            ),
            (
                "$retainKeys that is not a list",
                PatchType::StrategicMerge,
                json!({"spec": {"$retainKeys": "containers"}}),
            ),
            (
                "patch sets a field $retainKeys drops",
                PatchType::StrategicMerge,
                json!({"spec": {"$retainKeys": ["containers"], "hostname": "h"}}),
            ),
            (
                "$setElementOrder that is not a list",
                PatchType::StrategicMerge,
                json!({"spec": {"$setElementOrder/containers": {"name": "c"}}}),
            ),
            (
                "$setElementOrder entry without the merge key",
                PatchType::StrategicMerge,
                json!({"spec": {"$setElementOrder/containers": [{"image": "c"}]}}),
            ),
            (
                "$setElementOrder disagreeing with the patch list",
                PatchType::StrategicMerge,
                json!({"spec": {
                    "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                    "containers": [{"name": "b"}, {"name": "a"}]
                }}),
            ),
            (
                "$setElementOrder with the list not a list",
                PatchType::StrategicMerge,
                json!({"spec": {"$setElementOrder/containers": [{"name": "c"}], "containers": {"name": "c"}}}),
            ),
            (
                "$setElementOrder without a field",
                PatchType::StrategicMerge,
                json!({"spec": {"$setElementOrder/": []}}),
            ),
            (
                "$deleteFromPrimitiveList that is not a list",
                PatchType::StrategicMerge,
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}}),
            ),
            (
                "$deleteFromPrimitiveList of objects",
                PatchType::StrategicMerge,
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [{"x": 1}]}}),
            ),
            (
                "object merged into a set of scalars",
                PatchType::StrategicMerge,
                json!({"metadata": {"finalizers": [{"name": "x"}]}}),
            ),
        ];
        for (name, ty, patch) in cases {
            match apply("Pod", &pod, &patch, ty) {
                Err(PatchError::Malformed(message)) => assert!(!message.is_empty(), "{name}"),
                other => panic!("{name}: expected Malformed, got {other:?}"),
            }
        }
    }

    /// The patch kubectl v1.32 `apply` sends when a manifest changes the image
    /// of one container and one env var: only the changes, plus
    /// `$setElementOrder` for each list it touched.
    #[test]
    fn strategic_kubectl_apply_image_change() {
        let target = deployment();
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}\n"}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                    "env": [{"name": "A", "value": "2"}],
                    "image": "nginx:1.26",
                    "name": "nginx"
                }]
            }}}
        });
        let want = deployment_with(|object| {
            object["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
                json!("{\"new\":true}\n");
            let containers = containers(object);
            containers[0]["image"] = json!("nginx:1.26");
            containers[0]["env"][0]["value"] = json!("2");
        });
        let got = smp("Deployment", &target, &patch).expect("kubectl's patch applies");
        assert_eq!(got, want);
        assert_no_directives(&got);
        // What a user checks: ports and the sidecar survive, in order.
        let spec = &got["spec"]["template"]["spec"];
        assert_eq!(
            spec["containers"][0]["ports"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(spec["containers"][1]["name"], "sidecar");
        assert_eq!(
            spec["containers"][0]["env"],
            json!([{"name": "A", "value": "2"}, {"name": "B", "value": "b"}])
        );
    }

    #[test]
    fn strategic_merges() {
        let cases: Vec<(&str, &str, Value, Value, Value)> = vec![
            (
                "kubectl apply adds a container at the end",
                "Deployment",
                deployment(),
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}, {"name": "log"}],
                    "containers": [{"name": "log", "image": "fluentbit:3", "env": [{"name": "X", "value": "1"}]}]
                }}}}),
                deployment_with(|o| {
                    containers(o).push(json!({"name": "log", "image": "fluentbit:3", "env": [{"name": "X", "value": "1"}]}));
                }),
            ),
            (
                "without $setElementOrder a new container goes first, as in kube-apiserver",
                "Deployment",
                deployment(),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "log", "image": "fluentbit:3"}]}}}}),
                deployment_with(|o| {
                    containers(o).insert(0, json!({"name": "log", "image": "fluentbit:3"}));
                }),
            ),
            (
                "kubectl apply deletes a container with $patch: delete",
                "Deployment",
                deployment(),
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "nginx"}],
                    "containers": [{"$patch": "delete", "name": "sidecar"}]
                }}}}),
                deployment_with(|o| {
                    containers(o).pop();
                }),
            ),
            (
                "kubectl set image on the second container keeps the order",
                "Deployment",
                deployment(),
                json!({"spec": {"template": {"spec": {"containers": [{"image": "busybox:1.37", "name": "sidecar"}]}}}}),
                deployment_with(|o| containers(o)[1]["image"] = json!("busybox:1.37")),
            ),
            (
                "$setElementOrder alone reorders",
                "Deployment",
                deployment(),
                json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}]}}}}),
                deployment_with(|o| containers(o).reverse()),
            ),
            (
                "$patch: replace on a map",
                "Deployment",
                deployment(),
                json!({"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "tier": "front"}}}}}),
                deployment_with(|o| {
                    o["spec"]["template"]["metadata"]["labels"] = json!({"tier": "front"})
                }),
            ),
            (
                "$patch: delete on a map removes it",
                "Deployment",
                deployment(),
                json!({"spec": {"template": {"spec": {"securityContext": {"$patch": "delete"}}}}}),
                deployment_with(|o| {
                    o["spec"]["template"]["spec"]
                        .as_object_mut()
                        .expect("pod spec")
                        .remove("securityContext");
                }),
            ),
            (
                "$patch: replace as a list element replaces the list",
                "Deployment",
                deployment(),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "env": [{"$patch": "replace"}, {"name": "Z", "value": "z"}]}]}}}}),
                deployment_with(|o| containers(o)[0]["env"] = json!([{"name": "Z", "value": "z"}])),
            ),
            (
                "$retainKeys: RollingUpdate to Recreate, as kubectl sends it",
                "Deployment",
                deployment(),
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}}),
                deployment_with(|o| o["spec"]["strategy"] = json!({"type": "Recreate"})),
            ),
            (
                "$retainKeys clears fields the patch does not mention",
                "Deployment",
                deployment(),
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
                deployment_with(|o| o["spec"]["strategy"] = json!({"type": "Recreate"})),
            ),
            (
                "$deleteFromPrimitiveList/finalizers",
                "Deployment",
                deployment(),
                json!({"metadata": {
                    "$setElementOrder/finalizers": ["a.example/one", "a.example/three"],
                    "$deleteFromPrimitiveList/finalizers": ["a.example/two"]
                }}),
                deployment_with(|o| {
                    o["metadata"]["finalizers"] = json!(["a.example/one", "a.example/three"])
                }),
            ),
            (
                "finalizers are a set: union without duplicates",
                "Deployment",
                deployment(),
                json!({"metadata": {
                    "$setElementOrder/finalizers": ["a.example/one", "a.example/two", "a.example/three", "a.example/four"],
                    "finalizers": ["a.example/four"]
                }}),
                deployment_with(|o| {
                    o["metadata"]["finalizers"] = json!([
                        "a.example/one",
                        "a.example/two",
                        "a.example/three",
                        "a.example/four"
                    ]);
                }),
            ),
            (
                "finalizers without $setElementOrder: no duplicates, apimachinery's order",
                "Deployment",
                deployment(),
                json!({"metadata": {"finalizers": ["a.example/two", "a.example/five"]}}),
                deployment_with(|o| {
                    o["metadata"]["finalizers"] = json!([
                        "a.example/one",
                        "a.example/two",
                        "a.example/five",
                        "a.example/three"
                    ]);
                }),
            ),
            (
                "$deleteFromPrimitiveList of a missing list adds nothing",
                "Pod",
                json!({"metadata": {"name": "p"}}),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
                json!({"metadata": {"name": "p"}}),
            ),
            (
                "container ports merge by containerPort",
                "Deployment",
                deployment(),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx",
                    "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}, {"containerPort": 9090}],
                    "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 9090, "name": "metrics"}]
                }]}}}}),
                deployment_with(|o| {
                    let ports = &mut containers(o)[0]["ports"];
                    ports[0]["name"] = json!("web");
                    ports
                        .as_array_mut()
                        .expect("ports")
                        .push(json!({"containerPort": 9090, "name": "metrics"}));
                }),
            ),
            (
                "Service ports merge by port",
                "Service",
                service(),
                json!({"spec": {
                    "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                    "ports": [{"port": 80, "targetPort": 9090}]
                }}),
                {
                    let mut svc = service();
                    svc["spec"]["ports"][0]["targetPort"] = json!(9090);
                    svc
                },
            ),
            (
                "Service port deleted by port",
                "Service",
                service(),
                json!({"spec": {"ports": [{"port": 443, "$patch": "delete"}]}}),
                {
                    let mut svc = service();
                    svc["spec"]["ports"].as_array_mut().expect("ports").pop();
                    svc
                },
            ),
            (
                "labels merge and null deletes",
                "Deployment",
                deployment(),
                json!({"metadata": {"labels": {"app": null, "tier": "front"}}}),
                deployment_with(|o| o["metadata"]["labels"] = json!({"tier": "front"})),
            ),
            (
                "lists without a strategy are replaced",
                "Deployment",
                deployment(),
                json!({"spec": {"template": {"spec": {
                    "tolerations": [{"key": "other", "operator": "Exists"}],
                    "containers": [{"name": "sidecar", "args": ["sleep", "1"]}]
                }}}}),
                deployment_with(|o| {
                    o["spec"]["template"]["spec"]["tolerations"] =
                        json!([{"key": "other", "operator": "Exists"}]);
                    containers(o)[1]["args"] = json!(["sleep", "1"]);
                }),
            ),
            (
                "status conditions merge by type",
                "Deployment",
                deployment(),
                json!({"status": {"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}}),
                deployment_with(|o| {
                    o["status"]["conditions"][1] = json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"});
                }),
            ),
            (
                "kubectl rollout restart",
                "Deployment",
                deployment(),
                json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}}),
                deployment_with(|o| {
                    o["spec"]["template"]["metadata"]["annotations"] =
                        json!({"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"});
                }),
            ),
            (
                "kubectl cordon",
                "Node",
                json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.1.0.0/24"}}),
                json!({"spec": {"unschedulable": true}}),
                json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.1.0.0/24", "unschedulable": true}}),
            ),
            (
                "Node addresses merge by type",
                "Node",
                json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}]}}),
                json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}}),
                json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "n1"}]}}),
            ),
            (
                "Endpoints subsets are replaced",
                "Endpoints",
                json!({"subsets": [{"addresses": [{"ip": "10.1.0.1"}], "ports": [{"port": 80}]}]}),
                json!({"subsets": [{"addresses": [{"ip": "10.1.0.2"}], "ports": [{"port": 80}]}]}),
                json!({"subsets": [{"addresses": [{"ip": "10.1.0.2"}], "ports": [{"port": 80}]}]}),
            ),
            (
                "directives inside a value the object lacks are resolved",
                "Pod",
                json!({"metadata": {"name": "p"}, "spec": {}}),
                json!({"spec": {
                    "$setElementOrder/containers": [{"name": "c"}],
                    "containers": [{
                        "name": "c",
                        "$setElementOrder/env": [{"name": "A"}],
                        "env": [{"name": "A", "value": "1"}, {"name": "gone", "$patch": "delete"}]
                    }],
                    "securityContext": {"$patch": "delete"},
                    "nodeSelector": {"$patch": "replace", "disk": "ssd", "zone": null}
                }}),
                json!({"metadata": {"name": "p"}, "spec": {
                    "containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}],
                    "nodeSelector": {"disk": "ssd"}
                }}),
            ),
            (
                "preserve the patch's order (apimachinery test case)",
                "Pod",
                json!({"spec": {"containers": [{"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}]}}),
                json!({"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}}),
                json!({"spec": {"containers": [{"name": "2", "image": "b"}, {"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}}),
            ),
            (
                "merge key numbers compare as numbers",
                "Service",
                json!({"spec": {"ports": [{"port": 80, "name": "http"}]}}),
                json!({"spec": {"ports": [{"port": 80.0, "targetPort": 8080}]}}),
                json!({"spec": {"ports": [{"port": 80.0, "name": "http", "targetPort": 8080}]}}),
            ),
            (
                "an empty merging list changes nothing",
                "Deployment",
                deployment(),
                json!({"spec": {"template": {"spec": {"containers": []}}}}),
                deployment(),
            ),
            (
                "null deletes a list field",
                "Deployment",
                deployment(),
                json!({"spec": {"template": {"spec": {"tolerations": null}}}}),
                deployment_with(|o| {
                    o["spec"]["template"]["spec"]
                        .as_object_mut()
                        .expect("pod spec")
                        .remove("tolerations");
                }),
            ),
        ];
        for (name, kind, target, patch, want) in cases {
            let got = smp(kind, &target, &patch).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, want, "{name}");
            assert_no_directives(&got);
        }
    }

    #[test]
    fn strategic_target_must_be_an_object() {
        assert!(matches!(
            smp("Pod", &json!([1]), &json!({"a": 1})),
            Err(PatchError::Unprocessable(_))
        ));
    }

    #[test]
    fn hostile_nesting_is_refused_without_overflowing_the_stack() {
        for ty in [PatchType::Json, PatchType::Merge, PatchType::StrategicMerge] {
            let deep = nested(10_000, json!(1));
            let patch = match ty {
                PatchType::Json => {
                    let mut operation = Map::new();
                    operation.insert("op".to_owned(), json!("add"));
                    operation.insert("path".to_owned(), json!("/x"));
                    operation.insert("value".to_owned(), deep);
                    Value::Array(vec![Value::Object(operation)])
                }
                PatchType::Merge | PatchType::StrategicMerge => deep,
            };
            let result = apply("Pod", &json!({}), &patch, ty);
            assert!(
                matches!(result, Err(PatchError::Malformed(_))),
                "{ty:?}: {result:?}"
            );
            dismantle(patch);
        }
    }

    #[test]
    fn nesting_limit_is_exactly_max_depth() {
        for ty in [PatchType::Merge, PatchType::StrategicMerge] {
            let at_limit = nested(MAX_DEPTH, json!(1));
            let got = apply("Pod", &json!({"a": 1}), &at_limit, ty);
            assert_eq!(got.ok().as_ref(), Some(&at_limit), "{ty:?}");
            let over = nested(MAX_DEPTH + 1, json!(1));
            assert!(
                matches!(
                    apply("Pod", &json!({}), &over, ty),
                    Err(PatchError::Malformed(_))
                ),
                "{ty:?}"
            );
        }
    }

    #[test]
    fn json_patch_cannot_build_a_too_deep_object() {
        let target = nested(60, json!(1));
        let path = format!("{}/x", "/a".repeat(59));
        let patch = json!([{"op": "add", "path": path, "value": nested(50, json!(1))}]);
        assert!(matches!(
            apply("Pod", &target, &patch, PatchType::Json),
            Err(PatchError::Unprocessable(_))
        ));
        // The same value higher up is fine.
        let patch = json!([{"op": "add", "path": "/b", "value": nested(50, json!(1))}]);
        assert!(apply("Pod", &target, &patch, PatchType::Json).is_ok());
    }

    #[test]
    fn json_patch_cannot_double_the_object_forever() {
        let target = json!({"items": vec![0; 1000]});
        let doubling: Vec<Value> = (0..40)
            .map(|i| json!({"op": "copy", "from": "", "path": format!("/copy{i}")}))
            .collect();
        assert!(matches!(
            apply("Pod", &target, &Value::Array(doubling), PatchType::Json),
            Err(PatchError::Unprocessable(_))
        ));
    }

    #[test]
    fn json_patch_operation_count_is_bounded() {
        let test = json!({"op": "test", "path": "", "value": {}});
        let patch = Value::Array(vec![test; MAX_JSON_PATCH_OPERATIONS + 1]);
        assert!(matches!(
            apply("Pod", &json!({}), &patch, PatchType::Json),
            Err(PatchError::Malformed(_))
        ));
    }

    /// Odd shapes in odd places, in the patch and in the stored object: each
    /// must give a result or an error, never a panic.
    #[test]
    fn odd_inputs_never_panic() {
        let odd = [
            Value::Null,
            json!(true),
            json!(-0.0),
            json!(1e300),
            json!(u64::MAX),
            json!("$patch"),
            json!([]),
            json!([null, 1, "a", [], {}]),
            json!([{"$patch": "delete"}, {"$patch": "replace"}, {"$patch": "merge", "name": "x"}]),
            json!([{"name": null}, {"name": []}, {"name": {}}, {"name": 1}, {"name": "1"}]),
            json!({}),
            json!({"$patch": "replace"}),
            json!({"$patch": "delete"}),
            json!({"$retainKeys": []}),
            json!({"$setElementOrder/containers": [], "containers": []}),
            json!({"$deleteFromPrimitiveList/finalizers": []}),
        ];
        let fields = [
            "metadata",
            "spec",
            "finalizers",
            "containers",
            "env",
            "ports",
            "labels",
            "$setElementOrder/containers",
            "$setElementOrder/finalizers",
            "$deleteFromPrimitiveList/finalizers",
            "$retainKeys",
            "$patch",
        ];
        let mut attempts = 0;
        for kind in ["Pod", "Deployment", "Unknown"] {
            for field in fields {
                for value in &odd {
                    for stored in &odd {
                        // The odd value in the patch, over an odd stored value,
                        // at the top and down in a pod spec and a container.
                        let target = json!({"metadata": {"finalizers": stored.clone()}, "spec": {
                            field: stored.clone(),
                            "containers": [{"name": "c", field: stored.clone()}],
                            "template": {"spec": {"containers": [{"name": "c", "env": stored.clone()}]}}
                        }});
                        // Directives already stored may stay; the patch's must not.
                        let stored_directives = target.to_string().contains('$');
                        let patches = [
                            json!({field: value.clone()}),
                            json!({"metadata": {field: value.clone()}}),
                            json!({"spec": {field: value.clone()}}),
                            json!({"spec": {"containers": [{"name": "c", field: value.clone()}]}}),
                            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", field: value.clone()}]}}}}),
                        ];
                        for patch in &patches {
                            for ty in [PatchType::Merge, PatchType::StrategicMerge] {
                                if let Ok(result) = apply(kind, &target, patch, ty) {
                                    if ty == PatchType::StrategicMerge && !stored_directives {
                                        assert_no_directives(&result);
                                    }
                                }
                                attempts += 1;
                            }
                        }
                        let pointer = json!([{"op": "add", "path": format!("/spec/{field}"), "value": value.clone()}]);
                        let _ = apply(kind, &target, &pointer, PatchType::Json);
                        attempts += 1;
                    }
                }
            }
        }
        assert!(attempts > 10_000);
    }
}
