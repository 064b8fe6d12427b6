//! The environment (SPEC §6 names): the only place in the gateway that reads it.

use super::files::{build_upstream, load_gateway_file, load_tokens_file};
use super::*;

impl Config {
    /// Reads the process environment (the only place that does).
    pub fn from_env() -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = vars::ALL
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect();
        Self::from_vars(&env, &|name| std::env::var(name).ok())
    }

    /// Whether the environment asks for demo mode: no gateway file configured.
    pub fn demo_requested(env: &HashMap<String, String>) -> bool {
        !env.contains_key(vars::GATEWAY_CONFIG)
    }

    /// Builds the configuration from a variable map. `secret` resolves the `api_key_env`
    /// names of the gateway file (the process environment in production, a map in tests).
    pub fn from_vars(
        env: &HashMap<String, String>,
        secret: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let get = |k: &str| env.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
        let bind: SocketAddr = parse_var(get(vars::BIND_ADDR), vars::BIND_ADDR, DEFAULT_BIND)?;
        let max_body_bytes: usize =
            parse_var(get(vars::MAX_BODY_BYTES), vars::MAX_BODY_BYTES, "33554432")?;
        let timeout_secs: f64 = parse_var(
            get(vars::HTTP_TOTAL_TIMEOUT_SECS),
            vars::HTTP_TOTAL_TIMEOUT_SECS,
            "600",
        )?;
        if !(timeout_secs > 0.0 && timeout_secs.is_finite()) {
            return Err(ConfigError::new(
                "environment",
                vars::HTTP_TOTAL_TIMEOUT_SECS,
                "must be a positive number of seconds",
            ));
        }
        let max_tool_iterations: u32 = parse_var(
            get(vars::MAX_TOOL_ITERATIONS),
            vars::MAX_TOOL_ITERATIONS,
            "10",
        )?;
        let rps: f64 = parse_var(get(vars::RATE_LIMIT_RPS), vars::RATE_LIMIT_RPS, "1")?;
        let burst: u32 = parse_var(get(vars::RATE_LIMIT_BURST), vars::RATE_LIMIT_BURST, "30")?;
        let rate_limit = RateLimit { rps, burst };
        check_rate(&rate_limit, "environment", "RATE_LIMIT_*")?;
        if max_body_bytes == 0 {
            return Err(ConfigError::new(
                "environment",
                vars::MAX_BODY_BYTES,
                "must be > 0",
            ));
        }

        let limits = server_limits(env)?;
        let d = Limits::default();
        let byte_limit = |name: &str, default: usize| -> Result<usize, ConfigError> {
            let v: usize = parse_var(get(name), name, &default.to_string())?;
            if v == 0 {
                return Err(ConfigError::new("environment", name, "must be > 0"));
            }
            Ok(v)
        };
        let reads = Limits {
            upstream_max_body_bytes: byte_limit(
                vars::UPSTREAM_MAX_BODY_BYTES,
                d.upstream_max_body_bytes,
            )?,
            upstream_max_error_bytes: byte_limit(
                vars::UPSTREAM_MAX_ERROR_BYTES,
                d.upstream_max_error_bytes,
            )?,
            sse_max_line_bytes: byte_limit(vars::SSE_MAX_LINE_BYTES, d.sse_max_line_bytes)?,
            tool_max_answer_bytes: byte_limit(
                vars::TOOL_MAX_ANSWER_BYTES,
                d.tool_max_answer_bytes,
            )?,
            c1_max_history_bytes: byte_limit(vars::C1_MAX_HISTORY_BYTES, d.c1_max_history_bytes)?,
            relay_coalesce_bytes: byte_limit(vars::RELAY_COALESCE_BYTES, d.relay_coalesce_bytes)?,
            max_body_memory_bytes: byte_limit(
                vars::MAX_BODY_MEMORY_BYTES,
                d.max_body_memory_bytes,
            )?,
            max_answer_memory_bytes: byte_limit(
                vars::MAX_ANSWER_MEMORY_BYTES,
                d.max_answer_memory_bytes,
            )?,
        };
        let read_factor = crate::checks::memory::READ_FACTOR;
        if reads.max_body_memory_bytes / read_factor < max_body_bytes {
            // One body of the largest size allowed must fit the budget on its own while it
            // is read.
            return Err(ConfigError::new(
                "environment",
                vars::MAX_BODY_MEMORY_BYTES,
                "must be at least 3 × MAX_BODY_BYTES",
            ));
        }
        let answer_factor = crate::checks::memory::ANSWER_READ_FACTOR;
        if reads.max_answer_memory_bytes / answer_factor < reads.upstream_max_body_bytes {
            // Likewise one answer at UPSTREAM_MAX_BODY_BYTES, and its copy for the caller.
            return Err(ConfigError::new(
                "environment",
                vars::MAX_ANSWER_MEMORY_BYTES,
                "must be at least 2 × UPSTREAM_MAX_BODY_BYTES",
            ));
        }

        let demo = Self::demo_requested(env);
        let (upstreams, models, tools) = match get(vars::GATEWAY_CONFIG) {
            Some(path) => load_gateway_file(Path::new(path), secret)?,
            // Demo mode: main() swaps in the embedded mock upstream before serving.
            None => (Vec::new(), Vec::new(), Vec::new()),
        };

        let tenants = if let Some(token) = get(vars::RUST_API_BEARER) {
            vec![Tenant {
                id: "default".into(),
                token_hashes: vec![sha256(token)],
                allowed: Allowed::All,
                ..Tenant::default()
            }]
        } else {
            let explicit = get(vars::TOKENS_FILE);
            let path = Path::new(explicit.unwrap_or(DEFAULT_TOKENS_FILE));
            if explicit.is_none() && !path.exists() {
                if !demo {
                    return Err(ConfigError::new(
                        "environment",
                        "RUST_API_BEARER / TOKENS_FILE",
                        "no token configured: set RUST_API_BEARER or provide tokens.yaml",
                    ));
                }
                vec![Tenant {
                    id: "demo".into(),
                    token_hashes: vec![sha256(DEMO_TOKEN)],
                    allowed: Allowed::All,
                    ..Tenant::default()
                }]
            } else {
                load_tokens_file(path, &models)?
            }
        };

        Ok(Config {
            bind,
            limits,
            max_body_bytes,
            http_total_timeout: Duration::from_secs_f64(timeout_secs),
            max_tool_iterations,
            rate_limit,
            sqlite_path: PathBuf::from(get(vars::SQLITE_PATH).unwrap_or(DEFAULT_SQLITE_PATH)),
            redis_url: get(vars::REDIS_URL).map(str::to_owned),
            redis_fail_closed: match get(vars::REDIS_FAIL_MODE) {
                None | Some("open") => false,
                Some("closed") => true,
                Some(other) => {
                    return Err(ConfigError::new(
                        "environment",
                        vars::REDIS_FAIL_MODE,
                        format!("`{other}`: must be `open` or `closed`"),
                    ))
                }
            },
            redis_limits: redis_limits(env)?,
            log_json: get(vars::LOG_FORMAT) == Some("json"),
            fault_injection: get(vars::FAULT_INJECTION) == Some("1"),
            accept_x_api_key: match get(vars::ACCEPT_X_API_KEY) {
                None | Some("0") | Some("false") => false,
                Some("1") | Some("true") => true,
                Some(other) => {
                    return Err(ConfigError::new(
                        "environment",
                        vars::ACCEPT_X_API_KEY,
                        format!("`{other}`: must be 1/true or 0/false"),
                    ))
                }
            },
            tenants,
            upstreams,
            models,
            tools,
            reads,
            demo,
        })
    }

    /// Points demo mode at an embedded mock upstream (vLLM personality).
    pub fn attach_demo_upstream(&mut self, api_base: &str) -> Result<(), ConfigError> {
        let upstream = build_upstream(
            "demo-mock".into(),
            UpstreamKind::Vllm,
            api_base,
            None,
            None,
            "demo",
        )?;
        self.upstreams = vec![upstream];
        self.models = vec![Model {
            alias: DEMO_MODEL.into(),
            upstream: 0,
            upstream_model: "mock-llama".into(),
            constraints: Constraints {
                min_max_tokens: 16,
                max_output_tokens: Some(4096),
                context_window: Some(32768),
                accepts_image_url: false,
                typical_response_seconds: Some(1),
            },
            capabilities: Capabilities::default(),
            fallbacks: Vec::new(),
        }];
        Ok(())
    }

    pub fn model(&self, alias: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.alias == alias)
    }
}

pub(super) fn parse_var<T: std::str::FromStr>(
    value: Option<&str>,
    name: &str,
    default: &str,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let raw = value.unwrap_or(default);
    raw.parse::<T>()
        .map_err(|e| ConfigError::new("environment", name, format!("`{raw}`: {e}")))
}

pub(super) fn check_rate(rate: &RateLimit, source: &str, path: &str) -> Result<(), ConfigError> {
    if !(rate.rps > 0.0 && rate.rps.is_finite()) || rate.burst == 0 {
        return Err(ConfigError::new(
            source,
            path,
            "rps must be a positive number and burst at least 1",
        ));
    }
    Ok(())
}

fn server_limits(env: &HashMap<String, String>) -> Result<ServerLimits, ConfigError> {
    let get = |k: &str| env.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let d = ServerLimits::default();
    let secs = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
        let v: f64 = parse_var(get(name), name, &default.as_secs_f64().to_string())?;
        if !(v > 0.0 && v.is_finite() && v < 1e9) {
            return Err(ConfigError::new(
                "environment",
                name,
                "must be a positive number of seconds",
            ));
        }
        Ok(Duration::from_secs_f64(v))
    };
    let count = |name: &str, default: usize| -> Result<usize, ConfigError> {
        let v: usize = parse_var(get(name), name, &default.to_string())?;
        if v == 0 {
            return Err(ConfigError::new("environment", name, "must be > 0"));
        }
        Ok(v)
    };
    let max_header_bytes = count(vars::MAX_HEADER_BYTES, d.max_header_bytes)?;
    if max_header_bytes < 8192 {
        // hyper's read buffer cannot be smaller.
        return Err(ConfigError::new(
            "environment",
            vars::MAX_HEADER_BYTES,
            "must be at least 8192",
        ));
    }
    let metrics_bind = match get(vars::METRICS_BIND_ADDR) {
        None => None,
        Some(raw) => Some(parse_var(Some(raw), vars::METRICS_BIND_ADDR, "")?),
    };
    Ok(ServerLimits {
        header_read_timeout: secs(vars::HEADER_READ_TIMEOUT_SECS, d.header_read_timeout)?,
        idle_timeout: secs(vars::IDLE_TIMEOUT_SECS, d.idle_timeout)?,
        body_read_timeout: secs(vars::BODY_READ_TIMEOUT_SECS, d.body_read_timeout)?,
        send_timeout: secs(vars::SEND_TIMEOUT_SECS, d.send_timeout)?,
        linger: secs(vars::LINGER_SECS, d.linger)?,
        max_connections: count(vars::MAX_CONNECTIONS, d.max_connections)?,
        max_connections_per_ip: count(vars::MAX_CONNECTIONS_PER_IP, d.max_connections_per_ip)?,
        max_header_bytes,
        max_in_flight: count(vars::MAX_IN_FLIGHT, d.max_in_flight)?,
        shutdown_grace: secs(vars::SHUTDOWN_GRACE_SECS, d.shutdown_grace)?,
        readyz_cache: secs(vars::READYZ_CACHE_SECS, d.readyz_cache)?,
        metrics_bind,
        workers: {
            let v: usize = parse_var(
                get(vars::WORKER_THREADS),
                vars::WORKER_THREADS,
                &d.workers.to_string(),
            )?;
            if v > super::MAX_WORKER_THREADS {
                return Err(ConfigError::new(
                    "environment",
                    vars::WORKER_THREADS,
                    "must be 0..=256 (0: serve on tokio's multi-thread runtime)",
                ));
            }
            v
        },
    })
}

fn redis_limits(env: &HashMap<String, String>) -> Result<RedisLimits, ConfigError> {
    let get = |k: &str| env.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let d = RedisLimits::default();
    let ms = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
        let v: u64 = parse_var(get(name), name, &default.as_millis().to_string())?;
        if !(1..=3_600_000).contains(&v) {
            return Err(ConfigError::new(
                "environment",
                name,
                "must be 1..=3600000 milliseconds",
            ));
        }
        Ok(Duration::from_millis(v))
    };
    Ok(RedisLimits {
        timeout: ms(vars::REDIS_TIMEOUT_MS, d.timeout)?,
        retry: ms(vars::REDIS_RETRY_MS, d.retry)?,
    })
}
