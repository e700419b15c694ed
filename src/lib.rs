//! extism-run: a WebAssembly plugin runtime compatible with Extism.
//!
//! The Rust API mirrors upstream's `extism` crate: build a [`Plugin`] from wasm bytes or a
//! [`Manifest`] (directly, through [`PluginBuilder`], or from a [`CompiledPlugin`]), give it
//! host [`Function`]s, and [`Plugin::call`] its exports.
//!
//! ```no_run
//! use extism::{Manifest, Plugin, Wasm};
//! let manifest = Manifest::new([Wasm::file("count_vowels.wasm")]);
//! let mut plugin = Plugin::new(&manifest, [], false)?;
//! let out: String = plugin.call("count_vowels", "Hello, world!")?;
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Layers (see ARCHITECTURE.md): the core runtime modules below know nothing about C or the
//! command line; `sdk` (the C API) and the `extism-run` binary are built on top.

/// The upstream Extism release whose guest ABI and C API this library implements (one
/// literal, used by `concat!` below and in the C API's version string).
macro_rules! upstream_version {
    () => {
        "1.41.0"
    };
}

mod builder;
mod cancel;
mod compiled;
mod convert;
mod current_plugin;
pub mod disk_cache;
mod engine;
mod function;
mod heap_trim;
mod host;
mod http;
pub mod kernel;
mod kernel_link;
mod limits;
pub mod logging;
pub mod manifest;
mod plugin;
mod plugin_state;
pub mod sdk;
mod timer;
pub mod wasi;

pub use anyhow::Error;
pub use builder::{PluginBuilder, WasmInput};
pub use cancel::{CancelHandle, Interrupted};
pub use compiled::CompiledPlugin;
pub use convert::{FromBytes, FromBytesOwned, Json, ToBytes};
pub use current_plugin::{CurrentPlugin, MemoryHandle};
pub use function::{Function, UserData, Val, ValType, PTR, USER_NAMESPACE};
pub use limits::OutOfMemory;
pub use manifest::{Manifest, MemoryOptions, Wasm, WasmMetadata};
pub use plugin::{GuestError, Plugin};
pub use uuid::Uuid;

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
