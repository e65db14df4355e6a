//! Resource quantities (`500m`, `1.5`, `128Mi`, `1e3`) as integers.
//!
//! The scheduler and the agents add and compare requests, so quantities are
//! turned into integers once: CPU in millicores, everything else (memory,
//! pods) in whole units, rounding up as Kubernetes does when a value does not
//! divide evenly. Parsing never panics; an unparsable quantity is `None`
//! (validation refuses those before they are stored).

/// Parses `text` scaled by `scale` (1000 for millicores, 1 for bytes),
/// rounding up to a whole number.
fn parse_scaled(text: &str, scale: f64) -> Option<i64> {
    let text = text.trim();
    const SUFFIXES: [(&str, f64); 15] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (number, multiplier) = SUFFIXES
        .iter()
        .find_map(|(s, m)| text.strip_suffix(s).map(|n| (n, *m)))
        .unwrap_or((text, 1.0));
    if number.is_empty()
        || !number
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | '-' | 'e' | 'E'))
    {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scaled = (value * multiplier * scale).ceil();
    if !scaled.is_finite() || scaled.abs() > 9.0e18 {
        return None;
    }
    // In range (checked above): the cast cannot saturate.
    #[allow(clippy::cast_possible_truncation)]
    Some(scaled as i64)
}

fn text_of(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A CPU quantity in millicores (`"250m"` → 250, `"2"` → 2000).
pub fn cpu_millis(value: &serde_json::Value) -> Option<i64> {
    parse_scaled(&text_of(value)?, 1000.0)
}

/// A quantity in whole units (`"128Mi"` → 134217728, `"110"` → 110).
pub fn units(value: &serde_json::Value) -> Option<i64> {
    parse_scaled(&text_of(value)?, 1.0)
}

/// Formats bytes as Kubernetes prints memory capacity (`16384Ki`).
pub fn kibibytes(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cpu_and_memory_parse_like_kubernetes() {
        for (text, millis) in [
            ("250m", 250),
            ("1", 1000),
            ("1.5", 1500),
            ("0.1", 100),
            ("2k", 2_000_000),
        ] {
            assert_eq!(cpu_millis(&json!(text)), Some(millis), "{text}");
        }
        assert_eq!(cpu_millis(&json!(2)), Some(2000));
        for (text, bytes) in [
            ("128Mi", 134_217_728),
            ("1Gi", 1_073_741_824),
            ("1e3", 1000),
            ("1k", 1000),
            ("100", 100),
            ("1.5Ki", 1536),
        ] {
            assert_eq!(units(&json!(text)), Some(bytes), "{text}");
        }
        for bad in ["", "abc", "1Zi", "--", "1e999"] {
            assert_eq!(units(&json!(bad)), None, "{bad}");
        }
        assert_eq!(units(&json!(true)), None);
        assert_eq!(kibibytes(2048), "2Ki");
    }
}
