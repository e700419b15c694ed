//! `var_get`/`var_set`: the per-instance variable store (`spec/guest-abi.md` §7).

use anyhow::{bail, Result};
use wasmtime::Caller;

use super::read_key;
use crate::plugin_state::PluginState;

/// Bookkeeping bytes upstream counts per entry.
const ENTRY_OVERHEAD: u64 = 48;

pub(super) fn var_get(mut caller: Caller<'_, PluginState>, key: u64) -> Result<u64> {
    let name = read_key(&mut caller, key, "var key")?;
    let kernel = caller.data().kernel()?;
    let value = caller.data().vars.get(&name).cloned().unwrap_or_default();
    let result = kernel.write_new(&mut caller, &value)?;
    kernel.free(&mut caller, key)?;
    Ok(result)
}

pub(super) fn var_set(mut caller: Caller<'_, PluginState>, key: u64, value: u64) -> Result<()> {
    let max = caller.data().permissions.max_var_bytes;
    if max == 0 {
        bail!("Vars are disabled by this host");
    }
    let name = read_key(&mut caller, key, "var key")?;
    let kernel = caller.data().kernel()?;
    if value == 0 {
        caller.data_mut().vars.remove(&name);
        kernel.free(&mut caller, key)?;
        return Ok(());
    }
    let Some(bytes) = kernel.block(&mut caller, value)? else {
        bail!("invalid handle offset for var value: {value}");
    };
    let bytes = bytes.to_vec();
    // Upstream's accounting: every existing entry (the old value of this key included) plus
    // the new one, each with a fixed overhead.
    let used: u64 = caller
        .data()
        .vars
        .iter()
        .map(|(k, v)| k.len() as u64 + v.len() as u64 + ENTRY_OVERHEAD)
        .sum();
    if used + name.len() as u64 + bytes.len() as u64 + ENTRY_OVERHEAD > max {
        bail!("Variable store is full");
    }
    caller.data_mut().vars.insert(name, bytes);
    kernel.free(&mut caller, value)?;
    kernel.free(&mut caller, key)?;
    Ok(())
}
