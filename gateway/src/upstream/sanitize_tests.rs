//! A corpus of real secret SHAPES (fake values) and the sentences around them.

use super::*;

fn ctx() -> SanitizeContext<'static> {
    SanitizeContext {
        host: "llm.internal.example",
        api_key: Some("sk-secret-123"),
    }
}

/// (secret shape, what it is) — every value is fake, built in the vendor's format.
const CORPUS: &[(&str, &str)] = &[
    ("AKIAIOSFODNN7EXAMPLE", "AWS access key id"),
    ("ASIAY34FZKBOKMUTVV7A", "AWS temporary key id"),
    ("ghp_1234567890abcdefghijABCDEFGHIJ123456", "GitHub PAT"),
    ("gho_1234567890abcdefghijABCDEFGHIJ123456", "GitHub OAuth token"),
    (
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "GitHub fine-grained PAT",
    ),
    ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "Stripe secret key"),
    ("rk_live_51H8ExampleExampleExample00", "Stripe restricted key"),
    ("sk-proj-abcdefghijklmnopqrstuvwxyz0123456789", "OpenAI project key"),
    ("sk-ant-api03-abcdefghijklmnopqrstuvwx", "Anthropic key"),
    ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "Slack bot token"),
    ("xoxp-123456789012-123456789012-abcdefabcdef", "Slack user token"),
    (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "JWT",
    ),
    ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "Google API key"),
    ("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "Hugging Face token"),
    ("0123456789abcdef0123456789abcdef01234567", "hex run"),
    ("dGhpcyBpcyBhIGxvbmcgYmFzZTY0IHN0cmluZyBmb3IgdGVzdHM=", "base64 run"),
    ("10.0.3.7:8000", "private IP with port"),
    ("192.168.1.20", "private IP"),
    ("[fd00::1]:8080", "IPv6 with port"),
    ("vllm-0.vllm.inference.svc.cluster.local:8000", "cluster host name"),
    ("litellm-proxy.default.svc", "cluster service name"),
    ("api.internal-vendor.com", "host name"),
    ("localhost:4000", "localhost with port"),
    ("https://llm.internal.example:8000/v1/chat", "URL"),
    ("redis://10.1.2.3:6379/0", "non-HTTP URL"),
    ("sk-secret-123", "the gateway's own key"),
];

#[test]
fn every_secret_shape_is_removed_and_the_sentence_kept() {
    for (secret, what) in CORPUS {
        for wrapped in [
            format!("connection refused at {secret} while calling the model"),
            format!("bad key '{secret}', please retry"),
            format!("error (key={secret}) while calling the model"),
        ] {
            let out = sanitize(&wrapped, ctx());
            assert!(!out.contains(secret), "{what} leaked: {out}");
            assert!(!out.contains("redacted"), "{out}");
            assert!(
                out.contains("while calling the model") || out.contains("please retry"),
                "{what}: the sentence was lost: {out}"
            );
        }
    }
}

#[test]
fn bearer_credentials_and_provider_names_are_dropped() {
    let out = sanitize(
        "invalid header Authorization: Bearer abc.def-ghi from the Azure gateway",
        ctx(),
    );
    assert!(
        !out.contains("abc.def-ghi") && !out.to_lowercase().contains("azure"),
        "{out}"
    );
    assert!(out.contains("invalid header"), "{out}");
    for p in [
        "LiteLLM", "OpenAI", "Bedrock", "Vertex", "Gemini", "Mistral", "Groq",
    ] {
        let out = sanitize(&format!("{p} rejected the request: too many tokens"), ctx());
        assert_eq!(out, "rejected the request: too many tokens");
    }
}

#[test]
fn ordinary_text_passes_unchanged_and_is_bounded() {
    let s = "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (v1.2, e.g. max_tokens=16).";
    assert_eq!(sanitize(s, ctx()), s);
    assert_eq!(sanitize("", ctx()), "no message");
    let long = "word ".repeat(500);
    let out = sanitize(&long, ctx());
    assert!(out.len() <= 504 && out.ends_with('…'), "{}", out.len());
}
