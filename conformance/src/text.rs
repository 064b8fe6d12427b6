//! Small text helpers shared by the steps: unquoting `{string}` values, JSON pointers that
//! create what they address, and the "plain text against a JSON value" comparison of STEPS.md.

use serde_json::{Map, Value};

/// Unescapes a `{string}` value (cucumber already removed the quotes): `\"`, `\'`, `\\`,
/// `\n`, `\r`, `\t`. A table cell may already hold a real newline; both end up the same.
pub fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            // Anything else is not an escape: keep both characters as written.
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Parses a JSON literal written in a feature (`42`, `"hot"`, `{"a": 1}`).
pub fn json_literal(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("`{text}` is not a JSON literal: {e}"))
}

fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("`{pointer}` is not a JSON pointer (must start with /)"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// Sets `pointer` in `root` to `value`. Missing objects are created on the way; an array
/// index equal to the array's length appends.
pub fn pointer_set(root: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    let tokens = tokens(pointer)?;
    let Some((last, parents)) = tokens.split_last() else {
        *root = value;
        return Ok(());
    };
    let mut node = root;
    for (i, token) in parents.iter().enumerate() {
        let next_is_index = tokens
            .get(i + 1)
            .is_some_and(|t| t.parse::<usize>().is_ok());
        node = child_mut(node, token, next_is_index, pointer)?;
    }
    match node {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let index: usize = last
                .parse()
                .map_err(|_| format!("`{pointer}`: `{last}` is not an array index"))?;
            if index < items.len() {
                items[index] = value;
                Ok(())
            } else if index == items.len() {
                items.push(value);
                Ok(())
            } else {
                Err(format!(
                    "`{pointer}`: index {index} is past the end of the array"
                ))
            }
        }
        _ => Err(format!("`{pointer}`: the parent is not an object or array")),
    }
}

fn child_mut<'a>(
    node: &'a mut Value,
    token: &str,
    next_is_index: bool,
    pointer: &str,
) -> Result<&'a mut Value, String> {
    let fresh = || {
        if next_is_index {
            Value::Array(Vec::new())
        } else {
            Value::Object(Map::new())
        }
    };
    match node {
        Value::Object(map) => {
            let slot = map.entry(token.to_owned()).or_insert_with(fresh);
            if slot.is_null() {
                *slot = fresh();
            }
            Ok(slot)
        }
        Value::Array(items) => {
            let index: usize = token
                .parse()
                .map_err(|_| format!("`{pointer}`: `{token}` is not an array index"))?;
            if index == items.len() {
                items.push(fresh());
            }
            items
                .get_mut(index)
                .ok_or_else(|| format!("`{pointer}`: index {index} is past the end"))
        }
        _ => Err(format!(
            "`{pointer}`: `{token}` has no object or array parent"
        )),
    }
}

/// Removes `pointer` from `root`; an absent target is an error (the feature is wrong then).
pub fn pointer_remove(root: &mut Value, pointer: &str) -> Result<(), String> {
    let tokens = tokens(pointer)?;
    let Some((last, parents)) = tokens.split_last() else {
        return Err("cannot remove the whole document".into());
    };
    let parent_ptr: String = parents
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect();
    let parent = root
        .pointer_mut(&parent_ptr)
        .ok_or_else(|| format!("`{pointer}`: the parent does not exist in the request"))?;
    let removed = match parent {
        Value::Object(map) => map.remove(last).is_some(),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    };
    if removed {
        Ok(())
    } else {
        Err(format!("`{pointer}` is not in the pending request"))
    }
}

/// STEPS.md: a string field matches its text exactly; any other value matches its compact
/// JSON serialisation.
pub fn value_matches(value: &Value, expected: &str) -> bool {
    match value {
        Value::String(s) => s == expected,
        // Compare the serialisation, never `Value == str` (that only matches strings).
        other => serde_json::to_string(other).is_ok_and(|compact| compact == expected),
    }
}

/// How a value is shown in a failure message.
pub fn show(value: Option<&Value>) -> String {
    match value {
        None => "(absent)".into(),
        Some(v) => {
            let s = v.to_string();
            clip(&s, 400)
        }
    }
}

/// Shortens long text for failure messages, on a character boundary.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let cut = s
        .char_indices()
        .take_while(|(i, _)| *i < max)
        .last()
        .map_or(0, |(i, c)| i + c.len_utf8());
    format!("{}… ({} bytes)", &s[..cut], s.len())
}

/// The numbers (at least two characters: digits, optionally with a decimal part) in `text`.
pub fn numbers_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, out: &mut Vec<String>| {
        let n = current.trim_end_matches('.').to_owned();
        if n.len() >= 2 && !out.contains(&n) {
            out.push(n);
        }
        current.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || (c == '.' && !current.is_empty() && !current.contains('.')) {
            current.push(c);
        } else {
            flush(&mut current, &mut out);
        }
    }
    flush(&mut current, &mut out);
    out
}

/// Whether `number` occurs in `text` as a whole number (not inside a longer run of digits).
pub fn contains_number(text: &str, number: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find(number) {
        let start = from + pos;
        let end = start + number.len();
        let before = start.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(end).copied();
        let digitish = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_digit() || b == b'.');
        if !digitish(before) && !digitish(after) {
            return true;
        }
        from = start + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn unescape_handles_both_newline_forms() {
        assert_eq!(unescape(r"a\nb"), "a\nb");
        assert_eq!(unescape("a\nb"), "a\nb");
        assert_eq!(unescape(r#"\"x\" \'y\' \\ \t\r"#), "\"x\" 'y' \\ \t\r");
        assert_eq!(unescape(r"keep \d"), r"keep \d");
    }

    #[test]
    fn pointers_create_append_and_remove() {
        let mut v = json!({"messages": [{"role": "user"}]});
        pointer_set(&mut v, "/messages/1", json!({"role": "x"})).unwrap();
        pointer_set(&mut v, "/stream_options/include_usage", json!(true)).unwrap();
        pointer_set(&mut v, "/messages/0/content", json!("hi")).unwrap();
        assert_eq!(v["messages"][1]["role"], "x");
        assert_eq!(v["stream_options"]["include_usage"], true);
        pointer_remove(&mut v, "/messages/0/role").unwrap();
        assert!(v["messages"][0].get("role").is_none());
        assert!(pointer_remove(&mut v, "/nope").is_err());
        assert!(pointer_set(&mut v, "/messages/5", json!(1)).is_err());
    }

    #[test]
    fn values_compare_as_text_or_compact_json() {
        assert!(value_matches(&json!("stop"), "stop"));
        assert!(value_matches(&json!(10), "10"));
        assert!(value_matches(&json!(true), "true"));
        assert!(value_matches(&json!(null), "null"));
        assert!(value_matches(&json!([]), "[]"));
        assert!(!value_matches(&json!("10"), "\"10\""));
    }

    #[test]
    fn numbers_are_found_whole() {
        assert_eq!(
            numbers_in("cost: 10.0042, Max budget: 10.0 rpm 1"),
            ["10.0042", "10.0"]
        );
        assert!(contains_number("port 8000 here", "8000"));
        assert!(!contains_number("80001", "8000"));
        assert!(!contains_number("10.00421", "10.0042"));
    }
}
