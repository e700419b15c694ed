//! Async host functions (`Function::new_async`, function.rs), whose callback returns a future
//! that the call awaits (async plugins only, async_plugin.rs).
//!
//! Owns how such a callback is put into a linker: its future is raced against the call's
//! deadline and cancel flag, and dropped the moment either fires (the call then fails with
//! `timeout`, as when the guest is interrupted), and a panic while polling it fails the call
//! instead of unwinding into the executor. It never blocks a thread: the memory helpers of
//! [`CurrentPlugin`] that it uses run wasm without waiting (fiber.rs).

use std::{
    future::{poll_fn, Future},
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::Poll,
};

use anyhow::Result;
use wasmtime::{FuncType, Linker, Val};

use crate::{
    current_plugin::CurrentPlugin,
    host_call::{panicked, zero_results},
    plugin_state::PluginState,
};

/// The future an async host function returns: it may borrow the plugin and the values for
/// as long as it runs. Build one with `Box::pin(async move { ... })`.
pub type HostFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

pub(crate) type AsyncCallback =
    dyn for<'a> Fn(&'a mut CurrentPlugin, &'a [Val], &'a mut [Val]) -> HostFuture<'a> + Send + Sync;

/// Defines an async callback in an async plugin's linker.
pub(crate) fn define(
    linker: &mut Linker<PluginState>,
    module: &str,
    ty: FuncType,
    name: Arc<str>,
    results: Arc<[wasmtime::ValType]>,
    callback: Arc<AsyncCallback>,
) -> Result<()> {
    let func_name = name.to_string();
    linker.func_new_async(module, &func_name, ty, move |caller, inputs, outputs| {
        zero_results(outputs, &results);
        let interrupt = caller.data().interrupt.clone();
        let deadline = caller.data().deadline;
        let (callback, name) = (callback.clone(), name.clone());
        Box::new(async move {
            // SAFETY: the plugin lives in this future, which owns the caller, is dropped
            // before the future completes, and is only lent to `callback` as `&mut`.
            let mut plugin =
                unsafe { CurrentPlugin::lend(caller) }.map_err(wasmtime::Error::from_anyhow)?;
            let mut work = callback(&mut plugin, inputs, outputs);
            let result = poll_fn(|cx| {
                let polled = std::panic::catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(cx)));
                match polled {
                    Ok(Poll::Ready(result)) => return Poll::Ready(result),
                    Err(panic) => return Poll::Ready(Err(panicked(&name, &*panic))),
                    Ok(Poll::Pending) => {}
                }
                // Registered before checking, so a deadline or cancel in between still wakes
                // this task.
                interrupt.waker.register(cx.waker());
                match interrupt.check(deadline) {
                    Some(why) => Poll::Ready(Err(anyhow::Error::new(why))),
                    None => Poll::Pending,
                }
            })
            .await;
            // The host function's future is dropped here, also when it did not finish.
            drop(work);
            drop(plugin);
            result.map_err(wasmtime::Error::from_anyhow)
        })
    })?;
    Ok(())
}
