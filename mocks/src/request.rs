//! What the mock reads from a chat request before the body is moved into its record.

use serde_json::Value;

/// What the mock needs from a chat request, pulled out before the body is moved into a record.
pub(crate) struct RequestInfo {
    pub stream: bool,
    pub include_usage: bool,
    pub(crate) model: Option<String>,
    pub(crate) has_messages: bool,
    /// Up to 60 chars of the last user message, echoed by the default reply.
    pub(crate) echo: String,
    pub prompt_tokens: u64,
    pub(crate) max_tokens: Option<u64>,
}

impl RequestInfo {
    pub(crate) fn extract(body: &Value) -> RequestInfo {
        let messages = body.get("messages").and_then(Value::as_array);
        let mut chars = 0usize;
        let mut echo = String::new();
        for message in messages.into_iter().flatten() {
            let is_user = message.get("role").and_then(Value::as_str) == Some("user");
            let mut text = String::new();
            match message.get("content") {
                Some(Value::String(s)) => {
                    chars += s.chars().count();
                    if is_user {
                        text.push_str(s);
                    }
                }
                Some(Value::Array(parts)) => {
                    for t in parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                    {
                        chars += t.chars().count();
                        if is_user {
                            text.push_str(t);
                        }
                    }
                }
                _ => {}
            }
            if is_user {
                echo = text.chars().take(60).collect();
            }
        }
        RequestInfo {
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: body
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            model: body.get("model").and_then(Value::as_str).map(str::to_owned),
            has_messages: messages.is_some(),
            echo,
            prompt_tokens: (chars as u64).div_ceil(4) + 1,
            max_tokens: body
                .get("max_completion_tokens")
                .or_else(|| body.get("max_tokens"))
                .and_then(Value::as_u64),
        }
    }
}
