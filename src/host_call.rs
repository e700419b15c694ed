//! What every call of a user host function does around its callback, sync (function.rs) or
//! async (async_function.rs): result slots that read as zero until the callback sets them,
//! and a panic turned into the error that fails the call.

use std::any::Any;

use wasmtime::Val;

/// Results the callback leaves alone read as zero of their declared type.
pub(crate) fn zero_results(outputs: &mut [Val], types: &[wasmtime::ValType]) {
    for (out, ty) in outputs.iter_mut().zip(types) {
        if let Some(zero) = Val::default_for_ty(ty) {
            *out = zero;
        }
    }
}

/// The error a panicking host function fails its call with.
pub(crate) fn panicked(name: &str, payload: &(dyn Any + Send)) -> anyhow::Error {
    anyhow::anyhow!(
        "host function `{name}` panicked: {}",
        panic_message(payload)
    )
}

/// The text of a panic payload, when it has one.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
