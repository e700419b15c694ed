//! The process-wide wasmtime engines and what is compiled with them.
//!
//! One `Engine` per distinct configuration ([`EngineKey`]: fuel metering, debug options, a
//! host's wasmtime config), created on first use and kept for the life of the process (or,
//! for a host's own wasmtime config, while plugins compiled with it exist); the kernel is compiled once per engine, when a
//! plugin first needs it as a module of its own; plugin modules are shared in-process by the
//! SHA-256 of their bytes (and whether the kernel is linked into them, kernel_link.rs), so a
//! second plugin made from the same bytes never compiles again. The cache holds modules weakly, plus the most recently used ones strongly
//! (bounded by count and code size): hosts that create, call and free a plugin from the same
//! bytes over and over compile once, and code nobody used lately is freed. This module never
//! instantiates anything.

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, OnceLock, Weak,
    },
    time::Instant,
};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstancePre, Linker, Module};

use crate::{
    kernel::{KernelExports, KERNEL_WASM},
    kernel_link,
    plugin_state::PluginState,
};

/// An engine and everything compiled for it.
pub(crate) struct Runtime {
    pub engine: Engine,
    /// The kernel as a module of its own, pre-linked (it imports nothing), compiled on first
    /// use: only plugins of several modules instantiate it ([`Runtime::kernel`]).
    kernel: OnceLock<(InstancePre<PluginState>, KernelExports)>,
    modules: Mutex<HashMap<[u8; 32], Weak<CachedModule>>>,
    /// Recently used modules, least recent first, kept alive after their last plugin is gone.
    recent: Mutex<Vec<Arc<CachedModule>>>,
}

/// At most this many modules are kept alive by `Runtime::recent`...
const RECENT_MODULES: usize = 16;
/// ... and at most this much compiled code (the last module used is always kept).
const RECENT_CODE_BYTES: usize = 64 << 20;

/// A compiled module and its cache key ([`cache_key`]).
pub(crate) struct CachedModule {
    pub module: Module,
    pub key: [u8; 32],
    /// Where the module exports the kernel when the kernel is linked into it (kernel_link.rs):
    /// then no separate kernel instance is needed. Only linked modules export these names:
    /// other modules using them are refused when compiled.
    pub kernel: Option<KernelExports>,
}

impl CachedModule {
    pub fn new(module: Module, key: [u8; 32]) -> CachedModule {
        let kernel = KernelExports::find(&module, kernel_link::EXPORT_PREFIX);
        CachedModule {
            module,
            key,
            kernel,
        }
    }
}

/// The key of the module compiled from `bytes`: their SHA-256, or for the kernel-linked form
/// the SHA-256 of the bytes behind a domain prefix, so the two forms never share an entry and
/// distinct bytes never share code.
pub(crate) fn cache_key(bytes: &[u8], link_kernel: bool) -> [u8; 32] {
    let mut hash = Sha256::new();
    if link_kernel {
        hash.update(b"extism-run kernel-linked module\0");
    }
    hash.update(bytes);
    hash.finalize().into()
}

/// What sets one engine apart from another: plugins whose keys are equal share an engine,
/// and with it every module compiled for it. Adding a field adds engines, never changes
/// existing ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct EngineKey {
    /// Fuel metering (`PluginBuilder::with_fuel_limit`).
    pub fuel: bool,
    /// Where compiled code is reported for profilers (`DebugOptions::profiling_strategy`).
    pub profiler: Profiler,
    /// DWARF debug info for compiled code (`DebugOptions::debug_info`).
    pub debug_info: bool,
    /// Traps carry a core dump (`DebugOptions::coredump`).
    pub coredump: bool,
    /// Stacks are captured whole for the sampling profiler (`PluginBuilder::with_profiler`).
    pub sampling: bool,
    /// A wasmtime configuration given by the host (`PluginBuilder::with_wasmtime_config`).
    pub custom: Option<CustomConfig>,
}

/// `wasmtime::ProfilingStrategy` with the equality and hash an [`EngineKey`] needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Profiler(pub wasmtime::ProfilingStrategy);

impl Default for Profiler {
    fn default() -> Self {
        Profiler(wasmtime::ProfilingStrategy::None)
    }
}

impl Profiler {
    fn code(self) -> u8 {
        use wasmtime::ProfilingStrategy::*;
        match self.0 {
            None => 0,
            PerfMap => 1,
            JitDump => 2,
            VTune => 3,
            Pulley => 4,
        }
    }
}

impl PartialEq for Profiler {
    fn eq(&self, other: &Self) -> bool {
        self.code() == other.code()
    }
}

impl Eq for Profiler {}

impl std::hash::Hash for Profiler {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.code().hash(state)
    }
}

/// A host's wasmtime configuration. `Config` cannot be compared, so each one given is its own
/// key (clones of a builder share it): its engine lives while plugins compiled with it do.
#[derive(Clone)]
pub(crate) struct CustomConfig {
    id: u64,
    config: Arc<Config>,
}

impl CustomConfig {
    pub fn new(config: Config) -> CustomConfig {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        CustomConfig {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            config: Arc::new(config),
        }
    }
}

impl std::fmt::Debug for CustomConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CustomConfig").field(&self.id).finish()
    }
}

impl PartialEq for CustomConfig {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for CustomConfig {}

impl std::hash::Hash for CustomConfig {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}

/// Every engine created so far, by key. Engines of built-in configurations are kept for the
/// life of the process (`kept`); those of custom configurations go with their last user.
struct Registry {
    engines: HashMap<EngineKey, Weak<Runtime>>,
    kept: Vec<Arc<Runtime>>,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            Mutex::new(Registry {
                engines: HashMap::new(),
                kept: Vec::new(),
            })
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

impl Runtime {
    /// The runtime for plugins with configuration `key`, created on first use.
    pub fn get(key: &EngineKey) -> Result<Arc<Runtime>> {
        let mut registry = registry();
        if let Some(rt) = registry.engines.get(key).and_then(Weak::upgrade) {
            return Ok(rt);
        }
        let rt = Arc::new(Runtime::new(key)?);
        registry.engines.retain(|_, weak| weak.strong_count() > 0);
        registry.engines.insert(key.clone(), Arc::downgrade(&rt));
        if key.custom.is_none() {
            registry.kept.push(rt.clone());
        }
        Ok(rt)
    }

    /// Every engine that exists (the epoch ticker advances them).
    pub fn all() -> Vec<Arc<Runtime>> {
        registry()
            .engines
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }

    fn new(key: &EngineKey) -> Result<Runtime> {
        let mut config = match &key.custom {
            Some(custom) => (*custom.config).clone(),
            None => {
                let mut config = Config::new();
                config.cranelift_opt_level(wasmtime::OptLevel::Speed);
                config
            }
        };
        // What the runtime depends on overrides the host's configuration.
        config
            .epoch_interruption(true)
            .consume_fuel(key.fuel)
            .wasm_multi_memory(true)
            // Errors then carry the trap or host-function reason itself rather than a
            // backtrace header; nothing depends on backtrace text (spec/guest-abi.md §11.3).
            .wasm_backtrace_max_frames(
                // The sampling profiler reads stacks through backtraces (profile.rs).
                key.sampling
                    .then(|| std::num::NonZeroUsize::new(crate::profile::MAX_FRAMES))
                    .flatten(),
            )
            // The proposals upstream enables, so the same guests load.
            .wasm_tail_call(true)
            .wasm_function_references(true)
            .wasm_gc(true)
            .debug_info(key.debug_info)
            .coredump_on_trap(key.coredump);
        #[cfg(feature = "wasmtime-exceptions")]
        config.wasm_exceptions(true);
        // For profiling: `perf` then names compiled wasm functions (/tmp/perf-PID.map).
        let profiler = match key.profiler.0 {
            wasmtime::ProfilingStrategy::None
                if std::env::var_os("EXTISM_RUN_PERFMAP").is_some() =>
            {
                wasmtime::ProfilingStrategy::PerfMap
            }
            p => p,
        };
        config.profiler(profiler);
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
        Ok(Runtime {
            engine,
            kernel: OnceLock::new(),
            modules: Mutex::new(HashMap::new()),
            recent: Mutex::new(Vec::new()),
        })
    }

    /// The kernel as a module of its own, ready to instantiate into any store, and where it
    /// exports what the host uses.
    pub fn kernel(&self) -> Result<&(InstancePre<PluginState>, KernelExports)> {
        if let Some(kernel) = self.kernel.get() {
            return Ok(kernel);
        }
        let module = Module::new(&self.engine, KERNEL_WASM)
            .map_err(anyhow::Error::from)
            .context("compiling the kernel")?;
        let exports = KernelExports::find(&module, "")
            .ok_or_else(|| anyhow::anyhow!("the kernel lacks an export the host uses"))?;
        let pre = Linker::new(&self.engine)
            .instantiate_pre(&module)
            .map_err(anyhow::Error::from)?;
        Ok(self.kernel.get_or_init(|| (pre, exports)))
    }

    /// Compiles `bytes` (binary or text), with the kernel linked in when `link_kernel`, or
    /// returns the module already compiled from identical bytes in that form.
    pub fn compile(&self, bytes: &[u8], link_kernel: bool) -> Result<Arc<CachedModule>> {
        let key = cache_key(bytes, link_kernel);
        if let Some(found) = self.lookup(&key) {
            tracing::debug!(
                key = %crate::manifest::hex(&key[..8]),
                "module of {} bytes found in the engine's cache",
                bytes.len()
            );
            return Ok(found);
        }
        let started = Instant::now();
        let binary = if !bytes.starts_with(b"\0asm")
            && std::str::from_utf8(bytes).is_ok_and(crate::manifest::is_wat)
        {
            wat::parse_bytes(bytes).map_err(|e| anyhow::anyhow!("{e}"))?
        } else {
            Cow::Borrowed(bytes)
        };
        let linked = match link_kernel {
            true => kernel_link::link(&binary)?,
            false => None,
        };
        let (module, link_error) = match linked.map(|l| Module::new(&self.engine, &l)) {
            Some(Ok(module)) => (module, None),
            // Errors are reported on the module as given; if only the linked form fails to
            // compile, the original runs with a separate kernel (same behaviour).
            Some(Err(e)) => (self.compile_plain(&binary)?, Some(e)),
            None => (self.compile_plain(&binary)?, None),
        };
        if let Some(e) = link_error {
            tracing::warn!("the kernel could not be linked into the module: {e}");
        }
        let cached = CachedModule::new(module, key);
        tracing::debug!(
            key = %crate::manifest::hex(&key[..8]),
            kernel_linked = cached.kernel.is_some(),
            elapsed = ?started.elapsed(),
            "compiled a module of {} bytes",
            bytes.len()
        );
        Ok(self.insert(cached))
    }

    /// Compiles a module without the kernel linked in. Only linked modules may export the
    /// kernel's names (the host would take them for the kernel).
    fn compile_plain(&self, binary: &[u8]) -> Result<Module> {
        let module = Module::new(&self.engine, binary).map_err(anyhow::Error::from)?;
        kernel_link::check_exports(module.exports().map(|e| e.name()))?;
        Ok(module)
    }

    /// Registers a module obtained elsewhere (for example deserialised from a disk cache)
    /// under its cache key.
    pub fn insert(&self, cached: CachedModule) -> Arc<CachedModule> {
        let mut map = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = map.get(&cached.key).and_then(Weak::upgrade) {
            drop(map);
            self.touch(&existing);
            return existing;
        }
        map.retain(|_, weak| weak.strong_count() > 0);
        let key = cached.key;
        let arc = Arc::new(cached);
        map.insert(key, Arc::downgrade(&arc));
        drop(map);
        self.touch(&arc);
        arc
    }

    pub fn lookup(&self, key: &[u8; 32]) -> Option<Arc<CachedModule>> {
        let map = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        let found = map.get(key).and_then(Weak::upgrade);
        drop(map);
        if let Some(m) = &found {
            self.touch(m);
        }
        found
    }

    /// Marks `module` as the most recently used, keeping it alive; the least recently used
    /// beyond the bounds are released (freed once no plugin uses them).
    fn touch(&self, module: &Arc<CachedModule>) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        match recent.iter().position(|m| Arc::ptr_eq(m, module)) {
            Some(pos) if pos + 1 == recent.len() => return,
            Some(pos) => {
                let m = recent.remove(pos);
                recent.push(m);
                return;
            }
            None => recent.push(module.clone()),
        }
        let code = |m: &Arc<CachedModule>| {
            let image = m.module.image_range();
            image.end as usize - image.start as usize
        };
        let mut total: usize = recent.iter().map(code).sum();
        while recent.len() > 1 && (recent.len() > RECENT_MODULES || total > RECENT_CODE_BYTES) {
            total -= code(&recent[0]);
            recent.remove(0);
        }
    }
}
