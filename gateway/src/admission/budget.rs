//! Tenant budgets (requests and tokens per UTC day, per alias or `*`): the in-process ledger.
//!
//! A request reserves before the upstream call (one request, plus its `max_tokens` if given)
//! and settles the real usage afterwards, so parallel requests cannot overspend the request
//! budget; the token budget refuses once what is used and reserved reaches the limit.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::config::{Budget, Tenant};

pub const DAY: u64 = 86_400;

/// What one request holds against one budget.
#[derive(Clone, Debug)]
pub struct Hold {
    pub key: String,
    pub reserved_tokens: u64,
    /// Where the reservation was made: it is settled there and nowhere else.
    pub in_redis: bool,
}

/// The budgets that apply to `alias` for `tenant`.
pub fn applicable<'t>(tenant: &'t Tenant, alias: &str) -> impl Iterator<Item = &'t Budget> + 't {
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
                || b.tokens_per_day.is_some_and(|lim| t >= lim)
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
            l.reserve(&t, "m", 0, 0).is_none(),
            "30 + 70 = the whole budget"
        );
    }
}
