//! HTTP routes, one file per concern; `crate::app` assembles them.

pub(crate) mod conversations;
pub(crate) mod discovery;
pub(crate) mod health;
pub(crate) mod models;

use crate::catalog::Code;
use crate::error::ApiError;

/// A conversation-store failure as the client sees it; the store's error is its cause
/// (logged at the edge only).
pub(crate) fn storage_error(e: crate::store::StoreError) -> ApiError {
    ApiError::new(
        Code::StorageError,
        "the conversation store could not be read or written; nothing was half-written",
    )
    .caused_by(e)
}
