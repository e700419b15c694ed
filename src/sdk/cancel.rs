//! `ExtismCancelHandle`: interrupting a plugin's running call from any thread.
//!
//! The handle lives inside its `ExtismPlugin` (outside the plugin lock), so cancelling never
//! waits for the call it interrupts.

use super::{guard, plugin::ExtismPlugin};
use crate::CancelHandle;

/// Opaque `ExtismCancelHandle` of the header.
pub struct ExtismCancelHandle(pub(crate) CancelHandle);

/// The plugin's cancel handle: owned by the plugin, the same pointer every time, valid until
/// `extism_plugin_free`. NULL for NULL.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_cancel_handle(
    plugin: *const ExtismPlugin,
) -> *const ExtismCancelHandle {
    guard(
        |_| std::ptr::null(),
        // SAFETY: NULL or a live plugin, per the header.
        || unsafe { plugin.as_ref() }.map_or(std::ptr::null(), |p| &p.cancel as *const _),
    )
}

/// Interrupts the call running on the handle's plugin (it then fails with 134 and
/// `timeout`); does nothing to an idle plugin. Any thread. `false` for NULL.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_cancel(handle: *const ExtismCancelHandle) -> bool {
    guard(
        |_| false,
        // SAFETY: NULL or a handle of a live plugin, per the header.
        || unsafe { handle.as_ref() }.is_some_and(|h| h.0.cancel().is_ok()),
    )
}
