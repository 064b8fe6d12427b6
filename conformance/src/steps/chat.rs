//! The pending chat request, sending it (and any other request), and the generic checks
//! on the response: status, error envelope, param, message, headers, body fields.

use cucumber::{given, then, when};

use super::{n, s, status};
use crate::world::{GatewayWorld, Outcome};

#[given(expr = "I use the {string} model")]
fn use_model(w: &mut GatewayWorld, role: String) -> Outcome {
    w.use_model(&s(role))
}

#[given(expr = "the request field {string} is {string}")]
fn request_field(w: &mut GatewayWorld, pointer: String, literal: String) -> Outcome {
    w.set_field(&s(pointer), &s(literal))
}

/// `{"type": "text", "m0": 0, "m1": 0, …}`: an object of many tiny members (about 11 bytes of
/// JSON each), what makes a parsed tree many times its body's size.
#[given(expr = "the request field {string} carries {int} extra members")]
fn extra_members(w: &mut GatewayWorld, pointer: String, count: i64) -> Outcome {
    let count = n(count)?;
    let mut obj = serde_json::Map::with_capacity(count + 1);
    obj.insert("type".into(), serde_json::Value::from("text"));
    for i in 0..count {
        obj.insert(format!("m{i}"), serde_json::Value::from(0));
    }
    w.set_field(&s(pointer), &serde_json::Value::Object(obj).to_string())
}

#[given("the request body is sent with chunked encoding")]
fn chunked(w: &mut GatewayWorld) {
    w.chunked_encoding();
}

#[given(expr = "the request body is sent with chunked encoding in pieces of {int} bytes")]
fn chunked_pieces(w: &mut GatewayWorld, piece: i64) -> Outcome {
    w.chunked_pieces(n(piece)?)
}

#[given("the gateway will panic on the next request")]
fn arm_panic(w: &mut GatewayWorld) {
    w.arm_panic();
}

#[when("I send a chat request")]
async fn send_chat(w: &mut GatewayWorld) -> Outcome {
    w.send_chat().await
}

#[when(expr = "I send a chat request and give up after {int} ms")]
async fn send_chat_giving_up(w: &mut GatewayWorld, ms: i64) -> Outcome {
    w.send_chat_giving_up(super::n(ms)? as u64).await
}

#[when(expr = "I send a chat request with {string} set to {string}")]
async fn send_chat_with(w: &mut GatewayWorld, pointer: String, literal: String) -> Outcome {
    w.send_chat_with(&s(pointer), &s(literal)).await
}

#[when(expr = "I send a chat request without {string}")]
async fn send_chat_without(w: &mut GatewayWorld, pointer: String) -> Outcome {
    w.send_chat_without(&s(pointer)).await
}

#[when(expr = "I send a chat request to {string}")]
async fn send_chat_to(w: &mut GatewayWorld, path: String) -> Outcome {
    w.send_chat_to(&s(path)).await
}

#[when(expr = "I send a chat request padded to {int} bytes")]
async fn send_padded(w: &mut GatewayWorld, size: i64) -> Outcome {
    w.send_padded(n(size)?).await
}

#[given(expr = "another caller has sent {int} bytes of a chat request padded to {int} bytes")]
async fn hold_caller(w: &mut GatewayWorld, sent: i64, size: i64) -> Outcome {
    w.hold_caller(n(sent)?, n(size)?).await
}

#[when("that caller sends the rest of its request")]
async fn release_caller(w: &mut GatewayWorld) -> Outcome {
    w.release_held_caller().await
}

#[then(expr = "that caller's response status is {int}")]
fn held_status(w: &mut GatewayWorld, status: i64) -> Outcome {
    w.held_answer_status_is(super::status(status)?)
}

#[then(expr = "the gateway's metrics show at least {int} bytes held of the {string} memory budget")]
async fn memory_held(w: &mut GatewayWorld, bytes: i64, budget: String) -> Outcome {
    let bytes = u64::try_from(bytes).map_err(|_| format!("{bytes} is not a byte count"))?;
    w.memory_held_at_least(&s(budget), bytes).await
}

#[when(expr = "I send a chat request with the member {string} written twice, first as {string}")]
async fn send_repeated(w: &mut GatewayWorld, name: String, first: String) -> Outcome {
    w.send_chat_with_repeated(&s(name), &s(first)).await
}

#[then("no member reached the upstream twice")]
async fn no_member_twice(w: &mut GatewayWorld) -> Outcome {
    w.no_member_reached_the_upstream_twice().await
}

#[when(expr = "I send the raw body {string}")]
async fn send_raw(w: &mut GatewayWorld, body: String) -> Outcome {
    w.send_raw(&s(body)).await
}

#[when(expr = "I GET {string}")]
async fn get(w: &mut GatewayWorld, path: String) -> Outcome {
    w.send_method("GET", &s(path)).await
}

#[when(expr = "I send {word} {string}")]
async fn send_method(w: &mut GatewayWorld, method: String, path: String) -> Outcome {
    w.send_method(&method, &s(path)).await
}

#[then(expr = "the response status is {int}")]
fn status_is(w: &mut GatewayWorld, code: i64) -> Outcome {
    w.status_is(status(code)?)
}

#[then(expr = "the response is the error {string}")]
async fn is_error(w: &mut GatewayWorld, code: String) -> Outcome {
    w.is_error(&s(code)).await
}

#[then("the response is a 4xx catalog error")]
async fn is_4xx(w: &mut GatewayWorld) -> Outcome {
    w.is_4xx_catalog_error().await
}

#[then(expr = "the error param is {string}")]
fn param_is(w: &mut GatewayWorld, param: String) -> Outcome {
    w.param_is(&s(param))
}

#[then(expr = "the error message contains {string}")]
fn message_contains(w: &mut GatewayWorld, text: String) -> Outcome {
    w.message_contains(&s(text))
}

#[then(expr = "the error message does not contain {string}")]
fn message_lacks(w: &mut GatewayWorld, text: String) -> Outcome {
    w.message_lacks(&s(text))
}

#[then("the error message contains the request id")]
fn message_has_request_id(w: &mut GatewayWorld) -> Outcome {
    w.message_has_request_id()
}

#[then("the error message reveals no upstream details")]
fn reveals_nothing(w: &mut GatewayWorld) -> Outcome {
    w.reveals_nothing()
}

#[then(expr = "the header {string} is {string}")]
fn header_is(w: &mut GatewayWorld, name: String, value: String) -> Outcome {
    w.header_is(&s(name), &s(value))
}

#[then(expr = "the header {string} contains {string}")]
fn header_contains(w: &mut GatewayWorld, name: String, value: String) -> Outcome {
    w.header_contains(&s(name), &s(value))
}

#[then(expr = "the header {string} is present")]
fn header_present(w: &mut GatewayWorld, name: String) -> Outcome {
    w.header_present(&s(name), true)
}

#[then(expr = "the header {string} is absent")]
fn header_absent(w: &mut GatewayWorld, name: String) -> Outcome {
    w.header_present(&s(name), false)
}

#[then(expr = "the header {string} is a UUID")]
fn header_uuid(w: &mut GatewayWorld, name: String) -> Outcome {
    w.header_is_uuid(&s(name))
}

#[then(expr = "the body field {string} is {string}")]
fn body_field_is(w: &mut GatewayWorld, pointer: String, value: String) -> Outcome {
    w.body_field_is(&s(pointer), &s(value))
}

/// The answer's `model` is the alias the request named (the caller asked for an alias; the
/// upstream's name for it is an internal detail).
#[then("the body names the requested model")]
fn body_names_requested_model(w: &mut GatewayWorld) -> Outcome {
    let alias = w
        .body
        .get("model")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or("the request named no model")?;
    w.body_field_is("/model", &alias)
}

#[then(expr = "the body field {string} contains {string}")]
fn body_field_contains(w: &mut GatewayWorld, pointer: String, value: String) -> Outcome {
    w.body_field_contains(&s(pointer), &s(value))
}

#[then(expr = "the body field {string} is a string of at least {int} characters")]
fn body_field_is_long(w: &mut GatewayWorld, pointer: String, min: i64) -> Outcome {
    let min = usize::try_from(min).map_err(|_| format!("{min} is not a length"))?;
    w.body_field_is_long(&s(pointer), min)
}

#[then(expr = "the body has the field {string}")]
fn body_has_field(w: &mut GatewayWorld, pointer: String) -> Outcome {
    w.body_has_field(&s(pointer), true)
}

#[then(expr = "the body has no field {string}")]
fn body_has_no_field(w: &mut GatewayWorld, pointer: String) -> Outcome {
    w.body_has_field(&s(pointer), false)
}

#[then(expr = "the body matches the schema {string}")]
fn body_matches_schema(w: &mut GatewayWorld, name: String) -> Outcome {
    w.body_matches_schema(&s(name))
}

#[when("I send a chat request over the body cap")]
async fn send_over_cap(w: &mut GatewayWorld) -> Outcome {
    w.send_over_cap().await
}

#[then(expr = "the response answers the condition {string}")]
async fn answers_condition(w: &mut GatewayWorld, condition: String) -> Outcome {
    w.answers_condition(&s(condition)).await
}

#[then("the response is not a server error")]
fn not_server_error(w: &mut GatewayWorld) -> Outcome {
    w.not_server_error()
}

#[then(expr = "the response does not echo the credential {string}")]
fn not_echoed(w: &mut GatewayWorld, secret: String) -> Outcome {
    w.credential_not_echoed(&s(secret))
}

#[then("the response reveals no upstream details in its body or headers")]
fn reveals_nothing_anywhere(w: &mut GatewayWorld) -> Outcome {
    w.reveals_nothing_anywhere()
}
