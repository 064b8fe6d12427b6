//! Server-side tools: built-in deterministic tools and the HTTP executor.
//!
//! A tool never fails the request: any failure (bad arguments, timeout, HTTP error) becomes
//! the text of the `tool` message the model reads next.

use serde_json::{json, Value};

use crate::config::{Builtin, Executor, Tool};

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
pub async fn execute(http: &reqwest::Client, tool: &Tool, arguments: &str) -> String {
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
                Ok(r) if r.status().is_success() => match r.bytes().await {
                    Ok(b) => Ok(serde_json::from_slice::<Value>(&b).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&b[..b.len().min(8192)]).into_owned())
                    })),
                    Err(_) => Err("the tool's answer could not be read".to_owned()),
                },
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

/// The `tools` entries offered to the model for the configured server-side tools.
pub fn definitions(tools: &[Tool]) -> Vec<Value> {
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
        let a = execute(&http, &w, r#"{"city":"Oslo"}"#).await;
        assert_eq!(a, execute(&http, &w, r#"{ "city" : "Oslo" }"#).await);
        assert!(a.contains("Oslo"));
        assert!(execute(&http, &w, "{}").await.contains("error"));
        assert!(execute(&http, &w, "{nope").await.contains("not JSON"));
        let sum = execute(
            &http,
            &tool(Executor::Builtin(Builtin::Add)),
            r#"{"a":2,"b":3}"#,
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
        assert!(execute(&http, &t, "{}").await.contains("failed"));
    }
}
