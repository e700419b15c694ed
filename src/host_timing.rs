//! The host-function timing wrappers of profiled stores: time spent in a host function is
//! recorded under a `[host] NAME` frame (profile.rs records, this wraps the linker's imports).
//!
//! Used only for plugins built with a profiler; unprofiled stores never see these wrappers.

use std::time::Instant;

use wasmtime::{Extern, Func, WasmBacktrace};

use crate::plugin_state::PluginState;

/// For a profiled store: `ext` (a function the linker defines, named `module::name`) wrapped
/// so that the time inside it is recorded under a `[host] NAME` frame. Anything else is
/// returned as it is.
pub(crate) fn wrap_host(
    store: &mut wasmtime::Store<PluginState>,
    module: &str,
    name: &str,
    ext: Extern,
) -> Extern {
    let Extern::Func(inner) = ext else {
        return ext;
    };
    let label = match module {
        crate::kernel::ENV_MODULE => format!("[host] {name}"),
        _ => format!("[host] {module}::{name}"),
    };
    let ty = inner.ty(&*store);
    let wrapped = Func::new(&mut *store, ty, move |mut caller, params, results| {
        let backtrace = WasmBacktrace::capture(&caller);
        let entered = Instant::now();
        if let Some(recorder) = caller.data_mut().profile.as_mut() {
            recorder.record(&backtrace, None, entered);
        }
        let result = inner.call(&mut caller, params, results);
        let now = Instant::now();
        if let Some(recorder) = caller.data_mut().profile.as_mut() {
            // Samples taken meanwhile (wasm called back) moved the start forward.
            recorder.record(&backtrace, Some(&label), now);
        }
        result
    });
    Extern::Func(wrapped)
}
