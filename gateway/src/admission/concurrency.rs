//! Per-token concurrency: how many requests a token has in flight (a stream counts until it
//! ends or the caller goes away). In this process by default; in Redis (a sorted set of slots,
//! each with its own expiry) when REDIS_URL is set, so that replicas share one count.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use futures_util::StreamExt;

use crate::state::AppState;

/// The counts of this process, keyed by the token's SHA-256.
#[derive(Debug, Default)]
pub struct LocalSlots {
    held: parking_lot::Mutex<HashMap<[u8; 32], u32>>,
}

impl LocalSlots {
    /// Takes a slot if fewer than `max` are held for `key`.
    pub fn try_acquire(&self, key: &[u8; 32], max: u32) -> bool {
        let mut held = self.held.lock();
        let n = held.entry(*key).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    pub fn release(&self, key: &[u8; 32]) {
        let mut held = self.held.lock();
        if let Some(n) = held.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // No entry per idle token: memory is bounded by the requests in flight.
                held.remove(key);
            }
        }
    }

    pub fn held(&self, key: &[u8; 32]) -> u32 {
        self.held.lock().get(key).copied().unwrap_or(0)
    }
}

/// Where a slot was taken, so it is given back there.
#[derive(Debug)]
enum Backend {
    Local(Arc<LocalSlots>),
    Redis(AppState, String),
}

/// A held slot; dropping it (request done, stream ended, caller disconnected) frees it.
#[derive(Debug)]
pub struct Slot {
    key: [u8; 32],
    backend: Option<Backend>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        match self.backend.take() {
            Some(Backend::Local(slots)) => slots.release(&self.key),
            Some(Backend::Redis(state, member)) => {
                if let (Some(redis), Ok(rt)) =
                    (state.redis.clone(), tokio::runtime::Handle::try_current())
                {
                    let key = self.key;
                    rt.spawn(async move {
                        if let Err(e) = redis.release_slot(&key, &member).await {
                            // The slot's own expiry (SLOT_TTL) frees it anyway.
                            tracing::warn!(error = %e, "redis slot release failed");
                        }
                    });
                }
            }
            None => {}
        }
    }
}

impl AppState {
    /// Takes one of `max` concurrency slots of the token `key`; `None` when all are held.
    pub async fn acquire_slot(&self, key: &[u8; 32], max: u32) -> Option<Slot> {
        if let Some(redis) = &self.redis {
            let member = uuid::Uuid::new_v4().simple().to_string();
            let ttl = self.config.http_total_timeout + std::time::Duration::from_secs(60);
            match redis.acquire_slot(key, max, &member, ttl).await {
                Ok(true) => {
                    return Some(Slot {
                        key: *key,
                        backend: Some(Backend::Redis(self.clone(), member)),
                    })
                }
                Ok(false) => return None,
                Err(e) => {
                    self.metrics.redis_error();
                    tracing::warn!(error = %e, "redis concurrency check failed");
                    if redis.fail_closed {
                        return None;
                    }
                }
            }
        }
        self.slots.try_acquire(key, max).then(|| Slot {
            key: *key,
            backend: Some(Backend::Local(self.slots.clone())),
        })
    }
}

/// Keeps `guard` alive as long as the response: until the last byte of a stream is sent or
/// the body is dropped because the caller went away. A buffered (non-stream) answer is
/// complete already, so its guard is released at once.
pub(crate) fn hold_while_streaming<G: Send + 'static>(resp: Response, guard: G) -> Response {
    let streaming = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streaming {
        drop(guard);
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        let _held = &guard;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_slots_cap_and_free() {
        let s = LocalSlots::default();
        let k = [3u8; 32];
        assert!(s.try_acquire(&k, 2));
        assert!(s.try_acquire(&k, 2));
        assert!(!s.try_acquire(&k, 2));
        assert!(
            s.try_acquire(&[4u8; 32], 2),
            "another token has its own count"
        );
        s.release(&k);
        assert_eq!(s.held(&k), 1);
        assert!(s.try_acquire(&k, 2));
        s.release(&k);
        s.release(&k);
        assert_eq!(s.held(&k), 0);
        assert!(s.held.lock().get(&k).is_none());
    }

    #[tokio::test]
    async fn a_slot_is_freed_when_dropped_and_a_stream_holds_it_until_dropped() {
        let state = crate::testing::state_at(1_000);
        let k = [9u8; 32];
        let a = state.acquire_slot(&k, 1).await.unwrap();
        assert!(state.acquire_slot(&k, 1).await.is_none());
        let resp = Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from("data: x\n\n"))
            .unwrap();
        let resp = hold_while_streaming(resp, a);
        assert_eq!(state.slots.held(&k), 1, "the stream still holds the slot");
        drop(resp);
        assert_eq!(
            state.slots.held(&k),
            0,
            "dropping the body (disconnect) frees it"
        );
        let b = state.acquire_slot(&k, 1).await.unwrap();
        let json = Response::new(Body::from("{}"));
        let _ = hold_while_streaming(json, b);
        assert_eq!(
            state.slots.held(&k),
            0,
            "a buffered answer frees its slot at once"
        );
    }
}
