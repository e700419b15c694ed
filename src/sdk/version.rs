//! `extism_version`.

use std::ffi::c_char;

/// The crate version as a static C string (the same text as [`crate::VERSION`]).
static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Returns the library version (plain semver). Static: never NULL, never freed.
#[no_mangle]
pub extern "C" fn extism_version() -> *const c_char {
    VERSION.as_ptr().cast()
}
