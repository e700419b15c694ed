//! `config_get`: read-only configuration (`spec/guest-abi.md` §6).

use anyhow::Result;
use wasmtime::Caller;

use super::read_key;
use crate::{kernel, plugin_state::PluginState};

/// Two kernel entries: the key's length, then the result's block allocated and the key freed.
pub(super) fn config_get(mut caller: Caller<'_, PluginState>, key: u64) -> Result<u64> {
    let kernel = caller.data().kernel()?;
    let (key_len, _) = match key {
        0 => (0, 0),
        k => kernel.lengths(&mut caller, k, 0)?,
    };
    read_key(&kernel, &mut caller, key, key_len, "config key")?;
    let state = caller.data();
    // An empty value reads as absent: zero-length blocks do not exist.
    let value_len = state.config.get(&state.key).map_or(0, |v| v.len());
    let result = kernel.reply(&mut caller, value_len as u64, key, 0)?;
    if result != 0 {
        let (memory, state) = kernel.memory.data_and_store_mut(&mut caller);
        if let Some(value) = state.config.get(&state.key) {
            kernel::range_mut(memory, result, value.len() as u64)?
                .copy_from_slice(value.as_bytes());
        }
    }
    Ok(result)
}
