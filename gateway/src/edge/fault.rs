//! Fault extraction (test-only, GATEWAY_FAULT_INJECTION=1): `x-gateway-fault` becomes a typed
//! [`Fault`] in the request's extensions, read where the fault applies.

use axum::extract::Request;

use crate::contract::FAULT_HEADER;
use crate::fault::Fault;
use crate::state::AppState;

/// The last step of the bearer routes' layer (after auth and admission,
/// [`crate::admission::bearer`]): inserts the requested fault (if fault injection is on) and
/// raises the injected panic.
pub(crate) fn apply(state: &AppState, req: &mut Request) {
    let fault = state
        .config
        .fault_injection
        .then(|| req.headers().get(FAULT_HEADER))
        .flatten()
        .and_then(|v| Fault::from_header(v.as_bytes()));
    if let Some(fault) = fault {
        if fault == Fault::Panic {
            panic!("fault injection requested a panic");
        }
        req.extensions_mut().insert(fault);
    }
}
