//! Request validation of a chat body, in the check order of SPEC §3.
//!
//! Works on the JSON tree of the fields the gateway reads ([`lazy::ChatBody`]; the others are
//! never expanded and are forwarded untouched) so that every error carries an exact JSON
//! pointer. Order: required fields → types
//! and ranges → model allowlist → capabilities (tools, vision, streaming) and the context
//! window → content checks (images, then tool arguments) → the silent max_tokens floor.

use serde_json::{Map, Value};

use crate::catalog::Code;
use crate::config::{Config, Model, Tenant};
use crate::error::ApiError;

pub(crate) mod body;
mod capabilities;
mod fields;
mod floor;
pub(crate) mod images;
pub(crate) mod lazy;
pub(crate) mod memory;

#[cfg(any(test, feature = "testing"))]
pub use body::parse_object;
pub(crate) use body::{parse_chat, read_body};
use fields::{content_checks, required_fields, types_and_ranges};
pub(crate) use fields::{valid_conversation_id, valid_user_id};
use floor::floor_max_tokens;
pub(crate) use lazy::ChatBody;

/// What the rest of the request path needs from a valid body.
#[derive(Debug)]
pub struct Checked<'c> {
    pub model: &'c Model,
    pub stream: bool,
    /// `Some(n)` when max_tokens was raised to the model's minimum `n`.
    pub floored: Option<u32>,
}

/// Which API the body came in on: /c1 also requires `user_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    V1,
    C1,
}

pub fn check_chat<'c>(
    body: &mut Map<String, Value>,
    config: &'c Config,
    tenant: &Tenant,
    api: Api,
) -> Result<Checked<'c>, ApiError> {
    required_fields(body, api)?;
    types_and_ranges(body, api)?;
    let model = allowlisted(body, config, tenant)?;
    capabilities::capability_checks(body, model)?;
    content_checks(body, model)?;
    let floored = floor_max_tokens(body, model.constraints.min_max_tokens);
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    Ok(Checked {
        model,
        stream,
        floored,
    })
}

fn allowlisted<'c>(
    body: &Map<String, Value>,
    config: &'c Config,
    tenant: &Tenant,
) -> Result<&'c Model, ApiError> {
    let alias = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    config
        .model(alias)
        .filter(|_| tenant.allowed.permits(alias))
        .ok_or_else(|| {
            ApiError::new(
                Code::ModelNotInAllowlist,
                "the model is not available for this token; see /v1/models",
            )
            .param("/model")
        })
}

#[cfg(test)]
mod tests;
