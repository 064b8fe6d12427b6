//! The mock upstream: scripted answers and failures, and what it received.

use cucumber::{given, then};
use mocks::{Shape, Step};

use super::{n, s, status};
use crate::world::{GatewayWorld, Outcome};

#[given(expr = "the upstream answers with the text {string}")]
async fn answers_text(w: &mut GatewayWorld, text: String) -> Outcome {
    w.script_text(&s(text)).await
}

#[given(
    expr = "the upstream answers with the text {string}, reporting {int} prompt and {int} completion tokens"
)]
async fn answers_text_with_usage(
    w: &mut GatewayWorld,
    text: String,
    prompt: i64,
    completion: i64,
) -> Outcome {
    let step = Step::reply(s(text)).with_usage(tokens(prompt)?, tokens(completion)?);
    w.script(step).await
}

#[given(
    expr = "the upstream answers with the tool call {string} with arguments {string}, reporting {int} prompt and {int} completion tokens"
)]
async fn answers_tool_call_with_usage(
    w: &mut GatewayWorld,
    name: String,
    args: String,
    prompt: i64,
    completion: i64,
) -> Outcome {
    let step = Step::tool_call(s(name), s(args)).with_usage(tokens(prompt)?, tokens(completion)?);
    w.script(step).await
}

#[given(expr = "the upstream answers with a body of exactly {int} bytes")]
async fn answers_sized(w: &mut GatewayWorld, bytes: i64) -> Outcome {
    w.script(Step::sized(byte_count(bytes)?)).await
}

#[given(
    expr = "the upstream answers with a body of exactly {int} bytes, sent in {int} pieces without a Content-Length"
)]
async fn answers_sized_in_pieces(w: &mut GatewayWorld, bytes: i64, pieces: i64) -> Outcome {
    let pieces = usize::try_from(pieces)
        .ok()
        .filter(|&p| p > 1)
        .ok_or(format!(
            "{pieces} pieces: at least 2 make a body without a length"
        ))?;
    let tear = mocks::Tear {
        pieces,
        piece_ms: 0,
        two_data_lines: false,
    };
    w.script(Step::sized(byte_count(bytes)?).with_tear(tear))
        .await
}

fn byte_count(bytes: i64) -> Result<usize, String> {
    usize::try_from(bytes).map_err(|_| format!("{bytes} is not a byte count"))
}

#[given("the upstream answers with a completion that has no choices")]
async fn answers_empty_choices(w: &mut GatewayWorld) -> Outcome {
    w.script(Step::empty_choices()).await
}

#[given(
    expr = "the upstream answers with a completion that has no choices, reporting {int} prompt and {int} completion tokens"
)]
async fn answers_empty_choices_with_usage(
    w: &mut GatewayWorld,
    prompt: i64,
    completion: i64,
) -> Outcome {
    let step = Step::empty_choices().with_usage(tokens(prompt)?, tokens(completion)?);
    w.script(step).await
}

#[given(expr = "the upstream answers with the text {string} without a model field")]
async fn answers_without_model(w: &mut GatewayWorld, text: String) -> Outcome {
    w.script(Step::reshaped(s(text), Shape::NoModel)).await
}

#[given(expr = "the upstream answers with the text {string} and {int} extra members")]
async fn answers_with_extra_members(w: &mut GatewayWorld, text: String, count: i64) -> Outcome {
    let count = super::n(count)?;
    w.script(Step::reshaped(s(text), Shape::ExtraMembers { count }))
        .await
}

#[given(expr = "the upstream answers with the text {string} in a choices object, not a list")]
async fn answers_choices_object(w: &mut GatewayWorld, text: String) -> Outcome {
    w.script(Step::reshaped(s(text), Shape::ChoicesObject))
        .await
}

fn tokens(v: i64) -> Result<u64, String> {
    u64::try_from(v).map_err(|_| format!("expected a token count, got {v}"))
}

#[given(expr = "the upstream answers with the error status {int} and message {string}")]
async fn answers_error(w: &mut GatewayWorld, code: i64, message: String) -> Outcome {
    w.script_error(status(code)?, &s(message)).await
}

#[given(
    expr = "the upstream answers with the error status {int} and the message {string} repeated {int} times"
)]
async fn answers_long_error(
    w: &mut GatewayWorld,
    code: i64,
    message: String,
    times: i64,
) -> Outcome {
    let text = vec![s(message); n(times)?].join(" ");
    w.script_error(status(code)?, &text).await
}

#[given(
    expr = "the upstream answers with the error status {int}, message {string} and the header {string} = {string}"
)]
async fn answers_error_with_header(
    w: &mut GatewayWorld,
    code: i64,
    message: String,
    name: String,
    value: String,
) -> Outcome {
    w.script_error_with_header(status(code)?, &s(message), &s(name), &s(value))
        .await
}

#[then("the error message does not name the upstream model")]
async fn names_no_upstream_model(w: &mut GatewayWorld) -> Outcome {
    w.message_names_no_upstream_model().await
}

#[then("the error message names the model alias I used")]
fn names_alias(w: &mut GatewayWorld) -> Outcome {
    w.message_names_alias()
}

#[then(expr = "the error message does not hold {string} + the model alias I used + {string}")]
fn no_alias_between(w: &mut GatewayWorld, before: String, after: String) -> Outcome {
    w.message_names_alias_with(&s(before), &s(after), false)
}

#[given(expr = "the upstream answers with its {word} error")]
async fn answers_named_error(w: &mut GatewayWorld, kind: String) -> Outcome {
    w.script_named_error(&kind).await
}

#[given("the upstream hangs")]
async fn hangs(w: &mut GatewayWorld) -> Outcome {
    w.script_hang().await
}

#[then(expr = "the upstream received {int} request(s)")]
async fn received(w: &mut GatewayWorld, count: i64) -> Outcome {
    w.upstream_received(n(count)?).await
}

#[then(expr = "the upstream received at most {int} request(s)")]
async fn received_at_most(w: &mut GatewayWorld, count: i64) -> Outcome {
    w.upstream_received_at_most(n(count)?).await
}

#[then("the last upstream request had an empty \"tools\" list")]
async fn empty_tools(w: &mut GatewayWorld) -> Outcome {
    w.last_had_empty_tools().await
}

#[then(expr = "the upstream request had {string} = {int}")]
async fn request_had(w: &mut GatewayWorld, field: String, value: i64) -> Outcome {
    w.last_had_field(&s(field), value).await
}

#[then("the upstream saw the client disconnect")]
async fn saw_disconnect(w: &mut GatewayWorld) -> Outcome {
    w.upstream_saw_disconnect().await
}

#[then(expr = "upstream request {int} offered the tool {string}")]
async fn offered_tool(w: &mut GatewayWorld, index: i64, tool: String) -> Outcome {
    w.request_offered_tool(n(index)?, &s(tool)).await
}

#[then(expr = "upstream request {int} contains a tool result message")]
async fn tool_result(w: &mut GatewayWorld, index: i64) -> Outcome {
    w.request_has_tool_result(n(index)?).await
}

#[then(expr = "the last upstream request contains the text {string}")]
async fn contains_text(w: &mut GatewayWorld, text: String) -> Outcome {
    w.last_contains_text(&s(text)).await
}
