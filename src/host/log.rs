//! `log_*` and `get_log_level` (`spec/guest-abi.md` §9).

use anyhow::{bail, Result};
use tracing::Level;
use wasmtime::{Caller, Linker};

use super::{define, trap};
use crate::{kernel::ENV_MODULE, logging, plugin_state::PluginState};

pub(super) fn add_to_linker(l: &mut Linker<PluginState>, asynchronous: bool) -> Result<()> {
    for (name, level) in [
        ("log_trace", Level::TRACE),
        ("log_debug", Level::DEBUG),
        ("log_info", Level::INFO),
        ("log_warn", Level::WARN),
        ("log_error", Level::ERROR),
    ] {
        define!(l, asynchronous, name, move |c, msg| trap(log(
            c, level, msg
        )));
    }
    l.func_wrap(ENV_MODULE, "get_log_level", logging::guest_log_level)?;
    Ok(())
}

fn log(mut caller: Caller<'_, PluginState>, level: Level, msg: u64) -> Result<()> {
    let kernel = caller.data().kernel()?;
    if logging::enabled(level) {
        let plugin = caller.data().id_text.clone();
        match kernel.block(&mut caller, msg)? {
            Some(bytes) => logging::emit(level, &plugin, bytes),
            None if msg == 0 => logging::emit(level, &plugin, b""),
            None => bail!("invalid handle offset for log message: {msg}"),
        }
    }
    kernel.free(&mut caller, msg)
}
