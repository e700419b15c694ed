//! extism-run: a WebAssembly plugin runtime compatible with Extism.
//!
//! The Rust API mirrors upstream's `extism` crate: build a [`Plugin`] from wasm bytes or a
//! [`Manifest`] (directly, through [`PluginBuilder`], or from a [`CompiledPlugin`]), give it
//! host [`Function`]s, and [`Plugin::call`] its exports.
//!
//! ```
//! use extism::{Manifest, Plugin, Wasm};
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rust/wasm/count_vowels.wasm");
//! let manifest = Manifest::new([Wasm::file(path)]);
//! let mut plugin = Plugin::new(&manifest, [], false)?;
//! let out: String = plugin.call("count_vowels", "Hello, world!")?;
//! assert!(out.contains(r#""count":3"#));
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Async hosts use [`AsyncPlugin`] ([`PluginBuilder::build_async`]), whose calls are `Send`
//! futures and whose host functions may be async ([`Function::new_async`]); see the README's
//! "Async" section.
//!
//! Layers (see ARCHITECTURE.md): the core runtime modules below know nothing about C or the
//! command line; `sdk` (the C API) and the `extism-run` binary are built on top.

#![warn(missing_docs)]

// Lets the `ToBytes`/`FromBytes` derives (which name `::extism::convert`) work in this crate.
extern crate self as extism;

/// The upstream Extism release whose guest ABI and C API this library implements (one
/// literal, used by `concat!` below and in the C API's version string).
macro_rules! upstream_version {
    () => {
        "1.41.0"
    };
}

mod async_function;
mod async_plugin;
mod builder;
mod cancel;
mod compiled;
mod copy_loop;
mod current_plugin;
mod debug;
pub mod disk_cache;
mod engine;
mod epoch;
mod fiber;
mod function;
mod heap_trim;
mod hex;
mod host;
mod host_call;
mod host_timing;
#[cfg(any(feature = "http", feature = "register-http"))]
mod http;
pub mod kernel;
mod kernel_link;
mod limits;
pub mod logging;
mod macros;
pub mod manifest;
mod plugin;
mod plugin_state;
mod pool;
mod profile;
mod progress;
pub mod sdk;
mod signature;
mod small_copy;
mod timer;
pub mod wasi;
mod wasm_code;
mod wat_text;

pub use anyhow::Error;
pub use async_function::HostFuture;
pub use async_plugin::{AsyncPlugin, CallFuture};
pub use builder::{PluginBuilder, WasmInput};
pub use cancel::{CancelHandle, Interrupted};
pub use compiled::CompiledPlugin;
pub use convert::{FromBytes, FromBytesOwned, Json, MemoryHandle, ToBytes};
pub use current_plugin::CurrentPlugin;
pub use debug::DebugOptions;
/// Conversions between Rust values and the bytes passed to and from plugins: upstream's
/// `extism-convert` crate itself, so types a plugin and its host share work unchanged.
#[doc(inline)]
pub use extism_convert as convert;
pub use function::{Function, UserData, Val, ValType, PTR, USER_NAMESPACE};
pub use limits::OutOfMemory;
pub use logging::set_log_callback;
pub use manifest::{HttpRequest, Manifest, ManifestExt, MemoryOptions, Wasm, WasmMetadata};
pub use plugin::{GuestError, Plugin};
pub use pool::{Pool, PoolBuilder, PoolPlugin};
pub use profile::{Profile, ProfileOptions};
pub use uuid::Uuid;

/// The import module of the kernel and the runtime's host functions.
pub const EXTISM_ENV_MODULE: &str = kernel::ENV_MODULE;
/// The import module of user host functions unless they set another.
pub const EXTISM_USER_MODULE: &str = USER_NAMESPACE;

/// This library's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The upstream Extism release whose guest ABI, C API and Rust API this library is compatible
/// with.
pub const UPSTREAM_VERSION: &str = upstream_version!();

/// The version [`extism_version`] and the C `extism_version()` report, NUL-terminated for C:
/// upstream's release (so hosts that compare it see the API level they get), with this
/// library's version as semver build metadata, which comparisons ignore:
/// `1.41.0+extism-run.0.1.0`.
pub(crate) const EXTISM_VERSION_C: &str = concat!(
    upstream_version!(),
    "+extism-run.",
    env!("CARGO_PKG_VERSION"),
    "\0"
);

/// The Extism version string, as upstream's `extism::extism_version()`: see
/// [`UPSTREAM_VERSION`] and [`VERSION`] for its parts.
pub fn extism_version() -> &'static str {
    EXTISM_VERSION_C.trim_end_matches('\0')
}
