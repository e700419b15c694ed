//! `config_get`: read-only configuration (`spec/guest-abi.md` §6).

use anyhow::Result;
use wasmtime::Caller;

use super::value_of_key;
use crate::plugin_state::PluginState;

pub(super) fn config_get(caller: Caller<'_, PluginState>, key: u64) -> Result<u64> {
    value_of_key(caller, key, "config key", |s| {
        s.config.get(&s.key).map(String::as_bytes)
    })
}
