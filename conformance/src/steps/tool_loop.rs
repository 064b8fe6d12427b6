//! The tool loop: tool-call history in the request, caller tools, scripted tool calls, and
//! the tool-loop status of the answer.

use cucumber::{given, then};
use mocks::{Step, ToolCallSpec};

use super::{n, s};
use crate::world::{GatewayWorld, Outcome};

#[given(expr = "the conversation contains an assistant tool call {string} with arguments {string}")]
fn tool_history(w: &mut GatewayWorld, name: String, args: String) -> Outcome {
    w.add_tool_history(&s(name), &s(args))
}

#[given(expr = "the request defines the caller tool {string}")]
fn caller_tool(w: &mut GatewayWorld, name: String) -> Outcome {
    w.add_caller_tool(&s(name))
}

#[given(expr = "the upstream answers with the tool call {string} with arguments {string}")]
async fn answers_tool_call(w: &mut GatewayWorld, name: String, args: String) -> Outcome {
    w.script_tool_call(&s(name), &s(args)).await
}

#[given(
    expr = "the upstream answers with the tool calls {string} with arguments {string} and {string} with arguments {string}"
)]
async fn answers_two_calls(
    w: &mut GatewayWorld,
    first: String,
    first_args: String,
    second: String,
    second_args: String,
) -> Outcome {
    let calls = vec![
        ToolCallSpec::new(s(first), s(first_args)),
        ToolCallSpec::new(s(second), s(second_args)),
    ];
    w.script(Step::tool_calls(calls)).await
}

#[given(
    expr = "the upstream answers with the tool call {string} with arguments {string} followed by the text {string}"
)]
async fn answers_call_then_text(
    w: &mut GatewayWorld,
    name: String,
    args: String,
    text: String,
) -> Outcome {
    let calls = vec![ToolCallSpec::new(s(name), s(args))];
    w.script(Step::tool_calls_then_text(calls, s(text))).await
}

#[given(
    expr = "the upstream answers with the tool call {string} with arguments {string} followed by {int} KiB of text"
)]
async fn answers_call_then_long_text(
    w: &mut GatewayWorld,
    name: String,
    args: String,
    kib: i64,
) -> Outcome {
    let kib = usize::try_from(kib).map_err(|_| format!("{kib} KiB is not a size"))?;
    let text = "a".repeat(kib.saturating_mul(1024));
    let calls = vec![ToolCallSpec::new(s(name), s(args))];
    w.script(Step::tool_calls_then_text(calls, text)).await
}

#[given(expr = "the upstream answers with the tool call {string} with {int} KiB of arguments")]
async fn answers_long_call(w: &mut GatewayWorld, name: String, kib: i64) -> Outcome {
    let args = super::kib_arguments(kib)?;
    w.script(Step::tool_calls(vec![ToolCallSpec::new(s(name), args)]))
        .await
}

#[then(expr = "the tool result in upstream request {int} contains {string}")]
async fn tool_result_contains(w: &mut GatewayWorld, index: i64, text: String) -> Outcome {
    w.tool_result_contains(n(index)?, &s(text)).await
}

#[given(expr = "the upstream answers {int} times with distinct tool calls to {string}")]
async fn answers_distinct(w: &mut GatewayWorld, times: i64, name: String) -> Outcome {
    w.script_distinct_tool_calls(n(times)?, &s(name)).await
}

#[given(
    expr = "the upstream answers {int} times with distinct tool calls to {string} with {int} KiB of arguments each"
)]
async fn answers_distinct_long(
    w: &mut GatewayWorld,
    times: i64,
    name: String,
    kib: i64,
) -> Outcome {
    w.script_distinct_long_tool_calls(n(times)?, &s(name), n(kib)?)
        .await
}

#[given(
    expr = "the upstream answers every request with the tool call {string} with arguments {string}"
)]
async fn answers_every(w: &mut GatewayWorld, name: String, args: String) -> Outcome {
    w.script_tool_call_forever(&s(name), &s(args)).await
}

#[then(expr = "the response is the tool-loop status {string}")]
async fn tool_loop_status(w: &mut GatewayWorld, code: String) -> Outcome {
    w.is_tool_loop_status(&s(code)).await
}

#[then("the caller got neither raw server-side tool calls nor an empty answer")]
fn no_raw_tool_calls(w: &mut GatewayWorld) -> Outcome {
    w.no_raw_tool_calls()
}
