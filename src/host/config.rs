//! `config_get`: read-only configuration (`spec/guest-abi.md` §6). The kernel runs the
//! function (kernel.wat); the host looks the value up.

use crate::plugin_state::PluginState;

/// The config value under the key in [`PluginState::key`].
pub(super) fn value(s: &PluginState) -> Option<&[u8]> {
    s.config.get(&s.key).map(String::as_bytes)
}
