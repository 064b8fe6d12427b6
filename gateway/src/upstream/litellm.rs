//! LiteLLM proxy's dialect on the way back: what its error answers wrap around the upstream's
//! own sentence, and where it puts the upstream's retry hint.
//!
//! Wire facts (peers/WIRE_FACTS.md, LiteLLM 1.106.2, fixtures in
//! `peers/fixtures/litellm-1.106.2-num_retries-0/`):
//! - L1: the upstream's `retry-after` is forwarded as `llm_provider-retry-after` (no
//!   `retry-after`); a plain `retry-after` is LiteLLM's own (router cooldown, L2).
//! - L4/L7: messages open with a chain of class prefixes `litellm.<Class>: ` / `<Class>: ` and
//!   then `<Provider>Exception - ` before the upstream's sentence.
//! - L5/L8: router text is appended: `\n\nLiteLLM: model group '<group>' failed …`, for
//!   context-window errors `\nmodel=<group>. context_window_fallbacks=…` first, for timeouts
//!   `\n\nDeployment Info:`.
//!
//! Only text that matches these shapes is touched, so other upstreams' messages pass as they are.

use axum::http::HeaderMap;

/// Where LiteLLM's router text starts (WIRE_FACTS "Reading LiteLLM's answers").
const ROUTER_TEXT: [&str; 3] = [
    "\n\nLiteLLM: model group '",
    "\nmodel=",
    "\n\nDeployment Info:",
];

/// The upstream's retry hint in whole seconds: `retry-after`, else LiteLLM's renamed
/// `llm_provider-retry-after` (L1). Only delta-seconds are read; an HTTP date is ignored.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<u64> {
    ["retry-after", "llm_provider-retry-after"]
        .iter()
        .find_map(|name| {
            headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
}

/// Whether `word` is one class prefix: `litellm.BadRequestError:` or `RateLimitError:`.
fn is_class_prefix(word: &str) -> bool {
    let Some(name) = word.strip_suffix(':') else {
        return false;
    };
    let name = name.strip_prefix("litellm.").unwrap_or(name);
    is_class_name(name)
        && name.len() > "Error".len()
        && name.starts_with(|c: char| c.is_ascii_uppercase())
}

/// A Python exception class name as LiteLLM writes them: `BadRequestError`, `OpenAIException`.
fn is_class_name(word: &str) -> bool {
    (word.ends_with("Error") || word.ends_with("Exception"))
        && word.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The upstream's own sentence inside a LiteLLM error message: class prefixes, the
/// `<Provider>Exception - ` marker and the router text removed; then the upstream model name
/// the gateway sent (LiteLLM's model group) replaced by the caller's alias. A message without
/// LiteLLM's shapes only gets the name replacement.
pub(crate) fn upstream_sentence(msg: &str, upstream_model: &str, alias: &str) -> String {
    let mut rest = msg.trim_start();
    let mut stripped = false;
    // `litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: `
    while let Some((word, tail)) = rest.split_once(' ') {
        if !is_class_prefix(word) {
            break;
        }
        rest = tail.trim_start();
        stripped = true;
    }
    // `OpenAIException - ` (other providers: `<Name>Exception - `, exception_mapping_utils.py:303-306;
    // Anthropic's context window: `AnthropicError - `, the same file).
    if let Some((word, tail)) = rest.split_once(" - ") {
        if stripped && is_class_name(word) {
            rest = tail;
        }
    }
    let end = ROUTER_TEXT
        .iter()
        .filter_map(|t| rest.find(t))
        .min()
        .unwrap_or(rest.len());
    let sentence = rest[..end].trim();
    replace_name(sentence, upstream_model, alias)
}

/// `text` with every whole occurrence of the model name `from` (not inside a longer name such
/// as `m` in `prompt`) replaced by `to`.
fn replace_name(text: &str, from: &str, to: &str) -> String {
    if from.is_empty() || from == to {
        return text.to_owned();
    }
    let in_name = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':');
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (i, _) in text.match_indices(from) {
        let before = text[..i].chars().next_back();
        let after = text[i + from.len()..].chars().next();
        // A trailing `.` or `:` ends a sentence or a label, not the name.
        let after_ok = after.is_none_or(|c| !in_name(c) || matches!(c, '.' | ':'));
        if i >= last && before.is_none_or(|c| !in_name(c)) && after_ok {
            out.push_str(&text[last..i]);
            out.push_str(to);
            last = i + from.len();
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Messages verbatim from peers/fixtures/litellm-1.106.2-num_retries-0/*.http.
    const POLICY: &str = "litellm.BadRequestError: OpenAIException - the prompt was rejected by policy\n\nLiteLLM: model group 'scout' failed with the error above. No fallback was attempted.";
    const RATE: &str = "litellm.RateLimitError: RateLimitError: OpenAIException - slow down\n\nLiteLLM: model group 'scout' failed with the error above. No fallback was attempted.";
    const LOADING: &str = "litellm.ServiceUnavailableError: ServiceUnavailableError: OpenAIException - model is loading\n\nLiteLLM: model group 'scout' failed with the error above. No fallback was attempted.";
    const CONTEXT: &str = "litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: OpenAIException - This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (9000 in the messages, 0 in the completion). Please reduce the length of the messages or completion.\nmodel=scout. context_window_fallbacks=None. fallbacks=None.\n\nSet 'context_window_fallback' - https://docs.litellm.ai/docs/routing#fallbacks\n\nLiteLLM: model group 'scout' failed with the error above. No fallback was attempted.";
    const DROP: &str = "litellm.APIConnectionError: APIConnectionError: OpenAIException - Response payload is not completed: <TransferEncodingError: 400, message='Not enough data to satisfy transfer length header.'>";

    #[test]
    fn prefixes_and_router_text_are_removed() {
        assert_eq!(
            upstream_sentence(POLICY, "scout", "chat-proxy"),
            "the prompt was rejected by policy"
        );
        assert_eq!(upstream_sentence(RATE, "scout", "a"), "slow down");
        assert_eq!(upstream_sentence(LOADING, "scout", "a"), "model is loading");
        assert_eq!(
            upstream_sentence(CONTEXT, "scout", "a"),
            "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (9000 in the messages, 0 in the completion). Please reduce the length of the messages or completion."
        );
        // Anthropic behind LiteLLM: `ContextWindowExceededError(message="AnthropicError - …")`
        // (litellm/litellm_core_utils/exception_mapping_utils.py).
        assert_eq!(
            upstream_sentence(
                "litellm.ContextWindowExceededError: litellm.BadRequestError: AnthropicError - prompt is too long: 210000 tokens > 200000 maximum",
                "scout",
                "a"
            ),
            "prompt is too long: 210000 tokens > 200000 maximum"
        );
        assert_eq!(
            upstream_sentence(DROP, "scout", "a"),
            "Response payload is not completed: <TransferEncodingError: 400, message='Not enough data to satisfy transfer length header.'>"
        );
    }

    #[test]
    fn other_messages_pass_and_the_upstream_model_becomes_the_alias() {
        assert_eq!(
            upstream_sentence("the prompt was rejected by policy", "m", "a"),
            "the prompt was rejected by policy"
        );
        // After a class name, a dash of the upstream's own sentence is not the marker.
        assert_eq!(
            upstream_sentence(
                "litellm.BadRequestError: temperature - must be between 0 and 2",
                "m",
                "a"
            ),
            "temperature - must be between 0 and 2"
        );
        // A dash inside an ordinary message is not LiteLLM's marker.
        assert_eq!(
            upstream_sentence("ValueException - kept", "m", "a"),
            "ValueException - kept"
        );
        assert_eq!(
            upstream_sentence(
                "model llama-4-scout is not served",
                "llama-4-scout",
                "scout"
            ),
            "model scout is not served"
        );
        assert_eq!(
            upstream_sentence("no such model 'scout-2' or scout.", "scout", "chat-proxy"),
            "no such model 'scout-2' or chat-proxy."
        );
    }

    #[test]
    fn retry_after_reads_both_names() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("llm_provider-retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(7));
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(3));
    }
}
