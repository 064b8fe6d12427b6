//! The non-streamed answer relayed as bytes: the upstream's `chat.completion` with only its
//! top-level `model` replaced by the alias, without building a `Value` tree of it and
//! serialising that again.
//!
//! The checks are those of [`super::chat`]: an object whose `choices` is a non-empty array
//! (else the same errors, from the same code), `usage` read for the budget. Every value but
//! `model` is copied as the upstream sent it (serde_json has validated its syntax), so the
//! caller gets the same JSON. Anything unusual (an escaped or repeated top-level key, not an
//! object) takes the `Value` path instead, which decides the answer or the error as before.

use serde_json::value::RawValue;

use super::Usage;

/// The answer with `model` set to `alias`, and its usage; `None` when the `Value` path must
/// decide (including every error).
pub(super) fn swap_model(bytes: &[u8], alias: &str) -> Option<(Vec<u8>, Usage)> {
    let entries: Entries<'_> = serde_json::from_slice(bytes).ok()?;
    let entries = entries.0;
    let has = |k: &str| entries.iter().any(|(key, _)| *key == k);
    let choices = entries.iter().find(|(k, _)| *k == "choices")?.1;
    let first = choices.get().trim_start();
    if !first.starts_with('[') || first[1..].trim_start().starts_with(']') {
        return None;
    }
    for (i, (k, _)) in entries.iter().enumerate() {
        if entries[..i].iter().any(|(other, _)| other == k) {
            return None;
        }
    }
    let usage = match entries.iter().find(|(k, _)| *k == "usage") {
        // Counted, never expanded: a huge `usage` must not cost a tree the answer budget did
        // not grant.
        Some((_, raw)) => Usage::from_raw(raw.get()),
        None => Usage::from_json(None),
    };
    let mut out = Vec::with_capacity(bytes.len() + alias.len() + 12);
    out.push(b'{');
    for (i, (k, raw)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // A borrowed key had no escape in the source, and JSON strings hold no raw control
        // character, so its text between quotes is already valid JSON (no `to_writer` pass).
        out.push(b'"');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
        if *k == "model" {
            serde_json::to_writer(&mut out, alias).ok()?;
        } else {
            out.extend_from_slice(raw.get().as_bytes());
        }
    }
    if !has("model") {
        out.extend_from_slice(b",\"model\":");
        serde_json::to_writer(&mut out, alias).ok()?;
    }
    out.push(b'}');
    Some((out, usage))
}

/// A top-level object's members in order, keys borrowed (an escaped key fails the parse).
struct Entries<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Entries<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(8);
                while let Some(entry) = m.next_entry::<&'de str, &'de RawValue>()? {
                    v.push(entry);
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn swapped(v: &Value) -> Option<(Value, Usage)> {
        let (b, u) = swap_model(v.to_string().as_bytes(), "alias")?;
        Some((serde_json::from_slice(&b).unwrap(), u))
    }

    #[test]
    fn only_model_changes_and_usage_is_read() {
        let v = json!({"id": "x", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi \"there\""}}], "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}});
        let (out, usage) = swapped(&v).unwrap();
        let mut want = v.clone();
        want["model"] = json!("alias");
        assert_eq!(out, want);
        assert_eq!(usage.total_tokens, 5);
    }

    #[test]
    fn a_missing_model_is_added() {
        let (out, _) = swapped(&json!({"choices": [{}]})).unwrap();
        assert_eq!(out, json!({"choices": [{}], "model": "alias"}));
    }

    #[test]
    fn anything_unusual_goes_the_value_way() {
        for v in [
            json!({"choices": []}),
            json!({"choices": {}}),
            json!({"error": {"message": "x"}}),
            json!([1]),
        ] {
            assert!(swapped(&v).is_none(), "{v}");
        }
        assert!(swap_model(br#"{"choices":[1],"choices":[2]}"#, "a").is_none());
        assert!(swap_model(br#"{"cho\u0069ces":[1]}"#, "a").is_none());
        assert!(swap_model(b"{\"choices\":[1]", "a").is_none());
    }

    #[test]
    fn usage_is_counted_as_the_value_path_reads_it() {
        for u in [
            json!({"prompt_tokens": 2, "completion_tokens": 3}),
            json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 9}),
            json!({"prompt_tokens": -1, "completion_tokens": 2.5, "total_tokens": "7"}),
            json!({"prompt_tokens": [1], "x": {"deep": [0, 0, 0]}, "total_tokens": {}}),
            json!([1, 2]),
            json!(null),
            json!(4),
        ] {
            assert_eq!(
                Usage::from_raw(&u.to_string()),
                Usage::from_json(Some(&u)),
                "{u}"
            );
        }
        let last = Usage::from_raw(r#"{"total_tokens":1,"total_tokens":5}"#);
        assert_eq!(
            last.total_tokens, 5,
            "the last of a repeated key, as in a map"
        );
    }
}
