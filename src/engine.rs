//! The process-wide wasmtime engines and what is compiled with them.
//!
//! One `Engine` per distinct configuration ([`EngineKey`]: fuel metering, debug options, a
//! host's wasmtime config), created on first use and kept for the life of the process (or,
//! for a host's own wasmtime config, while plugins compiled with it exist); the kernel is
//! compiled once per engine, when a plugin first needs it as a module of its own; plugin
//! modules are shared in-process by their bytes (and whether the kernel is linked into them,
//! kernel_link.rs), so a second plugin made from the same bytes never compiles again. Lookups
//! find candidates by a keyed hash of a sample of the bytes and then compare the bytes in full
//! with the copy each cached module keeps, so different bytes never share code, whatever their
//! hash. The cache
//! holds modules weakly, plus the most recently used ones strongly (bounded by count and code
//! size): hosts that create, call and free a plugin from the same bytes over and over compile
//! once, and code nobody used lately is freed. This module never instantiates anything.

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
use wasmtime::{Config, Engine, Module};

use crate::{
    kernel::{KernelExports, KERNEL_WASM},
    kernel_link,
};

/// An engine and everything compiled for it.
pub(crate) struct Runtime {
    pub engine: Engine,
    key: EngineKey,
    /// The kernel as a module of its own, compiled on first use: only plugins whose main
    /// module it is not linked into instantiate it ([`Runtime::kernel`]; its imports are the
    /// host's, resolved by each plugin's linker, compiled.rs).
    kernel: OnceLock<(Module, KernelExports)>,
    /// Compiled modules by [`Runtime::content_hash`] of their bytes; several when hashes collide.
    modules: Mutex<HashMap<u64, Vec<Weak<CachedModule>>>>,
    /// Keys the content hash (random per engine, so nobody can aim collisions at it).
    hasher: foldhash::quality::RandomState,
    /// Recently used modules, least recent first, kept alive after their last plugin is gone.
    recent: Mutex<Vec<Arc<CachedModule>>>,
}

/// At most this many modules are kept alive by `Runtime::recent`...
const RECENT_MODULES: usize = 16;
/// ... and at most this much compiled code (the last module used is always kept).
const RECENT_CODE_BYTES: usize = 64 << 20;

/// Modules up to this size are hashed whole; larger ones by [`SAMPLES`] blocks.
const HASHED_WHOLE: usize = 64 << 10;
/// How many blocks of [`SAMPLE_BYTES`] a large module's hash reads: its first and last block
/// and evenly spaced ones between.
const SAMPLES: usize = 32;
const SAMPLE_BYTES: usize = 512;

/// The cache's key for `bytes`: their length and, beyond [`HASHED_WHOLE`], a fixed sample of
/// them. Reading all of a large module here would read it twice per lookup, since the full
/// comparison that makes a candidate a match reads it anyway (and that second pass is what
/// left the first call running on cold caches). Modules that agree on the sample only share a
/// bucket: each lookup compares with at most the live modules of that bucket, and a hostile
/// host that fills a bucket has paid a compilation for every module in it.
fn content_hash(hasher: &foldhash::quality::RandomState, bytes: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    if bytes.len() <= HASHED_WHOLE {
        return hasher.hash_one(bytes);
    }
    let mut h = hasher.build_hasher();
    h.write_usize(bytes.len());
    let last = bytes.len() - SAMPLE_BYTES;
    for i in 0..SAMPLES {
        let start = (last as u64 * i as u64 / (SAMPLES as u64 - 1)) as usize;
        h.write(&bytes[start..start + SAMPLE_BYTES]);
    }
    h.finish()
}

/// A compiled module and the bytes it was compiled from (one copy per distinct module, shared
/// by every plugin using it): lookups compare them in full.
pub(crate) struct CachedModule {
    pub module: Module,
    source: Box<[u8]>,
    /// Compiled for a plugin of one module, with the kernel linked in if that worked.
    link_kernel: bool,
    /// Where the module exports the kernel when the kernel is linked into it (kernel_link.rs):
    /// then no separate kernel instance is needed. Only linked modules export these names:
    /// other modules using them are refused when compiled.
    pub kernel: Option<KernelExports>,
}

impl CachedModule {
    /// `module`, compiled from `source` for [`Runtime::compile`]'s `link_kernel`.
    pub fn new(module: Module, source: &[u8], link_kernel: bool) -> CachedModule {
        let kernel = KernelExports::find(&module, kernel_link::EXPORT_PREFIX);
        CachedModule {
            module,
            source: source.into(),
            link_kernel,
            kernel,
        }
    }

    fn is(&self, bytes: &[u8], link_kernel: bool) -> bool {
        self.link_kernel == link_kernel && *self.source == *bytes
    }
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
    /// Instances come from wasmtime's pooling allocator ([`Runtime::pooled`]).
    pub pooled: bool,
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

    /// The runtime for `key` with instances from wasmtime's pooling allocator, which makes
    /// instantiating (a plugin's first call) several times cheaper than mapping fresh memory
    /// for each instance. The pool is bounded, so every pooled runtime has an on-demand twin
    /// ([`Runtime::on_demand`]) that takes over when it is full or a module does not fit
    /// (compiled.rs, plugin.rs). Hosts' own wasmtime configurations and async plugins (whose
    /// fiber stacks would come from the pool too, one per live plugin, after instantiation)
    /// are not pooled; nor is anything when the pool's address space cannot be reserved.
    pub fn pooled(key: &EngineKey) -> Result<Arc<Runtime>> {
        if key.custom.is_some() {
            return Runtime::get(key);
        }
        // Tried once per process: a failed reservation would fail again, slowly.
        static UNAVAILABLE: std::sync::atomic::AtomicBool =
            std::sync::atomic::AtomicBool::new(false);
        if UNAVAILABLE.load(Ordering::Relaxed) {
            return Runtime::get(key);
        }
        let pooled = EngineKey {
            pooled: true,
            ..key.clone()
        };
        Runtime::get(&pooled).or_else(|e| {
            UNAVAILABLE.store(true, Ordering::Relaxed);
            tracing::warn!("instances are allocated on demand: no instance pool ({e:#})");
            Runtime::get(key)
        })
    }

    /// This runtime's twin that allocates instances on demand (itself when it does).
    pub fn on_demand(self: &Arc<Self>) -> Result<Arc<Runtime>> {
        if !self.key.pooled {
            return Ok(self.clone());
        }
        Runtime::get(&EngineKey {
            pooled: false,
            ..self.key.clone()
        })
    }

    pub fn is_pooled(&self) -> bool {
        self.key.pooled
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
        if key.pooled {
            config.allocation_strategy(pool_config());
        }
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
        crate::timer::watch_engine(&engine);
        Ok(Runtime {
            engine,
            key: key.clone(),
            kernel: OnceLock::new(),
            modules: Mutex::new(HashMap::new()),
            hasher: Default::default(),
            recent: Mutex::new(Vec::new()),
        })
    }

    /// What linking the kernel into a module adds for this engine (kernel_link.rs): no fast
    /// copies and no call entries under fuel metering, no call entries for the sampling
    /// profiler. The disk cache keys linked modules by it.
    pub fn link_options(&self) -> kernel_link::Options {
        kernel_link::Options {
            fast_copies: !self.key.fuel,
            call_entries: !self.key.fuel && !self.key.sampling,
        }
    }

    /// The kernel as a module of its own, and where it exports what the host uses.
    pub fn kernel(&self) -> Result<&(Module, KernelExports)> {
        if let Some(kernel) = self.kernel.get() {
            return Ok(kernel);
        }
        let module = Module::new(&self.engine, KERNEL_WASM)
            .map_err(anyhow::Error::from)
            .context("compiling the kernel")?;
        let exports = KernelExports::find(&module, "")
            .ok_or_else(|| anyhow::anyhow!("the kernel lacks an export the host uses"))?;
        Ok(self.kernel.get_or_init(|| (module, exports)))
    }

    /// Compiles `bytes` (binary or text), with the kernel linked in when `link_kernel`, or
    /// returns the module already compiled from identical bytes in that form.
    pub fn compile(&self, bytes: &[u8], link_kernel: bool) -> Result<Arc<CachedModule>> {
        if let Some(found) = self.lookup(bytes, link_kernel) {
            return Ok(found);
        }
        let started = Instant::now();
        let binary = if !bytes.starts_with(b"\0asm")
            && std::str::from_utf8(bytes).is_ok_and(crate::wat_text::is_wat)
        {
            wat::parse_bytes(bytes).map_err(|e| anyhow::anyhow!("{e}"))?
        } else {
            Cow::Borrowed(bytes)
        };
        let linked = match link_kernel {
            true => kernel_link::link(&binary, self.link_options())?,
            false => None,
        };
        let (module, link_error) = match linked.map(|l| Module::new(&self.engine, &l)) {
            Some(Ok(module)) => (module, None),
            // Linked, the module is bigger than either part: when it does not fit the pool,
            // the on-demand twin takes it linked (compiled.rs), faster than two instances.
            Some(Err(e)) if self.is_pooled() => return Err(e.into()),
            // Errors are reported on the module as given; if only the linked form fails to
            // compile, the original runs with a separate kernel (same behaviour).
            Some(Err(e)) => (self.compile_plain(&binary)?, Some(e)),
            None => (self.compile_plain(&binary)?, None),
        };
        if let Some(e) = link_error {
            tracing::warn!("the kernel could not be linked into the module: {e}");
        }
        let cached = CachedModule::new(module, bytes, link_kernel);
        tracing::debug!(
            kernel_linked = cached.kernel.is_some(),
            elapsed = ?started.elapsed(),
            "compiled a module of {} bytes",
            bytes.len()
        );
        Ok(self.insert(cached))
    }

    /// The same compiled module on this runtime's engine (the module cache's copy if there is
    /// one), without compiling again: compiled code loads into any engine of the same
    /// configuration, pooled or not.
    pub fn adopt(&self, module: &CachedModule) -> Result<Arc<CachedModule>> {
        if let Some(found) = self.lookup(&module.source, module.link_kernel) {
            return Ok(found);
        }
        let image = module.module.serialize().map_err(anyhow::Error::from)?;
        // SAFETY: the image was serialized by this process from a module compiled with the
        // same settings (only the allocation strategy differs), so it is trusted.
        let copy =
            unsafe { Module::deserialize(&self.engine, &image) }.map_err(anyhow::Error::from)?;
        Ok(self.insert(CachedModule::new(copy, &module.source, module.link_kernel)))
    }

    /// Compiles a module without the kernel linked in. Only linked modules may export the
    /// kernel's names (the host would take them for the kernel).
    fn compile_plain(&self, binary: &[u8]) -> Result<Module> {
        let module = Module::new(&self.engine, binary).map_err(anyhow::Error::from)?;
        kernel_link::check_exports(module.exports().map(|e| e.name()))?;
        Ok(module)
    }

    /// Where modules compiled from `bytes` are filed. Only finds candidates: equal hashes
    /// say nothing until the bytes compare equal.
    fn content_hash(&self, bytes: &[u8]) -> u64 {
        content_hash(&self.hasher, bytes)
    }

    /// Registers a module obtained elsewhere (for example deserialised from a disk cache),
    /// or returns the one already registered for the same bytes.
    pub fn insert(&self, cached: CachedModule) -> Arc<CachedModule> {
        let hash = self.content_hash(&cached.source);
        let mut map = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        let existing = map.get(&hash).and_then(|candidates| {
            candidates
                .iter()
                .filter_map(Weak::upgrade)
                .find(|m| m.is(&cached.source, cached.link_kernel))
        });
        if let Some(existing) = existing {
            drop(map);
            self.touch(&existing);
            return existing;
        }
        map.retain(|_, candidates| {
            candidates.retain(|weak| weak.strong_count() > 0);
            !candidates.is_empty()
        });
        let arc = Arc::new(cached);
        map.entry(hash).or_default().push(Arc::downgrade(&arc));
        drop(map);
        self.touch(&arc);
        arc
    }

    /// The module compiled from exactly `bytes` in the form `link_kernel`, if it is cached.
    pub fn lookup(&self, bytes: &[u8], link_kernel: bool) -> Option<Arc<CachedModule>> {
        let hash = self.content_hash(bytes);
        let map = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        let found = map.get(&hash).and_then(|candidates| {
            candidates
                .iter()
                .filter_map(Weak::upgrade)
                .find(|m| m.is(bytes, link_kernel))
        });
        drop(map);
        if let Some(m) = &found {
            tracing::debug!(
                "module of {} bytes found in the engine's cache",
                bytes.len()
            );
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

/// How many plugins of one engine configuration the pool holds at once: beyond that, plugins
/// allocate on demand. Each slot reserves the address space of its memories (4 GiB and guard
/// pages each, as an on-demand memory does) and may keep some of their pages warm
/// ([`KEEP_RESIDENT`]), so the pool is sized for the plugins a host uses at once, not for all
/// it could hold.
const POOL_PLUGINS: u32 = 32;

/// What a freed slot keeps of each of its memories and tables: the pages the plugin wrote
/// (found with Linux's `PAGEMAP_SCAN`, up to this many bytes) are reset in place, copied back
/// from the module's image or zeroed, and stay mapped; the rest is given back with `madvise`.
/// The next plugin in the slot then takes no page faults for them, and resetting the slot
/// needs no `madvise` and no TLB shootdown: the first call of a new plugin took 14 µs instead
/// of 25.6 µs (`profile_call testdata/rust/wasm/count_vowels.wasm count_vowels 13 20000
/// fresh`; 11.8 µs keeping 32 KiB). At most [`POOL_PLUGINS`] × 5 (memories and tables) × this,
/// 2.5 MiB, of written pages stays resident after every plugin is freed. Pages of the module's
/// image that a plugin only read stay mapped too (wasmtime skips the `madvise` when the scan
/// covers the whole memory): shared with every other mapping of the image, so no memory of
/// their own, but counted in RSS (76 KiB per slot for testdata/rust/bigdata).
const KEEP_RESIDENT: usize = 16 << 10;

/// Limits that every Extism plugin seen so far fits: a plugin of one module is one instance
/// with the kernel's two memories and its own; modules beyond the limits compile for the
/// on-demand twin instead (compiled.rs).
fn pool_config() -> wasmtime::PoolingAllocationConfig {
    // Without PAGEMAP_SCAN (Linux before 6.7, other systems) wasmtime would keep the lowest
    // bytes of every memory instead, written or not (a Rust guest never writes its first
    // pages): freed slots keep nothing then.
    let keep = match wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
        true => KEEP_RESIDENT,
        false => 0,
    };
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_core_instances(2 * POOL_PLUGINS)
        .total_memories(3 * POOL_PLUGINS)
        .total_tables(2 * POOL_PLUGINS)
        .total_gc_heaps(POOL_PLUGINS)
        .max_memories_per_module(4)
        .max_tables_per_module(2)
        .table_elements(100_000)
        .max_core_instance_size(8 << 20)
        .max_memory_size(1 << 32)
        .pagemap_scan(match keep {
            0 => wasmtime::Enabled::No,
            _ => wasmtime::Enabled::Yes,
        })
        .linear_memory_keep_resident(keep)
        .table_keep_resident(keep);
    pool
}
