//! `ExtismCurrentPlugin`: what a C host function sees of the running plugin (§4 of
//! `spec/c-api.md`): kernel memory and the host context.
//!
//! The pointer handed to a callback is the address of the core [`CurrentPlugin`]. Every
//! accessor first checks that the pointer belongs to a callback running on this thread, so a
//! stale or foreign pointer gives NULL/0 instead of undefined behaviour.

use std::{cell::RefCell, ffi::c_void};

use super::{guard, ExtismMemoryHandle, ExtismSize};
use crate::{CurrentPlugin, MemoryHandle};

/// Opaque `ExtismCurrentPlugin` of the header.
pub struct ExtismCurrentPlugin {
    _private: [u8; 0],
}

/// The pointer given to `extism_plugin_call_with_host_context`, carried through the core's
/// host context. Never dereferenced by the library.
pub(crate) struct HostContext(pub *mut c_void);

// SAFETY: the library only stores and returns the pointer; what it points to is the host's.
unsafe impl Send for HostContext {}

thread_local! {
    /// Callbacks running on this thread, innermost last (a callback may call another plugin).
    static ACTIVE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with the C handle of `plugin`, valid for the accessors only while `f` runs.
pub(crate) fn with_active<R>(
    plugin: &mut CurrentPlugin,
    f: impl FnOnce(*mut ExtismCurrentPlugin) -> R,
) -> R {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            ACTIVE.with(|a| a.borrow_mut().pop());
        }
    }
    let ptr = (plugin as *mut CurrentPlugin).cast::<ExtismCurrentPlugin>();
    ACTIVE.with(|a| a.borrow_mut().push(ptr as usize));
    let _pop = Pop;
    f(ptr)
}

/// Runs `f` on the plugin behind `ptr` if it is a callback's live handle on this thread,
/// otherwise returns `default`.
fn with_current<R>(
    ptr: *mut ExtismCurrentPlugin,
    default: R,
    f: impl FnOnce(&mut CurrentPlugin) -> R,
) -> R {
    guard(
        |_| None,
        || {
            let live = !ptr.is_null() && ACTIVE.with(|a| a.borrow().contains(&(ptr as usize)));
            // SAFETY: a live handle is the address of a `CurrentPlugin` that a callback frame
            // on this thread is lending to C code right now (see `with_active`).
            live.then(|| f(unsafe { &mut *ptr.cast::<CurrentPlugin>() }))
        },
    )
    .unwrap_or(default)
}

/// The `host_context` of the running call; NULL for a plain call, a NULL context, or a NULL
/// or stale `plugin`.
#[no_mangle]
pub extern "C" fn extism_current_plugin_host_context(
    plugin: *mut ExtismCurrentPlugin,
) -> *mut c_void {
    with_current(plugin, std::ptr::null_mut(), |p| {
        p.host_context::<HostContext>()
            .map_or(std::ptr::null_mut(), |c| c.0)
    })
}

/// Base address of kernel memory; a handle `h` designates `base + h`. Valid during the
/// callback until kernel memory grows (call again after allocating). NULL for NULL/stale.
#[no_mangle]
pub extern "C" fn extism_current_plugin_memory(plugin: *mut ExtismCurrentPlugin) -> *mut u8 {
    with_current(plugin, std::ptr::null_mut(), |p| p.memory_ptr())
}

/// Allocates `n` bytes of kernel memory for the running call; 0 when `n` is 0, allocation
/// fails, or `plugin` is NULL/stale. The block is released by the next call's reset.
#[no_mangle]
pub extern "C" fn extism_current_plugin_memory_alloc(
    plugin: *mut ExtismCurrentPlugin,
    n: ExtismSize,
) -> ExtismMemoryHandle {
    with_current(plugin, 0, |p| p.memory_alloc(n).map_or(0, |h| h.offset()))
}

/// Length of the live block `n`; 0 for anything else.
#[no_mangle]
pub extern "C" fn extism_current_plugin_memory_length(
    plugin: *mut ExtismCurrentPlugin,
    n: ExtismMemoryHandle,
) -> ExtismSize {
    with_current(plugin, 0, |p| p.memory_length(n).unwrap_or(0))
}

/// Releases the live block `ptr`; no-op for 0, invalid handles or a NULL/stale `plugin`.
#[no_mangle]
pub extern "C" fn extism_current_plugin_memory_free(
    plugin: *mut ExtismCurrentPlugin,
    ptr: ExtismMemoryHandle,
) {
    with_current(plugin, (), |p| {
        let _ = p.memory_free(MemoryHandle {
            offset: ptr,
            length: 0,
        });
    })
}
