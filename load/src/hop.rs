//! `--scenario hop`: the cost of one hop. Every target runs as its own process in front of one
//! `mocks` process, wrk drives it, and the CPU time of the target and of the mock comes from
//! /proc (utime + stime of every process in the target's process group) over the measured
//! window, so the figure that matters (CPU µs per request) does not depend on the load
//! generator. Rows: the mock direct, nginx as a pure keepalive reverse proxy (when installed),
//! the reference gateway, and LiteLLM / Portkey when installed (commands from flags, env or
//! the `scripts/peers` install directory).
//!
//! Everything listens on 127.0.0.1 with ports the kernel picks; every child runs under
//! `timeout`, in its own process group, and is sent SIGTERM when its row is done.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the hop scenario needs from the command line.
#[derive(Debug, Clone)]
pub struct HopOpts {
    /// Seconds of each measured wrk run (after a 1 s warm-up).
    pub seconds: u64,
    pub threads: usize,
    pub connections: usize,
    pub bin_dir: PathBuf,
    /// Gateway `RUST_LOG` (the default `info` writes one line per request, like nginx's
    /// access log, which stays on).
    pub gateway_log: String,
    /// The gateway's `WORKER_THREADS` (connection workers; 0: tokio's work-stealing pool;
    /// None: the gateway's default, one per core).
    pub gateway_workers: Option<usize>,
    pub litellm_cmd: Option<String>,
    pub portkey_cmd: Option<String>,
    pub peers_dir: PathBuf,
    /// Only these targets (empty = all).
    pub only: Vec<String>,
}

/// One measured row.
#[derive(Debug, Clone)]
pub struct HopRow {
    pub target: String,
    pub mode: &'static str,
    pub result: Result<Measured, String>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub requests: u64,
    pub bad: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU µs per request of the target's processes (None for the mock itself).
    pub target_us: Option<f64>,
    /// CPU µs per request of the mock.
    pub mock_us: f64,
}

const CHILD_TTL_S: u64 = 600;
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A child under `timeout`, leader of its own process group (the group is what is measured).
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(
        name: &str,
        mut argv: Vec<String>,
        env: &[(String, String)],
        dir: &Path,
    ) -> Result<Proc, String> {
        use std::os::unix::process::CommandExt;
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut full = vec!["--kill-after=5".to_owned(), CHILD_TTL_S.to_string()];
        full.append(&mut argv);
        let child = Command::new("timeout")
            .args(&full)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log,
        })
    }

    fn pgid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for a line of the child's output containing `marker`, returns the text after it.
    fn wait_line(&mut self, marker: &str) -> Result<String, String> {
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains(marker)) {
                if let Some((_, rest)) = line.split_once(marker) {
                    return Ok(rest.trim().to_owned());
                }
            }
            if !self.alive() {
                return Err(format!("{} exited: {}", self.name, self.tail()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "{} printed no `{marker}` within {READY_TIMEOUT:?}",
            self.name
        ))
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(3).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// CPU ticks of every process of the group.
    fn ticks(&self) -> u64 {
        group_ticks(self.pgid())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM to `timeout`, which passes it on to its command (and, not being in
        // --foreground mode, to the command's whole group); SIGKILL if it is still there.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(8) {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime (+ the reaped children's cutime + cstime) of every process whose process
/// group is `pgid`, from /proc/<pid>/stat.
pub fn group_ticks(pgid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut sum = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{name}/stat")) else {
            continue;
        };
        if let Some((group, ticks)) = parse_stat(&stat) {
            if group == pgid {
                sum += ticks;
            }
        }
    }
    sum
}

/// (pgrp, utime + stime + cutime + cstime) of one /proc/<pid>/stat line. The command name
/// may hold spaces and parentheses, so fields are counted after the last `)`.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) pgrp(5) ... utime(14) stime(15) cutime(16) cstime(17).
    let pgrp = f.get(2)?.parse().ok()?;
    let mut ticks = 0u64;
    for i in 11..=14 {
        ticks += f.get(i)?.parse::<i64>().ok()?.max(0) as u64;
    }
    Some((pgrp, ticks))
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A request the target must answer 200 before it is measured.
fn probe(addr: SocketAddr, req: &Request) -> Result<(), String> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < READY_TIMEOUT {
        match probe_once(addr, req) {
            Ok(200) => return Ok(()),
            Ok(s) => last = format!("status {s}"),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{addr}{} never answered 200 ({last})", req.path))
}

fn probe_once(addr: SocketAddr, req: &Request) -> Result<u16, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        req.path,
        req.body.len()
    );
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(req.body.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(&mut s)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    let _ = s.take(1 << 20).read_to_end(&mut rest);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line: {line:?}"))
}

/// What wrk sends to a target.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// The request of every row. A streamed one asks for the usage report
/// (`stream_options.include_usage`): the gateway always asks its upstream for it (budgets are
/// charged from it, `upstream::sse::request_usage`), so without it the nginx and direct rows
/// would ask the mock for one event less and every proxy would relay a different answer.
fn body(model: &str, stream: bool) -> String {
    let mut v = crate::attack::chat_value(model, stream);
    if stream {
        v["stream_options"] = serde_json::json!({ "include_usage": true });
    }
    v.to_string()
}

fn lua_string(s: &str) -> String {
    // A Lua long string cannot hold its own closing bracket; the bodies here never contain
    // `]==]`.
    format!("[==[{s}]==]")
}

/// Runs wrk once; returns (requests, non-2xx + socket errors, req/s, p50 ms, p99 ms).
fn wrk(
    opts: &HopOpts,
    dir: &Path,
    addr: SocketAddr,
    req: &Request,
    seconds: u64,
) -> Result<(u64, u64, f64, f64, f64, f64), String> {
    let script = dir.join("req.lua");
    let mut lua = String::from("wrk.method = \"POST\"\n");
    lua.push_str(&format!("wrk.body = {}\n", lua_string(&req.body)));
    lua.push_str("wrk.headers[\"Content-Type\"] = \"application/json\"\n");
    for (k, v) in &req.headers {
        lua.push_str(&format!(
            "wrk.headers[ {} ] = {}\n",
            lua_string(k),
            lua_string(v)
        ));
    }
    std::fs::write(&script, lua).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let out = Command::new("timeout")
        .arg((seconds + 30).to_string())
        .arg("wrk")
        .args([
            format!("-t{}", opts.threads),
            format!("-c{}", opts.connections),
            format!("-d{seconds}s"),
            "--timeout".into(),
            "10s".into(),
            "--latency".into(),
            "-s".into(),
        ])
        .arg(&script)
        .arg(format!("http://{addr}{}", req.path))
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let window = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {} {}",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let w = parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output: {text}"))?;
    Ok((w.requests, w.bad, w.rps, w.p50_ms, w.p99_ms, window))
}

#[derive(Debug, Default, PartialEq)]
struct WrkOut {
    requests: u64,
    bad: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn parse_duration_ms(s: &str) -> Option<f64> {
    let i = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(i);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

fn parse_wrk(text: &str) -> Option<WrkOut> {
    let mut w = WrkOut::default();
    let mut seen = false;
    for line in text.lines() {
        let t = line.trim();
        let f: Vec<&str> = t.split_whitespace().collect();
        match f.as_slice() {
            ["50%", v] => w.p50_ms = parse_duration_ms(v)?,
            ["99%", v] => w.p99_ms = parse_duration_ms(v)?,
            [n, "requests", "in", ..] => {
                w.requests = n.parse().ok()?;
                seen = true;
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => w.bad += n.parse::<u64>().ok()?,
            ["Requests/sec:", v] => w.rps = v.parse().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                for v in rest {
                    if let Ok(n) = v.trim_end_matches(',').parse::<u64>() {
                        w.bad += n;
                    }
                }
            }
            _ => {}
        }
    }
    seen.then_some(w)
}

/// Warm-up (1 s), then the measured run with the CPU of the target and the mock read around it.
fn measure(
    opts: &HopOpts,
    dir: &Path,
    addr: SocketAddr,
    req: &Request,
    target: Option<&Proc>,
    mock: &Proc,
) -> Result<Measured, String> {
    let tck = clk_tck();
    wrk(opts, dir, addr, req, 1)?;
    let t0 = target.map(Proc::ticks);
    let m0 = mock.ticks();
    let (requests, bad, rps, p50, p99, _window) = wrk(opts, dir, addr, req, opts.seconds)?;
    let t1 = target.map(Proc::ticks);
    let m1 = mock.ticks();
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / tck * 1e6 / requests.max(1) as f64;
    Ok(Measured {
        requests,
        bad,
        rps,
        p50_ms: p50,
        p99_ms: p99,
        target_us: t0.zip(t1).map(|(a, b)| per(a, b)),
        mock_us: per(m0, m1),
    })
}

fn wants(opts: &HopOpts, name: &str) -> bool {
    opts.only.is_empty() || opts.only.iter().any(|o| name.starts_with(o.as_str()))
}

fn on_path(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// nginx as a pure keepalive reverse proxy; `pace` (requests per second) puts a `limit_req`
/// queue in front (`burst` far above the connection count, so requests wait, none is refused).
fn nginx_conf(dir: &Path, port: u16, mock: SocketAddr, pace: Option<u64>) -> String {
    let d = dir.display();
    // limit_req skips requests whose key is empty: the client address is never empty here.
    let (zone, limit) = pace.map_or((String::new(), String::new()), |r| {
        (
            format!(
                "  limit_req_zone $binary_remote_addr zone=pace:1m rate={}r/s;\n",
                r.max(1)
            ),
            "      limit_req zone=pace burst=1000000;\n".to_owned(),
        )
    });
    format!(
        "daemon off;\nmaster_process on;\nworker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log {d}/nginx-access.log;\n  client_body_temp_path {d}/nginx-body;\n  proxy_temp_path {d}/nginx-proxy;\n  fastcgi_temp_path {d}/nginx-fcgi;\n  uwsgi_temp_path {d}/nginx-uwsgi;\n  scgi_temp_path {d}/nginx-scgi;\n\
         {zone}\
         \x20 upstream mock {{ server {mock}; keepalive 64; }}\n\
         \x20 server {{\n    listen 127.0.0.1:{port};\n    location / {{\n{limit}      proxy_pass http://mock;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n    }}\n  }}\n}}\n"
    )
}

fn nginx_version() -> String {
    Command::new("nginx")
        .arg("-v")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .replace("nginx version: ", "")
        })
        .unwrap_or_default()
}

/// Starts nginx in `dir` (its own pid file, logs and temp paths) and waits until it proxies.
fn start_nginx(
    dir: &Path,
    mock: SocketAddr,
    pace: Option<u64>,
    probe_req: &Request,
) -> Result<(Proc, SocketAddr), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let port = free_port()?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir, port, mock, pace)).map_err(|e| e.to_string())?;
    let p = Proc::spawn(
        "nginx",
        vec![
            "nginx".into(),
            "-p".into(),
            dir.display().to_string(),
            "-e".into(),
            dir.join("nginx-error.log").display().to_string(),
            "-c".into(),
            conf.display().to_string(),
        ],
        &[],
        dir,
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    probe(addr, probe_req)?;
    Ok((p, addr))
}

fn gateway_files(dir: &Path, mock_api: &str) -> Result<(PathBuf, PathBuf), String> {
    let cfg = dir.join("gateway.yaml");
    let tokens = dir.join("tokens.yaml");
    std::fs::write(
        &cfg,
        format!(
            "upstreams:\n  - name: mock\n    kind: vllm\n    base_url: {mock_api}\n\
             models:\n  - alias: small\n    upstream: mock\n    upstream_model: upstream-small\n    constraints: {{ min_max_tokens: 16, max_output_tokens: 4096, context_window: 8192, accepts_image_url: false }}\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        &tokens,
        format!(
            "tenants:\n  - id: load\n    tokens:\n      - sha256: {}\n    allowed_models: [\"*\"]\n    rate_limit: {{ rps: 1000000, burst: 1000000 }}\n",
            gateway::config::sha256(TOKEN).iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok((cfg, tokens))
}

const TOKEN: &str = "tok-hop";

/// The label of the stack-floor rows (`bare-proxy`: tokio + hyper + hyper-util, nothing else).
const BARE: &str =
    "bare hyper proxy (tokio + hyper + hyper-util, the gateway's worker shape, no checks, no log)";

/// The label of the nginx rows paced to the gateway's rate (the table's `find("nginx", …)`
/// skips them: they are no baseline for the plain ratios).
const PACED: &str = "nginx paced to the gateway's rate";

fn addr_of(url: &str) -> Result<SocketAddr, String> {
    let host = url
        .trim()
        .strip_prefix("http://")
        .unwrap_or(url)
        .split(['/', ' '])
        .next()
        .unwrap_or_default();
    host.parse().map_err(|e| format!("`{host}`: {e}"))
}

/// Runs every row; each row's processes are stopped before the next starts (the mock stays).
pub fn run(opts: &HopOpts) -> (Vec<HopRow>, Vec<String>) {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let dir = std::env::temp_dir().join(format!("load-hop-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        rows.push(skip("all", "plain", format!("{}: {e}", dir.display())));
        return (rows, notes);
    }
    let result = run_in(opts, &dir, &mut rows, &mut notes);
    if let Err(e) = result {
        rows.push(skip("all", "plain", e));
    }
    let _ = std::fs::remove_dir_all(&dir);
    (rows, notes)
}

fn skip(target: &str, mode: &'static str, why: String) -> HopRow {
    HopRow {
        target: target.to_owned(),
        mode,
        result: Err(why),
    }
}

fn run_in(
    opts: &HopOpts,
    dir: &Path,
    rows: &mut Vec<HopRow>,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    if !on_path("wrk") {
        return Err("wrk is not installed (apt-get install -y wrk)".into());
    }
    let mocks_bin = opts.bin_dir.join("mocks");
    let gateway_bin = opts.bin_dir.join("gateway");
    for b in [&mocks_bin, &gateway_bin] {
        if !b.exists() {
            return Err(format!(
                "{} is missing: cargo build --release -p gateway -p mocks -p load",
                b.display()
            ));
        }
    }
    notes.push(format!(
        "driver: wrk -t{} -c{} -d{}s (+1 s warm-up) per row, on loopback; CPU from /proc/<pid>/stat (utime+stime of the target's process group, {} ticks/s) over wrk's run; other builds may have been running on this shared 2-core box",
        opts.threads, opts.connections, opts.seconds, clk_tck()
    ));
    let mut mock = Proc::spawn(
        "mocks",
        vec![
            mocks_bin.display().to_string(),
            "--bind".into(),
            "127.0.0.1:0".into(),
        ],
        &[("RUST_LOG".into(), "warn".into())],
        dir,
    )?;
    let mock_addr = addr_of(&mock.wait_line("listening on")?)?;
    let mock_api = format!("http://{mock_addr}/v1");
    let chat = "/v1/chat/completions";
    let plain_direct = Request {
        path: chat.into(),
        headers: vec![],
        body: body("upstream-small", false),
    };
    probe(mock_addr, &plain_direct)?;

    let modes: [(&'static str, bool); 2] = [("plain", false), ("streamed", true)];
    // Both modes of one target: `base` with its model's plain and streamed bodies.
    let both = |say: &str, target: &str, addr, base: &Request, model: &str, p: Option<&Proc>| {
        modes.map(|(mode, stream)| {
            let req = Request {
                body: body(model, stream),
                ..base.clone()
            };
            println!("-- hop: {say}, {mode}");
            HopRow {
                target: target.to_owned(),
                mode,
                result: measure(opts, dir, addr, &req, p, &mock),
            }
        })
    };

    // mock, direct
    if wants(opts, "mock") {
        rows.extend(both(
            "mock direct",
            "mock, direct",
            mock_addr,
            &plain_direct,
            "upstream-small",
            None,
        ));
    }

    // nginx
    if wants(opts, "nginx") {
        if on_path("nginx") {
            let label = format!("{} (keepalive upstream)", nginx_version());
            match start_nginx(dir, mock_addr, None, &plain_direct) {
                Ok((p, addr)) => rows.extend(both(
                    "nginx",
                    &label,
                    addr,
                    &plain_direct,
                    "upstream-small",
                    Some(&p),
                )),
                Err(e) => rows.push(skip("nginx", "plain", e)),
            }
        } else {
            rows.push(skip(
                "nginx",
                "plain",
                "nginx is not installed (apt-get install -y nginx)".into(),
            ));
        }
    }

    // the stack's floor: hyper + hyper-util on the gateway's worker shape, no work between
    if wants(opts, "bare") {
        let bin = opts.bin_dir.join("bare-proxy");
        let started = Proc::spawn(
            "bare-proxy",
            vec![
                bin.display().to_string(),
                "--bind".into(),
                "127.0.0.1:0".into(),
                "--upstream".into(),
                format!("http://{mock_addr}"),
            ],
            &[],
            dir,
        )
        .and_then(|mut p| {
            let a = addr_of(&p.wait_line("listening on")?)?;
            probe(a, &plain_direct).map(|()| (p, a))
        });
        match started {
            Ok((p, addr)) => rows.extend(both(
                "bare proxy",
                BARE,
                addr,
                &plain_direct,
                "upstream-small",
                Some(&p),
            )),
            Err(e) => rows.push(skip(BARE, "plain", e)),
        }
    }

    // the reference gateway
    if wants(opts, "gateway") {
        let (cfg, tokens) = gateway_files(dir, &mock_api)?;
        let mut env = vec![
            ("GATEWAY_CONFIG".to_owned(), cfg.display().to_string()),
            ("TOKENS_FILE".to_owned(), tokens.display().to_string()),
            ("BIND_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "SQLITE_PATH".to_owned(),
                dir.join("gw.sqlite3").display().to_string(),
            ),
            ("HTTP_TOTAL_TIMEOUT_SECS".to_owned(), "60".to_owned()),
            ("RUST_LOG".to_owned(), opts.gateway_log.clone()),
        ];
        if let Some(n) = opts.gateway_workers {
            env.push(("WORKER_THREADS".to_owned(), n.to_string()));
        }
        let workers = opts.gateway_workers.map_or(String::new(), |n| match n {
            0 => ", tokio's pool".to_owned(),
            n => format!(", {n} connection worker(s)"),
        });
        let started = Proc::spawn(
            "gateway",
            vec![gateway_bin.display().to_string()],
            &env,
            dir,
        )
        .and_then(|mut p| {
            let a = addr_of(&p.wait_line("gateway listening on")?)?;
            Ok((p, a))
        });
        let headers = vec![("Authorization".to_owned(), format!("Bearer {TOKEN}"))];
        let plain = Request {
            path: chat.into(),
            headers,
            body: body("small", false),
        };
        match started.and_then(|(p, a)| probe(a, &plain).map(|()| (p, a))) {
            Ok((p, addr)) => rows.extend(both(
                "gateway",
                &format!(
                    "reference gateway (release, RUST_LOG={}{workers})",
                    opts.gateway_log
                ),
                addr,
                &plain,
                "small",
                Some(&p),
            )),
            Err(e) => rows.push(skip("gateway", "plain", e)),
        }
    }

    // nginx paced to the gateway's measured rate: the mock's CPU per request depends on the
    // rate it serves (at a lower rate each wake-up handles fewer requests), so the fair
    // comparison of what the gateway's upstream requests cost the mock is at equal rates.
    if wants(opts, "nginx") && wants(opts, "gateway") && on_path("nginx") {
        for (mode, stream) in modes {
            let Some(rate) = rows
                .iter()
                .find(|r| r.target.starts_with("reference gateway") && r.mode == mode)
                .and_then(|r| r.result.as_ref().ok())
                .filter(|m| m.bad == 0 && m.rps >= 1.0)
                .map(|m| m.rps.round() as u64)
            else {
                continue;
            };
            let req = Request {
                body: body("upstream-small", stream),
                ..plain_direct.clone()
            };
            println!("-- hop: nginx paced to {rate} req/s, {mode}");
            let result = start_nginx(&dir.join("paced"), mock_addr, Some(rate), &plain_direct)
                .and_then(|(p, addr)| measure(opts, dir, addr, &req, Some(&p), &mock));
            rows.push(HopRow {
                target: format!("{PACED} ({rate} req/s, limit_req)"),
                mode,
                result,
            });
        }
    }

    // peers
    for peer in peers(opts, dir, &mock_api) {
        if !wants(opts, peer.name) {
            continue;
        }
        let Some(cmd) = peer.cmd else {
            rows.push(skip(peer.name, "plain", peer.why));
            continue;
        };
        let port = free_port()?;
        let cmd = cmd
            .replace("{port}", &port.to_string())
            .replace("{upstream}", &mock_api);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let plain = Request {
            path: chat.into(),
            headers: peer
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.replace("{upstream}", &mock_api)))
                .collect(),
            body: body(peer.model, false),
        };
        println!("-- hop: starting {}: {cmd}", peer.name);
        let started = Proc::spawn(
            peer.name,
            vec!["sh".into(), "-c".into(), format!("exec {cmd}")],
            &[],
            dir,
        )
        .and_then(|p| match probe(addr, &plain) {
            Ok(()) => Ok(p),
            Err(e) => Err(format!("{e}; its log: {}", p.tail())),
        });
        match started {
            Ok(p) => {
                for (mode, stream) in modes {
                    let req = Request {
                        body: body(peer.model, stream),
                        ..plain.clone()
                    };
                    println!("-- hop: {}, {mode}", peer.name);
                    // A peer that refuses one mode says so in the notes, not only as a count
                    // of bad answers (Portkey's streams were all 500 once: see scripts/peers).
                    match probe_once(addr, &req) {
                        Ok(200) => {}
                        Ok(s) => notes.push(format!(
                            "{} {mode}: a single request answered status {s} before the run (see its log)",
                            peer.name
                        )),
                        Err(e) => notes.push(format!("{} {mode}: probe failed: {e}", peer.name)),
                    }
                    rows.push(HopRow {
                        target: peer.label.clone(),
                        mode,
                        result: measure(opts, dir, addr, &req, Some(&p), &mock),
                    });
                }
            }
            Err(e) => rows.push(skip(peer.name, "plain", e)),
        }
    }
    drop(mock);
    Ok(())
}

struct Peer {
    name: &'static str,
    label: String,
    cmd: Option<String>,
    why: String,
    model: &'static str,
    headers: Vec<(String, String)>,
}

/// The master key of the hop run's LiteLLM: 1.106.2 refuses to start without one
/// (`UnsafeMasterKeyError` in `proxy/auth/master_key_boot_check.py`: each worker dies at start
/// and the uvicorn parent stops), so a key-less config gave no LiteLLM row at all.
const LITELLM_HOP_KEY: &str = "sk-litellm-hop";

/// LiteLLM and Portkey: the command from the flag/env, else from the `scripts/peers` install
/// directory, else a skip reason.
fn peers(opts: &HopOpts, dir: &Path, mock_api: &str) -> Vec<Peer> {
    let venv = opts.peers_dir.join("litellm-venv/bin/litellm");
    let litellm_cfg = dir.join("litellm.yaml");
    let litellm_default = venv.exists().then(|| {
        let _ = std::fs::write(
            &litellm_cfg,
            format!(
                "model_list:\n  - model_name: small\n    litellm_params:\n      model: openai/upstream-small\n      api_base: {mock_api}\n      api_key: sk-mock\ngeneral_settings:\n  master_key: {LITELLM_HOP_KEY}\n"
            ),
        );
        format!(
            "env LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False {} --config {} --host 127.0.0.1 --port {{port}} --num_workers 2",
            venv.display(),
            litellm_cfg.display()
        )
    });
    let portkey_js = opts
        .peers_dir
        .join("portkey/node_modules/@portkey-ai/gateway/build/start-server.js");
    let portkey_default = (portkey_js.exists() && on_path("node"))
        .then(|| format!("node {} --port={{port}} --headless", portkey_js.display()));
    let why = |n: &str, flag: &str| {
        format!(
            "not installed: no {flag} / LOAD_{}_CMD and nothing in {} (scripts/peers install)",
            n.to_ascii_uppercase(),
            opts.peers_dir.display()
        )
    };
    vec![
        Peer {
            name: "litellm",
            label: "LiteLLM proxy 1.106.2 (2 workers)".into(),
            cmd: opts.litellm_cmd.clone().or(litellm_default),
            why: why("litellm", "--litellm-cmd"),
            model: "small",
            headers: vec![("Authorization".into(), format!("Bearer {LITELLM_HOP_KEY}"))],
        },
        Peer {
            name: "portkey",
            label: "Portkey gateway 1.15.2 (Node)".into(),
            cmd: opts.portkey_cmd.clone().or(portkey_default),
            why: why("portkey", "--portkey-cmd"),
            model: "upstream-small",
            headers: vec![
                ("x-portkey-provider".into(), "openai".into()),
                ("x-portkey-custom-host".into(), "{upstream}".into()),
                ("Authorization".into(), "Bearer sk-mock".into()),
            ],
        },
    ]
}

/// The table, plus the ratios the targets are judged on.
pub fn table(rows: &[HopRow]) -> String {
    let mut out = String::from(
        "| target | mode | req/s | p50 | p99 | CPU µs per request | mock CPU µs per request | requests (bad) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        match &r.result {
            Ok(m) => out.push_str(&format!(
                "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.1} | {} ({}) |\n",
                r.target,
                r.mode,
                m.rps,
                m.p50_ms,
                m.p99_ms,
                m.target_us.map_or("-".into(), |u| format!("{u:.1}")),
                m.mock_us,
                m.requests,
                m.bad
            )),
            Err(why) => out.push_str(&format!(
                "| {} | {} | skipped: {} | | | | | |\n",
                r.target, r.mode, why
            )),
        }
    }
    // A row with failed requests is no baseline for a ratio.
    let find = |t: &str, mode: &str| {
        rows.iter()
            .find(|r| {
                r.target.starts_with(t)
                    && (t == PACED || !r.target.starts_with(PACED))
                    && r.mode == mode
            })
            .and_then(|r| r.result.as_ref().ok())
            .filter(|m| m.bad == 0 && m.requests > 0)
            .copied()
    };
    out.push('\n');
    for (mode, limit) in [("plain", 1.5), ("streamed", 2.0)] {
        if let (Some(g), Some(n)) = (find("reference gateway", mode), find("nginx", mode)) {
            if let (Some(gu), Some(nu)) = (g.target_us, n.target_us) {
                let r = gu / nu.max(1e-9);
                out.push_str(&format!(
                    "- {mode}: gateway CPU per request = {r:.2} × nginx's (target ≤ {limit}): {}\n",
                    if r <= limit { "met" } else { "missed" }
                ));
            }
            if let (Some(b), Some(gu), Some(nu)) = (
                find(BARE, mode).and_then(|b| b.target_us),
                g.target_us,
                n.target_us,
            ) {
                // Streamed, the bare proxy writes each upstream frame on its own (hyper's
                // `Incoming` relayed as it comes), where the gateway coalesces the events
                // already there into one write: no floor, only a naive relay to compare.
                out.push_str(&if mode == "plain" {
                    format!(
                        "- {mode}: the stack's floor (bare hyper proxy) = {:.2} × nginx's; the gateway = {:.2} × that floor ({:.1} µs of its {gu:.1} are its own work)\n",
                        b / nu.max(1e-9),
                        gu / b.max(1e-9),
                        gu - b
                    )
                } else {
                    format!(
                        "- {mode}: the bare hyper proxy (one write per upstream frame, no coalescing: no floor here) = {:.2} × nginx's; the gateway = {:.2} × it\n",
                        b / nu.max(1e-9),
                        gu / b.max(1e-9)
                    )
                });
            }
            let m = g.mock_us / n.mock_us.max(1e-9);
            out.push_str(&format!(
                "- {mode}: mock CPU per request behind the gateway = {m:.2} × behind nginx (target ≤ 1.2): {}\n",
                if m <= 1.2 { "met" } else { "missed" }
            ));
            if let Some(p) = find(PACED, mode) {
                let m = g.mock_us / p.mock_us.max(1e-9);
                out.push_str(&format!(
                    "- {mode}: at equal rates (nginx paced to the gateway's req/s): mock CPU per request behind the gateway = {m:.2} × behind nginx (target ≤ 1.2): {}\n",
                    if m <= 1.2 { "met" } else { "missed" }
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_name() {
        let line =
            "4242 (tokio (rt) x) S 1 4200 4200 0 -1 4194560 100 0 0 0 250 75 3 2 20 0 4 0 1 1 1";
        assert_eq!(parse_stat(line), Some((4200, 250 + 75 + 3 + 2)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn every_streamed_row_asks_for_the_usage_report() {
        let v: serde_json::Value = serde_json::from_str(&body("m", true)).unwrap();
        assert_eq!(v["stream"], true);
        assert_eq!(v["stream_options"]["include_usage"], true);
        let v: serde_json::Value = serde_json::from_str(&body("m", false)).unwrap();
        assert!(v.get("stream_options").is_none());
    }

    #[test]
    fn paced_nginx_queues_and_the_table_compares_at_equal_rates() {
        let mock = SocketAddr::from(([127, 0, 0, 1], 9));
        let plain = nginx_conf(Path::new("/d"), 1, mock, None);
        assert!(!plain.contains("limit_req"));
        let paced = nginx_conf(Path::new("/d"), 1, mock, Some(30_000));
        assert!(paced.contains("limit_req_zone $binary_remote_addr zone=pace:1m rate=30000r/s;"));
        assert!(paced.contains("limit_req zone=pace burst=1000000;"));
        let m = |target_us, mock_us| Measured {
            requests: 100,
            rps: 1000.0,
            target_us: Some(target_us),
            mock_us,
            ..Measured::default()
        };
        let row = |target: &str, result| HopRow {
            target: target.into(),
            mode: "plain",
            result: Ok(result),
        };
        let rows = [
            row("nginx/1.22.1 (keepalive upstream)", m(10.0, 10.0)),
            row("reference gateway (release)", m(20.0, 14.0)),
            row(&format!("{PACED} (1000 req/s, limit_req)"), m(12.0, 12.5)),
            row(BARE, m(12.5, 10.0)),
        ];
        let t = table(&rows);
        assert!(
            t.contains("gateway CPU per request = 2.00 × nginx's (target ≤ 1.5): missed"),
            "{t}"
        );
        assert!(
            t.contains("behind the gateway = 1.40 × behind nginx (target ≤ 1.2): missed"),
            "{t}"
        );
        assert!(
            t.contains("the stack's floor (bare hyper proxy) = 1.25 × nginx's; the gateway = 1.60 × that floor (7.5 µs of its 20.0 are its own work)"),
            "{t}"
        );
        assert!(t.contains("at equal rates (nginx paced to the gateway's req/s): mock CPU per request behind the gateway = 1.12 × behind nginx (target ≤ 1.2): met"), "{t}");
    }

    #[test]
    fn wrk_output() {
        let text = "Running 8s test @ http://127.0.0.1:1/v1/chat/completions\n  2 threads and 32 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   400.12us  100.00us   5.00ms   90.00%\n  Latency Distribution\n     50%  380.00us\n     75%  420.00us\n     90%  500.00us\n     99%    1.30ms\n  679283 requests in 8.00s, 250.12MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 5\nRequests/sec:  84910.37\nTransfer/sec:     31.26MB\n";
        let w = parse_wrk(text).unwrap();
        assert_eq!(
            w,
            WrkOut {
                requests: 679_283,
                bad: 8,
                rps: 84_910.37,
                p50_ms: 0.38,
                p99_ms: 1.3
            }
        );
        assert_eq!(parse_duration_ms("2.5s"), Some(2500.0));
        assert!(parse_wrk("nothing").is_none());
    }
}
