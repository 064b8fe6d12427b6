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
//!
//! The upstream request is the caller's bytes, entry by entry, with `model` spliced and the
//! floor keys written from the tree ([`ChatBody::raw_outbound`]), as long as nothing else in
//! the tree changed; a body changed through `DerefMut` (the stream options, /c1's history,
//! the tool loop) is serialised from the tree instead.

use std::ops::{Deref, DerefMut};

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
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

/// A request body: the known fields as a tree (what the checks see through `Deref`), the raw
/// body the unknown fields are forwarded from, and the body's share of the memory budget.
#[derive(Debug)]
pub struct ChatBody {
    known: Map<String, Value>,
    raw: Bytes,
    hold: std::sync::Arc<MemoryHold>,
    /// Every top-level entry of `raw` in order: its key, and where its value lies in `raw`.
    entries: std::sync::Arc<[Entry]>,
    /// The raw bytes still say what the tree says (but for the floor keys, [`Self::checks_view`]):
    /// false once the tree was changed through `DerefMut`, or when a known key is repeated.
    pristine: bool,
}

/// One top-level entry of the raw body: a known key by its index in [`KNOWN`] (no
/// allocation), any other by name; the value as a byte range of the raw body.
#[derive(Debug)]
struct Entry {
    key: EntryKey,
    value: std::ops::Range<usize>,
}

#[derive(Debug)]
enum EntryKey {
    Known(usize),
    Other(String),
}

/// The keys [`super::floor`] may change, the only ones [`ChatBody::raw_outbound`] writes from
/// the tree rather than from the raw bytes.
const FLOOR_KEYS: [&str; 2] = ["max_tokens", "max_completion_tokens"];

impl Deref for ChatBody {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Map<String, Value> {
        &self.known
    }
}

impl DerefMut for ChatBody {
    /// A changed tree no longer matches the raw bytes: the upstream request is then
    /// serialised from the tree ([`ChatBody::raw_outbound`] answers `None`).
    fn deref_mut(&mut self) -> &mut Map<String, Value> {
        self.pristine = false;
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
            entries: self.entries.clone(),
            pristine: self.pristine,
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
        let Split {
            known: known_raw,
            entries,
            repeated,
        } = split(&raw)?;
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
            known.insert(k.to_owned(), value);
        }
        Ok(ChatBody {
            known,
            raw,
            hold: std::sync::Arc::new(hold),
            entries: entries.into(),
            pristine: !repeated,
        })
    }

    /// The tree for [`super::check_chat`], which changes at most the floor keys
    /// ([`FLOOR_KEYS`]): [`Self::raw_outbound`] takes those from the tree, so the body stays
    /// pristine. Every other change goes through `DerefMut`.
    pub(crate) fn checks_view(&mut self) -> &mut Map<String, Value> {
        &mut self.known
    }

    /// The upstream request straight from the caller's bytes: every entry in the caller's
    /// order and spelling, `model` replaced by `model`, the floor keys written from the tree
    /// (the floor may have raised them). `None` when the tree was changed otherwise or a known
    /// key was repeated: then the request is serialised from the tree.
    pub(crate) fn raw_outbound(&self, model: &str) -> Option<Vec<u8>> {
        if !self.pristine {
            return None;
        }
        let mut out = Vec::with_capacity(self.raw.len() + model.len() + 16);
        out.push(b'{');
        let mut wrote_model = false;
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match &e.key {
                EntryKey::Known(k) => {
                    let name = KNOWN[*k];
                    serde_json::to_writer(&mut out, name).ok()?;
                    out.push(b':');
                    if name == "model" {
                        serde_json::to_writer(&mut out, model).ok()?;
                        wrote_model = true;
                    } else if FLOOR_KEYS.contains(&name) {
                        serde_json::to_writer(&mut out, self.known.get(name)?).ok()?;
                    } else {
                        out.extend_from_slice(self.raw.get(e.value.clone())?);
                    }
                }
                EntryKey::Other(name) => {
                    serde_json::to_writer(&mut out, name).ok()?;
                    out.push(b':');
                    out.extend_from_slice(self.raw.get(e.value.clone())?);
                }
            }
        }
        if !wrote_model {
            if !self.entries.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(b"\"model\":");
            serde_json::to_writer(&mut out, model).ok()?;
        }
        out.push(b'}');
        Some(out)
    }

    /// Moves the known fields into a new body on the same raw bytes and memory hold (the tool
    /// loop's synthesis request); `self` is left without known fields.
    pub fn take(&mut self) -> ChatBody {
        self.pristine = false;
        ChatBody {
            known: std::mem::take(&mut self.known),
            raw: self.raw.clone(),
            hold: self.hold.clone(),
            entries: self.entries.clone(),
            // The synthesis body is rebuilt from the tree: its raw bytes no longer say what it says.
            pristine: false,
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
        for e in self.entries.iter() {
            let EntryKey::Other(name) = &e.key else {
                continue;
            };
            let text = self
                .raw
                .get(e.value.clone())
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| serde::ser::Error::custom("entry outside the body"))?;
            let v: &RawValue = serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
            out.serialize_entry(name, v)?;
        }
        Ok(())
    }
}

/// What the first pass found: the known entries borrowed as raw text (a repeated key: the
/// last one wins, as in a parsed `Map`), every entry's place, and whether a known key repeated.
struct Split<'de> {
    known: Vec<(&'static str, &'de RawValue)>,
    entries: Vec<Entry>,
    repeated: bool,
}

/// First pass: one object, syntax checked end to end.
fn split(raw: &[u8]) -> Result<Split<'_>, ParseError> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let found = de
        .deserialize_map(SplitVisitor { base: raw })
        .map_err(|e| {
            if e.classify() == serde_json::error::Category::Data {
                ParseError::NotObject
            } else {
                ParseError::Syntax(e.to_string())
            }
        })?;
    de.end().map_err(|e| ParseError::Syntax(e.to_string()))?;
    Ok(found)
}

struct SplitVisitor<'de> {
    base: &'de [u8],
}

/// Where `v` lies in `base` (it is a sub-slice of it: serde_json borrows raw values from the
/// input).
fn range_in(base: &[u8], v: &RawValue) -> std::ops::Range<usize> {
    let start = (v.get().as_ptr() as usize).saturating_sub(base.as_ptr() as usize);
    start..start + v.get().len()
}

impl<'de> Visitor<'de> for SplitVisitor<'de> {
    type Value = Split<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out = Split {
            known: Vec::new(),
            entries: Vec::new(),
            repeated: false,
        };
        while let Some(k) = a.next_key::<Key<'de>>()? {
            // Syntax-checked by serde_json either way; an unknown value is never expanded.
            let v: &'de RawValue = a.next_value()?;
            let value = range_in(self.base, v);
            match KNOWN.iter().position(|x| *x == k.as_str()) {
                Some(i) => {
                    let name = KNOWN[i];
                    let before = out.known.len();
                    out.known.retain(|(x, _)| *x != name);
                    out.repeated |= out.known.len() != before;
                    out.known.push((name, v));
                    out.entries.push(Entry {
                        key: EntryKey::Known(i),
                        value,
                    });
                }
                None => out.entries.push(Entry {
                    key: EntryKey::Other(k.into_string()),
                    value,
                }),
            }
        }
        Ok(out)
    }
}

/// A key, borrowed from the body unless it has escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
    fn into_string(self) -> String {
        match self {
            Key::Borrowed(s) => s.to_owned(),
            Key::Owned(s) => s,
        }
    }
}

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(s))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(s.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

// What a `serde_json::Value` tree costs in heap bytes, by part (64-bit, serde_json without
// `preserve_order`, so objects are BTreeMaps). Measured against VmHWM by
// `gateway/tests/memory.rs`; deliberately generous, since it only has to be an upper bound.
/// An object: a BTreeMap leaf node (11 slots of key + value) and its allocation overhead.
pub(crate) const OBJECT: u64 = 704;
/// An array, before its elements.
pub(crate) const ARRAY: u64 = 32;
/// One array element: a 32-byte `Value` slot, doubled for the Vec's growth.
pub(crate) const ELEMENT: u64 = 64;
/// A string's allocation overhead beyond its bytes.
pub(crate) const STRING: u64 = 32;

/// One object entry: its slot in a (half-full) BTreeMap node, and its key's allocation.
pub(crate) fn entry_cost(key_len: usize) -> u64 {
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
#[path = "lazy_tests.rs"]
mod tests;
