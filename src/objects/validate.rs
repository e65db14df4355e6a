//! Validation of object fields, collecting every problem as a field error so
//! a 422 names each bad field (as Kubernetes' `field.ErrorList` does).

use serde_json::Value;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path, e.g. `metadata.name` or `spec.containers[0].image`.
    pub field: String,
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`...
    pub reason: &'static str,
    /// What is wrong, with the offending value.
    pub message: String,
}

/// Collected field errors.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    /// Records an invalid value.
    pub fn invalid(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: message.into(),
        });
    }

    /// Records a missing required value.
    pub fn required(&mut self, field: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            reason: "FieldValueRequired",
            message: "Required value".into(),
        });
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The checks every object gets: a JSON object with a well-formed
/// `metadata.name` (spelt as `rule` says), string label and annotation maps,
/// list-typed finalizers and owner references, object-typed spec and status.
pub fn object(obj: &Value, rule: super::strategy::NameRule) -> Errors {
    let mut errors = Errors::default();
    if !obj.is_object() {
        errors.invalid("", "the body must be a JSON object");
        return errors;
    }
    let meta = obj.get("metadata");
    typed(meta, "metadata", "object", &mut errors);
    match super::meta::name(obj) {
        None => errors.required("metadata.name"),
        Some(name) => {
            let problem = match rule {
                super::strategy::NameRule::Label => dns1123_label(name),
                super::strategy::NameRule::Subdomain => dns1123_subdomain(name),
            };
            if let Some(message) = problem {
                errors.invalid("metadata.name", message);
            }
        }
    }
    labels(
        meta.and_then(|m| m.get("labels")),
        "metadata.labels",
        &mut errors,
    );
    string_map(
        meta.and_then(|m| m.get("annotations")),
        "metadata.annotations",
        &mut errors,
    );
    typed(
        meta.and_then(|m| m.get("finalizers")),
        "metadata.finalizers",
        "array",
        &mut errors,
    );
    typed(
        meta.and_then(|m| m.get("ownerReferences")),
        "metadata.ownerReferences",
        "array",
        &mut errors,
    );
    typed(obj.get("spec"), "spec", "object", &mut errors);
    typed(obj.get("status"), "status", "object", &mut errors);
    errors
}

/// Checks a port number (1-65535) at `field`; a missing one is an error only
/// when `required`.
pub fn port_number(value: Option<&Value>, field: &str, required: bool, errors: &mut Errors) {
    match value {
        None if required => errors.required(field),
        None => {}
        Some(v) => match v.as_i64() {
            Some(n) if (1..=65535).contains(&n) => {}
            _ => errors.invalid(
                field,
                format!("Invalid value: {v}: must be between 1 and 65535, inclusive"),
            ),
        },
    }
}

/// Records that `field`'s value is not one of `supported`.
pub fn not_supported(
    field: impl Into<String>,
    value: &Value,
    supported: &[&str],
    errors: &mut Errors,
) {
    let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    errors.0.push(FieldError {
        field: field.into(),
        reason: "FieldValueNotSupported",
        message: format!(
            "Unsupported value: {value}: supported values: {}",
            list.join(", ")
        ),
    });
}

/// Records that `field` may not be set (Kubernetes' `field.Forbidden`).
pub fn forbidden(field: impl Into<String>, message: impl std::fmt::Display, errors: &mut Errors) {
    errors.0.push(FieldError {
        field: field.into(),
        reason: "FieldValueForbidden",
        message: format!("Forbidden: {message}"),
    });
}

/// Longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// Longest DNS-1123 label.
pub const DNS1123_LABEL_MAX: usize = 63;

/// Kubernetes' message for a bad DNS-1123 subdomain, or None if `name` is one.
pub fn dns1123_subdomain(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= DNS1123_SUBDOMAIN_MAX
        && name.split('.').all(label_chars_ok);
    (!ok).then(|| {
        format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    })
}

/// Kubernetes' message for a bad DNS-1123 label, or None if `name` is one.
pub fn dns1123_label(name: &str) -> Option<String> {
    let ok = name.len() <= DNS1123_LABEL_MAX && label_chars_ok(name);
    (!ok).then(|| {
        format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    })
}

fn label_chars_ok(part: &str) -> bool {
    let bytes = part.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A label value or the name part of a label key: at most 63 characters of
/// `[A-Za-z0-9_.-]`, starting and ending alphanumeric (values may be empty).
fn label_value_ok(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.is_empty()
        || (bytes.len() <= 63
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric())
}

/// Validates a labels map at `field`.
pub fn labels(value: Option<&Value>, field: &str, errors: &mut Errors) {
    let Some(value) = value else { return };
    let Some(map) = value.as_object() else {
        errors.invalid(field, "must be a map of strings");
        return;
    };
    for (key, v) in map {
        let (prefix, name) = match key.rsplit_once('/') {
            Some((prefix, name)) => (Some(prefix), name),
            None => (None, key.as_str()),
        };
        let key_ok = !name.is_empty()
            && label_value_ok(name)
            && prefix.is_none_or(|p| dns1123_subdomain(p).is_none());
        if !key_ok {
            errors.invalid(field, format!("Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
        match v.as_str() {
            Some(s) if label_value_ok(s) => {}
            Some(s) => errors.invalid(
                field,
                format!("Invalid value: {s:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
            ),
            None => errors.invalid(format!("{field}[{key}]"), "must be a string"),
        }
    }
}

/// Validates a map of strings (annotations, nodeSelector).
pub fn string_map(value: Option<&Value>, field: &str, errors: &mut Errors) {
    let Some(value) = value else { return };
    match value.as_object() {
        Some(map) => {
            for (key, v) in map {
                if !v.is_string() {
                    errors.invalid(format!("{field}[{key}]"), "must be a string");
                }
            }
        }
        None if value.is_null() => {}
        None => errors.invalid(field, "must be a map of strings"),
    }
}

/// Checks that `value` (if present) has the JSON type `expected`.
pub fn typed(value: Option<&Value>, field: &str, expected: &str, errors: &mut Errors) {
    let Some(value) = value else { return };
    let ok = match expected {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => true,
    } || value.is_null();
    if !ok {
        errors.invalid(field, format!("must be of type {expected}"));
    }
}

/// Whether `text` is a Kubernetes quantity: a decimal number (optionally
/// signed, with a fraction or an exponent) followed by an optional suffix
/// (`Ki Mi Gi Ti Pi Ei`, `n u m k M G T P E`).
pub fn quantity_ok(text: &str) -> bool {
    const SUFFIXES: [&str; 15] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    let number = SUFFIXES
        .iter()
        .find_map(|s| text.strip_suffix(s))
        .unwrap_or(text);
    let digits = number.strip_prefix(['+', '-']).unwrap_or(number);
    let (mantissa, exponent) = match digits.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (digits, None),
    };
    let mantissa_ok = !mantissa.is_empty()
        && mantissa.chars().filter(|c| *c == '.').count() <= 1
        && mantissa.chars().all(|c| c.is_ascii_digit() || c == '.')
        && mantissa.chars().any(|c| c.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

/// Validates a `resources` block (`requests`, `limits`: maps of quantities).
pub fn resources(value: Option<&Value>, field: &str, errors: &mut Errors) {
    let Some(value) = value else { return };
    for part in ["requests", "limits"] {
        let Some(map) = value.get(part).and_then(Value::as_object) else {
            continue;
        };
        for (name, quantity) in map {
            let ok = match quantity {
                Value::String(s) => quantity_ok(s),
                Value::Number(_) => true,
                _ => false,
            };
            if !ok {
                errors.invalid(
                    format!("{field}.{part}[{name}]"),
                    format!("Invalid value: {quantity}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["web", "a", "web-1", "a.b.c", "0abc"] {
            assert!(dns1123_subdomain(good).is_none(), "{good}");
        }
        for bad in ["", "Web", "-a", "a-", "a_b", "a..b", &"a".repeat(254)] {
            assert!(dns1123_subdomain(bad).is_some(), "{bad}");
        }
        assert!(dns1123_label("a.b").is_some());
        assert!(dns1123_label(&"a".repeat(64)).is_some());
    }

    #[test]
    fn quantities() {
        for good in ["1", "100m", "0.5", "2Gi", "512Mi", "1e3", "1.5k", "+1"] {
            assert!(quantity_ok(good), "{good}");
        }
        for bad in ["", "abc", "1.2.3", "Gi", "1Gb", "1e", "--1"] {
            assert!(!quantity_ok(bad), "{bad}");
        }
    }

    #[test]
    fn label_maps() {
        let mut errors = Errors::default();
        labels(
            Some(
                &serde_json::json!({"app": "web", "example.com/tier": "front", "bad key": "x", "ok": "-bad"}),
            ),
            "metadata.labels",
            &mut errors,
        );
        assert_eq!(errors.0.len(), 2, "{errors:?}");
    }
}
