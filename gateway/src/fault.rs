//! Injected faults (test-only, GATEWAY_FAULT_INJECTION=1): the typed request extension that
//! the edge inserts from `x-gateway-fault` and the stages read where the fault applies.
//!
//! A fault belongs to ONE request: there is no process-wide flag, so a storage fault on one
//! request never breaks the store for the next.

/// A fault the caller asked for, present in a request's extensions only when fault
/// injection is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The handler panics: proves a panic becomes `internal_error`.
    Panic,
    /// This request's conversation-store calls fail: proves a store failure becomes
    /// `storage_error` (and nothing is half-written).
    Storage,
}

impl Fault {
    /// The fault a header value names (`panic`, `storage`).
    pub fn from_header(value: &[u8]) -> Option<Fault> {
        match value {
            b"panic" => Some(Fault::Panic),
            b"storage" => Some(Fault::Storage),
            _ => None,
        }
    }
}

/// The last step of the bearer routes' layer (after auth and admission,
/// [`crate::admission::bearer`]): inserts the requested fault (if fault injection is on) and
/// raises the injected panic.
pub(crate) fn apply(state: &crate::state::AppState, req: &mut axum::extract::Request) {
    let fault = state
        .config
        .fault_injection
        .then(|| req.headers().get(crate::contract::FAULT_HEADER))
        .flatten()
        .and_then(|v| Fault::from_header(v.as_bytes()));
    if let Some(fault) = fault {
        if fault == Fault::Panic {
            panic!("fault injection requested a panic");
        }
        req.extensions_mut().insert(fault);
    }
}
