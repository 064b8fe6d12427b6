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

#[when(expr = "{int} ms have passed")]
async fn time_passes(w: &mut GatewayWorld, ms: i64) -> Outcome {
    w.let_time_pass(n(ms)? as u64).await
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

#[when(expr = "I send {int} streaming chat requests in parallel")]
async fn send_parallel_streaming(w: &mut GatewayWorld, count: i64) -> Outcome {
    w.body["stream"] = serde_json::Value::Bool(true);
    w.send_many(n(count)?, true).await
}

#[then(expr = "every response with status {int} has a whole-seconds Retry-After")]
fn every_with_status_has_retry_after(w: &mut GatewayWorld, code: i64) -> Outcome {
    let code = status(code)?;
    for r in w.responses.iter().filter(|r| r.status == code) {
        let ok = r
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().parse::<u64>().is_ok_and(|s| s >= 1));
        if !ok {
            return Err(format!(
                "a {code} response has no whole-seconds Retry-After: {:?}",
                r.headers.get("retry-after")
            ));
        }
    }
    Ok(())
}

/// Every non-200 answer of the last parallel send is this catalog error (envelope, code,
/// catalog status and type, Retry-After on 429/503).
#[then(expr = "the refused responses are the error {string}")]
async fn refused_are_the_error(w: &mut GatewayWorld, code: String) -> Outcome {
    let all = std::mem::take(&mut w.responses);
    let mut result = Ok(());
    for r in all.iter().filter(|r| r.status != 200) {
        w.responses = vec![r.clone()];
        if let Err(e) = w.is_error(&code).await {
            result = Err(e);
            break;
        }
    }
    w.responses = all;
    result
}
