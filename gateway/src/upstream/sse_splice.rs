//! The streamed relay's fast path: one upstream `chat.completion.chunk` checked from borrowed
//! keys and raw values, and forwarded as the upstream's own bytes with only `model` spliced.
//!
//! The `Value` path ([`super::sse::UpstreamEvents::next`]) parses each event into a tree,
//! swaps `model`, and serialises the tree again: about twenty allocations per event for a
//! chunk that changes in one field. Here an event is read twice without building anything
//! (once to validate it exactly as the `Value` parse would, once for its top-level members as
//! raw slices), and the relay writes the event's bytes with the alias in place of `model`.
//!
//! The decisions stay those of the `Value` path, from the same rules: the usage report
//! (`usage` when it is an object), "usage only" (`choices` absent or an empty array), the
//! content bytes counted for an abandoned stream (`choices[0].delta.content` and the
//! serialised `tool_calls`), `model` replaced only where the upstream sent one. Anything
//! unusual takes the `Value` path, which decides exactly as before: an `error` member, a
//! repeated or escaped top-level key, `choices` that is not an array, a line break inside the
//! data (forwarded raw it would split the caller's SSE line), serde_json's private marker
//! keys, and whatever the `Value` parse would refuse (the raw reader alone would pass a lone
//! `\uD800` or `1e400`; the validating read refuses them as the `Value` parse does).

use std::borrow::Cow;
use std::ops::Range;

use bytes::BytesMut;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use super::Usage;

/// An upstream chunk that is relayed as its own bytes.
#[derive(Debug)]
pub struct RawChunk {
    data: String,
    /// Where the top-level `model` value sits in `data` (replaced by the alias).
    model: Option<Range<usize>>,
    /// `usage`, when it is an object.
    pub usage: Option<Usage>,
    /// The usage report of `stream_options.include_usage`: no choice in it.
    pub usage_only: bool,
    /// `choices` is an array with at least one choice: the stream has answered something.
    pub has_choice: bool,
    /// Content bytes of `choices[0].delta` (content and serialised `tool_calls`).
    pub delta_bytes: u64,
}

impl RawChunk {
    /// The chunk, or its data back when the `Value` path must decide.
    pub fn parse(data: String) -> Result<RawChunk, String> {
        match Self::read(&data) {
            Some(mut chunk) => {
                chunk.data = data;
                Ok(chunk)
            }
            None => Err(data),
        }
    }

    /// Everything but the data itself (filled in by `parse`).
    fn read(data: &str) -> Option<RawChunk> {
        let bytes = data.as_bytes();
        if bytes.iter().any(|&b| b == b'\n' || b == b'\r') {
            return None;
        }
        // Fails exactly where `from_str::<Value>` fails (same deserializer, same visits).
        serde_json::from_str::<Checked>(data).ok()?;
        let entries = serde_json::from_str::<Entries<'_>>(data).ok()?.0;
        for (i, (k, _)) in entries.iter().enumerate() {
            if *k == "error" || entries[..i].iter().any(|(o, _)| o == k) {
                return None;
            }
        }
        let get = |name: &str| entries.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let usage = match get("usage") {
            Some(raw) if raw.get().starts_with('{') => {
                let v: Value = serde_json::from_str(raw.get()).ok()?;
                Some(Usage::from_json(Some(&v)))
            }
            _ => None,
        };
        let (has_choice, delta_bytes) = match get("choices") {
            None => (false, 0),
            Some(raw) if raw.get().starts_with('[') => {
                let first: FirstChoice<'_> = serde_json::from_str(raw.get()).ok()?;
                match first.0 {
                    None => (false, 0),
                    Some(choice) => (true, delta_bytes(choice)?),
                }
            }
            // An object answers `/0/delta` by key: that stays the `Value` path's call.
            Some(_) => return None,
        };
        Some(RawChunk {
            data: String::new(),
            model: get("model").map(|raw| offset_in(data, raw.get())),
            usage,
            usage_only: usage.is_some() && !has_choice,
            has_choice,
            delta_bytes,
        })
    }

    /// Appends the chunk as one SSE event, `model` replaced by `alias_json` (a JSON string).
    pub fn write_sse(&self, alias_json: &str, out: &mut BytesMut) {
        out.reserve(self.data.len() + alias_json.len() + 8);
        out.extend_from_slice(b"data: ");
        match &self.model {
            Some(r) => {
                out.extend_from_slice(&self.data.as_bytes()[..r.start]);
                out.extend_from_slice(alias_json.as_bytes());
                out.extend_from_slice(&self.data.as_bytes()[r.end..]);
            }
            None => out.extend_from_slice(self.data.as_bytes()),
        }
        out.extend_from_slice(b"\n\n");
    }
}

/// Where `part` (a slice borrowed from `whole`) sits in `whole`.
fn offset_in(whole: &str, part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

/// The content bytes of a choice's `delta`, counted as the `Value` path counts them.
fn delta_bytes(choice: &RawValue) -> Option<u64> {
    if !choice.get().starts_with('{') {
        return Some(0);
    }
    let choice: Choice<'_> = serde_json::from_str(choice.get()).ok()?;
    let Some(delta) = choice.delta.filter(|d| d.get().starts_with('{')) else {
        return Some(0);
    };
    let delta: Delta<'_> = serde_json::from_str(delta.get()).ok()?;
    let text = match delta.content {
        // As `as_str`: a string counts its (unescaped) bytes, any other value nothing.
        Some(raw) if raw.get().starts_with('"') => {
            serde_json::from_str::<Cow<'_, str>>(raw.get()).ok()?.len()
        }
        _ => 0,
    };
    let calls = match delta.tool_calls {
        // As the `Value` path: the serialised value, `null` included.
        Some(raw) => serde_json::from_str::<Value>(raw.get())
            .ok()?
            .to_string()
            .len(),
        None => 0,
    };
    Some((text + calls) as u64)
}

#[derive(serde::Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    tool_calls: Option<&'a RawValue>,
}

/// A member that is there, even as `null` (an `Option` would read `null` as absent).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The first element of an array (the rest skipped), `None` for `[]`.
struct FirstChoice<'a>(Option<&'a RawValue>);

impl<'de> Deserialize<'de> for FirstChoice<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FirstChoice<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                let first = s.next_element::<&'de RawValue>()?;
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstChoice(first))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A top-level object's members in order, keys borrowed (an escaped key fails the parse).
struct Entries<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(8);
                while let Some(entry) = m.next_entry::<&'de str, &'de RawValue>()? {
                    v.push(entry);
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Accepts exactly what `serde_json::Value` accepts, through the same `deserialize_any`
/// calls (so numbers out of range, bad escapes and the nesting limit fail alike), and
/// builds nothing. Only an object passes at the top (`Checked::deserialize` is the top).
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Any { top: true }).map(|_| Checked)
    }
}

/// One value anywhere inside the event.
struct Inner;

impl<'de> Deserialize<'de> for Inner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Any { top: false }).map(|_| Inner)
    }
}

struct Any {
    top: bool,
}

impl Any {
    fn scalar<E: de::Error>(&self) -> Result<(), E> {
        if self.top {
            Err(E::custom("not an object"))
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for Any {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        self.scalar()?;
        while s.next_element::<Inner>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        while m.next_entry::<Key, Inner>()?.is_some() {}
        Ok(())
    }
}

/// An object key; serde_json's own marker keys (`$serde_json::private::…`, which its `Value`
/// parse reads as a raw value or number) fail, so such an event goes the `Value` way.
struct Key;

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                if s.starts_with("$serde_json::private::") {
                    Err(E::custom("serde_json marker key"))
                } else {
                    Ok(Key)
                }
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
#[path = "sse_splice_tests.rs"]
mod tests;
