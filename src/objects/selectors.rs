//! Label and field selectors, as `?labelSelector=` and `?fieldSelector=` take them.
//!
//! Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
//! `k` (exists), `!k` (does not exist), comma-separated (all must hold).
//! Field selectors: `path=v`, `path==v`, `path!=v` on any dotted path of the
//! object (`metadata.name`, `metadata.namespace`, `spec.nodeName`,
//! `status.phase`, `involvedObject.uid`...); a missing field reads as "".

use serde_json::Value;

/// One requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// `k=v`, `k==v` or `k!=v`, if `part` is one of those.
fn equality(part: &str) -> Option<Requirement> {
    if let Some((k, v)) = part.split_once("!=") {
        Some(Requirement::NotEquals(k.trim().into(), v.trim().into()))
    } else if let Some((k, v)) = part.split_once("==") {
        Some(Requirement::Equals(k.trim().into(), v.trim().into()))
    } else {
        part.split_once('=')
            .map(|(k, v)| Requirement::Equals(k.trim().into(), v.trim().into()))
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn values(list: &str) -> Result<Vec<String>, String> {
    let inner = list
        .trim()
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised list of values, found {list:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

impl Selector {
    /// Parses a label selector.
    ///
    /// # Errors
    /// A message naming the part that could not be parsed.
    pub fn labels(text: &str) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for part in split_top(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let r = if let Some(r) = equality(part) {
                r
            } else if let Some((k, list)) = part.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), values(list)?)
            } else if let Some((k, list)) = part.split_once(" in ") {
                Requirement::In(k.trim().into(), values(list)?)
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::NotExists(k.trim().into())
            } else if part.contains(|c: char| c.is_whitespace() || c == '(' || c == ')') {
                return Err(format!("unable to parse requirement {part:?}"));
            } else {
                Requirement::Exists(part.into())
            };
            requirements.push(r);
        }
        Ok(Selector { requirements })
    }

    /// Parses a field selector (only `=`, `==` and `!=`).
    ///
    /// # Errors
    /// A message naming the part that could not be parsed.
    pub fn fields(text: &str) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some(r) = equality(part) else {
                return Err(format!(
                    "invalid field selector {part:?}: expected FIELD=VALUE or FIELD!=VALUE"
                ));
            };
            requirements.push(r);
        }
        Ok(Selector { requirements })
    }

    /// A `metav1.LabelSelector` (`matchLabels` and `matchExpressions` with
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`). An empty selector matches
    /// everything; a missing one (JSON null) matches nothing, as Kubernetes
    /// reads a workload's selector.
    ///
    /// # Errors
    /// A message naming the malformed part.
    pub fn from_label_selector(selector: &Value) -> Result<Selector, String> {
        if selector.is_null() {
            return Err("no selector".into());
        }
        let mut requirements = Vec::new();
        if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in labels {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("matchLabels[{k}] must be a string"))?;
                requirements.push(Requirement::Equals(k.clone(), v.to_owned()));
            }
        }
        if let Some(expressions) = selector.get("matchExpressions").and_then(Value::as_array) {
            for e in expressions {
                let key = e["key"]
                    .as_str()
                    .ok_or("matchExpressions[].key must be a string")?
                    .to_owned();
                let values: Vec<String> = e["values"]
                    .as_array()
                    .map(|vs| {
                        vs.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                requirements.push(match e["operator"].as_str() {
                    Some("In") => Requirement::In(key, values),
                    Some("NotIn") => Requirement::NotIn(key, values),
                    Some("Exists") => Requirement::Exists(key),
                    Some("DoesNotExist") => Requirement::NotExists(key),
                    other => return Err(format!("unknown matchExpressions operator {other:?}")),
                });
            }
        }
        Ok(Selector { requirements })
    }

    /// True when no requirement is set.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object's labels satisfy the selector.
    pub fn matches_labels(&self, labels: &[(&str, &str)]) -> bool {
        let get = |key: &str| labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }

    /// Whether an object's fields satisfy the (field) selector.
    pub fn matches_fields(&self, obj: &Value) -> bool {
        let get = |path: &str| -> String {
            let mut at = obj;
            for part in path.split('.') {
                match at.get(part) {
                    Some(next) => at = next,
                    None => return String::new(),
                }
            }
            match at {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            }
        };
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == *v,
            Requirement::NotEquals(k, v) => get(k) != *v,
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let labels = [("app", "web"), ("tier", "front")];
        for (text, want) in [
            ("", true),
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("app in (web, api)", true),
            ("app notin (web)", false),
            ("env notin (prod)", true),
            ("tier", true),
            ("!env", true),
            ("!app", false),
            ("app=web,tier in (back)", false),
        ] {
            let selector = Selector::labels(text).expect(text);
            assert_eq!(selector.matches_labels(&labels), want, "{text}");
        }
        assert!(Selector::labels("app in web").is_err());
        assert!(Selector::labels("a b").is_err());
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        for (text, want) in [
            ("metadata.name=p", true),
            ("spec.nodeName=n1,status.phase!=Pending", true),
            ("spec.nodeName=", false),
            ("metadata.namespace==kube-system", false),
        ] {
            assert_eq!(
                Selector::fields(text).expect(text).matches_fields(&pod),
                want,
                "{text}"
            );
        }
        let unbound = json!({"metadata": {"name": "q"}});
        assert!(Selector::fields("spec.nodeName=")
            .expect("parse")
            .matches_fields(&unbound));
        assert!(Selector::fields("spec.nodeName").is_err());
    }
}
