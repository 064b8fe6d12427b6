//! Unit tests of `checks::lazy`: the split, the raw forward, the memory cost.
use super::*;
use crate::checks::memory::{MemoryBudget, Refused};

fn parse(s: &str) -> Result<ChatBody, ParseError> {
    let b = MemoryBudget::new(1 << 30);
    ChatBody::parse(Bytes::from(s.to_owned()), b.hold())
}

#[test]
fn unknown_fields_stay_raw_and_are_forwarded_verbatim() {
    let body =
        parse(r#"{"model":"m","x-extra":{"deep":[1, 2.50,"é"]},"messages":[],"n":1,"z":null}"#)
            .unwrap();
    assert_eq!(body.keys().collect::<Vec<_>>(), ["messages", "model", "n"]);
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    use serde::ser::{SerializeMap, Serializer};
    let mut m = ser.serialize_map(None).unwrap();
    body.serialize_unknown(&mut m).unwrap();
    m.end().unwrap();
    // Byte for byte: no re-formatting of numbers or escapes.
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"x-extra":{"deep":[1, 2.50,"é"]},"z":null}"#
    );
}

#[test]
fn syntax_anywhere_and_object_shape_are_still_checked() {
    assert!(matches!(
        parse(r#"{"model":"m","junk":[1,}"#),
        Err(ParseError::Syntax(_))
    ));
    assert!(matches!(
        parse(r#"{"model":"m"} x"#),
        Err(ParseError::Syntax(_))
    ));
    assert!(matches!(parse("[0,0,0]"), Err(ParseError::NotObject)));
    assert!(matches!(parse("12"), Err(ParseError::NotObject)));
    assert!(matches!(parse("nope"), Err(ParseError::Syntax(_))));
}

#[test]
fn the_raw_outbound_is_the_callers_bytes_with_model_spliced() {
    let raw = r#"{"x-extra":{"deep":[1, 2.50,"\u00e9"]},"model":"alias","messages":[{"role":"user","content":"a\"b"}],"temperature":0.70,"max_tokens":4}"#;
    let mut body = parse(raw).unwrap();
    // What check_chat's floor does; the raw forward takes the floor keys from the tree.
    body.checks_view()
        .insert("max_tokens".into(), Value::from(16));
    let out = String::from_utf8(body.raw_outbound("up-model").unwrap()).unwrap();
    assert_eq!(
        out,
        r#"{"x-extra":{"deep":[1, 2.50,"\u00e9"]},"model":"up-model","messages":[{"role":"user","content":"a\"b"}],"temperature":0.70,"max_tokens":16}"#
    );
    // The same JSON as the tree path would send.
    let mut want: Value = serde_json::from_str(raw).unwrap();
    want["model"] = "up-model".into();
    want["max_tokens"] = 16.into();
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), want);
}

#[test]
fn a_changed_tree_or_a_repeated_known_key_is_never_forwarded_raw() {
    let mut body = parse(r#"{"model":"m","messages":[]}"#).unwrap();
    assert!(body.raw_outbound("u").is_some());
    body.insert("stream".into(), Value::Bool(true));
    assert!(body.raw_outbound("u").is_none(), "changed through DerefMut");
    let body = parse(r#"{"model":"a","messages":[],"model":"b"}"#).unwrap();
    assert!(body.raw_outbound("u").is_none(), "repeated known key");
    // An escaped spelling of a known key is that key: spliced like the plain one.
    let body = parse(r#"{"mod\u0065l":"a","z":1,"z":2}"#).unwrap();
    assert_eq!(
        String::from_utf8(body.raw_outbound("u").unwrap()).unwrap(),
        r#"{"model":"u","z":1,"z":2}"#
    );
}

#[test]
fn a_repeated_known_key_keeps_the_last_value() {
    let body = parse(r#"{"model":"a","model":"b"}"#).unwrap();
    assert_eq!(body["model"], "b");
}

#[test]
fn the_known_tree_is_paid_for_before_it_is_built() {
    let parts = vec![r#"{"type":"text","text":"x"}"#; 1000].join(",");
    let raw = format!(r#"{{"model":"m","messages":[{{"role":"user","content":[{parts}]}}]}}"#);
    let b = MemoryBudget::new(200_000);
    let e = ChatBody::parse(Bytes::from(raw.clone()), b.hold()).unwrap_err();
    assert!(matches!(e, ParseError::Memory(Refused::TooLarge)), "{e:?}");
    assert_eq!(b.used(), 0, "a refused body holds nothing");
    let b = MemoryBudget::new(10_000_000);
    let body = ChatBody::parse(Bytes::from(raw), b.hold()).unwrap();
    // 1000 objects of two entries: at least the leaf nodes.
    assert!(body.held_bytes() > 1000 * 704, "{}", body.held_bytes());
    assert_eq!(b.used(), body.held_bytes());
    drop(body);
    assert_eq!(b.used(), 0);
}

#[test]
fn a_huge_unknown_field_costs_nothing_beyond_its_bytes() {
    let raw = format!(r#"{{"model":"m","junk":[{}0]}}"#, "0,".repeat(100_000));
    let body = parse(&raw).unwrap();
    assert!(
        body.held_bytes() < 2 * raw.len() + 2_000,
        "{} for {} raw bytes",
        body.held_bytes(),
        raw.len()
    );
}

#[test]
fn a_built_tree_costs_what_its_text_would() {
    let text = r#"{"role":"tool","content":"abc","x":[1,{"k":[null,"",true]}]}"#;
    let v: Value = serde_json::from_str(text).unwrap();
    assert_eq!(value_cost(&v), json_cost(text.as_bytes()).unwrap());
    assert!(value_cost(&v) > 2 * OBJECT);
    assert!(json_cost(b"[0,").is_err());
}
