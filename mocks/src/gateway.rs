//! The gateway stage of a double (`MockConfig::gateway`): what a small gateway checks before
//! it relays a chat request to its upstream — field types, known models, a token bucket per
//! key. The answers are the dialect's ([`Fault`](crate::personality::Fault)).
//!
//! Bounds: buckets exist only for the configured `limited_keys` (a caller cannot grow the
//! map: the key was authenticated first); each holds [`LIMITED_BURST`] requests and refills
//! one per [`REFILL_MS`].

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;
use serde_json::Value;

use crate::personality::Dialect;

/// Requests a limited key may send at once (the harness's "fresh rate-limited" tokens: burst 3).
pub(crate) const LIMITED_BURST: f64 = 3.0;
/// One request comes back per this many milliseconds (1 request/s).
pub(crate) const REFILL_MS: f64 = 1000.0;

/// Token buckets of the limited keys.
#[derive(Debug, Default)]
pub(crate) struct Buckets {
    map: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Buckets {
    /// Takes one request from `key`'s bucket; false when it is empty.
    pub(crate) fn allow(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut map = self.map.lock();
        let (tokens, at) = map.entry(key.to_owned()).or_insert((LIMITED_BURST, now));
        let refilled = now.duration_since(*at).as_secs_f64() * 1000.0 / REFILL_MS;
        *tokens = (*tokens + refilled).min(LIMITED_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The first known field of a chat request whose JSON type is wrong, as every OpenAI-style
/// server's request model (pydantic, zod) rejects it.
pub(crate) fn wrong_type(body: &Value) -> Option<&'static str> {
    type Check = (&'static str, fn(&Value) -> bool);
    let checks: [Check; 8] = [
        ("model", Value::is_string),
        ("messages", Value::is_array),
        ("temperature", Value::is_number),
        ("top_p", Value::is_number),
        ("max_tokens", Value::is_u64),
        ("max_completion_tokens", Value::is_u64),
        ("stream", Value::is_boolean),
        ("n", Value::is_u64),
    ];
    checks
        .into_iter()
        .find_map(|(field, ok)| match body.get(field) {
            Some(v) if !v.is_null() && !ok(v) => Some(field),
            _ => None,
        })
}

/// Whether `model` is served: one of `served`, or of the dialect's listed models when
/// `served` is empty.
pub(crate) fn known_model(dialect: &dyn Dialect, served: &[String], model: &str) -> bool {
    if !served.is_empty() {
        return served.iter().any(|m| m == model);
    }
    dialect.models_body(0)["data"]
        .as_array()
        .is_some_and(|models| models.iter().any(|m| m["id"] == model))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_limited_key_gets_its_burst_then_nothing() {
        let b = Buckets::default();
        let taken = (0..6).filter(|_| b.allow("k")).count();
        assert_eq!(taken, 3);
        assert!(b.allow("other"), "buckets are per key");
    }

    #[test]
    fn wrong_types_are_named() {
        assert_eq!(
            wrong_type(&json!({"temperature": "hot"})),
            Some("temperature")
        );
        assert_eq!(
            wrong_type(&json!({"model": "m", "messages": [], "temperature": 0.2})),
            None
        );
        assert_eq!(wrong_type(&json!({"max_tokens": null})), None);
        assert_eq!(wrong_type(&json!({"messages": "hi"})), Some("messages"));
    }
}
