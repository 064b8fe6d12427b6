//! Unit tests of `config`.
use super::*;
use std::io::Write;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    p.display().to_string()
}

const GATEWAY: &str = "upstreams:\n  - name: local\n    kind: vllm\n    base_url: http://127.0.0.1:9/v1\nmodels:\n  - alias: small\n    upstream: local\n    upstream_model: m\n    constraints: { min_max_tokens: 16 }\n";

fn env(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[test]
fn defaults_follow_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let g = write(&dir, "g.yaml", GATEWAY);
    let cfg = Config::from_vars(
        &env(&[
            (vars::GATEWAY_CONFIG, g),
            (vars::RUST_API_BEARER, "t".into()),
        ]),
        &|_| None,
    )
    .unwrap();
    assert_eq!(
        cfg.rate_limit,
        RateLimit {
            rps: 1.0,
            burst: 30
        }
    );
    assert_eq!(cfg.max_body_bytes, 33_554_432);
    assert_eq!(cfg.http_total_timeout, Duration::from_secs(600));
    assert_eq!(cfg.max_tool_iterations, 10);
    assert_eq!(
        cfg.upstreams[0].chat_url,
        "http://127.0.0.1:9/v1/chat/completions"
    );
    assert_eq!(cfg.upstreams[0].health_url, "http://127.0.0.1:9/health");
    assert!(!cfg.demo);
}

#[test]
fn unknown_field_names_file_path_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let g = write(&dir, "g.yaml", GATEWAY);
    let t = write(
            &dir,
            "tokens.yaml",
            "tenants:\n  - id: a\n    tokens: [{ sha256: x }]\n    allowed_models: ['*']\n    colour: red\n",
        );
    let e = Config::from_vars(
        &env(&[(vars::GATEWAY_CONFIG, g), (vars::TOKENS_FILE, t)]),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("tokens.yaml"), "{e}");
    assert!(e.contains("tenants[0]"), "{e}");
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn bad_hash_and_unknown_alias_are_rejected_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let g = write(&dir, "g.yaml", GATEWAY);
    let t = write(
        &dir,
        "tokens.yaml",
        "tenants:\n  - id: a\n    tokens: [{ sha256: abc }]\n    allowed_models: ['*']\n",
    );
    let e = Config::from_vars(
        &env(&[(vars::GATEWAY_CONFIG, g.clone()), (vars::TOKENS_FILE, t)]),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("tenants[0].tokens[0].sha256"), "{e}");
    let h = hex::encode(sha256("x"));
    let t = write(
        &dir,
        "tokens2.yaml",
        &format!(
            "tenants:\n  - id: a\n    tokens: [{{ sha256: {h} }}]\n    allowed_models: [nope]\n"
        ),
    );
    let e = Config::from_vars(
        &env(&[(vars::GATEWAY_CONFIG, g), (vars::TOKENS_FILE, t)]),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("tenants[0].allowed_models[0]"), "{e}");
}

#[test]
fn an_empty_upstream_model_is_rejected_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let g = write(
        &dir,
        "g.yaml",
        &GATEWAY.replace("upstream_model: m", "upstream_model: ' '"),
    );
    let h = hex::encode(sha256("x"));
    let t = write(
        &dir,
        "tokens.yaml",
        &format!(
            "tenants:\n  - id: a\n    tokens: [{{ sha256: {h} }}]\n    allowed_models: ['*']\n"
        ),
    );
    let e = Config::from_vars(
        &env(&[(vars::GATEWAY_CONFIG, g), (vars::TOKENS_FILE, t)]),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("models[0].upstream_model"), "{e}");
}

#[test]
fn missing_api_key_env_and_bad_numbers_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let g = write(
            &dir,
            "g.yaml",
            "upstreams:\n  - { name: u, kind: openrouter, base_url: 'https://openrouter.ai/api/v1', api_key_env: OR_KEY }\nmodels: []\n",
        );
    let e = Config::from_vars(
        &env(&[
            (vars::GATEWAY_CONFIG, g),
            (vars::RUST_API_BEARER, "t".into()),
        ]),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("upstreams[0].api_key_env"), "{e}");
    let e = Config::from_vars(&env(&[(vars::RATE_LIMIT_BURST, "lots".into())]), &|_| None)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("environment: RATE_LIMIT_BURST"), "{e}");
}

#[test]
fn no_gateway_file_means_demo_mode() {
    let cfg = Config::from_vars(&HashMap::new(), &|_| None);
    // The demo token only exists when there is no tokens.yaml in the working directory.
    if !Path::new(DEFAULT_TOKENS_FILE).exists() {
        let cfg = cfg.unwrap();
        assert!(cfg.demo);
        assert_eq!(cfg.tenants[0].token_hashes[0], sha256(DEMO_TOKEN));
    }
}

#[test]
fn the_shipped_examples_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let cfg = Config::from_vars(
        &env(&[
            (
                vars::GATEWAY_CONFIG,
                root.join("gateway.yaml").display().to_string(),
            ),
            (
                vars::TOKENS_FILE,
                root.join("tokens.yaml").display().to_string(),
            ),
        ]),
        &|name| Some(format!("key-of-{name}")),
    )
    .unwrap();
    assert_eq!(cfg.tenants.len(), 2);
    assert_eq!(cfg.model("gpt-premium").unwrap().fallbacks.len(), 2);
    assert_eq!(
        cfg.upstreams[2].chat_url,
        "https://openrouter.ai/api/v1/chat/completions"
    );
    assert!(cfg.tenants[0].token_hashes[0] == sha256("change-me-acme"));
}

#[test]
fn edge_limits_come_from_the_environment_with_safe_defaults() {
    let none = |_: &str| None;
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("RUST_API_BEARER".into(), "t".into());
    let d = Config::from_vars(&env, &none).unwrap();
    assert_eq!(d.limits, crate::config::ServerLimits::default());
    env.insert("HEADER_READ_TIMEOUT_SECS".into(), "2.5".into());
    env.insert("MAX_CONNECTIONS_PER_IP".into(), "7".into());
    env.insert("METRICS_BIND_ADDR".into(), "127.0.0.1:9100".into());
    env.insert("WORKER_THREADS".into(), "0".into());
    assert!(
        d.limits.workers >= 1,
        "one connection worker per core by default"
    );
    let c = Config::from_vars(&env, &none).unwrap();
    assert_eq!(
        c.limits.workers, 0,
        "0: tokio's pool serves the connections"
    );
    assert_eq!(c.limits.header_read_timeout, Duration::from_millis(2500));
    assert_eq!(c.limits.max_connections_per_ip, 7);
    assert_eq!(
        c.limits.metrics_bind,
        Some("127.0.0.1:9100".parse().unwrap())
    );
    for (k, v) in [
        ("MAX_IN_FLIGHT", "0"),
        ("SHUTDOWN_GRACE_SECS", "-1"),
        ("MAX_HEADER_BYTES", "100"),
        ("METRICS_BIND_ADDR", "nowhere"),
        ("WORKER_THREADS", "257"),
        ("WORKER_THREADS", "-1"),
    ] {
        let mut bad = env.clone();
        bad.insert(k.into(), v.into());
        let e = Config::from_vars(&bad, &none).unwrap_err();
        assert_eq!(e.path, k, "{e}");
    }
}

#[test]
fn redis_bounds_come_from_the_environment_with_safe_defaults() {
    let none = |_: &str| None;
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("RUST_API_BEARER".into(), "t".into());
    let d = Config::from_vars(&env, &none).unwrap();
    assert_eq!(
        d.redis_limits,
        RedisLimits {
            timeout: Duration::from_millis(500),
            retry: Duration::from_secs(1)
        }
    );
    env.insert("REDIS_TIMEOUT_MS".into(), "120".into());
    env.insert("REDIS_RETRY_MS".into(), "250".into());
    let c = Config::from_vars(&env, &none).unwrap();
    assert_eq!(c.redis_limits.timeout, Duration::from_millis(120));
    assert_eq!(c.redis_limits.retry, Duration::from_millis(250));
    for (k, v) in [
        ("REDIS_TIMEOUT_MS", "0"),
        ("REDIS_RETRY_MS", "soon"),
        ("REDIS_TIMEOUT_MS", "3600001"),
    ] {
        let mut bad = env.clone();
        bad.insert(k.into(), v.into());
        let e = Config::from_vars(&bad, &none).unwrap_err();
        assert_eq!(e.path, k, "{e}");
    }
}
