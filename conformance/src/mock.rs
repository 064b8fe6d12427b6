//! The mock upstream behind a model role: scripted and inspected in-process (embedded
//! target) or over the mock's `/__mock` control API (an external gateway pointed at a
//! standalone `mocks` binary).

use std::sync::Arc;
use std::time::Duration;

use mocks::{MockServer, Recorded, ScriptBody, Step};
use serde::Deserialize;

/// One mock upstream.
#[derive(Clone, Debug)]
pub enum MockHandle {
    Local(Arc<MockServer>),
    Remote {
        base_url: String,
        http: reqwest::Client,
    },
}

#[derive(Deserialize)]
struct Records {
    records: Vec<Recorded>,
}

impl MockHandle {
    pub fn remote(base_url: &str) -> MockHandle {
        MockHandle::Remote {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Where this mock listens, so that error bodies can be checked for it.
    pub fn base_url(&self) -> String {
        match self {
            MockHandle::Local(m) => m.base_url(),
            MockHandle::Remote { base_url, .. } => base_url.clone(),
        }
    }

    /// Two handles on the same server (an external target may use one mock for all roles).
    pub fn same_as(&self, other: &MockHandle) -> bool {
        self.base_url() == other.base_url()
    }

    /// Replaces the script of `marker` (the name after `mock:`).
    pub async fn script(&self, marker: &str, steps: &[Step]) -> Result<(), String> {
        match self {
            MockHandle::Local(m) => {
                m.script(marker, steps.to_vec());
                Ok(())
            }
            MockHandle::Remote { base_url, http } => {
                let body = ScriptBody {
                    steps: steps.to_vec(),
                };
                let resp = http
                    .put(format!("{base_url}/__mock/scripts/{marker}"))
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| format!("scripting the mock at {base_url} failed: {e}"))?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    Err(format!(
                        "the mock at {base_url} refused the script: {status} {text}"
                    ))
                }
            }
        }
    }

    /// The requests the mock received with `marker`, oldest first.
    pub async fn records(&self, marker: &str) -> Result<Vec<Recorded>, String> {
        match self {
            MockHandle::Local(m) => Ok(m.records(marker)),
            MockHandle::Remote { base_url, http } => {
                let resp = http
                    .get(format!("{base_url}/__mock/records/{marker}"))
                    .send()
                    .await
                    .map_err(|e| format!("reading the mock's records at {base_url} failed: {e}"))?;
                let records: Records = resp
                    .json()
                    .await
                    .map_err(|e| format!("the mock at {base_url} sent unreadable records: {e}"))?;
                Ok(records.records)
            }
        }
    }

    /// The raw body this mock gives for `step`, fetched by
    /// playing the step once under a probe marker. Used to know which numbers an upstream
    /// error body carried, so that their leaking can be detected.
    pub async fn probe(&self, marker: &str, step: Step) -> Result<String, String> {
        let probe = format!("{marker}-probe");
        self.script(&probe, &[step]).await?;
        let body = serde_json::json!({
            "model": "probe",
            "messages": [{"role": "user", "content": format!("mock:{probe} probe")}],
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let urls: Vec<String> = match self {
            MockHandle::Local(m) => vec![m.chat_url()],
            // The control URL does not say which personality it is: try both API prefixes.
            MockHandle::Remote { base_url, .. } => vec![
                format!("{base_url}/v1/chat/completions"),
                format!("{base_url}/api/v1/chat/completions"),
            ],
        };
        for url in urls {
            let Ok(resp) = http.post(&url).json(&body).send().await else {
                continue;
            };
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                continue;
            }
            return Ok(resp.text().await.unwrap_or_default());
        }
        Err(format!("could not probe the mock at {}", self.base_url()))
    }
}
