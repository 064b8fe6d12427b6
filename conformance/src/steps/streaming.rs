//! Streaming: scripted upstream streams, streaming requests, and checks on the SSE events.

use cucumber::{given, then, when};

use super::{n, s};
use crate::world::{GatewayWorld, Outcome};

#[given(expr = "the upstream streams {string} in {int} chunks {int} ms apart")]
async fn streams_text(w: &mut GatewayWorld, text: String, chunks: i64, ms: i64) -> Outcome {
    w.script_stream(&s(text), n(chunks)?, n(ms)?).await
}

#[given(expr = "the upstream streams {string} repeated {int} times in {int} chunks {int} ms apart")]
async fn streams_text_repeated(
    w: &mut GatewayWorld,
    text: String,
    times: i64,
    chunks: i64,
    ms: i64,
) -> Outcome {
    w.script_stream(&s(text).repeat(n(times)?), n(chunks)?, n(ms)?)
        .await
}

#[given(
    expr = "the upstream streams {string} in {int} chunks, each event written in {int} pieces {int} ms apart"
)]
async fn streams_torn(
    w: &mut GatewayWorld,
    text: String,
    chunks: i64,
    pieces: i64,
    ms: i64,
) -> Outcome {
    let tear = mocks::Tear {
        pieces: n(pieces)?,
        piece_ms: n(ms)? as u64,
        two_data_lines: false,
    };
    w.script_stream_torn(&s(text), n(chunks)?, tear).await
}

#[given(
    expr = "the upstream streams {string} repeated {int} times in {int} chunk(s), each event's data on two lines"
)]
async fn streams_two_lines(w: &mut GatewayWorld, text: String, times: i64, chunks: i64) -> Outcome {
    let tear = mocks::Tear {
        pieces: 1,
        piece_ms: 0,
        two_data_lines: true,
    };
    w.script_stream_torn(&s(text).repeat(n(times)?), n(chunks)?, tear)
        .await
}

#[given(expr = "the upstream streams {int} chunks and then {string}")]
async fn streams_then_fails(w: &mut GatewayWorld, chunks: i64, failure: String) -> Outcome {
    w.script_stream_failure(n(chunks)?, &s(failure)).await
}

#[given(expr = "the upstream streams an error object with status {int}")]
async fn streams_error_object(w: &mut GatewayWorld, code: i64) -> Outcome {
    w.script_stream_error_object(super::status(code)?).await
}

#[given(
    expr = "the upstream streams the tool call {string} with arguments {string} split into {int} parts"
)]
async fn streams_tool_call(
    w: &mut GatewayWorld,
    name: String,
    args: String,
    parts: i64,
) -> Outcome {
    w.script_split_tool_call(&s(name), &s(args), n(parts)?)
        .await
}

#[given(
    expr = "the upstream streams the tool call {string} with {int} KiB of arguments split into {int} parts"
)]
async fn streams_long_tool_call(
    w: &mut GatewayWorld,
    name: String,
    kib: i64,
    parts: i64,
) -> Outcome {
    let args = super::kib_arguments(kib)?;
    w.script_split_tool_call(&s(name), &args, n(parts)?).await
}

#[given(expr = "the upstream streams {int} chunk(s), the event {string} and {int} more chunk(s)")]
async fn streams_interjected(
    w: &mut GatewayWorld,
    before: i64,
    data: String,
    after: i64,
) -> Outcome {
    w.script(mocks::Step::interject(n(before)?, s(data), n(after)?))
        .await
}

/// A chunk event with a vendor member `x_samples`, an array of `items` zeros: the same kind of
/// event as an ordinary chunk, many times larger once parsed.
#[given(
    expr = "the upstream streams {int} chunk(s), an event with {int} samples and {int} more chunk(s)"
)]
async fn streams_samples(w: &mut GatewayWorld, before: i64, items: i64, after: i64) -> Outcome {
    let samples = vec!["0"; n(items)?].join(",");
    let data = format!(
        r#"{{"id":"chatcmpl-samples","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{{"content":"samples "}},"finish_reason":null}}],"x_samples":[{samples}]}}"#
    );
    w.script(mocks::Step::interject(n(before)?, data, n(after)?))
        .await
}

#[given(expr = "the upstream streams only the event {string}, {int} times")]
async fn streams_only(w: &mut GatewayWorld, data: String, times: i64) -> Outcome {
    let events = vec![s(data); n(times)?];
    w.script(mocks::Step::from(mocks::Action::Events { events }))
        .await
}

#[when("I send a streaming chat request")]
async fn send_stream(w: &mut GatewayWorld) -> Outcome {
    w.send_stream(None).await
}

#[when(expr = "I send a streaming chat request and disconnect after {int} chunk(s)")]
async fn send_stream_disconnect(w: &mut GatewayWorld, chunks: i64) -> Outcome {
    w.send_stream(Some(n(chunks)?)).await
}

#[then(expr = "the streamed content is {string}")]
fn streamed_content(w: &mut GatewayWorld, text: String) -> Outcome {
    w.streamed_content_is(&s(text))
}

#[then(expr = "the streamed content is {string} repeated {int} times")]
fn streamed_content_repeated(w: &mut GatewayWorld, text: String, times: i64) -> Outcome {
    w.streamed_content_is(&s(text).repeat(n(times)?))
}

#[then("the stream ends with the DONE marker")]
fn ends_done(w: &mut GatewayWorld) -> Outcome {
    w.stream_ends_done()
}

#[then(expr = "the stream ends with an error event {string}")]
fn ends_error(w: &mut GatewayWorld, code: String) -> Outcome {
    w.stream_ends_error(&s(code))
}

/// Before its first chunk a stream fails as a JSON error, after it with an error event
/// (SPEC §3): which of the two depends on whether the gateway had sent anything yet.
#[then(expr = "the streaming request fails with {string}")]
async fn streaming_fails(w: &mut GatewayWorld, code: String) -> Outcome {
    if w.status_is(200).is_ok() {
        w.stream_ends_error(&s(code))
    } else {
        w.is_error(&s(code)).await
    }
}

#[then(expr = "the stream event {string} has the field {string} = {string}")]
fn event_field(w: &mut GatewayWorld, name: String, field: String, value: String) -> Outcome {
    w.stream_event_field(&s(name), &s(field), &s(value))
}

#[then("every streamed chunk names the requested model")]
fn chunks_name_model(w: &mut GatewayWorld) -> Outcome {
    w.streamed_chunks_name_the_requested_model()
}

#[then(expr = "no streamed event holds {string}")]
fn no_event_holds(w: &mut GatewayWorld, text: String) -> Outcome {
    w.no_event_holds(&s(text))
}

#[then(expr = "the streamed tool call arguments are {string}")]
fn tool_arguments(w: &mut GatewayWorld, args: String) -> Outcome {
    w.streamed_tool_arguments(&s(args))
}

#[then(expr = "the streamed tool call arguments are the {int} KiB ones")]
fn long_tool_arguments(w: &mut GatewayWorld, kib: i64) -> Outcome {
    w.streamed_tool_arguments(&super::kib_arguments(kib)?)
}

#[then("the stream contains a usage chunk")]
fn usage_chunk(w: &mut GatewayWorld) -> Outcome {
    w.stream_has_usage()
}

#[then(expr = "the streamed usage has {string} = {int}")]
fn stream_usage_field(w: &mut GatewayWorld, field: String, value: i64) -> Outcome {
    let value = u64::try_from(value).map_err(|_| format!("expected a token count, got {value}"))?;
    w.stream_usage_field_is(&s(field), value)
}

#[then(expr = "the first chunk arrived at least {int} ms before the last")]
async fn chunks_spread(w: &mut GatewayWorld, ms: i64) -> Outcome {
    w.chunks_spread(n(ms)? as u64).await
}

#[then(expr = "the stream signals the condition {string}")]
async fn signals_condition(w: &mut GatewayWorld, condition: String) -> Outcome {
    w.stream_signals_condition(&s(condition)).await
}
