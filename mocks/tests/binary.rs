//! The `mocks` binary: prints its address, serves the chosen personality.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn binary_prints_address_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mocks"))
        .args([
            "--personality",
            "litellm",
            "--bind",
            "127.0.0.1:0",
            "--ttft-ms",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let result = async {
        let rest = line
            .strip_prefix("mocks listening on http://")
            .ok_or_else(|| format!("unexpected banner {line:?}"))?;
        let (addr, personality) = rest
            .trim_end()
            .split_once(" personality=")
            .ok_or_else(|| format!("unexpected banner {line:?}"))?;
        if personality != "litellm" {
            return Err(format!("personality {personality}"));
        }
        let body = reqwest::get(format!("http://{addr}/health/liveliness"))
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        if body != "\"I'm alive!\"" {
            return Err(format!("liveliness {body}"));
        }
        Ok(())
    }
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    result.unwrap();
}
