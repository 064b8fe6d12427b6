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
