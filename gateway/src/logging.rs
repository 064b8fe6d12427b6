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
use std::fmt;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Level, Metadata};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
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

/// The text format's field formatter: byte for byte what `tracing_subscriber`'s
/// `DefaultFields` writes, without its per-field detour through `nu_ansi_term` styles (written
/// even when colours are off) and `str`'s `Debug` escaping, character by character, of values
/// that need none: those were about three quarters of the access log line's instructions, 4 %
/// of a plain request's (callgrind, README "The cost of one hop"). The message, a colour
/// writer, raw (`r#`) names and any string that needs escaping are handed to `DefaultVisitor`
/// as they are; a unit test compares the two formatters on every kind of field.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fields;

impl<'a> MakeVisitor<Writer<'a>> for Fields {
    type Visitor = FieldsVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> FieldsVisitor<'a> {
        FieldsVisitor {
            plain: !writer.has_ansi_escapes(),
            writer,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// The visitor of [`Fields`].
#[derive(Debug)]
pub struct FieldsVisitor<'a> {
    writer: Writer<'a>,
    /// No colour codes: the fast paths write exactly what `DefaultVisitor` would.
    plain: bool,
    is_empty: bool,
    result: fmt::Result,
}

/// Whether `str`'s `Debug` leaves `s` as it is between its quotes.
fn needs_no_escape(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl<'a> FieldsVisitor<'a> {
    /// Whether this field takes the fast path: no colours, an ordinary name.
    fn fast(&self, field: &Field) -> bool {
        let name = field.name();
        // (`log.*` names, which `DefaultVisitor` skips with tracing-log's feature, come only
        // from tracing-log's bridge, which the gateway does not install.)
        self.plain && name != "message" && !name.starts_with("r#")
    }

    /// `name=` after a separating space, as `DefaultVisitor` writes it without colours.
    fn name(&mut self, field: &Field) -> fmt::Result {
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.writer.write_char(' ')?;
        }
        self.writer.write_str(field.name())?;
        self.writer.write_char('=')
    }

    /// The field as `DefaultVisitor` writes it.
    fn default_for(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut v = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut v);
        self.result = v.finish();
        self.is_empty = false;
    }

    /// One field: `write` after `name=` on the fast path (where `fast` allows it), else the
    /// default visitor's `record`.
    fn put(
        &mut self,
        field: &Field,
        fast: bool,
        write: impl FnOnce(&mut Writer<'a>) -> fmt::Result,
        record: impl FnOnce(&mut DefaultVisitor<'_>),
    ) {
        if self.result.is_err() {
            return;
        }
        if fast && self.fast(field) {
            self.result = self.name(field).and_then(|()| write(&mut self.writer));
        } else {
            self.default_for(record);
        }
    }
}

impl Visit for FieldsVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let plain = needs_no_escape(value);
        self.put(
            field,
            plain,
            |w| {
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            },
            |v| v.record_str(field, value),
        );
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(
            field,
            true,
            |w| write!(w, "{value}"),
            |v| v.record_u64(field, value),
        );
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(
            field,
            true,
            |w| write!(w, "{value}"),
            |v| v.record_i64(field, value),
        );
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(
            field,
            true,
            |w| w.write_str(if value { "true" } else { "false" }),
            |v| v.record_bool(field, value),
        );
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `f64`, `%display` and `?debug` values: their own `Debug`, as the default writes.
        self.put(
            field,
            true,
            |w| write!(w, "{value:?}"),
            |v| v.record_debug(field, value),
        );
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_ok() {
            self.default_for(|v| v.record_error(field, value));
        }
    }
}

impl VisitOutput<fmt::Result> for FieldsVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for FieldsVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
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

    /// Every line that `logging!` writes, formatted by `tracing_subscriber` with `fields`.
    fn lines<N>(fields: N, ansi: bool) -> String
    where
        N: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        #[derive(Clone, Default)]
        struct Out(std::sync::Arc<Mutex<Vec<u8>>>);
        impl Write for Out {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Out::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(ansi)
            .without_time()
            .fmt_fields(fields)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let id = "0f6c1d2e-8a3b-4c5d-9e7f-a1b2c3d4e5f6";
            let method = axum::http::Method::POST;
            tracing::info!(request_id = %id, method = %method, route = "/v1/chat/completions", status = 200u16, code = "", elapsed_ms = 1.25, "request");
            tracing::warn!(request_id = %id, route = "unmatched", status = 404u16, code = "route_not_found", elapsed_ms = 1.0, cause = %"no such \"route\"", "request");
            tracing::info!(
                quoted = "say \"hi\"",
                backslash = "a\\b",
                newline = "a\nb",
                tab = "a\tb",
                esc = "a\x1bb",
                unicode = "Grüße",
                empty = ""
            );
            tracing::info!(
                small = 1e-7,
                big = 1e21,
                whole = 3.0,
                nan = f64::NAN,
                neg = -2i64,
                max = u64::MAX,
                yes = true,
                no = false
            );
            tracing::info!(debug = ?Some("x"), r#type = "raw", error = &std::io::Error::other("disk") as &(dyn std::error::Error + 'static));
            tracing::info!("a message with \x1b[31m colour {} and \"quotes\"", 7);
            tracing::info!(first = 1u64, "message after a field");
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn the_fast_field_formatter_writes_what_the_default_one_does() {
        for ansi in [false, true] {
            let ours = lines(Fields, ansi);
            let theirs = lines(tracing_subscriber::fmt::format::DefaultFields::new(), ansi);
            assert_eq!(ours, theirs, "ansi {ansi}");
            assert_eq!(ours.lines().count(), 7, "{ours}");
        }
        // The access line's shape, as operators and the tests read it.
        let line = lines(Fields, false);
        assert!(
            line.contains(r#"request request_id=0f6c1d2e-8a3b-4c5d-9e7f-a1b2c3d4e5f6 method=POST route="/v1/chat/completions" status=200 code="" elapsed_ms=1.25"#),
            "{line}"
        );
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
