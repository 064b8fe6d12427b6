//! Production conditions under load (issue 11): the per-token concurrency cap in one gateway
//! and across two replicas sharing one Redis, and the upstream in-flight cap with its bounded
//! wait. Each run fires waves of N simultaneous callers (N ≫ cap) at a scripted mock that
//! holds every admitted request open, reads what was admitted at the mock itself (its own
//! in-flight gauge and its records), then lets the admitted callers go (they disconnect
//! mid-stream, or their answer completes) and fires the next wave once the gateway reports
//! every slot free again.
//!
//! Plain tokio tasks rather than goose users: a goose user loops on its own, while these runs
//! need every caller of a wave released at one barrier and the admitted ones held, then let go,
//! on the run's signal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gateway::config::{sha256, Allowed, Tenant, TokenRule, UpstreamKind};
use gateway::{AppState, Running};
use hdrhistogram::Histogram;
use mocks::Step;
use tokio::sync::{mpsc, watch, Barrier};

use crate::setup::{self, CountedMock};
use crate::stats::{us, Goal, Row};
use crate::Report;

/// The token with `max_concurrent = cap` (the concurrency runs).
pub const CC_TOKEN: &str = "tok-concurrency";
/// The mock script every admitted request plays.
const MARKER: &str = "cond-hold";
/// Waves per run: the first shows the cap, the second that the first's slots came back.
const WAVES: usize = 2;
/// Every answer of one wave must arrive within this; bounds the run.
const WAVE_TIMEOUT: Duration = Duration::from_secs(20);
/// The slots must be free again this long after the admitted callers let go.
const FREE_TIMEOUT: Duration = Duration::from_secs(10);
/// A held stream: a chunk every 50 ms for 30 s, longer than any wave (callers leave first).
const HOLD_CHUNKS: usize = 600;
const HOLD_INTERVAL_MS: u64 = 50;
/// A refusal of the overload run may take the configured wait plus this (scheduling of N
/// simultaneous callers on a shared 2-core box) and still count as "within the bound".
pub const WAIT_SLACK: Duration = Duration::from_millis(150);

/// The three runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// `max_concurrent = cap` on one token, one gateway.
    Concurrency,
    /// The same token and cap on two gateway replicas sharing one redis-server.
    ConcurrencyRedis,
    /// The alias's upstream `max_in_flight = cap` with `queue_wait_ms`.
    Overload,
}

#[derive(Clone, Copy, Debug)]
pub struct Opts {
    pub callers: usize,
    pub cap: u32,
    pub queue_wait: Duration,
}

/// What the gateway itself holds, read to know when a wave's slots are free again.
enum Held {
    /// Concurrency slots of [`CC_TOKEN`] in these processes' own counts.
    Local(Vec<AppState>),
    /// The token's sorted set of slots in Redis (and the replicas, for their Redis errors).
    Redis(redis::aio::MultiplexedConnection, String, Vec<AppState>),
    /// In-flight permits of upstream `index` in this gateway, of `cap`.
    Upstream(AppState, usize, u32),
}

impl Held {
    /// `gateway_redis_errors_total` summed over the replicas (each error means that request
    /// fell back to its process's own count, `REDIS_FAIL_MODE=open`).
    fn redis_errors(&self) -> Option<u64> {
        let Held::Redis(_, _, states) = self else {
            return None;
        };
        let total = states
            .iter()
            .map(|s| {
                s.metrics
                    .render()
                    .lines()
                    .find(|l| l.starts_with("gateway_redis_errors_total"))
                    .and_then(|l| l.rsplit(' ').next())
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0) as u64
            })
            .sum();
        Some(total)
    }

    async fn count(&mut self) -> Result<usize, String> {
        match self {
            Held::Local(states) => Ok(states
                .iter()
                .map(|s| s.slots.held(&sha256(CC_TOKEN)) as usize)
                .sum()),
            Held::Redis(conn, key, _) => redis::cmd("ZCARD")
                .arg(&*key)
                .query_async::<usize>(conn)
                .await
                .map_err(|e| format!("redis ZCARD: {e}")),
            Held::Upstream(state, index, cap) => {
                let free = state
                    .upstream_slots
                    .get(*index)
                    .and_then(|s| s.as_ref())
                    .map_or(0, |s| s.available_permits());
                Ok((*cap as usize).saturating_sub(free))
            }
        }
    }
}

/// One run's test bed: the mock, the gateway(s), where the callers go and what they send.
struct Bed {
    mock: CountedMock,
    held: Held,
    urls: Vec<String>,
    token: &'static str,
    body: bytes::Bytes,
    stream: bool,
    /// The refusal every caller past the cap must get.
    expect: (u16, &'static str),
    _keep: Vec<Box<dyn std::any::Any + Send>>,
}

enum Answer {
    Admitted,
    Refused {
        status: u16,
        code: String,
        retry_after: bool,
        latency: Duration,
    },
    Failed(String),
}

/// What one wave showed.
struct WaveOut {
    admitted: u64,
    /// Refusals with the expected status and code.
    refused: u64,
    with_retry_after: u64,
    /// Any other answer (another status or code, a transport error), by what it was.
    other: BTreeMap<String, u64>,
    latency: Histogram<u64>,
    max_refusal: Duration,
    /// The mock's own in-flight count once every caller had its answer (streams still held).
    mock_held: usize,
    mock_peak: usize,
    /// Requests that reached the mock in this wave (its records).
    reached: usize,
    /// How long after the admitted callers let go until the gateway held no slot.
    freed: Result<Duration, String>,
    /// Redis errors the replicas counted during the wave (Redis runs only).
    redis_errors: Option<u64>,
}

fn body(model: &str, stream: bool) -> bytes::Bytes {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": format!("hold this open mock:{MARKER}")}],
        "max_tokens": 64,
        "stream": stream,
    })
    .to_string()
    .into()
}

fn redis_slot_key(token: &str) -> String {
    // The gateway's key of a token's slots (`admission/redis.rs::slot_key`).
    let hash = sha256(token);
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("gw:cc:{hex}")
}

async fn bed(which: Which, opts: Opts) -> Result<Option<Bed>, String> {
    let mock = setup::start_counted_mock()
        .await
        .map_err(|e| format!("mock: {e}"))?;
    let api = mock.mock.api_base();
    let mut cfg = setup::gateway_config(&api, &api, None);
    cfg.tenants.push(Tenant {
        id: "concurrency".into(),
        token_hashes: vec![sha256(CC_TOKEN)],
        token_rules: vec![TokenRule {
            expires_at: None,
            max_concurrent: Some(opts.cap),
        }],
        allowed: Allowed::All,
        ..Default::default()
    });
    let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    let start = |cfg: gateway::Config| async move {
        setup::start_gateway_keeping_state(cfg)
            .await
            .map_err(|e| e.to_string())
    };
    let url = |r: &Running| format!("{}/v1/chat/completions", r.base_url());
    let hold = Step::stream(vec!["tick "; HOLD_CHUNKS], HOLD_INTERVAL_MS);
    let bed = match which {
        Which::Concurrency => {
            let (gw, state) = start(cfg).await?;
            let urls = vec![url(&gw)];
            keep.push(Box::new(gw));
            mock.state
                .script(MARKER, vec![hold; 2 * WAVES * opts.cap as usize]);
            Bed {
                held: Held::Local(vec![state]),
                urls,
                token: CC_TOKEN,
                body: body("small", true),
                stream: true,
                expect: (429, "concurrency_limit_exceeded"),
                mock,
                _keep: keep,
            }
        }
        Which::ConcurrencyRedis => {
            let Some(server) = setup::Redis::start().await.map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            cfg.redis_url = Some(server.url());
            let (mut urls, mut states) = (Vec::new(), Vec::new());
            for _ in 0..2 {
                let (gw, state) = start(cfg.clone()).await?;
                urls.push(url(&gw));
                states.push(state);
                keep.push(Box::new(gw));
            }
            let conn = redis::Client::open(server.url())
                .map_err(|e| e.to_string())?
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| format!("redis: {e}"))?;
            keep.push(Box::new(server));
            mock.state
                .script(MARKER, vec![hold; 2 * WAVES * opts.cap as usize]);
            Bed {
                held: Held::Redis(conn, redis_slot_key(CC_TOKEN), states),
                urls,
                token: CC_TOKEN,
                body: body("small", true),
                stream: true,
                expect: (429, "concurrency_limit_exceeded"),
                mock,
                _keep: keep,
            }
        }
        Which::Overload => {
            let mut up = gateway::testing::upstream("capped", UpstreamKind::Vllm, &api);
            up.max_in_flight = Some(opts.cap);
            up.queue_wait = opts.queue_wait;
            cfg.upstreams.push(up);
            let index = cfg.upstreams.len() - 1;
            cfg.models
                .push(gateway::testing::model("capped", index, 16));
            let (gw, state) = start(cfg).await?;
            let urls = vec![url(&gw)];
            keep.push(Box::new(gw));
            // Each admitted request is answered after the wait has run out for every other.
            let delay = opts.queue_wait + Duration::from_millis(1000);
            mock.state.script(
                MARKER,
                vec![
                    Step::reply("held").with_delay(delay.as_millis() as u64);
                    2 * WAVES * opts.cap as usize
                ],
            );
            Bed {
                held: Held::Upstream(state, index, opts.cap),
                urls,
                token: gateway::testing::TOKEN,
                body: body("capped", false),
                stream: false,
                expect: (503, "upstream_overloaded"),
                mock,
                _keep: keep,
            }
        }
    };
    Ok(Some(bed))
}

/// What one caller sends, and where.
struct Shot {
    url: String,
    token: &'static str,
    body: bytes::Bytes,
    stream: bool,
}

/// One caller: waits at the barrier, sends, reports its answer; an admitted stream is held
/// (its first chunk read) until `release`, then dropped mid-stream, which closes the
/// connection as a client going away does.
async fn caller(
    shot: Shot,
    barrier: Arc<Barrier>,
    mut release: watch::Receiver<bool>,
    tx: mpsc::UnboundedSender<Answer>,
) {
    // Its own client and connection, opened before the barrier (a GET /healthz): the wave
    // then measures admission, not N simultaneous TCP handshakes into one listen queue.
    let client = match reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            barrier.wait().await;
            let _ = tx.send(Answer::Failed(format!("client: {e}")));
            return;
        }
    };
    let health = shot.url.replace("/v1/chat/completions", "/healthz");
    let warm = match client.get(&health).send().await {
        Ok(r) => r.bytes().await.map(drop),
        Err(e) => Err(e),
    };
    barrier.wait().await;
    if let Err(e) = warm {
        let _ = tx.send(Answer::Failed(format!("warm-up GET /healthz: {e}")));
        return;
    }
    let t0 = Instant::now();
    let sent = client
        .post(&shot.url)
        .bearer_auth(shot.token)
        .header("content-type", "application/json")
        .body(shot.body)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Answer::Failed(format!("send: {e}")));
            return;
        }
    };
    let status = resp.status().as_u16();
    if status != 200 {
        let latency = t0.elapsed();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1);
        let code = resp
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = tx.send(Answer::Refused {
            status,
            code,
            retry_after,
            latency,
        });
        return;
    }
    if !shot.stream {
        let _ = tx.send(match resp.bytes().await {
            Ok(_) => Answer::Admitted,
            Err(e) => Answer::Failed(format!("body: {e}")),
        });
        return;
    }
    let mut body = resp.bytes_stream();
    match body.next().await {
        Some(Ok(_)) => {
            let _ = tx.send(Answer::Admitted);
        }
        other => {
            let _ = tx.send(Answer::Failed(format!("no first chunk: {other:?}")));
            return;
        }
    }
    loop {
        tokio::select! {
            _ = release.changed() => return,
            c = body.next() => if !matches!(c, Some(Ok(_))) { return },
        }
    }
}

async fn wave(bed: &mut Bed, callers: usize) -> Result<WaveOut, String> {
    let reached_before = bed.mock.state.records(MARKER).len();
    let redis_errors_before = bed.held.redis_errors();
    bed.mock.gauge.reset_peak();
    let barrier = Arc::new(Barrier::new(callers));
    let (release_tx, release_rx) = watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(callers);
    for i in 0..callers {
        let shot = Shot {
            url: bed.urls[i % bed.urls.len()].clone(),
            token: bed.token,
            body: bed.body.clone(),
            stream: bed.stream,
        };
        tasks.push(tokio::spawn(caller(
            shot,
            barrier.clone(),
            release_rx.clone(),
            tx.clone(),
        )));
    }
    drop(tx);
    let mut out = WaveOut {
        admitted: 0,
        refused: 0,
        with_retry_after: 0,
        other: BTreeMap::new(),
        latency: crate::stats::histogram(),
        max_refusal: Duration::ZERO,
        mock_held: 0,
        mock_peak: 0,
        reached: 0,
        freed: Err("not reached".into()),
        redis_errors: None,
    };
    let deadline = tokio::time::Instant::now() + WAVE_TIMEOUT;
    let mut answered = 0;
    while answered < callers {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(a)) => {
                answered += 1;
                match a {
                    Answer::Admitted => out.admitted += 1,
                    Answer::Refused {
                        status,
                        code,
                        retry_after,
                        latency,
                    } => {
                        if (status, code.as_str()) == bed.expect {
                            out.refused += 1;
                        } else {
                            *out.other.entry(format!("{status} {code}")).or_default() += 1;
                        }
                        out.with_retry_after += u64::from(retry_after);
                        let _ = out.latency.record(us(latency));
                        out.max_refusal = out.max_refusal.max(latency);
                    }
                    Answer::Failed(why) => *out.other.entry(why).or_default() += 1,
                }
            }
            Ok(None) => break,
            Err(_) => {
                *out.other.entry("no answer in time".into()).or_default() +=
                    (callers - answered) as u64;
                break;
            }
        }
    }
    // Every caller has its answer; admitted streams are still held open.
    out.mock_held = bed.mock.gauge.in_flight();
    let _ = release_tx.send(true);
    let released = Instant::now();
    for t in tasks {
        let _ = tokio::time::timeout_at(deadline, t).await;
    }
    // Poll (bounded) until the gateway holds nothing and the mock has nothing in flight.
    out.freed = loop {
        let held = bed.held.count().await?;
        if held == 0 && bed.mock.gauge.in_flight() == 0 {
            break Ok(released.elapsed());
        }
        if released.elapsed() > FREE_TIMEOUT {
            break Err(format!(
                "still {held} held by the gateway, {} in flight at the mock after {} s",
                bed.mock.gauge.in_flight(),
                FREE_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    out.mock_peak = bed.mock.gauge.peak();
    out.redis_errors = bed
        .held
        .redis_errors()
        .zip(redis_errors_before)
        .map(|(after, before)| after.saturating_sub(before));
    out.reached = bed
        .mock
        .state
        .records(MARKER)
        .len()
        .saturating_sub(reached_before);
    Ok(out)
}

/// Runs `which` and adds its rows and its goal to `report`.
pub async fn run(which: Which, opts: Opts, report: &mut Report) -> Result<(), String> {
    let (name, target) = match which {
        Which::Concurrency => ("concurrency", "gateway (local slots)"),
        Which::ConcurrencyRedis => ("concurrency-redis", "2 replicas + Redis"),
        Which::Overload => ("overload", "gateway (upstream max_in_flight)"),
    };
    println!(
        "== {name}: {} callers at once, cap {}, {WAVES} waves",
        opts.callers, opts.cap
    );
    let Some(mut bed) = bed(which, opts).await? else {
        report
            .rows
            .push(Row::skipped(name, target, "redis-server is not installed"));
        return Ok(());
    };
    let cap = u64::from(opts.cap);
    let mut met = true;
    let mut measured = Vec::new();
    for w in 1..=WAVES {
        let o = wave(&mut bed, opts.callers).await?;
        let refusals = opts.callers as u64 - o.admitted;
        let (status, code) = bed.expect;
        let exact = o.admitted == cap
            && o.reached == cap as usize
            && o.mock_peak == cap as usize
            && o.refused == refusals
            && o.with_retry_after == refusals
            && o.other.is_empty()
            && o.freed.is_ok()
            && o.redis_errors.unwrap_or(0) == 0;
        let in_bound = match which {
            Which::Overload => o.max_refusal <= opts.queue_wait + WAIT_SLACK,
            _ => true,
        };
        met &= exact && in_bound;
        let held_now = if bed.stream {
            format!("{} in flight at the mock while held, ", o.mock_held)
        } else {
            String::new()
        };
        let freed = match &o.freed {
            Ok(d) => format!(
                "all slots free {:.1} ms after the admitted {}",
                d.as_secs_f64() * 1000.0,
                if bed.stream {
                    "disconnected mid-stream"
                } else {
                    "finished"
                }
            ),
            Err(e) => format!("NOT FREED: {e}"),
        };
        let wait = match which {
            Which::Overload => format!(
                "; refusals after {:.0}-{:.0} ms (queue_wait_ms {}, max allowed {} ms)",
                crate::stats::ms(&o.latency, 0.0),
                o.max_refusal.as_secs_f64() * 1000.0,
                opts.queue_wait.as_millis(),
                (opts.queue_wait + WAIT_SLACK).as_millis()
            ),
            _ => format!(
                "; refusals after {:.1}-{:.1} ms",
                crate::stats::ms(&o.latency, 0.0),
                o.max_refusal.as_secs_f64() * 1000.0
            ),
        };
        let redis_errors = match o.redis_errors {
            Some(n) => {
                format!("; {n} Redis errors (each one fell back to its replica's own count)")
            }
            None => String::new(),
        };
        let other = if o.other.is_empty() {
            String::new()
        } else {
            format!("; OTHER: {:?}", o.other)
        };
        let mut row = Row::from_counts(
            &format!("{name} wave {w}"),
            target,
            opts.callers as u64,
            o.admitted,
            o.other.values().sum(),
            &o.latency,
        );
        row.detail = format!(
            "p-cols = refusal latency; admitted {} (cap {cap}): {held_now}mock peak {}, {} reached the mock; {} x {status} {code}, {}/{} refusals with Retry-After; {freed}{wait}{redis_errors}{other}",
            o.admitted, o.mock_peak, o.reached, o.refused, o.with_retry_after, refusals
        );
        measured.push(format!(
            "wave {w}: admitted {}/{cap}, mock peak {}, {} x {status} (Retry-After on {}), refusal p99 {:.1} ms",
            o.admitted,
            o.mock_peak,
            o.refused,
            o.with_retry_after,
            crate::stats::ms(&o.latency, 0.99)
        ));
        report.rows.push(row);
    }
    let goal = match which {
        Which::Overload => "overload: exactly max_in_flight reach the mock; the rest 503 upstream_overloaded with Retry-After within queue_wait; slots come back",
        _ => "concurrency: exactly max_concurrent admitted; the rest 429 concurrency_limit_exceeded with Retry-After at once; disconnects free the slots (next wave admitted)",
    };
    report.goals.push(Goal::new(
        &format!("{target}: {goal}"),
        measured.join("; "),
        Some(met),
    ));
    Ok(())
}
