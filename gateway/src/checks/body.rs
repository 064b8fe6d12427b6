//! Reading the body: the size cap while it arrives, then "is it one JSON object".

use axum::body::Body;
use axum::http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value};

use crate::catalog::Code;
use crate::error::ApiError;

pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(
            Code::InvalidJson,
            "the body must be a JSON object",
        )),
        Err(e) => Err(ApiError::new(
            Code::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// Reads a request body, refusing it as soon as it passes `max` bytes: a declared
/// Content-Length over the cap is refused before reading, and a streamed body is cut off
/// while it arrives, so no more than `max` bytes are ever buffered.
pub(crate) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    max: usize,
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
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err(ApiError::new(
            Code::InvalidJson,
            "the request body could not be read completely",
        )),
    }
}
