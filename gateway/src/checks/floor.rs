//! The silent max_tokens floor (SPEC §3, last step): raised, never refused.

use serde_json::{Map, Value};

/// when it changed anything, for the `spass-applied` header.
pub(super) fn floor_max_tokens(body: &mut Map<String, Value>, min: u32) -> Option<u32> {
    let mut floored = None;
    for key in ["max_tokens", "max_completion_tokens"] {
        if let Some(v) = body.get_mut(key) {
            if v.as_u64().is_some_and(|n| n < u64::from(min)) {
                *v = Value::from(min);
                floored = Some(min);
            }
        }
    }
    floored
}
