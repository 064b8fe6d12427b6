//! The `mocks` binary: one mock upstream on a socket, until ctrl-c.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use mocks::{MockConfig, MockServer, Personality};

/// Mock LLM upstream (vLLM, LiteLLM or OpenRouter wire format), or a gateway double of a seed
/// system (llm-gateway-api, ownllm), scriptable over /__mock.
#[derive(Debug, Parser)]
#[command(name = "mocks", version)]
struct Args {
    /// Which server to imitate: vllm, litellm, openrouter, llm-gateway-api or ownllm.
    #[arg(long, default_value = "vllm")]
    personality: Personality,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Delay before the first chunk, in ms.
    #[arg(long, default_value_t = 0)]
    ttft_ms: u64,
    /// Delay between content chunks, in ms.
    #[arg(long, default_value_t = 0)]
    inter_chunk_ms: u64,
    /// Up to this much random extra delay per chunk, in ms.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Seed for ids and jitter.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Content chunks of the default streamed reply (0 = 4).
    #[arg(long, default_value_t = 0)]
    default_chunks: usize,
    /// Require `Authorization: Bearer <KEY>` on the API routes.
    #[arg(long)]
    api_key: Option<String>,
    /// vLLM only: answer errors in the flat pre-0.10 shape {"object":"error",...}.
    #[arg(long)]
    vllm_legacy_errors: bool,
    /// Answer as a gateway double of the personality's seed system (llm-gateway-api,
    /// ownllm, vllm): its credential header, type and model checks, per-key buckets.
    #[arg(long)]
    gateway: bool,
    /// A further accepted key (repeatable).
    #[arg(long = "key")]
    keys: Vec<String>,
    /// A further accepted key with a burst-3, 1 request/s bucket (repeatable).
    #[arg(long = "limited-key")]
    limited_keys: Vec<String>,
    /// The body cap in bytes (default 64 MiB).
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Validate field types and the model like the real server, even as an upstream.
    #[arg(long)]
    strict: bool,
    /// A model name served under --strict/--gateway (repeatable; default: the model list).
    #[arg(long = "served-model")]
    served_models: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = MockConfig {
        personality: args.personality,
        ttft_ms: args.ttft_ms,
        inter_chunk_ms: args.inter_chunk_ms,
        jitter_ms: args.jitter_ms,
        seed: args.seed,
        default_chunks: args.default_chunks,
        api_key: args.api_key,
        gateway: args.gateway,
        keys: args.keys,
        limited_keys: args.limited_keys,
        max_body_bytes: args.max_body_bytes,
        strict: args.strict,
        served_models: args.served_models,
    };
    let server = match MockServer::start_with(config, args.bind).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("mocks: cannot listen on {}: {e}", args.bind);
            return ExitCode::FAILURE;
        }
    };
    server.set_vllm_legacy_errors(args.vllm_legacy_errors);
    println!(
        "mocks listening on http://{} personality={}",
        server.addr(),
        server.personality()
    );
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("mocks: cannot wait for ctrl-c: {e}");
    }
    server.shutdown().await;
    ExitCode::SUCCESS
}
