//! Required fields, types and ranges, message shapes, then content (images, tool arguments).

use super::*;

const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];
const PART_TYPES: [&str; 5] = ["text", "image_url", "input_audio", "file", "refusal"];

pub(super) fn required_fields(body: &Map<String, Value>, api: Api) -> Result<(), ApiError> {
    if !body.contains_key("model") {
        return Err(ApiError::missing_field("/model"));
    }
    let Some(messages) = body.get("messages") else {
        return Err(ApiError::missing_field("/messages"));
    };
    if let Some(list) = messages.as_array() {
        for (i, m) in list.iter().enumerate() {
            let Some(m) = m.as_object() else { continue };
            let Some(role) = m.get("role") else {
                return Err(ApiError::missing_field(&format!("/messages/{i}/role")));
            };
            let role = role.as_str().unwrap_or_default();
            let needs_content = match role {
                "assistant" => !m.contains_key("tool_calls"),
                _ => true,
            };
            if needs_content && !m.contains_key("content") {
                return Err(ApiError::missing_field(&format!("/messages/{i}/content")));
            }
            if role == "tool" && !m.contains_key("tool_call_id") {
                return Err(ApiError::missing_field(&format!(
                    "/messages/{i}/tool_call_id"
                )));
            }
            let calls = m.get("tool_calls").and_then(Value::as_array);
            for (j, c) in calls.into_iter().flatten().enumerate() {
                let Some(c) = c.as_object() else { continue };
                let at = format!("/messages/{i}/tool_calls/{j}");
                for field in ["id", "function"] {
                    if !c.contains_key(field) {
                        return Err(ApiError::missing_field(&format!("{at}/{field}")));
                    }
                }
                if let Some(f) = c.get("function").and_then(Value::as_object) {
                    for field in ["name", "arguments"] {
                        if !f.contains_key(field) {
                            return Err(ApiError::missing_field(&format!("{at}/function/{field}")));
                        }
                    }
                }
            }
        }
    }
    if api == Api::C1 && !body.contains_key("user_id") {
        return Err(ApiError::missing_field("/user_id"));
    }
    Ok(())
}

pub(super) fn number_in(
    body: &Map<String, Value>,
    key: &str,
    lo: f64,
    hi: f64,
) -> Result<(), ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_f64() {
            Some(x) if (lo..=hi).contains(&x) => Ok(()),
            Some(_) => Err(ApiError::invalid_field(
                &format!("/{key}"),
                format!("must be between {lo} and {hi}"),
            )),
            None => Err(ApiError::invalid_field(
                &format!("/{key}"),
                "must be a number",
            )),
        },
    }
}

pub(super) fn integer_in(
    body: &Map<String, Value>,
    key: &str,
    lo: i64,
    hi: i64,
) -> Result<(), ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_i64() {
            Some(x) if (lo..=hi).contains(&x) => Ok(()),
            Some(_) => Err(ApiError::invalid_field(
                &format!("/{key}"),
                format!("must be an integer between {lo} and {hi}"),
            )),
            None if v.is_u64() => Err(ApiError::invalid_field(
                &format!("/{key}"),
                format!("must be an integer between {lo} and {hi}"),
            )),
            None => Err(ApiError::invalid_field(
                &format!("/{key}"),
                "must be an integer",
            )),
        },
    }
}

pub(super) fn bool_field(body: &Map<String, Value>, key: &str) -> Result<(), ApiError> {
    match body.get(key) {
        None | Some(Value::Null) | Some(Value::Bool(_)) => Ok(()),
        Some(_) => Err(ApiError::invalid_field(
            &format!("/{key}"),
            "must be a boolean",
        )),
    }
}

pub(super) fn string_field(body: &Map<String, Value>, key: &str) -> Result<(), ApiError> {
    match body.get(key) {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(ApiError::invalid_field(
            &format!("/{key}"),
            "must be a string",
        )),
    }
}

pub(super) fn types_and_ranges(body: &Map<String, Value>, api: Api) -> Result<(), ApiError> {
    match body.get("model") {
        Some(Value::String(s)) if !s.is_empty() => {}
        _ => {
            return Err(ApiError::invalid_field(
                "/model",
                "must be a non-empty string",
            ))
        }
    }
    let messages = match body.get("messages") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid_field(
                "/messages",
                "must hold at least one message",
            ))
        }
        _ => {
            return Err(ApiError::invalid_field(
                "/messages",
                "must be an array of messages",
            ))
        }
    };
    for (i, m) in messages.iter().enumerate() {
        check_message(m, i)?;
    }
    number_in(body, "temperature", 0.0, 2.0)?;
    number_in(body, "top_p", 0.0, 1.0)?;
    number_in(body, "presence_penalty", -2.0, 2.0)?;
    number_in(body, "frequency_penalty", -2.0, 2.0)?;
    integer_in(body, "n", 1, 128)?;
    integer_in(body, "max_tokens", 1, i64::from(u32::MAX))?;
    integer_in(body, "max_completion_tokens", 1, i64::from(u32::MAX))?;
    integer_in(body, "top_logprobs", 0, 20)?;
    integer_in(body, "seed", i64::MIN, i64::MAX)?;
    bool_field(body, "stream")?;
    bool_field(body, "logprobs")?;
    bool_field(body, "parallel_tool_calls")?;
    string_field(body, "user")?;
    match body.get("stream_options") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => bool_field(o, "include_usage").map_err(|_| {
            ApiError::invalid_field("/stream_options/include_usage", "must be a boolean")
        })?,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "/stream_options",
                "must be an object",
            ))
        }
    }
    match body.get("stop") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(a)) if a.len() <= 4 && a.iter().all(Value::is_string) => {}
        Some(_) => {
            return Err(ApiError::invalid_field(
                "/stop",
                "must be a string or up to 4 strings",
            ))
        }
    }
    match body.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) => {
            for (j, t) in tools.iter().enumerate() {
                let name = t.pointer("/function/name").and_then(Value::as_str);
                if t.get("type").and_then(Value::as_str) != Some("function") {
                    return Err(ApiError::invalid_field(
                        &format!("/tools/{j}/type"),
                        "must be \"function\"",
                    ));
                }
                if name.is_none_or(str::is_empty) {
                    return Err(ApiError::invalid_field(
                        &format!("/tools/{j}/function/name"),
                        "must be a non-empty string",
                    ));
                }
                if let Some(p) = t.pointer("/function/parameters") {
                    if !p.is_object() {
                        return Err(ApiError::invalid_field(
                            &format!("/tools/{j}/function/parameters"),
                            "must be a JSON-schema object",
                        ));
                    }
                }
            }
        }
        Some(_) => return Err(ApiError::invalid_field("/tools", "must be an array")),
    }
    match body.get("tool_choice") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(Value::String(s)) if ["none", "auto", "required"].contains(&s.as_str()) => {}
        Some(_) => {
            return Err(ApiError::invalid_field(
                "/tool_choice",
                "must be none, auto, required or an object",
            ))
        }
    }
    match body.get("response_format") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) if o.get("type").is_some_and(Value::is_string) => {}
        Some(_) => {
            return Err(ApiError::invalid_field(
                "/response_format",
                "must be an object with a string `type`",
            ))
        }
    }
    if api == Api::C1 {
        match body.get("user_id") {
            Some(Value::String(s)) if valid_user_id(s) => {}
            _ => {
                return Err(ApiError::invalid_field(
                    "/user_id",
                    "must be a string of 1-128 printable characters",
                ))
            }
        }
        match body.get("conversation_id") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if valid_conversation_id(s) => {}
            _ => {
                return Err(ApiError::invalid_field(
                    "/conversation_id",
                    "must be a conversation id as returned by this gateway",
                ))
            }
        }
    }
    Ok(())
}

/// `user_id` is the caller's own identifier: any printable text, bounded.
pub(crate) fn valid_user_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control)
}

/// Conversation ids are UUIDs minted by the gateway; anything else cannot exist.
pub(crate) fn valid_conversation_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub(super) fn check_message(m: &Value, i: usize) -> Result<(), ApiError> {
    let Some(m) = m.as_object() else {
        return Err(ApiError::invalid_field(
            &format!("/messages/{i}"),
            "must be an object",
        ));
    };
    let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
    if !ROLES.contains(&role) {
        return Err(ApiError::invalid_field(
            &format!("/messages/{i}/role"),
            "must be one of system, developer, user, assistant, tool",
        ));
    }
    match m.get("content") {
        None | Some(Value::String(_)) => {}
        Some(Value::Null) if role == "assistant" => {}
        Some(Value::Array(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                let at = format!("/messages/{i}/content/{j}");
                let Some(p) = p.as_object() else {
                    return Err(ApiError::invalid_field(
                        &at,
                        "must be a content part object",
                    ));
                };
                let kind = p.get("type").and_then(Value::as_str).unwrap_or_default();
                if !PART_TYPES.contains(&kind) {
                    return Err(ApiError::invalid_field(
                        &format!("{at}/type"),
                        "must be text or image_url",
                    ));
                }
                if kind == "text" && !p.get("text").is_some_and(Value::is_string) {
                    return Err(ApiError::invalid_field(
                        &format!("{at}/text"),
                        "must be a string",
                    ));
                }
                if kind == "image_url"
                    && !p
                        .get("image_url")
                        .and_then(|u| u.get("url"))
                        .is_some_and(Value::is_string)
                {
                    return Err(ApiError::invalid_field(
                        &format!("{at}/image_url/url"),
                        "must be a string",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                &format!("/messages/{i}/content"),
                "must be a string or an array of content parts",
            ))
        }
    }
    if let Some(name) = m.get("name") {
        if !name.is_string() {
            return Err(ApiError::invalid_field(
                &format!("/messages/{i}/name"),
                "must be a string",
            ));
        }
    }
    if role == "tool" && !m.get("tool_call_id").is_some_and(Value::is_string) {
        return Err(ApiError::invalid_field(
            &format!("/messages/{i}/tool_call_id"),
            "must be a string",
        ));
    }
    if let Some(calls) = m.get("tool_calls") {
        let Some(calls) = calls.as_array().filter(|_| role == "assistant") else {
            return Err(ApiError::invalid_field(
                &format!("/messages/{i}/tool_calls"),
                "must be an array, on assistant messages only",
            ));
        };
        for (j, c) in calls.iter().enumerate() {
            let at = format!("/messages/{i}/tool_calls/{j}");
            if !c.get("id").is_some_and(Value::is_string) {
                return Err(ApiError::invalid_field(
                    &format!("{at}/id"),
                    "must be a string",
                ));
            }
            if !c.pointer("/function/name").is_some_and(Value::is_string) {
                return Err(ApiError::invalid_field(
                    &format!("{at}/function/name"),
                    "must be a string",
                ));
            }
            if !c
                .pointer("/function/arguments")
                .is_some_and(Value::is_string)
            {
                return Err(ApiError::invalid_field(
                    &format!("{at}/function/arguments"),
                    "must be a string holding JSON",
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn content_checks(body: &Map<String, Value>, model: &Model) -> Result<(), ApiError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, m) in messages.iter().enumerate() {
        let Some(parts) = m.get("content").and_then(Value::as_array) else {
            continue;
        };
        for (j, p) in parts.iter().enumerate() {
            if let Some(url) = p
                .get("image_url")
                .and_then(|u| u.get("url"))
                .and_then(Value::as_str)
            {
                let at = format!("/messages/{i}/content/{j}/image_url/url");
                images::check_image_url(url, &at, model.constraints.accepts_image_url)?;
            }
        }
    }
    for (i, m) in messages.iter().enumerate() {
        let Some(calls) = m.get("tool_calls").and_then(Value::as_array) else {
            continue;
        };
        for (j, c) in calls.iter().enumerate() {
            let args = c
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if serde_json::from_str::<serde::de::IgnoredAny>(args).is_err() {
                return Err(ApiError::new(
                    Code::ToolCallArgumentsInvalid,
                    "tool-call arguments must be a string holding valid JSON",
                )
                .param(format!("/messages/{i}/tool_calls/{j}/function/arguments")));
            }
        }
    }
    Ok(())
}
