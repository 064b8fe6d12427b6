//! Tenant budgets (requests and tokens per UTC day, per alias or `*`): the in-process ledger.
//!
//! A request reserves before the upstream call (one request, plus its prompt estimate and its
//! output cap) and settles the real usage afterwards, so parallel requests cannot overspend
//! either budget: a request is refused when used + reserved + its own reservation would pass
//! the limit.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::config::{Budget, Tenant};

pub const DAY: u64 = 86_400;

/// Bytes per token of the estimates (OpenAI's rule of thumb for English text: ~4 characters
/// per token). Cheap and deliberately simple: it only has to stop a budget being overspent
/// before the upstream reports the real count, which then replaces it.
pub(crate) const BYTES_PER_TOKEN: u64 = 4;

/// Tokens a streamed text of `bytes` bytes is estimated at.
pub(crate) fn tokens_of_bytes(bytes: u64) -> u64 {
    bytes.div_ceil(BYTES_PER_TOKEN)
}

/// The prompt estimate of a chat body: the text of its messages (string contents, text parts,
/// tool-call arguments) at [`BYTES_PER_TOKEN`], plus 4 tokens of framing per message. Image
/// parts are not counted by their (base64) bytes; the upstream's usage settles them.
pub fn prompt_estimate(body: &serde_json::Map<String, serde_json::Value>) -> u64 {
    use serde_json::Value;
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return 0;
    };
    let mut bytes = 0u64;
    for m in messages {
        match m.get("content") {
            Some(Value::String(s)) => bytes += s.len() as u64,
            Some(Value::Array(parts)) => {
                for p in parts {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        bytes += t.len() as u64;
                    }
                }
            }
            _ => {}
        }
        for c in m
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(a) = c.pointer("/function/arguments").and_then(Value::as_str) {
                bytes += a.len() as u64;
            }
        }
    }
    tokens_of_bytes(bytes).saturating_add(4 * messages.len() as u64)
}

/// What one request holds against one budget.
#[derive(Clone, Debug)]
pub struct Hold {
    pub key: String,
    pub reserved_tokens: u64,
    /// Where the reservation was made: it is settled there and nowhere else.
    pub in_redis: bool,
}

/// The budgets that apply to `alias` for `tenant`.
pub(crate) fn applicable<'t>(
    tenant: &'t Tenant,
    alias: &str,
) -> impl Iterator<Item = &'t Budget> + 't {
    let alias = alias.to_owned();
    tenant
        .budgets
        .iter()
        .filter(move |b| b.model == alias || b.model == "*")
}

pub fn budget_key(tenant: &str, budget_model: &str, day: u64) -> String {
    format!("gw:budget:{tenant}:{budget_model}:{day}")
}

#[derive(Debug, Default)]
pub struct LocalLedger {
    /// key → (requests, tokens used or reserved)
    counters: Mutex<HashMap<String, (u64, u64)>>,
}

impl LocalLedger {
    /// Reserves against every applicable budget, all or nothing.
    pub fn reserve(
        &self,
        tenant: &Tenant,
        alias: &str,
        tokens: u64,
        now_unix: u64,
    ) -> Option<Vec<Hold>> {
        let day = now_unix / DAY;
        let mut counters = self.counters.lock();
        // Old days are dead weight.
        counters.retain(|k, _| k.ends_with(&format!(":{day}")));
        let budgets: Vec<&Budget> = applicable(tenant, alias).collect();
        for b in &budgets {
            let (r, t) = counters
                .get(&budget_key(&tenant.id, &b.model, day))
                .copied()
                .unwrap_or_default();
            if b.requests_per_day.is_some_and(|lim| r + 1 > lim)
                || b.tokens_per_day
                    .is_some_and(|lim| t.saturating_add(tokens) > lim)
            {
                return None;
            }
        }
        let mut holds = Vec::with_capacity(budgets.len());
        for b in budgets {
            let key = budget_key(&tenant.id, &b.model, day);
            let c = counters.entry(key.clone()).or_default();
            c.0 = c.0.saturating_add(1);
            c.1 = c.1.saturating_add(tokens);
            holds.push(Hold {
                in_redis: false,
                key,
                reserved_tokens: tokens,
            });
        }
        Some(holds)
    }

    /// Tokens used or reserved under `key` (see [`budget_key`]): for tests and operators.
    pub fn tokens(&self, key: &str) -> u64 {
        self.counters.lock().get(key).map_or(0, |c| c.1)
    }

    pub fn settle(&self, holds: &[Hold], used_tokens: u64) {
        let mut counters = self.counters.lock();
        for h in holds {
            if let Some(c) = counters.get_mut(&h.key) {
                c.1 =
                    c.1.saturating_add(used_tokens)
                        .saturating_sub(h.reserved_tokens);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Allowed;

    fn tenant(req: Option<u64>, tok: Option<u64>) -> Tenant {
        Tenant {
            id: "t".into(),
            token_hashes: vec![],
            allowed: Allowed::All,
            rate_limit: None,
            budgets: vec![Budget {
                model: "m".into(),
                requests_per_day: req,
                tokens_per_day: tok,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn request_budget_is_exact_and_resets_next_day() {
        let l = LocalLedger::default();
        let t = tenant(Some(2), None);
        assert!(l.reserve(&t, "m", 0, 10).is_some());
        assert!(l.reserve(&t, "m", 0, 10).is_some());
        assert!(l.reserve(&t, "m", 0, 10).is_none());
        assert!(
            l.reserve(&t, "other", 0, 10).is_some(),
            "budget is per alias"
        );
        assert!(l.reserve(&t, "m", 0, DAY + 1).is_some(), "a new UTC day");
    }

    #[test]
    fn tokens_are_settled_to_real_usage() {
        let l = LocalLedger::default();
        let t = tenant(None, Some(100));
        let h = l.reserve(&t, "m", 50, 0).unwrap();
        l.settle(&h, 30);
        let h = l.reserve(&t, "m", 0, 0).unwrap();
        l.settle(&h, 70);
        assert!(
            l.reserve(&t, "m", 1, 0).is_none(),
            "30 + 70 = the whole budget"
        );
    }

    #[test]
    fn prompt_estimate_counts_message_text_at_four_bytes_a_token() {
        let body = serde_json::json!({"messages": [
            {"role": "user", "content": "x".repeat(8000)},
            {"role": "user", "content": [{"type": "text", "text": "abcd"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
        ]});
        let body = body.as_object().unwrap();
        assert_eq!(prompt_estimate(body), 2000 + 1 + 2 * 4);
    }

    #[test]
    fn a_reservation_that_would_pass_the_limit_is_refused_not_only_a_full_budget() {
        let l = LocalLedger::default();
        let t = tenant(None, Some(1000));
        // 20 requests of 600 tokens each against 1000: exactly one fits.
        let admitted = (0..20).filter_map(|_| l.reserve(&t, "m", 600, 0)).count();
        assert_eq!(admitted, 1);
        assert!(
            l.reserve(&t, "m", 400, 0).is_some(),
            "600 + 400 = 1000 fits"
        );
        assert!(l.reserve(&t, "m", 1, 0).is_none());
    }
}
