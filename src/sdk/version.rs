//! `extism_version`.

use std::ffi::c_char;

/// Returns [`crate::extism_version`]: the Extism version this library is compatible with, and
/// its own version as semver build metadata (`1.41.0+extism-run.0.1.0`). Static: never NULL,
/// never freed.
#[no_mangle]
pub extern "C" fn extism_version() -> *const c_char {
    crate::EXTISM_VERSION_C.as_ptr().cast()
}
