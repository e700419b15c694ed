//! `PluginBuilder`: collects what a plugin is made of, then compiles or instantiates it.
//!
//! Owns the choice between raw bytes and a manifest ([`WasmInput`]) and the builder options.
//! The work itself is in `compiled.rs` and `plugin.rs`. `Plugin::new` and `CompiledPlugin::new`
//! (upstream's shortcuts) are defined here, as they go through a builder.

use std::{borrow::Cow, path::PathBuf};

use anyhow::Result;

use crate::{
    compiled::{self, CompileOptions, CompiledPlugin},
    current_plugin::CurrentPlugin,
    debug::{DebugOptions, Dumps},
    disk_cache::CacheSetting,
    engine::{CustomConfig, EngineKey, Profiler},
    function::{Function, UserData, Val, ValType},
    manifest::{DownloadProgress, Manifest, ManifestExt, Wasm},
    plugin::Plugin,
};

/// What a plugin is made from: wasm/wat bytes or manifest text, or a manifest (owned or
/// borrowed).
#[derive(Debug, Clone)]
pub enum WasmInput<'a> {
    /// A wasm module, WAT text, or a manifest as JSON or TOML text.
    Data(Cow<'a, [u8]>),
    /// A manifest, taken over.
    Manifest(Manifest),
    /// A manifest, cloned when the plugin is compiled.
    ManifestRef(&'a Manifest),
}

impl<'a> From<&'a [u8]> for WasmInput<'a> {
    fn from(b: &'a [u8]) -> Self {
        WasmInput::Data(Cow::Borrowed(b))
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for WasmInput<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        WasmInput::Data(Cow::Borrowed(b))
    }
}

impl<'a> From<&'a Vec<u8>> for WasmInput<'a> {
    fn from(b: &'a Vec<u8>) -> Self {
        WasmInput::Data(Cow::Borrowed(b))
    }
}

impl From<Vec<u8>> for WasmInput<'_> {
    fn from(b: Vec<u8>) -> Self {
        WasmInput::Data(Cow::Owned(b))
    }
}

impl<'a> From<&'a str> for WasmInput<'a> {
    fn from(s: &'a str) -> Self {
        WasmInput::Data(Cow::Borrowed(s.as_bytes()))
    }
}

impl From<Manifest> for WasmInput<'_> {
    fn from(m: Manifest) -> Self {
        WasmInput::Manifest(m)
    }
}

impl<'a> From<&'a Manifest> for WasmInput<'a> {
    fn from(m: &'a Manifest) -> Self {
        WasmInput::ManifestRef(m)
    }
}

impl<'a> From<&'a mut Manifest> for WasmInput<'a> {
    fn from(m: &'a mut Manifest) -> Self {
        WasmInput::ManifestRef(m)
    }
}

impl From<Wasm> for WasmInput<'_> {
    fn from(w: Wasm) -> Self {
        WasmInput::Manifest(Manifest::new([w]))
    }
}

impl WasmInput<'_> {
    /// The manifest this input describes: bytes that are not manifest text become a
    /// manifest of that one module.
    pub fn into_manifest(self) -> Result<Manifest> {
        match self {
            WasmInput::Data(bytes) => Manifest::from_bytes(&bytes),
            WasmInput::Manifest(m) => Ok(m),
            WasmInput::ManifestRef(m) => Ok(m.clone()),
        }
    }
}

/// Builds a [`Plugin`] or a [`CompiledPlugin`].
///
/// ```
/// use extism::{Manifest, PluginBuilder, UserData, Wasm, PTR};
/// extism::host_fn!(reflect(bytes: Vec<u8>) -> Vec<u8> {
///     Ok(bytes.into_iter().rev().collect::<Vec<u8>>())
/// });
/// extism::host_fn!(context() -> String { Ok("none".to_string()) });
///
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rust/wasm/host_fns.wasm");
/// let manifest = Manifest::new([Wasm::file(path)]);
/// let builder = PluginBuilder::new(&manifest)
///     .with_wasi(false)
///     .with_function("host_reflect", [PTR], [PTR], UserData::new(()), reflect)
///     .with_function("host_context", [], [PTR], UserData::new(()), context)
///     .with_fuel_limit(10_000_000)
///     .with_initialization_fuel_limit(100_000_000)
///     .with_cache_disabled();
/// // The builder is `Clone`: one description, several plugins.
/// let mut plugin = builder.clone().build()?;
/// assert_eq!(plugin.call::<&str, &str>("roundtrip", "abc")?, "cba");
/// assert!(plugin.fuel_consumed().unwrap() > 0);
///
/// // Without a call limit, an initialisation limit is refused.
/// assert!(PluginBuilder::new(&manifest).with_initialization_fuel_limit(1).build().is_err());
/// # let _ = builder;
/// # Ok::<(), extism::Error>(())
/// ```
#[derive(Clone)]
pub struct PluginBuilder<'a> {
    source: WasmInput<'a>,
    wasi: bool,
    functions: Vec<Function>,
    fuel: Option<u64>,
    initialization_fuel: Option<u64>,
    progress: Option<DownloadProgress<'a>>,
    cache: CacheSetting,
    debug: DebugOptions,
    engine: EngineKey,
    http_response_headers: bool,
    profile: Option<crate::ProfileOptions>,
}

impl<'a> PluginBuilder<'a> {
    /// Starts from wasm or WAT bytes, manifest text, or a [`Manifest`] (see [`WasmInput`]);
    /// every option off.
    pub fn new(source: impl Into<WasmInput<'a>>) -> Self {
        PluginBuilder {
            source: source.into(),
            wasi: false,
            functions: Vec::new(),
            fuel: None,
            initialization_fuel: None,
            progress: None,
            cache: CacheSetting::from_env(),
            debug: DebugOptions::default(),
            http_response_headers: false,
            profile: None,
            engine: EngineKey::default(),
        }
    }

    /// Enables WASI preview 1 (off by default).
    pub fn with_wasi(mut self, wasi: bool) -> Self {
        self.wasi = wasi;
        self
    }

    /// Adds a host function in `extism:host/user` (the arguments of [`Function::new`]).
    ///
    /// ```
    /// use extism::{PluginBuilder, UserData, PTR};
    /// extism::host_fn!(echo(text: String) -> String { Ok(text) });
    /// let builder = PluginBuilder::new(&b"(module)"[..])
    ///     .with_function("echo", [PTR], [PTR], UserData::new(()), echo)
    ///     .with_function_in_namespace("env", "echo", [PTR], [PTR], UserData::new(()), echo);
    /// let _plugin = builder.build()?;
    /// # Ok::<(), extism::Error>(())
    /// ```
    pub fn with_function<T, F>(
        mut self,
        name: impl Into<String>,
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
        user_data: UserData<T>,
        f: F,
    ) -> Self
    where
        F: Fn(&mut CurrentPlugin, &[Val], &mut [Val], UserData<T>) -> Result<()>
            + Send
            + Sync
            + 'static,
        T: Send + 'static,
    {
        self.functions
            .push(Function::new(name, params, results, user_data, f));
        self
    }

    /// Adds a host function in the import module `namespace`.
    pub fn with_function_in_namespace<T, F>(
        mut self,
        namespace: impl Into<String>,
        name: impl Into<String>,
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
        user_data: UserData<T>,
        f: F,
    ) -> Self
    where
        F: Fn(&mut CurrentPlugin, &[Val], &mut [Val], UserData<T>) -> Result<()>
            + Send
            + Sync
            + 'static,
        T: Send + 'static,
    {
        self.functions
            .push(Function::new(name, params, results, user_data, f).with_namespace(namespace));
        self
    }

    /// Lets the guest read HTTP response headers (`http_headers`); off by default.
    pub fn with_http_response_headers(mut self, allow: bool) -> Self {
        self.http_response_headers = allow;
        self
    }

    /// Adds host functions made with [`Function::new`].
    pub fn with_functions(mut self, f: impl IntoIterator<Item = Function>) -> Self {
        self.functions.extend(f);
        self
    }

    /// Limits every call to `fuel` units of wasm execution. Unless
    /// [`Self::with_initialization_fuel_limit`] sets another budget, the plugin's
    /// initialisation gets the same amount, apart from the call's.
    pub fn with_fuel_limit(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// Gives the plugin's initialisation `fuel` units of wasm execution instead of the call
    /// limit: instantiating its modules, their start functions and the language runtime's
    /// initialisers (`_initialize`, `__wasm_call_ctors`, `hs_init`), which run at creation
    /// (support modules) and before the first call (the main module). The call's own budget
    /// is refilled after initialisation, so initialisation never reduces it. Running out
    /// fails the call that initialises (upstream's `build` fails instead for a reactor's
    /// `_initialize`, which it runs at creation). Needs [`Self::with_fuel_limit`]: without
    /// one, [`Self::compile`]/[`Self::build`] fail.
    pub fn with_initialization_fuel_limit(mut self, fuel: u64) -> Self {
        self.initialization_fuel = Some(fuel);
        self
    }

    /// Reports download progress of URL sources as (bytes so far, total if known).
    pub fn with_download_progress(mut self, progress: DownloadProgress<'a>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Keeps compiled modules in `dir` across processes (see `disk_cache.rs`), or not at all
    /// with `None`. The directory is created when first needed. By default the cache is off
    /// unless `EXTISM_CACHE_CONFIG` names a cache configuration ([`Self::with_cache_config`]).
    pub fn with_cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache = match dir {
            Some(dir) => CacheSetting::Dir(dir),
            None => CacheSetting::Off,
        };
        self
    }

    /// Takes the compiled-module cache from a wasmtime cache configuration file (upstream's
    /// `with_cache_config`; `EXTISM_CACHE_CONFIG` names one for every builder). Its `[cache]`
    /// table's `directory` (absolute; default: the user's cache directory + `extism-run`)
    /// holds this runtime's own cache files (`disk_cache.rs`); `enabled = false` turns the
    /// cache off; wasmtime's other settings (sizes, cleanup, compression) are accepted and
    /// not used. The file is read by [`Self::compile`]/[`Self::build`], which fail with an
    /// error naming it when it cannot be read or has an unknown key.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let config = dir.path().join("cache.toml");
    /// let cache = dir.path().join("modules");
    /// std::fs::write(&config, format!("[cache]\ndirectory = {:?}\n", cache))?;
    /// let wat = r#"(module (func (export "run")))"#;
    /// extism::PluginBuilder::new(wat).with_cache_config(&config).build()?;
    /// assert_eq!(std::fs::read_dir(&cache)?.count(), 1);
    /// # Ok::<(), extism::Error>(())
    /// ```
    pub fn with_cache_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache = CacheSetting::Config(path.into());
        self
    }

    /// No compiled-module cache on disk, whatever `EXTISM_CACHE_CONFIG` says.
    pub fn with_cache_disabled(mut self) -> Self {
        self.cache = CacheSetting::Off;
        self
    }

    /// Reports compiled code to a profiler (default: `EXTISM_PROFILE`, see
    /// [`DebugOptions::profiling_strategy`]).
    ///
    /// ```
    /// let builder = extism::PluginBuilder::new(&b"(module)"[..])
    ///     .with_profiling_strategy(wasmtime::ProfilingStrategy::PerfMap);
    /// # let _ = builder;
    /// ```
    pub fn with_profiling_strategy(mut self, strategy: wasmtime::ProfilingStrategy) -> Self {
        self.debug.profiling_strategy = strategy;
        self
    }

    /// Compiles with DWARF debug info (default: set when `EXTISM_DEBUG` is).
    pub fn with_debug_info(mut self) -> Self {
        self.debug.debug_info = true;
        self
    }

    /// Writes a wasm core dump to `path` when a call traps (default: `EXTISM_COREDUMP`).
    pub fn with_coredump(mut self, path: impl Into<PathBuf>) -> Self {
        self.debug.coredump = Some(path.into());
        self
    }

    /// Writes the plugin's Extism memory to `path` when a call fails (default:
    /// `EXTISM_MEMDUMP`).
    pub fn with_memdump(mut self, path: impl Into<PathBuf>) -> Self {
        self.debug.memdump = Some(path.into());
        self
    }

    /// Replaces every debugging option at once (see [`DebugOptions`]).
    pub fn with_debug_options(mut self, options: DebugOptions) -> Self {
        self.debug = options;
        self
    }

    /// Starts from the host's own wasmtime configuration. Settings the runtime depends on
    /// are overridden: epoch interruption, fuel, multi-memory, backtrace frames, tail calls,
    /// function references, GC, debug info, coredump on trap and the profiler. Plugins built
    /// with the same `config` value (clones of this builder) share one engine; each other
    /// call gives plugins an engine of their own, freed with the last of them.
    ///
    /// ```
    /// let mut config = wasmtime::Config::new();
    /// config.cranelift_opt_level(wasmtime::OptLevel::None);
    /// let mut plugin = extism::PluginBuilder::new(&br#"(module (func (export "run")))"#[..])
    ///     .with_wasmtime_config(config)
    ///     .build()?;
    /// assert!(plugin.function_exists("run"));
    /// # Ok::<(), extism::Error>(())
    /// ```
    pub fn with_wasmtime_config(mut self, config: wasmtime::Config) -> Self {
        self.engine.custom = Some(CustomConfig::new(config));
        self
    }

    /// Records a sampling profile of every call (see [`crate::Profile`]): each plugin
    /// instance collects samples until [`Plugin::take_profile`] hands them out. Profiled
    /// plugins use an engine of their own, which captures whole stacks, and their host
    /// functions are wrapped to be timed; plugins built without this pay nothing.
    ///
    /// ```
    /// use extism::{PluginBuilder, ProfileOptions};
    /// let mut plugin = PluginBuilder::new(&br#"(module (func (export "run")))"#[..])
    ///     .with_profiler(ProfileOptions::default().with_interval(std::time::Duration::from_micros(500)))
    ///     .build()?;
    /// plugin.call::<&str, &[u8]>("run", "")?;
    /// let flame_graph = plugin.take_profile()?.collapsed();
    /// # let _ = flame_graph;
    /// # Ok::<(), extism::Error>(())
    /// ```
    pub fn with_profiler(mut self, options: crate::ProfileOptions) -> Self {
        self.profile = Some(options);
        self
    }

    pub(crate) fn into_options(self) -> Result<CompileOptions<'a>> {
        if self.initialization_fuel.is_some() && self.fuel.is_none() {
            anyhow::bail!(
                "an initialization fuel limit needs a call fuel limit (PluginBuilder::with_fuel_limit)"
            );
        }
        // A module given as bytes is compiled from the caller's bytes, never copied: the
        // manifest holds an empty entry in its place (compiled.rs empties it anyway).
        let (manifest, module) = match self.source {
            WasmInput::Data(bytes) if crate::manifest::is_module(&bytes) => {
                tracing::trace!("loading {} bytes as a wasm module", bytes.len());
                (Manifest::new([Wasm::data(Vec::new())]), Some(bytes))
            }
            source => (source.into_manifest()?, None),
        };
        Ok(CompileOptions {
            manifest,
            module,
            functions: self.functions,
            wasi: self.wasi,
            fuel: self.fuel,
            initialization_fuel: self.initialization_fuel.or(self.fuel),
            progress: self.progress,
            cache_dir: self.cache.dir()?,
            http_response_headers: self.http_response_headers,
            asynchronous: false,
            engine: EngineKey {
                fuel: self.fuel.is_some(),
                profiler: Profiler(self.debug.profiling_strategy),
                debug_info: self.debug.debug_info,
                coredump: self.debug.coredump.is_some(),
                sampling: self.profile.is_some(),
                ..self.engine
            },
            dumps: Dumps::from(&self.debug),
            profile: self.profile,
        })
    }

    /// Resolves the sources and compiles the plugin, for creating many instances
    /// ([`Plugin::new_from_compiled`]).
    pub fn compile(self) -> Result<CompiledPlugin> {
        compiled::compile(self.into_options()?)
    }

    /// Compiles the plugin and creates one instance of it.
    pub fn build(self) -> Result<Plugin> {
        Plugin::new_from_compiled(&self.compile()?)
    }
}

impl CompiledPlugin {
    /// Compiles the plugin a builder describes.
    pub fn new(builder: PluginBuilder<'_>) -> Result<CompiledPlugin> {
        compiled::compile(builder.into_options()?)
    }
}

impl Plugin {
    /// Creates a plugin from wasm bytes, text or a manifest, with host functions and WASI on
    /// or off (examples: [`Plugin`], [`crate::manifest`]).
    pub fn new<'a>(
        wasm: impl Into<WasmInput<'a>>,
        functions: impl IntoIterator<Item = Function>,
        with_wasi: bool,
    ) -> Result<Plugin> {
        PluginBuilder::new(wasm)
            .with_functions(functions)
            .with_wasi(with_wasi)
            .build()
    }
}
