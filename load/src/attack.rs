//! One goose attack: N users for a fixed time, each looping one request kind against a list
//! of URLs (round robin), recording into a [`Recorder`] with µs resolution. Goose writes its
//! own HTML and JSON reports; the table is built from the recorder.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::prelude::*;

use crate::stats::Recorder;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Non-streaming chat: latency is the whole exchange.
    Chat,
    /// SSE: time to first token, gaps between chunks, end to end.
    Stream,
    /// Counts 200 vs 429 and checks every 429 for Retry-After.
    RateLimit,
}

/// Open-loop pacing: request k may start at `start + k / rate`; latency is timed from the
/// actual start, so the pacing wait never counts.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    period_ns: f64,
    next: AtomicU64,
}

impl Pacer {
    pub fn new(rate: f64) -> Pacer {
        Pacer {
            start: Instant::now(),
            period_ns: 1.0e9 / rate.max(1.0),
            next: AtomicU64::new(0),
        }
    }

    async fn wait(&self) {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let at = self.start + Duration::from_nanos((k as f64 * self.period_ns) as u64);
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Everything one attack's users share.
#[derive(Debug)]
pub struct Plan {
    pub label: String,
    pub kind: Kind,
    pub urls: Vec<String>,
    pub token: Option<String>,
    pub body: bytes::Bytes,
    pub users: usize,
    pub duration: Duration,
    pub pace: Option<f64>,
    pub rec: Recorder,
    next: AtomicUsize,
    pacer: parking_lot::Mutex<Option<Arc<Pacer>>>,
}

impl Plan {
    #[allow(
        clippy::too_many_arguments,
        reason = "a plain record, built in one place"
    )]
    pub fn new(
        label: &str,
        kind: Kind,
        urls: Vec<String>,
        token: Option<String>,
        body: Vec<u8>,
        users: usize,
        duration: Duration,
        pace: Option<f64>,
    ) -> Plan {
        Plan {
            label: label.into(),
            kind,
            urls,
            token,
            body: body.into(),
            users,
            duration,
            pace,
            rec: Recorder::default(),
            next: AtomicUsize::new(0),
            pacer: parking_lot::Mutex::new(None),
        }
    }
}

/// A chat body for `model`.
pub fn chat_body(model: &str, stream: bool) -> Vec<u8> {
    chat_value(model, stream).to_string().into_bytes()
}

/// The chat request of [`chat_body`] as a JSON value (the hop run adds to it).
pub fn chat_value(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Say hello to the load test."}
        ],
        "max_tokens": 64,
        "stream": stream,
    })
}

async fn one(user: &mut GooseUser, plan: &Plan) -> TransactionResult {
    let pacer = plan.pacer.lock().clone();
    if let Some(p) = pacer {
        p.wait().await;
    }
    let i = plan.next.fetch_add(1, Ordering::Relaxed);
    let url = plan.urls[i % plan.urls.len()].as_str();
    let mut rb = user
        .get_request_builder(&GooseMethod::Post, url)?
        .header("content-type", "application/json")
        .body(plan.body.clone());
    if let Some(t) = &plan.token {
        rb = rb.bearer_auth(t);
    }
    let req = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path(url)
        .name(plan.label.as_str())
        .set_request_builder(rb)
        .build();
    let started = Instant::now();
    plan.rec.started(started);
    let mut goose = user.request(req).await?;
    let resp = match goose.response {
        Ok(r) => r,
        Err(e) => {
            plan.rec.error(format!("transport: {e}"));
            return Ok(());
        }
    };
    let status = resp.status().as_u16();
    match (plan.kind, status) {
        (Kind::Stream, 200) => {
            let mut resp = resp;
            let mut trace = StreamTrace::new(started);
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => trace.chunk(&chunk),
                    Ok(None) => break trace.finish(plan),
                    Err(e) => break plan.rec.error(format!("stream broke: {e}")),
                }
            }
        }
        (_, 200) => match resp.bytes().await {
            Ok(_) => plan.rec.ok(started.elapsed()),
            Err(e) => plan.rec.error(format!("body: {e}")),
        },
        (Kind::RateLimit, 429) => {
            let has = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|s| s >= 1);
            let _ = resp.bytes().await;
            plan.rec.limited(has);
            // An expected refusal: keep goose's failure count for real failures.
            if has {
                user.set_success(&mut goose.request)?;
            }
        }
        (_, s) => {
            let body = resp.text().await.unwrap_or_default();
            plan.rec.error(format!(
                "status {s}: {}",
                body.chars().take(200).collect::<String>()
            ));
        }
    }
    Ok(())
}

/// What an SSE body showed as it arrived: TTFT at the first chunk holding `data:`, then the
/// gap before each later chunk; complete when `data: [DONE]` arrived.
#[derive(Debug)]
struct StreamTrace {
    started: Instant,
    ttft: Option<Duration>,
    last: Instant,
    gaps: Vec<Duration>,
    events: u64,
    tail: Vec<u8>,
}

impl StreamTrace {
    fn new(started: Instant) -> StreamTrace {
        StreamTrace {
            started,
            ttft: None,
            last: started,
            gaps: Vec::with_capacity(16),
            events: 0,
            tail: Vec::new(),
        }
    }

    fn chunk(&mut self, chunk: &[u8]) {
        let now = Instant::now();
        let n = count(chunk, b"data: ");
        self.events += n as u64;
        if self.ttft.is_none() {
            if n > 0 {
                self.ttft = Some(now - self.started);
            }
        } else {
            self.gaps.push(now - self.last);
        }
        self.last = now;
        self.tail
            .extend_from_slice(&chunk[chunk.len().saturating_sub(32)..]);
        if self.tail.len() > 64 {
            self.tail.drain(..self.tail.len() - 32);
        }
    }

    fn finish(self, plan: &Plan) {
        match self.ttft {
            Some(t) if count(&self.tail, b"[DONE]") > 0 => {
                plan.rec
                    .stream_ok(t, &self.gaps, self.events, self.started.elapsed())
            }
            _ => plan.rec.error("stream ended without data: [DONE]".into()),
        }
    }
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Runs `plan` with goose; reports go to `out_dir/<label>.html` and `.json`.
pub async fn run(plan: Arc<Plan>, out_dir: &Path) -> Result<(), GooseError> {
    let p = plan.clone();
    let f: TransactionFunction = Arc::new(move |user: &mut GooseUser| {
        let plan = p.clone();
        Box::pin(async move { one(user, &plan).await })
    });
    let mut cfg = GooseConfiguration::default();
    cfg.host = plan.urls.first().map(|u| base_of(u));
    cfg.users = Some(plan.users);
    // Launch every user within ~0.1 s; the window is measured from the first request.
    cfg.increase_rate = Some((plan.users * 10).to_string());
    cfg.run_time = Some(plan.duration.as_secs().max(1).to_string());
    cfg.no_telnet = true;
    cfg.no_gzip = true;
    cfg.no_print_metrics = true;
    cfg.no_error_summary = true;
    cfg.quiet = 1;
    cfg.report_file = vec![
        out_dir
            .join(format!("{}.html", plan.label))
            .display()
            .to_string(),
        out_dir
            .join(format!("{}.json", plan.label))
            .display()
            .to_string(),
    ];
    *plan.pacer.lock() = plan.pace.map(|r| Arc::new(Pacer::new(r)));
    GooseAttack::initialize_with_config(cfg)?
        .register_scenario(
            scenario!("load")
                .register_transaction(Transaction::new(f).set_name(plan.label.as_str())),
        )
        .execute()
        .await?;
    Ok(())
}

/// `http://host:port` of a full URL.
fn base_of(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    match url[scheme_end..].find('/') {
        Some(i) => url[..scheme_end + i].to_owned(),
        None => url.to_owned(),
    }
}
