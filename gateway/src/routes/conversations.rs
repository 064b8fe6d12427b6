//! `GET/DELETE /c1/conversations[/{id}]?user_id=`: tenant- and user-scoped reads and deletes.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::admission::Principal;
use crate::catalog::Code;
use crate::checks::{valid_conversation_id, valid_user_id};
use crate::error::ApiError;
use crate::fault::Fault;
use crate::state::AppState;

fn user_id(query: Option<String>) -> Result<String, ApiError> {
    let q = query.unwrap_or_default();
    let url = reqwest::Url::parse(&format!("http://q/?{q}"))
        .map_err(|_| ApiError::invalid_field("query.user_id", "query string is malformed"))?;
    let user = url
        .query_pairs()
        .find(|(k, _)| k == "user_id")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| {
            ApiError::new(Code::MissingField, "query parameter `user_id` is required")
                .param("query.user_id")
        })?;
    if !valid_user_id(&user) {
        return Err(ApiError::invalid_field(
            "query.user_id",
            "must be 1-128 printable characters",
        ));
    }
    Ok(user)
}

/// Pagination: `limit` (1-1000, default 100) and `after` (the `last_id` of the previous page).
fn page(query: Option<&str>) -> Result<(u32, Option<String>), ApiError> {
    let url = reqwest::Url::parse(&format!("http://q/?{}", query.unwrap_or_default()))
        .map_err(|_| ApiError::invalid_field("query.limit", "query string is malformed"))?;
    let mut limit = 100;
    let mut after = None;
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "limit" => {
                limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid_field("query.limit", "must be an integer 1-1000")
                    })?;
            }
            "after" => {
                if !valid_conversation_id(&v) {
                    return Err(ApiError::invalid_field(
                        "query.after",
                        "must be a conversation id (the `last_id` of the previous page)",
                    ));
                }
                after = Some(v.into_owned());
            }
            _ => {}
        }
    }
    Ok((limit, after))
}

/// The id from the path; a path that does not even decode (e.g. `%FF`) is an invalid id too.
fn conversation_id(id: &Result<Path<String>, PathRejection>) -> Result<&str, ApiError> {
    let id = id.as_ref().map(|p| p.0.as_str()).unwrap_or_default();
    if valid_conversation_id(id) {
        Ok(id)
    } else {
        // The id is in the path, not the body: no JSON pointer or header/query locator fits.
        Err(ApiError::new(
            Code::InvalidField,
            "the conversation id in the path is not an id this gateway issues",
        ))
    }
}

fn not_found() -> ApiError {
    ApiError::new(
        Code::ConversationNotFound,
        "no such conversation for this user",
    )
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    fault: Option<Extension<Fault>>,
    RawQuery(q): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (limit, after) = page(q.as_deref())?;
    let user = user_id(q)?;
    let tenant = &state.config.tenants[p.tenant].id;
    // One more than asked: whether another page exists.
    let mut list = state
        .store
        .with_fault(fault.map(|Extension(f)| f))
        .list_page(tenant, &user, limit + 1, after)
        .await
        .map_err(super::storage_error)?;
    let has_more = list.len() > limit as usize;
    list.truncate(limit as usize);
    let last_id = list.last().map(|s| s.id.clone());
    Ok(Json(
        json!({"object": "list", "data": list, "has_more": has_more, "last_id": last_id}),
    ))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    fault: Option<Extension<Fault>>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user = user_id(q)?;
    let id = conversation_id(&id)?;
    let tenant = &state.config.tenants[p.tenant].id;
    let conv = state
        .store
        .with_fault(fault.map(|Extension(f)| f))
        .get(tenant, &user, id)
        .await
        .map_err(super::storage_error)?
        .ok_or_else(not_found)?;
    Ok(Json(json!(conv)))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    fault: Option<Extension<Fault>>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let user = user_id(q)?;
    let id = conversation_id(&id)?;
    let tenant = &state.config.tenants[p.tenant].id;
    let store = state.store.with_fault(fault.map(|Extension(f)| f));
    // An exchange in progress holds the lock at most until its own deadline; the DELETE waits
    // no longer than that (issue 15 item 7), then answers like a busy /c1 exchange does.
    let _guard = tokio::time::timeout(state.config.http_total_timeout, store.lock(id))
        .await
        .map_err(|_| {
            ApiError::new(
                Code::StorageError,
                "the conversation stayed busy with another exchange; retry",
            )
        })?;
    if store
        .delete(tenant, &user, id)
        .await
        .map_err(super::storage_error)?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found())
    }
}
