//! One pass over a streamed event for the byte relay ([`super::sse_splice`]): whether the
//! `Value` parse would accept it, what its tree would cost the answer budget
//! ([`crate::checks::lazy::json_cost`], the same arithmetic), and what the relay decides from
//! it (where `model` is, the usage report, whether a choice came, the content bytes of
//! `choices[0].delta`), without building anything.
//!
//! Why one pass: the relay read each event five times before (the cost, a validating read, the
//! top-level members, the first choice, its delta), about 23 k instructions per event of the
//! mock's stream, over half of a streamed request's user-space work (callgrind, README "The
//! cost of one hop"). Every value is visited through serde_json's `deserialize_any`, as the
//! `Value` parse visits it, so numbers out of range, bad escapes and the nesting limit fail
//! here exactly where that parse fails.
//!
//! Whatever this pass cannot decide exactly as the `Value` path would sets `fallback`, and
//! that path decides: a line break in the data, a top level that is not an object, an `error`
//! member, a repeated or escaped top-level key, `choices` that is not an array, a repeated
//! `delta` in the first choice (a later one that is no object would leave the first one's
//! count standing), a repeated key inside `tool_calls` (the tree keeps the last, so its
//! serialised length is not the sum of the members), serde_json's private marker keys. A
//! repeated `content` or `tool_calls` needs none: the last one's count replaces the earlier
//! ones', as the tree keeps the last.

use std::borrow::Cow;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::checks::lazy::{entry_cost, ARRAY, ELEMENT, OBJECT, STRING};

use super::Usage;

/// What one pass found in an event.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// The heap cost of the event's tree, as `json_cost` computes it.
    pub cost: u64,
    /// The `Value` path must decide this event.
    pub fallback: bool,
    /// Where the top-level `model` value sits in the data.
    pub model: Option<Range<usize>>,
    /// `usage`, when it is an object.
    pub usage: Option<Usage>,
    /// `choices` is an array with at least one element.
    pub has_choice: bool,
    /// Content bytes of `choices[0].delta` (its string `content` and serialised `tool_calls`).
    pub delta_bytes: u64,
}

/// The event's scan; `Err` where `json_cost` fails (not JSON, or past serde_json's limits).
pub(crate) fn scan(data: &str) -> Result<Scan, serde_json::Error> {
    let start = Scan {
        fallback: data.bytes().any(|b| b == b'\n' || b == b'\r'),
        ..Scan::default()
    };
    let (out, mut scan) = walk_text(data, Mode::Top, start)?;
    scan.cost = out.cost;
    Ok(scan)
}

/// `text`, whole, walked as a value in `mode`, starting from `scan`.
fn walk_text(text: &str, mode: Mode, scan: Scan) -> Result<(Out, Scan), serde_json::Error> {
    let mut ctx = Ctx { data: text, scan };
    let mut de = serde_json::Deserializer::from_str(text);
    let out = Walk {
        mode,
        ctx: &mut ctx,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((out, ctx.scan))
}

/// What a value is to the relay, by where it sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The event itself.
    Top,
    /// Nothing to read from it: cost and validity only.
    Any,
    /// The top-level `usage`.
    Usage,
    /// One of the three counts in `usage`.
    Count,
    /// The top-level `choices`.
    Choices,
    /// `choices[0]`.
    FirstChoice,
    /// `choices[0].delta`.
    Delta,
    /// `choices[0].delta.content`.
    Content,
    /// `choices[0].delta.tool_calls` and everything in it: its serialised length.
    ToolCalls,
}

struct Ctx<'de> {
    data: &'de str,
    scan: Scan,
}

/// One value's part: its tree cost, its serialised length (in `ToolCalls` only), the count it
/// holds (in `Count` only), the text length of a string (in `Content` only).
#[derive(Default)]
struct Out {
    cost: u64,
    ser: u64,
    count: Option<u64>,
    text: u64,
}

struct Walk<'a, 'de> {
    mode: Mode,
    ctx: &'a mut Ctx<'de>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
    type Value = Out;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Out, D::Error> {
        d.deserialize_any(self)
    }
}

/// An object key: its text (borrowed unless it had an escape) and, for serde_json's private
/// marker keys, a fallback.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(Key)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_owned()))
    }
}

/// The keys of one object that a repeat would matter for: the first eight on the stack (an
/// ordinary chunk has six or seven top-level members), the rest in a `Vec`, so that an
/// ordinary event allocates nothing here.
struct Seen<'de> {
    inline: [Cow<'de, str>; 8],
    len: usize,
    more: Vec<Cow<'de, str>>,
}

impl Default for Seen<'_> {
    fn default() -> Self {
        Seen {
            inline: std::array::from_fn(|_| Cow::Borrowed("")),
            len: 0,
            more: Vec::new(),
        }
    }
}

impl<'de> Seen<'de> {
    fn has(&self, key: &str) -> bool {
        self.inline[..self.len].iter().any(|k| k == key) || self.more.iter().any(|k| k == key)
    }

    fn push(&mut self, key: Cow<'de, str>) {
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = key;
                self.len += 1;
            }
            None => self.more.push(key),
        }
    }
}

/// The length serde_json writes for the string `s` (quotes and escapes included).
fn escaped_len(s: &str) -> u64 {
    let inner: u64 = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 0x08 | 0x09 | 0x0a | 0x0c | 0x0d => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum();
    inner + 2
}

/// The decimal length of an integer, as serde_json writes it.
fn int_len(n: i128) -> u64 {
    let mut len = u64::from(n < 0);
    let mut m = n.unsigned_abs();
    loop {
        len += 1;
        m /= 10;
        if m == 0 {
            return len;
        }
    }
}

impl Walk<'_, '_> {
    /// A scalar: where an object or array must be, the `Value` path decides.
    fn scalar(&mut self) {
        if matches!(self.mode, Mode::Top | Mode::Choices) {
            self.ctx.scan.fallback = true;
        }
    }

    fn string(&mut self, s: &str) -> Out {
        self.scalar();
        Out {
            cost: if s.is_empty() {
                0
            } else {
                STRING + s.len() as u64
            },
            ser: if self.mode == Mode::ToolCalls {
                escaped_len(s)
            } else {
                0
            },
            count: None,
            text: s.len() as u64,
        }
    }
}

impl<'de> Visitor<'de> for Walk<'_, 'de> {
    type Value = Out;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(mut self, b: bool) -> Result<Out, E> {
        self.scalar();
        Ok(Out {
            ser: if b { 4 } else { 5 },
            ..Out::default()
        })
    }
    fn visit_i64<E: de::Error>(mut self, n: i64) -> Result<Out, E> {
        self.scalar();
        Ok(Out {
            ser: int_len(i128::from(n)),
            ..Out::default()
        })
    }
    fn visit_u64<E: de::Error>(mut self, n: u64) -> Result<Out, E> {
        self.scalar();
        Ok(Out {
            ser: int_len(i128::from(n)),
            count: Some(n),
            ..Out::default()
        })
    }
    fn visit_f64<E: de::Error>(mut self, n: f64) -> Result<Out, E> {
        self.scalar();
        // Only inside `tool_calls`, and rare there: serde_json's own float writer, exactly.
        let ser = if self.mode == Mode::ToolCalls {
            serde_json::to_string(&n).map_or(4, |s| s.len() as u64)
        } else {
            0
        };
        Ok(Out {
            ser,
            ..Out::default()
        })
    }
    fn visit_unit<E: de::Error>(mut self) -> Result<Out, E> {
        self.scalar();
        Ok(Out {
            ser: 4,
            ..Out::default()
        })
    }
    fn visit_borrowed_str<E: de::Error>(mut self, s: &'de str) -> Result<Out, E> {
        Ok(self.string(s))
    }
    fn visit_str<E: de::Error>(mut self, s: &str) -> Result<Out, E> {
        Ok(self.string(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Out, A::Error> {
        let Walk { mode, ctx } = self;
        if mode == Mode::Top {
            ctx.scan.fallback = true;
        }
        let (mut cost, mut ser, mut n) = (ARRAY, 0u64, 0u64);
        loop {
            let child = match mode {
                Mode::Choices if n == 0 => Mode::FirstChoice,
                Mode::ToolCalls => Mode::ToolCalls,
                _ => Mode::Any,
            };
            let Some(out) = a.next_element_seed(Walk {
                mode: child,
                ctx: &mut *ctx,
            })?
            else {
                break;
            };
            cost = cost.saturating_add(ELEMENT).saturating_add(out.cost);
            ser = ser.saturating_add(out.ser);
            n += 1;
        }
        if mode == Mode::Choices {
            ctx.scan.has_choice = n > 0;
        }
        Ok(Out {
            cost,
            ser: ser.saturating_add(2 + n.saturating_sub(1)),
            ..Out::default()
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Out, A::Error> {
        let Walk { mode, ctx } = self;
        if mode == Mode::Choices {
            // `choices` as an object answers `/0/delta` by key: the `Value` path's call.
            ctx.scan.fallback = true;
        }
        let mut cost = OBJECT;
        let mut ser = 0u64;
        let mut n = 0u64;
        // Keys seen where a repeat changes a decision (top level, the first choice's `delta`,
        // anything in `tool_calls`); borrowed unless escaped.
        let mut seen = Seen::default();
        let mut counts = [None; 3];
        let (mut text, mut calls) = (0u64, 0u64);
        while let Some(key) = a.next_key_seed(Key)? {
            if key.starts_with("$serde_json::private::") {
                ctx.scan.fallback = true;
            }
            let tracked = match mode {
                Mode::Top | Mode::ToolCalls => true,
                Mode::FirstChoice => key == "delta",
                _ => false,
            };
            if tracked {
                if seen.has(&key) {
                    ctx.scan.fallback = true;
                }
                if mode == Mode::Top && (matches!(key, Cow::Owned(_)) || key == "error") {
                    ctx.scan.fallback = true;
                }
            }
            let child = match (mode, &*key) {
                (Mode::Top, "usage") => Mode::Usage,
                (Mode::Top, "choices") => Mode::Choices,
                (Mode::Usage, "prompt_tokens" | "completion_tokens" | "total_tokens") => {
                    Mode::Count
                }
                (Mode::FirstChoice, "delta") => Mode::Delta,
                (Mode::Delta, "content") => Mode::Content,
                (Mode::Delta, "tool_calls") | (Mode::ToolCalls, _) => Mode::ToolCalls,
                _ => Mode::Any,
            };
            let out = if (mode, &*key) == (Mode::Top, "model") {
                model(&mut a, ctx)?
            } else {
                a.next_value_seed(Walk {
                    mode: child,
                    ctx: &mut *ctx,
                })?
            };
            cost = cost
                .saturating_add(entry_cost(key.len()))
                .saturating_add(out.cost);
            match (mode, &*key) {
                (Mode::Usage, "prompt_tokens") => counts[0] = out.count,
                (Mode::Usage, "completion_tokens") => counts[1] = out.count,
                (Mode::Usage, "total_tokens") => counts[2] = out.count,
                (Mode::Delta, "content") => text = out.text,
                (Mode::Delta, "tool_calls") => calls = out.ser,
                _ => {}
            }
            if mode == Mode::ToolCalls {
                ser = ser
                    .saturating_add(escaped_len(&key) + 1)
                    .saturating_add(out.ser);
            }
            n += 1;
            if tracked {
                seen.push(key);
            }
        }
        match mode {
            Mode::Usage => ctx.scan.usage = Some(Usage::from_counts(counts)),
            Mode::Delta => ctx.scan.delta_bytes = text.saturating_add(calls),
            _ => {}
        }
        Ok(Out {
            cost,
            ser: ser.saturating_add(2 + n.saturating_sub(1)),
            // `content` as an object: no text.
            ..Out::default()
        })
    }
}

/// The top-level `model`: where its text sits (replaced by the alias, whatever its type), and
/// its cost and validity, walked from that text. A nested value is walked inside one array, so
/// that serde_json's nesting limit counts the event's own level as in the whole parse.
fn model<'de, A: MapAccess<'de>>(a: &mut A, ctx: &mut Ctx<'de>) -> Result<Out, A::Error> {
    let raw: &'de RawValue = a.next_value()?;
    let text = raw.get();
    let start = text.as_ptr() as usize - ctx.data.as_ptr() as usize;
    ctx.scan.model = Some(start..start + text.len());
    let nested = text.starts_with('[') || text.starts_with('{');
    let wrapped;
    let walked = if nested {
        wrapped = format!("[{text}]");
        walk_alone(&wrapped, true)
    } else {
        walk_alone(text, false)
    };
    match walked {
        Ok((out, fallback)) => {
            ctx.scan.fallback |= fallback;
            Ok(out)
        }
        Err(e) => Err(de::Error::custom(e)),
    }
}

/// A value's cost and whether it holds something only the `Value` path decides (a marker key),
/// from its own text; `in_array`: the text is `[value]` and the value's own part is returned.
fn walk_alone(text: &str, in_array: bool) -> Result<(Out, bool), serde_json::Error> {
    let (out, scan) = walk_text(text, Mode::Any, Scan::default())?;
    let out = if in_array {
        Out {
            cost: out.cost.saturating_sub(ARRAY + ELEMENT),
            ..Out::default()
        }
    } else {
        out
    };
    Ok((out, scan.fallback))
}

#[cfg(test)]
#[path = "sse_scan_tests.rs"]
mod tests;
