//! The kubectl-like commands: `apply`, `get`, `describe`, `delete`, `scale`,
//! `rollout status` and `logs`.
//!
//! They speak only the Kubernetes REST API the masters serve (`/api/v1`,
//! `/apis/apps/v1`), through [`Client`], so they behave against Flotilla as
//! kubectl does: resources are named as users type them (`po`, `deploy`,
//! `deployments.apps`, resolved by [`registry::lookup`]); human output is the
//! server-side Table; errors are the server's `Status`, printed as
//! `Error from server (Reason): message` ([`ServerError`]).
//!
//! `apply` is client-side, as kubectl's: it creates what is absent, recording
//! the manifest in the `last-applied-configuration` annotation, and sends the
//! manifest as a strategic merge patch onto what exists, with deletions for
//! what the last applied manifest had and this one lacks; it judges
//! `configured` or `unchanged` by whether the object's resourceVersion moved
//! (the server stores nothing when a patch changes nothing).

use super::output;
use crate::client::{Client, Extras, Route, DEFAULT_DEADLINE};
use crate::objects::registry::{self, Resource};
use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde::Deserialize as _;
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The media type that asks the server for a `meta.k8s.io/v1` Table.
const TABLE: &str = crate::api::table::CONTENT_TYPE;
/// How long a streaming request (watch, followed logs) may last.
const STREAM_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// An error answer of the API, printed as kubectl prints it.
#[derive(Debug, thiserror::Error)]
#[error("Error from server ({reason}): {message}")]
pub struct ServerError {
    /// The Status `reason` (`NotFound`, `AlreadyExists`, `Invalid`...).
    pub reason: String,
    /// The Status `message`.
    pub message: String,
}

/// `-n/--namespace`.
#[derive(Args, Debug, Clone)]
pub struct Namespace {
    /// Namespace of namespaced resources.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
}

/// `-o` of `get`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The table with its wide columns too.
    Wide,
    /// The objects as YAML.
    Yaml,
    /// The objects as JSON.
    Json,
    /// `kind.group/name`, one a line.
    Name,
}

/// `ctl apply`.
#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Manifest file, directory of manifests (.yaml, .yml, .json), or `-` for stdin.
    #[arg(short, long, required = true)]
    pub filename: Vec<PathBuf>,
    #[command(flatten)]
    pub ns: Namespace,
}

/// `ctl get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// Resource type (`pods`, `po`, `deploy`, `deployments.apps`), or TYPE/NAME.
    pub resource: String,
    /// Object name.
    pub name: Option<String>,
    /// Output format (default: a table).
    #[arg(short, long, value_enum)]
    pub output: Option<Format>,
    /// After listing, watch for changes and print them.
    #[arg(short, long)]
    pub watch: bool,
    /// Label selector, e.g. `app=web,tier!=db`.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[command(flatten)]
    pub ns: Namespace,
}

/// `ctl describe`.
#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Resource type, or TYPE/NAME.
    pub resource: String,
    /// Object name.
    pub name: Option<String>,
    #[command(flatten)]
    pub ns: Namespace,
}

/// `ctl delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Resource type, or TYPE/NAME.
    pub resource: Option<String>,
    /// Object names.
    pub names: Vec<String>,
    /// Delete the objects of these manifests instead.
    #[arg(short, long)]
    pub filename: Vec<PathBuf>,
    #[command(flatten)]
    pub ns: Namespace,
}

/// `ctl scale`.
#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// TYPE/NAME (`deploy/web`), or TYPE.
    pub resource: String,
    /// Object name, when the first argument is only the type.
    pub name: Option<String>,
    /// The wanted number of replicas.
    #[arg(long)]
    pub replicas: u32,
    #[command(flatten)]
    pub ns: Namespace,
}

/// `ctl rollout ...`.
#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Wait until a Deployment has rolled out.
    Status {
        /// `deploy/NAME`, or `deploy`.
        resource: String,
        /// Name, when the first argument is only the type.
        name: Option<String>,
        /// Give up after this long (e.g. 30s, 5m); by default wait forever.
        #[arg(long, value_parser = super::parse_duration)]
        timeout: Option<Duration>,
        #[command(flatten)]
        ns: Namespace,
    },
}

/// `ctl logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Pod name (or `pod/NAME`).
    pub pod: String,
    /// Container (default: the pod's only one).
    #[arg(short, long)]
    pub container: Option<String>,
    /// Keep streaming new output.
    #[arg(short, long)]
    pub follow: bool,
    #[command(flatten)]
    pub ns: Namespace,
}

/// `deployment.apps` or `pod`: how kubectl names a resource in its output.
fn display(resource: &Resource) -> String {
    if resource.group.is_empty() {
        resource.singular.to_owned()
    } else {
        format!("{}.{}", resource.singular, resource.group)
    }
}

/// The resource a user typed, or an error like kubectl's.
fn resource(typed: &str) -> anyhow::Result<&'static Resource> {
    registry::lookup(typed)
        .ok_or_else(|| anyhow::anyhow!("the server doesn't have a resource type \"{typed}\""))
}

/// Splits `TYPE/NAME` or `TYPE NAME` into the resource and the name.
fn target(typed: &str, name: Option<&str>) -> anyhow::Result<(&'static Resource, String)> {
    match (typed.split_once('/'), name) {
        (Some((kind, name)), None) => Ok((resource(kind)?, name.to_owned())),
        (Some(_), Some(_)) => {
            bail!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form")
        }
        (None, Some(name)) => Ok((resource(typed)?, name.to_owned())),
        (None, None) => bail!("give a name: {typed}/NAME or {typed} NAME"),
    }
}

/// `/api/v1/namespaces/NS/pods` (or without the namespace part when it is
/// None or the resource is cluster-scoped).
fn collection_path(resource: &Resource, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if resource.namespaced => format!(
            "{}/namespaces/{ns}/{}",
            resource.group_version_path(),
            resource.plural
        ),
        _ => format!("{}/{}", resource.group_version_path(), resource.plural),
    }
}

fn object_path(resource: &Resource, namespace: &str, name: &str) -> String {
    format!("{}/{name}", collection_path(resource, Some(namespace)))
}

use crate::client::encode;

/// Sends a request and returns the answer if it is a success, else the
/// server's Status as a [`ServerError`].
async fn call(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
    extras: Extras,
) -> anyhow::Result<reqwest::Response> {
    let route = if method == Method::GET {
        Route::Any
    } else {
        Route::Leader
    };
    let body = body.map(serde_json::to_vec).transpose()?;
    let response = client
        .send_with(method, path, body, route, DEFAULT_DEADLINE, &extras)
        .await?;
    if response.status().is_success() {
        return Ok(response);
    }
    Err(server_error(response).await.into())
}

async fn server_error(response: reqwest::Response) -> ServerError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let reason = parsed["reason"]
        .as_str()
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("Unknown")
                .replace(' ', "")
        });
    let message = parsed["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| text.trim().to_owned());
    ServerError { reason, message }
}

/// [`call`] with a JSON answer.
async fn call_json(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
    extras: Extras,
) -> anyhow::Result<Value> {
    let response = call(client, method, path, body, extras).await?;
    let url = response.url().to_string();
    let bytes = response.bytes().await?;
    serde_json::from_slice(&bytes).with_context(|| format!("decoding the answer of {url}"))
}

/// Reads newline-delimited JSON from a streaming answer, calling `each` per
/// value until the stream ends or `each` returns false.
async fn lines(
    mut response: reqwest::Response,
    mut each: impl FnMut(Value) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let mut buffer: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let value: Value = serde_json::from_slice(&line).context("decoding a watch event")?;
            if !each(value)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- manifests

/// One object read from a manifest, and where it came from.
struct Manifest {
    object: Value,
    source: String,
}

/// The manifest files a `-f` names: the file, `-`, or a directory's
/// `.yaml`/`.yml`/`.json` files in name order.
fn manifest_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path == Path::new("-") || !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
        let file = entry?.path();
        let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "yaml" | "yml" | "json") && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("no manifests (.yaml, .yml, .json) in {}", path.display());
    }
    Ok(files)
}

/// Parses manifest text: JSON, or one or more YAML documents; `List`
/// objects are flattened into their items and empty documents skipped.
fn parse_manifests(text: &str) -> Result<Vec<Value>, String> {
    let mut documents = Vec::new();
    if text.trim_start().starts_with('{') {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        documents.push(value);
    } else {
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            let value = Value::deserialize(document).map_err(|e| e.to_string())?;
            documents.push(value);
        }
    }
    let mut objects = Vec::new();
    for (i, document) in documents.into_iter().enumerate() {
        match document {
            Value::Null => continue,
            Value::Object(ref map) => {
                let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
                if kind.ends_with("List") {
                    if let Some(items) = map.get("items").and_then(Value::as_array) {
                        objects.extend(items.iter().cloned());
                        continue;
                    }
                }
                objects.push(document);
            }
            _ => return Err(format!("document {} is not an object", i + 1)),
        }
    }
    Ok(objects)
}

/// Every object of the manifests `paths` name.
fn read_manifests(paths: &[PathBuf]) -> anyhow::Result<Vec<Manifest>> {
    let mut manifests = Vec::new();
    for path in paths {
        for file in manifest_files(path)? {
            let (text, source) = if file == Path::new("-") {
                let text = std::io::read_to_string(std::io::stdin()).context("reading stdin")?;
                (text, "STDIN".to_owned())
            } else {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                (text, file.display().to_string())
            };
            let objects = parse_manifests(&text)
                .map_err(|e| anyhow::anyhow!("error parsing {source}: {e}"))?;
            manifests.extend(objects.into_iter().map(|object| Manifest {
                object,
                source: source.clone(),
            }));
        }
    }
    if manifests.is_empty() {
        bail!("no objects passed to apply");
    }
    Ok(manifests)
}

/// The resource, namespace and name a manifest object is for.
fn identify(
    manifest: &Manifest,
    default_namespace: &str,
) -> anyhow::Result<(&'static Resource, String, String)> {
    let object = &manifest.object;
    let source = &manifest.source;
    let kind = object["kind"].as_str().unwrap_or("");
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    if kind.is_empty() || api_version.is_empty() {
        bail!("error validating {source}: an object is missing apiVersion or kind");
    }
    let resource = registry::by_kind(kind)
        .filter(|r| r.api_version() == api_version)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "error from {source}: no matches for kind \"{kind}\" in version \"{api_version}\""
            )
        })?;
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    if name.is_empty() {
        bail!("error from {source}: a {kind} is missing metadata.name");
    }
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or(default_namespace)
        .to_owned();
    Ok((resource, namespace, name.to_owned()))
}

// ---------------------------------------------------------------- commands

/// `ctl apply -f ...`: creates absent objects, patches existing ones.
///
/// # Errors
/// Unreadable or malformed manifests, and server errors (after the objects
/// before the failing one were applied, as kubectl does).
pub async fn apply(client: &Client, args: &ApplyArgs) -> anyhow::Result<()> {
    let manifests = read_manifests(&args.filename)?;
    for manifest in &manifests {
        let (resource, namespace, name) = identify(manifest, &args.ns.namespace)?;
        let path = object_path(resource, &namespace, &name);
        let shown = format!("{}/{name}", display(resource));
        let live = client
            .send(Method::GET, &path, None, Route::Any, DEFAULT_DEADLINE)
            .await?;
        if live.status() == reqwest::StatusCode::NOT_FOUND {
            let mut object = with_last_applied(&manifest.object)?;
            if resource.namespaced && object["metadata"]["namespace"].is_null() {
                object["metadata"]["namespace"] = json!(namespace);
            }
            let collection = collection_path(resource, Some(&namespace));
            call(
                client,
                Method::POST,
                &collection,
                Some(&object),
                Extras::default(),
            )
            .await?;
            println!("{shown} created");
            continue;
        }
        if !live.status().is_success() {
            return Err(server_error(live).await.into());
        }
        let live: Value = live.json().await.context("decoding the live object")?;
        let patch_type = Extras {
            content_type: Some("application/strategic-merge-patch+json"),
            ..Extras::default()
        };
        let last = live["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        let mut patch = with_last_applied(&manifest.object)?;
        if let Some(last) = &last {
            removals(last, &manifest.object, &mut patch);
        }
        // As kubectl does: a patch that changes nothing is not sent. (Judging
        // by the resourceVersion afterwards would call an object a controller
        // updated meanwhile "configured".)
        let kind = live["kind"].as_str().unwrap_or("");
        let local = crate::api::patch::apply(
            kind,
            &live,
            &patch,
            crate::api::patch::PatchType::StrategicMerge,
        );
        if local.as_ref().is_ok_and(|merged| *merged == live) {
            println!("{shown} unchanged");
            continue;
        }
        call_json(client, Method::PATCH, &path, Some(&patch), patch_type).await?;
        println!("{shown} configured");
    }
    Ok(())
}

/// The annotation that remembers what `apply` last applied (kubectl's), so a
/// field removed from a manifest is removed from the live object.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manifest with the last-applied annotation set to the manifest itself.
///
/// # Errors
/// When the manifest's metadata is not a map.
fn with_last_applied(manifest: &Value) -> anyhow::Result<Value> {
    let mut recorded = manifest.clone();
    if let Some(annotations) = recorded
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
    }
    let text = serde_json::to_string(&recorded)?;
    let mut object = manifest.clone();
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        bail!("the manifest's metadata must be a map");
    };
    let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
    match annotations.as_object_mut() {
        Some(map) => {
            map.insert(LAST_APPLIED.into(), Value::String(text));
        }
        None => bail!("metadata.annotations must be a map of strings"),
    }
    Ok(object)
}

/// Adds to `patch` the deletions a three-way apply makes: keys of maps that
/// the last applied manifest had and the new one lacks become `null`, and
/// elements (keyed by `name`) of lists it had and the new one lacks become
/// `{"name": ..., "$patch": "delete"}`.
fn removals(last: &Value, new: &Value, patch: &mut Value) {
    match (last, new) {
        (Value::Object(last), Value::Object(new)) => {
            let Some(patch) = patch.as_object_mut() else {
                return;
            };
            for (key, old_value) in last {
                match new.get(key) {
                    None => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Some(new_value) => {
                        if let Some(child) = patch.get_mut(key) {
                            removals(old_value, new_value, child);
                        }
                    }
                }
            }
        }
        (Value::Array(last), Value::Array(new)) => {
            let name = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_owned);
            if !last.iter().chain(new.iter()).all(|v| name(v).is_some()) {
                return;
            }
            let Some(list) = patch.as_array_mut() else {
                return;
            };
            for old in last {
                let old_name = name(old);
                match new.iter().position(|n| name(n) == old_name) {
                    None => list.push(json!({"name": old_name, "$patch": "delete"})),
                    Some(i) => {
                        if let Some(child) = list.get_mut(i) {
                            removals(old, &new[i], child);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// `ctl get`: a table, the objects as YAML/JSON, or names; with `-w`, then
/// every change.
///
/// # Errors
/// Unknown resources and server errors.
pub async fn get(client: &Client, args: &GetArgs) -> anyhow::Result<()> {
    let (resource, name) = match (args.resource.split_once('/'), &args.name) {
        (Some(_), _) => {
            let (r, n) = target(&args.resource, args.name.as_deref())?;
            (r, Some(n))
        }
        (None, name) => (resource(&args.resource)?, name.clone()),
    };
    let namespace = (!args.all_namespaces).then_some(args.ns.namespace.as_str());
    let with_namespace = args.all_namespaces && resource.namespaced;
    let mut query: Vec<String> = Vec::new();
    if let Some(selector) = &args.selector {
        query.push(format!("labelSelector={}", encode(selector)));
    }
    let table = matches!(args.output, None | Some(Format::Wide));
    let accept = Extras {
        accept: table.then_some(TABLE),
        ..Extras::default()
    };
    if args.watch {
        return watch(client, args, resource, name.as_deref(), namespace, query).await;
    }
    let path = match &name {
        Some(name) => object_path(resource, namespace.unwrap_or(&args.ns.namespace), name),
        None => collection_path(resource, namespace),
    };
    let path = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let answer = call_json(client, Method::GET, &path, None, accept).await?;
    match args.output {
        None | Some(Format::Wide) => {
            if answer["rows"].as_array().is_none_or(Vec::is_empty) {
                match namespace {
                    Some(ns) if resource.namespaced => {
                        eprintln!("No resources found in {ns} namespace.")
                    }
                    _ => eprintln!("No resources found"),
                }
                return Ok(());
            }
            let columns = output::visible_columns(&answer, args.output == Some(Format::Wide));
            let mut grid = vec![output::header(&answer, &columns, with_namespace)];
            grid.extend(output::rows(&answer, &columns, with_namespace));
            print!("{}", output::align(&grid));
        }
        Some(Format::Json) => println!("{}", serde_json::to_string_pretty(&answer)?),
        Some(Format::Yaml) => print!("{}", output::yaml(&answer)?),
        Some(Format::Name) => {
            let objects = match answer["items"].as_array() {
                Some(items) => items.clone(),
                None => vec![answer],
            };
            for object in objects {
                let name = object["metadata"]["name"].as_str().unwrap_or("");
                println!("{}/{name}", display(resource));
            }
        }
    }
    Ok(())
}

/// `ctl get -w`: the current objects, then each change, as they come.
async fn watch(
    client: &Client,
    args: &GetArgs,
    resource: &'static Resource,
    name: Option<&str>,
    namespace: Option<&str>,
    mut query: Vec<String>,
) -> anyhow::Result<()> {
    query.push("watch=true".to_owned());
    if let Some(name) = name {
        query.push(format!(
            "fieldSelector={}",
            encode(&format!("metadata.name={name}"))
        ));
    }
    let path = format!(
        "{}?{}",
        collection_path(resource, namespace),
        query.join("&")
    );
    let table = matches!(args.output, None | Some(Format::Wide));
    let extras = Extras {
        accept: table.then_some(TABLE),
        timeout: Some(STREAM_TIMEOUT),
        ..Extras::default()
    };
    let with_namespace = args.all_namespaces && resource.namespaced;
    let response = call(client, Method::GET, &path, None, extras).await?;
    let mut widths: Vec<usize> = Vec::new();
    let mut printed_header = false;
    let mut stdout = std::io::stdout();
    lines(response, |event| {
        let kind = event["type"].as_str().unwrap_or("");
        let object = &event["object"];
        match kind {
            "BOOKMARK" => return Ok(true),
            "ERROR" => bail!(ServerError {
                reason: object["reason"].as_str().unwrap_or("Unknown").to_owned(),
                message: object["message"].as_str().unwrap_or("").to_owned(),
            }),
            _ => {}
        }
        match args.output {
            None | Some(Format::Wide) => {
                let columns = output::visible_columns(object, args.output == Some(Format::Wide));
                let header = output::header(object, &columns, with_namespace);
                let rows = output::rows(object, &columns, with_namespace);
                output::grow(&mut widths, &header);
                for row in &rows {
                    output::grow(&mut widths, row);
                }
                if !printed_header {
                    writeln!(stdout, "{}", output::aligned_row(&header, &widths))?;
                    printed_header = true;
                }
                for row in &rows {
                    writeln!(stdout, "{}", output::aligned_row(row, &widths))?;
                }
            }
            Some(Format::Json) => writeln!(stdout, "{}", serde_json::to_string_pretty(object)?)?,
            Some(Format::Yaml) => write!(stdout, "---\n{}", output::yaml(object)?)?,
            Some(Format::Name) => {
                let name = object["metadata"]["name"].as_str().unwrap_or("");
                writeln!(stdout, "{}/{name}", display(resource))?;
            }
        }
        stdout.flush()?;
        Ok(true)
    })
    .await
}

/// `ctl describe`: the object's fields, then its events.
///
/// # Errors
/// Unknown resources and server errors.
pub async fn describe(client: &Client, args: &DescribeArgs) -> anyhow::Result<()> {
    let (resource, name) = target(&args.resource, args.name.as_deref())?;
    let namespace = &args.ns.namespace;
    let object = call_json(
        client,
        Method::GET,
        &object_path(resource, namespace, &name),
        None,
        Extras::default(),
    )
    .await?;
    print!("{}", output::describe(&object));
    let events = registry::by_kind("Event").context("the Event resource is registered")?;
    let (events_ns, selector) = if resource.namespaced {
        (
            Some(namespace.as_str()),
            format!("involvedObject.name={name},involvedObject.namespace={namespace}"),
        )
    } else {
        (None, format!("involvedObject.name={name}"))
    };
    let path = format!(
        "{}?fieldSelector={}",
        collection_path(events, events_ns),
        encode(&selector)
    );
    let table = call_json(
        client,
        Method::GET,
        &path,
        None,
        Extras {
            accept: Some(TABLE),
            ..Extras::default()
        },
    )
    .await?;
    print!("{}", output::events(&table));
    Ok(())
}

/// `ctl delete`: by type and names, or every object of manifests.
///
/// # Errors
/// Unknown resources and server errors (NotFound included).
pub async fn delete(client: &Client, args: &DeleteArgs) -> anyhow::Result<()> {
    let mut targets: Vec<(&'static Resource, String, String)> = Vec::new();
    if !args.filename.is_empty() {
        if args.resource.is_some() {
            bail!("give either -f FILE or TYPE NAME, not both");
        }
        for manifest in read_manifests(&args.filename)? {
            targets.push(identify(&manifest, &args.ns.namespace)?);
        }
    } else {
        let Some(typed) = &args.resource else {
            bail!("give what to delete: TYPE NAME, TYPE/NAME or -f FILE");
        };
        if typed.contains('/') {
            let (resource, name) = target(typed, None)?;
            targets.push((resource, args.ns.namespace.clone(), name));
            for more in &args.names {
                let (resource, name) = target(more, None)?;
                targets.push((resource, args.ns.namespace.clone(), name));
            }
        } else {
            let resource = resource(typed)?;
            if args.names.is_empty() {
                bail!("give the names of the {} to delete", resource.plural);
            }
            for name in &args.names {
                targets.push((resource, args.ns.namespace.clone(), name.clone()));
            }
        }
    }
    // Like kubectl, go on past a failure and report it; fail at the end.
    let mut failed: Option<anyhow::Error> = None;
    for (resource, namespace, name) in targets {
        let path = object_path(resource, &namespace, &name);
        match call(client, Method::DELETE, &path, None, Extras::default()).await {
            Ok(_) => println!("{} \"{name}\" deleted", display(resource)),
            Err(e) => {
                if let Some(earlier) = failed.replace(e) {
                    match earlier.downcast_ref::<ServerError>() {
                        Some(status) => eprintln!("{status}"),
                        None => eprintln!("error: {earlier:#}"),
                    }
                }
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// `ctl scale TYPE/NAME --replicas N`: a merge patch of the scale subresource.
///
/// # Errors
/// Resources without a scale subresource, and server errors.
pub async fn scale(client: &Client, args: &ScaleArgs) -> anyhow::Result<()> {
    let (resource, name) = target(&args.resource, args.name.as_deref())?;
    if !resource.subresources.contains(&"scale") {
        bail!("{} cannot be scaled", resource.plural);
    }
    let path = format!("{}/scale", object_path(resource, &args.ns.namespace, &name));
    let patch = json!({"spec": {"replicas": args.replicas}});
    let extras = Extras {
        content_type: Some("application/merge-patch+json"),
        ..Extras::default()
    };
    call(client, Method::PATCH, &path, Some(&patch), extras).await?;
    println!("{}/{name} scaled", display(resource));
    Ok(())
}

/// Where a Deployment's rollout stands, in kubectl's words.
#[derive(Debug, PartialEq, Eq)]
enum Rollout {
    /// Still going; the line to print.
    Waiting(String),
    /// Done.
    Done,
    /// Failed for good.
    Failed(String),
}

/// kubectl's `DeploymentStatusViewer`: whether `deployment` has rolled out.
fn rollout_state(deployment: &Value) -> Rollout {
    let name = deployment["metadata"]["name"].as_str().unwrap_or("");
    let generation = deployment["metadata"]["generation"].as_i64().unwrap_or(0);
    let status = &deployment["status"];
    let observed = status["observedGeneration"].as_i64().unwrap_or(0);
    if observed == 0 || generation > observed {
        return Rollout::Waiting("Waiting for deployment spec update to be observed...".into());
    }
    let progress_failed = status["conditions"].as_array().is_some_and(|conditions| {
        conditions
            .iter()
            .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
    });
    if progress_failed {
        return Rollout::Failed(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let wanted = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    let updated = status["updatedReplicas"].as_i64().unwrap_or(0);
    let replicas = status["replicas"].as_i64().unwrap_or(0);
    let available = status["availableReplicas"].as_i64().unwrap_or(0);
    if updated < wanted {
        return Rollout::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {updated} out of {wanted} new replicas have been updated..."
        ));
    }
    if replicas > updated {
        return Rollout::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        ));
    }
    if available < updated {
        return Rollout::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    Rollout::Done
}

/// `ctl rollout status`.
///
/// # Errors
/// Not a Deployment, not found, a failed rollout, or the timeout passing.
pub async fn rollout(client: &Client, command: &RolloutCommand) -> anyhow::Result<()> {
    let RolloutCommand::Status {
        resource: typed,
        name,
        timeout,
        ns,
    } = command;
    let (resource, name) = target(typed, name.as_deref())?;
    if resource.kind != "Deployment" {
        bail!(
            "rollout status is supported for deployments only, not {}",
            resource.plural
        );
    }
    // Fail fast, with the server's message, when there is no such deployment.
    let path = object_path(resource, &ns.namespace, &name);
    call_json(client, Method::GET, &path, None, Extras::default()).await?;
    let mut last = String::new();
    let follow = follow_rollout(client, resource, &ns.namespace, &name, &mut last);
    match timeout {
        None => follow.await,
        Some(limit) => match tokio::time::timeout(*limit, follow).await {
            Ok(result) => result,
            Err(_) => bail!(
                "timed out after {} waiting for deployment {name:?} to roll out (last: {})",
                humantime::format_duration(*limit),
                if last.is_empty() {
                    "no status seen"
                } else {
                    last.as_str()
                }
            ),
        },
    }
}

/// Watches one Deployment, printing each new waiting line, until it has
/// rolled out or failed. `last` keeps the latest line for a timeout message.
async fn follow_rollout(
    client: &Client,
    resource: &'static Resource,
    namespace: &str,
    name: &str,
    last: &mut String,
) -> anyhow::Result<()> {
    let path = format!(
        "{}?watch=true&fieldSelector={}",
        collection_path(resource, Some(namespace)),
        encode(&format!("metadata.name={name}"))
    );
    let extras = Extras {
        timeout: Some(STREAM_TIMEOUT),
        ..Extras::default()
    };
    loop {
        let response = call(client, Method::GET, &path, None, extras).await?;
        let mut outcome: Option<anyhow::Result<()>> = None;
        lines(response, |event| {
            match event["type"].as_str().unwrap_or("") {
                "DELETED" => {
                    outcome = Some(Err(anyhow::anyhow!("deployment {name:?} was deleted")));
                    return Ok(false);
                }
                "ERROR" => return Ok(false),
                "BOOKMARK" => return Ok(true),
                _ => {}
            }
            match rollout_state(&event["object"]) {
                Rollout::Waiting(line) => {
                    if *last != line {
                        println!("{line}");
                        *last = line;
                    }
                    Ok(true)
                }
                Rollout::Done => {
                    println!("deployment {name:?} successfully rolled out");
                    outcome = Some(Ok(()));
                    Ok(false)
                }
                Rollout::Failed(message) => {
                    outcome = Some(Err(anyhow::anyhow!(message)));
                    Ok(false)
                }
            }
        })
        .await?;
        if let Some(outcome) = outcome {
            return outcome;
        }
        // The server ended the watch (its timeout or an expired revision):
        // start again from the current object.
    }
}

/// `ctl logs POD`: streams the pod's log to stdout.
///
/// # Errors
/// Server errors, such as no agent being there to serve the log.
pub async fn logs(client: &Client, args: &LogsArgs) -> anyhow::Result<()> {
    let name = match args.pod.split_once('/') {
        Some((kind, name)) => {
            if resource(kind)?.kind != "Pod" {
                bail!("logs are served for pods only");
            }
            name
        }
        None => args.pod.as_str(),
    };
    let pods = registry::by_kind("Pod").context("the Pod resource is registered")?;
    let mut query = vec![format!("follow={}", args.follow)];
    if let Some(container) = &args.container {
        query.push(format!("container={}", encode(container)));
    }
    let path = format!(
        "{}/log?{}",
        object_path(pods, &args.ns.namespace, name),
        query.join("&")
    );
    let extras = Extras {
        timeout: args.follow.then_some(STREAM_TIMEOUT),
        final_unavailable: true,
        ..Extras::default()
    };
    let mut response = call(client, Method::GET, &path, None, extras).await?;
    let mut stdout = std::io::stdout();
    while let Some(chunk) = response.chunk().await? {
        stdout.write_all(&chunk)?;
        stdout.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_parse_yaml_documents_json_and_lists() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: b\n";
        let objects = parse_manifests(yaml).expect("parses");
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1]["kind"], "Deployment");
        let list = r#"{"kind":"List","items":[{"kind":"Pod"},{"kind":"Service"}]}"#;
        assert_eq!(parse_manifests(list).expect("parses").len(), 2);
        assert!(parse_manifests("kind: [unclosed").is_err());
        assert!(parse_manifests("- a\n- b\n").is_err());
    }

    #[test]
    fn names_and_paths_read_like_kubectl() {
        let deploy = resource("deploy").expect("deploy");
        assert_eq!(display(deploy), "deployment.apps");
        assert_eq!(display(resource("po").expect("po")), "pod");
        assert_eq!(
            object_path(deploy, "default", "web"),
            "/apis/apps/v1/namespaces/default/deployments/web"
        );
        let nodes = resource("no").expect("nodes");
        assert_eq!(collection_path(nodes, Some("default")), "/api/v1/nodes");
        assert_eq!(
            collection_path(resource("po").expect("po"), None),
            "/api/v1/pods"
        );
        assert_eq!(encode("app=web,x!=y"), "app%3Dweb%2Cx%21%3Dy");
        let (r, n) = target("deploy/web", None).expect("target");
        assert_eq!((r.plural, n.as_str()), ("deployments", "web"));
        assert!(target("deploy/web", Some("x")).is_err());
        assert!(resource("widgets").is_err());
    }

    #[test]
    fn rollout_states_follow_kubectl() {
        let base = |generation: i64, status: Value| json!({"metadata": {"name": "web", "generation": generation}, "spec": {"replicas": 3}, "status": status});
        for (deployment, want) in [
            (
                base(1, json!({})),
                Rollout::Waiting("Waiting for deployment spec update to be observed...".into()),
            ),
            (
                base(2, json!({"observedGeneration": 1})),
                Rollout::Waiting("Waiting for deployment spec update to be observed...".into()),
            ),
            (
                base(1, json!({"observedGeneration": 1, "updatedReplicas": 1, "replicas": 1})),
                Rollout::Waiting("Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...".into()),
            ),
            (
                base(1, json!({"observedGeneration": 1, "updatedReplicas": 3, "replicas": 4})),
                Rollout::Waiting("Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...".into()),
            ),
            (
                base(1, json!({"observedGeneration": 1, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2})),
                Rollout::Waiting("Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...".into()),
            ),
            (
                base(1, json!({"observedGeneration": 1, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3})),
                Rollout::Done,
            ),
            (
                base(1, json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]})),
                Rollout::Failed("deployment \"web\" exceeded its progress deadline".into()),
            ),
        ] {
            assert_eq!(rollout_state(&deployment), want, "{deployment}");
        }
    }
}
