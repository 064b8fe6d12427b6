//! Rate limits and quotas: bursts of requests, Retry-After, counting statuses.

use cucumber::{then, when};

use super::{n, status};
use crate::world::{GatewayWorld, Outcome};

#[when(expr = "I send {int} chat requests")]
async fn send_many(w: &mut GatewayWorld, count: i64) -> Outcome {
    w.send_many(n(count)?, false).await
}

#[when(expr = "I send {int} chat requests in parallel")]
async fn send_parallel(w: &mut GatewayWorld, count: i64) -> Outcome {
    w.send_many(n(count)?, true).await
}

#[when("I wait for the Retry-After period")]
async fn wait_retry_after(w: &mut GatewayWorld) -> Outcome {
    w.wait_retry_after().await
}

#[then("the response has a whole-seconds Retry-After")]
fn whole_seconds(w: &mut GatewayWorld) -> Outcome {
    w.whole_seconds_retry_after()
}

#[then("Retry-After is the number of seconds until 00:00 UTC")]
fn until_midnight(w: &mut GatewayWorld) -> Outcome {
    w.retry_after_is_midnight()
}

#[then(expr = "{int} of the responses had status {int}")]
fn responses_with_status(w: &mut GatewayWorld, count: i64, code: i64) -> Outcome {
    w.responses_with_status(n(count)?, status(code)?)
}
