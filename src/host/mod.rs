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

use crate::{kernel::ENV_MODULE, plugin_state::PluginState};

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

/// Defines every host-implemented `extism:host/env` function in `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> Result<()> {
    let l = linker;
    l.func_wrap(
        ENV_MODULE,
        "config_get",
        |c: Caller<'_, PluginState>, k: u64| trap(config::config_get(c, k)),
    )?;
    l.func_wrap(
        ENV_MODULE,
        "var_get",
        |c: Caller<'_, PluginState>, k: u64| trap(var::var_get(c, k)),
    )?;
    l.func_wrap(
        ENV_MODULE,
        "var_set",
        |c: Caller<'_, PluginState>, k: u64, v: u64| trap(var::var_set(c, k, v)),
    )?;
    l.func_wrap(
        ENV_MODULE,
        "http_request",
        |c: Caller<'_, PluginState>, r: u64, b: u64| trap(http::http_request(c, r, b)),
    )?;
    l.func_wrap(
        ENV_MODULE,
        "http_status_code",
        |c: Caller<'_, PluginState>| i32::from(c.data().http.status),
    )?;
    l.func_wrap(ENV_MODULE, "http_headers", |c: Caller<'_, PluginState>| {
        trap(http::http_headers(c))
    })?;
    log::add_to_linker(l)?;
    Ok(())
}

/// Host functions report failures to wasmtime as traps carrying the anyhow error.
fn trap<T>(r: Result<T>) -> wasmtime::Result<T> {
    r.map_err(wasmtime::Error::from_anyhow)
}

/// Reads a key argument: `0` is the empty key, otherwise a live block of UTF-8.
fn read_key(caller: &mut Caller<'_, PluginState>, handle: u64, what: &str) -> Result<String> {
    if handle == 0 {
        return Ok(String::new());
    }
    let kernel = caller.data().kernel()?;
    match kernel.block(caller, handle)? {
        Some(bytes) => Ok(std::str::from_utf8(bytes)?.to_string()),
        None => bail!("invalid handle offset for {what}: {handle}"),
    }
}
