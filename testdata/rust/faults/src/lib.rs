//! faults: error paths, traps, timeouts and state that persists across calls.
use core::sync::atomic::{AtomicU64, Ordering};
use extism_pdk::*;

/// Never returns (for timeout / cancellation tests).
#[plugin_fn]
pub fn loop_forever() -> FnResult<()> {
    let mut counter: u64 = 0;
    loop {
        counter = core::hint::black_box(counter).wrapping_add(1);
        core::hint::black_box(&mut counter);
    }
}

/// Executes the wasm `unreachable` instruction.
#[plugin_fn]
pub fn trap() -> FnResult<()> {
    core::arch::wasm32::unreachable()
}

/// Sets the error "this call failed" and returns -1.
#[plugin_fn]
pub fn fail() -> FnResult<()> {
    Err(Error::msg("this call failed").into())
}

/// Sets the error "error with return code 0" and returns 0.
#[plugin_fn]
pub fn ok_after_error() -> FnResult<()> {
    Err(WithReturnCode::new(
        Error::msg("error with return code 0"),
        0,
    ))
}

/// Outputs the value of the config key named by the input, or "<none>".
#[plugin_fn]
pub fn config_get(key: String) -> FnResult<String> {
    Ok(config::get(&key)?.unwrap_or_else(|| "<none>".to_string()))
}

/// Sets var "k" to the input bytes, reads it back and outputs it
/// ("<none>" if the var is absent afterwards, i.e. for empty input).
#[plugin_fn]
pub fn var_roundtrip(input: Vec<u8>) -> FnResult<Vec<u8>> {
    var::set("k", input)?;
    Ok(var::get::<Vec<u8>>("k")?.unwrap_or_else(|| b"<none>".to_vec()))
}

static CALLS: AtomicU64 = AtomicU64::new(0);

/// Increments a global counter in the plugin's own memory, outputs the new value.
#[plugin_fn]
pub fn count_calls() -> FnResult<String> {
    Ok((CALLS.fetch_add(1, Ordering::SeqCst) + 1).to_string())
}
