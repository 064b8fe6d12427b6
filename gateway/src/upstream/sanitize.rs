//! The sanitiser: upstream text reaches the caller only after every host, address, URL and
//! key-shaped token is removed (dropped, not replaced by a marker), so that what is left is
//! the upstream's own sentence.
//!
//! One entry point, [`sanitize`]; vendor-specific cleaners (e.g. LiteLLM's exception-class
//! prefixes) run before it and call it last.
//!
//! The key shapes are taken from gitleaks' default rule set (`config/gitleaks.toml`,
//! <https://github.com/gitleaks/gitleaks>, MIT licence): aws-access-token, github-pat,
//! github-oauth, github-app-token, github-refresh-token, github-fine-grained-pat,
//! stripe-access-token, slack-*-token, jwt, gcp-api-key, huggingface-access-token,
//! openai-api-key (loosened to any `sk-` token), plus the generic long hex/base64 runs.
//! No crates.io crate with a maintained secret-pattern set was available to depend on.

use std::sync::LazyLock;

use regex::RegexSet;

use crate::config::Upstream;

/// What the sanitiser knows about the upstream the text came from.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SanitizeContext<'a> {
    /// The upstream's host (always removed, whatever its shape).
    pub host: &'a str,
    /// The gateway's own key for it (always removed).
    pub api_key: Option<&'a str>,
}

impl<'a> From<&'a Upstream> for SanitizeContext<'a> {
    fn from(u: &'a Upstream) -> Self {
        SanitizeContext {
            host: &u.host,
            api_key: u.api_key.as_deref(),
        }
    }
}

/// Vendor and product names: the caller talks to this gateway's aliases, not to a vendor.
const PROVIDERS: &[&str] = &[
    "litellm",
    "openrouter",
    "vllm",
    "openai",
    "anthropic",
    "azure",
    "bedrock",
    "vertex",
    "gemini",
    "cohere",
    "mistral",
    "groq",
    "together",
    "fireworks",
    "deepseek",
    "huggingface",
    "ollama",
    "replicate",
    "perplexity",
    "portkey",
    "sglang",
    "tgi",
];

/// Longest message handed to a caller (bytes, then `…`).
const MAX_LEN: usize = 500;

static SECRET: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new([
        // URLs of any scheme.
        r"(?i)[a-z][a-z0-9+.-]*://",
        // gitleaks aws-access-token
        r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}",
        // gitleaks github-pat / github-oauth / github-app-token / github-refresh-token
        r"(?:ghp|gho|ghu|ghs|ghr)_[0-9A-Za-z]{36}",
        // gitleaks github-fine-grained-pat
        r"github_pat_\w{20,}",
        // gitleaks stripe-access-token
        r"(?:sk|rk)_(?:test|live|prod)_[A-Za-z0-9]{10,99}",
        // OpenAI / Anthropic style keys (gitleaks openai-api-key, loosened)
        r"(?i)^sk-[A-Za-z0-9_-]{6,}",
        // gitleaks slack-bot/user/app tokens
        r"xox[abposr]-[0-9A-Za-z-]{10,}",
        r"xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+",
        // gitleaks jwt
        r"ey[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*",
        // gitleaks gcp-api-key
        r"AIza[\w-]{35}",
        // gitleaks huggingface-access-token
        r"hf_[A-Za-z]{30,}",
        // long hex runs (hashes, ids, raw keys)
        r"[0-9A-Fa-f]{32,}",
        // long base64/base64url runs
        r"[A-Za-z0-9+/_=-]{40,}",
        // IPv4, with or without a port
        r"(?:\d{1,3}\.){3}\d{1,3}",
        // IPv6 (three or more colon groups of hex)
        r"^\[?[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,}\]?(?::\d+)?$",
        r"\[[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,}\]",
        // host names: dotted names ending in a label of letters (`svc.cluster.local`,
        // `llm.internal.example`, `api.vendor.com`), with or without a port
        r"(?i)^[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z][a-z0-9-]+(?::\d+)?$",
        // any name with a port, and localhost
        r"(?i)^[a-z0-9._-]+:\d{2,5}$",
        r"(?i)^localhost$",
    ])
    .unwrap_or_else(|_| RegexSet::empty())
});

/// Whether one word (surrounding punctuation already trimmed) must not reach a caller.
fn is_secret(word: &str, ctx: &SanitizeContext<'_>) -> bool {
    let lower = word.to_ascii_lowercase();
    PROVIDERS.iter().any(|p| lower.contains(p))
        || (!ctx.host.is_empty() && lower.contains(&ctx.host.to_ascii_lowercase()))
        || ctx
            .api_key
            .is_some_and(|k| !k.is_empty() && word.contains(k))
        || SECRET.is_match(word)
}

/// The upstream's text for a caller: words that are (or contain) a URL, host, address,
/// key-shaped token, a `Bearer` credential or a provider name are dropped; the rest of the
/// sentence stays as written. Bounded to 500 bytes; never empty.
pub(crate) fn sanitize<'a>(msg: &str, ctx: impl Into<SanitizeContext<'a>>) -> String {
    let ctx = ctx.into();
    let mut kept: Vec<&str> = Vec::new();
    let mut len = 0usize;
    let mut after_bearer = false;
    for word in msg.split_whitespace() {
        // Quotes, brackets and trailing punctuation around a key or URL must not hide it.
        let core = word.trim_matches(|c: char| !c.is_alphanumeric() && c != '[' && c != ']');
        let core = core.trim_matches(|c| c == '[' || c == ']');
        if after_bearer {
            after_bearer = false;
            continue;
        }
        if core.eq_ignore_ascii_case("bearer") {
            after_bearer = true;
            continue;
        }
        let secret = is_secret(core, &ctx)
            || core
                .split(['=', ':', '/', '@', ',', ';', '(', ')', '\'', '"'])
                .filter(|p| !p.is_empty())
                .any(|p| is_secret(p, &ctx) && p.len() > 3);
        if secret {
            continue;
        }
        len += word.len() + 1;
        kept.push(word);
        if len > MAX_LEN {
            break;
        }
    }
    let mut out = kept.join(" ");
    if out.len() > MAX_LEN {
        let cut = out
            .char_indices()
            .take_while(|(i, _)| *i < MAX_LEN)
            .last()
            .map_or(0, |(i, c)| i + c.len_utf8());
        out.truncate(cut);
        out.push('…');
    }
    if out.is_empty() {
        "no message".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
#[path = "sanitize_tests.rs"]
mod tests;
