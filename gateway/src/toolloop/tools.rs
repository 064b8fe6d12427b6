//! Server-side tools: built-in deterministic tools and the HTTP executor.
//!
//! A tool never fails the request: any failure (bad arguments, timeout, HTTP error) becomes
//! the text of the `tool` message the model reads next.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::checks::memory::{MemoryBudget, MemoryHold};
use crate::config::{Builtin, Executor, Tool};
use crate::upstream::{read_capped, Capped, ReadFail};

fn builtin(which: Builtin, args: &Value) -> Result<Value, String> {
    match which {
        Builtin::LookupWeather => {
            let city = args
                .get("city")
                .and_then(Value::as_str)
                .ok_or("argument `city` (string) is required")?;
            // Deterministic: the same city always gets the same weather.
            let h = city
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            let sky = ["sunny", "cloudy", "rainy", "windy"][(h % 4) as usize];
            Ok(json!({"city": city, "forecast": sky, "temperature_c": (h % 35) as i64 - 5}))
        }
        Builtin::Echo => Ok(json!({"echo": args})),
        Builtin::Add => {
            let a = args
                .get("a")
                .and_then(Value::as_f64)
                .ok_or("argument `a` (number) is required")?;
            let b = args
                .get("b")
                .and_then(Value::as_f64)
                .ok_or("argument `b` (number) is required")?;
            Ok(json!({"sum": a + b}))
        }
    }
}

/// Runs `tool` with the model's `arguments` string; the result is the `tool` message content.
/// An HTTP tool's answer is read up to `max_bytes` (TOOL_MAX_ANSWER_BYTES), JSON or not; a
/// larger answer is a failed tool, never a buffer without bound. While it is read and parsed
/// it holds its bytes and its tree's cost of `memory` (the answer budget); an answer the
/// budget cannot take now is a failed tool too (the model reads why).
pub(crate) async fn execute(
    http: &reqwest::Client,
    tool: &Tool,
    arguments: &str,
    max_bytes: usize,
    memory: &Arc<MemoryBudget>,
) -> String {
    let args: Value = match serde_json::from_str(arguments) {
        Ok(v) => v,
        Err(e) => {
            return json!({"error": format!("tool `{}` was called with arguments that are not JSON: {e}", tool.name)})
                .to_string()
        }
    };
    let result = match &tool.executor {
        Executor::Builtin(b) => builtin(*b, &args),
        Executor::Http { url, timeout } => {
            match http.post(url).timeout(*timeout).json(&args).send().await {
                Ok(r) if r.status().is_success() => {
                    let mut hold = memory.hold();
                    // reqwest hands its answer on as the `http` type the readers take.
                    match read_capped(r.into(), max_bytes, &mut hold, 1).await {
                        Ok(Capped::Whole(b)) => answer_value(&b, &mut hold),
                        Ok(Capped::Cut(_)) => Err(format!(
                            "the tool's answer exceeds TOOL_MAX_ANSWER_BYTES ({max_bytes} bytes)"
                        )),
                        Err(ReadFail::Memory(_)) => Err(BUSY.to_owned()),
                        Err(ReadFail::Transport(_)) => {
                            Err("the tool's answer could not be read".to_owned())
                        }
                    }
                }
                // Redirects are not followed (the client's policy): a 3xx is a failed tool.
                Ok(r) => Err(format!("the tool answered HTTP {}", r.status().as_u16())),
                Err(e) if e.is_timeout() => Err(format!(
                    "the tool timed out after {} ms",
                    timeout.as_millis()
                )),
                Err(_) => Err("the tool could not be reached".to_owned()),
            }
        }
    };
    match result {
        Ok(v) => v.to_string(),
        Err(why) => json!({"error": format!("tool `{}` failed: {why}", tool.name)}).to_string(),
    }
}

const BUSY: &str = "the gateway holds its maximum of answers in memory (MAX_ANSWER_MEMORY_BYTES)";

/// A tool's answer as JSON (its tree paid for from `hold` before it is built), else its first
/// 8 KiB as text.
fn answer_value(b: &[u8], hold: &mut MemoryHold) -> Result<Value, String> {
    let text = || Value::String(String::from_utf8_lossy(&b[..b.len().min(8192)]).into_owned());
    let Ok(cost) = crate::checks::lazy::json_cost(b) else {
        return Ok(text());
    };
    // The tree, and the text serialised from it.
    let need = usize::try_from(cost)
        .unwrap_or(usize::MAX)
        .saturating_add(b.len());
    hold.grow(need).map_err(|_| BUSY.to_owned())?;
    Ok(serde_json::from_slice::<Value>(b).unwrap_or_else(|_| text()))
}

/// The `tools` entries offered to the model for the configured server-side tools.
pub(crate) fn definitions(tools: &[Tool]) -> Vec<Value> {
    tools
        .iter()
        .map(|t| {
            json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn run(http: &reqwest::Client, t: &Tool, args: &str, max: usize) -> String {
        execute(http, t, args, max, &MemoryBudget::new(1 << 30)).await
    }

    fn tool(executor: Executor) -> Tool {
        Tool {
            name: "t".into(),
            description: "d".into(),
            parameters: json!({"type": "object"}),
            executor,
        }
    }

    #[tokio::test]
    async fn builtins_are_deterministic_and_failures_become_text() {
        let http = reqwest::Client::new();
        let w = tool(Executor::Builtin(Builtin::LookupWeather));
        let a = run(&http, &w, r#"{"city":"Oslo"}"#, 1 << 20).await;
        assert_eq!(a, run(&http, &w, r#"{ "city" : "Oslo" }"#, 1 << 20).await);
        assert!(a.contains("Oslo"));
        assert!(run(&http, &w, "{}", 1 << 20).await.contains("error"));
        assert!(run(&http, &w, "{nope", 1 << 20).await.contains("not JSON"));
        let sum = run(
            &http,
            &tool(Executor::Builtin(Builtin::Add)),
            r#"{"a":2,"b":3}"#,
            1 << 20,
        )
        .await;
        assert_eq!(sum, r#"{"sum":5.0}"#);
    }

    #[tokio::test]
    async fn http_tool_refused_or_slow_is_a_message() {
        let http = reqwest::Client::new();
        let t = tool(Executor::Http {
            url: "http://127.0.0.1:9/tool".into(),
            timeout: Duration::from_millis(500),
        });
        assert!(run(&http, &t, "{}", 1 << 20).await.contains("failed"));
    }

    /// A loopback tool server: `/big` answers `n` bytes of JSON, `/moved` a 302 to `/big`.
    async fn tool_server(n: usize) -> String {
        use axum::routing::post;
        let big = format!("[{}0]", "0,".repeat(n / 2));
        let app = axum::Router::new()
            .route("/big", post(move || async move { big }))
            .route(
                "/moved",
                post(|| async { axum::response::Redirect::temporary("/big") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn http_tool_answer_is_capped_also_when_json() {
        let base = tool_server(4 << 20).await;
        let http = crate::testing::state_at(0).http().clone();
        let t = tool(Executor::Http {
            url: format!("{base}/big"),
            timeout: Duration::from_secs(5),
        });
        let out = run(&http, &t, "{}", 64 * 1024).await;
        assert!(
            out.contains("TOOL_MAX_ANSWER_BYTES"),
            "{}",
            &out[..out.len().min(300)]
        );
        assert!(out.len() < 1024);
        let out = run(&http, &t, "{}", 8 << 20).await;
        assert!(out.len() > 4 << 20, "within the cap the answer passes");
    }

    #[tokio::test]
    async fn http_tool_answer_is_paid_for_from_the_answer_budget() {
        // 64 KiB of `[0,0,…]`: its bytes fit a 256 KiB budget, its tree (32 K elements) not.
        let base = tool_server(64 * 1024).await;
        let http = crate::testing::state_at(0).http().clone();
        let t = tool(Executor::Http {
            url: format!("{base}/big"),
            timeout: Duration::from_secs(5),
        });
        let small = MemoryBudget::new(256 * 1024);
        let out = execute(&http, &t, "{}", 1 << 20, &small).await;
        assert!(out.contains("MAX_ANSWER_MEMORY_BYTES"), "{out}");
        assert_eq!(small.used(), 0, "the share is given back");
        let roomy = MemoryBudget::new(8 << 20);
        let out = execute(&http, &t, "{}", 1 << 20, &roomy).await;
        assert!(out.starts_with("[0,0"), "{}", &out[..out.len().min(100)]);
        assert_eq!(roomy.used(), 0);
    }

    #[tokio::test]
    async fn http_tool_redirect_is_not_followed() {
        let base = tool_server(16).await;
        let http = crate::testing::state_at(0).http().clone();
        let t = tool(Executor::Http {
            url: format!("{base}/moved"),
            timeout: Duration::from_secs(5),
        });
        let out = run(&http, &t, "{}", 1 << 20).await;
        assert!(out.contains("HTTP 307"), "{out}");
    }
}
