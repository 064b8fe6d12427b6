//! Unit tests of `toolloop`.
use super::*;
use crate::upstream::sse::Assembler;

#[test]
fn signatures_ignore_key_order_and_whitespace() {
    let a = [Call {
        id: "1".into(),
        name: "f".into(),
        arguments: r#"{"b":1,"a":{"y":2,"x":[1,2]}}"#.into(),
    }];
    let b = [Call {
        id: "2".into(),
        name: "f".into(),
        arguments: r#"{ "a": {"x":[1,2],"y":2}, "b":1 }"#.into(),
    }];
    assert_eq!(signature(&a), signature(&b));
    let c = [Call {
        id: "3".into(),
        name: "f".into(),
        arguments: r#"{"b":2}"#.into(),
    }];
    assert_ne!(signature(&a), signature(&c));
}

#[test]
fn assembler_joins_split_arguments_exactly() {
    let mut asm = Assembler::default();
    let chunks = [
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup_weather", "arguments": ""}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "ty\":\"Oslo\"}"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
    ];
    for c in chunks {
        asm.add(c.as_object().unwrap());
    }
    let m = asm.message();
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Oslo\"}"
    );
    assert_eq!(m["tool_calls"][0]["id"], "call_1");
    assert_eq!(asm.finish_reason.as_deref(), Some("tool_calls"));
}

#[test]
fn a_capped_assembler_keeps_its_cap_and_says_it_cut() {
    let chunk = |t: &str| {
        json!({"choices": [{"index": 0, "delta": {"content": t}}]})
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    let mut asm = Assembler::capped(9);
    asm.add(&chunk("héllo "));
    assert!(!asm.content_cut);
    // "wörld!": the cap (9) falls inside the two bytes of 'ö'; the cut is at a char boundary.
    asm.add(&chunk("wörld!"));
    asm.add(&chunk("more and more"));
    assert!(asm.content_cut);
    assert_eq!(asm.content, "héllo w");
    assert!(asm.content.len() <= 9);
    let mut whole = Assembler::default();
    whole.add(&chunk(&"x".repeat(1 << 20)));
    assert!(!whole.content_cut);
    assert_eq!(whole.content.len(), 1 << 20);
}
