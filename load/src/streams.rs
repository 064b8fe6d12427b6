//! `--scenario streams`: N concurrent SSE streams held open through an in-process gateway,
//! and the gateway process's RSS before and while they are open.
//!
//! The gateway runs in this process; the mock upstream and the N clients run in a child
//! process (this binary with `--internal-streams-child`), so the RSS delta is the gateway's
//! (plus this process's runtime), not the clients' or the mock's, and neither process needs
//! more than ~2 file descriptors per stream. Protocol on the child's stdin/stdout, one line
//! each: child `MOCK <api_base>`; parent `GATEWAY <base_url>`; child `OPEN <ok> <failed>
//! <ttft_p50_us> <ttft_p99_us> <open_ms> <first_error>`; parent `STOP`; child `DONE`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::setup::{self, StreamTiming};

/// Every phase is bounded: opening, holding, and the child's whole life.
const OPEN_TIMEOUT: Duration = Duration::from_secs(90);
const CHILD_TIMEOUT: Duration = Duration::from_secs(150);

#[derive(Debug, Clone)]
pub struct StreamsResult {
    pub requested: usize,
    pub opened: usize,
    pub failed: usize,
    pub rss_before_kib: u64,
    pub rss_open_kib: u64,
    pub hwm_kib: u64,
    pub ttft_p50_us: u64,
    pub ttft_p99_us: u64,
    pub open_ms: u64,
    pub first_error: String,
}

fn read_line(r: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => Err("the child closed its output".into()),
        Ok(_) => Ok(line.trim_end().to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// The parent side: gateway in process, child for mock + clients.
pub async fn parent(n: usize) -> Result<StreamsResult, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["--internal-streams-child", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the streams child: {e}"))?;
    let result = drive(&mut child).await.map(|mut r| {
        r.requested = n;
        r
    });
    // Bounded wait for the child, then kill it by its pid if it is still there.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
    result
}

async fn drive(child: &mut std::process::Child) -> Result<StreamsResult, String> {
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, mut lines) = mpsc::unbounded_channel::<Result<String, String>>();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        loop {
            let l = read_line(&mut r);
            let end = l.is_err();
            if tx.send(l).is_err() || end {
                break;
            }
        }
    });
    let mock_line = next(&mut lines).await?;
    let api = mock_line
        .strip_prefix("MOCK ")
        .ok_or_else(|| format!("unexpected line from the child: {mock_line}"))?
        .to_owned();
    let gw = setup::start_gateway(setup::gateway_config(&api, &api, None))
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before_kib = setup::rss_kib("VmRSS").unwrap_or(0);
    writeln!(stdin, "GATEWAY {}", gw.base_url()).map_err(|e| e.to_string())?;
    let open_line = next(&mut lines).await?;
    let f: Vec<&str> = open_line.splitn(7, ' ').collect();
    if f.first() != Some(&"OPEN") || f.len() < 6 {
        return Err(format!("unexpected line from the child: {open_line}"));
    }
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // All streams are open and flowing: sample RSS for a second, keep the highest.
    let mut rss_open_kib = 0;
    for _ in 0..10 {
        rss_open_kib = rss_open_kib.max(setup::rss_kib("VmRSS").unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hwm_kib = setup::rss_kib("VmHWM").unwrap_or(0);
    writeln!(stdin, "STOP").map_err(|e| e.to_string())?;
    let _ = next(&mut lines).await;
    gw.shutdown().await;
    Ok(StreamsResult {
        requested: 0,
        opened: num(1) as usize,
        failed: num(2) as usize,
        rss_before_kib,
        rss_open_kib,
        hwm_kib,
        ttft_p50_us: num(3),
        ttft_p99_us: num(4),
        open_ms: num(5),
        first_error: f.get(6).map_or(String::new(), |s| (*s).to_owned()),
    })
}

async fn next(
    lines: &mut mpsc::UnboundedReceiver<Result<String, String>>,
) -> Result<String, String> {
    match tokio::time::timeout(CHILD_TIMEOUT, lines.recv()).await {
        Ok(Some(l)) => l,
        Ok(None) => Err("the child went away".into()),
        Err(_) => Err("the child did not answer in time".into()),
    }
}

/// The child side: the mock, then N clients through the gateway the parent names.
pub async fn child(n: usize) -> Result<(), String> {
    // 240 chunks 500 ms apart: a stream outlives any bounded run; STOP ends it earlier.
    let timing = StreamTiming {
        ttft_ms: 0,
        inter_chunk_ms: 500,
        chunks: 240,
    };
    let mock = setup::start_mock(Some(timing))
        .await
        .map_err(|e| e.to_string())?;
    println!("MOCK {}", mock.api_base());
    let (tx, mut lines) = mpsc::unbounded_channel::<Result<String, String>>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut r = stdin.lock();
        loop {
            let l = read_line(&mut r);
            let end = l.is_err();
            if tx.send(l).is_err() || end {
                break;
            }
        }
    });
    let gw_line = tokio::time::timeout(CHILD_TIMEOUT, lines.recv())
        .await
        .map_err(|_| "no GATEWAY line in time")?
        .ok_or("stdin closed")??;
    let gw = gw_line
        .strip_prefix("GATEWAY ")
        .ok_or("expected GATEWAY <url>")?
        .to_owned();
    let url = format!("{gw}/v1/chat/completions");
    let body = bytes::Bytes::from(crate::attack::chat_body("streamy", true));
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    // Opening is ramped (at most 256 handshakes in flight) so the listen backlog holds.
    let ramp = Arc::new(Semaphore::new(256));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (open_tx, mut open_rx) = mpsc::unbounded_channel::<Result<Duration, String>>();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, url, body, ramp, open_tx, mut stop_rx) = (
            client.clone(),
            url.clone(),
            body.clone(),
            ramp.clone(),
            open_tx.clone(),
            stop_rx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let permit = ramp.acquire_owned().await;
            let t0 = Instant::now();
            let resp = client
                .post(&url)
                .bearer_auth(gateway::testing::TOKEN)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let mut stream = match resp {
                Ok(r) if r.status().is_success() => r.bytes_stream(),
                Ok(r) => {
                    let _ = open_tx.send(Err(format!("status {}", r.status())));
                    return;
                }
                Err(e) => {
                    let _ = open_tx.send(Err(format!("send: {e}")));
                    return;
                }
            };
            match stream.next().await {
                Some(Ok(_)) => {
                    let _ = open_tx.send(Ok(t0.elapsed()));
                }
                other => {
                    let _ = open_tx.send(Err(format!("no first chunk: {other:?}")));
                    return;
                }
            }
            drop(permit);
            loop {
                tokio::select! {
                    _ = stop_rx.changed() => return,
                    c = stream.next() => if !matches!(c, Some(Ok(_))) { return },
                }
            }
        }));
    }
    drop(open_tx);
    let ttft = crate::stats::Recorder::default();
    let (mut ok, mut failed, mut first_error) = (0usize, 0usize, String::new());
    let deadline = tokio::time::Instant::now() + OPEN_TIMEOUT;
    while ok + failed < n {
        match tokio::time::timeout_at(deadline, open_rx.recv()).await {
            Ok(Some(Ok(t))) => {
                ok += 1;
                ttft.stream_ok(t, &[], 1, t);
            }
            Ok(Some(Err(e))) => {
                failed += 1;
                if first_error.is_empty() {
                    first_error = e;
                }
            }
            Ok(None) => break,
            Err(_) => {
                failed += n - ok - failed;
                first_error = format!("{first_error} (open phase timed out)");
                break;
            }
        }
    }
    let snap = ttft.snapshot();
    println!(
        "OPEN {ok} {failed} {} {} {} {}",
        snap.ttft.value_at_quantile(0.5),
        snap.ttft.value_at_quantile(0.99),
        started.elapsed().as_millis(),
        first_error.replace('\n', " ")
    );
    let _ = tokio::time::timeout(CHILD_TIMEOUT, lines.recv()).await;
    let _ = stop_tx.send(true);
    for t in tasks {
        t.abort();
    }
    drop(mock);
    println!("DONE");
    Ok(())
}
