//! OpenAPI v3 documents: what kubectl downloads before `apply`.
//!
//! kubectl 1.32 validates manifests with `--validate=strict` by default. It
//! first asks the server's OpenAPI v3 whether the PATCH operation of the
//! object's group-version-kind takes the `fieldValidation` query parameter;
//! if so it leaves validation to the server and sends `fieldValidation=Strict`.
//! Without `/openapi/v3` apply fails with "failed to download openapi".
//!
//! `/openapi/v3` ([`index`]) names one document per group version, each URL
//! carrying a hash of the document so clients may cache it forever.
//! [`document`] serves those: for every resource of the group version, the
//! collection and item paths with their operations, and `components.schemas`.
//!
//! **The schemas must be complete.** When a component schema carries the
//! object's `x-kubernetes-group-version-kind`, client-side `kubectl apply`
//! computes its strategic merge patch from that schema *instead of* its
//! compiled-in Go types (kubectl `pkg/cmd/apply/patcher.go`), and every map or
//! list field that differs must be found among the schema's `properties`.
//! A missing field makes kubectl print "warning: error calculating patch from
//! openapi v3 spec: unable to find api field" and fall back. So the schemas
//! here are the full type trees of the served kinds (`objects::types`), with the
//! `x-kubernetes-patch-merge-key` / `x-kubernetes-patch-strategy` of each list
//! (containers merge on `name`, ports on `containerPort`, volumes with
//! `retainKeys`, ...). A kind without a type tree still gets a schema, but
//! without the group-version-kind, so kubectl falls back silently to its
//! built-in rules rather than to a broken schema.
//!
//! Paths, operations and the group-version-kinds come from
//! [`RESOURCES`]; the field types from [`crate::objects::types`] (each kind's
//! own types in its file under `objects/`, the shared ones there), the same
//! table strict field validation and strategic merge patch read.

use crate::objects::registry::{Resource, GROUP_VERSIONS, RESOURCES};
pub use crate::objects::types::unknown_fields;
use crate::objects::types::{self, full_name, kind_type, referenced_type, Field};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};
use std::collections::{BTreeSet, VecDeque};
use std::sync::LazyLock;

/// `info.version` of every document: the Kubernetes release we answer as.
const KUBERNETES_VERSION: &str = "v1.32.0";

/// Scalar type names of [`types`] and their schemas.
fn scalar_schema(ty: &str) -> Option<Value> {
    Some(match ty {
        "string" => json!({"type": "string"}),
        "integer" => json!({"type": "integer"}),
        "number" => json!({"type": "number", "format": "double"}),
        "boolean" => json!({"type": "boolean"}),
        "time" => json!({"type": "string", "format": "date-time"}),
        "quantity" => json!({"type": "string", "format": "quantity"}),
        "int-or-string" => json!({
            "format": "int-or-string",
            "x-kubernetes-int-or-string": true,
            "oneOf": [{"type": "integer"}, {"type": "string"}],
        }),
        "object" => json!({"type": "object"}),
        _ => return None,
    })
}

/// A `$ref` to a component schema, wrapped in `allOf` as kube-openapi does so
/// that sibling extensions (patch strategy) stay meaningful.
fn reference(full: &str) -> Value {
    json!({"allOf": [{"$ref": format!("#/components/schemas/{full}")}]})
}

/// The schema of a [`types`] type expression.
fn type_schema(ty: &str) -> Value {
    if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        json!({"type": "array", "items": type_schema(inner)})
    } else if let Some(inner) = ty.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        json!({"type": "object", "additionalProperties": type_schema(inner)})
    } else {
        scalar_schema(ty).unwrap_or_else(|| reference(&full_name(ty)))
    }
}

/// The object schema of a [`types`] entry.
fn struct_schema(fields: &[Field]) -> Value {
    let properties: Map<String, Value> = fields
        .iter()
        .map(|field| {
            let mut schema = type_schema(field.ty);
            if let Some(object) = schema.as_object_mut() {
                if let Some(strategy) = field.strategy {
                    object.insert("x-kubernetes-patch-strategy".into(), strategy.into());
                }
                if let Some(key) = field.merge_key {
                    object.insert("x-kubernetes-patch-merge-key".into(), key.into());
                }
            }
            (field.name.to_owned(), schema)
        })
        .collect();
    json!({"type": "object", "properties": properties})
}

/// OpenAPI name of a resource's kind schema.
fn kind_schema_name(resource: &Resource) -> String {
    let package = if resource.group.is_empty() {
        "core"
    } else {
        resource.group.split('.').next().unwrap_or(resource.group)
    };
    format!(
        "io.k8s.api.{package}.{}.{}",
        resource.version, resource.kind
    )
}

/// OpenAPI name of a resource's list kind schema.
fn list_schema_name(resource: &Resource) -> String {
    let kind = kind_schema_name(resource);
    let prefix = kind.strip_suffix(resource.kind).unwrap_or(&kind);
    format!("{prefix}{}", resource.list_kind)
}

/// `x-kubernetes-group-version-kind` of one kind.
fn gvk(resource: &Resource, kind: &str) -> Value {
    json!({"group": resource.group, "version": resource.version, "kind": kind})
}

/// `components.schemas` of one group version's document.
fn schemas(resources: &[&Resource]) -> Map<String, Value> {
    // Every type reachable from the kinds, breadth first.
    let mut reachable = BTreeSet::new();
    let mut queue: VecDeque<&str> = resources.iter().filter_map(|r| kind_type(r)).collect();
    queue.push_back("meta.ListMeta");
    while let Some(name) = queue.pop_front() {
        let Some(fields) = types::fields(name) else {
            continue;
        };
        if reachable.insert(name) {
            queue.extend(fields.iter().filter_map(|f| referenced_type(f.ty)));
        }
    }
    let mut schemas: Map<String, Value> = reachable
        .iter()
        .filter_map(|name| Some((full_name(name), struct_schema(types::fields(name)?))))
        .collect();
    for resource in resources {
        let name = kind_schema_name(resource);
        match schemas.get_mut(&name).and_then(Value::as_object_mut) {
            Some(schema) if kind_type(resource).is_some() => {
                schema.insert(
                    "x-kubernetes-group-version-kind".into(),
                    json!([gvk(resource, resource.kind)]),
                );
            }
            _ => {
                // No type tree: free-form, and deliberately without the
                // group-version-kind (see the module docs).
                schemas.insert(
                    name.clone(),
                    json!({"type": "object", "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": reference(&full_name("meta.ObjectMeta")),
                        "spec": {"type": "object"},
                        "status": {"type": "object"},
                    }}),
                );
            }
        }
        schemas.insert(
            list_schema_name(resource),
            json!({
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": reference(&full_name("meta.ListMeta")),
                    "items": {"type": "array", "items": reference(&name)},
                },
                "x-kubernetes-group-version-kind": [gvk(resource, resource.list_kind)],
            }),
        );
    }
    schemas
}

/// `CoreV1`, `AppsV1`, `NetworkingV1`: the group version as kube-openapi
/// spells it inside operation ids.
fn operation_infix(group: &str, version: &str) -> String {
    let group = if group.is_empty() {
        "core"
    } else {
        group.strip_suffix(".k8s.io").unwrap_or(group)
    };
    let mut out = String::new();
    for word in group.split(['.', '-']).chain([version]) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// A query parameter.
fn query(name: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": ty, "uniqueItems": true}})
}

/// A required path parameter.
fn path_parameter(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true,
           "schema": {"type": "string", "uniqueItems": true}})
}

/// The query parameters of writes; `fieldValidation` on PATCH is what
/// kubectl looks for before trusting the server to validate.
fn write_parameters() -> Vec<Value> {
    vec![
        query("dryRun", "string"),
        query("fieldManager", "string"),
        query("fieldValidation", "string"),
    ]
}

/// A JSON response carrying `schema`.
fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// One operation of `resource`.
fn operation(
    resource: &Resource,
    id: &str,
    action: &str,
    description: String,
    parameters: Vec<Value>,
) -> Map<String, Value> {
    let mut op = Map::new();
    op.insert("description".into(), description.into());
    op.insert("operationId".into(), id.into());
    op.insert("parameters".into(), parameters.into());
    op.insert("x-kubernetes-action".into(), action.into());
    op.insert(
        "x-kubernetes-group-version-kind".into(),
        gvk(resource, resource.kind),
    );
    op
}

/// The collection and item paths of one resource.
fn resource_paths(resource: &Resource, paths: &mut Map<String, Value>) {
    let kind = resource.kind;
    let object = reference(&kind_schema_name(resource));
    let list = reference(&list_schema_name(resource));
    let infix = operation_infix(resource.group, resource.version);
    let scope = if resource.namespaced {
        "Namespaced"
    } else {
        ""
    };
    let prefix = resource.group_version_path();
    let collection = if resource.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", resource.plural)
    } else {
        format!("{prefix}/{}", resource.plural)
    };
    let mut path_parameters = vec![query("pretty", "string")];
    if resource.namespaced {
        path_parameters.insert(0, path_parameter("namespace"));
    }
    let id = |verb: &str| format!("{verb}{infix}{scope}{kind}");

    let mut list_op = operation(
        resource,
        &id("list"),
        "list",
        format!("list or watch objects of kind {kind}"),
        ["allowWatchBookmarks", "sendInitialEvents", "watch"]
            .into_iter()
            .map(|p| query(p, "boolean"))
            .chain(["limit", "timeoutSeconds"].map(|p| query(p, "integer")))
            .chain(
                [
                    "continue",
                    "fieldSelector",
                    "labelSelector",
                    "resourceVersion",
                    "resourceVersionMatch",
                ]
                .map(|p| query(p, "string")),
            )
            .collect(),
    );
    list_op.insert(
        "responses".into(),
        json!({"200": json_response("OK", list)}),
    );

    let mut create = operation(
        resource,
        &id("create"),
        "post",
        format!("create a {kind}"),
        write_parameters(),
    );
    create.insert(
        "requestBody".into(),
        json!({"content": {"application/json": {"schema": object}}, "required": true}),
    );
    create.insert(
        "responses".into(),
        json!({
            "200": json_response("OK", object.clone()),
            "201": json_response("Created", object.clone()),
            "202": json_response("Accepted", object.clone()),
        }),
    );

    let delete_parameters = || {
        vec![
            query("dryRun", "string"),
            query("gracePeriodSeconds", "integer"),
            query("propagationPolicy", "string"),
        ]
    };
    let delete_body = json!({"content": {"application/json": {"schema": {"type": "object"}}}});
    let status = json!({"type": "object"});
    let mut delete_collection = operation(
        resource,
        &format!("delete{infix}Collection{scope}{kind}"),
        "deletecollection",
        format!("delete collection of {kind}"),
        delete_parameters()
            .into_iter()
            .chain(["fieldSelector", "labelSelector"].map(|p| query(p, "string")))
            .collect(),
    );
    delete_collection.insert("requestBody".into(), delete_body.clone());
    delete_collection.insert(
        "responses".into(),
        json!({"200": json_response("OK", status.clone())}),
    );
    paths.insert(
        collection.clone(),
        json!({
            "parameters": path_parameters.clone(),
            "get": list_op,
            "post": create,
            "delete": delete_collection,
        }),
    );

    let mut read = operation(
        resource,
        &id("read"),
        "get",
        format!("read the specified {kind}"),
        Vec::new(),
    );
    read.insert(
        "responses".into(),
        json!({"200": json_response("OK", object.clone())}),
    );

    let mut replace = operation(
        resource,
        &id("replace"),
        "put",
        format!("replace the specified {kind}"),
        write_parameters(),
    );
    replace.insert(
        "requestBody".into(),
        json!({"content": {"application/json": {"schema": object.clone()}}, "required": true}),
    );
    replace.insert(
        "responses".into(),
        json!({
            "200": json_response("OK", object.clone()),
            "201": json_response("Created", object.clone()),
        }),
    );

    let mut patch_parameters = write_parameters();
    patch_parameters.push(query("force", "boolean"));
    let mut patch = operation(
        resource,
        &id("patch"),
        "patch",
        format!("partially update the specified {kind}"),
        patch_parameters,
    );
    let patch_body: Map<String, Value> = [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ]
    .into_iter()
    .map(|content_type| {
        (
            content_type.to_owned(),
            json!({"schema": {"type": "object"}}),
        )
    })
    .collect();
    patch.insert(
        "requestBody".into(),
        json!({"content": patch_body, "required": true}),
    );
    patch.insert(
        "responses".into(),
        json!({
            "200": json_response("OK", object.clone()),
            "201": json_response("Created", object),
        }),
    );

    let mut delete = operation(
        resource,
        &id("delete"),
        "delete",
        format!("delete a {kind}"),
        delete_parameters(),
    );
    delete.insert("requestBody".into(), delete_body);
    delete.insert(
        "responses".into(),
        json!({
            "200": json_response("OK", status.clone()),
            "202": json_response("Accepted", status),
        }),
    );
    path_parameters.insert(0, path_parameter("name"));
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "parameters": path_parameters,
            "get": read,
            "put": replace,
            "patch": patch,
            "delete": delete,
        }),
    );
}

/// Index key of a group version: `api/v1`, `apis/apps/v1`.
fn document_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The document of one group version.
fn build_document(group: &str, version: &str) -> Value {
    let resources: Vec<&Resource> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    let mut paths = Map::new();
    for resource in &resources {
        resource_paths(resource, &mut paths);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": schemas(&resources)},
    })
}

/// A served document with the hash its URL carries.
struct Document {
    key: String,
    body: Value,
    hash: String,
}

/// Every document, built once: they only change with the binary.
static DOCUMENTS: LazyLock<Vec<Document>> = LazyLock::new(|| {
    GROUP_VERSIONS
        .iter()
        .map(|&(group, version)| {
            let body = build_document(group, version);
            // kube-apiserver uses the upper-case hex SHA-512 of the document.
            let hash = hex::encode_upper(Sha512::digest(body.to_string().as_bytes()));
            Document {
                key: document_key(group, version),
                body,
                hash,
            }
        })
        .collect()
});

/// `/openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL":
/// "/openapi/v3/api/v1?hash=<HASH>"}, "apis/apps/v1": {...}}}`, HASH being
/// the upper-case hex SHA-512 of that document's JSON (stable for a binary).
pub fn index() -> Value {
    let paths: Map<String, Value> = DOCUMENTS
        .iter()
        .map(|doc| {
            let url = format!("/openapi/v3/{}?hash={}", doc.key, doc.hash);
            (doc.key.clone(), json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/apps/v1`, `path` given without
/// the leading `/openapi/v3/` and without the query: the OpenAPI 3.0 document
/// of that group version. None for unknown paths.
pub fn document(path: &str) -> Option<Value> {
    let path = path.trim_matches('/');
    DOCUMENTS
        .iter()
        .find(|doc| doc.key == path)
        .map(|doc| doc.body.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(key: &str) -> Value {
        document(key).unwrap_or_else(|| panic!("no document {key}"))
    }

    /// Follows `allOf`/`$ref` as kubectl's `PatchMetaFromOpenAPIV3` does.
    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        let schema = schema.get("allOf").and_then(|a| a.get(0)).unwrap_or(schema);
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.trim_start_matches("#/components/schemas/");
                &doc["components"]["schemas"][name]
            }
            None => schema,
        }
    }

    /// kubectl's lookup of `key` in `schema` (before resolving the result).
    fn property<'a>(schema: &'a Value, key: &str) -> Option<&'a Value> {
        schema.get("properties").and_then(|p| p.get(key))
    }

    /// Walks `path` from the component `root`, stepping into list items as
    /// the strategic merge patch does; returns the last field's schema.
    fn walk<'a>(doc: &'a Value, root: &str, path: &[&str]) -> &'a Value {
        let mut schema = &doc["components"]["schemas"][root];
        let mut field = schema;
        for key in path {
            field = property(schema, key).unwrap_or_else(|| panic!("{root}: no {key}"));
            schema = resolve(doc, field.get("items").unwrap_or(field));
        }
        field
    }

    /// Every map and list of objects in `value` must be found the way
    /// kubectl's strategic merge patch looks fields up, or apply warns.
    fn assert_traversable(doc: &Value, schema: &Value, value: &Value, at: &str) {
        let Some(object) = value.as_object() else {
            return;
        };
        if schema.get("additionalProperties").is_some() {
            return; // A map of scalars: no lookups below it.
        }
        for (key, child) in object {
            let here = format!("{at}.{key}");
            if !(child.is_object() || child.is_array()) {
                continue;
            }
            let field = property(schema, key).unwrap_or_else(|| panic!("no field {here}"));
            match child {
                Value::Array(items) => {
                    let item = resolve(doc, &field["items"]);
                    for v in items {
                        assert_traversable(doc, item, v, &here);
                    }
                }
                _ => assert_traversable(doc, resolve(doc, field), child, &here),
            }
        }
    }

    #[test]
    fn table_is_well_formed() {
        // The shared types and every kind's, as one text.
        let texts: Vec<&str> = std::iter::once(types::SHARED)
            .chain(RESOURCES.iter().map(|r| r.strategy.types()))
            .collect();
        let text = texts.join("\n");
        let table = types::table();
        let first = text.split_whitespace().next().unwrap_or_default();
        assert!(!first.contains(':'), "the table starts with a type name");
        let fields: usize = table.values().map(Vec::len).sum();
        assert_eq!(
            fields,
            text.split_whitespace().filter(|t| t.contains(':')).count()
        );
        for (name, fields) in table.iter() {
            assert!(full_name(name).starts_with("io.k8s."), "{name}");
            let mut seen = BTreeSet::new();
            for field in fields {
                assert!(seen.insert(field.name), "{name}.{} twice", field.name);
                if let Some(target) = referenced_type(field.ty) {
                    assert!(
                        table.contains_key(target),
                        "{name}.{}: unknown type {target}",
                        field.name
                    );
                }
                assert!(
                    matches!(
                        field.strategy,
                        None | Some("merge" | "retainKeys" | "merge,retainKeys" | "replace")
                    ),
                    "{name}.{}",
                    field.name
                );
                if field.merge_key.is_some() {
                    assert!(field.ty.starts_with('['), "{name}.{}", field.name);
                }
            }
        }
    }

    #[test]
    fn every_kind_has_its_full_type_tree() {
        for resource in RESOURCES {
            assert!(
                kind_type(resource).is_some(),
                "{} has no type tree",
                resource.kind
            );
        }
    }

    #[test]
    fn index_names_every_group_version_by_hash() {
        let index = index();
        assert_eq!(index, super::index(), "stable");
        let paths = index["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), GROUP_VERSIONS.len());
        for &(group, version) in GROUP_VERSIONS {
            let key = document_key(group, version);
            let url = paths[&key]["serverRelativeURL"]
                .as_str()
                .expect("serverRelativeURL");
            let hash = hex::encode_upper(Sha512::digest(doc(&key).to_string().as_bytes()));
            assert_eq!(url, format!("/openapi/v3/{key}?hash={hash}"));
            assert_eq!(hash.len(), 128);
        }
        assert!(paths.contains_key("api/v1"));
        assert!(paths.contains_key("apis/apps/v1"));
        // The hash follows the content: documents differ, so do hashes.
        assert_ne!(
            paths["api/v1"]["serverRelativeURL"],
            paths["apis/apps/v1"]["serverRelativeURL"]
        );
    }

    #[test]
    fn unknown_documents() {
        for path in [
            "",
            "api",
            "apis",
            "api/v2",
            "apis/apps/v2",
            "apis/batch/v1",
            "v1",
        ] {
            assert!(document(path).is_none(), "{path}");
        }
        assert!(
            document("/apis/apps/v1").is_some(),
            "a leading slash is tolerated"
        );
    }

    #[test]
    fn every_resource_has_its_operations() {
        for resource in RESOURCES {
            let d = doc(&document_key(resource.group, resource.version));
            assert_eq!(d["openapi"], "3.0.0");
            let prefix = resource.group_version_path();
            let collection = if resource.namespaced {
                format!("{prefix}/namespaces/{{namespace}}/{}", resource.plural)
            } else {
                format!("{prefix}/{}", resource.plural)
            };
            let item = format!("{collection}/{{name}}");
            let gvk = json!({"group": resource.group, "version": resource.version,
                             "kind": resource.kind});
            for (path, method, action) in [
                (&collection, "get", "list"),
                (&collection, "post", "post"),
                (&collection, "delete", "deletecollection"),
                (&item, "get", "get"),
                (&item, "put", "put"),
                (&item, "patch", "patch"),
                (&item, "delete", "delete"),
            ] {
                let op = &d["paths"][path][method];
                assert_eq!(op["x-kubernetes-action"], action, "{method} {path}");
                assert_eq!(
                    op["x-kubernetes-group-version-kind"], gvk,
                    "{method} {path}"
                );
                let params: Vec<(&str, &str)> = op["parameters"]
                    .as_array()
                    .expect("parameters")
                    .iter()
                    .filter_map(|p| Some((p["name"].as_str()?, p["in"].as_str()?)))
                    .collect();
                if matches!(method, "post" | "put" | "patch") {
                    for name in ["fieldValidation", "dryRun", "fieldManager"] {
                        assert!(params.contains(&(name, "query")), "{method} {path} {name}");
                    }
                }
                for response in op["responses"].as_object().expect("responses").values() {
                    let schema = &response["content"]["application/json"]["schema"];
                    assert!(resolve(&d, schema).is_object(), "{method} {path}");
                }
            }
            let content = d["paths"][&item]["patch"]["requestBody"]["content"]
                .as_object()
                .expect("patch content types");
            for content_type in [
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ] {
                assert!(content.contains_key(content_type), "{item} {content_type}");
            }
            let path_params = d["paths"][&item]["parameters"].to_string();
            assert!(path_params.contains("\"name\""));
            assert_eq!(path_params.contains("\"namespace\""), resource.namespaced);
        }
    }

    #[test]
    fn kind_schemas_carry_their_group_version_kind() {
        for resource in RESOURCES {
            let d = doc(&document_key(resource.group, resource.version));
            let schemas = &d["components"]["schemas"];
            let schema = &schemas[kind_schema_name(resource)];
            assert_eq!(
                schema["x-kubernetes-group-version-kind"],
                json!([{"group": resource.group, "version": resource.version,
                        "kind": resource.kind}])
            );
            assert_eq!(schema["type"], "object");
            for field in ["apiVersion", "kind"] {
                assert_eq!(schema["properties"][field]["type"], "string");
            }
            // Events and Endpoints have neither spec nor status; Leases no status.
            let lacks = |field: &str| {
                matches!(
                    (resource.kind, field),
                    ("Event" | "Endpoints", "spec" | "status") | ("Lease", "status")
                )
            };
            for field in ["metadata", "spec", "status"] {
                match property(schema, field) {
                    Some(f) => assert_eq!(resolve(&d, f)["type"], "object", "{field}"),
                    None => assert!(lacks(field), "{} lacks {field}", resource.kind),
                }
            }
            let list = &schemas[list_schema_name(resource)];
            assert_eq!(
                list["x-kubernetes-group-version-kind"][0]["kind"],
                resource.list_kind
            );
        }
        let core = doc("api/v1");
        assert!(core["components"]["schemas"]
            .get("io.k8s.api.apps.v1.Deployment")
            .is_none());
        let apps = doc("apis/apps/v1");
        assert!(apps["components"]["schemas"]
            .get("io.k8s.api.core.v1.Pod")
            .is_none());
        // Types the Deployment refers to travel with it.
        assert!(apps["components"]["schemas"]
            .get("io.k8s.api.core.v1.PodSpec")
            .is_some());
    }

    #[test]
    fn every_reference_resolves_within_its_document() {
        fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
            match value {
                Value::Object(map) => {
                    for (key, v) in map {
                        match (key.as_str(), v.as_str()) {
                            ("$ref", Some(r)) => out.push(r),
                            _ => refs(v, out),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        for &(group, version) in GROUP_VERSIONS {
            let d = doc(&document_key(group, version));
            let mut found = Vec::new();
            refs(&d, &mut found);
            assert!(!found.is_empty());
            for r in found {
                let name = r.strip_prefix("#/components/schemas/").expect(r);
                assert!(d["components"]["schemas"].get(name).is_some(), "{r}");
            }
        }
    }

    #[test]
    fn strategic_merge_patch_metadata() {
        let apps = doc("apis/apps/v1");
        let core = doc("api/v1");
        let deployment = "io.k8s.api.apps.v1.Deployment";
        let pod_spec = ["spec", "template", "spec"];
        let at = |d: &Value, root: &str, path: &[&str]| {
            let field = walk(d, root, path);
            (
                field["x-kubernetes-patch-merge-key"].clone(),
                field["x-kubernetes-patch-strategy"].clone(),
            )
        };
        for (path, key, strategy) in [
            (&["containers"][..], "name", "merge"),
            (&["initContainers"], "name", "merge"),
            (&["volumes"], "name", "merge,retainKeys"),
            (&["containers", "ports"], "containerPort", "merge"),
            (&["containers", "env"], "name", "merge"),
            (&["containers", "volumeMounts"], "mountPath", "merge"),
        ] {
            let full: Vec<&str> = pod_spec.iter().chain(path).copied().collect();
            assert_eq!(
                at(&apps, deployment, &full),
                (json!(key), json!(strategy)),
                "{path:?}"
            );
            let in_pod: Vec<&str> = ["spec"].iter().chain(path).copied().collect();
            assert_eq!(
                at(&core, "io.k8s.api.core.v1.Pod", &in_pod),
                (json!(key), json!(strategy))
            );
        }
        assert_eq!(
            at(&core, "io.k8s.api.core.v1.Service", &["spec", "ports"]),
            (json!("port"), json!("merge"))
        );
        assert_eq!(
            at(&apps, deployment, &["spec", "strategy"]),
            (Value::Null, json!("retainKeys"))
        );
        assert_eq!(
            at(&apps, deployment, &["metadata", "finalizers"]),
            (Value::Null, json!("merge"))
        );
        // Atomic lists carry no strategy.
        assert_eq!(
            at(
                &apps,
                deployment,
                &["spec", "template", "spec", "tolerations"]
            ),
            (Value::Null, Value::Null)
        );
    }

    #[test]
    fn realistic_manifests_are_fully_described() {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"},
                         "annotations": {"a": "b"}, "finalizers": ["x"],
                         "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "u"}]},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"},
                             "matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "nginx", "image": "nginx:1.25", "args": ["-g"],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"},
                                    {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                            "envFrom": [{"configMapRef": {"name": "cm"}}],
                            "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "64Mi"}},
                            "livenessProbe": {"httpGet": {"path": "/", "port": 80,
                                "httpHeaders": [{"name": "h", "value": "v"}]}},
                            "readinessProbe": {"exec": {"command": ["true"]}},
                            "startupProbe": {"tcpSocket": {"port": "http"}},
                            "lifecycle": {"preStop": {"sleep": {"seconds": 1}}},
                            "securityContext": {"capabilities": {"add": ["NET_ADMIN"]},
                                                "runAsNonRoot": true},
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }],
                        "initContainers": [{"name": "init", "image": "busybox"}],
                        "volumes": [
                            {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                            {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "k", "path": "p"}]}},
                            {"name": "s", "secret": {"secretName": "s"}},
                            {"name": "h", "hostPath": {"path": "/tmp"}},
                            {"name": "p", "projected": {"sources": [{"downwardAPI": {"items": [
                                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}},
                        ],
                        "nodeSelector": {"disk": "ssd"},
                        "tolerations": [{"key": "k", "operator": "Exists"}],
                        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                             "labelSelector": {"matchLabels": {"app": "web"}}}}]}},
                        "securityContext": {"fsGroup": 1000, "sysctls": [{"name": "a", "value": "b"}]},
                        "imagePullSecrets": [{"name": "reg"}],
                        "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]},
                        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                            "whenUnsatisfiable": "DoNotSchedule"}],
                    },
                },
            },
            "status": {"conditions": [{"type": "Available", "status": "True"}]},
        });
        let service = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "type": "NodePort",
                     "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}],
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10}}},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ports": [{"port": 80, "protocol": "TCP"}]}]}},
        });
        let node = json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}], "podCIDRs": ["10.0.0.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                       "capacity": {"cpu": "4"}, "nodeInfo": {"kubeletVersion": "v1.32.0"},
                       "conditions": [{"type": "Ready", "status": "True"}]},
        });
        let event = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "source": {"component": "c"},
            "series": {"count": 2},
        });
        let endpoints = json!({
            "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "10.1.0.7", "targetRef": {"kind": "Pod", "name": "p"}}],
                         "ports": [{"port": 80}]}],
        });
        let apps = doc("apis/apps/v1");
        let core = doc("api/v1");
        let schemas = |d: &Value, name: &str| d["components"]["schemas"][name].clone();
        for (d, name, manifest) in [
            (&apps, "io.k8s.api.apps.v1.Deployment", &deployment),
            (&core, "io.k8s.api.core.v1.Service", &service),
            (&core, "io.k8s.api.core.v1.Node", &node),
            (&core, "io.k8s.api.core.v1.Event", &event),
            (&core, "io.k8s.api.core.v1.Endpoints", &endpoints),
        ] {
            assert_traversable(d, &schemas(d, name), manifest, name);
        }
        let mut rs = deployment.clone();
        rs["kind"] = json!("ReplicaSet");
        if let Some(spec) = rs["spec"].as_object_mut() {
            spec.remove("strategy");
        }
        assert_traversable(
            &apps,
            &schemas(&apps, "io.k8s.api.apps.v1.ReplicaSet"),
            &rs,
            "rs",
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": deployment["spec"]["template"]["spec"].clone(),
                         "status": {"containerStatuses": [{"name": "c", "state": {"running": {}}}],
                                    "podIPs": [{"ip": "10.1.0.7"}]}});
        assert_traversable(
            &core,
            &schemas(&core, "io.k8s.api.core.v1.Pod"),
            &pod,
            "pod",
        );
    }

    #[test]
    fn operation_ids_follow_kube_openapi() {
        assert_eq!(operation_infix("", "v1"), "CoreV1");
        assert_eq!(operation_infix("apps", "v1"), "AppsV1");
        assert_eq!(
            operation_infix("rbac.authorization.k8s.io", "v1"),
            "RbacAuthorizationV1"
        );
        let core = doc("api/v1");
        assert_eq!(
            core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]["operationId"],
            "patchCoreV1NamespacedPod"
        );
        assert_eq!(
            core["paths"]["/api/v1/nodes"]["delete"]["operationId"],
            "deleteCoreV1CollectionNode"
        );
    }
}
