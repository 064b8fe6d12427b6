//! The gateway under test: where it is, which tokens, tenants and model aliases play which
//! role, and what it can provide (a scripted upstream, the test configuration, fault hooks).
//!
//! Two kinds: [`crate::embedded`] boots the reference gateway and the mocks in-process;
//! [`Target::from_env`] describes any deployment through environment variables (see
//! [`vars`]). Scenarios whose tags ask for something the target lacks are skipped with the
//! reason, never run half-way.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::mock::MockHandle;
use crate::profile::Profile;
use crate::schemas::Schemas;

/// Environment variables of an external run, with what each means. Every one is optional
/// except `GATEWAY_URL` (which selects the external mode) and `GATEWAY_BEARER`.
pub mod vars {
    /// Base URL of the gateway under test; unset = the embedded reference gateway.
    pub const GATEWAY_URL: &str = "GATEWAY_URL";
    /// The primary token (role `primary`).
    pub const GATEWAY_BEARER: &str = "GATEWAY_BEARER";
    /// A token of another tenant (role `second tenant`).
    pub const GATEWAY_SECOND_BEARER: &str = "GATEWAY_SECOND_BEARER";
    /// Tenant ids of the two tokens, for the X-Tenant-Id scenarios.
    pub const GATEWAY_PRIMARY_TENANT: &str = "GATEWAY_PRIMARY_TENANT";
    pub const GATEWAY_SECOND_TENANT: &str = "GATEWAY_SECOND_TENANT";
    /// Comma-separated unused tokens with default limits (role `fresh`), one per scenario.
    pub const GATEWAY_FRESH_TOKENS: &str = "GATEWAY_FRESH_TOKENS";
    /// Comma-separated unused tokens with burst 3, 1 req/s (role `fresh rate-limited`).
    pub const GATEWAY_FRESH_RATE_LIMITED_TOKENS: &str = "GATEWAY_FRESH_RATE_LIMITED_TOKENS";
    /// Base URL of the `mocks` binary behind the gateway (its `/__mock` control API).
    pub const MOCK_CONTROL_URL: &str = "MOCK_CONTROL_URL";
    /// Prefix of per-role mock URLs, e.g. `MOCK_CONTROL_URL_LITELLM`, `MOCK_CONTROL_URL_OPENROUTER`.
    pub const MOCK_CONTROL_URL_PREFIX: &str = "MOCK_CONTROL_URL_";
    /// Prefix of per-role model aliases: `GATEWAY_MODEL_DEFAULT`, `GATEWAY_MODEL_LITELLM`, …
    pub const GATEWAY_MODEL_PREFIX: &str = "GATEWAY_MODEL_";
    /// `1` when the target runs the harness's test configuration (`@needs-config`).
    pub const GATEWAY_TEST_CONFIG: &str = "GATEWAY_TEST_CONFIG";
    /// `1` when the target honours the `x-gateway-fault` header (`@needs-fault-injection`).
    pub const GATEWAY_FAULT_INJECTION: &str = "GATEWAY_FAULT_INJECTION";
    /// Comma-separated upstream API keys that must never appear in a response.
    pub const GATEWAY_UPSTREAM_SECRETS: &str = "GATEWAY_UPSTREAM_SECRETS";
    /// Comma-separated upstream hosts (`host` or `host:port`) that must never appear.
    pub const GATEWAY_UPSTREAM_HOSTS: &str = "GATEWAY_UPSTREAM_HOSTS";
    /// Comma-separated server-side tool names (default: from `/v1/info`).
    pub const GATEWAY_SERVER_TOOLS: &str = "GATEWAY_SERVER_TOOLS";
    /// A target file (YAML, see [`crate::target_file`]); the variables above override it.
    pub const CONFORMANCE_TARGET: &str = "CONFORMANCE_TARGET";
    /// How many times the gateway retries a failed upstream call (default 0).
    pub const GATEWAY_UPSTREAM_RETRIES: &str = "GATEWAY_UPSTREAM_RETRIES";
}

/// The model roles of STEPS.md, in the order they are documented.
pub const MODEL_ROLES: &[&str] = &[
    "default",
    "litellm",
    "openrouter",
    "vision_url",
    "reasoning",
    "unreachable",
    "budget",
    "forbidden",
    "token_budget",
];

/// What the target can provide beyond plain HTTP.
#[derive(Clone, Copy, Debug, Default)]
pub struct Capabilities {
    /// A mock upstream that can be scripted and inspected (`@needs-mock`).
    pub mock: bool,
    /// The harness's test configuration (`@needs-config`).
    pub config: bool,
    /// The `x-gateway-fault` hooks (`@needs-fault-injection`).
    pub fault_injection: bool,
}

/// Tokens that each scenario takes at most one of, so no two scenarios share a bucket.
#[derive(Debug, Default)]
pub struct TokenPool {
    tokens: Vec<String>,
    next: AtomicUsize,
}

impl TokenPool {
    pub fn new(tokens: Vec<String>) -> TokenPool {
        TokenPool {
            tokens,
            next: AtomicUsize::new(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn take(&self) -> Option<String> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.tokens.get(i).cloned()
    }
}

/// One row of the target's `GET /errors`.
#[derive(Clone, Debug)]
pub struct CatalogEntry {
    pub code: String,
    pub error_type: String,
    pub http_status: u16,
    pub raw: Value,
}

/// The gateway under test and everything the World needs to know about it.
pub struct Target {
    /// Human name for reports: "embedded reference gateway" or the URL.
    pub name: String,
    pub base_url: String,
    pub primary_token: String,
    pub second_token: Option<String>,
    pub fresh: TokenPool,
    pub fresh_limited: TokenPool,
    /// Further token roles of the production-condition scenarios (`expired`, `disabled
    /// tenant`, `single-slot`, `tenant-bucket`, `minute-bucket`, `tool-loop budget`); a target without them
    /// skips those steps.
    pub role_tokens: HashMap<String, TokenPool>,
    /// Tenant role (`primary`, `second`) → tenant id.
    pub tenants: HashMap<String, String>,
    /// Model role → alias.
    pub models: HashMap<String, String>,
    /// Model role → the mock behind it.
    pub mocks: HashMap<String, MockHandle>,
    pub caps: Capabilities,
    pub server_side_tools: Vec<String>,
    /// Upstream API keys that must never be revealed.
    pub upstream_secrets: Vec<String>,
    /// Upstream hosts / `host:port` / ports that must never be revealed.
    pub upstream_hosts: Vec<String>,
    /// Local addresses the World's clients bind to (embedded: spread over 127.0.0.0/8 so
    /// the gateway's per-IP limit on public routes sees one client per scenario, as a
    /// deployment would; empty = the OS default).
    pub source_addrs: Vec<IpAddr>,
    pub schemas: Arc<Schemas>,
    /// The contract the answers are judged by (`CONFORMANCE_PROFILE`, default `dgx`).
    pub profile: Arc<Profile>,
    /// The credential header (`authorization`, `x-api-key`, …) and the scheme before the
    /// token (`Bearer`, or empty).
    pub credential_header: String,
    pub credential_scheme: String,
    /// Headers sent with every request (e.g. Portkey's routing headers).
    pub extra_headers: Vec<(String, String)>,
    /// How many times the gateway retries a failed upstream call: scripted failures are
    /// repeated that many more times.
    pub retries: usize,
    /// The target's body cap, when known (else the profile's, else 32 MiB).
    pub max_body_bytes: Option<u64>,
    /// What each scenario's World noted for its grade (non-strict answers, upstream
    /// attempts), by scenario key (`file:line`).
    pub notes: parking_lot::Mutex<HashMap<String, ScenarioNotes>>,
    catalog: tokio::sync::OnceCell<Result<Vec<CatalogEntry>, String>>,
    next_client: AtomicUsize,
    clients: Vec<reqwest::Client>,
    /// Keeps the embedded servers alive as long as the target.
    pub(crate) _embedded: Option<crate::embedded::Embedded>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("caps", &self.caps)
            .finish_non_exhaustive()
    }
}

/// What a World noted about its scenario, read by the report for the grade.
#[derive(Clone, Debug, Default)]
pub struct ScenarioNotes {
    /// Why an answer was only non-strict (one line each).
    pub non_strict: Vec<String>,
    /// Upstream requests the gateway made for a scripted failure.
    pub upstream_attempts: Option<usize>,
}

/// How long any single exchange with the target may take (streams included).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn client(source: Option<IpAddr>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(CLIENT_TIMEOUT)
        .pool_max_idle_per_host(8);
    if let Some(ip) = source {
        b = b.local_address(ip);
    }
    b.build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Fields of a [`Target`] that the two constructors fill in.
pub(crate) struct TargetParts {
    pub name: String,
    pub base_url: String,
    pub primary_token: String,
    pub second_token: Option<String>,
    pub fresh: Vec<String>,
    pub fresh_limited: Vec<String>,
    pub role_tokens: HashMap<String, Vec<String>>,
    pub tenants: HashMap<String, String>,
    pub models: HashMap<String, String>,
    pub mocks: HashMap<String, MockHandle>,
    pub caps: Capabilities,
    pub server_side_tools: Vec<String>,
    pub upstream_secrets: Vec<String>,
    pub upstream_hosts: Vec<String>,
    pub source_addrs: Vec<IpAddr>,
    pub schemas: Arc<Schemas>,
    pub embedded: Option<crate::embedded::Embedded>,
    pub profile: Option<Arc<Profile>>,
    pub credential_header: String,
    pub credential_scheme: String,
    pub extra_headers: Vec<(String, String)>,
    pub retries: usize,
    pub max_body_bytes: Option<u64>,
}

impl Target {
    pub(crate) fn assemble(p: TargetParts) -> Result<Target, String> {
        let clients = if p.source_addrs.is_empty() {
            vec![client(None)?]
        } else {
            p.source_addrs
                .iter()
                .map(|ip| client(Some(*ip)))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Target {
            name: p.name,
            base_url: p.base_url.trim_end_matches('/').to_owned(),
            primary_token: p.primary_token,
            second_token: p.second_token,
            fresh: TokenPool::new(p.fresh),
            fresh_limited: TokenPool::new(p.fresh_limited),
            role_tokens: p
                .role_tokens
                .into_iter()
                .map(|(k, v)| (k, TokenPool::new(v)))
                .collect(),
            tenants: p.tenants,
            models: p.models,
            mocks: p.mocks,
            caps: p.caps,
            server_side_tools: p.server_side_tools,
            upstream_secrets: p.upstream_secrets,
            upstream_hosts: p.upstream_hosts,
            source_addrs: p.source_addrs,
            profile: match p.profile {
                Some(profile) => profile,
                None => Arc::new(Profile::load(
                    &crate::runner::default_features_dir(),
                    crate::profile::DEFAULT_PROFILE,
                    &p.schemas,
                )?),
            },
            schemas: p.schemas,
            credential_header: p.credential_header.to_ascii_lowercase(),
            credential_scheme: p.credential_scheme,
            extra_headers: p.extra_headers,
            retries: p.retries,
            max_body_bytes: p.max_body_bytes,
            notes: parking_lot::Mutex::new(HashMap::new()),
            catalog: tokio::sync::OnceCell::new(),
            next_client: AtomicUsize::new(0),
            clients,
            _embedded: p.embedded,
        })
    }

    /// The credential header's value for `token` (`Bearer <token>`, or the bare token).
    pub fn credential_value(&self, token: &str) -> String {
        if self.credential_scheme.is_empty() {
            token.to_owned()
        } else {
            format!("{} {token}", self.credential_scheme)
        }
    }

    /// The headers every request with `token` carries: the credential, then the extras.
    pub fn request_headers(&self, token: Option<&str>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(t) = token {
            out.push((self.credential_header.clone(), self.credential_value(t)));
        }
        out.extend(self.extra_headers.iter().cloned());
        out
    }

    /// The body cap to exceed for "body over the cap": the target's, else the profile's,
    /// else the DGX default (32 MiB).
    pub fn body_cap(&self) -> u64 {
        self.max_body_bytes
            .or(self.profile.max_body_bytes)
            .unwrap_or(33_554_432)
    }

    /// Adds what a World noted for its scenario.
    pub fn note(&self, key: &str, f: impl FnOnce(&mut ScenarioNotes)) {
        let mut notes = self.notes.lock();
        f(notes.entry(key.to_owned()).or_default());
    }

    /// One clear answer before any scenario: the target is reachable, accepts the
    /// credentials and the default model answers. The error is the whole message to show.
    pub async fn preflight(&self) -> Result<(), String> {
        let known = self.models.get("default").cloned();
        let model = known.clone().unwrap_or_else(|| "default".to_owned());
        let http = client(None)?;
        let mut rb = http
            .post(format!("{}/v1/chat/completions", self.base_url))
            .timeout(Duration::from_secs(20))
            .json(&serde_json::json!({
                "model": model,
                "messages": [{"role": "user", "content": "conformance preflight: answer with one word"}],
                "max_tokens": 16,
            }));
        for (n, v) in self.request_headers(Some(&self.primary_token)) {
            rb = rb.header(n, v);
        }
        let resp = rb.send().await.map_err(|e| {
            format!(
                "preflight: {} is not reachable ({e}); is the gateway running, and is the URL right?",
                self.base_url
            )
        })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let body = crate::text::clip(&body, 300);
        match status {
            200..=299 => Ok(()),
            401 | 403 => Err(format!(
                "preflight: {} rejected the primary credentials (HTTP {status}: {body}); check the token and the credential scheme (`{}: {}<token>`)",
                self.base_url,
                self.credential_header,
                if self.credential_scheme.is_empty() { String::new() } else { format!("{} ", self.credential_scheme) }
            )),
            _ if known.is_none() => Err(format!(
                "preflight: no default model is known for {} (its GET /v1/models lists none) and `default` does not answer (HTTP {status}: {body}); set `models: {{default: <alias>}}` in the target file or {}DEFAULT",
                self.base_url,
                vars::GATEWAY_MODEL_PREFIX
            )),
            _ => Err(format!(
                "preflight: the default model `{model}` does not answer on {} (HTTP {status}: {body}); set the default model of the target file, or check the gateway's upstream",
                self.base_url
            )),
        }
    }

    /// An HTTP client for one scenario; consecutive scenarios get different source addresses.
    pub fn client(&self) -> reqwest::Client {
        let i = self.next_client.fetch_add(1, Ordering::Relaxed);
        self.clients[i % self.clients.len()].clone()
    }

    /// The external target described by the environment (see [`vars`]); None when
    /// `GATEWAY_URL` is unset.
    pub async fn from_env(schemas: Arc<Schemas>) -> Result<Option<Target>, String> {
        match ExternalSpec::from_env()? {
            Some(spec) => Target::external(spec, schemas).await.map(Some),
            None => Ok(None),
        }
    }

    /// Any gateway by URL. Roles without an alias get documented defaults where one exists
    /// (`default`: the first alias of `/v1/models`); scenarios needing the others are skipped.
    pub async fn external(spec: ExternalSpec, schemas: Arc<Schemas>) -> Result<Target, String> {
        let base_url = spec.url.trim_end_matches('/').to_owned();
        let http = client(None)?;
        let cred = spec.credential();
        let mut models = spec.models;
        let info = fetch_json(&http, &format!("{base_url}/v1/info"), &cred).await;
        if !models.contains_key("default") {
            let listed = fetch_json(&http, &format!("{base_url}/v1/models"), &cred).await;
            if let Some(first) = listed
                .as_ref()
                .and_then(|v| v.pointer("/data/0/id"))
                .and_then(Value::as_str)
            {
                models.insert("default".into(), first.to_owned());
            }
        }
        let mut server_side_tools = spec.server_side_tools;
        if server_side_tools.is_empty() {
            if let Some(tools) = info
                .as_ref()
                .and_then(|v| v.pointer("/models/0/capabilities/server_side_tools"))
                .and_then(Value::as_array)
            {
                server_side_tools = tools
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect();
            }
        }
        let mut upstream_hosts = spec.upstream_hosts;
        for m in spec.mocks.values() {
            upstream_hosts.extend(host_forms(&m.base_url()));
        }
        upstream_hosts.sort();
        upstream_hosts.dedup();
        let caps = Capabilities {
            mock: !spec.mocks.is_empty(),
            config: spec.test_config,
            fault_injection: spec.fault_injection,
        };
        Target::assemble(TargetParts {
            name: spec.name.unwrap_or_else(|| base_url.clone()),
            base_url,
            primary_token: spec.bearer,
            second_token: spec.second_bearer,
            fresh: spec.fresh,
            fresh_limited: spec.fresh_limited,
            role_tokens: HashMap::new(),
            tenants: spec.tenants,
            models,
            mocks: spec.mocks,
            caps,
            server_side_tools,
            upstream_secrets: spec.upstream_secrets,
            upstream_hosts,
            source_addrs: Vec::new(),
            schemas,
            embedded: None,
            profile: spec.profile,
            credential_header: spec.credential_header,
            credential_scheme: spec.credential_scheme,
            extra_headers: spec.extra_headers,
            retries: spec.retries,
            max_body_bytes: spec.max_body_bytes,
        })
    }

    /// The target's own catalog (`GET /errors`), fetched once per run.
    pub async fn catalog(&self) -> Result<&[CatalogEntry], String> {
        let result = self
            .catalog
            .get_or_init(|| async {
                let http = self.client();
                let resp = http
                    .get(format!("{}/errors", self.base_url))
                    .send()
                    .await
                    .map_err(|e| format!("GET /errors failed: {e}"))?;
                let status = resp.status();
                let body: Value = resp
                    .json()
                    .await
                    .map_err(|e| format!("GET /errors did not answer JSON: {e}"))?;
                if !status.is_success() {
                    return Err(format!("GET /errors answered {status}: {body}"));
                }
                parse_catalog(&body)
            })
            .await;
        result.as_deref().map_err(Clone::clone)
    }

    pub async fn catalog_entry(&self, code: &str) -> Result<CatalogEntry, String> {
        self.catalog()
            .await?
            .iter()
            .find(|e| e.code == code)
            .cloned()
            .ok_or_else(|| format!("the code `{code}` is not in the target's GET /errors catalog"))
    }

    /// Why this target cannot run a scenario with these tags and step texts; empty = it can.
    pub fn unmet_needs(&self, tags: &[String], steps: &[String]) -> Vec<String> {
        let mut reasons = Vec::new();
        let has = |t: &str| tags.iter().any(|x| x == t);
        if has("needs-mock") && !self.caps.mock {
            reasons.push(format!(
                "@needs-mock: no scriptable mock upstream (set {})",
                vars::MOCK_CONTROL_URL
            ));
        }
        if has("needs-config") && !self.caps.config {
            reasons.push(format!(
                "@needs-config: the target does not run the harness's test configuration (set {}=1 if it does)",
                vars::GATEWAY_TEST_CONFIG
            ));
        }
        // A scenario whose expected answer another change brings (named in its feature); run
        // it anyway with CONFORMANCE_RUN_EXPECTED_FAILURES=1 to see where the target stands.
        if has("expected-failure")
            && std::env::var("CONFORMANCE_RUN_EXPECTED_FAILURES").as_deref() != Ok("1")
        {
            reasons.push(
                "@expected-failure: the target's catalog does not have this code yet (set CONFORMANCE_RUN_EXPECTED_FAILURES=1 to run it)".to_owned(),
            );
        }
        if has("needs-server-tools") && self.server_side_tools.is_empty() {
            reasons.push(format!(
                "@needs-server-tools: the target names no server-side tool (set {})",
                vars::GATEWAY_SERVER_TOOLS
            ));
        }
        if has("needs-fault-injection") && !self.caps.fault_injection {
            reasons.push(format!(
                "@needs-fault-injection: the target has no fault hooks (set {}=1 if it honours x-gateway-fault)",
                vars::GATEWAY_FAULT_INJECTION
            ));
        }
        for step in steps {
            for role in quoted_after(step, "I use the ", " model") {
                if !self.models.contains_key(&role) {
                    reasons.push(format!(
                        "no alias for the model role `{role}` (set {}{})",
                        vars::GATEWAY_MODEL_PREFIX,
                        role.to_uppercase()
                    ));
                }
            }
            for role in quoted_after(step, "I authenticate with the ", " token") {
                let missing = match role.as_str() {
                    "second tenant" => self
                        .second_token
                        .is_none()
                        .then_some(vars::GATEWAY_SECOND_BEARER),
                    "fresh" => self.fresh.is_empty().then_some(vars::GATEWAY_FRESH_TOKENS),
                    "fresh rate-limited" => self
                        .fresh_limited
                        .is_empty()
                        .then_some(vars::GATEWAY_FRESH_RATE_LIMITED_TOKENS),
                    _ => None,
                };
                if let Some(var) = missing {
                    reasons.push(format!("no `{role}` token (set {var})"));
                }
            }
            for role in quoted_after(step, "names the ", " tenant") {
                if !self.tenants.contains_key(&role) {
                    let var = if role == "second" {
                        vars::GATEWAY_SECOND_TENANT
                    } else {
                        vars::GATEWAY_PRIMARY_TENANT
                    };
                    reasons.push(format!("no tenant id for `{role}` (set {var})"));
                }
            }
        }
        reasons.dedup();
        reasons
    }
}

/// What is known about an external gateway (from a target file, the environment, or built
/// by a test).
#[derive(Clone, Debug)]
pub struct ExternalSpec {
    /// The name history and the matrix know the target by (None: its URL). A peer started
    /// on a fresh ephemeral port each run needs one, or every run would be a new target.
    pub name: Option<String>,
    /// The contract to judge by (None: the default `dgx`).
    pub profile: Option<Arc<Profile>>,
    /// Credential header name (default `authorization`) and scheme (default `Bearer`).
    pub credential_header: String,
    pub credential_scheme: String,
    pub extra_headers: Vec<(String, String)>,
    pub retries: usize,
    pub max_body_bytes: Option<u64>,
    pub url: String,
    pub bearer: String,
    pub second_bearer: Option<String>,
    pub tenants: HashMap<String, String>,
    pub fresh: Vec<String>,
    pub fresh_limited: Vec<String>,
    pub models: HashMap<String, String>,
    pub mocks: HashMap<String, MockHandle>,
    pub test_config: bool,
    pub fault_injection: bool,
    pub upstream_secrets: Vec<String>,
    pub upstream_hosts: Vec<String>,
    pub server_side_tools: Vec<String>,
}

impl Default for ExternalSpec {
    fn default() -> ExternalSpec {
        ExternalSpec {
            name: None,
            profile: None,
            credential_header: "authorization".into(),
            credential_scheme: "Bearer".into(),
            extra_headers: Vec::new(),
            retries: 0,
            max_body_bytes: None,
            url: String::new(),
            bearer: String::new(),
            second_bearer: None,
            tenants: HashMap::new(),
            fresh: Vec::new(),
            fresh_limited: Vec::new(),
            models: HashMap::new(),
            mocks: HashMap::new(),
            test_config: false,
            fault_injection: false,
            upstream_secrets: Vec::new(),
            upstream_hosts: Vec::new(),
            server_side_tools: Vec::new(),
        }
    }
}

impl ExternalSpec {
    /// The primary credential as request headers, with the extras.
    pub fn credential(&self) -> Vec<(String, String)> {
        let value = if self.credential_scheme.is_empty() {
            self.bearer.clone()
        } else {
            format!("{} {}", self.credential_scheme, self.bearer)
        };
        let mut out = vec![(self.credential_header.clone(), value)];
        out.extend(self.extra_headers.iter().cloned());
        out
    }

    /// The target file named by `CONFORMANCE_TARGET` (if any), with the variables of
    /// [`vars`] as overrides; None when neither names a URL.
    pub fn from_env() -> Result<Option<ExternalSpec>, String> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let base = match env(vars::CONFORMANCE_TARGET) {
            Some(path) => Some(crate::target_file::load(std::path::Path::new(&path))?),
            None => None,
        };
        let Some(url) = env(vars::GATEWAY_URL).or_else(|| base.as_ref().map(|b| b.url.clone()))
        else {
            return Ok(None);
        };
        let base = base.unwrap_or_default();
        let list = |k: &str| -> Vec<String> {
            env(k)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let bearer = env(vars::GATEWAY_BEARER)
            .or_else(|| (!base.bearer.is_empty()).then(|| base.bearer.clone()))
            .ok_or_else(|| {
                format!(
                    "a target URL is set, so a primary token is required ({} or `tokens.primary` in the target file)",
                    vars::GATEWAY_BEARER
                )
            })?;
        let mut models = base.models.clone();
        for role in MODEL_ROLES {
            if let Some(alias) = env(&format!(
                "{}{}",
                vars::GATEWAY_MODEL_PREFIX,
                role.to_uppercase()
            )) {
                models.insert((*role).to_owned(), alias);
            }
        }
        let mut mocks = base.mocks.clone();
        if let Some(default_mock) = env(vars::MOCK_CONTROL_URL) {
            for role in MODEL_ROLES {
                let url = env(&format!(
                    "{}{}",
                    vars::MOCK_CONTROL_URL_PREFIX,
                    role.to_uppercase()
                ))
                .unwrap_or_else(|| default_mock.clone());
                mocks.insert((*role).to_owned(), MockHandle::remote(&url));
            }
        }
        let mut tenants = base.tenants.clone();
        if let Some(t) = env(vars::GATEWAY_PRIMARY_TENANT) {
            tenants.insert("primary".to_owned(), t);
        }
        if let Some(t) = env(vars::GATEWAY_SECOND_TENANT) {
            tenants.insert("second".to_owned(), t);
        }
        let or_list = |k: &str, from_file: &[String]| {
            let v = list(k);
            if v.is_empty() {
                from_file.to_vec()
            } else {
                v
            }
        };
        let flag = |k: &str, from_file: bool| env(k).map_or(from_file, |v| v == "1");
        Ok(Some(ExternalSpec {
            name: base.name.clone(),
            url,
            bearer,
            second_bearer: env(vars::GATEWAY_SECOND_BEARER).or(base.second_bearer.clone()),
            tenants,
            fresh: or_list(vars::GATEWAY_FRESH_TOKENS, &base.fresh),
            fresh_limited: or_list(vars::GATEWAY_FRESH_RATE_LIMITED_TOKENS, &base.fresh_limited),
            models,
            mocks,
            test_config: flag(vars::GATEWAY_TEST_CONFIG, base.test_config),
            fault_injection: flag(vars::GATEWAY_FAULT_INJECTION, base.fault_injection),
            upstream_secrets: or_list(vars::GATEWAY_UPSTREAM_SECRETS, &base.upstream_secrets),
            upstream_hosts: or_list(vars::GATEWAY_UPSTREAM_HOSTS, &base.upstream_hosts),
            server_side_tools: or_list(vars::GATEWAY_SERVER_TOOLS, &base.server_side_tools),
            retries: match env(vars::GATEWAY_UPSTREAM_RETRIES) {
                Some(v) => v.parse().map_err(|_| {
                    format!(
                        "{} must be a whole number, got `{v}`",
                        vars::GATEWAY_UPSTREAM_RETRIES
                    )
                })?,
                None => base.retries,
            },
            profile: base.profile.clone(),
            credential_header: base.credential_header.clone(),
            credential_scheme: base.credential_scheme.clone(),
            extra_headers: base.extra_headers.clone(),
            max_body_bytes: base.max_body_bytes,
        }))
    }
}

/// `"x"` values in `step` between `before` and `after` (`I use the "litellm" model` → litellm).
fn quoted_after(step: &str, before: &str, after: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(pos) = step.find(before) {
        let rest = &step[pos + before.len()..];
        if let Some(stripped) = rest.strip_prefix('"') {
            if let Some(end) = stripped.find('"') {
                if stripped[end + 1..].starts_with(after) {
                    out.push(stripped[..end].to_owned());
                }
            }
        }
    }
    out
}

/// `host`, `host:port` and `port` of a URL, the forms in which an upstream could leak.
pub(crate) fn host_forms(url: &str) -> Vec<String> {
    let Ok(u) = reqwest::Url::parse(url) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(host) = u.host_str() {
        out.push(host.to_owned());
        if let Some(port) = u.port() {
            out.push(format!("{host}:{port}"));
            out.push(port.to_string());
        }
    }
    out
}

async fn fetch_json(
    http: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
) -> Option<Value> {
    let mut rb = http.get(url).timeout(Duration::from_secs(10));
    for (n, v) in headers {
        rb = rb.header(n.as_str(), v.as_str());
    }
    let resp = rb.send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// Reads `{"entries": [...]}` into catalog rows.
pub fn parse_catalog(body: &Value) -> Result<Vec<CatalogEntry>, String> {
    let entries = body
        .get("entries")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            format!(
                "GET /errors has no `entries` array: {}",
                crate::text::clip(&body.to_string(), 300)
            )
        })?;
    entries
        .iter()
        .map(|e| {
            let code = e.get("code").and_then(Value::as_str);
            let error_type = e.get("type").and_then(Value::as_str);
            let status = e.get("http_status").and_then(Value::as_u64);
            match (code, error_type, status) {
                (Some(code), Some(t), Some(s)) => Ok(CatalogEntry {
                    code: code.to_owned(),
                    error_type: t.to_owned(),
                    http_status: u16::try_from(s).unwrap_or(0),
                    raw: e.clone(),
                }),
                _ => Err(format!("catalog entry without code/type/http_status: {e}")),
            }
        })
        .collect()
}
