//! The one application error type, and the one place it becomes an HTTP response.
//!
//! Every failure on every path ends as an [`ApiError`] carrying a catalog [`Code`]; its
//! `IntoResponse` renders the envelope of SPEC §3. An error built from a lower error
//! (reqwest, the SQLite store, Redis, serde, io) keeps it as its cause: never serialised, handed to
//! the edge in the response's extensions ([`ErrorCause`]) and logged there ONCE, with the
//! request id, in the access log line.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;

use crate::catalog::Code;

/// Boxed so that `Result<_, ApiError>` stays one pointer wide on the hot path.
#[derive(Debug, Clone)]
pub struct ApiError(Box<ErrorData>);

#[derive(Debug, Clone)]
pub struct ErrorData {
    pub code: Code,
    pub message: String,
    pub param: Option<String>,
    /// Only `upstream_bad_request` answers with a status other than its catalog row's: the
    /// upstream's own 4xx, passed through 1:1.
    pub status: Option<StatusCode>,
    pub retry_after: Option<u64>,
    /// `available_fallbacks` of `openrouter_daily_quota_exhausted`.
    pub fallbacks: Option<Vec<String>>,
    pub headers: HeaderMap,
    /// The lower error this one was built from (shared so that `ApiError` stays `Clone`).
    pub cause: Option<Cause>,
}

/// A lower error kept as the cause of an [`ApiError`].
pub(crate) type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// The cause of an error response, for the edge's access log (never sent to the caller).
#[derive(Clone, Debug)]
pub(crate) struct ErrorCause(pub Cause);

impl std::fmt::Display for ErrorCause {
    /// The whole chain, outermost first: `a: b: c`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

/// The wire form of the envelope (also the OpenAPI schema).
#[derive(Debug, Serialize)]
pub(crate) struct ErrorEnvelope<'a> {
    pub error: ErrorBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dgx_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_fallbacks: Option<&'a [String]>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody<'a> {
    #[serde(rename = "type")]
    pub error_type: &'a str,
    pub code: &'a str,
    pub message: &'a str,
    pub param: Option<&'a str>,
}

impl std::ops::Deref for ApiError {
    type Target = ErrorData;
    fn deref(&self) -> &ErrorData {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorData {
        &mut self.0
    }
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError(Box::new(ErrorData {
            code,
            message: message.into(),
            param: None,
            status: None,
            retry_after: None,
            fallbacks: None,
            headers: HeaderMap::new(),
            cause: None,
        }))
    }

    /// Keeps `cause` (logged once at the edge, never serialised).
    pub fn caused_by(mut self, cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        self.cause = Some(Arc::from(cause.into()));
        self
    }

    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    pub fn missing_field(pointer: &str) -> Self {
        ApiError::new(
            Code::MissingField,
            format!("required field `{pointer}` is missing"),
        )
        .param(pointer)
    }

    pub fn invalid_field(pointer: &str, why: impl std::fmt::Display) -> Self {
        ApiError::new(Code::InvalidField, format!("field `{pointer}` {why}")).param(pointer)
    }

    pub fn status_code(&self) -> StatusCode {
        self.status.unwrap_or_else(|| {
            StatusCode::from_u16(self.code.entry().http_status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        })
    }

    /// The JSON body, also used for `event: error` in SSE streams.
    pub fn body_json(&self) -> String {
        let dgx = matches!(self.code, Code::OpenrouterDailyQuotaExhausted);
        let envelope = ErrorEnvelope {
            error: ErrorBody {
                error_type: self.code.entry().error_type.as_str(),
                code: self.code.as_str(),
                message: &self.message,
                param: self.param.as_deref(),
            },
            dgx_code: dgx.then(|| self.code.as_str()),
            available_fallbacks: if dgx {
                Some(self.fallbacks.as_deref().unwrap_or(&[]))
            } else {
                None
            },
        };
        serde_json::to_string(&envelope).unwrap_or_else(|_| {
            // Serialising plain strings cannot fail; keep a valid envelope regardless.
            r#"{"error":{"type":"internal_error","code":"internal_error","message":"error rendering failed","param":null}}"#.to_owned()
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut resp = (status, self.body_json()).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            // SPEC §3: every 503 carries Retry-After.
            headers.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
        }
        for (name, value) in self.0.headers.iter() {
            headers.insert(name.clone(), value.clone());
        }
        // Metrics and access logs read the code from here, never from the body.
        resp.extensions_mut().insert(self.code);
        if let Some(cause) = &self.cause {
            resp.extensions_mut().insert(ErrorCause(cause.clone()));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_exactly_the_four_fields() {
        let e = ApiError::missing_field("/model");
        let v: serde_json::Value = serde_json::from_str(&e.body_json()).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 1);
        let inner = obj["error"].as_object().unwrap();
        let mut keys: Vec<_> = inner.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["code", "message", "param", "type"]);
        assert_eq!(inner["param"], "/model");
        assert_eq!(inner["type"], "invalid_request_error");
    }

    #[test]
    fn openrouter_quota_carries_dgx_code_and_fallbacks() {
        let mut e = ApiError::new(Code::OpenrouterDailyQuotaExhausted, "daily limit");
        e.fallbacks = Some(vec!["a".into(), "b".into()]);
        let v: serde_json::Value = serde_json::from_str(&e.body_json()).unwrap();
        assert_eq!(v["dgx_code"], "openrouter_daily_quota_exhausted");
        assert_eq!(v["available_fallbacks"], serde_json::json!(["a", "b"]));
        assert_eq!(v["error"]["param"], serde_json::Value::Null);
    }

    #[test]
    fn every_503_carries_retry_after() {
        let resp = ApiError::new(Code::UpstreamUnavailable, "down").into_response();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let resp = ApiError::new(Code::ModelLoading, "loading")
            .retry_after(20)
            .into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "20");
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        let resp = ApiError::new(Code::RateLimitExceeded, "slow down")
            .retry_after(0)
            .into_response();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    }
}
