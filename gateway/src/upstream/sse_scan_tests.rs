//! The one-pass scan against serde_json: its lengths, its refusals and its cost.

use super::*;
use proptest::prelude::*;
use serde_json::Value;

#[test]
fn a_repeat_is_seen_past_the_inline_keys() {
    let mut seen = Seen::default();
    for i in 0..12 {
        let k = format!("k{i}");
        assert!(!seen.has(&k));
        seen.push(Cow::Owned(k.clone()));
        assert!(seen.has(&k));
    }
    assert!(seen.has("k0") && seen.has("k11") && !seen.has("k12"));
    let mut top = String::from("{");
    for i in 0..10 {
        top.push_str(&format!("\"k{i}\":{i},"));
    }
    top.push_str("\"k9\":1}");
    assert!(scan(&top).unwrap().fallback, "a repeat after eight keys");
}

#[test]
fn lengths_are_what_serde_json_writes() {
    for s in [
        "",
        "plain",
        "q\"b\\",
        "\u{8}\t\n\u{c}\r",
        "\u{0}\u{1f}\u{7f}",
        "héllo 😀",
    ] {
        assert_eq!(
            escaped_len(s),
            serde_json::to_string(s).unwrap().len() as u64,
            "{s:?}"
        );
    }
    for n in [
        0i128,
        7,
        10,
        99,
        -1,
        -10,
        i128::from(i64::MIN),
        i128::from(u64::MAX),
    ] {
        assert_eq!(int_len(n), n.to_string().len() as u64, "{n}");
    }
}

#[test]
fn what_json_cost_refuses_is_refused() {
    for bad in [
        "",
        "{",
        "{\"a\":1e400}",
        "{\"a\":\"\\ud800\"}",
        "{} x",
        "nul",
    ] {
        assert!(scan(bad).is_err(), "{bad}");
        assert!(
            crate::checks::lazy::json_cost(bad.as_bytes()).is_err(),
            "{bad}"
        );
    }
    let deep = format!("{{\"model\":{}{}}}", "[".repeat(126), "]".repeat(126));
    assert_eq!(
        scan(&deep).is_ok(),
        serde_json::from_str::<Value>(&deep).is_ok()
    );
    let deeper = format!("{{\"model\":{}{}}}", "[".repeat(127), "]".repeat(127));
    assert_eq!(
        scan(&deeper).is_ok(),
        serde_json::from_str::<Value>(&deeper).is_ok()
    );
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[ -~é\u{1F600}\\\\\"\n\u{1}]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        let key = prop_oneof![
            Just("model".to_owned()),
            Just("usage".to_owned()),
            Just("choices".to_owned()),
            Just("delta".to_owned()),
            Just("content".to_owned()),
            Just("tool_calls".to_owned()),
            Just("total_tokens".to_owned()),
            "[a-z\"\\\\]{0,3}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The cost is `json_cost`'s, and `tool_calls` counts its serialised length, on any
    /// JSON at all.
    #[test]
    fn the_cost_and_the_lengths_are_exact(v in any_json(), wrap in any::<bool>()) {
        let v = if wrap {
            serde_json::json!({"choices": [{"delta": {"tool_calls": v.clone(), "content": "ab"}}], "model": v})
        } else {
            v
        };
        let text = v.to_string();
        let s = scan(&text).unwrap();
        prop_assert_eq!(s.cost, crate::checks::lazy::json_cost(text.as_bytes()).unwrap());
        if wrap {
            // As the `Value` path counts it: from the event's own parse (serde_json's float
            // parse may land one ulp off a printed float, and then prints another).
            let parsed: Value = serde_json::from_str(&text).unwrap();
            let calls = parsed.pointer("/choices/0/delta/tool_calls").unwrap().to_string().len();
            prop_assert!(!s.fallback);
            prop_assert_eq!(s.delta_bytes, (calls + 2) as u64);
            prop_assert!(s.has_choice);
        }
    }
}
