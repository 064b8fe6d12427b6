//! The log sink: stderr behind one bounded buffer, so the per-request `info` line does not
//! cost a `write` syscall of its own.
//!
//! Why not `tracing-appender`'s non-blocking writer: it hands every line to a writer thread
//! through a channel, and at this gateway's request rates that thread wakes (a futex wake on
//! the request thread, a context switch on a 2-core box) about once per line, which costs
//! about what the syscall it saves did. Here a line is appended under a mutex; the buffer
//! goes out in one write when it would pass [`LOG_BUFFER_BYTES`], when a `warn`/`error` line
//! arrives (those are written at once, after what was buffered, so order is kept and a
//! failure's cause is never held back), and at the latest every [`LOG_FLUSH_INTERVAL`] (one
//! flusher thread). Nothing is dropped: a full buffer is written by the thread that filled
//! it (back-pressure, like the unbuffered stderr before, never loss). [`flush`] at exit.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;

pub use crate::config::{LOG_BUFFER_BYTES, LOG_FLUSH_INTERVAL};

fn buffer() -> &'static Mutex<Vec<u8>> {
    static BUF: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BUF.get_or_init(|| Mutex::new(Vec::with_capacity(LOG_BUFFER_BYTES)))
}

/// Writes out whatever is buffered.
pub fn flush() {
    let mut buf = buffer().lock().unwrap_or_else(|e| e.into_inner());
    write_out(&mut buf, &[]);
}

/// Writes `buf` then `line` to stderr, and empties `buf`. A failing stderr is ignored, as
/// tracing's own stderr writer would: logging must not fail a request.
fn write_out(buf: &mut Vec<u8>, line: &[u8]) {
    let mut err = std::io::stderr().lock();
    if !buf.is_empty() {
        let _ = err.write_all(buf);
        buf.clear();
    }
    if !line.is_empty() {
        let _ = err.write_all(line);
    }
}

/// The `MakeWriter` for `tracing_subscriber::fmt`; starts the flusher thread once.
#[derive(Clone, Copy, Debug, Default)]
pub struct BufferedStderr;

impl BufferedStderr {
    pub fn new() -> Self {
        static FLUSHER: OnceLock<()> = OnceLock::new();
        FLUSHER.get_or_init(|| {
            // If the thread cannot start, lines still go out when the buffer fills or a
            // warning arrives; nothing is lost, only later.
            let _ = std::thread::Builder::new()
                .name("log-flush".into())
                .spawn(|| loop {
                    std::thread::sleep(LOG_FLUSH_INTERVAL);
                    flush();
                });
        });
        BufferedStderr
    }
}

/// One formatted event (tracing's fmt layer writes each event with one `write_all`).
pub struct Line {
    urgent: bool,
}

impl Write for Line {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut buf = buffer().lock().unwrap_or_else(|e| e.into_inner());
        if self.urgent || data.len() > LOG_BUFFER_BYTES {
            write_out(&mut buf, data);
        } else {
            if buf.len() + data.len() > LOG_BUFFER_BYTES {
                write_out(&mut buf, &[]);
            }
            buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { urgent: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line {
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

/// The time of a log line as `tracing_subscriber`'s default timer writes it (RFC 3339, UTC,
/// microseconds: `2026-12-03T12:57:12.346042Z`), with the date and the time of day formatted
/// once per second per thread instead of for every line: that calendar arithmetic and its
/// formatting were 1.6 % of a plain request's instructions (callgrind, README "The cost of one
/// hop").
#[derive(Clone, Copy, Debug, Default)]
pub struct LogTime;

thread_local! {
    /// The second last formatted on this thread, and its text without the trailing `Z`.
    static LAST_SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl FormatTime for LogTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let now = SystemTime::now();
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        LAST_SECOND.with(|last| {
            let mut last = last.borrow_mut();
            if last.0 != secs {
                let text = humantime::format_rfc3339_seconds(now).to_string();
                last.1 = text.trim_end_matches('Z').to_owned();
                last.0 = secs;
            }
            write!(w, "{}.{:06}Z", last.1, since.subsec_micros())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_time_has_the_default_timers_shape_and_follows_the_clock() {
        let stamp = || {
            let mut out = String::new();
            LogTime.format_time(&mut Writer::new(&mut out)).unwrap();
            out
        };
        let mut default = String::new();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut Writer::new(&mut default))
            .unwrap();
        let (a, b) = (stamp(), stamp());
        for t in [&a, &b] {
            assert_eq!(t.len(), default.len(), "{t} vs {default}");
            assert!(t.ends_with('Z') && t.as_bytes()[19] == b'.', "{t}");
            let parsed = humantime::parse_rfc3339(t).unwrap();
            let off = parsed
                .duration_since(SystemTime::now())
                .unwrap_or_else(|e| e.duration());
            assert!(off.as_secs() < 5, "{t} is not now");
        }
        assert!(b >= a, "{b} before {a}");
    }

    #[test]
    fn warnings_are_urgent_and_info_is_buffered() {
        let w = BufferedStderr;
        assert!(w.make_writer().urgent);
        let info = tracing::Level::INFO;
        assert!(info > Level::WARN, "tracing orders levels by verbosity");
        let mut line = Line { urgent: false };
        assert_eq!(line.write(b"x\n").unwrap(), 2);
        flush();
        assert!(buffer().lock().unwrap().is_empty());
    }
}
