//! The World's assertions. Each failure message says what was expected and what the target
//! actually answered, so a red report is enough to tell which side is wrong.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::profile::Judgement;
use crate::schemas;
use crate::sse::Event;
use crate::text::{self, show, value_matches};
use crate::world::{GatewayWorld, Outcome, Resp};

const PROVIDERS: &[&str] = &["litellm", "openrouter", "vllm", "openai"];

fn last_json(resp: &Resp) -> Result<Value, String> {
    resp.json()
        .ok_or_else(|| format!("expected a JSON body, but {}", resp.describe()))
}

/// All text of a message's content (string, or the text and image URLs of its parts).
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| {
                p.get("text")
                    .and_then(Value::as_str)
                    .or_else(|| p.pointer("/image_url/url").and_then(Value::as_str))
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

impl GatewayWorld {
    // ---- status, envelope, catalog codes ----

    pub fn status_is(&self, expected: u16) -> Outcome {
        let r = self.last()?;
        if r.status == expected {
            Ok(())
        } else {
            Err(format!("expected HTTP {expected}, but {}", r.describe()))
        }
    }

    fn envelope(&self, r: &Resp) -> Result<Value, String> {
        let body = last_json(r)?;
        self.target()?
            .schemas
            .check(schemas::ENVELOPE, &body)
            .map_err(|e| format!("the error body {e} ({} answered HTTP {})", r.what, r.status))?;
        Ok(body)
    }

    /// `the response is the error "<code>"`: a DGX-layer condition named by its code; the
    /// profile says which status, type and headers it must come with.
    pub async fn is_error(&self, code: &str) -> Outcome {
        self.answers_condition(code).await
    }

    /// Judges the last answer by the profile's expectation for `condition`.
    pub async fn answers_condition(&self, condition: &str) -> Outcome {
        let r = self.last()?;
        let t = self.target()?;
        match t.profile.judge(condition, r, &t.schemas) {
            Judgement::Conformant => Ok(()),
            Judgement::NonStrict(why) => {
                self.non_strict(why);
                Ok(())
            }
            Judgement::Failed(m) => Err(format!("{m}{}", self.attempts_note().await)),
        }
    }

    /// A failure after the 200 is signalled in-band the way the profile expects.
    pub async fn stream_signals_condition(&self, condition: &str) -> Outcome {
        let r = self.last()?;
        let t = self.target()?;
        if r.status != 200 || r.events.is_none() {
            // Failing before the first chunk is an ordinary error answer: any 5xx will do.
            if r.status >= 500 {
                return Ok(());
            }
            return Err(format!(
                "expected a stream that signals the upstream's failure (or a 5xx before it started), but {}",
                r.describe()
            ));
        }
        match t.profile.judge_in_band(condition, r) {
            Judgement::Conformant => Ok(()),
            Judgement::NonStrict(why) => {
                self.non_strict(why);
                Ok(())
            }
            Judgement::Failed(m) => Err(m),
        }
    }

    /// Safety: a client error is never answered with a 5xx (whatever the code says).
    pub fn not_server_error(&self) -> Outcome {
        let r = self.last()?;
        if r.status >= 500 {
            Err(format!(
                "a client error must never get a server error (5xx), but {}",
                r.describe()
            ))
        } else {
            Ok(())
        }
    }

    /// Safety: the bearer this scenario presented appears in no body and no header.
    pub fn credential_not_echoed(&self, secret: &str) -> Outcome {
        let r = self.last()?;
        let mut found = Vec::new();
        if r.text().contains(secret) {
            found.push("the body".to_owned());
        }
        for (name, value) in &r.headers {
            if value.to_str().is_ok_and(|v| v.contains(secret)) {
                found.push(format!("the header `{name}`"));
            }
        }
        if found.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the presented credential `{secret}` is echoed in {}: {}",
                found.join(" and "),
                r.describe()
            ))
        }
    }

    pub async fn is_4xx_catalog_error(&self) -> Outcome {
        let r = self.last()?;
        if !(400..500).contains(&r.status) {
            return Err(format!(
                "expected a 4xx catalog error, but {}",
                r.describe()
            ));
        }
        let body = self.envelope(r)?;
        let code = body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let entry = self.target()?.catalog_entry(code).await?;
        if code != "upstream_bad_request" && entry.http_status != r.status {
            return Err(format!(
                "`{code}` is HTTP {} in the catalog, but {}",
                entry.http_status,
                r.describe()
            ));
        }
        Ok(())
    }

    pub async fn is_tool_loop_status(&self, code: &str) -> Outcome {
        let r = self.last()?;
        if r.status != 200 {
            return Err(format!(
                "expected HTTP 200 with dgx_code `{code}`, but {}",
                r.describe()
            ));
        }
        let body = last_json(r)?;
        self.target()?.schemas.check(schemas::COMPLETION, &body)?;
        let dgx = body.get("dgx_code");
        if dgx.and_then(Value::as_str) != Some(code) {
            return Err(format!(
                "expected dgx_code `{code}`, got {}: {}",
                show(dgx),
                r.describe()
            ));
        }
        let finish = body.pointer("/choices/0/finish_reason");
        if finish.and_then(Value::as_str) != Some("stop") {
            return Err(format!(
                "expected finish_reason `stop`, got {}",
                show(finish)
            ));
        }
        let content = body
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str);
        if content.is_none_or(|c| c.trim().is_empty()) {
            return Err(format!("expected non-empty content, but {}", r.describe()));
        }
        Ok(())
    }

    fn error_field(&self, pointer: &str) -> Result<(Value, &Resp), String> {
        let r = self.last()?;
        let body = last_json(r)?;
        let v = body
            .pointer(pointer)
            .cloned()
            .ok_or_else(|| format!("the body has no `{pointer}`: {}", r.describe()))?;
        Ok((v, r))
    }

    pub fn param_is(&self, expected: &str) -> Outcome {
        let (v, r) = self.error_field("/error/param")?;
        if v.as_str() == Some(expected) {
            Ok(())
        } else {
            Err(format!(
                "expected error.param `{expected}`, got {v}: {}",
                r.describe()
            ))
        }
    }

    fn message(&self) -> Result<(String, &Resp), String> {
        let (v, r) = self.error_field("/error/message")?;
        Ok((v.as_str().unwrap_or_default().to_owned(), r))
    }

    pub fn message_contains(&self, needle: &str) -> Outcome {
        let (m, r) = self.message()?;
        if m.contains(needle) {
            Ok(())
        } else {
            Err(format!(
                "expected error.message to contain `{needle}`: {}",
                r.describe()
            ))
        }
    }

    pub fn message_lacks(&self, needle: &str) -> Outcome {
        let (m, r) = self.message()?;
        if m.to_lowercase().contains(&needle.to_lowercase()) {
            Err(format!(
                "error.message must not contain `{needle}`: {}",
                r.describe()
            ))
        } else {
            Ok(())
        }
    }

    /// The alias the request named (the pending body's `model`) appears in the error message:
    /// where the upstream's sentence named its own model, the caller reads its alias.
    pub fn message_names_alias(&self) -> Outcome {
        self.message_names_alias_with("", "", true)
    }

    /// Whether the message holds `before`, the request's model alias and `after` in one run
    /// (`named`: it must; else it must not).
    pub fn message_names_alias_with(&self, before: &str, after: &str, named: bool) -> Outcome {
        let (m, r) = self.message()?;
        let alias = self
            .body
            .get("model")
            .and_then(Value::as_str)
            .ok_or("the request names no model")?;
        let text = format!("{before}{alias}{after}");
        match (m.contains(&text), named) {
            (true, true) | (false, false) => Ok(()),
            (false, true) => Err(format!(
                "error.message must name the model alias `{alias}` the request used (as `{text}`): {}",
                r.describe()
            )),
            (true, false) => Err(format!(
                "error.message must not hold `{text}`: the upstream's sentence named another model, and the alias `{alias}` written into it makes up a name: {}",
                r.describe()
            )),
        }
    }

    /// The model names the upstream received (what the gateway, or a proxy behind it, sent as
    /// `model`) are internal: none of them may appear in the caller's error message.
    pub async fn message_names_no_upstream_model(&self) -> Outcome {
        let (m, r) = self.message()?;
        let records = self.records().await?;
        if records.is_empty() {
            return Err("the upstream received no request for this scenario".into());
        }
        for rec in &records {
            if let Some(name) = rec.body.get("model").and_then(Value::as_str) {
                if !name.is_empty() && m.contains(name) {
                    return Err(format!(
                        "error.message names the upstream model `{name}`: {}",
                        r.describe()
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn message_has_request_id(&self) -> Outcome {
        let (m, r) = self.message()?;
        let id = r
            .header("x-request-id")
            .ok_or_else(|| format!("the response has no x-request-id: {}", r.describe()))?;
        if m.contains(id) {
            Ok(())
        } else {
            Err(format!(
                "error.message must contain the request id `{id}`: {}",
                r.describe()
            ))
        }
    }

    pub fn reveals_nothing(&self) -> Outcome {
        let r = self.last()?;
        let found = self.revealed(&r.text());
        if found.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the body reveals {}: {}",
                found.join(", "),
                r.describe()
            ))
        }
    }

    /// Safety: neither the body nor any header names an upstream host, URL, key or figure.
    /// Provider names are left to the contract (the `dgx` layer's step above): a gateway may
    /// say which kind of provider it fronts.
    pub fn reveals_nothing_anywhere(&self) -> Outcome {
        let r = self.last()?;
        let mut found: Vec<String> = self
            .revealed_where(&r.text(), false)
            .into_iter()
            .filter(|f| !f.starts_with("the provider name"))
            .map(|f| format!("the body reveals {f}"))
            .collect();
        for (name, value) in &r.headers {
            let Ok(v) = value.to_str() else { continue };
            for f in self.revealed_where(v, false) {
                if !f.starts_with("the provider name") {
                    found.push(format!(
                        "the header `{name}: {}` reveals {f}",
                        text::clip(v, 120)
                    ));
                }
            }
        }
        if found.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", found.join("; "), r.describe()))
        }
    }

    /// What `body` reveals of the upstream (empty = nothing).
    fn revealed(&self, body: &str) -> Vec<String> {
        self.revealed_where(body, true)
    }

    /// `figures`: also the numbers of the scripted upstream body (quota figures); off for
    /// headers and the baseline, where small numbers are ordinary (`retry-after: 5`).
    fn revealed_where(&self, body: &str, figures: bool) -> Vec<String> {
        let Ok(t) = self.target() else {
            return Vec::new();
        };
        let body = body.to_owned();
        let lower = body.to_lowercase();
        let mut found = Vec::new();
        for scheme in ["http://", "https://"] {
            if lower.contains(scheme) {
                found.push(format!("a URL (`{scheme}`)"));
            }
        }
        for p in PROVIDERS {
            if lower.contains(p) {
                found.push(format!("the provider name `{p}`"));
            }
        }
        for h in &t.upstream_hosts {
            let hit = if h.chars().all(|c| c.is_ascii_digit()) {
                text::contains_number(&body, h)
            } else {
                lower.contains(&h.to_lowercase())
            };
            if hit {
                found.push(format!("the upstream host/port `{h}`"));
            }
        }
        for k in &t.upstream_secrets {
            if body.contains(k.as_str()) {
                found.push("the upstream API key".to_owned());
            }
        }
        for n in self.upstream_numbers.iter().filter(|_| figures) {
            if text::contains_number(&body, n) {
                found.push(format!("the number `{n}` from the upstream's error body"));
            }
        }
        found
    }

    // ---- headers ----

    pub fn header_is(&self, name: &str, expected: &str) -> Outcome {
        let r = self.last()?;
        match r.header(name) {
            Some(v) if v == expected => Ok(()),
            other => Err(format!(
                "expected header `{name}: {expected}`, got {}: {}",
                other.map_or("(absent)".to_owned(), |v| format!("`{v}`")),
                r.describe()
            )),
        }
    }

    pub fn header_contains(&self, name: &str, needle: &str) -> Outcome {
        let r = self.last()?;
        match r.header(name) {
            Some(v) if v.to_lowercase().contains(&needle.to_lowercase()) => Ok(()),
            other => Err(format!(
                "expected header `{name}` to contain `{needle}`, got {}: {}",
                other.map_or("(absent)".to_owned(), |v| format!("`{v}`")),
                r.describe()
            )),
        }
    }

    pub fn header_present(&self, name: &str, present: bool) -> Outcome {
        let r = self.last()?;
        match (r.header(name), present) {
            (Some(_), true) | (None, false) => Ok(()),
            (Some(v), false) => Err(format!(
                "expected no header `{name}`, got `{v}`: {}",
                r.describe()
            )),
            (None, true) => Err(format!("expected a header `{name}`: {}", r.describe())),
        }
    }

    pub fn header_is_uuid(&self, name: &str) -> Outcome {
        let r = self.last()?;
        let v = r.header(name).unwrap_or_default();
        let hyphenated = v.len() == 36 && uuid::Uuid::parse_str(v).is_ok();
        if hyphenated {
            Ok(())
        } else {
            Err(format!(
                "expected header `{name}` to be a hyphenated UUID, got `{v}`: {}",
                r.describe()
            ))
        }
    }

    fn retry_after(&self) -> Result<u64, String> {
        let r = self.last()?;
        let raw = r
            .header("retry-after")
            .ok_or_else(|| format!("expected a Retry-After header: {}", r.describe()))?;
        raw.trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0 && raw.trim().chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| {
                format!("Retry-After must be a positive whole number of seconds, got `{raw}`")
            })
    }

    pub fn whole_seconds_retry_after(&self) -> Outcome {
        self.retry_after().map(|_| ())
    }

    pub fn retry_after_is_midnight(&self) -> Outcome {
        let got = self.retry_after()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let expected = 86_400 - now % 86_400;
        if got.abs_diff(expected) <= 2 {
            Ok(())
        } else {
            Err(format!(
                "Retry-After must be the {expected} s until 00:00 UTC (±2), got {got}"
            ))
        }
    }

    pub fn responses_with_status(&self, count: usize, status: u16) -> Outcome {
        let got: Vec<u16> = self.responses.iter().map(|r| r.status).collect();
        let n = got.iter().filter(|s| **s == status).count();
        if n == count {
            Ok(())
        } else {
            Err(format!(
                "expected {count} of the {} responses to be HTTP {status}, got {n} (statuses in send order: {got:?})",
                got.len()
            ))
        }
    }

    // ---- body fields ----

    fn body_pointer(&self, pointer: &str) -> Result<(Option<Value>, &Resp), String> {
        let r = self.last()?;
        let body = last_json(r)?;
        Ok((body.pointer(pointer).cloned(), r))
    }

    pub fn body_field_is(&self, pointer: &str, expected: &str) -> Outcome {
        let (v, r) = self.body_pointer(pointer)?;
        if v.as_ref().is_some_and(|v| value_matches(v, expected)) {
            Ok(())
        } else {
            Err(format!(
                "expected `{pointer}` = `{expected}`, got {}: {}",
                show(v.as_ref()),
                r.describe()
            ))
        }
    }

    pub fn body_field_contains(&self, pointer: &str, needle: &str) -> Outcome {
        let (v, r) = self.body_pointer(pointer)?;
        if v.as_ref()
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains(needle))
        {
            Ok(())
        } else {
            Err(format!(
                "expected the string `{pointer}` to contain `{needle}`, got {}: {}",
                show(v.as_ref()),
                r.describe()
            ))
        }
    }

    /// The field is a string of at least `min` characters (an answer relayed whole, not cut).
    pub fn body_field_is_long(&self, pointer: &str, min: usize) -> Outcome {
        let (v, r) = self.body_pointer(pointer)?;
        match v.as_ref().and_then(Value::as_str) {
            Some(s) if s.chars().count() >= min => Ok(()),
            Some(s) => Err(format!(
                "expected `{pointer}` to be at least {min} characters long, got {}: {}",
                s.chars().count(),
                r.describe()
            )),
            None => Err(format!(
                "expected the string `{pointer}`, got {}: {}",
                show(v.as_ref()),
                r.describe()
            )),
        }
    }

    pub fn body_has_field(&self, pointer: &str, present: bool) -> Outcome {
        let (v, r) = self.body_pointer(pointer)?;
        let has = v.as_ref().is_some_and(|v| !v.is_null());
        match (has, present) {
            (true, true) | (false, false) => Ok(()),
            (false, true) => Err(format!(
                "expected the body to have `{pointer}`: {}",
                r.describe()
            )),
            (true, false) => Err(format!(
                "expected no `{pointer}`, got {}: {}",
                show(v.as_ref()),
                r.describe()
            )),
        }
    }

    pub fn body_matches_schema(&self, name: &str) -> Outcome {
        let r = self.last()?;
        let body = last_json(r)?;
        self.target()?
            .schemas
            .check(name, &body)
            .map_err(|e| format!("the body {e} ({} answered HTTP {})", r.what, r.status))
    }

    /// No server-side tool call reaches the caller, and a success carries an answer.
    pub fn no_raw_tool_calls(&self) -> Outcome {
        let r = self.last()?;
        let t = self.target()?;
        let (content, calls) = if let Some(events) = &r.events {
            if let Some(err) = events.iter().find(|e| e.name.as_deref() == Some("error")) {
                let body: Value = serde_json::from_str(&err.data).map_err(|_| {
                    format!("the stream's error event is not JSON: {}", r.describe())
                })?;
                return t.schemas.check(schemas::ENVELOPE, &body);
            }
            (streamed_content(events), streamed_tool_names(events))
        } else if r.status == 200 {
            let body = last_json(r)?;
            let content = body
                .pointer("/choices/0/message/content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let calls = body
                .pointer("/choices/0/message/tool_calls")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .filter_map(|c| {
                            c.pointer("/function/name")
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                        })
                        .collect()
                })
                .unwrap_or_default();
            (content, calls)
        } else {
            return self.envelope(r).map(|_| ());
        };
        let leaked: Vec<&String> = calls
            .iter()
            .filter(|n| t.server_side_tools.contains(n))
            .collect();
        if !leaked.is_empty() {
            return Err(format!(
                "the caller got raw server-side tool calls {leaked:?}: {}",
                r.describe()
            ));
        }
        if content.trim().is_empty() && calls.is_empty() {
            return Err(format!("the caller got an empty answer: {}", r.describe()));
        }
        Ok(())
    }

    // ---- streams ----

    fn events(&self) -> Result<(&[Event], &Resp), String> {
        let r = self.last()?;
        match &r.events {
            Some(e) => Ok((e, r)),
            None => Err(format!("expected an SSE stream, but {}", r.describe())),
        }
    }

    pub fn streamed_content_is(&self, expected: &str) -> Outcome {
        let (events, r) = self.events()?;
        let got = streamed_content(events);
        if got == expected {
            Ok(())
        } else {
            // Long texts are clipped, with where they part: a 300 KB answer must not become a
            // 300 KB failure message.
            let same = expected
                .char_indices()
                .zip(got.chars())
                .find(|((_, a), b)| a != b)
                .map_or(expected.len().min(got.len()), |((i, _), _)| i);
            Err(format!(
                "expected streamed content `{}`, got `{}` (they part at byte {same}): {}",
                text::clip(expected, 300),
                text::clip(&got, 300),
                r.describe()
            ))
        }
    }

    pub fn stream_ends_done(&self) -> Outcome {
        let (events, r) = self.events()?;
        if let Some(err) = events.iter().find(|e| e.name.as_deref() == Some("error")) {
            return Err(format!(
                "the stream carried `event: error` ({}): {}",
                err.data,
                r.describe()
            ));
        }
        let data: Vec<&Event> = events.iter().filter(|e| e.name.is_none()).collect();
        match data.last() {
            Some(e) if e.is_done() => {}
            _ => {
                return Err(format!(
                    "the last data line must be [DONE]: {}",
                    r.describe()
                ))
            }
        }
        let schemas = &self.target()?.schemas;
        for e in &data[..data.len() - 1] {
            let chunk: Value = serde_json::from_str(&e.data)
                .map_err(|_| format!("a data line is not JSON: `{}`", text::clip(&e.data, 200)))?;
            schemas.check(schemas::CHUNK, &chunk)?;
        }
        Ok(())
    }

    pub fn stream_ends_error(&self, code: &str) -> Outcome {
        let (events, r) = self.events()?;
        let last = events.last().ok_or_else(|| {
            format!(
                "expected the stream to end with `event: error`: {}",
                r.describe()
            )
        })?;
        if last.name.as_deref() != Some("error") {
            return Err(format!(
                "expected the last event to be `event: error` with `{code}`: {}",
                r.describe()
            ));
        }
        let body: Value = serde_json::from_str(&last.data)
            .map_err(|_| format!("the error event's data is not JSON: {}", r.describe()))?;
        self.target()?.schemas.check(schemas::ENVELOPE, &body)?;
        let got = body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if got != code {
            return Err(format!(
                "expected the error event's code `{code}`, got `{got}`: {}",
                r.describe()
            ));
        }
        let before = &events[..events.len() - 1];
        if before.iter().any(Event::is_done) {
            return Err(format!(
                "[DONE] came before the error event: {}",
                r.describe()
            ));
        }
        let finished = before.iter().filter_map(Event::chunk).any(|c| {
            c.get("choices")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|ch| ch.get("finish_reason").is_some_and(|f| !f.is_null()))
                })
        });
        if finished && !self.upstream_sent_finish {
            return Err(format!(
                "a finish_reason came before the error event: {}",
                r.describe()
            ));
        }
        Ok(())
    }

    pub fn stream_event_field(&self, name: &str, field: &str, expected: &str) -> Outcome {
        let (events, r) = self.events()?;
        let hits: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.name.as_deref() == Some(name))
            .map(|(i, _)| i)
            .collect();
        let [at] = hits[..] else {
            return Err(format!(
                "expected exactly one `event: {name}`, got {}: {}",
                hits.len(),
                r.describe()
            ));
        };
        let content_before = events[..at].iter().filter_map(Event::chunk).any(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        });
        let done_after = events[at + 1..].iter().any(Event::is_done);
        if content_before || !done_after {
            return Err(format!(
                "`event: {name}` must come before the final content and [DONE]: {}",
                r.describe()
            ));
        }
        let data: Value = serde_json::from_str(&events[at].data)
            .map_err(|_| format!("`event: {name}` data is not JSON: `{}`", events[at].data))?;
        self.target()?
            .schemas
            .check(schemas::TOOL_LOOP_EVENT, &data)?;
        let v = data.get(field);
        if v.is_some_and(|v| value_matches(v, expected)) {
            Ok(())
        } else {
            Err(format!(
                "expected `{name}` field `{field}` = `{expected}`, got {} (data {})",
                show(v),
                data
            ))
        }
    }

    /// Every chunk of the stream names the model the request named (the alias; the upstream's
    /// own name for it is the gateway's business), whatever spelling of the key the upstream
    /// used: a JSON reader takes `"mod\u0065l"` for `"model"` as well.
    pub fn streamed_chunks_name_the_requested_model(&self) -> Outcome {
        let alias = self
            .body
            .get("model")
            .and_then(Value::as_str)
            .ok_or("the request named no model")?;
        let (events, r) = self.events()?;
        let mut chunks = 0;
        for (i, chunk) in events.iter().filter_map(Event::chunk).enumerate() {
            chunks += 1;
            let got = chunk.get("model").and_then(Value::as_str);
            if got != Some(alias) {
                return Err(format!(
                    "chunk {i} names the model {got:?}, not the requested `{alias}`: {}",
                    r.describe()
                ));
            }
        }
        if chunks == 0 {
            return Err(format!("expected chunks in the stream: {}", r.describe()));
        }
        Ok(())
    }

    /// No event's data, as it came on the wire (before any JSON reading), holds `text`.
    pub fn no_event_holds(&self, text: &str) -> Outcome {
        let (events, r) = self.events()?;
        match events.iter().position(|e| e.data.contains(text)) {
            None => Ok(()),
            Some(i) => Err(format!(
                "event {i} holds `{text}`: {:?}; {}",
                events[i].data,
                r.describe()
            )),
        }
    }

    pub fn streamed_tool_arguments(&self, expected: &str) -> Outcome {
        let (events, r) = self.events()?;
        let mut args = String::new();
        for c in events.iter().filter_map(Event::chunk) {
            let calls = c
                .pointer("/choices/0/delta/tool_calls")
                .and_then(Value::as_array);
            for call in calls.into_iter().flatten() {
                if call.get("index").and_then(Value::as_u64).unwrap_or(0) == 0 {
                    if let Some(a) = call.pointer("/function/arguments").and_then(Value::as_str) {
                        args.push_str(a);
                    }
                }
            }
        }
        if args == expected {
            Ok(())
        } else {
            Err(format!(
                "expected the streamed arguments `{expected}`, got `{args}`: {}",
                r.describe()
            ))
        }
    }

    pub fn stream_has_usage(&self) -> Outcome {
        let (events, r) = self.events()?;
        let done = events
            .iter()
            .position(Event::is_done)
            .unwrap_or(events.len());
        let has = events[..done]
            .iter()
            .filter_map(Event::chunk)
            .any(|c| c.get("usage").is_some_and(Value::is_object));
        if has {
            Ok(())
        } else {
            Err(format!(
                "expected a chunk with a usage object before [DONE]: {}",
                r.describe()
            ))
        }
    }

    /// The last `usage` object streamed before `[DONE]` has `field` = `expected`.
    pub fn stream_usage_field_is(&self, field: &str, expected: u64) -> Outcome {
        let (events, r) = self.events()?;
        let done = events
            .iter()
            .position(Event::is_done)
            .unwrap_or(events.len());
        let got = events[..done]
            .iter()
            .rev()
            .filter_map(Event::chunk)
            .filter_map(|mut c| c.get_mut("usage").map(Value::take))
            .find(Value::is_object)
            .map(|u| u.get(field).and_then(Value::as_u64));
        match got {
            Some(Some(v)) if v == expected => Ok(()),
            Some(v) => Err(format!(
                "expected the streamed usage `{field}` = {expected}, got {v:?}: {}",
                r.describe()
            )),
            None => Err(format!(
                "expected a chunk with a usage object before [DONE]: {}",
                r.describe()
            )),
        }
    }

    /// No buffering, judged on the mock's own clock: the mock spread its chunks at least
    /// `ms` apart, and the client had the first one before the mock sent the last. (Client
    /// arrival gaps alone shrink under load; this does not.)
    pub async fn chunks_spread(&self, ms: u64) -> Outcome {
        let (events, r) = self.events()?;
        let chunks: Vec<&Event> = events.iter().filter(|e| e.chunk().is_some()).collect();
        let Some(first) = chunks.first() else {
            return Err(format!("expected data chunks: {}", r.describe()));
        };
        let unix_ms = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        };
        let first_at = unix_ms(r.sent_at_wall + first.at.duration_since(r.sent_at));
        let record = self.last_record().await?;
        let (Some(mock_first), Some(mock_last)) =
            (record.sent_unix_ms.first(), record.sent_unix_ms.last())
        else {
            return Err(
                "the mock recorded no send times for this stream (is it an older mocks binary?)"
                    .to_owned(),
            );
        };
        if mock_last.saturating_sub(*mock_first) < ms {
            return Err(format!(
                "the mock spread its stream over {} ms only, less than the {ms} ms scripted",
                mock_last - mock_first
            ));
        }
        if first_at >= *mock_last {
            return Err(format!(
                "the first chunk reached the client {} ms after the mock sent its last one: the answer was buffered ({})",
                first_at - mock_last,
                r.describe()
            ));
        }
        Ok(())
    }

    // ---- discovery ----

    pub fn catalog_entries(&self, n: usize) -> Outcome {
        let (v, r) = self.body_pointer("/entries")?;
        let entries = v
            .as_ref()
            .and_then(Value::as_array)
            .ok_or_else(|| format!("expected {{\"entries\": [...]}}: {}", r.describe()))?;
        let mut codes: Vec<&str> = entries
            .iter()
            .filter_map(|e| e.get("code").and_then(Value::as_str))
            .collect();
        let total = codes.len();
        codes.sort_unstable();
        codes.dedup();
        if entries.len() == n && codes.len() == n && total == n {
            Ok(())
        } else {
            Err(format!(
                "expected {n} entries with distinct codes, got {} entries and {} distinct codes",
                entries.len(),
                codes.len()
            ))
        }
    }

    pub fn catalog_entry_field(&self, code: &str, field: &str, expected: &str) -> Outcome {
        let (v, r) = self.body_pointer("/entries")?;
        let entry = v
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|es| {
                es.iter()
                    .find(|e| e.get("code").and_then(Value::as_str) == Some(code))
            })
            .ok_or_else(|| format!("the catalog has no entry `{code}`: {}", r.describe()))?;
        let got = if field.starts_with('/') {
            entry.pointer(field)
        } else {
            entry.get(field)
        };
        if got.is_some_and(|g| value_matches(g, expected)) {
            Ok(())
        } else {
            Err(format!(
                "expected `{code}`.{field} = `{expected}`, got {}",
                show(got)
            ))
        }
    }

    pub fn page_has_anchor(&self, code: &str) -> Outcome {
        let r = self.last()?;
        let html = r.text();
        let forms = [
            format!("id=\"{code}\""),
            format!("id='{code}'"),
            format!("name=\"{code}\""),
            format!("name='{code}'"),
        ];
        if forms.iter().any(|f| html.contains(f.as_str())) {
            Ok(())
        } else {
            Err(format!(
                "the page has no anchor `#{code}` ({} answered HTTP {}, {} bytes)",
                r.what,
                r.status,
                html.len()
            ))
        }
    }

    pub fn openapi_describes(&self, method: &str, path: &str) -> Outcome {
        let (paths, _) = self.body_pointer("/paths")?;
        let paths = paths
            .as_ref()
            .and_then(Value::as_object)
            .ok_or("the OpenAPI document has no `paths`")?;
        let want: Vec<&str> = path.split('/').collect();
        let matches = |p: &str| {
            let have: Vec<&str> = p.split('/').collect();
            have.len() == want.len()
                && have.iter().zip(&want).all(|(h, w)| {
                    let param = |s: &str| s.starts_with('{') && s.ends_with('}');
                    h == w || (param(h) && param(w))
                })
        };
        let found = paths
            .iter()
            .any(|(p, item)| matches(p) && item.get(method.to_lowercase()).is_some());
        if found {
            Ok(())
        } else {
            let listed: Vec<&String> = paths.keys().collect();
            Err(format!(
                "the OpenAPI document does not describe {method} {path} (paths: {listed:?})"
            ))
        }
    }

    pub fn openapi_mentions(&self, code: &str) -> Outcome {
        let r = self.last()?;
        let doc = last_json(r)?;
        fn walk(v: &Value, code: &str) -> bool {
            match v {
                Value::String(s) => s == code,
                Value::Array(a) => a.iter().any(|x| walk(x, code)),
                Value::Object(o) => o.iter().any(|(k, x)| k == code || walk(x, code)),
                _ => false,
            }
        }
        if walk(&doc, code) {
            Ok(())
        } else {
            Err(format!(
                "the OpenAPI document never mentions the error code `{code}`"
            ))
        }
    }

    pub fn models_listed(&self, role: &str, listed: bool) -> Outcome {
        let alias = self
            .target()?
            .models
            .get(role)
            .cloned()
            .ok_or_else(|| format!("no alias known for the model role `{role}`"))?;
        let r = self.last()?;
        let body = last_json(r)?;
        let ids: Vec<String> = if let Some(data) = body.get("data").and_then(Value::as_array) {
            data.iter()
                .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect()
        } else if let Some(models) = body.get("models").and_then(Value::as_array) {
            models
                .iter()
                .filter_map(|m| m.get("alias").and_then(Value::as_str).map(str::to_owned))
                .collect()
        } else {
            return Err(format!(
                "expected a model list (/data or /models): {}",
                r.describe()
            ));
        };
        match (ids.contains(&alias), listed) {
            (true, true) | (false, false) => Ok(()),
            (false, true) => Err(format!("`{alias}` ({role}) is not listed; listed: {ids:?}")),
            (true, false) => Err(format!(
                "`{alias}` ({role}) must not be listed; listed: {ids:?}"
            )),
        }
    }

    pub fn info_for_model(&self, role: &str, pointer: &str, expected: &str) -> Outcome {
        let alias = self
            .target()?
            .models
            .get(role)
            .cloned()
            .ok_or_else(|| format!("no alias known for the model role `{role}`"))?;
        let (models, r) = self.body_pointer("/models")?;
        let entry = models
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|ms| {
                ms.iter()
                    .find(|m| m.get("alias").and_then(Value::as_str) == Some(alias.as_str()))
            })
            .ok_or_else(|| format!("/v1/info has no model `{alias}`: {}", r.describe()))?;
        let got = entry.pointer(pointer);
        if got.is_some_and(|g| value_matches(g, expected)) {
            Ok(())
        } else {
            Err(format!(
                "expected `{alias}`{pointer} = `{expected}`, got {}",
                show(got)
            ))
        }
    }

    // ---- conversations ----

    pub fn conversation_list_len(&self, n: usize) -> Outcome {
        let r = self.last()?;
        let body = last_json(r)?;
        let list = body
            .get("data")
            .and_then(Value::as_array)
            .or_else(|| body.as_array())
            .ok_or_else(|| format!("expected a conversation list: {}", r.describe()))?;
        if list.len() == n {
            Ok(())
        } else {
            Err(format!(
                "expected {n} conversations, got {}: {}",
                list.len(),
                r.describe()
            ))
        }
    }

    fn conversation_messages(&self) -> Result<(Vec<Value>, &Resp), String> {
        let r = self.last()?;
        let body = last_json(r)?;
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| format!("expected a conversation with `messages`: {}", r.describe()))?;
        Ok((messages, r))
    }

    pub fn conversation_len(&self, n: usize) -> Outcome {
        let (messages, r) = self.conversation_messages()?;
        if messages.len() == n {
            Ok(())
        } else {
            Err(format!(
                "expected {n} stored messages, got {}: {}",
                messages.len(),
                r.describe()
            ))
        }
    }

    pub fn conversation_message(&self, n: usize, role: &str, needle: &str) -> Outcome {
        let (messages, r) = self.conversation_messages()?;
        let m = n
            .checked_sub(1)
            .and_then(|i| messages.get(i))
            .ok_or_else(|| format!("there is no stored message {n}: {}", r.describe()))?;
        let got_role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let text = content_text(m.get("content"));
        if got_role == role && text.contains(needle) {
            Ok(())
        } else {
            Err(format!(
                "expected message {n} to be a `{role}` message containing `{needle}`, got role `{got_role}` with `{}`",
                text::clip(&text, 300)
            ))
        }
    }

    // ---- what the upstream received ----

    pub async fn upstream_received(&self, n: usize) -> Outcome {
        let got = self.record_count().await?;
        if got == n {
            Ok(())
        } else {
            Err(format!(
                "expected the upstream to receive {n} request(s) with marker {}, got {got}",
                self.marker
            ))
        }
    }

    /// At most `n` requests: where only an upper bound is the contract (a loop refused by the
    /// round at which it would overflow a budget, whichever round that is).
    pub async fn upstream_received_at_most(&self, n: usize) -> Outcome {
        let got = self.record_count().await?;
        if got <= n {
            Ok(())
        } else {
            Err(format!(
                "expected the upstream to receive at most {n} request(s) with marker {}, got {got}",
                self.marker
            ))
        }
    }

    async fn record(&self, n: usize) -> Result<mocks::Recorded, String> {
        let records = self.records().await?;
        let total = records.len();
        n.checked_sub(1)
            .and_then(|i| records.into_iter().nth(i))
            .ok_or_else(|| {
                format!("the upstream received {total} request(s), so there is no request {n}")
            })
    }

    async fn last_record(&self) -> Result<mocks::Recorded, String> {
        let records = self.records().await?;
        records
            .into_iter()
            .last()
            .ok_or_else(|| "the upstream received no request for this scenario".to_owned())
    }

    pub async fn last_had_empty_tools(&self) -> Outcome {
        let rec = self.last_record().await?;
        match rec.body.get("tools") {
            Some(Value::Array(a)) if a.is_empty() => Ok(()),
            other => Err(format!(
                "expected the last upstream request to have \"tools\": [], got {}",
                show(other)
            )),
        }
    }

    pub async fn last_had_field(&self, field: &str, expected: i64) -> Outcome {
        let rec = self.last_record().await?;
        let got = rec.body.get(field);
        if got.and_then(Value::as_i64) == Some(expected) {
            Ok(())
        } else {
            Err(format!(
                "expected the upstream request to have `{field}` = {expected}, got {}",
                show(got)
            ))
        }
    }

    pub async fn upstream_saw_disconnect(&self) -> Outcome {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let records = self.records().await?;
            if records
                .iter()
                .any(|r| r.outcome == mocks::Outcome::ClientDisconnected)
            {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                let outcomes: Vec<mocks::Outcome> = records.iter().map(|r| r.outcome).collect();
                return Err(format!(
                    "within 5 s the upstream saw no cancelled stream (outcomes: {outcomes:?})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A refusal (4xx) sends nothing on; otherwise every upstream request of the scenario
    /// carries each top-level member once.
    pub async fn no_member_reached_the_upstream_twice(&self) -> Outcome {
        let last = self.last()?;
        if last.status >= 500 {
            return Err(format!(
                "{} answered HTTP {}: a repeated member is the caller's mistake, never a server error",
                last.what, last.status
            ));
        }
        for (i, rec) in self.records().await?.iter().enumerate() {
            if !rec.repeated_keys.is_empty() {
                return Err(format!(
                    "upstream request {} carried {:?} more than once: the upstream may read another value than the one the gateway checked",
                    i + 1,
                    rec.repeated_keys
                ));
            }
        }
        Ok(())
    }

    pub async fn request_offered_tool(&self, n: usize, tool: &str) -> Outcome {
        let rec = self.record(n).await?;
        let names: Vec<&str> = rec
            .body
            .get("tools")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        if names.contains(&tool) {
            Ok(())
        } else {
            Err(format!(
                "upstream request {n} did not offer `{tool}` (offered: {names:?})"
            ))
        }
    }

    pub async fn request_has_tool_result(&self, n: usize) -> Outcome {
        let rec = self.record(n).await?;
        let messages = rec
            .body
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut call_ids: Vec<String> = Vec::new();
        for m in &messages {
            match m.get("role").and_then(Value::as_str) {
                Some("assistant") => {
                    for c in m
                        .get("tool_calls")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(id) = c.get("id").and_then(Value::as_str) {
                            call_ids.push(id.to_owned());
                        }
                    }
                }
                Some("tool") => {
                    let answers = m.get("tool_call_id").and_then(Value::as_str);
                    if answers.is_some_and(|id| call_ids.iter().any(|c| c == id)) {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Err(format!(
            "upstream request {n} holds no `tool` message answering an earlier tool call: {}",
            text::clip(&Value::Array(messages).to_string(), 600)
        ))
    }

    /// Some `tool` message of the n-th upstream request has content containing `needle`.
    pub async fn tool_result_contains(&self, n: usize, needle: &str) -> Outcome {
        let rec = self.record(n).await?;
        let messages = rec
            .body
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let found = messages.iter().any(|m| {
            m.get("role").and_then(Value::as_str) == Some("tool")
                && m.get("content")
                    .and_then(Value::as_str)
                    .is_some_and(|c| c.contains(needle))
        });
        if found {
            Ok(())
        } else {
            Err(format!(
                "no `tool` message of upstream request {n} contains `{needle}`: {}",
                text::clip(&Value::Array(messages).to_string(), 600)
            ))
        }
    }

    pub async fn last_contains_text(&self, needle: &str) -> Outcome {
        let rec = self.last_record().await?;
        let messages = rec
            .body
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if messages
            .iter()
            .any(|m| content_text(m.get("content")).contains(needle))
        {
            Ok(())
        } else {
            Err(format!(
                "no message of the last upstream request contains `{}`",
                text::clip(needle, 120)
            ))
        }
    }
}

fn streamed_content(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(Event::chunk)
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

fn streamed_tool_names(events: &[Event]) -> Vec<String> {
    let mut names = Vec::new();
    for c in events.iter().filter_map(Event::chunk) {
        for call in c
            .pointer("/choices/0/delta/tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = call.pointer("/function/name").and_then(Value::as_str) {
                if !n.is_empty() {
                    names.push(n.to_owned());
                }
            }
        }
    }
    names
}
