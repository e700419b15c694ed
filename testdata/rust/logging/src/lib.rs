//! logging: exercises the log_* imports and get_log_level.
use extism_pdk::*;

/// Logs one message per level (trace, debug, info, warn, error) and outputs "ok".
#[plugin_fn]
pub fn log_all() -> FnResult<String> {
    log!(LogLevel::Trace, "trace message");
    log!(LogLevel::Debug, "debug message");
    log!(LogLevel::Info, "info message");
    log!(LogLevel::Warn, "warn message");
    log!(LogLevel::Error, "error message");
    Ok("ok".to_string())
}

/// Logs the input string at info level, produces no output.
#[plugin_fn]
pub fn log_input(input: String) -> FnResult<()> {
    log!(LogLevel::Info, "{}", input);
    Ok(())
}
