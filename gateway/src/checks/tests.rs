//! Unit tests of `checks`.
use super::*;
use serde_json::json;

fn run(body: Value, api: Api) -> Result<Map<String, Value>, Code> {
    let mut map = body.as_object().cloned().unwrap();
    let cfg = crate::testing::config();
    let tenant = &cfg.tenants[0];
    check_chat(&mut map, &cfg, tenant, api).map_err(|e| e.code)?;
    Ok(map)
}

fn err(body: Value) -> (Code, Option<String>) {
    let mut map = body.as_object().cloned().unwrap();
    let cfg = crate::testing::config();
    let e = check_chat(&mut map, &cfg, &cfg.tenants[0], Api::V1).unwrap_err();
    (e.code, e.param.clone())
}

#[test]
fn required_fields_come_before_types() {
    let (c, p) = err(json!({"messages": [{"content": 1}], "temperature": "hot"}));
    assert_eq!((c, p.as_deref()), (Code::MissingField, Some("/model")));
    let (c, p) = err(
        json!({"model": "small", "messages": [{"role": "user", "content": "x"}, {"content": "y"}], "temperature": 9}),
    );
    assert_eq!(
        (c, p.as_deref()),
        (Code::MissingField, Some("/messages/1/role"))
    );
    assert_eq!(
        run(json!({"model": "small", "messages": []}), Api::C1),
        Err(Code::MissingField)
    );
}

#[test]
fn types_come_before_the_allowlist() {
    let (c, p) = err(
        json!({"model": "nope", "messages": [{"role": "user", "content": "x"}], "temperature": 3}),
    );
    assert_eq!(
        (c, p.as_deref()),
        (Code::InvalidField, Some("/temperature"))
    );
    let (c, p) = err(json!({"model": "small", "messages": [{"role": "robot", "content": "x"}]}));
    assert_eq!(
        (c, p.as_deref()),
        (Code::InvalidField, Some("/messages/0/role"))
    );
    let (c, _) = err(json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}));
    assert_eq!(c, Code::ModelNotInAllowlist);
    for (k, v) in [
        ("max_tokens", json!(0)),
        ("max_tokens", json!(-5)),
        ("n", json!(1.5)),
        ("stream", json!("yes")),
        ("stop", json!(5)),
    ] {
        let mut b = json!({"model": "small", "messages": [{"role": "user", "content": "x"}]});
        b[k] = v;
        let (c, p) = err(b);
        assert_eq!((c, p), (Code::InvalidField, Some(format!("/{k}"))), "{k}");
    }
}

#[test]
fn tool_arguments_must_be_json() {
    let (c, p) = err(json!({"model": "small", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{bad"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"}
    ]}));
    assert_eq!(
        (c, p.as_deref()),
        (
            Code::ToolCallArgumentsInvalid,
            Some("/messages/1/tool_calls/0/function/arguments")
        )
    );
}

#[test]
fn max_tokens_is_floored_silently() {
    let mut map =
        json!({"model": "small", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3})
            .as_object()
            .cloned()
            .unwrap();
    let cfg = crate::testing::config();
    let checked = check_chat(&mut map, &cfg, &cfg.tenants[0], Api::V1).unwrap();
    assert_eq!(checked.floored, Some(16));
    assert_eq!(map["max_tokens"], 16);
}

#[test]
fn non_objects_are_invalid_json() {
    for b in [&b"[1]"[..], b"nul", b"\"x\"", b"{"] {
        let e = parse_chat(
            bytes::Bytes::from_static(b),
            memory::MemoryHold::none(),
            || ApiError::new(Code::InternalError, "busy"),
        )
        .unwrap_err();
        assert_eq!(e.code, Code::InvalidJson);
    }
}
