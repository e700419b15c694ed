//! The `extism:host/env` functions the host implements (`spec/guest-abi.md` §6–§9).
//!
//! Owns their guest-visible behaviour: argument validation, trap messages and handle
//! ownership (§13: the host frees the handles it consumes, and always allocates a result
//! before freeing arguments, so a freed argument block is never returned as that call's
//! result). Kernel functions are not here: they are the kernel instance's exports.

mod config;
mod http;
mod log;
mod var;

use anyhow::{bail, Result};
use wasmtime::{Caller, Linker};

use crate::{
    kernel::{Kernel, ENV_MODULE},
    plugin_state::PluginState,
};

/// Names of the host-implemented `extism:host/env` functions.
pub const HOST_FUNCTIONS: &[&str] = &[
    "config_get",
    "var_get",
    "var_set",
    "http_request",
    "http_status_code",
    "http_headers",
    "log_trace",
    "log_debug",
    "log_info",
    "log_warn",
    "log_error",
    "get_log_level",
];

/// Defines one host function `|caller, args: u64...| body`: in an async plugin's linker as a
/// wasmtime async host function (its body runs at once), because only those may enter the
/// kernel again from inside an async call (fiber.rs).
macro_rules! define {
    (@u64 $arg:ident) => {
        u64
    };
    ($l:expr, $asynchronous:expr, $name:expr, move |$c:ident $(, $arg:ident)*| $body:expr) => {
        if $asynchronous {
            $l.func_wrap_async(
                ENV_MODULE,
                $name,
                move |$c: Caller<'_, PluginState>, ($($arg,)*): ($(define!(@u64 $arg),)*)| {
                    Box::new(async move { $body })
                },
            )?;
        } else {
            $l.func_wrap(ENV_MODULE, $name, move |$c: Caller<'_, PluginState>, $($arg: u64),*| {
                $body
            })?;
        }
    };
}
pub(crate) use define;

/// Defines every host-implemented `extism:host/env` function in `linker` (as async host
/// functions for an async plugin).
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>, asynchronous: bool) -> Result<()> {
    let l = linker;
    define!(l, asynchronous, "config_get", move |c, k| trap(
        config::config_get(c, k)
    ));
    define!(l, asynchronous, "var_get", move |c, k| trap(var::var_get(
        c, k
    )));
    define!(l, asynchronous, "var_set", move |c, k, v| trap(
        var::var_set(c, k, v)
    ));
    define!(l, asynchronous, "http_request", move |c, r, b| trap(
        http::http_request(c, r, b)
    ));
    // Reads only the store: stays sync also in async plugins.
    l.func_wrap(
        ENV_MODULE,
        "http_status_code",
        |c: Caller<'_, PluginState>| i32::from(c.data().http.status),
    )?;
    define!(l, asynchronous, "http_headers", move |c| trap(
        http::http_headers(c)
    ));
    log::add_to_linker(l, asynchronous)?;
    Ok(())
}

/// Host functions report failures to wasmtime as traps carrying the anyhow error.
fn trap<T>(r: Result<T>) -> wasmtime::Result<T> {
    r.map_err(wasmtime::Error::from_anyhow)
}

/// Reads the key argument of `config_get`, `var_get` or `var_set` into the store's scratch
/// [`PluginState::key`] (reused, so a lookup allocates nothing, and the key's block can be
/// freed in the same kernel entry that allocates the result). `len` is the block's length from
/// [`Kernel::lengths`]; `0` is the empty key, otherwise it must be a live block of UTF-8.
fn read_key(
    kernel: &Kernel,
    caller: &mut Caller<'_, PluginState>,
    handle: u64,
    len: u64,
    what: &str,
) -> Result<()> {
    let (memory, state) = kernel.memory.data_and_store_mut(caller);
    state.key.clear();
    if handle == 0 {
        return Ok(());
    }
    if len == 0 {
        bail!("invalid handle offset for {what}: {handle}");
    }
    state.key.push_str(std::str::from_utf8(crate::kernel::range(
        memory, handle, len,
    )?)?);
    Ok(())
}

/// `config_get` and `var_get`: the value that `lookup` finds under the key argument (read into
/// [`PluginState::key`]), in a new block; 0 when there is none or it is empty (zero-length
/// blocks do not exist). Two kernel entries: the key's length, then the result's block
/// allocated and the key freed.
fn value_of_key(
    mut caller: Caller<'_, PluginState>,
    key: u64,
    what: &str,
    lookup: fn(&PluginState) -> Option<&[u8]>,
) -> Result<u64> {
    let kernel = caller.data().kernel()?;
    let (key_len, _) = match key {
        0 => (0, 0),
        k => kernel.lengths(&mut caller, k, 0)?,
    };
    read_key(&kernel, &mut caller, key, key_len, what)?;
    let value_len = lookup(caller.data()).map_or(0, <[u8]>::len);
    let result = kernel.reply(&mut caller, value_len as u64, key, 0)?;
    if result != 0 {
        // Looked up again: the value borrows the store, which the kernel entry needed.
        let (memory, state) = kernel.memory.data_and_store_mut(&mut caller);
        let value = lookup(state).unwrap_or_default();
        crate::kernel::range_mut(memory, result, value.len() as u64)?.copy_from_slice(value);
    }
    Ok(result)
}
