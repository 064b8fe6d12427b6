//! The streamed relay's fast path: one upstream `chat.completion.chunk` checked from borrowed
//! keys and raw values, and forwarded as the upstream's own bytes with only `model` spliced.
//!
//! The `Value` path ([`super::sse::UpstreamEvents::next`]) parses each event into a tree,
//! swaps `model`, and serialises the tree again: about twenty allocations per event for a
//! chunk that changes in one field. Here an event is read once without building anything
//! ([`super::sse_scan`]: validated exactly as the `Value` parse would, its budget cost and
//! the relay's decisions counted on the way), and the relay writes the event's bytes with the
//! alias in place of `model`.
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

use std::ops::Range;

use bytes::BytesMut;

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
    /// The chunk, or its data back when the `Value` path must decide (tests and benches; the
    /// relay pays for the event from the same scan first, `UpstreamEvents::next_relayed`).
    #[cfg(any(test, feature = "testing"))]
    pub fn parse(data: String) -> Result<RawChunk, String> {
        match super::sse_scan::scan(&data) {
            Ok(scan) if !scan.fallback => Ok(RawChunk::scanned(data, scan)),
            _ => Err(data),
        }
    }

    /// The chunk of `data` as its [`scan`](super::sse_scan::scan) read it (not a fallback).
    pub(crate) fn scanned(data: String, scan: super::sse_scan::Scan) -> RawChunk {
        RawChunk {
            data,
            model: scan.model,
            usage: scan.usage,
            usage_only: scan.usage.is_some() && !scan.has_choice,
            has_choice: scan.has_choice,
            delta_bytes: scan.delta_bytes,
        }
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

#[cfg(test)]
#[path = "sse_splice_tests.rs"]
mod tests;
