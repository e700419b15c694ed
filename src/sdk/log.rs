//! `extism_log_file`, `extism_log_custom`, `extism_log_drain`: the process-wide log sink
//! (§3 of `spec/c-api.md`).
//!
//! Installing the sink means installing the global `tracing` subscriber (`logging::install`:
//! `fmt` format, one line per event); the core derives the guest-visible `get_log_level` from
//! what that subscriber enables. Only the first successful setup in a process takes effect
//! (`extism::set_log_callback` counts as one). This
//! module never aborts: an unusable file or a second setup returns `false`.

use std::{
    collections::VecDeque,
    ffi::{c_char, CStr},
    fs::OpenOptions,
    io::Write,
    sync::Mutex,
};

use tracing_subscriber::{filter::Directive, fmt::MakeWriter, EnvFilter};

use super::{guard, ExtismSize};
use crate::logging::install;

/// `ExtismLogDrainFunctionType` of the header.
pub type ExtismLogDrainFunctionType = unsafe extern "C" fn(data: *const c_char, size: ExtismSize);

/// Events buffered for `extism_log_drain`, oldest first, each a complete line.
static BUFFER: Mutex<VecDeque<Vec<u8>>> = Mutex::new(VecDeque::new());

/// The filter for a `log_level` argument: a single level name enables that level for
/// Extism's own targets only; anything else is a directive list whose unparseable entries
/// are ignored (none valid: `error` everywhere).
fn filter(level: Option<&str>) -> EnvFilter {
    let level = level.unwrap_or("error").trim();
    let lower = level.to_ascii_lowercase();
    let directives: Vec<Directive> =
        if ["trace", "debug", "info", "warn", "error"].contains(&lower.as_str()) {
            format!("extism={lower}").parse().into_iter().collect()
        } else {
            level
                .split(',')
                .filter_map(|d| d.trim().parse().ok())
                .collect()
        };
    let directives = if directives.is_empty() {
        vec![tracing::level_filters::LevelFilter::ERROR.into()]
    } else {
        directives
    };
    directives
        .into_iter()
        .fold(EnvFilter::default(), EnvFilter::add_directive)
}

/// Reads an optional UTF-8 argument: `Err` for invalid UTF-8.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string.
unsafe fn optional_str<'a>(ptr: *const c_char) -> Result<Option<&'a str>, ()> {
    if ptr.is_null() {
        return Ok(None);
    }
    CStr::from_ptr(ptr).to_str().map(Some).map_err(|_| ())
}

/// Sends log events to `filename` (appended, created if missing), to standard output for
/// `"stdout"`, or to standard error for NULL, `"stderr"` or `"-"`, at `log_level` (NULL:
/// `"error"`). `false` if logging is already set up, an argument is not UTF-8, or the file
/// cannot be opened.
#[no_mangle]
pub unsafe extern "C" fn extism_log_file(
    filename: *const c_char,
    log_level: *const c_char,
) -> bool {
    guard(
        |_| false,
        || {
            // SAFETY: NULL or NUL-terminated strings, per the header.
            let (Ok(filename), Ok(level)) = (unsafe { optional_str(filename) }, unsafe {
                optional_str(log_level)
            }) else {
                return false;
            };
            match filename {
                None | Some("stderr") | Some("-") => {
                    install(filter(level), || Ok(std::io::stderr), true)
                }
                Some("stdout") => install(filter(level), || Ok(std::io::stdout), true),
                Some(path) => install(
                    filter(level),
                    || {
                        OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(path)
                            .map(Mutex::new)
                    },
                    false,
                ),
            }
        },
    )
}

/// Buffers log events in memory until `extism_log_drain`, at `log_level` (NULL: `"error"`).
/// `false` if logging is already set up (the existing buffer is kept) or the level is not
/// UTF-8.
#[no_mangle]
pub unsafe extern "C" fn extism_log_custom(log_level: *const c_char) -> bool {
    guard(
        |_| false,
        || match unsafe { optional_str(log_level) } {
            // SAFETY (above): NULL or a NUL-terminated string.
            Ok(level) => install(filter(level), || Ok(BufferSink), false),
            Err(()) => false,
        },
    )
}

/// Calls `handler(line, len)` once per buffered event, oldest first, removing them. `line` is
/// NUL-terminated and valid during the callback only; `len` excludes the terminator. The
/// buffer is released before the first callback, so the handler may log or drain again.
#[no_mangle]
pub unsafe extern "C" fn extism_log_drain(handler: Option<ExtismLogDrainFunctionType>) {
    guard(
        |_| (),
        || {
            let Some(handler) = handler else {
                return;
            };
            let lines = std::mem::take(&mut *BUFFER.lock().unwrap_or_else(|e| e.into_inner()));
            for mut line in lines {
                let len = line.len() as ExtismSize;
                line.push(0);
                // SAFETY: a NUL-terminated buffer of `len` bytes, alive during the call.
                unsafe { handler(line.as_ptr().cast(), len) };
            }
        },
    )
}

/// The `MakeWriter` of the in-memory sink: one [`EventWriter`] per event.
struct BufferSink;

impl<'w> MakeWriter<'w> for BufferSink {
    type Writer = EventWriter;

    fn make_writer(&'w self) -> EventWriter {
        EventWriter(Vec::new())
    }
}

/// Collects one formatted event and appends it to [`BUFFER`] as a single entry when dropped.
struct EventWriter(Vec<u8>);

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let mut line = std::mem::take(&mut self.0);
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        BUFFER
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(line);
    }
}
