//! The socket under hyper ([`Watched`]): activity for the connection watchdog (idle, a
//! caller that stopped reading), the lingering close after a request body left unread, and
//! the rewrite of hyper's own 400/414/431 answers into the catalog envelope with an
//! `x-request-id`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::catalog::Code;
use crate::config::ServerLimits;
use crate::error::ApiError;

/// What the watchdog reads: milliseconds since the connection opened.
pub(super) struct Activity {
    opened: Instant,
    last_io_ms: AtomicU64,
    /// When a write started waiting on the caller (0: not blocked).
    blocked_since_ms: AtomicU64,
    /// Requests whose response body is not finished yet.
    in_flight: AtomicUsize,
    /// The last request's body was not read to its end: close by lingering ([`Watched`]).
    unread_body: AtomicBool,
    /// When the lingering close began (0: not lingering); the watchdog bounds it.
    linger_since_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Self {
        Activity {
            opened: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            blocked_since_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            unread_body: AtomicBool::new(false),
            linger_since_ms: AtomicU64::new(0),
        }
    }

    /// Records whether the request just answered left part of its body unread.
    pub(super) fn set_unread_body(&self, unread: bool) {
        self.unread_body.store(unread, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64 + 1
    }

    fn touched(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }
}

/// A request of this connection in flight, until its response body is dropped.
pub(super) struct Busy(Arc<Activity>);

impl Busy {
    pub(super) fn new(act: Arc<Activity>) -> Self {
        act.in_flight.fetch_add(1, Ordering::Relaxed);
        act.touched();
        Busy(act)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touched();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves with the reason once the connection is idle too long or its writes are stuck.
pub(super) async fn watchdog(act: &Activity, limits: &ServerLimits) -> &'static str {
    let tick = (limits.idle_timeout.min(limits.send_timeout) / 4)
        .clamp(Duration::from_millis(20), Duration::from_secs(1));
    let idle = limits.idle_timeout.as_millis() as u64;
    let send = limits.send_timeout.as_millis() as u64;
    let linger_ms = limits.linger.as_millis() as u64;
    loop {
        tokio::time::sleep(tick).await;
        let now = act.now_ms();
        let blocked = act.blocked_since_ms.load(Ordering::Relaxed);
        if blocked != 0 && now.saturating_sub(blocked) > send {
            return "SEND_TIMEOUT_SECS: the caller stopped reading";
        }
        let linger = act.linger_since_ms.load(Ordering::Relaxed);
        if linger != 0 && now.saturating_sub(linger) > linger_ms {
            return "LINGER_SECS: the caller went on sending a body already answered";
        }
        let last = act.last_io_ms.load(Ordering::Relaxed);
        if act.in_flight.load(Ordering::Relaxed) == 0 && now.saturating_sub(last) > idle {
            return "IDLE_TIMEOUT_SECS: idle";
        }
    }
}

/// The socket as hyper sees it: records activity, and rewrites hyper's own error answers.
pub(super) struct Watched {
    pub(super) inner: TcpStream,
    pub(super) act: Arc<Activity>,
    /// (replacement, bytes of it written, length of hyper's buffer it replaces)
    pub(super) rewrite: Option<(Vec<u8>, usize, usize)>,
    /// The write half is shut and the close is lingering.
    pub(super) lingering: bool,
}

impl Watched {
    fn note_write(&self, r: &Poll<io::Result<usize>>) {
        match r {
            Poll::Pending => {
                let _ = self.act.blocked_since_ms.compare_exchange(
                    0,
                    self.act.now_ms(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            Poll::Ready(_) => {
                self.act.blocked_since_ms.store(0, Ordering::Relaxed);
                self.act.touched();
            }
        }
    }

    /// Writes the pending replacement; `Ready(Ok(n))` reports hyper's buffer as written.
    fn poll_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            let Some((rep, off, orig)) = self.rewrite.as_mut() else {
                return Poll::Ready(Ok(0));
            };
            if *off >= rep.len() {
                let n = *orig;
                self.rewrite = None;
                return Poll::Ready(Ok(n));
            }
            let r = Pin::new(&mut self.inner).poll_write(cx, &rep[*off..]);
            self.note_write(&r);
            match r {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    if let Some((_, off, _)) = self.rewrite.as_mut() {
                        *off += n;
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn maybe_rewrite(&mut self, buf: &[u8]) {
        if self.rewrite.is_none() && self.act.in_flight.load(Ordering::Relaxed) == 0 {
            if let Some(rep) = own_error_reply(buf) {
                self.rewrite = Some((rep, 0, buf.len()));
            }
        }
    }
}

/// hyper answers a malformed or oversized request head itself (400, 414, 431) with an
/// empty body, before any handler runs. Such an answer is recognised by having no
/// `x-request-id` (every handler answer passes [`super::edge`](crate::edge::edge), which sets one) and replaced
/// with the same status carrying the catalog envelope.
fn own_error_reply(buf: &[u8]) -> Option<Vec<u8>> {
    if !buf.starts_with(b"HTTP/1.1 4") && !buf.starts_with(b"HTTP/1.0 4") {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?.to_ascii_lowercase();
    if head.contains(&format!("\r\n{}:", crate::contract::REQUEST_ID.as_str())) {
        return None;
    }
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let (code, message) = match status {
        400 => (
            Code::InvalidField,
            "the request line or a header is malformed (HTTP/1.1 syntax)",
        ),
        414 => (Code::BodyTooLarge, "the request target is too long"),
        431 => (
            Code::BodyTooLarge,
            "the request line and headers exceed MAX_HEADER_BYTES",
        ),
        _ => return None,
    };
    let id = uuid::Uuid::new_v4().to_string();
    tracing::info!(request_id = %id, status, code = code.as_str(), "request head refused");
    let body = ApiError::new(code, message).body_json();
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Bad Request");
    let content_type = HeaderValue::from_static("application/json");
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\n{}: {id}\r\nconnection: close\r\n\r\n{body}",
            content_type.to_str().unwrap_or("application/json"),
            body.len(),
            crate::contract::REQUEST_ID.as_str(),
        )
        .into_bytes(),
    )
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.act.touched();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.maybe_rewrite(buf);
        if this.rewrite.is_some() {
            return this.poll_rewrite(cx);
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.note_write(&r);
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            this.maybe_rewrite(first);
        }
        if this.rewrite.is_some() {
            return this.poll_rewrite(cx);
        }
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.note_write(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// hyper shuts the socket when it closes the connection. After a body left unread the
    /// caller may still be sending it, and closing with unread bytes makes the kernel answer
    /// with a reset, which can reach the caller before it read the answer (or fail its
    /// write: "broken pipe"). So, as nginx's lingering close: shut the write half (the answer
    /// ends with a FIN), then read and discard until the caller closes, bounded in time by
    /// the watchdog (LINGER_SECS, and IDLE_TIMEOUT_SECS between reads); a fixed scratch
    /// buffer, nothing kept.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.lingering {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            if !this.act.unread_body.load(Ordering::Relaxed) {
                return Poll::Ready(Ok(()));
            }
            this.lingering = true;
            this.act
                .linger_since_ms
                .store(this.act.now_ms(), Ordering::Relaxed);
        }
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => this.act.touched(),
                // The caller closed (or reset): nothing left to protect.
                Ok(()) | Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_error_heads_are_rewritten_and_handler_answers_are_not() {
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let rep = String::from_utf8(own_error_reply(hyper_431).unwrap()).unwrap();
        assert!(rep.starts_with("HTTP/1.1 431 "), "{rep}");
        assert!(rep.contains("\r\nx-request-id: "), "{rep}");
        assert!(rep.contains(r#""code":"body_too_large""#), "{rep}");
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nx-request-id: abc\r\n\r\n";
        assert!(own_error_reply(ours).is_none());
        assert!(own_error_reply(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
        assert!(own_error_reply(b"data: HTTP/1.1 400\r\n\r\n").is_none());
    }
}
