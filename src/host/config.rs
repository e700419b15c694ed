//! `config_get`: read-only configuration (`spec/guest-abi.md` §6).

use anyhow::Result;
use wasmtime::Caller;

use super::read_key;
use crate::plugin_state::PluginState;

pub(super) fn config_get(mut caller: Caller<'_, PluginState>, key: u64) -> Result<u64> {
    let name = read_key(&mut caller, key, "config key")?;
    let kernel = caller.data().kernel()?;
    // An empty value reads as absent: zero-length blocks do not exist.
    let value = match caller.data().config.get(&name) {
        Some(v) if !v.is_empty() => v.clone(),
        _ => String::new(),
    };
    let result = kernel.write_new(&mut caller, value.as_bytes())?;
    kernel.free(&mut caller, key)?;
    Ok(result)
}
