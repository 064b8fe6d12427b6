//! HTTP routes, one file per concern; `crate::app` assembles them.

pub mod conversations;
pub mod discovery;
pub mod health;
pub mod models;

use crate::catalog::Code;
use crate::error::ApiError;

pub use crate::checks::read_body;

/// A conversation-store failure as the client sees it (the cause goes to the log only).
pub fn storage_error(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "conversation store failed");
    ApiError::new(
        Code::StorageError,
        "the conversation store could not be read or written; nothing was half-written",
    )
}
