//! Stored conversations on /c1.

use cucumber::{given, then, when};

use super::{n, s};
use crate::world::{GatewayWorld, Outcome};

#[given("the gateway's conversation store is failing")]
fn store_failing(w: &mut GatewayWorld) -> Outcome {
    w.fail_store()
}

#[when(expr = "I start a conversation as user {string} saying {string}")]
async fn start(w: &mut GatewayWorld, user: String, text: String) -> Outcome {
    w.start_conversation(&s(user), &s(text)).await
}

#[when(expr = "I start a streamed conversation as user {string} saying {string}")]
async fn start_streamed(w: &mut GatewayWorld, user: String, text: String) -> Outcome {
    w.start_streamed_conversation(&s(user), &s(text)).await
}

#[when(expr = "I continue the conversation as user {string} saying {string}")]
async fn continue_(w: &mut GatewayWorld, user: String, text: String) -> Outcome {
    w.continue_conversation(&s(user), &s(text)).await
}

#[when(expr = "I {word} the conversation as user {string}")]
async fn act_remembered(w: &mut GatewayWorld, action: String, user: String) -> Outcome {
    w.remembered_conversation(&action, &s(user)).await
}

#[when(expr = "I {word} the conversation {string} as user {string}")]
async fn act_literal(w: &mut GatewayWorld, action: String, id: String, user: String) -> Outcome {
    w.literal_conversation(&action, &s(id), &s(user)).await
}

#[when(expr = "I {word} a conversation whose id is {int} characters long as user {string}")]
async fn act_long(w: &mut GatewayWorld, action: String, len: i64, user: String) -> Outcome {
    w.long_conversation(&action, n(len)?, &s(user)).await
}

#[when(expr = "I list the conversations of user {string}")]
async fn list(w: &mut GatewayWorld, user: String) -> Outcome {
    w.list_conversations(&s(user)).await
}

#[then(expr = "the conversation list has {int} entries")]
fn list_len(w: &mut GatewayWorld, count: i64) -> Outcome {
    w.conversation_list_len(n(count)?)
}

#[then(expr = "the conversation has {int} messages")]
fn conversation_len(w: &mut GatewayWorld, count: i64) -> Outcome {
    w.conversation_len(n(count)?)
}

#[then(expr = "conversation message {int} has role {string} and contains {string}")]
fn message(w: &mut GatewayWorld, index: i64, role: String, text: String) -> Outcome {
    w.conversation_message(n(index)?, &s(role), &s(text))
}
