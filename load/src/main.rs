//! `load`: goose load tests of the gateway (SPEC §9). Each scenario runs against the gateway
//! and straight against the mock in one invocation and prints one table: percentiles,
//! throughput, and the gateway/direct ratio. By default everything (mocks, gateway, Redis)
//! is started here on loopback; users and time are bounded and every run stops by itself.

mod attack;
mod conditions;
mod hop;
mod setup;
mod stats;
mod streams;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tabled::settings::Style;
use tabled::Table;

use attack::{chat_body, Kind, Plan};
use stats::{ms, Goal, Row, Snapshot};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    All,
    Chat,
    Stream,
    RateLimit,
    /// Per-token `max_concurrent` under N simultaneous streaming callers (one gateway).
    Concurrency,
    /// The same cap across two gateway replicas sharing one redis-server.
    ConcurrencyRedis,
    /// The upstream's `max_in_flight` and its bounded `queue_wait_ms` under N callers.
    Overload,
    Streams,
    /// The cost of one hop: CPU per request of mock, nginx, gateway and peers, driven by wrk
    /// (not part of `all`).
    Hop,
}

/// Load tests of the gateway, each also run straight against the mock.
#[derive(Debug, Parser)]
#[command(name = "load")]
struct Cli {
    /// Scenarios to run (repeatable, or comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    scenario: Vec<Scenario>,
    /// Seconds per run (each scenario has 2-4 runs); at most 30.
    #[arg(long, default_value_t = 8)]
    duration: u64,
    /// Concurrent users of the saturating chat runs; at most 512.
    #[arg(long, default_value_t = 32)]
    users: usize,
    /// Concurrent users of the stream runs; at most 512.
    #[arg(long, default_value_t = 32)]
    stream_users: usize,
    /// Fixed request rate (req/s) of the latency runs; at most 20000.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Concurrent streams of the `streams` scenario; at most 10000.
    #[arg(long, default_value_t = 5000)]
    streams: usize,
    /// A running gateway to test instead of the in-process one (loopback only unless
    /// --i-own-this-host). Needs --token; direct rows need --direct-url.
    #[arg(long)]
    host: Option<String>,
    /// The upstream's chat URL for the direct rows when --host is given.
    #[arg(long)]
    direct_url: Option<String>,
    /// Bearer for --host.
    #[arg(long)]
    token: Option<String>,
    /// Model alias for --host.
    #[arg(long, default_value = "small")]
    model: String,
    /// Allow --host/--direct-url outside 127.0.0.0/8, ::1 and localhost.
    #[arg(long)]
    i_own_this_host: bool,
    /// Where goose's HTML/JSON reports and the summary go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../reports/load"))]
    out_dir: PathBuf,
    /// hop: seconds of each measured wrk run (after a 1 s warm-up); at most 10.
    #[arg(long, default_value_t = 8)]
    hop_seconds: u64,
    /// hop: wrk threads.
    #[arg(long, default_value_t = 2)]
    hop_threads: usize,
    /// hop: wrk connections; at most 256.
    #[arg(long, default_value_t = 32)]
    hop_connections: usize,
    /// hop: where the release `gateway` and `mocks` binaries are (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// hop: the gateway's RUST_LOG (`info` logs a line per request, as nginx's access log does).
    #[arg(long, default_value = "info")]
    gateway_log: String,
    /// hop: the gateway's connection workers (its `WORKER_THREADS`; 0 serves on tokio's
    /// work-stealing pool; default: the gateway's, one per core). Only the gateway gets it.
    #[arg(long)]
    gateway_workers: Option<usize>,
    /// hop: command starting LiteLLM on `{port}` in front of `{upstream}` (the mock's /v1 base);
    /// env LOAD_LITELLM_CMD; default: the `scripts/peers` install in --peers-dir.
    #[arg(long)]
    litellm_cmd: Option<String>,
    /// hop: command starting the Portkey gateway on `{port}`; env LOAD_PORTKEY_CMD;
    /// default: the `scripts/peers` install.
    #[arg(long)]
    portkey_cmd: Option<String>,
    /// hop: the `scripts/peers` install directory (env PEERS_DIR; default <repo>/.peers).
    #[arg(long)]
    peers_dir: Option<PathBuf>,
    /// hop: only the targets whose name starts with one of these (mock, nginx, bare, gateway,
    /// litellm, portkey; repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    hop_only: Vec<String>,
    /// concurrency/overload: simultaneous callers per wave; at most 512.
    #[arg(long, default_value_t = 200)]
    callers: usize,
    /// concurrency/overload: the token's max_concurrent and the upstream's max_in_flight;
    /// 1 to 64.
    #[arg(long, default_value_t = 8)]
    cap: u32,
    /// overload: the upstream's queue_wait_ms; at most 2000.
    #[arg(long, default_value_t = 250)]
    queue_wait_ms: u64,
    #[arg(long, hide = true)]
    internal_streams_child: Option<usize>,
}

/// Where each run sends its requests.
#[derive(Debug, Clone)]
struct Targets {
    gw_chat: String,
    gw_token: String,
    model_chat: String,
    model_stream: String,
    direct_chat: Option<String>,
    direct_stream: Option<String>,
    /// In-process only: the limited token, and the Redis replicas (or why there are none).
    limited: Option<String>,
    replicas: Result<Vec<String>, String>,
}

#[derive(Debug, Default)]
struct Report {
    rows: Vec<Row>,
    goals: Vec<Goal>,
    notes: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(n) = cli.internal_streams_child {
        return match rt.block_on(streams::child(n)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("streams child: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn wants(cli: &Cli, s: Scenario) -> bool {
    (s != Scenario::Hop && cli.scenario.contains(&Scenario::All)) || cli.scenario.contains(&s)
}

/// `--scenario hop`: its own table (every target a separate process, wrk as the driver).
async fn hop_scenario(cli: &Cli) -> Result<String, String> {
    let bin_dir = match &cli.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .ok_or("cannot find this binary's directory; pass --bin-dir")?,
    };
    let opts = hop::HopOpts {
        seconds: cli.hop_seconds.clamp(1, 10),
        threads: cli.hop_threads.clamp(1, 8),
        connections: cli.hop_connections.clamp(1, 256),
        bin_dir,
        gateway_log: cli.gateway_log.clone(),
        gateway_workers: cli.gateway_workers.map(|n| n.min(64)),
        litellm_cmd: cli
            .litellm_cmd
            .clone()
            .or_else(|| std::env::var("LOAD_LITELLM_CMD").ok()),
        portkey_cmd: cli
            .portkey_cmd
            .clone()
            .or_else(|| std::env::var("LOAD_PORTKEY_CMD").ok()),
        peers_dir: cli
            .peers_dir
            .clone()
            .or_else(|| std::env::var_os("PEERS_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.peers"))),
        only: cli.hop_only.clone(),
    };
    let (rows, notes) = tokio::task::spawn_blocking(move || hop::run(&opts))
        .await
        .map_err(|e| format!("hop: {e}"))?;
    let notes = notes.iter().map(|n| format!("- {n}\n")).collect::<String>();
    Ok(format!(
        "## The cost of one hop\n\n{}\n{notes}",
        hop::table(&rows)
    ))
}

async fn run(mut cli: Cli) -> Result<(), String> {
    cli.duration = cli.duration.clamp(1, 30);
    cli.users = cli.users.clamp(1, 512);
    cli.stream_users = cli.stream_users.clamp(1, 512);
    cli.rate = cli.rate.clamp(1.0, 20_000.0);
    cli.streams = cli.streams.clamp(1, 10_000);
    cli.callers = cli.callers.clamp(2, 512);
    cli.cap = cli.cap.clamp(1, 64);
    cli.queue_wait_ms = cli.queue_wait_ms.min(2000);
    std::fs::create_dir_all(&cli.out_dir).map_err(|e| format!("{}: {e}", cli.out_dir.display()))?;
    if cli.scenario == [Scenario::Hop] {
        println!("== hop: one process per target, wrk");
        let text = hop_scenario(&cli).await?;
        println!("\n{text}");
        let summary = cli.out_dir.join("hop.md");
        std::fs::write(&summary, &text).map_err(|e| format!("{}: {e}", summary.display()))?;
        println!("this table is also in {}", summary.display());
        return Ok(());
    }
    let mut report = Report::default();
    report.notes.push(format!(
        "machine: {} cores; one process runs goose, gateway and mock (they share the cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));

    // Streams first: its RSS delta is cleanest before the other runs warmed the allocator.
    if wants(&cli, Scenario::Streams) {
        if cli.host.is_some() {
            report.rows.push(Row::skipped(
                "streams",
                "gateway",
                "needs the in-process gateway",
            ));
        } else {
            println!("== streams: {} concurrent streams", cli.streams);
            streams_scenario(&cli, &mut report).await;
        }
    }

    // Local test bed (or the operator's host).
    let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    let targets = if let Some(host) = &cli.host {
        let host = target::check_host(host, cli.i_own_this_host).map_err(|e| e.0)?;
        let direct = match &cli.direct_url {
            Some(u) => Some(target::check_host(u, cli.i_own_this_host).map_err(|e| e.0)?),
            None => None,
        };
        Targets {
            gw_chat: format!("{host}/v1/chat/completions"),
            gw_token: cli.token.clone().ok_or("--host needs --token")?,
            model_chat: cli.model.clone(),
            model_stream: cli.model.clone(),
            direct_chat: direct.clone(),
            direct_stream: direct,
            limited: None,
            replicas: Err("needs the in-process gateway".into()),
        }
    } else {
        let timing = setup::StreamTiming {
            ttft_ms: 5,
            inter_chunk_ms: 5,
            chunks: 8,
        };
        report.notes.push(format!(
            "stream mock: ttft {} ms, {} content chunks {} ms apart (+ role, finish, usage, [DONE])",
            timing.ttft_ms, timing.chunks, timing.inter_chunk_ms
        ));
        let chat_mock = setup::start_mock(None).await.map_err(|e| e.to_string())?;
        let stream_mock = setup::start_mock(Some(timing))
            .await
            .map_err(|e| e.to_string())?;
        let gw = setup::start_gateway(setup::gateway_config(
            &chat_mock.api_base(),
            &stream_mock.api_base(),
            None,
        ))
        .await
        .map_err(|e| e.to_string())?;
        let replicas = if wants(&cli, Scenario::RateLimit) {
            match setup::Redis::start().await {
                Ok(Some(redis)) => {
                    let mut urls = Vec::new();
                    for _ in 0..2 {
                        let r = setup::start_gateway(setup::gateway_config(
                            &chat_mock.api_base(),
                            &stream_mock.api_base(),
                            Some(redis.url()),
                        ))
                        .await
                        .map_err(|e| e.to_string())?;
                        urls.push(format!("{}/v1/chat/completions", r.base_url()));
                        keep.push(Box::new(r));
                    }
                    keep.push(Box::new(redis));
                    Ok(urls)
                }
                Ok(None) => Err("redis-server is not installed".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        } else {
            Err("not requested".into())
        };
        let t = Targets {
            gw_chat: format!("{}/v1/chat/completions", gw.base_url()),
            gw_token: gateway::testing::TOKEN.into(),
            model_chat: "small".into(),
            model_stream: "streamy".into(),
            direct_chat: Some(chat_mock.chat_url()),
            direct_stream: Some(stream_mock.chat_url()),
            limited: Some(setup::LIMITED_TOKEN.into()),
            replicas,
        };
        keep.push(Box::new(gw));
        keep.push(Box::new(chat_mock));
        keep.push(Box::new(stream_mock));
        t
    };

    if wants(&cli, Scenario::Chat) {
        chat_scenario(&cli, &targets, &mut report).await?;
    }
    if wants(&cli, Scenario::Stream) {
        stream_scenario(&cli, &targets, &mut report).await?;
    }
    if wants(&cli, Scenario::RateLimit) {
        rate_limit_scenario(&cli, &targets, &mut report).await?;
    }
    drop(keep);
    let opts = conditions::Opts {
        callers: cli.callers,
        cap: cli.cap,
        queue_wait: Duration::from_millis(cli.queue_wait_ms),
    };
    for (s, which, name) in [
        (
            Scenario::Concurrency,
            conditions::Which::Concurrency,
            "concurrency",
        ),
        (
            Scenario::ConcurrencyRedis,
            conditions::Which::ConcurrencyRedis,
            "concurrency-redis",
        ),
        (Scenario::Overload, conditions::Which::Overload, "overload"),
    ] {
        if !wants(&cli, s) {
            continue;
        }
        if cli.host.is_some() {
            report.rows.push(Row::skipped(
                name,
                "gateway",
                "needs the in-process gateway (it reads the gateway's own slot counts)",
            ));
            continue;
        }
        conditions::run(which, opts, &mut report).await?;
    }
    let hop_text = if wants(&cli, Scenario::Hop) {
        println!("== hop: one process per target, wrk");
        hop_scenario(&cli).await?
    } else {
        String::new()
    };

    let table = Table::new(&report.rows).with(Style::markdown()).to_string();
    let goals = Table::new(&report.goals)
        .with(Style::markdown())
        .to_string();
    let notes = report
        .notes
        .iter()
        .map(|n| format!("- {n}\n"))
        .collect::<String>();
    let text = if cli.scenario == [Scenario::Hop] {
        hop_text
    } else {
        format!(
            "## Load results\n\n{table}\n\n## Targets\n\n{goals}\n\n## Notes\n\n{notes}{hop_text}"
        )
    };
    println!("\n{text}");
    let summary = cli.out_dir.join("summary.md");
    std::fs::write(&summary, &text).map_err(|e| format!("{}: {e}", summary.display()))?;
    println!(
        "goose reports and this summary are in {}",
        cli.out_dir.display()
    );
    Ok(())
}

async fn attack(cli: &Cli, plan: Plan) -> Result<Snapshot, String> {
    println!(
        "-- {}: {} users, {} s{}",
        plan.label,
        plan.users,
        plan.duration.as_secs(),
        plan.pace
            .map_or(String::new(), |r| format!(", paced at {r} req/s"))
    );
    let plan = Arc::new(plan);
    attack::run(plan.clone(), &cli.out_dir)
        .await
        .map_err(|e| format!("{}: goose: {e}", plan.label))?;
    let snap = plan.rec.snapshot();
    if let Some(e) = &snap.first_error {
        println!("   first error ({} errors): {e}", snap.errors);
    }
    // Let connections of this run wind down before the next.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(snap)
}

fn ratio(gw: &Snapshot, direct: &Snapshot) -> String {
    let d = direct.throughput();
    if d > 0.0 {
        format!("{:.2}", gw.throughput() / d)
    } else {
        "-".into()
    }
}

async fn chat_scenario(cli: &Cli, t: &Targets, report: &mut Report) -> Result<(), String> {
    println!("== chat (non-streaming)");
    let dur = Duration::from_secs(cli.duration);
    let body = chat_body(&t.model_chat, false);
    let mk = |label: &str, url: &str, token: Option<String>, users, pace| {
        Plan::new(
            label,
            Kind::Chat,
            vec![url.to_owned()],
            token,
            body.clone(),
            users,
            dur,
            pace,
        )
    };
    let tok = Some(t.gw_token.clone());
    let gw = attack(
        cli,
        mk("chat-gateway", &t.gw_chat, tok.clone(), cli.users, None),
    )
    .await?;
    let mut gw_row = Row::from_snapshot("chat (saturating)", "gateway", &gw, &gw.latency);
    let paced_users = 16.max((cli.rate / 500.0) as usize).min(512);
    let gw_p = attack(
        cli,
        mk(
            "chat-gateway-paced",
            &t.gw_chat,
            tok,
            paced_users,
            Some(cli.rate),
        ),
    )
    .await?;
    let mut gw_p_row = Row::from_snapshot(
        &format!("chat @ {} req/s", cli.rate),
        "gateway",
        &gw_p,
        &gw_p.latency,
    );
    let Some(direct_url) = &t.direct_chat else {
        report.rows.extend([gw_row, gw_p_row]);
        report
            .rows
            .push(Row::skipped("chat", "direct", "no --direct-url"));
        return Ok(());
    };
    let d = attack(cli, mk("chat-direct", direct_url, None, cli.users, None)).await?;
    let d_p = attack(
        cli,
        mk(
            "chat-direct-paced",
            direct_url,
            None,
            paced_users,
            Some(cli.rate),
        ),
    )
    .await?;
    gw_row.ratio = ratio(&gw, &d);
    gw_p_row.ratio = ratio(&gw_p, &d_p);
    let added_p99 = ms(&gw_p.latency, 0.99) - ms(&d_p.latency, 0.99);
    let added_p50 = ms(&gw_p.latency, 0.50) - ms(&d_p.latency, 0.50);
    gw_p_row.detail = format!("added p50 {added_p50:.3} ms, p99 {added_p99:.3} ms");
    let d_row = Row::from_snapshot("chat (saturating)", "direct (mock)", &d, &d.latency);
    let d_p_row = Row::from_snapshot(
        &format!("chat @ {} req/s", cli.rate),
        "direct (mock)",
        &d_p,
        &d_p.latency,
    );
    let r = gw.throughput() / d.throughput().max(1e-9);
    report.goals.push(Goal::new(
        "gateway throughput >= 0.5 x direct-to-mock",
        format!(
            "{:.0} vs {:.0} req/s = {r:.2}x",
            gw.throughput(),
            d.throughput()
        ),
        Some(r >= 0.5),
    ));
    report.goals.push(Goal::new(
        &format!("added p99 latency <= 1 ms at {} req/s", cli.rate),
        format!(
            "{added_p99:.3} ms (gateway p99 {:.3} ms, direct p99 {:.3} ms; achieved {:.0} req/s)",
            ms(&gw_p.latency, 0.99),
            ms(&d_p.latency, 0.99),
            gw_p.throughput()
        ),
        Some(added_p99 <= 1.0),
    ));
    let m = d.throughput() / gw.throughput().max(1e-9);
    report.goals.push(Goal::new(
        "mock serves >= 3 x the gateway's throughput",
        format!("{m:.2}x (same process, same cores as the load generator)"),
        Some(m >= 3.0),
    ));
    report.rows.extend([gw_row, d_row, gw_p_row, d_p_row]);
    Ok(())
}

fn stream_detail(s: &Snapshot) -> String {
    format!(
        "p-cols = TTFT; gaps p50/p99 {:.3}/{:.3} ms; e2e p50/p99 {:.1}/{:.1} ms; {:.0} events/s",
        ms(&s.gaps, 0.5),
        ms(&s.gaps, 0.99),
        ms(&s.latency, 0.5),
        ms(&s.latency, 0.99),
        s.events as f64 / s.window.as_secs_f64().max(1e-9)
    )
}

async fn stream_scenario(cli: &Cli, t: &Targets, report: &mut Report) -> Result<(), String> {
    println!("== stream (SSE)");
    let dur = Duration::from_secs(cli.duration);
    let body = chat_body(&t.model_stream, true);
    let gw = attack(
        cli,
        Plan::new(
            "stream-gateway",
            Kind::Stream,
            vec![t.gw_chat.clone()],
            Some(t.gw_token.clone()),
            body.clone(),
            cli.stream_users,
            dur,
            None,
        ),
    )
    .await?;
    let mut gw_row = Row::from_snapshot("stream", "gateway", &gw, &gw.ttft);
    gw_row.detail = stream_detail(&gw);
    let Some(direct_url) = &t.direct_stream else {
        report.rows.push(gw_row);
        report
            .rows
            .push(Row::skipped("stream", "direct", "no --direct-url"));
        return Ok(());
    };
    let d = attack(
        cli,
        Plan::new(
            "stream-direct",
            Kind::Stream,
            vec![direct_url.clone()],
            None,
            body,
            cli.stream_users,
            dur,
            None,
        ),
    )
    .await?;
    gw_row.ratio = ratio(&gw, &d);
    let mut d_row = Row::from_snapshot("stream", "direct (mock)", &d, &d.ttft);
    d_row.detail = stream_detail(&d);
    let added = ms(&gw.ttft, 0.99) - ms(&d.ttft, 0.99);
    let added_gap = ms(&gw.gaps, 0.99) - ms(&d.gaps, 0.99);
    report.goals.push(Goal::new(
        "added inter-chunk gap p99 (no target)",
        format!(
            "{added_gap:.3} ms (gateway {:.3} ms, direct {:.3} ms)",
            ms(&gw.gaps, 0.99),
            ms(&d.gaps, 0.99)
        ),
        None,
    ));
    report.goals.push(Goal::new(
        "added TTFT <= 1 ms p99",
        format!(
            "{added:.3} ms (gateway {:.3} ms, direct {:.3} ms, {} users)",
            ms(&gw.ttft, 0.99),
            ms(&d.ttft, 0.99),
            cli.stream_users
        ),
        Some(added <= 1.0),
    ));
    report.rows.push(gw_row);
    report.rows.push(d_row);
    Ok(())
}

async fn rate_limit_scenario(cli: &Cli, t: &Targets, report: &mut Report) -> Result<(), String> {
    println!("== rate-limit");
    let Some(limited) = &t.limited else {
        report.rows.push(Row::skipped(
            "rate-limit",
            "gateway",
            "needs the in-process gateway (known limit)",
        ));
        return Ok(());
    };
    let dur = Duration::from_secs(cli.duration.min(6));
    let body = chat_body(&t.model_chat, false);
    let users = 16;
    let lim = setup::LIMITED;
    let mk = |label: &str, urls: Vec<String>, token: Option<String>| {
        Plan::new(
            label,
            Kind::RateLimit,
            urls,
            token,
            body.clone(),
            users,
            dur,
            None,
        )
    };
    let judge = |name: &str, target: &str, s: &Snapshot, report: &mut Report| -> Row {
        let elapsed = s.start_window.as_secs_f64();
        let expected = f64::from(lim.burst) + elapsed * lim.rps;
        let admitted = s.ok as f64;
        let delta = admitted - expected;
        let mut row = Row::from_snapshot(name, target, s, &s.latency);
        row.detail = format!(
            "admitted {} vs burst {} + {elapsed:.2} s x {} /s = {expected:.1} (diff {delta:+.1}); {} x 429, {} without Retry-After",
            s.ok, lim.burst, lim.rps, s.limited, s.limited_without_retry_after
        );
        // One emission interval of slack either way (where the window is cut).
        let within = delta.abs() <= 1.0 + 0.01 * expected;
        report.goals.push(Goal::new(
            &format!("{target}: admitted = burst + elapsed x rate; every 429 has Retry-After"),
            format!(
                "{} admitted vs {expected:.1} expected; {}/{} 429s with Retry-After",
                s.ok,
                s.limited - s.limited_without_retry_after,
                s.limited
            ),
            Some(within && s.limited_without_retry_after == 0 && s.errors == 0),
        ));
        row
    };
    let gw = attack(
        cli,
        mk(
            "ratelimit-gateway",
            vec![t.gw_chat.clone()],
            Some(limited.clone()),
        ),
    )
    .await?;
    let mut gw_row = judge("rate-limit", "gateway (local limiter)", &gw, report);
    let replicas = match &t.replicas {
        Ok(urls) => {
            let s = attack(
                cli,
                mk(
                    "ratelimit-2-replicas-redis",
                    urls.clone(),
                    Some(limited.clone()),
                ),
            )
            .await?;
            Some(s)
        }
        Err(why) => {
            report
                .rows
                .push(Row::skipped("rate-limit", "2 replicas + Redis", why));
            None
        }
    };
    if let Some(direct) = &t.direct_chat {
        let d = attack(cli, mk("ratelimit-direct", vec![direct.clone()], None)).await?;
        gw_row.ratio = ratio(&gw, &d);
        let mut rows = vec![gw_row];
        if let Some(s) = &replicas {
            let mut r = judge("rate-limit", "2 replicas + Redis", s, report);
            r.ratio = ratio(s, &d);
            rows.push(r);
        }
        let mut d_row = Row::from_snapshot("rate-limit", "direct (mock)", &d, &d.latency);
        d_row.detail = "no limiter: every request admitted (baseline for req/s)".into();
        rows.push(d_row);
        report.rows.extend(rows);
    }
    Ok(())
}

async fn streams_scenario(cli: &Cli, report: &mut Report) {
    match streams::parent(cli.streams).await {
        Ok(r) => {
            let delta_mib = r.rss_open_kib.saturating_sub(r.rss_before_kib) as f64 / 1024.0;
            let per_stream_kib =
                r.rss_open_kib.saturating_sub(r.rss_before_kib) as f64 / r.opened.max(1) as f64;
            report.rows.push(Row {
                scenario: format!("{} concurrent streams", r.requested),
                target: "gateway".into(),
                requests: r.requested.to_string(),
                ok: r.opened.to_string(),
                errors: r.failed.to_string(),
                rate: "-".into(),
                p50: format!("{:.3}", r.ttft_p50_us as f64 / 1000.0),
                p95: "-".into(),
                p99: format!("{:.3}", r.ttft_p99_us as f64 / 1000.0),
                ratio: "-".into(),
                detail: format!(
                    "p-cols = TTFT while opening; all open after {:.1} s; process RSS {:.1} -> {:.1} MiB (delta {delta_mib:.1} MiB, {per_stream_kib:.1} KiB/stream), peak {:.1} MiB{}",
                    r.open_ms as f64 / 1000.0,
                    r.rss_before_kib as f64 / 1024.0,
                    r.rss_open_kib as f64 / 1024.0,
                    r.hwm_kib as f64 / 1024.0,
                    if r.first_error.is_empty() { String::new() } else { format!("; first error: {}", r.first_error) }
                ),
            });
            report.goals.push(Goal::new(
                &format!("{} concurrent streams with gateway RSS <= 300 MB", r.requested),
                format!(
                    "{} open; gateway process RSS {:.1} MiB while open (delta {delta_mib:.1} MiB; gateway in-process, mock + clients in a child process)",
                    r.opened,
                    r.rss_open_kib as f64 / 1024.0
                ),
                Some(r.opened == r.requested && r.rss_open_kib as f64 / 1024.0 <= 300.0),
            ));
        }
        Err(e) => report.rows.push(Row::skipped("streams", "gateway", &e)),
    }
}
