//! The World: one per scenario, with its own marker, token and pending request. Steps call
//! its methods; the methods hold all the logic (building, sending, scripting). Assertions
//! live in `checks.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mocks::Step;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use crate::mock::MockHandle;
use crate::sse;
use crate::target::Target;
use crate::text::{self, json_literal, pointer_remove, pointer_set};
use crate::transcript::{Sent, Tape};

/// The piece size of a chunked body by default, and how often a chunked body pauses.
const PACE_BYTES: usize = 64 * 1024;

/// Step results: the message says what was expected and what came instead.
pub type Outcome = Result<(), String>;

/// One answer of the target, read to its end (or to the client's disconnect).
#[derive(Clone, Debug)]
pub struct Resp {
    /// `POST /v1/chat/completions`, for failure messages.
    pub what: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The SSE events, when the answer was `text/event-stream`.
    pub events: Option<Vec<sse::Event>>,
    /// A transport error while reading the body (e.g. the connection was cut).
    pub read_error: Option<String>,
    pub sent_at: Instant,
    /// The wall clock at `sent_at`, to compare with the mock's own send timestamps.
    pub sent_at_wall: std::time::SystemTime,
}

impl Resp {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `HTTP 400 {"error":…}` for failure messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{} answered HTTP {}", self.what, self.status);
        if let Some(ct) = self.header("content-type") {
            s.push_str(&format!(" ({ct})"));
        }
        if let Some(events) = &self.events {
            let shown: Vec<String> = events
                .iter()
                .rev()
                .take(6)
                .rev()
                .map(|e| match &e.name {
                    Some(n) => format!("event: {n} data: {}", text::clip(&e.data, 200)),
                    None => format!("data: {}", text::clip(&e.data, 200)),
                })
                .collect();
            s.push_str(&format!(
                ", {} SSE events, last: [{}]",
                events.len(),
                shown.join(" | ")
            ));
        } else if !self.body.is_empty() {
            s.push_str(&format!(" with body {}", text::clip(&self.text(), 600)));
        }
        if let Some(e) = &self.read_error {
            s.push_str(&format!("; reading it failed: {e}"));
        }
        s
    }
}

/// A request ready to go, detached from the World so several can run in parallel.
#[derive(Clone, Debug)]
pub(crate) struct Req {
    method: Method,
    path: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// Send the body with chunked encoding in pieces of this many bytes (no Content-Length).
    chunked: Option<usize>,
    disconnect_after: Option<usize>,
    /// Send the body's first `.0` bytes, then wait for `.1` before the rest (a caller still
    /// sending its body; chunked, no Content-Length).
    held: Option<(usize, GoOn)>,
    /// The scenario's transcript for the reports.
    tape: Tape,
}

/// Sends `req`, reads the answer, and records the exchange on the scenario's tape.
pub(crate) async fn execute(http: &reqwest::Client, req: Req) -> Result<Resp, String> {
    let tape = req.tape.clone();
    let sent = Sent::new(
        req.method.as_str(),
        &req.path,
        &req.headers,
        req.body.as_deref(),
    );
    let started = Instant::now();
    let out = send_and_read(http, req).await;
    // Milliseconds to 0.1: enough for a report, short to show.
    let ms = (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
    tape.record(match &out {
        Ok(r) => sent.answered(r.status, &r.headers, &r.body, r.read_error.as_deref(), ms),
        Err(e) => sent.failed(e, ms),
    });
    out
}

async fn send_and_read(http: &reqwest::Client, req: Req) -> Result<Resp, String> {
    let what = format!("{} {}", req.method, text::clip(&req.path, 120));
    let mut rb = http.request(req.method.clone(), &req.url);
    for (name, value) in &req.headers {
        rb = rb.header(name.as_str(), value.as_str());
    }
    if let Some(body) = req.body {
        rb = match (req.chunked, req.held) {
            (_, Some((at, go_on))) => {
                let at = at.min(body.len());
                let (first, rest) = (body[..at].to_vec(), body[at..].to_vec());
                let parts = futures_util::stream::unfold(
                    (Some(first), Some((go_on, rest))),
                    |(first, then)| async move {
                        if let Some(first) = first {
                            return Some((Ok::<_, std::io::Error>(first), (None, then)));
                        }
                        let (go_on, rest) = then?;
                        let wait = go_on.lock().ok()?.take()?;
                        // A dropped sender (the scenario ended) ends the body short: the
                        // server then sees the caller leave, as it would a real one.
                        wait.await.ok()?;
                        Some((Ok(rest), (None, None)))
                    },
                );
                rb.body(reqwest::Body::wrap_stream(parts))
            }
            // A stream body has no Content-Length: hyper sends it chunked, one chunk per
            // piece. The pieces are paced (a pause per 64 KiB sent) so that a server answering
            // early (413 while reading) is heard before the next write meets its closed socket.
            (Some(piece), None) => {
                let piece = piece.max(1);
                let pause_every = (PACE_BYTES / piece).max(1);
                let parts: Vec<Vec<u8>> = body.chunks(piece).map(<[u8]>::to_vec).collect();
                let paced = futures_util::stream::unfold(
                    (parts.into_iter(), 0usize),
                    move |(mut rest, i)| async move {
                        let part = rest.next()?;
                        if i % pause_every == 0 {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        Some((Ok::<_, std::io::Error>(part), (rest, i + 1)))
                    },
                );
                rb.body(reqwest::Body::wrap_stream(paced))
            }
            (None, None) => rb.body(body),
        };
    }
    let sent_at = Instant::now();
    let sent_at_wall = std::time::SystemTime::now();
    let mut resp = rb
        .send()
        .await
        .map_err(|e| format!("{what} failed before any answer: {}", error_chain(&e)))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let is_sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    let mut body = Vec::new();
    let mut parser = sse::Parser::default();
    let mut read_error = None;
    loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => {
                body.extend_from_slice(&bytes);
                if is_sse {
                    parser.feed(&bytes);
                    if req.disconnect_after.is_some_and(|n| parser.chunks() >= n) {
                        // Dropping the response closes the connection mid-stream.
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                read_error = Some(error_chain(&e));
                break;
            }
        }
    }
    drop(resp);
    Ok(Resp {
        what,
        status,
        headers,
        body,
        events: is_sse.then_some(parser.events),
        read_error,
        sent_at,
        sent_at_wall,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

/// The World of one scenario.
/// The signal a held request waits for before the rest of its body (shared so that `Req`
/// stays `Clone`; the one send that goes out takes it).
type GoOn = Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>;

/// How long [`GatewayWorld::memory_held_at_least`] waits for a gauge to reach its figure.
const METRICS_WAIT: Duration = Duration::from_secs(5);
/// How often it asks `/metrics` meanwhile.
const METRICS_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Default, cucumber::World)]
pub struct GatewayWorld {
    target: Option<Arc<Target>>,
    /// The scenario cannot run on this target; background steps do nothing.
    pub skipping: bool,
    /// The marker name (the mock sees `mock:<marker>`).
    pub marker: String,
    http: Option<reqwest::Client>,
    pub model_role: String,
    /// The Authorization header value; None = no header.
    auth: Option<String>,
    headers: Vec<(String, String)>,
    pub body: Value,
    chunked: Option<usize>,
    /// A fault header for the next request only.
    fault_once: Option<&'static str>,
    /// Script steps per mock (by base URL), replayed whole each time one is added.
    scripts: HashMap<String, Vec<Step>>,
    /// Numbers from scripted upstream error bodies that must not reach the caller.
    pub upstream_numbers: Vec<String>,
    /// The scripted stream sends its own finish chunk before failing (the mock's `no_done`
    /// step), so a relayed finish_reason before the error event is the upstream's, not fake.
    pub upstream_sent_finish: bool,
    /// The answers of the last sending step, in send order.
    pub responses: Vec<Resp>,
    pub conversation_id: Option<String>,
    /// The scenario's key (`file:line`) for the notes the report grades by.
    pub key: String,
    /// A failure was scripted: the report states how many upstream attempts were made.
    scripted_failure: bool,
    /// Every exchange of the scenario, for the reports (the runner's after-hook takes it).
    pub tape: Tape,
    /// Another caller still sending its body: the signal that sends the rest, and its answer.
    held_caller: Option<HeldCaller>,
    /// The answer that caller got once it sent the rest.
    held_answer: Option<Resp>,
}

/// A request whose body is partly sent, in a task of its own ([`GatewayWorld::hold_caller`]).
#[derive(Debug)]
struct HeldCaller {
    go_on: tokio::sync::oneshot::Sender<()>,
    answer: tokio::task::JoinHandle<Result<Resp, String>>,
}

impl GatewayWorld {
    /// Binds a fresh World to the run's target (the runner's before-hook calls this).
    pub fn attach(&mut self, target: Arc<Target>, skipping: bool, key: String) {
        self.key = key;
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.marker = format!("cf-{}", &id[..12]);
        self.http = Some(target.client());
        self.model_role = "default".into();
        self.auth = Some(target.credential_value(&target.primary_token));
        let alias = target
            .models
            .get("default")
            .cloned()
            .unwrap_or_else(|| "default".into());
        self.body = json!({
            "model": alias,
            "messages": [{"role": "user", "content": format!("mock:{} Hello", self.marker)}],
        });
        self.skipping = skipping;
        self.target = Some(target);
    }

    pub fn target(&self) -> Result<&Arc<Target>, String> {
        self.target
            .as_ref()
            .ok_or_else(|| "the World is not attached to a target (runner bug)".to_owned())
    }

    fn http(&self) -> Result<&reqwest::Client, String> {
        self.http
            .as_ref()
            .ok_or_else(|| "the World has no HTTP client (runner bug)".to_owned())
    }

    /// The last answer.
    pub fn last(&self) -> Result<&Resp, String> {
        self.responses
            .last()
            .ok_or_else(|| "no request has been sent in this scenario yet".to_owned())
    }

    /// A scenario-local user name: `alice` → `alice-cf-…`.
    pub fn user(&self, name: &str) -> String {
        format!("{name}-{}", self.marker)
    }

    // ---- who is calling ----

    pub fn authenticate(&mut self, role: &str) -> Outcome {
        if self.skipping {
            return Ok(());
        }
        let t = Arc::clone(self.target()?);
        let token = match role {
            "primary" => Some(t.primary_token.clone()),
            "second tenant" => t.second_token.clone(),
            "fresh" => t.fresh.take(),
            "fresh rate-limited" => t.fresh_limited.take(),
            other => match t.role_tokens.get(other) {
                Some(pool) => pool.take(),
                None => return Err(format!("unknown token role `{other}`")),
            },
        }
        .ok_or_else(|| format!("the target has no (more) `{role}` tokens"))?;
        self.auth = Some(t.credential_value(&token));
        Ok(())
    }

    /// The credentials are `token` in the target's own scheme (Bearer, X-API-Key, …).
    pub fn credentials_are(&mut self, token: &str) -> Outcome {
        let value = self.target()?.credential_value(token);
        self.auth = Some(value);
        Ok(())
    }

    /// Records, for the report, why an answer was only non-strict.
    pub fn non_strict(&self, reason: String) {
        if let Ok(t) = self.target() {
            t.note(&self.key, |n| n.non_strict.push(reason));
        }
    }

    /// After the scenario: states how many upstream attempts a scripted failure drew.
    pub async fn finish(&mut self) {
        if self.scripted_failure && !self.skipping {
            if let (Ok(n), Ok(t)) = (self.record_count().await, self.target()) {
                t.note(&self.key, |notes| notes.upstream_attempts = Some(n));
            }
        }
    }

    /// " (the gateway made N upstream attempts)" for failure messages after a scripted failure.
    pub async fn attempts_note(&self) -> String {
        if !self.scripted_failure {
            return String::new();
        }
        match self.record_count().await {
            Ok(n) => {
                format!(" (the gateway made {n} upstream attempt(s) for the scripted failure)")
            }
            Err(_) => String::new(),
        }
    }

    pub fn no_authorization(&mut self) {
        self.auth = None;
    }

    pub fn set_header(&mut self, name: &str, value: &str) {
        let cred = self
            .target
            .as_ref()
            .map_or("authorization".to_owned(), |t| t.credential_header.clone());
        if name.eq_ignore_ascii_case(&cred) {
            self.auth = Some(value.to_owned());
            return;
        }
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    pub fn header_names_tenant(&mut self, name: &str, role: &str) -> Outcome {
        let id = self
            .target()?
            .tenants
            .get(role)
            .cloned()
            .ok_or_else(|| format!("no tenant id known for the `{role}` tenant"))?;
        self.set_header(name, &id);
        Ok(())
    }

    // ---- the pending request ----

    pub fn use_model(&mut self, role: &str) -> Outcome {
        if self.skipping {
            return Ok(());
        }
        let alias = self
            .target()?
            .models
            .get(role)
            .cloned()
            .ok_or_else(|| format!("no model alias known for the role `{role}`"))?;
        self.model_role = role.to_owned();
        self.body["model"] = Value::String(alias);
        Ok(())
    }

    pub fn set_field(&mut self, pointer: &str, literal: &str) -> Outcome {
        let value = json_literal(literal)?;
        pointer_set(&mut self.body, pointer, value)
    }

    pub fn remove_field(&mut self, pointer: &str) -> Outcome {
        pointer_remove(&mut self.body, pointer)
    }

    /// Message 0 as content parts, text (with the marker) first.
    fn user_parts(&mut self) -> Result<&mut Vec<Value>, String> {
        let content = self
            .body
            .pointer_mut("/messages/0/content")
            .ok_or("the pending request has no /messages/0/content")?;
        if let Value::String(s) = content {
            *content = json!([{"type": "text", "text": s.clone()}]);
        }
        content
            .as_array_mut()
            .ok_or_else(|| "/messages/0/content is neither text nor parts".to_owned())
    }

    pub fn add_image_url(&mut self, url: &str) -> Outcome {
        self.user_parts()?
            .push(json!({"type": "image_url", "image_url": {"url": url}}));
        Ok(())
    }

    /// Message 1 holds all assistant tool calls; each gets a `tool` result message.
    pub fn add_tool_history(&mut self, name: &str, arguments: &str) -> Outcome {
        let messages = self
            .body
            .get_mut("messages")
            .and_then(Value::as_array_mut)
            .ok_or("the pending request has no messages array")?;
        if messages.len() < 2 {
            messages.push(json!({"role": "assistant", "content": null, "tool_calls": []}));
        }
        let calls = messages[1]
            .get_mut("tool_calls")
            .and_then(Value::as_array_mut)
            .ok_or("message 1 is not the assistant tool-call message")?;
        let id = format!("call_{}_{}", calls.len(), &self.marker);
        calls.push(json!({
            "id": id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }));
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": "ok"}));
        Ok(())
    }

    pub fn add_caller_tool(&mut self, name: &str) -> Outcome {
        let tool = json!({
            "type": "function",
            "function": {
                "name": name,
                "description": "A caller-defined tool of the conformance suite.",
                "parameters": {"type": "object", "properties": {}},
            },
        });
        match self.body.get_mut("tools").and_then(Value::as_array_mut) {
            Some(tools) => tools.push(tool),
            None => self.body["tools"] = json!([tool]),
        }
        Ok(())
    }

    pub fn chunked_encoding(&mut self) {
        self.chunked = Some(PACE_BYTES);
    }

    /// Chunked encoding in pieces of `piece` bytes: many small chunks, each arriving at the
    /// gateway as its own body frame.
    pub fn chunked_pieces(&mut self, piece: usize) -> Outcome {
        if piece == 0 {
            return Err("a chunk piece must hold at least one byte".into());
        }
        self.chunked = Some(piece);
        Ok(())
    }

    /// Lets `ms` milliseconds of wall-clock time pass: for limits defined over time (a daily
    /// budget must not reset when the second changes), not to wait for the gateway.
    pub async fn let_time_pass(&mut self, ms: u64) -> Outcome {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }

    pub fn arm_panic(&mut self) {
        self.fault_once = Some("panic");
    }

    pub fn fail_store(&mut self) -> Outcome {
        // Every later request of this scenario carries the fault; the target fails those
        // requests' store calls only (never a process-wide switch).
        self.set_header("x-gateway-fault", "storage");
        Ok(())
    }

    // ---- building and sending ----

    fn req(&mut self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Req, String> {
        let t = self.target()?;
        let base = t.base_url.clone();
        let mut headers = t.extra_headers.clone();
        if let Some(auth) = &self.auth {
            headers.push((t.credential_header.clone(), auth.clone()));
        }
        let has_ct = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !has_ct {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        headers.extend(self.headers.iter().cloned());
        if let Some(fault) = self.fault_once.take() {
            headers.push(("x-gateway-fault".to_owned(), fault.to_owned()));
        }
        Ok(Req {
            method,
            path: path.to_owned(),
            url: format!("{base}{path}"),
            headers,
            body,
            chunked: self.chunked,
            disconnect_after: None,
            held: None,
            tape: self.tape.clone(),
        })
    }

    async fn send_one(&mut self, req: Req) -> Outcome {
        let resp = execute(self.http()?, req).await?;
        self.responses = vec![resp];
        Ok(())
    }

    fn body_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).unwrap_or_default()
    }

    pub async fn send_chat_to(&mut self, path: &str) -> Outcome {
        let body = self.body_bytes();
        let req = self.req(Method::POST, path, Some(body))?;
        self.send_one(req).await
    }

    pub async fn send_chat(&mut self) -> Outcome {
        self.send_chat_to("/v1/chat/completions").await
    }

    /// The pending request with the top-level member `name` written twice: first as
    /// `first` (a JSON literal), then as the pending body has it.
    pub async fn send_chat_with_repeated(&mut self, name: &str, first: &str) -> Outcome {
        let first = json_literal(first)?;
        if self.body.get(name).is_none() {
            return Err(format!(
                "the pending request has no member `{name}` to repeat"
            ));
        }
        let body = self.body_bytes();
        let Some(rest) = body.strip_prefix(b"{") else {
            return Err("the pending request is not a JSON object".to_owned());
        };
        let mut raw = serde_json::to_vec(&json!({ name: first })).map_err(|e| e.to_string())?;
        raw.pop(); // the closing brace
        raw.push(b',');
        raw.extend_from_slice(rest);
        let req = self.req(Method::POST, "/v1/chat/completions", Some(raw))?;
        self.send_one(req).await
    }

    pub async fn send_chat_with(&mut self, pointer: &str, literal: &str) -> Outcome {
        self.set_field(pointer, literal)?;
        self.send_chat().await
    }

    pub async fn send_chat_without(&mut self, pointer: &str) -> Outcome {
        self.remove_field(pointer)?;
        self.send_chat().await
    }

    /// The pending chat request with message 0's text padded so that its JSON is exactly
    /// `size` bytes (the pending request itself is left as it is).
    fn padded_body(&self, size: usize) -> Result<Vec<u8>, String> {
        let base = self.body_bytes().len();
        let filler = size
            .checked_sub(base)
            .ok_or_else(|| format!("the request is already {base} bytes, more than {size}"))?;
        let pad = "x".repeat(filler);
        let mut padded = self.body.clone();
        match padded.pointer_mut("/messages/0/content") {
            Some(Value::String(s)) => s.push_str(&pad),
            Some(Value::Array(parts)) => {
                let text = parts
                    .iter_mut()
                    .find_map(|p| p.get_mut("text"))
                    .and_then(|t| match t {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .ok_or("message 0 has no text part to pad")?;
                text.push_str(&pad);
            }
            _ => return Err("message 0 has no content to pad".into()),
        }
        let body = serde_json::to_vec(&padded).map_err(|e| e.to_string())?;
        if body.len() != size {
            return Err(format!(
                "padding produced {} bytes instead of {size}",
                body.len()
            ));
        }
        Ok(body)
    }

    /// Sends the chat request padded to exactly `size` bytes ([`Self::padded_body`]).
    pub async fn send_padded(&mut self, size: usize) -> Outcome {
        let body = self.padded_body(size)?;
        let req = self.req(Method::POST, "/v1/chat/completions", Some(body))?;
        self.send_one(req).await
    }

    /// Another caller starts the chat request padded to `size` bytes and sends only its first
    /// `sent` bytes (chunked), in a task of its own; [`Self::release_held_caller`] sends the rest.
    pub async fn hold_caller(&mut self, sent: usize, size: usize) -> Outcome {
        if self.held_caller.is_some() {
            return Err("a caller is already holding its request (one per scenario)".into());
        }
        let body = self.padded_body(size)?;
        let mut req = self.req(Method::POST, "/v1/chat/completions", Some(body))?;
        let (go_on, wait) = tokio::sync::oneshot::channel();
        req.held = Some((sent, Arc::new(std::sync::Mutex::new(Some(wait)))));
        let http = self.http()?.clone();
        let answer = tokio::spawn(async move { execute(&http, req).await });
        self.held_caller = Some(HeldCaller { go_on, answer });
        Ok(())
    }

    /// The held caller sends the rest of its body and reads its answer (bounded by the
    /// client's own timeout, like every request of the harness).
    pub async fn release_held_caller(&mut self) -> Outcome {
        let held = self
            .held_caller
            .take()
            .ok_or("no caller is holding a request (a step must start one first)")?;
        // A send error means the request already ended (answered early): its answer says how.
        let _ = held.go_on.send(());
        let resp = held
            .answer
            .await
            .map_err(|e| format!("the held caller's task failed: {e}"))??;
        self.held_answer = Some(resp);
        Ok(())
    }

    /// The status the held caller got ([`Self::release_held_caller`]).
    pub fn held_answer_status_is(&self, status: u16) -> Outcome {
        let r = self
            .held_answer
            .as_ref()
            .ok_or("the held caller has no answer yet (it must send the rest first)")?;
        if r.status == status {
            Ok(())
        } else {
            Err(format!(
                "expected the other caller to get {status}: {}",
                r.describe()
            ))
        }
    }

    /// Waits, up to [`METRICS_WAIT`], until the target's `/metrics` reports at least `bytes`
    /// held by the memory budget `budget` (`gateway_memory_held_bytes{budget="…"}`, the
    /// reference gateway's gauge), polling every [`METRICS_POLL`].
    pub async fn memory_held_at_least(&mut self, budget: &str, bytes: u64) -> Outcome {
        let series = format!("gateway_memory_held_bytes{{budget=\"{budget}\"}}");
        let deadline = Instant::now() + METRICS_WAIT;
        let mut last = None;
        loop {
            let req = self.req(Method::GET, "/metrics", None)?;
            let resp = execute(self.http()?, req).await?;
            last = resp
                .text()
                .lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .or(last);
            if last.is_some_and(|held| held >= bytes) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(match last {
                    Some(held) => format!(
                        "{series} stayed at {held}, below {bytes}, for {} ms",
                        METRICS_WAIT.as_millis()
                    ),
                    None => format!("GET /metrics has no {series}: {}", resp.describe()),
                });
            }
            tokio::time::sleep(METRICS_POLL).await;
        }
    }

    /// A chat request one KiB over the target's body cap (see [`Target::body_cap`]).
    pub async fn send_over_cap(&mut self) -> Outcome {
        let cap = self.target()?.body_cap();
        let size = usize::try_from(cap)
            .map_err(|_| format!("the body cap {cap} does not fit in memory"))?
            .saturating_add(1024);
        self.send_padded(size).await
    }

    /// Sends the pending chat request and, if no answer has come within `ms`, closes the
    /// connection (a caller's own timeout). An answer that came in time is kept as usual.
    pub async fn send_chat_giving_up(&mut self, ms: u64) -> Outcome {
        let body = self.body_bytes();
        let req = self.req(Method::POST, "/v1/chat/completions", Some(body))?;
        let wait = Duration::from_millis(ms);
        let answered = tokio::time::timeout(wait, execute(self.http()?, req)).await;
        self.responses = match answered {
            Ok(resp) => vec![resp?],
            // Dropping the request future closes its connection mid-request.
            Err(_) => Vec::new(),
        };
        Ok(())
    }

    pub async fn send_stream(&mut self, disconnect_after: Option<usize>) -> Outcome {
        self.body["stream"] = Value::Bool(true);
        let body = self.body_bytes();
        let mut req = self.req(Method::POST, "/v1/chat/completions", Some(body))?;
        req.disconnect_after = disconnect_after;
        self.send_one(req).await
    }

    pub async fn send_raw(&mut self, raw: &str) -> Outcome {
        let req = self.req(
            Method::POST,
            "/v1/chat/completions",
            Some(raw.as_bytes().to_vec()),
        )?;
        self.send_one(req).await
    }

    pub async fn send_many(&mut self, n: usize, parallel: bool) -> Outcome {
        let body = self.body_bytes();
        let reqs: Vec<Req> = (0..n)
            .map(|_| self.req(Method::POST, "/v1/chat/completions", Some(body.clone())))
            .collect::<Result<_, _>>()?;
        let http = self.http()?.clone();
        let results: Vec<Result<Resp, String>> = if parallel {
            futures_util::future::join_all(reqs.into_iter().map(|r| execute(&http, r))).await
        } else {
            let mut out = Vec::new();
            for r in reqs {
                out.push(execute(&http, r).await);
            }
            out
        };
        self.responses = results.into_iter().collect::<Result<_, _>>()?;
        Ok(())
    }

    pub async fn send_method(&mut self, method: &str, path: &str) -> Outcome {
        let method = Method::from_bytes(method.to_uppercase().as_bytes())
            .map_err(|_| format!("`{method}` is not an HTTP method"))?;
        let req = self.req(method, path, None)?;
        self.send_one(req).await
    }

    pub async fn wait_retry_after(&mut self) -> Outcome {
        let secs: u64 = self
            .last()?
            .header("retry-after")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                "the last response has no whole-seconds Retry-After to wait for".to_owned()
            })?;
        // A little past the period, so the first admitted instant is not missed by a hair.
        tokio::time::sleep(Duration::from_secs(secs) + Duration::from_millis(100)).await;
        Ok(())
    }

    // ---- conversations ----

    fn c1_body(&self, user: &str, text: &str, conversation: Option<&str>) -> Value {
        let mut body = self.body.clone();
        body["messages"] =
            json!([{"role": "user", "content": format!("mock:{} {text}", self.marker)}]);
        body["user_id"] = Value::String(self.user(user));
        match conversation {
            Some(id) => body["conversation_id"] = Value::String(id.to_owned()),
            None => {
                if let Some(o) = body.as_object_mut() {
                    o.remove("conversation_id");
                }
            }
        }
        body
    }

    pub async fn start_conversation(&mut self, user: &str, text: &str) -> Outcome {
        let body = serde_json::to_vec(&self.c1_body(user, text, None)).unwrap_or_default();
        let req = self.req(Method::POST, "/c1/chat/completions", Some(body))?;
        self.send_one(req).await?;
        let last = self.last()?;
        let id = last
            .json()
            .and_then(|v| {
                v.get("conversation_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .or_else(|| last.header("x-conversation-id").map(str::to_owned));
        if id.is_some() {
            self.conversation_id = id;
        }
        Ok(())
    }

    /// As [`Self::start_conversation`], streamed: the id comes from the `x-conversation-id`
    /// header (a stream has no body object to carry it).
    pub async fn start_streamed_conversation(&mut self, user: &str, text: &str) -> Outcome {
        let mut body = self.c1_body(user, text, None);
        body["stream"] = Value::Bool(true);
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let req = self.req(Method::POST, "/c1/chat/completions", Some(body))?;
        self.send_one(req).await?;
        if let Some(id) = self.last()?.header("x-conversation-id").map(str::to_owned) {
            self.conversation_id = Some(id);
        }
        Ok(())
    }

    fn remembered(&self) -> Result<String, String> {
        self.conversation_id.clone().ok_or_else(|| {
            "no conversation id was returned by an earlier `I start a conversation` step".to_owned()
        })
    }

    pub async fn continue_conversation(&mut self, user: &str, text: &str) -> Outcome {
        let id = self.remembered()?;
        let body = serde_json::to_vec(&self.c1_body(user, text, Some(&id))).unwrap_or_default();
        let req = self.req(Method::POST, "/c1/chat/completions", Some(body))?;
        self.send_one(req).await
    }

    async fn conversation_request(&mut self, action: &str, id_path: &str, user: &str) -> Outcome {
        let method = match action {
            "get" => Method::GET,
            "delete" => Method::DELETE,
            other => {
                return Err(format!(
                    "unknown conversation action `{other}` (get or delete)"
                ))
            }
        };
        let path = format!(
            "/c1/conversations/{id_path}?user_id={}",
            urlencoding::encode(&self.user(user))
        );
        let req = self.req(method, &path, None)?;
        self.send_one(req).await
    }

    pub async fn remembered_conversation(&mut self, action: &str, user: &str) -> Outcome {
        let id = self.remembered()?;
        let id = urlencoding::encode(&id).into_owned();
        self.conversation_request(action, &id, user).await
    }

    pub async fn literal_conversation(&mut self, action: &str, id: &str, user: &str) -> Outcome {
        let id = urlencoding::encode(id).into_owned();
        self.conversation_request(action, &id, user).await
    }

    pub async fn long_conversation(&mut self, action: &str, len: usize, user: &str) -> Outcome {
        let id = "c".repeat(len);
        self.conversation_request(action, &id, user).await
    }

    pub async fn list_conversations(&mut self, user: &str) -> Outcome {
        let path = format!(
            "/c1/conversations?user_id={}",
            urlencoding::encode(&self.user(user))
        );
        let req = self.req(Method::GET, &path, None)?;
        self.send_one(req).await
    }

    // ---- the mock upstream ----

    /// The mock behind the current model role.
    pub fn mock(&self) -> Result<MockHandle, String> {
        self.target()?
            .mocks
            .get(&self.model_role)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "no mock upstream behind the model role `{}`",
                    self.model_role
                )
            })
    }

    /// Every distinct mock of the target (records are summed over them).
    pub fn all_mocks(&self) -> Result<Vec<MockHandle>, String> {
        let mut out: Vec<MockHandle> = Vec::new();
        for m in self.target()?.mocks.values() {
            if !out.iter().any(|o| o.same_as(m)) {
                out.push(m.clone());
            }
        }
        Ok(out)
    }

    pub async fn script(&mut self, step: Step) -> Outcome {
        let mock = self.mock()?;
        // A gateway that retries upstream failures meets the same failure on each attempt,
        // as it would from a really failing upstream.
        let copies = match &step.action {
            mocks::Action::Error { status, .. } if *status >= 500 || *status == 429 => {
                self.scripted_failure = true;
                1 + self.target()?.retries
            }
            mocks::Action::QuotaExhausted
            | mocks::Action::DailyLimit
            | mocks::Action::StreamError { after: 0, .. } => {
                self.scripted_failure = true;
                1 + self.target()?.retries
            }
            mocks::Action::Error { .. } | mocks::Action::ContextLength { .. } => {
                self.scripted_failure = true;
                1
            }
            _ => 1,
        };
        let steps = self.scripts.entry(mock.base_url()).or_default();
        steps.extend(std::iter::repeat_n(step, copies));
        let steps = steps.clone();
        mock.script(&self.marker, &steps).await
    }

    pub async fn script_many(&mut self, steps: Vec<Step>) -> Outcome {
        let mock = self.mock()?;
        let all = self.scripts.entry(mock.base_url()).or_default();
        all.extend(steps);
        let all = all.clone();
        mock.script(&self.marker, &all).await
    }

    pub async fn script_error(&mut self, status: u16, message: &str) -> Outcome {
        self.note_numbers(message);
        self.script(Step::error(status, message)).await
    }

    /// An upstream error carrying a response header (`retry-after: 7`).
    pub async fn script_error_with_header(
        &mut self,
        status: u16,
        message: &str,
        name: &str,
        value: &str,
    ) -> Outcome {
        self.note_numbers(message);
        self.script(Step::error_with_headers(status, message, [(name, value)]))
            .await
    }

    fn note_numbers(&mut self, text: &str) {
        for n in text::numbers_in(text) {
            // HTTP status codes in a body are structure, not a leaked figure.
            let status_like =
                n.len() == 3 && n.parse::<u16>().is_ok_and(|s| (400..600).contains(&s));
            if !status_like && !self.upstream_numbers.contains(&n) {
                self.upstream_numbers.push(n);
            }
        }
    }

    /// `the upstream answers with its <kind> error`, in the current personality's words.
    pub async fn script_named_error(&mut self, kind: &str) -> Outcome {
        let mock = self.mock()?;
        // The mock speaks its own personality's words (mocks/src/personality/); this only
        // names the step.
        let (step, carries_figures) = match kind {
            "quota-exhaustion" | "credit-exhaustion" => (Step::quota_exhausted(), true),
            "daily-limit" => (Step::daily_limit(), true),
            "rate-window" => (Step::rate_window(), true),
            "context-length" => (Step::context_length(8192, 9000), false),
            "max-tokens" => (Step::max_tokens(256), false),
            other => {
                return Err(format!(
                    "unknown upstream error kind `{other}` (quota-exhaustion, credit-exhaustion, rate-window, daily-limit, context-length, max-tokens)"
                ))
            }
        };
        if carries_figures {
            // SPEC §3: a quota answer names no token counts; remember the body's figures.
            let body = mock.probe(&self.marker, step.clone()).await?;
            self.note_numbers(&body);
        }
        self.script(step).await
    }

    pub async fn script_text(&mut self, text: &str) -> Outcome {
        self.script(Step::reply(text)).await
    }

    pub async fn script_hang(&mut self) -> Outcome {
        self.script(Step::hang()).await
    }

    /// The text cut into `chunks` consecutive pieces of (nearly) equal length.
    pub async fn script_stream(
        &mut self,
        text: &str,
        chunks: usize,
        interval_ms: usize,
    ) -> Outcome {
        self.script(Step::stream(split_chars(text, chunks), interval_ms as u64))
            .await
    }

    /// As [`Self::script_stream`] (no interval), the events cut on the wire as `tear` says.
    pub async fn script_stream_torn(
        &mut self,
        text: &str,
        chunks: usize,
        tear: mocks::Tear,
    ) -> Outcome {
        self.script(Step::stream(split_chars(text, chunks), 0).with_tear(tear))
            .await
    }

    pub async fn script_stream_failure(&mut self, chunks: usize, failure: &str) -> Outcome {
        let step = match failure {
            "drops the connection" => Step::drop_after(chunks, 20),
            "sends a malformed chunk" => Step::malformed(chunks),
            "ends without the DONE marker" => {
                self.upstream_sent_finish = true;
                Step::no_done(chunks)
            }
            // Far past HTTP_TOTAL_TIMEOUT_SECS of the test configuration (2 s).
            "stalls" => Step::stall(chunks, 8_000),
            other => {
                return Err(format!(
                    "unknown stream failure `{other}` (drops the connection, sends a malformed chunk, ends without the DONE marker, stalls)"
                ))
            }
        };
        self.script(step).await
    }

    pub async fn script_stream_error_object(&mut self, status: u16) -> Outcome {
        self.script(Step::stream_error(
            0,
            status,
            "the engine failed inside the stream",
        ))
        .await
    }

    pub async fn script_tool_call(&mut self, name: &str, arguments: &str) -> Outcome {
        self.script(Step::tool_call(name, arguments)).await
    }

    pub async fn script_split_tool_call(
        &mut self,
        name: &str,
        arguments: &str,
        parts: usize,
    ) -> Outcome {
        self.script(Step::tool_call(name, arguments).with_arg_splits(parts))
            .await
    }

    pub async fn script_distinct_tool_calls(&mut self, times: usize, name: &str) -> Outcome {
        let steps = (1..=times)
            .map(|i| Step::tool_call(name, format!(r#"{{"city": "City {i}"}}"#)))
            .collect();
        self.script_many(steps).await
    }

    /// As [`Self::script_distinct_tool_calls`], each call's arguments `kib` KiB long (the
    /// `kib_arguments` text with the call's number, so no two are the same).
    pub async fn script_distinct_long_tool_calls(
        &mut self,
        times: usize,
        name: &str,
        kib: usize,
    ) -> Outcome {
        let steps = (1..=times)
            .map(|i| {
                let args = format!(
                    r#"{{"city": "City {i}", "notes": "{}"}}"#,
                    "a".repeat(kib.saturating_mul(1024))
                );
                Step::tool_call(name, args)
            })
            .collect();
        self.script_many(steps).await
    }

    /// Enough copies to answer every call of a capped loop plus its synthesis call.
    pub async fn script_tool_call_forever(&mut self, name: &str, arguments: &str) -> Outcome {
        let steps = (0..64).map(|_| Step::tool_call(name, arguments)).collect();
        self.script_many(steps).await
    }

    /// The requests the current role's mock received for this scenario.
    pub async fn records(&self) -> Result<Vec<mocks::Recorded>, String> {
        self.mock()?.records(&self.marker).await
    }

    /// How many upstream requests carried this scenario's marker, over every mock.
    pub async fn record_count(&self) -> Result<usize, String> {
        let mut n = 0;
        for m in self.all_mocks()? {
            n += m.records(&self.marker).await?.len();
        }
        Ok(n)
    }
}

/// `text` in `chunks` pieces of (nearly) equal character counts.
fn split_chars(text: &str, chunks: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let chunks = chunks.max(1);
    (0..chunks)
        .map(|i| {
            let from = chars.len() * i / chunks;
            let to = chars.len() * (i + 1) / chunks;
            chars[from..to].iter().collect()
        })
        .collect()
}
