//! Call signatures: what makes two rounds "the same call" for the anti-loop rule.

use serde_json::Value;

/// One tool call as the model made it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Call {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// Name + canonical arguments of every call of a round: equal signatures in consecutive
/// rounds mean the model is looping.
pub(crate) fn signature(calls: &[Call]) -> Vec<(String, String)> {
    calls
        .iter()
        .map(|c| {
            let canon = serde_json::from_str::<Value>(&c.arguments)
                .map(|v| canonical(&v))
                .unwrap_or_else(|_| c.arguments.trim().to_owned());
            (c.name.clone(), canon)
        })
        .collect()
}

/// JSON with object keys sorted at every level, whatever map order serde_json was built with.
pub(crate) fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

pub(super) fn calls_of(message: &Value) -> Vec<Call> {
    message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| Call {
                    id: c
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    name: c
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    arguments: c
                        .pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}
