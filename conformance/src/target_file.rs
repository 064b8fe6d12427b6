//! Target files (`CONFORMANCE_TARGET=target.yaml`): everything the harness needs to know
//! about a gateway in one place: URL, credential scheme, extra headers, model roles, tokens,
//! tenants, capabilities, retries. The `GATEWAY_*` / `MOCK_CONTROL_URL*` variables override
//! single fields (see `target::vars`). Unknown keys are an error, so a typo is not ignored.
//!
//! ```yaml
//! url: http://127.0.0.1:4000
//! name: LiteLLM 1.106.2                           # history and matrix name (default: url)
//! credential: { header: X-API-Key, scheme: "" }   # default: Authorization, Bearer
//! headers: { x-portkey-provider: openai }         # sent with every request
//! tokens: { primary: sk-1, second_tenant: sk-2, fresh: [sk-3], fresh_rate_limited: [sk-4] }
//! tenants: { primary: t1, second: t2 }
//! models: { default: gpt-4o-mini }
//! mock: { control_url: http://127.0.0.1:9100 }    # the `mocks` binary behind the gateway
//! capabilities: { test_config: false, fault_injection: false }
//! retries: 2                                      # the gateway's upstream retries
//! upstream: { secrets: [sk-up], hosts: [10.0.0.5] }
//! profile: openai                                 # or a path; CONFORMANCE_PROFILE overrides
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use crate::mock::MockHandle;
use crate::target::{ExternalSpec, MODEL_ROLES};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Credential {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    scheme: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tokens {
    #[serde(default)]
    primary: Option<String>,
    #[serde(default)]
    second_tenant: Option<String>,
    #[serde(default)]
    fresh: Vec<String>,
    #[serde(default)]
    fresh_rate_limited: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mock {
    #[serde(default)]
    control_url: Option<String>,
    /// A different mock per model role.
    #[serde(default)]
    roles: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Caps {
    #[serde(default)]
    test_config: bool,
    #[serde(default)]
    fault_injection: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Upstream {
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    url: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    credential: Credential,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    tokens: Tokens,
    #[serde(default)]
    tenants: BTreeMap<String, String>,
    #[serde(default)]
    models: BTreeMap<String, String>,
    #[serde(default)]
    mock: Mock,
    #[serde(default)]
    capabilities: Caps,
    #[serde(default)]
    retries: usize,
    #[serde(default)]
    upstream: Upstream,
    #[serde(default)]
    server_side_tools: Vec<String>,
    #[serde(default)]
    max_body_bytes: Option<u64>,
    /// A profile name or path, used when `CONFORMANCE_PROFILE` is unset.
    #[serde(default)]
    pub profile: Option<String>,
}

/// Reads a target file into an [`ExternalSpec`] (the profile stays a name: the runner
/// loads it, so `CONFORMANCE_PROFILE` can override it).
pub fn load(path: &Path) -> Result<ExternalSpec, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("CONFORMANCE_TARGET: cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("CONFORMANCE_TARGET {}: {e}", path.display()))
}

/// The profile a target file names, if any.
pub fn profile_of(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_norway::from_str::<TargetFile>(&text).ok()?.profile
}

pub fn parse(text: &str) -> Result<ExternalSpec, String> {
    let f: TargetFile = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    if reqwest::Url::parse(&f.url).is_err() {
        return Err(format!("`url: {}` is not a URL", f.url));
    }
    for role in f.models.keys().chain(f.mock.roles.keys()) {
        if !MODEL_ROLES.contains(&role.as_str()) {
            return Err(format!(
                "unknown model role `{role}` (roles: {})",
                MODEL_ROLES.join(", ")
            ));
        }
    }
    let mut mocks = HashMap::new();
    if let Some(url) = &f.mock.control_url {
        for role in MODEL_ROLES {
            let u = f.mock.roles.get(*role).unwrap_or(url);
            mocks.insert((*role).to_owned(), MockHandle::remote(u));
        }
    }
    let d = ExternalSpec::default();
    Ok(ExternalSpec {
        name: f.name.filter(|n| !n.trim().is_empty()),
        url: f.url,
        bearer: f.tokens.primary.unwrap_or_default(),
        second_bearer: f.tokens.second_tenant,
        tenants: f.tenants.into_iter().collect(),
        fresh: f.tokens.fresh,
        fresh_limited: f.tokens.fresh_rate_limited,
        models: f.models.into_iter().collect(),
        mocks,
        test_config: f.capabilities.test_config,
        fault_injection: f.capabilities.fault_injection,
        upstream_secrets: f.upstream.secrets,
        upstream_hosts: f.upstream.hosts,
        server_side_tools: f.server_side_tools,
        profile: None,
        credential_header: f
            .credential
            .header
            .map_or(d.credential_header, |h| h.to_ascii_lowercase()),
        credential_scheme: f.credential.scheme.unwrap_or(d.credential_scheme),
        extra_headers: f.headers.into_iter().collect(),
        retries: f.retries,
        max_body_bytes: f.max_body_bytes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_full_target_file_reads() {
        let spec = parse(
            "url: http://127.0.0.1:4000\ncredential: { header: X-API-Key, scheme: '' }\nheaders: { x-portkey-provider: openai }\ntokens: { primary: k1, fresh: [k2, k3] }\nmodels: { default: m1 }\nmock: { control_url: 'http://127.0.0.1:9100' }\nretries: 2\nupstream: { secrets: [s1] }\n",
        )
        .unwrap();
        assert_eq!(spec.credential_header, "x-api-key");
        assert_eq!(spec.credential_scheme, "");
        assert_eq!(spec.credential()[0], ("x-api-key".into(), "k1".into()));
        assert_eq!(
            spec.credential()[1],
            ("x-portkey-provider".into(), "openai".into())
        );
        assert_eq!(spec.retries, 2);
        assert_eq!(spec.name, None);
        assert_eq!(
            parse("url: http://127.0.0.1:1\nname: LiteLLM 1.106.2\n")
                .unwrap()
                .name
                .as_deref(),
            Some("LiteLLM 1.106.2")
        );
        assert_eq!(spec.fresh.len(), 2);
        assert_eq!(spec.models["default"], "m1");
        assert!(spec.mocks.contains_key("litellm"));
    }

    #[test]
    fn bearer_is_the_default_scheme_and_typos_are_errors() {
        let spec = parse("url: http://127.0.0.1:1\ntokens: { primary: t }\n").unwrap();
        assert_eq!(
            spec.credential()[0],
            ("authorization".into(), "Bearer t".into())
        );
        assert!(parse("url: http://127.0.0.1:1\nretires: 2\n").is_err());
        assert!(parse("url: http://127.0.0.1:1\nmodels: { nope: m }\n").is_err());
    }
}
