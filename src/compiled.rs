//! A compiled plugin: everything about a plugin that does not change between its instances.
//!
//! Owns resolving the manifest to compiled modules (through the engine's content cache),
//! checking every import against the guest ABI (`spec/guest-abi.md` §1), ordering modules so
//! dependencies come first (rejecting cycles), and the linker holding the host functions,
//! user functions and WASI. A plugin of one module gets the kernel linked into it
//! (kernel_link.rs) and, when the linker satisfies all its imports, a pre-linked
//! `InstancePre` that every instance starts from. It is `Send + Sync` and shared by all
//! plugins made from it; it never holds a store.
//!
//! Plugins are compiled for a pooled runtime when they can be (engine.rs): modules that do
//! not fit the pool are compiled for its on-demand twin instead, and a plugin that finds the
//! pool full when it instantiates moves to [`Compiled::fallback`], the same modules linked
//! on the twin (plugin.rs).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock},
};

use anyhow::{anyhow, bail, Result};
use wasmtime::{ExternType, InstancePre, Linker, ModuleExport};

use crate::{
    debug::Dumps,
    engine::{CachedModule, EngineKey, Runtime},
    function::Function,
    host::HOST_FUNCTIONS,
    kernel::{ENV_MODULE, KERNEL_BUILTINS, KERNEL_FUNCTIONS, KERNEL_HOST_MODULE},
    kernel_link,
    manifest::{DownloadProgress, Manifest, ManifestExt, ResolvedModule, Wasm},
    plugin_state::{Permissions, PluginState},
    signature::describe,
};

/// Where one import of a module comes from.
#[derive(Clone)]
pub(crate) enum ImportSource {
    /// A kernel function, found by precomputed export index.
    Kernel(ModuleExport),
    /// A host function, user function or WASI function defined in the linker.
    Linker,
    /// An export of another module of this plugin (by position in `Compiled::modules`).
    Module(usize),
}

pub(crate) struct LinkedModule {
    pub name: String,
    pub module: Arc<CachedModule>,
    /// One entry per import, in the module's import order.
    pub imports: Vec<ImportSource>,
}

/// A plugin's modules linked on one engine: what a store of that engine instantiates.
pub(crate) struct Linked {
    pub runtime: Arc<Runtime>,
    /// Dependencies before dependents; the main module is last.
    pub modules: Vec<LinkedModule>,
    pub linker: Linker<PluginState>,
    /// The main module pre-linked against `linker`, when the kernel is linked into it and
    /// the linker defines every import (otherwise imports are resolved per store, which
    /// reports what is missing when a plugin is created).
    pub main_pre: Option<InstancePre<PluginState>>,
    /// The kernel as an instance of its own, pre-linked against `linker`, when it is not
    /// linked into the main module.
    pub kernel_pre: Option<InstancePre<PluginState>>,
}

impl Linked {
    pub fn main(&self) -> &LinkedModule {
        self.modules
            .last()
            .expect("a compiled plugin always has a main module")
    }
}

pub(crate) struct Compiled {
    /// Where instances are made while the runtime's pool has room.
    pub linked: Arc<Linked>,
    /// `linked` on the on-demand twin of a pooled runtime, made when first needed.
    fallback: OnceLock<Arc<Linked>>,
    /// Serialises making `fallback`.
    fallback_lock: Mutex<()>,
    /// The user functions in `linked`'s linker, to link `fallback` alike.
    functions: Vec<Function>,
    pub manifest: Arc<Manifest>,
    pub permissions: Arc<Permissions>,
    pub wasi: bool,
    pub fuel: Option<u64>,
    /// Fuel for each initialisation step (the call limit unless set apart).
    pub initialization_fuel: Option<u64>,
    /// Plugins start with HTTP response headers visible to the guest.
    pub http_response_headers: bool,
    /// Files written after failed calls (`DebugOptions`).
    pub dumps: Dumps,
    /// Compiled for `AsyncPlugin` (async_plugin.rs): the linker holds async host functions,
    /// so stores take wasmtime's async entry points (fiber.rs).
    pub asynchronous: bool,
    /// Every instance records a sampling profile (profile.rs).
    pub profile: Option<crate::ProfileOptions>,
}

impl Compiled {
    pub fn main(&self) -> &LinkedModule {
        self.linked.main()
    }

    /// The plugin linked on the on-demand twin of its runtime, for instances the pool has no
    /// room for: the same compiled code, loaded into the twin's engine, not compiled again.
    pub fn fallback(&self) -> Result<Arc<Linked>> {
        if let Some(linked) = self.fallback.get() {
            return Ok(linked.clone());
        }
        let _making = self.fallback_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(linked) = self.fallback.get() {
            return Ok(linked.clone());
        }
        let twin = self.linked.runtime.on_demand()?;
        let modules = self
            .linked
            .modules
            .iter()
            .map(|m| Ok((m.name.clone(), twin.adopt(&m.module)?)))
            .collect::<Result<Vec<_>>>()?;
        let linked = Arc::new(link(twin, &modules, &self.link_options())?);
        tracing::debug!("instances of this plugin beyond the pool are allocated on demand");
        Ok(self.fallback.get_or_init(|| linked).clone())
    }

    fn link_options(&self) -> LinkOptions<'_> {
        LinkOptions {
            functions: &self.functions,
            wasi: self.wasi,
            asynchronous: self.asynchronous,
            profiled: self.profile.is_some(),
        }
    }
}

/// A plugin compiled once, from which any number of [`crate::Plugin`]s can be created cheaply
/// and concurrently.
///
/// ```
/// use extism::{CompiledPlugin, Plugin, PluginBuilder};
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rust/wasm/echo.wasm");
/// let wasm = std::fs::read(path)?;
/// let compiled = CompiledPlugin::new(PluginBuilder::new(&wasm).with_fuel_limit(10_000_000))?;
/// assert!(compiled.function_exists("echo"));
/// std::thread::scope(|s| {
///     for i in 0..2 {
///         let compiled = &compiled;
///         s.spawn(move || {
///             // Each instance has its own memory, vars and id.
///             let mut plugin = Plugin::new_from_compiled(compiled).unwrap();
///             let out: String = plugin.call("echo", format!("hello {i}")).unwrap();
///             assert_eq!(out, format!("hello {i}"));
///         });
///     }
/// });
/// # Ok::<(), extism::Error>(())
/// ```
#[derive(Clone)]
pub struct CompiledPlugin {
    pub(crate) inner: Arc<Compiled>,
}

impl std::fmt::Debug for CompiledPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = (self.inner.linked.modules.iter())
            .map(|m| m.name.as_str())
            .collect();
        f.debug_struct("CompiledPlugin")
            .field("modules", &names)
            .finish()
    }
}

/// Options collected by `PluginBuilder` (builder.rs).
pub(crate) struct CompileOptions<'a> {
    pub manifest: Manifest,
    /// The main module's bytes when they were given directly, not in `manifest`.
    pub module: Option<std::borrow::Cow<'a, [u8]>>,
    pub functions: Vec<Function>,
    pub wasi: bool,
    pub fuel: Option<u64>,
    pub initialization_fuel: Option<u64>,
    pub progress: Option<DownloadProgress<'a>>,
    pub cache_dir: Option<PathBuf>,
    pub http_response_headers: bool,
    pub engine: EngineKey,
    pub dumps: Dumps,
    /// For `AsyncPlugin` (async_plugin.rs).
    pub asynchronous: bool,
    pub profile: Option<crate::ProfileOptions>,
}

impl CompiledPlugin {
    /// True when the main module exports `name` as a function the host can call:
    /// `() -> ()` or `() -> i32` (`spec/guest-abi.md` §11.1).
    pub fn function_exists(&self, name: &str) -> bool {
        if kernel_link::is_private(name) {
            return false;
        }
        let module = &self.inner.main().module.module;
        match module.get_export(name) {
            Some(ExternType::Func(ty)) => {
                ty.params().len() == 0
                    && match ty.results().len() {
                        0 => true,
                        1 => matches!(ty.results().next(), Some(wasmtime::ValType::I32)),
                        _ => false,
                    }
            }
            _ => false,
        }
    }

    /// True when the kernel is linked into the main module (a plugin of one module): each
    /// instance is then one wasm instance, with the kernel's byte-moving calls inlined
    /// (`src/kernel_link.rs`). Plugins of several modules use a kernel instance of their own.
    pub fn kernel_linked(&self) -> bool {
        self.inner.main().module.kernel.is_some()
    }

    /// True when both were compiled from identical main-module bytes and so share one
    /// compiled module.
    pub fn shares_code_with(&self, other: &CompiledPlugin) -> bool {
        Arc::ptr_eq(&self.inner.main().module, &other.inner.main().module)
    }

    /// The manifest this plugin was compiled from. Module bytes given inline (`data`) are not
    /// kept: such entries read as empty (their name and hash stay).
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }
}

pub(crate) fn compile(opts: CompileOptions<'_>) -> Result<CompiledPlugin> {
    for f in &opts.functions {
        if f.namespace_or_default() == ENV_MODULE
            && KERNEL_FUNCTIONS.contains(&f.name())
            && !KERNEL_BUILTINS.contains(&f.name())
        {
            bail!(
                "host function {ENV_MODULE}::{} would replace a kernel function",
                f.name()
            );
        }
        if f.namespace_or_default() == KERNEL_HOST_MODULE {
            bail!(
                "host function {KERNEL_HOST_MODULE}::{}: the namespace is internal to the runtime",
                f.name()
            );
        }
    }
    // Async plugins and profiled ones keep one engine for life (engine.rs, plugin.rs).
    let runtime = if opts.asynchronous || opts.profile.is_some() {
        Runtime::get(&opts.engine)?
    } else {
        Runtime::pooled(&opts.engine)?
    };
    let resolved = match &opts.module {
        Some(bytes) => vec![ResolvedModule {
            name: "main".to_string(),
            bytes: std::borrow::Cow::Borrowed(bytes),
        }],
        None => opts.manifest.resolve(opts.progress)?,
    };
    for m in &resolved {
        tracing::trace!("module {}: {} bytes", m.name, m.bytes.len());
    }
    let cache_dir = opts.cache_dir.as_deref();
    // Other modules may import kernel functions too, and are set up before main: they share
    // one separate kernel instance. A built-in the kernel runs that a user function replaces
    // must stay an import: a linked module calls the kernel's directly.
    let link_kernel = resolved.len() == 1
        && !KERNEL_BUILTINS
            .iter()
            .any(|name| replaced(&opts.functions, name));
    let (runtime, compiled) = match compile_modules(&runtime, &resolved, cache_dir, link_kernel)? {
        Some(compiled) => (runtime, compiled),
        None => {
            let twin = runtime.on_demand()?;
            let compiled = compile_modules(&twin, &resolved, cache_dir, link_kernel)?
                .ok_or_else(|| anyhow!("the on-demand runtime refused a module"))?;
            (twin, compiled)
        }
    };
    drop(resolved);
    let link_options = LinkOptions {
        functions: &opts.functions,
        wasi: opts.wasi,
        asynchronous: opts.asynchronous,
        profiled: opts.profile.is_some(),
    };
    let linked = link(runtime, &compiled, &link_options)?;
    tracing::debug!(
        modules = linked.modules.len(),
        host_functions = opts.functions.len(),
        wasi = opts.wasi,
        fuel = ?opts.fuel,
        pooled = linked.runtime.is_pooled(),
        "plugin compiled"
    );
    let mut manifest = opts.manifest;
    // The module cache keeps one copy of the bytes per distinct module; a copy in each
    // compiled plugin would be one per plugin made from bytes.
    for wasm in &mut manifest.wasm {
        if let Wasm::Data { data, .. } = wasm {
            *data = Vec::new();
        }
    }
    let permissions = Arc::new(Permissions {
        max_var_bytes: manifest.max_var_bytes(),
        max_http_response_bytes: manifest.max_http_response_bytes(),
        allowed_hosts: manifest.allowed_hosts.clone().unwrap_or_default(),
    });
    Ok(CompiledPlugin {
        inner: Arc::new(Compiled {
            linked: Arc::new(linked),
            fallback: OnceLock::new(),
            fallback_lock: Mutex::new(()),
            functions: opts.functions,
            manifest: Arc::new(manifest),
            permissions,
            wasi: opts.wasi,
            fuel: opts.fuel,
            initialization_fuel: opts.initialization_fuel,
            http_response_headers: opts.http_response_headers,
            dumps: opts.dumps,
            asynchronous: opts.asynchronous,
            profile: opts.profile,
        }),
    })
}

/// A module compiled for a runtime, with its name in the manifest.
type NamedModule = (String, Arc<CachedModule>);

/// The compiled form of every module, for `runtime`; `None` from a pooled runtime when one
/// of them does not fit its pool (that module then compiles, or was compiled before, for
/// the on-demand twin, which takes the whole plugin: a store has one engine).
fn compile_modules(
    runtime: &Arc<Runtime>,
    resolved: &[ResolvedModule<'_>],
    cache_dir: Option<&std::path::Path>,
    link_kernel: bool,
) -> Result<Option<Vec<NamedModule>>> {
    let compile = |runtime: &Runtime, bytes: &[u8]| match cache_dir {
        Some(dir) => crate::disk_cache::compile(runtime, dir, bytes, link_kernel),
        None => runtime.compile(bytes, link_kernel),
    };
    let mut compiled = Vec::with_capacity(resolved.len());
    for m in resolved {
        let module = match runtime.lookup(&m.bytes, link_kernel) {
            Some(found) => found,
            None if runtime.is_pooled() => {
                let twin = runtime.on_demand()?;
                if twin.lookup(&m.bytes, link_kernel).is_some() {
                    return Ok(None);
                }
                match compile(runtime, &m.bytes) {
                    Ok(module) => module,
                    // The twin reports the module's own errors, and takes the module when
                    // only the pool's limits refused it.
                    Err(pooled) => {
                        compile(&twin, &m.bytes)?;
                        tracing::debug!(
                            "module {} does not fit the instance pool: {pooled:#}",
                            m.name
                        );
                        return Ok(None);
                    }
                }
            }
            None => compile(runtime, &m.bytes)?,
        };
        compiled.push((m.name.clone(), module));
    }
    Ok(Some(compiled))
}

/// What a linker holds besides the runtime's host functions.
struct LinkOptions<'a> {
    functions: &'a [Function],
    wasi: bool,
    asynchronous: bool,
    /// A profiled plugin resolves imports per store, where its host functions are wrapped.
    profiled: bool,
}

/// Orders `compiled` for instantiation, resolves every import and builds the linker.
fn link(
    runtime: Arc<Runtime>,
    compiled: &[(String, Arc<CachedModule>)],
    opts: &LinkOptions<'_>,
) -> Result<Linked> {
    let order = link_order(compiled)?;
    let positions: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(pos, &i)| (compiled[i].0.as_str(), pos))
        .collect();

    let mut modules = Vec::with_capacity(order.len());
    for &i in &order {
        let (name, module) = &compiled[i];
        let mut imports = Vec::new();
        for import in module.module.imports() {
            // A linked module's imports of the kernel's are the kernel's own (kernel_link.rs
            // refuses a guest's); no guest may import them.
            if import.module() == KERNEL_HOST_MODULE && module.kernel.is_none() {
                bail!(
                    "Invalid import: `{KERNEL_HOST_MODULE}::{}` is internal to the runtime",
                    import.name()
                );
            }
            let source = if import.module() == ENV_MODULE {
                env_import(&runtime, import.name(), &import.ty(), opts.functions)?
            } else if let Some(&pos) = positions.get(import.module()) {
                ImportSource::Module(pos)
            } else {
                ImportSource::Linker
            };
            imports.push(source);
        }
        modules.push(LinkedModule {
            name: name.clone(),
            module: module.clone(),
            imports,
        });
    }

    let mut linker = Linker::new(&runtime.engine);
    linker.allow_shadowing(true);
    crate::host::add_to_linker(&mut linker, opts.asynchronous)?;
    if opts.wasi && opts.asynchronous {
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, PluginState::wasi)?;
        wasmtime_wasi::p0::add_to_linker_async(&mut linker, PluginState::wasi)?;
    } else if opts.wasi {
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, PluginState::wasi)?;
        wasmtime_wasi::p0::add_to_linker_sync(&mut linker, PluginState::wasi)?;
    }
    for f in opts.functions {
        f.add_to_linker(&mut linker, &runtime.engine, opts.asynchronous)?;
    }
    let main_pre = match modules.last() {
        Some(main) if main.module.kernel.is_some() && !opts.profiled => {
            linker.instantiate_pre(&main.module.module).ok()
        }
        _ => None,
    };
    // The kernel's imports are host functions of this linker.
    let kernel_pre = match modules.last() {
        Some(main) if main.module.kernel.is_none() => Some(
            linker
                .instantiate_pre(&runtime.kernel()?.0)
                .map_err(anyhow::Error::from)?,
        ),
        _ => None,
    };
    Ok(Linked {
        runtime,
        modules,
        linker,
        main_pre,
        kernel_pre,
    })
}

/// Whether a user function replaces the built-in `extism:host/env` function `name`.
fn replaced(functions: &[Function], name: &str) -> bool {
    functions
        .iter()
        .any(|f| f.namespace_or_default() == ENV_MODULE && f.name() == name)
}

/// Checks an `extism:host/env` import (`spec/guest-abi.md` §1).
fn env_import(
    runtime: &Runtime,
    name: &str,
    ty: &ExternType,
    functions: &[Function],
) -> Result<ImportSource> {
    if KERNEL_BUILTINS.contains(&name) && replaced(functions, name) {
        return Ok(ImportSource::Linker);
    }
    if KERNEL_FUNCTIONS.contains(&name) {
        let kernel = &runtime.kernel()?.0;
        let index = kernel
            .get_export_index(name)
            .ok_or_else(|| anyhow!("the kernel does not export `{name}`"))?;
        // Kernel functions have fixed types, so they are checked here once, not per store.
        if let (ExternType::Func(want), Some(ExternType::Func(have))) =
            (ty, kernel.get_export(name))
        {
            if !have.matches(want) {
                bail!(
                    "incompatible import type for `{ENV_MODULE}::{name}`: the module expects {}, \
                     the host provides {}",
                    describe(ty),
                    describe(&ExternType::Func(have))
                );
            }
        }
        return Ok(ImportSource::Kernel(index));
    }
    if HOST_FUNCTIONS.contains(&name) {
        return Ok(ImportSource::Linker);
    }
    if name.starts_with("extism-run:") && crate::kernel::is_export(name) {
        bail!("Invalid import from {ENV_MODULE}: `{name}` is internal to the runtime");
    }
    if crate::kernel::is_export(name) {
        bail!(
            "Invalid import from {ENV_MODULE}: `{name}` is not a function and cannot be imported"
        );
    }
    bail!(
        "Invalid function import from {ENV_MODULE}: {name} {}. The plugin was probably built \
         with a newer PDK than this runtime supports",
        describe(ty)
    )
}

/// Orders modules so every module comes after those it imports from, `main` last. Imports
/// from `main` are refused (upstream would link a second, separate instance of it), and so is
/// any cycle, with the cycle in the message.
fn link_order(modules: &[(String, Arc<CachedModule>)]) -> Result<Vec<usize>> {
    let index: HashMap<&str, usize> = modules
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = modules
        .iter()
        .map(|(name, m)| {
            let mut d: Vec<usize> = Vec::new();
            for import in m.module.imports() {
                if let Some(&j) = index.get(import.module()) {
                    if import.module() == "main" {
                        bail!(
                            "module `{name}` imports `main::{}`: importing from the main module \
                             is not supported",
                            import.name()
                        );
                    }
                    if !d.contains(&j) {
                        d.push(j);
                    }
                }
            }
            Ok(d)
        })
        .collect::<Result<_>>()?;

    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
        modules: &[(String, Arc<CachedModule>)],
    ) -> Result<()> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let start = stack.iter().position(|&s| s == i).unwrap_or(0);
                let mut cycle: Vec<&str> = stack[start..]
                    .iter()
                    .map(|&s| modules[s].0.as_str())
                    .collect();
                cycle.push(modules[i].0.as_str());
                bail!(
                    "modules import each other in a cycle: {}",
                    cycle.join(" -> ")
                );
            }
            Mark::New => {}
        }
        marks[i] = Mark::Active;
        stack.push(i);
        for &d in &deps[i] {
            visit(d, deps, marks, stack, order, modules)?;
        }
        stack.pop();
        marks[i] = Mark::Done;
        order.push(i);
        Ok(())
    }

    let main = *index
        .get("main")
        .ok_or_else(|| anyhow!("no module is named main"))?;
    let mut marks = vec![Mark::New; modules.len()];
    let mut order = Vec::with_capacity(modules.len());
    let mut stack = Vec::new();
    for i in (0..modules.len()).filter(|&i| i != main) {
        visit(i, &deps, &mut marks, &mut stack, &mut order, modules)?;
    }
    visit(main, &deps, &mut marks, &mut stack, &mut order, modules)?;
    Ok(order)
}
