//! The one canonical encoding that node keys hash.
//!
//! Keys must not move when a user reorders YAML keys or writes `1e9` instead
//! of `1000000000`, and must be identical on every machine. So: object keys are
//! sorted bytewise, numbers that are whole and exactly representable are written
//! as integers, every other number in Rust's shortest round-trip exponent form,
//! `-0` is `0`, strings are JSON-escaped, no whitespace anywhere.

use serde_json::Value;

/// Append the canonical encoding of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => encode_number(n, out),
        Value::String(s) => encode_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_into(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // serde_json's map may preserve insertion order when a dependency
            // enables `preserve_order`; sort explicitly so that never matters.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_string(k, out);
                out.push(':');
                encode_into(v, out);
            }
            out.push('}');
        }
    }
}

/// The canonical encoding of `value` as a string.
pub fn encode(value: &Value) -> String {
    let mut out = String::new();
    encode_into(value, &mut out);
    out
}

/// 2^53: above it not every integer is an f64, so integer and float forms of
/// "the same number" could disagree.
const EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0;

fn encode_number(n: &serde_json::Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
        return;
    }
    if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
        return;
    }
    let f = n.as_f64().unwrap_or(0.0);
    encode_f64(f, out);
}

/// Fixed float form shared by keys and reports.
pub fn encode_f64(f: f64, out: &mut String) {
    if f == 0.0 {
        out.push('0');
    } else if f.fract() == 0.0 && f.abs() < EXACT_INT_LIMIT {
        out.push_str(&(f as i64).to_string());
    } else if f.is_finite() {
        out.push_str(&format!("{f:e}"));
    } else {
        out.push_str("null");
    }
}

fn encode_string(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// Hash a canonical encoding under a domain tag, so that a key can never
/// collide with the digest of an artifact that happens to have the same bytes.
pub fn keyed_hash(domain: &str, value: &Value) -> crate::Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(domain.as_bytes());
    hasher.update(b"\n");
    hasher.update(encode(value).as_bytes());
    crate::Digest::from_hash(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_normalises_numbers() {
        let a = json!({"b": 1, "a": {"y": 1e9, "x": 0.1}});
        let b = json!({"a": {"x": 0.10, "y": 1_000_000_000}, "b": 1.0});
        assert_eq!(encode(&a), encode(&b));
        assert_eq!(encode(&a), r#"{"a":{"x":1e-1,"y":1000000000},"b":1}"#);
    }

    #[test]
    fn negative_zero_is_zero() {
        assert_eq!(encode(&json!(-0.0)), "0");
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|i| json!(i)),
            (-1e12f64..1e12).prop_map(|f| json!(f)),
            "[a-z\"\\\\]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("[a-e]{1,3}", inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Rebuild every object with its entries in reverse insertion order and
    /// every whole number as a float: what a reordered, reformatted YAML gives.
    fn reorder_and_reformat(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut entries: Vec<_> = m.iter().collect();
                entries.reverse();
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), reorder_and_reformat(v)))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(reorder_and_reformat).collect()),
            Value::Number(n) if n.is_i64() => json!(n.as_i64().unwrap() as f64),
            other => other.clone(),
        }
    }

    proptest! {
        #[test]
        fn key_ignores_order_and_number_form(v in arb_value()) {
            let w = reorder_and_reformat(&v);
            prop_assert_eq!(encode(&v), encode(&w));
        }

        #[test]
        fn encoding_is_valid_json_with_same_meaning(v in arb_value()) {
            let text = encode(&v);
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(encode(&back), text);
        }

        #[test]
        fn different_strings_give_different_keys(a in "[a-z]{0,8}", b in "[a-z]{0,8}") {
            prop_assume!(a != b);
            prop_assert_ne!(keyed_hash("t", &json!(a)), keyed_hash("t", &json!(b)));
        }
    }
}
