//! The control API under `/__mock`, so an external gateway pointed at a standalone mock can be
//! scripted and inspected the same way an in-process test does.
//!
//! - `PUT    /__mock/scripts/{marker}`  body `{"steps":[...]}` → 204; malformed → 400 `{"error"}`
//! - `DELETE /__mock/scripts/{marker}`  → 204
//! - `GET    /__mock/records/{marker}`  → `{"records":[...]}`
//! - `POST   /__mock/reset`             → 204 (forget all scripts and records)

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::json;

use crate::script::{is_marker_name, ScriptBody};
use crate::server::MockState;

pub(crate) fn routes() -> Router<MockState> {
    Router::new()
        .route(
            "/__mock/scripts/{marker}",
            put(put_script).delete(delete_script),
        )
        .route("/__mock/records/{marker}", get(get_records))
        .route("/__mock/reset", post(reset))
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn bad_request(message: String) -> Response {
    json(StatusCode::BAD_REQUEST, &json!({ "error": message }))
}

/// A 400 for a marker name outside `[A-Za-z0-9_.-]+`, or None when it is fine.
fn check_marker(marker: &str) -> Option<Response> {
    if is_marker_name(marker) {
        None
    } else {
        Some(bad_request(format!(
            "marker `{marker}` must match [A-Za-z0-9_.-]+"
        )))
    }
}

/// Parse a script body, naming where it is wrong (`steps[1]: unknown variant ...`).
pub fn parse_script(body: &[u8]) -> Result<ScriptBody, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| e.to_string())
}

async fn put_script(
    State(state): State<MockState>,
    Path(marker): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = check_marker(&marker) {
        return r;
    }
    match parse_script(&body) {
        Ok(script) => {
            state.script(&marker, script.steps);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(message) => bad_request(message),
    }
}

async fn delete_script(State(state): State<MockState>, Path(marker): Path<String>) -> Response {
    if let Some(r) = check_marker(&marker) {
        return r;
    }
    state.unscript(&marker);
    StatusCode::NO_CONTENT.into_response()
}

async fn get_records(State(state): State<MockState>, Path(marker): Path<String>) -> Response {
    if let Some(r) = check_marker(&marker) {
        return r;
    }
    json(
        StatusCode::OK,
        &json!({ "records": state.records(&marker) }),
    )
}

async fn reset(State(state): State<MockState>) -> Response {
    state.reset();
    StatusCode::NO_CONTENT.into_response()
}
