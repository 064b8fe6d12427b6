//! Reading the body: the size cap and the memory budget while it arrives, then "is it one
//! JSON object" (parsed by [`super::lazy`], unknown fields left unexpanded).

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::BytesMut;
use http_body_util::BodyExt;

use super::lazy::{ChatBody, ParseError};
use super::memory::{MemoryHold, Refused, READ_FACTOR};
use crate::catalog::Code;
use crate::error::ApiError;

/// The overload answer for "the budget is held by other bodies now" (a 503 the client retries);
/// the caller passes `upstream::bodies_saturated`, which owns the overload code.
pub(crate) type Busy = fn() -> ApiError;

/// The refusal for a body the memory budget cannot take (`MAX_BODY_MEMORY_BYTES`): too large
/// ever, or not now (other bodies hold the budget: retry shortly, like any overload).
pub(crate) fn memory_refusal(r: Refused, budget: usize, busy: Busy) -> ApiError {
    match r {
        Refused::TooLarge => ApiError::new(
            Code::BodyTooLarge,
            format!(
                "the request body would need more than MAX_BODY_MEMORY_BYTES ({budget} bytes) once parsed"
            ),
        ),
        Refused::Busy => busy(),
    }
}

/// Parses a read body; `hold` covers its bytes and grows by its parsed cost.
pub(crate) fn parse_chat(
    bytes: bytes::Bytes,
    hold: MemoryHold,
    busy: Busy,
) -> Result<ChatBody, ApiError> {
    let budget = hold.budget_max();
    ChatBody::parse(bytes, hold).map_err(|e| match e {
        ParseError::NotObject => ApiError::new(Code::InvalidJson, "the body must be a JSON object"),
        ParseError::Syntax(e) => ApiError::new(
            Code::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        ),
        ParseError::Memory(r) => memory_refusal(r, budget, busy),
    })
}

/// [`parse_chat`] of a byte slice on no memory budget (benches, tests and tools outside the
/// request path).
#[cfg(any(test, feature = "testing"))]
pub fn parse_object(bytes: &[u8]) -> Result<ChatBody, ApiError> {
    let unbudgeted = || ApiError::new(Code::InternalError, "no memory budget to be busy");
    parse_chat(
        bytes::Bytes::copy_from_slice(bytes),
        MemoryHold::none(),
        unbudgeted,
    )
}

/// Reads a request body, refusing it as soon as it passes `max` bytes: a declared
/// Content-Length over the cap is refused before reading, and a streamed body is cut off
/// while it arrives, so no more than `max` bytes are ever buffered. Every byte buffered is
/// first taken from `hold`, [`READ_FACTOR`] times (the declared length at once, else chunk by
/// chunk).
pub(crate) async fn read_body(
    mut body: Body,
    headers: &HeaderMap,
    max: usize,
    hold: &mut MemoryHold,
    busy: Busy,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            Code::BodyTooLarge,
            format!("the request body exceeds MAX_BODY_BYTES ({max} bytes)"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let budget = hold.budget_max();
    let declared = declared.map_or(0, |n| n as usize);
    hold.grow(declared.saturating_mul(READ_FACTOR))
        .map_err(|r| memory_refusal(r, budget, busy))?;
    let mut buf = BytesMut::with_capacity(declared);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            ApiError::new(
                Code::InvalidJson,
                "the request body could not be read completely",
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > max {
            return Err(too_large());
        }
        let beyond = ((buf.len() + data.len()) * READ_FACTOR).saturating_sub(hold.bytes());
        hold.grow(beyond)
            .map_err(|r| memory_refusal(r, budget, busy))?;
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}
