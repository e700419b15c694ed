//! The epoch-deadline callbacks installed in every store: where running wasm learns that its
//! call was cancelled or ran past its deadline (cancel.rs), takes a profile sample
//! (profile.rs), and, in async stores, yields to the executor.
//!
//! They look only at their own store's state and never block.

use std::time::Instant;

use wasmtime::{StoreContextMut, UpdateDeadline, WasmBacktrace};

use crate::plugin_state::PluginState;

/// The epoch-deadline callback installed in every store. A profiled store takes a sample
/// first (profile.rs); the interruption checks are the same either way.
pub(crate) fn on_epoch(
    mut ctx: StoreContextMut<'_, PluginState>,
) -> wasmtime::Result<UpdateDeadline> {
    if ctx.data().profile.is_some() {
        sample(&mut ctx);
    }
    let state = ctx.data();
    match state.interrupt.check(state.deadline) {
        Some(why) => Err(wasmtime::Error::new(why)),
        None => Ok(UpdateDeadline::Continue(1)),
    }
}

/// The epoch callback of async plugins: as [`on_epoch`], but a guest that is not interrupted
/// yields to the executor (the ticker advances the epoch every `timer::SLICE` while async
/// calls run). A kernel call entered directly (fiber.rs) continues instead: it must not
/// suspend, and it is short.
pub(crate) fn on_epoch_yielding(
    ctx: StoreContextMut<'_, PluginState>,
) -> wasmtime::Result<UpdateDeadline> {
    let state = ctx.data();
    match state.interrupt.check(state.deadline) {
        Some(why) => Err(wasmtime::Error::new(why)),
        None if crate::fiber::in_kernel_call() => Ok(UpdateDeadline::Continue(1)),
        None => Ok(UpdateDeadline::Yield(1)),
    }
}

/// Takes a sample from the epoch callback of a store that has a recorder.
fn sample(ctx: &mut StoreContextMut<'_, PluginState>) {
    let backtrace = WasmBacktrace::capture(&*ctx);
    let now = Instant::now();
    if let Some(recorder) = ctx.data_mut().profile.as_mut() {
        recorder.record(&backtrace, None, now);
    }
}
