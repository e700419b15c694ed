//! Guest log events, the log level guests see, and the process-wide log sink.
//!
//! Guest `log_*` calls become `tracing` events with target `extism::pdk` and a `plugin` field
//! holding the plugin id; `get_log_level` reports the most verbose level the installed
//! `tracing` subscriber enables for that target (`i32::MAX` when none, i.e. logging off).
//! Installing a subscriber is the embedder's business: an application's own, or the one
//! [`set_log_callback`] and the C API's `extism_log_*` install (at most one per process,
//! `install`).

use std::{io::Write, sync::Mutex};

use tracing::Level;
use tracing_subscriber::{fmt::MakeWriter, EnvFilter};

/// `get_log_level`'s value when logging is off.
pub const LOG_OFF: i32 = i32::MAX;

/// The guest-visible number of a level (`spec/guest-abi.md` §9).
pub fn level_number(level: Level) -> i32 {
    match level {
        Level::TRACE => 0,
        Level::DEBUG => 1,
        Level::INFO => 2,
        Level::WARN => 3,
        Level::ERROR => 4,
    }
}

pub(crate) fn enabled(level: Level) -> bool {
    match level {
        Level::TRACE => tracing::enabled!(target: "extism::pdk", Level::TRACE),
        Level::DEBUG => tracing::enabled!(target: "extism::pdk", Level::DEBUG),
        Level::INFO => tracing::enabled!(target: "extism::pdk", Level::INFO),
        Level::WARN => tracing::enabled!(target: "extism::pdk", Level::WARN),
        Level::ERROR => tracing::enabled!(target: "extism::pdk", Level::ERROR),
    }
}

/// The number of the most verbose enabled level, or [`LOG_OFF`].
pub(crate) fn guest_log_level() -> i32 {
    [
        Level::TRACE,
        Level::DEBUG,
        Level::INFO,
        Level::WARN,
        Level::ERROR,
    ]
    .into_iter()
    .find(|l| enabled(*l))
    .map(level_number)
    .unwrap_or(LOG_OFF)
}

/// Emits one guest message. Invalid UTF-8 is reported at error level instead, as upstream.
pub(crate) fn emit(level: Level, plugin: &str, message: &[u8]) {
    let Ok(text) = std::str::from_utf8(message) else {
        tracing::error!(target: "extism::pdk", plugin, "unable to log message: invalid UTF-8");
        return;
    };
    match level {
        Level::TRACE => tracing::trace!(target: "extism::pdk", plugin, "{text}"),
        Level::DEBUG => tracing::debug!(target: "extism::pdk", plugin, "{text}"),
        Level::INFO => tracing::info!(target: "extism::pdk", plugin, "{text}"),
        Level::WARN => tracing::warn!(target: "extism::pdk", plugin, "{text}"),
        Level::ERROR => tracing::error!(target: "extism::pdk", plugin, "{text}"),
    }
}

/// Sends every log line (the runtime's own events under target `extism`, guest messages under
/// `extism::pdk`, and other crates' events the filter lets through) to `func`, as upstream's
/// `extism::set_log_callback`: one call per event with the formatted line (level, target,
/// fields and message, ending in a newline). `filter` is a level (`"debug"`, meaning
/// `extism=debug`: this runtime's events and guest messages) or a `tracing` directive list
/// such as `"extism=trace,wasmtime=info"`; directives that do not parse are ignored, and
/// whatever no directive names logs at `error` only.
///
/// It installs the global `tracing` subscriber, so it fails when one is installed already (by
/// an earlier call, the C API or the application). Unlike upstream, `func` must be `Send +
/// Sync`: it is called from whichever thread logs.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// let lines = Arc::new(Mutex::new(Vec::<String>::new()));
/// let sink = lines.clone();
/// extism::set_log_callback(move |line: &str| sink.lock().unwrap().push(line.to_string()), "extism=info")?;
/// let wat = r#"(module (func (export "boom") unreachable))"#;
/// let mut plugin = extism::Plugin::new(wat, [], false)?;
/// assert!(plugin.call::<&str, &str>("boom", "").is_err());
/// assert!(lines.lock().unwrap().iter().any(|l| l.contains("call to boom encountered an error")));
/// # Ok::<(), extism::Error>(())
/// ```
pub fn set_log_callback<F>(func: F, filter: impl AsRef<str>) -> Result<(), crate::Error>
where
    F: Fn(&str) + Send + Sync + 'static,
{
    let filter = filter.as_ref();
    let directives = match filter.parse::<Level>() {
        Ok(_) => format!("extism={filter}"),
        Err(_) => filter.to_string(),
    };
    let filter = EnvFilter::builder()
        .with_default_directive(tracing::level_filters::LevelFilter::ERROR.into())
        .parse_lossy(directives);
    if install(filter, || Ok(Callback(func)), false) {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "a global log subscriber is already installed"
        ))
    }
}

/// Serialises setup; `true` once a sink is installed.
static INSTALLED: Mutex<bool> = Mutex::new(false);

/// Installs the global subscriber (`fmt` format, one line per event) writing to what `writer`
/// makes, which is called only when no sink is installed yet; `false` if one is installed
/// already or `writer` fails.
pub(crate) fn install<W>(
    filter: EnvFilter,
    writer: impl FnOnce() -> std::io::Result<W>,
    ansi: bool,
) -> bool
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed {
        return false;
    }
    let Ok(writer) = writer() else {
        return false;
    };
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .finish();
    // `try_init` also forwards `log` records (wasmtime and cranelift use `log`) to the sink.
    *installed = tracing_subscriber::util::SubscriberInitExt::try_init(subscriber).is_ok();
    *installed
}

/// The `MakeWriter` of [`set_log_callback`]: one [`CallbackLine`] per event.
struct Callback<F>(F);

impl<'w, F: Fn(&str) + 'w> MakeWriter<'w> for Callback<F> {
    type Writer = CallbackLine<'w, F>;

    fn make_writer(&'w self) -> CallbackLine<'w, F> {
        CallbackLine {
            func: &self.0,
            line: Vec::new(),
        }
    }
}

/// Collects one formatted event and hands it to the callback when dropped (invalid UTF-8,
/// which only a foreign crate's event could hold, is replaced).
struct CallbackLine<'a, F: Fn(&str)> {
    func: &'a F,
    line: Vec<u8>,
}

impl<F: Fn(&str)> Write for CallbackLine<'_, F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<F: Fn(&str)> Drop for CallbackLine<'_, F> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            (self.func)(&String::from_utf8_lossy(&self.line));
        }
    }
}
