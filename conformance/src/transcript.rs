//! What each scenario sent and what came back, kept for the reports: a [`Tape`] per World,
//! filled by `world::execute`, collected per scenario by the runner's after-hook into
//! [`Tapes`], then stored in the run history and shown in the HTML pages.
//!
//! Everything is bounded, so a run of thousands of requests (or a 32 MiB body) stays a
//! small report: at most [`MAX_EXCHANGES`] exchanges per scenario (the first ones, plus a
//! count of the rest), bodies clipped to [`MAX_BODY_BYTES`], at most [`MAX_HEADERS`] headers
//! per message. Credentials never reach a report: the values of [`SECRET_HEADERS`] are
//! replaced by their length.

use std::collections::HashMap;
use std::sync::Arc;

use cucumber::gherkin;
use parking_lot::Mutex;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

/// Exchanges kept per scenario; later ones are only counted.
pub const MAX_EXCHANGES: usize = 8;
/// Bytes kept of each request and response body.
pub const MAX_BODY_BYTES: usize = 4096;
/// Headers kept per request and per response.
pub const MAX_HEADERS: usize = 40;
/// Bytes kept of one header value.
pub const MAX_HEADER_VALUE_BYTES: usize = 512;
/// Headers whose values are credentials.
pub const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
    "set-cookie",
];

/// A body as the report keeps it: the first bytes as text, and how big it really was.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    pub text: String,
    pub bytes: usize,
    pub truncated: bool,
}

impl Body {
    pub fn of(bytes: &[u8]) -> Body {
        let kept = &bytes[..bytes.len().min(MAX_BODY_BYTES)];
        Body {
            text: String::from_utf8_lossy(kept).into_owned(),
            bytes: bytes.len(),
            truncated: kept.len() < bytes.len(),
        }
    }
}

/// One request and its answer (or the transport error instead of one).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub method: String,
    /// Path and query only: the host of an embedded run is an ephemeral port.
    pub path: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<Body>,
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<Body>,
    /// The request failed before an answer, or reading the answer failed.
    pub error: Option<String>,
    pub elapsed_ms: f64,
}

/// The request half of an [`Exchange`], taken before the request is sent.
#[derive(Clone, Debug)]
pub struct Sent(Exchange);

impl Sent {
    pub fn new(
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Sent {
        Sent(Exchange {
            method: method.to_owned(),
            path: clip(path, MAX_HEADER_VALUE_BYTES),
            request_headers: headers
                .iter()
                .take(MAX_HEADERS)
                .map(|(n, v)| (n.to_ascii_lowercase(), shown_value(n, v)))
                .collect(),
            request_body: body.map(Body::of),
            ..Exchange::default()
        })
    }

    /// The answer arrived (possibly cut short: `read_error`).
    pub fn answered(
        self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        read_error: Option<&str>,
        elapsed_ms: f64,
    ) -> Exchange {
        let mut x = self.0;
        x.status = Some(status);
        x.response_headers = headers
            .iter()
            .take(MAX_HEADERS)
            .map(|(n, v)| {
                let v = String::from_utf8_lossy(v.as_bytes());
                (n.as_str().to_owned(), shown_value(n.as_str(), &v))
            })
            .collect();
        x.response_body = Some(Body::of(body));
        x.error = read_error.map(|e| clip(e, MAX_BODY_BYTES));
        x.elapsed_ms = elapsed_ms;
        x
    }

    /// No answer at all.
    pub fn failed(self, error: &str, elapsed_ms: f64) -> Exchange {
        let mut x = self.0;
        x.error = Some(clip(error, MAX_BODY_BYTES));
        x.elapsed_ms = elapsed_ms;
        x
    }
}

fn shown_value(name: &str, value: &str) -> String {
    if SECRET_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
        format!("<redacted, {} bytes>", value.len())
    } else {
        clip(value, MAX_HEADER_VALUE_BYTES)
    }
}

/// The first `max` bytes of `s`, cut at a character boundary, with `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The exchanges of one scenario, at most [`MAX_EXCHANGES`] of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub exchanges: Vec<Exchange>,
    /// Exchanges past the cap, counted but not kept.
    pub dropped: usize,
}

/// A World's recorder; clones share one transcript (requests sent in parallel all land).
#[derive(Clone, Debug, Default)]
pub struct Tape(Arc<Mutex<Transcript>>);

impl Tape {
    pub fn record(&self, x: Exchange) {
        let mut t = self.0.lock();
        if t.exchanges.len() < MAX_EXCHANGES {
            t.exchanges.push(x);
        } else {
            t.dropped += 1;
        }
    }

    /// Everything recorded so far; the tape is left empty.
    pub fn take(&self) -> Transcript {
        std::mem::take(&mut *self.0.lock())
    }
}

/// Identifies a scenario the way the cucumber JSON report does: feature file name, line
/// (the Examples row's line for outlines) and name (prefixed by the rule's name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub file: String,
    pub line: usize,
    pub name: String,
}

impl Key {
    pub fn of(
        feature: &gherkin::Feature,
        rule: Option<&gherkin::Rule>,
        scenario: &gherkin::Scenario,
    ) -> Key {
        let file = feature
            .path
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match rule {
            Some(r) => format!("{} {}", r.name, scenario.name),
            None => scenario.name.clone(),
        };
        Key {
            file,
            line: scenario.position.line,
            name,
        }
    }

    pub fn of_result(r: &crate::report::ScenarioResult) -> Key {
        Key {
            file: r.file(),
            line: r.line,
            name: r.name.clone(),
        }
    }
}

/// The transcripts of a run, by scenario; shared by the runner's after-hook.
#[derive(Clone, Debug, Default)]
pub struct Tapes(Arc<Mutex<HashMap<Key, Transcript>>>);

impl Tapes {
    pub fn put(&self, key: Key, t: Transcript) {
        self.0.lock().insert(key, t);
    }

    pub fn take(&self, key: &Key) -> Transcript {
        self.0.lock().remove(key).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn credentials_are_redacted_and_bodies_bounded() {
        let headers = vec![
            ("Authorization".to_owned(), "Bearer sk-secret".to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        let big = vec![b'x'; MAX_BODY_BYTES * 3];
        let sent = Sent::new("POST", "/v1/chat/completions", &headers, Some(&big));
        let mut resp = HeaderMap::new();
        resp.insert("set-cookie", "session=abc".parse().unwrap());
        let x = sent.answered(200, &resp, b"{}", None, 1.5);
        let all = serde_json::to_string(&x).unwrap();
        assert!(
            !all.contains("sk-secret") && !all.contains("session=abc"),
            "{all}"
        );
        assert_eq!(x.request_headers[0].1, "<redacted, 16 bytes>");
        let body = x.request_body.unwrap();
        assert_eq!(
            (body.bytes, body.text.len(), body.truncated),
            (big.len(), MAX_BODY_BYTES, true)
        );
        assert_eq!(x.status, Some(200));
    }

    #[test]
    fn a_tape_keeps_the_first_exchanges_and_counts_the_rest() {
        let tape = Tape::default();
        for _ in 0..MAX_EXCHANGES + 5 {
            tape.clone()
                .record(Sent::new("GET", "/errors", &[], None).failed("refused", 0.0));
        }
        let t = tape.take();
        assert_eq!((t.exchanges.len(), t.dropped), (MAX_EXCHANGES, 5));
        assert_eq!(tape.take(), Transcript::default());
    }

    #[test]
    fn clip_cuts_at_a_character_boundary() {
        assert_eq!(clip("héllo", 2), "h…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
