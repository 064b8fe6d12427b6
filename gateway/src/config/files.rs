//! The configuration files: raw YAML shapes (unknown fields rejected), validated into the
//! domain types.

use super::env::check_rate;
use super::*;

// ---- raw file shapes: exactly what the YAML may contain ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokensFile {
    tenants: Vec<RawTenant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: String,
    tokens: Vec<RawToken>,
    allowed_models: Vec<String>,
    #[serde(default)]
    rate_limit: Option<RawRate>,
    #[serde(default)]
    budgets: Vec<RawBudget>,
    #[serde(default)]
    disabled: bool,
    /// One bucket shared by every token of the tenant.
    #[serde(default)]
    tenant_rate_limit: Option<RawRate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    sha256: String,
    #[serde(default)]
    #[allow(dead_code)]
    label: Option<String>,
    /// RFC 3339 UTC instant, e.g. `2026-12-31T23:59:59Z`.
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    max_concurrent: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    rps: f64,
    burst: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    model: String,
    #[serde(default)]
    requests_per_day: Option<u64>,
    #[serde(default)]
    tokens_per_day: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGatewayFile {
    upstreams: Vec<RawUpstream>,
    models: Vec<RawModel>,
    #[serde(default)]
    tools: Vec<RawTool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: String,
    kind: UpstreamKind,
    base_url: String,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    health_url: Option<String>,
    #[serde(default)]
    max_in_flight: Option<u32>,
    #[serde(default = "default_queue_wait_ms")]
    queue_wait_ms: u64,
}

fn default_queue_wait_ms() -> u64 {
    DEFAULT_QUEUE_WAIT_MS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCapabilities {
    tools: bool,
    vision: bool,
    streaming: bool,
}

impl Default for RawCapabilities {
    fn default() -> Self {
        let c = Capabilities::default();
        RawCapabilities {
            tools: c.tools,
            vision: c.vision,
            streaming: c.streaming,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    alias: String,
    upstream: String,
    upstream_model: String,
    #[serde(default)]
    constraints: RawConstraints,
    #[serde(default)]
    capabilities: RawCapabilities,
    #[serde(default)]
    fallbacks: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConstraints {
    min_max_tokens: u32,
    max_output_tokens: Option<u32>,
    context_window: Option<u32>,
    accepts_image_url: bool,
    typical_response_seconds: Option<u32>,
}

impl Default for RawConstraints {
    fn default() -> Self {
        RawConstraints {
            min_max_tokens: 1,
            max_output_tokens: None,
            context_window: None,
            accepts_image_url: false,
            typical_response_seconds: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    name: String,
    description: String,
    parameters: serde_json::Value,
    executor: RawExecutor,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
enum RawExecutor {
    Builtin {
        name: String,
    },
    Http {
        url: String,
        #[serde(default = "default_tool_timeout_ms")]
        timeout_ms: u64,
    },
}

pub(super) fn default_tool_timeout_ms() -> u64 {
    5000
}

pub(super) fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&name, "(file)", format!("cannot read: {e}")))?;
    let de = serde_norway::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "(root)".to_owned()
        } else {
            path
        };
        ConfigError::new(&name, path, e.into_inner().to_string())
    })
}

pub(super) fn load_tokens_file(path: &Path, models: &[Model]) -> Result<Vec<Tenant>, ConfigError> {
    let raw: RawTokensFile = read_yaml(path)?;
    let file = path.display().to_string();
    let err = |p: String, m: &str| ConfigError::new(&file, p, m);
    let known = |alias: &str| alias == "*" || models.iter().any(|m| m.alias == alias);
    let mut ids = HashSet::new();
    let mut hashes = HashSet::new();
    let mut tenants = Vec::with_capacity(raw.tenants.len());
    for (i, t) in raw.tenants.into_iter().enumerate() {
        if t.id.trim().is_empty() || !ids.insert(t.id.clone()) {
            return Err(err(
                format!("tenants[{i}].id"),
                "must be non-empty and unique",
            ));
        }
        if t.tokens.is_empty() {
            return Err(err(
                format!("tenants[{i}].tokens"),
                "needs at least one token",
            ));
        }
        let mut token_hashes = Vec::new();
        let mut token_rules = Vec::new();
        for (j, tok) in t.tokens.iter().enumerate() {
            let expires_at = match &tok.expires_at {
                Some(at) => Some(unix_seconds(at).ok_or_else(|| {
                    err(
                        format!("tenants[{i}].tokens[{j}].expires_at"),
                        "must be an RFC 3339 UTC instant like 2026-12-31T23:59:59Z",
                    )
                })?),
                None => None,
            };
            if tok.max_concurrent == Some(0) {
                return Err(err(
                    format!("tenants[{i}].tokens[{j}].max_concurrent"),
                    "must be at least 1 (omit it for no limit)",
                ));
            }
            token_rules.push(TokenRule {
                expires_at,
                max_concurrent: tok.max_concurrent,
            });
            let p = format!("tenants[{i}].tokens[{j}].sha256");
            let bytes = hex::decode(tok.sha256.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| err(p.clone(), "must be the 64-hex-digit SHA-256 of the token"))?;
            if !hashes.insert(bytes) {
                return Err(err(p, "the same token is listed twice"));
            }
            token_hashes.push(bytes);
        }
        for (j, m) in t.allowed_models.iter().enumerate() {
            if !models.is_empty() && !known(m) {
                return Err(err(
                    format!("tenants[{i}].allowed_models[{j}]"),
                    "names no configured model alias",
                ));
            }
        }
        let allowed = if t.allowed_models.iter().any(|m| m == "*") {
            Allowed::All
        } else {
            Allowed::Only(t.allowed_models.into_iter().collect())
        };
        let rate_limit = match t.rate_limit {
            Some(r) => {
                let rl = RateLimit {
                    rps: r.rps,
                    burst: r.burst,
                };
                check_rate(&rl, &file, &format!("tenants[{i}].rate_limit"))?;
                Some(rl)
            }
            None => None,
        };
        let tenant_rate_limit = match t.tenant_rate_limit {
            Some(r) => {
                let rl = RateLimit {
                    rps: r.rps,
                    burst: r.burst,
                };
                check_rate(&rl, &file, &format!("tenants[{i}].tenant_rate_limit"))?;
                Some(rl)
            }
            None => None,
        };
        let mut budgets = Vec::new();
        for (j, b) in t.budgets.into_iter().enumerate() {
            if !models.is_empty() && !known(&b.model) {
                return Err(err(
                    format!("tenants[{i}].budgets[{j}].model"),
                    "names no configured model alias",
                ));
            }
            if b.requests_per_day.is_none() && b.tokens_per_day.is_none() {
                return Err(err(
                    format!("tenants[{i}].budgets[{j}]"),
                    "set requests_per_day, tokens_per_day or both",
                ));
            }
            budgets.push(Budget {
                model: b.model,
                requests_per_day: b.requests_per_day,
                tokens_per_day: b.tokens_per_day,
            });
        }
        tenants.push(Tenant {
            id: t.id,
            token_hashes,
            token_rules,
            allowed,
            rate_limit,
            tenant_rate_limit,
            disabled: t.disabled,
            budgets,
        });
    }
    if tenants.is_empty() {
        return Err(err("tenants".into(), "needs at least one tenant"));
    }
    Ok(tenants)
}

type GatewayParts = (Vec<Upstream>, Vec<Model>, Vec<Tool>);

pub(super) fn load_gateway_file(
    path: &Path,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<GatewayParts, ConfigError> {
    let raw: RawGatewayFile = read_yaml(path)?;
    let file = path.display().to_string();
    let err = |p: String, m: &str| ConfigError::new(&file, p, m);

    let mut upstreams = Vec::new();
    for (i, u) in raw.upstreams.into_iter().enumerate() {
        if upstreams.iter().any(|x: &Upstream| x.name == u.name) {
            return Err(err(format!("upstreams[{i}].name"), "must be unique"));
        }
        let api_key = match &u.api_key_env {
            Some(var) => Some(secret(var).ok_or_else(|| {
                err(
                    format!("upstreams[{i}].api_key_env"),
                    "names an environment variable that is not set",
                )
            })?),
            None => None,
        };
        if u.max_in_flight == Some(0) || u.queue_wait_ms > 60_000 {
            return Err(err(
                format!("upstreams[{i}]"),
                "max_in_flight must be at least 1 and queue_wait_ms at most 60000",
            ));
        }
        let mut up = build_upstream(
            u.name,
            u.kind,
            &u.base_url,
            u.health_url.as_deref(),
            api_key,
            &format!("{file}: upstreams[{i}]"),
        )?;
        up.max_in_flight = u.max_in_flight;
        up.queue_wait = Duration::from_millis(u.queue_wait_ms);
        upstreams.push(up);
    }
    if upstreams.is_empty() {
        return Err(err("upstreams".into(), "needs at least one upstream"));
    }

    let mut models: Vec<Model> = Vec::new();
    for (i, m) in raw.models.iter().enumerate() {
        if m.alias.trim().is_empty() || models.iter().any(|x| x.alias == m.alias) {
            return Err(err(
                format!("models[{i}].alias"),
                "must be non-empty and unique",
            ));
        }
        if m.upstream_model.trim().is_empty() {
            let at = format!("models[{i}].upstream_model");
            return Err(err(at, "must name the upstream's model (non-empty)"));
        }
        let upstream = upstreams
            .iter()
            .position(|u| u.name == m.upstream)
            .ok_or_else(|| {
                err(
                    format!("models[{i}].upstream"),
                    "names no configured upstream",
                )
            })?;
        let c = &m.constraints;
        if c.min_max_tokens == 0 || c.max_output_tokens.is_some_and(|x| x < c.min_max_tokens) {
            return Err(err(
                format!("models[{i}].constraints"),
                "min_max_tokens must be >= 1 and <= max_output_tokens",
            ));
        }
        models.push(Model {
            alias: m.alias.clone(),
            upstream,
            upstream_model: m.upstream_model.clone(),
            constraints: Constraints {
                min_max_tokens: c.min_max_tokens,
                max_output_tokens: c.max_output_tokens,
                context_window: c.context_window,
                accepts_image_url: c.accepts_image_url,
                typical_response_seconds: c.typical_response_seconds,
            },
            capabilities: Capabilities {
                tools: m.capabilities.tools,
                vision: m.capabilities.vision,
                streaming: m.capabilities.streaming,
            },
            fallbacks: m.fallbacks.clone(),
        });
    }
    for (i, m) in raw.models.iter().enumerate() {
        for (j, f) in m.fallbacks.iter().enumerate() {
            if f == &m.alias || !models.iter().any(|x| &x.alias == f) {
                return Err(err(
                    format!("models[{i}].fallbacks[{j}]"),
                    "must name another configured alias",
                ));
            }
        }
    }

    let mut tools: Vec<Tool> = Vec::new();
    for (i, t) in raw.tools.into_iter().enumerate() {
        let valid_name = !t.name.is_empty()
            && t.name.len() <= 64
            && t.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name || tools.iter().any(|x| x.name == t.name) {
            return Err(err(
                format!("tools[{i}].name"),
                "must be unique, 1-64 chars of [A-Za-z0-9_-]",
            ));
        }
        if !t.parameters.is_object() {
            return Err(err(
                format!("tools[{i}].parameters"),
                "must be a JSON-schema object",
            ));
        }
        let executor = match t.executor {
            RawExecutor::Builtin { name } => match Builtin::from_name(&name) {
                Some(b) => Executor::Builtin(b),
                None => {
                    return Err(err(
                        format!("tools[{i}].executor.name"),
                        "is not a built-in tool of this gateway",
                    ))
                }
            },
            RawExecutor::Http { url, timeout_ms } => {
                let ok =
                    reqwest::Url::parse(&url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                if !ok || timeout_ms == 0 {
                    return Err(err(
                        format!("tools[{i}].executor"),
                        "needs an http(s) url and timeout_ms > 0",
                    ));
                }
                Executor::Http {
                    url,
                    timeout: Duration::from_millis(timeout_ms),
                }
            }
        };
        tools.push(Tool {
            name: t.name,
            description: t.description,
            parameters: t.parameters,
            executor,
        });
    }
    Ok((upstreams, models, tools))
}

pub(super) fn build_upstream(
    name: String,
    kind: UpstreamKind,
    base_url: &str,
    health_url: Option<&str>,
    api_key: Option<String>,
    at: &str,
) -> Result<Upstream, ConfigError> {
    let url = reqwest::Url::parse(base_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| ConfigError::new(at, "base_url", "must be an absolute http(s) URL"))?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let base = base_url.trim_end_matches('/').to_owned();
    let origin = url.origin().ascii_serialization();
    Ok(Upstream {
        name,
        kind,
        chat_url: format!("{base}/chat/completions"),
        health_url: health_url
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{origin}{}", kind.default_health_path())),
        base_url: base,
        api_key,
        host,
        max_in_flight: None,
        queue_wait: Duration::from_millis(DEFAULT_QUEUE_WAIT_MS),
    })
}
