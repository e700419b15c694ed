//! The `extism:host/env` functions the host implements (`spec/guest-abi.md` §6–§9), and the
//! host's part of those the kernel implements (`config_get`, `var_get`, `var_set`: the
//! kernel's imports from [`KERNEL_HOST_MODULE`], kernel.wat).
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
    kernel::{ENV_MODULE, KERNEL_HOST_MODULE},
    plugin_state::PluginState,
};

/// Names of the host-implemented `extism:host/env` functions.
pub const HOST_FUNCTIONS: &[&str] = &[
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
    // The kernel's imports: plain host calls in async plugins too, as they never enter wasm.
    l.func_wrap(
        KERNEL_HOST_MODULE,
        "lookup",
        |c: Caller<'_, PluginState>, what: i32, key: u64, len: u64, at: u64| {
            trap(lookup(c, what, key, len, at))
        },
    )?;
    l.func_wrap(
        KERNEL_HOST_MODULE,
        "copy",
        |c: Caller<'_, PluginState>, what: i32, handle: u64| trap(copy(c, what, handle)),
    )?;
    l.func_wrap(
        KERNEL_HOST_MODULE,
        "var_set",
        |c: Caller<'_, PluginState>, key: u64, key_len: u64, value: u64, value_len: u64| {
            trap(var::var_set(c, key, key_len, value, value_len))
        },
    )?;
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

/// Finds the value under [`PluginState::key`].
type Lookup = fn(&PluginState) -> Option<&[u8]>;

/// What the kernel's `lookup` and `copy` read, config (0) or vars (1), and what their keys are
/// called in errors.
fn values(what: i32) -> Result<(Lookup, &'static str)> {
    match what {
        0 => Ok((config::value, "config key")),
        1 => Ok((var::value, "var key")),
        _ => bail!("the kernel asked for values of an unknown kind {what}"),
    }
}

/// The kernel's `lookup` for `config_get` and `var_get`: the key `[key, key + len)` read into
/// [`PluginState::key`], the length of the value under it (0 when there is none). The value is
/// written at `at`, the kernel's bump pointer, when its block (16-byte granules) fits the
/// memory from there: the kernel's next block is then that one, and it asks for no `copy`
/// (kernel.wat makes the same test).
fn lookup(
    mut caller: Caller<'_, PluginState>,
    what: i32,
    key: u64,
    len: u64,
    at: u64,
) -> Result<u64> {
    let (value, name) = values(what)?;
    let memory = caller.data().kernel_memory()?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    read_key(data, state, key, len, name)?;
    let Some(value) = value(state) else {
        return Ok(0);
    };
    let block = (value.len() as u64).next_multiple_of(16);
    if !value.is_empty()
        && at
            .checked_add(block)
            .is_some_and(|end| end <= data.len() as u64)
    {
        crate::kernel::range_mut(data, at, value.len() as u64)?.copy_from_slice(value);
    }
    Ok(value.len() as u64)
}

/// The kernel's `copy`, when [`lookup`] could not write the value in place: the value, looked up
/// again by the same key, into the block `handle` the kernel allocated for it (0 when that
/// failed).
fn copy(mut caller: Caller<'_, PluginState>, what: i32, handle: u64) -> Result<()> {
    let (value, _) = values(what)?;
    let memory = caller.data().kernel_memory()?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let value = value(state).unwrap_or_default();
    if value.is_empty() {
        return Ok(());
    }
    if handle == 0 {
        return Err(crate::kernel::allocation_failed(value.len() as u64));
    }
    crate::kernel::range_mut(data, handle, value.len() as u64)?.copy_from_slice(value);
    Ok(())
}

/// Reads the key argument of `config_get`, `var_get` or `var_set` from kernel memory `data`
/// into the store's scratch [`PluginState::key`] (reused, so a lookup allocates nothing). `len` is the block's length
/// (the kernel's `length`); `0` is the empty key, otherwise it must be a live block of UTF-8.
fn read_key(data: &[u8], state: &mut PluginState, handle: u64, len: u64, what: &str) -> Result<()> {
    state.key.clear();
    if handle == 0 {
        return Ok(());
    }
    if len == 0 {
        bail!("invalid handle offset for {what}: {handle}");
    }
    state.key.push_str(std::str::from_utf8(crate::kernel::range(
        data, handle, len,
    )?)?);
    Ok(())
}
