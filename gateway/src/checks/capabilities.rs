//! What the model can do (`capabilities` in gateway.yaml) and its context window, checked
//! after the allowlist and before the content checks (SPEC §3), so that a request the model
//! cannot serve is refused precisely and never forwarded.

use super::*;

pub(super) fn capability_checks(body: &Map<String, Value>, model: &Model) -> Result<(), ApiError> {
    let caps = model.capabilities;
    let has_tools = match body.get("tools") {
        None | Some(Value::Null) => false,
        Some(Value::Array(list)) => !list.is_empty(),
        Some(_) => true,
    };
    if has_tools && !caps.tools {
        return Err(ApiError::new(
            Code::ModelDoesNotSupportTools,
            format!(
                "the model `{}` does not support tools; remove `tools` or pick a model with capabilities.tools",
                model.alias
            ),
        )
        .param("/tools"));
    }
    if !caps.vision {
        if let Some(at) = first_image_part(body) {
            return Err(ApiError::new(
                Code::ModelDoesNotSupportVision,
                format!(
                    "the model `{}` does not accept images; send text only or pick a model with capabilities.vision",
                    model.alias
                ),
            )
            .param(at));
        }
    }
    if !caps.streaming && body.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::invalid_field(
            "/stream",
            format!("must be false: the model `{}` does not stream", model.alias),
        ));
    }
    if let (Some(window), Some((field, n))) = (model.constraints.context_window, limit(body)) {
        if n > u64::from(window) {
            return Err(ApiError::new(
                Code::ContextLengthExceeded,
                format!(
                    "`{field}` ({n}) alone exceeds the context window of `{}` ({window} tokens); lower it",
                    model.alias
                ),
            )
            .param(format!("/{field}")));
        }
    }
    Ok(())
}

fn limit(body: &Map<String, Value>) -> Option<(&'static str, u64)> {
    ["max_tokens", "max_completion_tokens"]
        .into_iter()
        .find_map(|f| body.get(f).and_then(Value::as_u64).map(|n| (f, n)))
}

/// JSON pointer of the first `image_url` content part, if any.
fn first_image_part(body: &Map<String, Value>) -> Option<String> {
    let messages = body.get("messages").and_then(Value::as_array)?;
    messages.iter().enumerate().find_map(|(i, m)| {
        let parts = m.get("content").and_then(Value::as_array)?;
        parts
            .iter()
            .position(is_image)
            .map(|j| format!("/messages/{i}/content/{j}"))
    })
}

fn is_image(part: &Value) -> bool {
    part.get("type").and_then(Value::as_str) == Some("image_url") || part.get("image_url").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model(tools: bool, vision: bool) -> Model {
        let mut m = crate::testing::model("m", 0, 1);
        m.capabilities.tools = tools;
        m.capabilities.vision = vision;
        m.constraints.context_window = Some(100);
        m
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn tools_and_images_against_capabilities() {
        let tools = obj(
            json!({"tools": [{"type": "function", "function": {"name": "f"}}], "messages": []}),
        );
        let e = capability_checks(&tools, &model(false, true)).unwrap_err();
        assert_eq!(
            (e.code, e.param.as_deref()),
            (Code::ModelDoesNotSupportTools, Some("/tools"))
        );
        assert!(capability_checks(&tools, &model(true, true)).is_ok());
        assert!(capability_checks(&obj(json!({"tools": []})), &model(false, true)).is_ok());
        let img = obj(json!({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "data:"}}]}
        ]}));
        let e = capability_checks(&img, &model(true, false)).unwrap_err();
        assert_eq!(e.code, Code::ModelDoesNotSupportVision);
        assert_eq!(e.param.as_deref(), Some("/messages/1/content/1"));
        assert!(capability_checks(&img, &model(true, true)).is_ok());
    }

    #[test]
    fn max_tokens_alone_over_the_window() {
        let e =
            capability_checks(&obj(json!({"max_tokens": 101})), &model(true, true)).unwrap_err();
        assert_eq!(
            (e.code, e.param.as_deref()),
            (Code::ContextLengthExceeded, Some("/max_tokens"))
        );
        assert!(capability_checks(&obj(json!({"max_tokens": 100})), &model(true, true)).is_ok());
        let e = capability_checks(
            &obj(json!({"max_completion_tokens": 500})),
            &model(true, true),
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("/max_completion_tokens"));
    }
}
