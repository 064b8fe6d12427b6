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

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use tracing::{Level, Metadata};
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

#[cfg(test)]
mod tests {
    use super::*;

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
