//! Object metadata on JSON objects: what the server sets on create and
//! update (uid, timestamps, generation, resourceVersion) and what it keeps.
//!
//! Objects travel and are stored as JSON (`serde_json::Value`), so every field
//! a user writes round-trips, including ones nothing acts on yet. The stored
//! JSON has no `resourceVersion`: it is the key's mod revision, set on read.

use serde_json::{Map, Value};

/// RFC 3339 UTC timestamp (second precision, as Kubernetes writes them).
pub fn timestamp(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random RFC 4122 version-4 UUID.
pub fn uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A name from `generateName`: the prefix (cut to leave room) and five
/// random characters from the alphabet Kubernetes' name generator uses (no
/// vowels, so no words; no look-alike digits).
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    const MAX_PREFIX: usize = 63 - 5;
    let mut cut = prefix.len().min(MAX_PREFIX);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    let suffix: String = (0..5)
        .map(|_| char::from(ALPHABET[rand::random::<usize>() % ALPHABET.len()]))
        .collect();
    format!("{}{suffix}", &prefix[..cut])
}

/// `metadata` of an object (None when absent or not a map).
pub fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata`, created if missing; None when `obj` is not a JSON object.
pub fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let entry = obj
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut()
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    metadata(obj)?.get(field)?.as_str()
}

/// `metadata.name`.
pub fn name(obj: &Value) -> Option<&str> {
    meta_str(obj, "name").filter(|n| !n.is_empty())
}

/// `metadata.namespace`.
pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace").filter(|n| !n.is_empty())
}

/// `metadata.labels` as pairs.
pub fn labels(obj: &Value) -> Vec<(&str, &str)> {
    metadata(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
                .collect()
        })
        .unwrap_or_default()
}

/// Sets `metadata.resourceVersion` (the store's mod revision).
pub fn set_resource_version(obj: &mut Value, revision: i64) {
    if let Some(meta) = metadata_mut(obj) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

/// `metadata.resourceVersion` as a revision, if present and numeric.
pub fn resource_version(obj: &Value) -> Option<i64> {
    meta_str(obj, "resourceVersion").and_then(|rv| rv.parse().ok())
}

/// Removes what is never stored: `resourceVersion` (it is the mod revision)
/// and `selfLink`.
pub fn strip_for_storage(obj: &mut Value) {
    if let Some(meta) = metadata_mut(obj) {
        meta.remove("resourceVersion");
        meta.remove("selfLink");
    }
}

/// Server-set fields on create: uid, creationTimestamp, generation 1.
pub fn on_create(obj: &mut Value, now: u64) {
    let Some(meta) = metadata_mut(obj) else {
        return;
    };
    meta.insert("uid".into(), Value::String(uuid()));
    meta.insert("creationTimestamp".into(), Value::String(timestamp(now)));
    meta.insert("generation".into(), Value::from(1));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
}

/// Carries the server-owned metadata of `old` over to `new` on update, and
/// bumps `generation` when the spec changed.
pub fn on_update(old: &Value, new: &mut Value) {
    let old_meta = metadata(old).cloned().unwrap_or_default();
    let spec_changed = old.get("spec") != new.get("spec");
    let Some(meta) = metadata_mut(new) else {
        return;
    };
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
    ] {
        match old_meta.get(field) {
            Some(v) => {
                meta.insert(field.into(), v.clone());
            }
            None => {
                meta.remove(field);
            }
        }
    }
    let generation = old_meta
        .get("generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let generation = if spec_changed {
        generation + 1
    } else {
        generation
    };
    meta.insert("generation".into(), Value::from(generation));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generated_names_keep_the_prefix_and_fit() {
        let name = generate_name("web-");
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(generate_name(&"x".repeat(80)).len(), 63);
    }

    #[test]
    fn uuids_are_v4() {
        let id = uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }

    #[test]
    fn update_keeps_identity_and_bumps_generation() {
        let mut old = json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}});
        on_create(&mut old, 1_700_000_000);
        let mut new = json!({"metadata": {"name": "a", "uid": "forged"}, "spec": {"replicas": 2}});
        on_update(&old, &mut new);
        assert_eq!(new["metadata"]["uid"], old["metadata"]["uid"]);
        assert_eq!(new["metadata"]["generation"], 2);
        assert_eq!(old["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        let mut same = new.clone();
        on_update(&new, &mut same);
        assert_eq!(same["metadata"]["generation"], 2);
    }
}
