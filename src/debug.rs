//! Debugging aids a host turns on per plugin ([`DebugOptions`]): a profiler, DWARF debug info,
//! a wasm core dump when a call traps, and a dump of the plugin's Extism memory when a call
//! fails.
//!
//! Owns the `EXTISM_PROFILE`, `EXTISM_DEBUG`, `EXTISM_COREDUMP` and `EXTISM_MEMDUMP`
//! variables (read when a builder is made, as upstream) and writing the dump files. Profiler
//! and debug info are engine settings (engine.rs `EngineKey`); core dumps need one too
//! (wasmtime's `coredump_on_trap`). Writing a dump never changes a call's outcome: a file that
//! cannot be written is reported on `tracing` and the call's own error is returned.

use std::path::{Path, PathBuf};

use wasmtime::{AsContextMut, Memory, WasmCoreDump};

/// What upstream's `DebugOptions` holds, with the same defaults from the environment.
///
/// ```
/// use extism::{DebugOptions, PluginBuilder};
/// let dir = tempfile::tempdir()?;
/// let options = DebugOptions {
///     coredump: Some(dir.path().join("plugin.core")),
///     memdump: Some(dir.path().join("plugin.mem")),
///     ..DebugOptions::default()
/// };
/// let wat = r#"(module (func (export "boom") unreachable))"#;
/// let mut plugin = PluginBuilder::new(wat).with_debug_options(options).build()?;
/// assert!(plugin.call::<&str, &str>("boom", "").is_err());
/// // a wasm core dump (readable with `wasmgdb` and similar tools) and the Extism memory
/// assert!(std::fs::read(dir.path().join("plugin.core"))?.starts_with(b"\0asm"));
/// assert!(dir.path().join("plugin.mem").exists());
/// # Ok::<(), extism::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct DebugOptions {
    /// Where compiled code is reported for profilers (default: `EXTISM_PROFILE`, one of
    /// `perf`, `jitdump`, `vtune`). Only `PerfMap` is built into this library; the others
    /// make compiling fail with wasmtime's error.
    pub profiling_strategy: wasmtime::ProfilingStrategy,
    /// When a call traps, a wasm core dump is written to this file, replacing it (default:
    /// `EXTISM_COREDUMP`).
    pub coredump: Option<PathBuf>,
    /// When a call fails (a trap, a timeout, an error the guest set...), the plugin's Extism
    /// memory (the kernel's linear memory, where inputs, outputs and vars' blocks live) is
    /// written to this file, replacing it (default: `EXTISM_MEMDUMP`).
    pub memdump: Option<PathBuf>,
    /// Compile with DWARF debug info (default: set when `EXTISM_DEBUG` is).
    pub debug_info: bool,
}

impl Default for DebugOptions {
    fn default() -> DebugOptions {
        DebugOptions {
            profiling_strategy: profiling_strategy_from_env(),
            coredump: std::env::var_os("EXTISM_COREDUMP").map(PathBuf::from),
            memdump: std::env::var_os("EXTISM_MEMDUMP").map(PathBuf::from),
            debug_info: std::env::var_os("EXTISM_DEBUG").is_some(),
        }
    }
}

/// The profiler named by `EXTISM_PROFILE` (`perf`, `jitdump` or `vtune`), as upstream reads it.
fn profiling_strategy_from_env() -> wasmtime::ProfilingStrategy {
    match std::env::var("EXTISM_PROFILE").as_deref() {
        Ok("perf") => wasmtime::ProfilingStrategy::PerfMap,
        Ok("jitdump") => wasmtime::ProfilingStrategy::JitDump,
        Ok("vtune") => wasmtime::ProfilingStrategy::VTune,
        Ok(other) => {
            tracing::warn!(target: "extism", "Invalid value for EXTISM_PROFILE: {other}");
            wasmtime::ProfilingStrategy::None
        }
        Err(_) => wasmtime::ProfilingStrategy::None,
    }
}

/// The dump files of one compiled plugin, shared by its instances.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dumps {
    pub coredump: Option<PathBuf>,
    pub memdump: Option<PathBuf>,
}

impl From<&DebugOptions> for Dumps {
    fn from(options: &DebugOptions) -> Dumps {
        Dumps {
            coredump: options.coredump.clone(),
            memdump: options.memdump.clone(),
        }
    }
}

impl Dumps {
    /// Writes the core dump wasmtime attached to a trap, when asked for one.
    pub fn trapped(&self, store: impl AsContextMut, error: &wasmtime::Error, plugin: uuid::Uuid) {
        let (Some(path), Some(dump)) = (&self.coredump, error.downcast_ref::<WasmCoreDump>())
        else {
            return;
        };
        write(path, &dump.serialize(store, "extism"), "core dump", plugin);
    }

    /// Writes the Extism memory after a failed call, when asked for it.
    pub fn failed(&self, mut store: impl AsContextMut, memory: Option<Memory>, plugin: uuid::Uuid) {
        let (Some(path), Some(memory)) = (&self.memdump, memory) else {
            return;
        };
        write(
            path,
            memory.data(store.as_context_mut()),
            "memory dump",
            plugin,
        );
    }
}

fn write(path: &Path, bytes: &[u8], what: &str, plugin: uuid::Uuid) {
    match std::fs::write(path, bytes) {
        Ok(()) => tracing::debug!(
            target: "extism", plugin = %plugin, "{what} written to {} ({} bytes)", path.display(),
            bytes.len()
        ),
        Err(e) => tracing::error!(
            target: "extism", plugin = %plugin, "unable to write {what} to {}: {e}", path.display()
        ),
    }
}
