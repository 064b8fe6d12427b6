//! `POST /v1/chat/completions` and `POST /c1/chat/completions`: validate, floor, reserve the
//! budget, call the upstream (plain, streamed, or through the tool loop), settle, answer.

use crate::checks::ChatBody;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::Extension;
use serde_json::{Map, Value};

use crate::admission::budget::{prompt_estimate, tokens_of_bytes};
use crate::admission::Principal;
use crate::admission::Reservation;
use crate::catalog::Code;
use crate::checks::{self as validate, Api};
use crate::config::Model;
use crate::error::ApiError;
use crate::fault::Fault;
use crate::routes::storage_error;
use crate::state::AppState;
use crate::upstream::sse::{Hooks, Outcome};
use crate::upstream::Usage;
use crate::{toolloop, upstream};
pub(crate) mod relay;
use relay as stream;

/// The last two admission steps of both chat routes, in check order: the budget share (the
/// prompt estimate plus the output cap), then an in-flight slot of the alias's upstream.
async fn reserve_upstream(
    state: &AppState,
    tenant: &crate::config::Tenant,
    model: &Model,
    obj: &Map<String, Value>,
) -> Result<(Reservation, Option<tokio::sync::OwnedSemaphorePermit>), ApiError> {
    let reservation = state
        .reserve(
            tenant,
            &model.alias,
            prompt_estimate(obj),
            output_cap(obj, model),
        )
        .await?;
    match upstream::in_flight_slot(state, model).await {
        Ok(slot) => Ok((reservation, slot)),
        Err(e) => {
            // Refused before anything reached the upstream: settle with nothing used, rather
            // than let the drop charge the prompt estimate as for an abandoned request.
            reservation.settle(0).await;
            Err(e)
        }
    }
}

pub(crate) async fn v1(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let deadline = tokio::time::Instant::now() + state.config.http_total_timeout;
    let mut obj = read_chat(&state, &headers, body, deadline).await?;
    let config = state.config.clone();
    let tenant = &config.tenants[principal.tenant];
    let checked = validate::check_chat(obj.checks_view(), &config, tenant, Api::V1)?;
    let (reservation, slot) = reserve_upstream(&state, tenant, checked.model, &obj).await?;
    let mut resp = if checked.stream {
        let hooks = Hooks {
            field: None,
            keep_message: false,
            finish: Some(Box::new(move |o: Outcome| {
                Box::pin(async move {
                    settle_stream(reservation, &o).await;
                    Ok(())
                })
            })),
        };
        open_stream(&state, tenant, checked.model, obj, deadline, hooks).await?
    } else if state.config.tools.is_empty() {
        // Relayed as bytes: only `model` changes, so no Value tree is built and serialised.
        let mut hold = state.answer_memory.hold();
        let work = upstream::chat_bytes(&state, checked.model, &obj, &mut hold);
        let result = tokio::time::timeout_at(deadline, work)
            .await
            .unwrap_or_else(|_| Err(upstream::work_timeout()));
        let used = result.as_ref().map_or(0, |(_, u)| u.total_tokens);
        reservation.settle(used).await;
        json_response(hold.into_bytes(result?.0))
    } else {
        let result = complete(&state, tenant, checked.model, obj, deadline).await;
        let used = result.as_ref().map_or(0, |(_, u, _)| u.total_tokens);
        reservation.settle(used).await;
        let (obj, _, hold) = result?;
        held_json(&obj, hold)?
    };
    applied_headers(resp.headers_mut(), checked.floored);
    Ok(crate::admission::hold_while_streaming(resp, slot))
}

/// The body as a JSON object: size cap while reading, then parse.
async fn read_chat(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    deadline: tokio::time::Instant,
) -> Result<ChatBody, ApiError> {
    // A body trickled in forever must not hold the request open forever.
    let mut hold = state.body_memory.hold();
    let busy = upstream::bodies_saturated;
    let max = state.config.max_body_bytes;
    let read = crate::checks::read_body(body, headers, max, &mut hold, busy);
    let bytes = tokio::time::timeout_at(deadline, read)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                Code::InvalidJson,
                "the request body did not arrive completely within HTTP_TOTAL_TIMEOUT_SECS",
            ))
        })?;
    validate::parse_chat(bytes, hold, busy)
}
/// Settles a stream's reservation: the upstream's count, or, when the caller hung up, what was
/// sent and streamed (never 0).
async fn settle_stream(reservation: Reservation, o: &Outcome) {
    if o.caller_left {
        let streamed = tokens_of_bytes(o.streamed_bytes);
        reservation
            .settle_abandoned(o.usage.total_tokens, streamed)
            .await;
    } else {
        reservation.settle(o.usage.total_tokens).await;
    }
}

/// What a request may produce, reserved up front with its prompt estimate: its `max_tokens`,
/// else the model's output cap (so that parallel requests without a limit cannot overspend a
/// token budget).
fn output_cap(body: &Map<String, Value>, model: &Model) -> u64 {
    body.get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .or_else(|| model.constraints.max_output_tokens.map(u64::from))
        .unwrap_or(0)
}

/// What each tool-loop call after the first reserves against (`toolloop::CallBudget`).
fn call_budget(
    tenant: &crate::config::Tenant,
    model: &Model,
    body: &ChatBody,
) -> toolloop::CallBudget {
    toolloop::CallBudget {
        tenant: tenant.clone(),
        alias: model.alias.clone(),
        output_cap: output_cap(body, model),
    }
}

/// A JSON answer whose bytes carry their memory share until written.
fn json_response(bytes: bytes::Bytes) -> Response {
    let mut r = Response::new(Body::from(bytes));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `obj` serialised as the answer; `hold` (its tree's share) then covers the bytes instead,
/// until they are written.
fn held_json(
    obj: &Map<String, Value>,
    hold: crate::checks::memory::MemoryHold,
) -> Result<Response, ApiError> {
    let out = serde_json::to_vec(obj)
        .map_err(|_| ApiError::new(Code::InternalError, "the answer could not be serialised"))?;
    Ok(json_response(hold.into_bytes(out)))
}

/// Non-streaming answer: through the tool loop when server-side tools are configured; the
/// whole of it (every round) within the request's deadline. The third value is the answer's
/// share of `MAX_ANSWER_MEMORY_BYTES`, kept as long as the answer lives.
async fn complete(
    state: &AppState,
    tenant: &crate::config::Tenant,
    model: &Model,
    body: ChatBody,
    deadline: tokio::time::Instant,
) -> Result<(Map<String, Value>, Usage, crate::checks::memory::MemoryHold), ApiError> {
    let work = async move {
        if state.config.tools.is_empty() {
            let mut hold = state.answer_memory.hold();
            let (obj, usage) = upstream::chat(state, model, &body, &mut hold).await?;
            Ok((obj, usage, hold))
        } else {
            let budget = call_budget(tenant, model, &body);
            toolloop::run(state, model, body, budget).await
        }
    };
    tokio::time::timeout_at(deadline, work)
        .await
        .unwrap_or_else(|_| Err(upstream::work_timeout()))
}

async fn open_stream(
    state: &AppState,
    tenant: &crate::config::Tenant,
    model: &Model,
    body: ChatBody,
    deadline: tokio::time::Instant,
    hooks: Hooks,
) -> Result<Response, ApiError> {
    if state.config.tools.is_empty() {
        stream::relay(state, model, body, deadline, hooks).await
    } else {
        let budget = call_budget(tenant, model, &body);
        toolloop::stream(state.clone(), model.clone(), body, deadline, hooks, budget).await
    }
}

/// The silent-adjustment headers, current and earlier cut, with the same value.
pub(crate) fn applied_headers(headers: &mut HeaderMap, floored: Option<u32>) {
    if let Some(n) = floored {
        if let Ok(v) = HeaderValue::from_str(&format!("max_tokens_floored={n}")) {
            headers.insert(crate::contract::SPASS_APPLIED, v.clone());
            headers.insert(crate::contract::RUST_API_APPLIED, v);
        }
    }
}

pub(crate) async fn c1(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    fault: Option<Extension<Fault>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let deadline = tokio::time::Instant::now() + state.config.http_total_timeout;
    let mut obj = read_chat(&state, &headers, body, deadline).await?;
    let config = state.config.clone();
    let tenant = &config.tenants[principal.tenant];
    let checked = validate::check_chat(obj.checks_view(), &config, tenant, Api::C1)?;
    let user = obj
        .remove("user_id")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let requested = obj
        .remove("conversation_id")
        .and_then(|v| v.as_str().map(str::to_owned));
    // This request's view of the store: failing only under an injected storage fault.
    let store = state.store.with_fault(fault.map(|Extension(f)| f));
    let id = requested
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // Exchanges of one conversation are serialised: the next one reads this one's answer.
    let guard = tokio::time::timeout_at(deadline, store.lock(&id))
        .await
        .map_err(|_| {
            ApiError::new(
                Code::StorageError,
                "the conversation stayed busy with another exchange; retry",
            )
        })?;
    let history = match &requested {
        Some(id) => store
            .recent_history(
                &tenant.id,
                &user,
                id,
                state.config.reads.c1_max_history_bytes,
            )
            .await
            .map_err(storage_error)?
            .ok_or_else(|| {
                ApiError::new(
                    Code::ConversationNotFound,
                    "no such conversation for this user; omit conversation_id to start one",
                )
                .param("/conversation_id")
            })?,
        None => Vec::new(),
    };
    let new_messages: Vec<Value> = obj
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // The stored history and the copy of the new messages kept for the store are trees the
    // body's share does not cover: paid for from the same budget, for as long as the exchange.
    let mut kept = state.body_memory.hold();
    let extra = history
        .iter()
        .chain(new_messages.iter())
        .map(crate::checks::lazy::value_cost)
        .fold(0u64, u64::saturating_add)
        // And the history's bytes in the upstream request.
        .saturating_mul(2);
    let budget = kept.budget_max();
    kept.grow(usize::try_from(extra).unwrap_or(usize::MAX))
        .map_err(|r| crate::checks::body::memory_refusal(r, budget, upstream::bodies_saturated))?;
    let mut full = history;
    full.extend(new_messages.iter().cloned());
    obj.insert("messages".into(), Value::Array(full));
    let (reservation, slot) = reserve_upstream(&state, tenant, checked.model, &obj).await?;

    let mut resp = if checked.stream {
        let st = store.clone();
        let (tenant_id, alias, conv) = (tenant.id.clone(), checked.model.alias.clone(), id.clone());
        let hooks = Hooks {
            field: Some(("conversation_id".into(), Value::String(id.clone()))),
            keep_message: true,
            finish: Some(Box::new(move |o: Outcome| {
                Box::pin(async move {
                    let _guard = guard;
                    let _kept = kept;
                    settle_stream(reservation, &o).await;
                    if !o.completed {
                        return Ok(());
                    }
                    let mut exchange = new_messages;
                    exchange.push(o.message);
                    st.append(&tenant_id, &user, &conv, &alias, exchange)
                        .await
                        .map_err(storage_error)
                })
            })),
        };
        let mut r = open_stream(&state, tenant, checked.model, obj, deadline, hooks).await?;
        if let Ok(v) = HeaderValue::from_str(&id) {
            r.headers_mut().insert(crate::contract::CONVERSATION_ID, v);
        }
        r
    } else {
        let result = complete(&state, tenant, checked.model, obj, deadline).await;
        reservation
            .settle(result.as_ref().map_or(0, |(_, u, _)| u.total_tokens))
            .await;
        let (mut completion, _, hold) = result?;
        let answer = completion
            .get("choices")
            .and_then(|c| c.pointer("/0/message"))
            .cloned()
            .unwrap_or(Value::Null);
        let mut exchange = new_messages;
        exchange.push(answer);
        // Committed before answering: a 200 means the exchange is on disk.
        store
            .append(&tenant.id, &user, &id, &checked.model.alias, exchange)
            .await
            .map_err(storage_error)?;
        drop(guard);
        completion.insert("conversation_id".into(), Value::String(id.clone()));
        let mut r = held_json(&completion, hold)?;
        if let Ok(v) = HeaderValue::from_str(&id) {
            r.headers_mut().insert(crate::contract::CONVERSATION_ID, v);
        }
        r
    };
    applied_headers(resp.headers_mut(), checked.floored);
    Ok(crate::admission::hold_while_streaming(resp, slot))
}
