//! Fault extraction (test-only, GATEWAY_FAULT_INJECTION=1): the `x-gateway-fault` header.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use crate::contract::FAULT_HEADER;
use crate::state::AppState;

/// A fault the caller asked for, honoured only when fault injection is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The handler panics: proves a panic becomes `internal_error`.
    Panic,
    /// The conversation store fails: proves a store failure becomes `storage_error`.
    Storage,
}

/// The fault requested by `headers`, if fault injection is on.
pub fn requested(state: &AppState, headers: &HeaderMap) -> Option<Fault> {
    if !state.config.fault_injection {
        return None;
    }
    match headers.get(FAULT_HEADER)?.as_bytes() {
        b"panic" => Some(Fault::Panic),
        b"storage" => Some(Fault::Storage),
        _ => None,
    }
}

/// Innermost layer of the bearer routes (after auth and admission): raises the injected panic.
pub async fn panic_layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if requested(&state, req.headers()) == Some(Fault::Panic) {
        panic!("fault injection requested a panic");
    }
    next.run(req).await
}
