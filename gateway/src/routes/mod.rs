//! HTTP routes, one file per concern; `crate::app` assembles them.

pub mod conversations;
pub mod discovery;
pub mod health;
pub mod models;

use crate::catalog::Code;
use crate::error::ApiError;

pub use crate::checks::read_body;

/// A conversation-store failure as the client sees it; the store's error is its cause
/// (logged at the edge only).
pub fn storage_error(e: crate::store::StoreError) -> ApiError {
    ApiError::new(
        Code::StorageError,
        "the conversation store could not be read or written; nothing was half-written",
    )
    .caused_by(e)
}
