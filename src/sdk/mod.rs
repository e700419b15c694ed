//! The C API of `include/extism.h` (libextism): thin `extern "C"` shims over the Rust API.
//!
//! One file per C object; each export checks its pointers, converts its arguments, calls the
//! core, stores the error where the C API says, and returns. Behaviour is specified in
//! `spec/c-api.md`.
//!
//! Rules every export here follows:
//! - no panic crosses the boundary: every body runs inside `guard`, which turns a panic into
//!   the function's failure value;
//! - NULL is accepted wherever a pointer is taken, and gives the documented failure value;
//! - strings handed out are either owned by the library (documented per function) or returned
//!   through an `errmsg` out-parameter, allocated by `set_errmsg` and released only by
//!   `extism_plugin_new_error_free`.
//!
//! Safety contract of every `unsafe` export (the same for all, so it is stated once here):
//! each pointer argument is NULL or valid as include/extism.h describes: an object this
//! library returned and that was not freed, a NUL-terminated string, or a buffer of the given
//! length. The `extism_current_plugin_*` functions are safe: they accept only handles of
//! callbacks running on the calling thread.
//!
//! This module must never contain runtime behaviour of its own: anything a Rust embedder would
//! also need belongs in the core.

// The contract above stands for a `# Safety` section on each export.
#![allow(clippy::missing_safety_doc)]

pub mod cancel;
pub mod compiled;
pub mod current_plugin;
pub mod function;
pub mod log;
pub mod plugin;
pub mod version;

use std::{
    ffi::{c_char, CStr, CString},
    panic::{catch_unwind, AssertUnwindSafe},
};

/// `ExtismSize` of the header.
pub type ExtismSize = u64;

/// `ExtismMemoryHandle` of the header.
pub type ExtismMemoryHandle = u64;

/// Runs `f`; if it panics, returns `on_panic(message)` instead, so that no unwind ever reaches
/// C code (which would abort the host process).
pub(crate) fn guard<T>(on_panic: impl FnOnce(&str) -> T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => value,
        Err(payload) => {
            let message = crate::host_call::panic_message(&*payload);
            tracing::error!(target: "extism::sdk", "panic in the C API: {message}");
            on_panic(message)
        }
    }
}

/// Borrows a NUL-terminated UTF-8 string; `what` names the argument in the error.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, String> {
    if ptr.is_null() {
        return Err(format!("{what} is a null pointer"));
    }
    CStr::from_ptr(ptr).to_str().map_err(|e| e.to_string())
}

/// Borrows `len` elements at `ptr`. A zero length is the empty slice whatever `ptr` is.
///
/// # Safety
/// Unless `len` is 0, `ptr` is NULL or points to `len` initialised elements that outlive `'a`.
pub(crate) unsafe fn c_slice<'a, T>(
    ptr: *const T,
    len: ExtismSize,
    what: &str,
) -> Result<&'a [T], String> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(format!("{what} is a null pointer but its length is {len}"));
    }
    let fits = usize::try_from(len)
        .ok()
        .and_then(|n| n.checked_mul(std::mem::size_of::<T>()))
        .is_some_and(|bytes| bytes <= isize::MAX as usize);
    if !fits {
        return Err(format!("{what} is too large: {len} elements"));
    }
    Ok(std::slice::from_raw_parts(ptr, len as usize))
}

/// A C string holding `text` up to its first NUL (what a C reader would see anyway).
pub(crate) fn to_cstring(text: impl Into<Vec<u8>>) -> CString {
    let mut bytes = text.into();
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(nul);
    }
    CString::new(bytes).unwrap_or_default()
}

/// Stores a new error string in `*errmsg` (if `errmsg` is not NULL); the caller releases it
/// with `extism_plugin_new_error_free`.
///
/// # Safety
/// `errmsg` is NULL or valid for writing one pointer.
pub(crate) unsafe fn set_errmsg(errmsg: *mut *mut c_char, message: String) {
    if !errmsg.is_null() {
        *errmsg = to_cstring(message).into_raw();
    }
}
