//! Recording: every request carrying a marker, and how its exchange ended.
//!
//! The outcome of an exchange is only known after the handler has returned (a client can
//! leave halfway through a stream), so each record keeps its outcome in an atomic that the
//! response body's drop guard updates without taking the store lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The mock sent everything it meant to send.
    Completed,
    /// The client went away before the mock finished sending.
    ClientDisconnected,
    /// The mock aborted the connection on purpose (a `drop` step).
    DroppedByMock,
    /// Still in flight.
    Pending,
}

impl Outcome {
    fn to_u8(self) -> u8 {
        match self {
            Outcome::Pending => 0,
            Outcome::Completed => 1,
            Outcome::ClientDisconnected => 2,
            Outcome::DroppedByMock => 3,
        }
    }

    fn from_u8(v: u8) -> Outcome {
        match v {
            1 => Outcome::Completed,
            2 => Outcome::ClientDisconnected,
            3 => Outcome::DroppedByMock,
            _ => Outcome::Pending,
        }
    }
}

/// One recorded request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recorded {
    pub path: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The parsed JSON body.
    pub body: serde_json::Value,
    /// Top-level member names the raw body held more than once (the parsed body keeps only
    /// the last of each), in order of their second appearance.
    #[serde(default)]
    pub repeated_keys: Vec<String>,
    pub outcome: Outcome,
    /// When each body frame was handed to the connection (Unix ms), so timing checks use
    /// the mock's own clock rather than the client's arrival times under load.
    #[serde(default)]
    pub sent_unix_ms: Vec<u64>,
}

impl Recorded {
    /// The value of the first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The top-level member names `raw` (one JSON object) holds more than once; empty for
/// anything else. serde_json keeps the last of a repeated member, so only the raw bytes tell.
pub(crate) fn repeated_top_level_keys(raw: &[u8]) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut a: A,
                ) -> Result<Keys, A::Error> {
                    let mut seen = std::collections::HashSet::new();
                    let mut repeated = Vec::new();
                    while let Some(k) = a.next_key::<String>()? {
                        a.next_value::<serde::de::IgnoredAny>()?;
                        if !seen.insert(k.clone()) {
                            repeated.push(k);
                        }
                    }
                    Ok(Keys(repeated))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_slice::<Keys>(raw).map_or_else(|_| Vec::new(), |k| k.0)
}

/// A record as stored: immutable request data plus a settable outcome.
#[derive(Debug)]
pub(crate) struct Entry {
    path: String,
    headers: Vec<(String, String)>,
    body: serde_json::Value,
    repeated_keys: Vec<String>,
    outcome: AtomicU8,
    sent: Mutex<Vec<u64>>,
}

impl Entry {
    fn snapshot(&self) -> Recorded {
        Recorded {
            path: self.path.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            repeated_keys: self.repeated_keys.clone(),
            outcome: Outcome::from_u8(self.outcome.load(Ordering::Acquire)),
            sent_unix_ms: self.sent.lock().clone(),
        }
    }

    /// Notes that a body frame is being sent now (bounded: a stream has few frames, and
    /// past 4096 the rest are not timed).
    pub(crate) fn note_sent(&self) {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut sent = self.sent.lock();
        if sent.len() < 4096 {
            sent.push(ms);
        }
    }

    pub(crate) fn set_outcome(&self, outcome: Outcome) {
        self.outcome.store(outcome.to_u8(), Ordering::Release);
    }
}

#[derive(Debug, Default)]
pub(crate) struct RecordStore {
    records: Mutex<HashMap<String, Vec<Arc<Entry>>>>,
}

impl RecordStore {
    pub(crate) fn record(
        &self,
        marker: &str,
        path: String,
        headers: Vec<(String, String)>,
        body: serde_json::Value,
        repeated_keys: Vec<String>,
    ) -> Arc<Entry> {
        let entry = Arc::new(Entry {
            path,
            headers,
            body,
            repeated_keys,
            outcome: AtomicU8::new(Outcome::Pending.to_u8()),
            sent: Mutex::new(Vec::new()),
        });
        let mut records = self.records.lock();
        match records.get_mut(marker) {
            Some(list) => list.push(Arc::clone(&entry)),
            None => {
                records.insert(marker.to_owned(), vec![Arc::clone(&entry)]);
            }
        }
        entry
    }

    pub(crate) fn get(&self, marker: &str) -> Vec<Recorded> {
        // Clone the Arcs under the lock, copy the data outside it.
        let entries: Vec<Arc<Entry>> = self
            .records
            .lock()
            .get(marker)
            .map(|list| list.to_vec())
            .unwrap_or_default();
        entries.iter().map(|e| e.snapshot()).collect()
    }

    pub(crate) fn clear(&self) {
        self.records.lock().clear();
    }
}

/// Settles an exchange's outcome. Dropped without `finish` means the client went away: hyper
/// drops the handler future or the body stream when the connection closes.
#[derive(Debug)]
pub(crate) struct OutcomeGuard {
    entry: Option<Arc<Entry>>,
    done: bool,
}

impl OutcomeGuard {
    pub(crate) fn new(entry: Option<Arc<Entry>>) -> OutcomeGuard {
        OutcomeGuard { entry, done: false }
    }

    /// A body frame is being sent (see [`Entry::note_sent`]).
    pub(crate) fn sent(&self) {
        if let Some(entry) = &self.entry {
            entry.note_sent();
        }
    }

    pub(crate) fn finish(&mut self, outcome: Outcome) {
        if let Some(entry) = &self.entry {
            entry.set_outcome(outcome);
        }
        self.done = true;
    }
}

impl Drop for OutcomeGuard {
    fn drop(&mut self) {
        if !self.done {
            if let Some(entry) = &self.entry {
                entry.set_outcome(Outcome::ClientDisconnected);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_top_level_members_are_named_and_nested_ones_are_not() {
        let raw = br#"{"temperature": 5, "model": "m", "x": {"a": 1, "a": 2}, "temperature": 0.5}"#;
        assert_eq!(repeated_top_level_keys(raw), vec!["temperature".to_owned()]);
        assert!(repeated_top_level_keys(br#"{"a": 1, "b": [1, 1]}"#).is_empty());
        assert!(repeated_top_level_keys(b"[1, 2]").is_empty());
        assert!(repeated_top_level_keys(b"not json").is_empty());
    }
}
