//! Guest log events and the log level guests see.
//!
//! Guest `log_*` calls become `tracing` events with target `extism::pdk` and a `plugin` field
//! holding the plugin id; `get_log_level` reports the most verbose level the installed
//! `tracing` subscriber enables for that target (`i32::MAX` when none, i.e. logging off).
//! Installing a subscriber is the embedder's business (the C API and the CLI do it).

use tracing::Level;

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
