//! The chat body parsed without expanding what the gateway does not read (issue 15).
//!
//! A first pass over the raw bytes checks that they are one JSON object and splits its
//! top-level entries: the fields the checks of SPEC §3 and the request path read ([`KNOWN`])
//! become a `serde_json` tree; every other entry is left in the raw bytes, never parsed into a
//! tree, and is copied verbatim into the upstream request by [`ChatBody::serialize_unknown`].
//! Before the known fields are expanded, their tree is costed ([`tree_cost`]) and that cost is
//! taken from the process-wide body memory budget, so no body builds a tree the budget has not
//! granted. The checks themselves run on the known tree exactly as before, with the same
//! pointers: `ChatBody` dereferences to that map.

use std::ops::{Deref, DerefMut};

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::memory::MemoryHold;

/// The top-level fields anything in the gateway reads (checks, floor, budget estimate,
/// capabilities, error mapping, the relay, the tool loop, /c1). Everything else is opaque.
pub(crate) const KNOWN: &[&str] = &[
    "model",
    "messages",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "top_logprobs",
    "seed",
    "stream",
    "logprobs",
    "parallel_tool_calls",
    "user",
    "stream_options",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
    "user_id",
    "conversation_id",
];

fn is_known(k: &str) -> bool {
    KNOWN.contains(&k)
}

/// A request body: the known fields as a tree (what the checks see through `Deref`), the raw
/// body the unknown fields are forwarded from, and the body's share of the memory budget.
#[derive(Debug)]
pub struct ChatBody {
    known: Map<String, Value>,
    raw: Bytes,
    hold: std::sync::Arc<MemoryHold>,
}

impl Deref for ChatBody {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Map<String, Value> {
        &self.known
    }
}

impl DerefMut for ChatBody {
    fn deref_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.known
    }
}

impl Clone for ChatBody {
    /// A copy for another upstream call (the tool loop's synthesis): the raw bytes and the
    /// memory hold are shared, not copied.
    fn clone(&self) -> Self {
        ChatBody {
            known: self.known.clone(),
            raw: self.raw.clone(),
            hold: self.hold.clone(),
        }
    }
}

/// Why a body could not be parsed.
#[derive(Debug)]
pub enum ParseError {
    /// Not JSON (the message says where).
    Syntax(String),
    /// JSON, but not one object.
    NotObject,
    /// The known fields' tree does not fit the memory budget.
    Memory(super::memory::Refused),
}

impl ChatBody {
    /// Splits `raw` as the module header says; `hold` already covers the raw bytes and grows
    /// by the cost of the known tree before it is built.
    pub fn parse(raw: Bytes, mut hold: MemoryHold) -> Result<ChatBody, ParseError> {
        let known_raw = split(&raw)?;
        let cost: u64 = known_raw
            .iter()
            .map(|(k, v)| {
                serde_json::from_str::<Cost>(v.get())
                    .map_or(0, |c| c.0)
                    .saturating_add(entry_cost(k.len()))
            })
            .fold(OBJECT, u64::saturating_add)
            // The raw bytes themselves, and the upstream request serialised from the body:
            // about its raw size again.
            .saturating_add(2 * raw.len() as u64);
        // Settled to what this body needs: less than was held while reading gives the rest
        // back, more must fit the budget now.
        hold.resize(usize::try_from(cost).unwrap_or(usize::MAX))
            .map_err(ParseError::Memory)?;
        let mut known = Map::new();
        for (k, v) in known_raw {
            let value: Value =
                serde_json::from_str(v.get()).map_err(|e| ParseError::Syntax(e.to_string()))?;
            known.insert(k, value);
        }
        Ok(ChatBody {
            known,
            raw,
            hold: std::sync::Arc::new(hold),
        })
    }

    /// Moves the known fields into a new body on the same raw bytes and memory hold (the tool
    /// loop's synthesis request); `self` is left without known fields.
    pub fn take(&mut self) -> ChatBody {
        ChatBody {
            known: std::mem::take(&mut self.known),
            raw: self.raw.clone(),
            hold: self.hold.clone(),
        }
    }

    /// Bytes of the memory budget this body holds.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.hold.bytes()
    }

    /// Writes every unknown top-level entry of the raw body into `out`, verbatim.
    pub fn serialize_unknown<M: serde::ser::SerializeMap>(
        &self,
        out: &mut M,
    ) -> Result<(), M::Error> {
        if self.raw.is_empty() {
            return Ok(());
        }
        let mut de = serde_json::Deserializer::from_slice(&self.raw);
        match de.deserialize_map(Unknown { out }) {
            Ok(r) => r,
            Err(e) => Err(serde::ser::Error::custom(e)),
        }
    }
}

/// First pass: one object, syntax checked end to end, known entries borrowed as raw text
/// (a repeated key: the last one wins, as in a parsed `Map`).
fn split(raw: &[u8]) -> Result<Vec<(String, &RawValue)>, ParseError> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let known = de.deserialize_map(Split).map_err(|e| {
        if e.classify() == serde_json::error::Category::Data {
            ParseError::NotObject
        } else {
            ParseError::Syntax(e.to_string())
        }
    })?;
    de.end().map_err(|e| ParseError::Syntax(e.to_string()))?;
    Ok(known)
}

struct Split;

impl<'de> Visitor<'de> for Split {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut known: Vec<(String, &'de RawValue)> = Vec::new();
        while let Some(k) = a.next_key::<String>()? {
            if is_known(&k) {
                let v: &'de RawValue = a.next_value()?;
                known.retain(|(x, _)| *x != k);
                known.push((k, v));
            } else {
                // Syntax-checked, not kept: the raw bytes are the copy.
                a.next_value::<IgnoredAny>()?;
            }
        }
        Ok(known)
    }
}

/// Streams the unknown entries of the raw body into a map serializer.
struct Unknown<'o, M> {
    out: &'o mut M,
}

impl<'de, M: serde::ser::SerializeMap> Visitor<'de> for Unknown<'_, M> {
    type Value = Result<(), M::Error>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while let Some(k) = a.next_key::<String>()? {
            if is_known(&k) {
                a.next_value::<IgnoredAny>()?;
                continue;
            }
            let v: &'de RawValue = a.next_value()?;
            if let Err(e) = self.out.serialize_entry(&k, v) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }
}

// What a `serde_json::Value` tree costs in heap bytes, by part (64-bit, serde_json without
// `preserve_order`, so objects are BTreeMaps). Measured against VmHWM by
// `gateway/tests/memory.rs`; deliberately generous, since it only has to be an upper bound.
/// An object: a BTreeMap leaf node (11 slots of key + value) and its allocation overhead.
const OBJECT: u64 = 704;
/// An array, before its elements.
const ARRAY: u64 = 32;
/// One array element: a 32-byte `Value` slot, doubled for the Vec's growth.
const ELEMENT: u64 = 64;
/// A string's allocation overhead beyond its bytes.
const STRING: u64 = 32;

/// One object entry: its slot in a (half-full) BTreeMap node, and its key's allocation.
fn entry_cost(key_len: usize) -> u64 {
    128 + STRING + key_len as u64
}

/// The heap cost of the tree `raw` would parse into, computed without building it (an upstream
/// answer, an SSE chunk, a tool's answer); a syntax error is the parse's error.
pub(crate) fn json_cost(raw: &[u8]) -> Result<u64, serde_json::Error> {
    serde_json::from_slice::<Cost>(raw).map(|c| c.0)
}

/// The same cost for a tree the gateway built itself (what the tool loop appends).
pub(crate) fn value_cost(v: &Value) -> u64 {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) if s.is_empty() => 0,
        Value::String(s) => STRING + s.len() as u64,
        Value::Array(a) => a.iter().fold(ARRAY, |t, e| {
            t.saturating_add(ELEMENT).saturating_add(value_cost(e))
        }),
        Value::Object(m) => m.iter().fold(OBJECT, |t, (k, e)| {
            t.saturating_add(entry_cost(k.len()))
                .saturating_add(value_cost(e))
        }),
    }
}

/// The heap cost of the tree a JSON value would parse into, computed without building it.
struct Cost(u64);

impl<'de> de::Deserialize<'de> for Cost {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CostVisitor)
    }
}

struct CostVisitor;

impl<'de> DeserializeSeed<'de> for CostVisitor {
    type Value = Cost;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cost, D::Error> {
        d.deserialize_any(CostVisitor)
    }
}

struct KeyLen;

impl<'de> DeserializeSeed<'de> for KeyLen {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(KeyLen)
    }
}

impl Visitor<'_> for KeyLen {
    type Value = usize;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<usize, E> {
        Ok(s.len())
    }
}

impl<'de> Visitor<'de> for CostVisitor {
    type Value = Cost;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Cost, E> {
        Ok(Cost(0))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Cost, E> {
        Ok(Cost(0))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Cost, E> {
        Ok(Cost(0))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Cost, E> {
        Ok(Cost(0))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Cost, E> {
        Ok(Cost(0))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Cost, E> {
        Ok(Cost(if s.is_empty() {
            0
        } else {
            STRING + s.len() as u64
        }))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Cost, A::Error> {
        let mut total = ARRAY;
        while let Some(c) = a.next_element_seed(CostVisitor)? {
            total = total.saturating_add(ELEMENT).saturating_add(c.0);
        }
        Ok(Cost(total))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Cost, A::Error> {
        let mut total = OBJECT;
        while let Some(k) = a.next_key_seed(KeyLen)? {
            let c = a.next_value_seed(CostVisitor)?;
            total = total.saturating_add(entry_cost(k)).saturating_add(c.0);
        }
        Ok(Cost(total))
    }
}

#[cfg(test)]
mod tests {
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
    fn a_built_tree_costs_what_its_text_would() {
        let text = r#"{"role":"tool","content":"abc","x":[1,{"k":[null,"",true]}]}"#;
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(value_cost(&v), json_cost(text.as_bytes()).unwrap());
        assert!(value_cost(&v) > 2 * OBJECT);
        assert!(json_cost(b"[0,").is_err());
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
}
