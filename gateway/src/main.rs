//! `gateway` binary: configuration from the environment, or demo mode when there is none.

use std::process::ExitCode;

use gateway::config::{Config, DEMO_MODEL, DEMO_TOKEN};

// With the `mimalloc` feature, mimalloc instead of glibc's malloc: on the plain /v1 path
// glibc's malloc, free and `malloc_consolidate` were ~13 % of the gateway's samples, and the
// hop A/B gave −15 % CPU per request; off by default because 5,000 open streams then hold
// 272–290 MiB instead of 183 MiB (the bound is 300 MB). README "The cost of one hop".
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gateway: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_json);
    // With connection workers (WORKER_THREADS > 0, the default) the connections run on their
    // own threads; this runtime only accepts, handles signals and runs the background
    // tasks, so one thread is enough. With 0 it serves the connections on tokio's
    // work-stealing pool (TOKIO_WORKER_THREADS threads, one per core by default).
    let runtime = if config.limits.workers > 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match runtime {
        Ok(rt) => rt.block_on(run(config)),
        Err(e) => {
            eprintln!("gateway: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> ExitCode {
    // Demo mode: an in-process mock upstream, so the first command works on a fresh machine.
    #[cfg(not(feature = "demo"))]
    if config.demo {
        eprintln!("gateway: no GATEWAY_CONFIG set, and this build has no demo mode (cargo feature `demo`)");
        return ExitCode::from(2);
    }
    #[cfg(feature = "demo")]
    let mut config = config;
    #[cfg(feature = "demo")]
    let _demo_mock = if config.demo {
        let mock = match mocks::MockServer::start(mocks::Personality::Vllm).await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("gateway: cannot start the demo mock upstream: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = config.attach_demo_upstream(&mock.api_base()) {
            eprintln!("gateway: {e}");
            return ExitCode::FAILURE;
        }
        Some(mock)
    } else {
        None
    };

    #[cfg(feature = "demo")]
    let mock_url = _demo_mock.as_ref().map(|m| m.base_url());
    #[cfg(not(feature = "demo"))]
    let mock_url: Option<String> = None;
    let bind = config.bind;
    let demo = config.demo;
    let demo_token = config
        .tenants
        .first()
        .map(|t| t.id == "demo")
        .unwrap_or(false);
    let state = match gateway::AppState::new(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gateway: cannot build the HTTP client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gateway: cannot bind {bind}: {e} (set BIND_ADDR)");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(bind);
    let metrics = match state.config.limits.metrics_bind {
        Some(m) => match tokio::net::TcpListener::bind(m).await {
            Ok(l) => {
                println!(
                    "gateway metrics on http://{}/metrics",
                    l.local_addr().unwrap_or(m)
                );
                Some(l)
            }
            Err(e) => {
                eprintln!("gateway: cannot bind {m}: {e} (set METRICS_BIND_ADDR)");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    println!("gateway listening on http://{addr}");
    if demo {
        let token = if demo_token {
            DEMO_TOKEN
        } else {
            "$YOUR_TOKEN"
        };
        if let Some(url) = &mock_url {
            println!("demo mode: upstream is an embedded mock (vLLM personality) at {url}; its control API is {url}/__mock");
        }
        println!("try:");
        println!(
            "  curl -s http://{addr}/v1/chat/completions -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"model\":\"{DEMO_MODEL}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'"
        );
    }
    let shutdown = async {
        stop_signal().await;
        tracing::info!("shutdown signal: draining (SHUTDOWN_GRACE_SECS)");
    };
    let served = gateway::serve_with_metrics(listener, metrics, state, shutdown).await;
    gateway::logging::flush();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: server error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM (what container runtimes send), whichever comes first.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                eprintln!("gateway: cannot listen for SIGTERM ({e}); Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::stderr().is_terminal())
        .with_timer(gateway::logging::LogTime)
        .fmt_fields(gateway::logging::Fields)
        .with_writer(gateway::logging::BufferedStderr::new());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
