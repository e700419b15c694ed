//! `var_get`/`var_set`: the per-instance variable store (`spec/guest-abi.md` §7). The kernel
//! runs both functions (kernel.wat); the host looks values up and stores them.

use anyhow::{bail, Result};
use wasmtime::Caller;

use super::read_key;
use crate::{kernel, plugin_state::PluginState};

/// Bookkeeping bytes upstream counts per entry.
const ENTRY_OVERHEAD: u64 = 48;

/// The var under the key in [`PluginState::key`].
pub(super) fn value(s: &PluginState) -> Option<&[u8]> {
    s.vars.get(&s.key).map(Vec::as_slice)
}

/// The kernel's `var_set`, given both blocks and their lengths (the kernel frees them after).
/// Setting a var that exists reuses its buffer (no allocation for the usual counter or state
/// of fixed size).
pub(super) fn var_set(
    mut caller: Caller<'_, PluginState>,
    key: u64,
    key_len: u64,
    value: u64,
    value_len: u64,
) -> Result<()> {
    let max = caller.data().permissions.max_var_bytes;
    if max == 0 {
        bail!("Vars are disabled by this host");
    }
    let memory = caller.data().kernel_memory()?;
    let (memory, state) = memory.data_and_store_mut(&mut caller);
    read_key(memory, state, key, key_len, "var key")?;
    if value == 0 {
        state.vars.remove(&state.key);
        return Ok(());
    }
    if value_len == 0 {
        bail!("invalid handle offset for var value: {value}");
    }
    let bytes = kernel::range(memory, value, value_len)?;
    // Upstream's accounting: every existing entry (the old value of this key included) plus
    // the new one, each with a fixed overhead.
    let used: u64 = state
        .vars
        .iter()
        .map(|(k, v)| k.len() as u64 + v.len() as u64 + ENTRY_OVERHEAD)
        .sum();
    if used + key_len + value_len + ENTRY_OVERHEAD > max {
        bail!("Variable store is full");
    }
    match state.vars.get_mut(&state.key) {
        // Reused unless it would keep far more memory than the new value needs.
        Some(old) if old.capacity() <= 2 * bytes.len().max(64) => {
            old.clear();
            old.extend_from_slice(bytes);
        }
        Some(old) => *old = bytes.to_vec(),
        None => {
            state.vars.insert(state.key.clone(), bytes.to_vec());
        }
    }
    Ok(())
}
