//! A plugin instance: one store, its kernel and module instances, and the call lifecycle.
//!
//! A plugin whose main module has the kernel linked into it (kernel_link.rs) has no kernel
//! until that module is instantiated on the first call; before that there is nothing to
//! reset and no output.
//!
//! Owns the steps of a call (`spec/guest-abi.md` §12): fill the initialisation fuel, rebuild
//! after `_start`, instantiate and initialise the main module on first use, refill the call's
//! fuel, attach the host context, reset the kernel and write the input, invoke the export under
//! the plugin's deadline and cancel flag, then classify the outcome into a return code and
//! error (§11.3). Every failure path leaves the plugin usable for the next call.
//!
//! A plugin whose runtime pools instances (engine.rs) moves to the compiled plugin's
//! on-demand fallback when the pool is full as it instantiates, before any guest state
//! exists, and stays there: the number of live plugins is not bounded by the pool.

use std::{any::Any, collections::HashMap, sync::Arc, time::Instant};

use anyhow::{anyhow, Result};
use wasmtime::{Extern, Instance, Store, TypedFunc};

use crate::{
    cancel::{CancelHandle, InterruptState, Interrupted},
    compiled::{Compiled, CompiledPlugin, ImportSource, Linked},
    convert::{FromBytes, ToBytes},
    epoch, fiber,
    kernel::Kernel,
    limits::{MemoryBudget, OutOfMemory},
    manifest::ManifestExt,
    plugin_state::PluginState,
    timer::Deadline,
};

/// The message a guest set with `error_set`, byte for byte (`Display` shows it as UTF-8 with
/// invalid sequences replaced; the C API hands out the exact bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestError {
    bytes: Vec<u8>,
}

impl GuestError {
    /// The exact bytes the guest set.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Display for GuestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.bytes))
    }
}

impl std::error::Error for GuestError {}

/// A callable export of the main module. Calls share it through an `Arc`: cloning a typed
/// function counts its type's references engine-wide, which calls of other plugins of the
/// same module contend on.
pub(crate) struct Export {
    plain: Plain,
    /// The linked module's entry for it (`kernel_link::CALL`): the kernel's `begin`, the
    /// export and the output and error slots in one entry into wasm, for calls whose input
    /// the host placed first ([`Kernel::place_input`]).
    entry: Option<CallEntry>,
}

/// `(input length, call number) -> (input handle, result, output offset, output length,
/// error)`.
type CallEntry = TypedFunc<(u64, u64), (u64, i32, u64, u64, u64)>;

enum Plain {
    Unit(TypedFunc<(), ()>),
    Code(TypedFunc<(), i32>),
}

/// Where the kernel's `end` (output offset and length, error handle) stands after the export
/// ran.
pub(crate) enum Slots {
    /// The call entry read them.
    Read(u64, u64, u64),
    /// The host reads them.
    Unread,
    /// The call entry of call number `call` failed, perhaps before its `begin` completed (a
    /// cancel at its first epoch check): the host checks before it reads them, so that an
    /// earlier call's output is not taken for this one's, and takes back the input bytes it
    /// placed if so.
    EntryFailed { call: u64 },
}

/// An export ready to run as call number `call`: its input is written, and placed for its
/// call entry when `placed` holds the input's length.
pub(crate) struct Prepared {
    export: Arc<Export>,
    placed: Option<u64>,
    call: u64,
}

impl Prepared {
    /// Runs the export: the result, and the output and error slots when the call entry read
    /// them already.
    pub(crate) fn run(&self, store: &mut Store<PluginState>) -> (wasmtime::Result<i32>, Slots) {
        match (self.placed, &self.export.entry) {
            (Some(n), Some(entry)) => self.entered(n, entry.call(store, (n, self.call))),
            _ => (self.export.plain.call(store), Slots::Unread),
        }
    }

    /// As [`Prepared::run`], for async plugins.
    pub(crate) async fn run_async(
        &self,
        store: &mut Store<PluginState>,
    ) -> (wasmtime::Result<i32>, Slots) {
        match (self.placed, &self.export.entry) {
            (Some(n), Some(entry)) => {
                self.entered(n, entry.call_async(store, (n, self.call)).await)
            }
            _ => (self.export.plain.call_async(store).await, Slots::Unread),
        }
    }

    /// The outcome of a call entry given `n` input bytes. Its `begin` found the input where
    /// the host wrote it: the first block after the reset, which fits (checked before).
    fn entered(
        &self,
        n: u64,
        result: wasmtime::Result<(u64, i32, u64, u64, u64)>,
    ) -> (wasmtime::Result<i32>, Slots) {
        let expected = if n == 0 { 0 } else { crate::kernel::DATA_START };
        match result {
            Ok((input, rc, offset, len, error)) if input == expected => {
                (Ok(rc), Slots::Read(offset, len, error))
            }
            Ok((input, ..)) => (
                Err(wasmtime::Error::msg(format!(
                    "internal error: the kernel put the call's input at {input}, not at {expected}"
                ))),
                Slots::Unread,
            ),
            Err(e) => (Err(e), Slots::EntryFailed { call: self.call }),
        }
    }
}

impl Plain {
    fn call(&self, store: &mut Store<PluginState>) -> wasmtime::Result<i32> {
        match self {
            Plain::Unit(f) => f.call(store, ()).map(|()| 0),
            Plain::Code(f) => f.call(store, ()),
        }
    }

    async fn call_async(&self, store: &mut Store<PluginState>) -> wasmtime::Result<i32> {
        match self {
            Plain::Unit(f) => f.call_async(store, ()).await.map(|()| 0),
            Plain::Code(f) => f.call_async(store, ()).await,
        }
    }
}

/// A loaded plugin, ready to call.
///
/// Calls take any input that implements [`ToBytes`] and convert the output with
/// [`FromBytes`] (borrowed `&str`/`&[u8]` outputs are valid until the next call):
///
/// ```
/// use extism::{convert::Json, Plugin};
/// #[derive(serde::Deserialize)]
/// struct Report { count: u64, total: u64 }
///
/// let wasm = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rust/wasm/count_vowels.wasm"))?;
/// let mut plugin = Plugin::new(&wasm, [], false)?;
/// assert!(plugin.function_exists("count_vowels"));
///
/// let Json(report) = plugin.call::<&str, Json<Report>>("count_vowels", "aaa")?;
/// assert_eq!((report.count, report.total), (3, 3));
/// // Vars persist between calls of one plugin; config can be changed between calls.
/// plugin.config_mut().insert("vowels".into(), "b".into());
/// let Json(report) = plugin.call::<&str, Json<Report>>("count_vowels", "abba")?;
/// assert_eq!((report.count, report.total), (2, 5));
/// assert!(plugin.vars().contains_key("total"));
///
/// // Errors name what went wrong; the return code comes with `call_get_error_code`.
/// let err = plugin.call::<&str, &str>("no_such_export", "").unwrap_err();
/// assert!(err.to_string().contains("no_such_export"));
/// let (_, rc) = plugin.call_get_error_code::<&str, &str>("no_such_export", "").unwrap_err();
/// assert_eq!(rc, -1);
/// # Ok::<(), extism::Error>(())
/// ```
pub struct Plugin {
    /// The plugin's id (a random UUID v4, fixed for its life), as upstream's public field.
    pub id: uuid::Uuid,
    compiled: Arc<Compiled>,
    /// The engine and modules of `store`: `compiled.linked`, or its fallback.
    linked: Arc<Linked>,
    store: Store<PluginState>,
    /// `None` until the main module is instantiated when the kernel is linked into it.
    kernel: Option<Kernel>,
    /// Instances of the non-main modules, by position in `compiled.modules`.
    instances: Vec<Option<Instance>>,
    /// The main module's imports, resolved and type-checked when the store is set up.
    main_imports: Vec<Extern>,
    /// The main module's instance, created on the first call.
    main: Option<Instance>,
    exports: HashMap<String, Arc<Export>, foldhash::fast::RandomState>,
    /// Set after a call of `_start`: the next call starts from a fresh store.
    rebuild: bool,
    output: (u64, u64),
    /// Numbers the calls for the kernel, which records the last one whose `begin` completed.
    calls: u64,
    /// How many input bytes [`Kernel::place_input`] wrote for a call that has not concluded
    /// yet: taken back when its `begin` did not complete ([`Plugin::conclude`]), or at the
    /// next call when it never concluded (an async call's future dropped).
    placed: u64,
    /// What the latest call's export used of the fuel limit.
    fuel_consumed: Option<u64>,
    cancel: CancelHandle,
    /// Last: dropped after the store (heap_trim.rs).
    _live: crate::heap_trim::Live,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("id", &self.id()).finish()
    }
}

/// State carried over when the store is rebuilt after `_start`.
struct Carried {
    id: uuid::Uuid,
    config: std::collections::BTreeMap<String, String>,
    headers_enabled: bool,
    profile: Option<Box<crate::profile::Recorder>>,
}

impl Plugin {
    /// Creates a new instance of a compiled plugin: fresh id, kernel, vars, WASI context and a
    /// copy of the manifest's config.
    pub fn new_from_compiled(compiled: &CompiledPlugin) -> Result<Plugin> {
        if compiled.inner.asynchronous {
            anyhow::bail!(
                "this plugin was compiled for async use: create an AsyncPlugin from it instead"
            );
        }
        Plugin::instance_of(compiled)
    }

    /// A new instance, sync or async as `compiled` was compiled (async_plugin.rs wraps the
    /// async ones).
    pub(crate) fn instance_of(compiled: &CompiledPlugin) -> Result<Plugin> {
        let compiled = compiled.inner.clone();
        let mut linked = compiled.linked.clone();
        let interrupt = InterruptState::new(linked.runtime.engine.clone());
        let id = uuid::Uuid::new_v4();
        let carried = |linked: &Linked| -> Result<Carried> {
            Ok(Carried {
                id,
                config: compiled.manifest.config.clone(),
                headers_enabled: compiled.http_response_headers,
                profile: recorder(&compiled, linked)?,
            })
        };
        let setup = match setup(&compiled, &linked, carried(&linked)?, interrupt.clone()) {
            Err(e) if pool_full(&e) => {
                tracing::debug!(plugin = %id, "the instance pool is full: allocating on demand");
                linked = compiled.fallback()?;
                interrupt.set_engine(linked.runtime.engine.clone());
                setup(&compiled, &linked, carried(&linked)?, interrupt.clone())?
            }
            setup => setup?,
        };
        let Setup {
            store,
            kernel,
            instances,
            main_imports,
        } = setup;
        tracing::trace!(plugin = %store.data().id, "plugin instance created");
        Ok(Plugin {
            id,
            compiled,
            linked,
            store,
            kernel,
            instances,
            main_imports,
            main: None,
            exports: HashMap::default(),
            rebuild: false,
            output: (0, 0),
            calls: 0,
            placed: 0,
            fuel_consumed: None,
            cancel: CancelHandle {
                state: interrupt,
                id,
            },
            _live: crate::heap_trim::Live::new(),
        })
    }

    /// The plugin's id (a random UUID v4, fixed for its life).
    pub fn id(&self) -> uuid::Uuid {
        self.store.data().id
    }

    /// True when the plugin was created with WASI.
    pub fn has_wasi(&self) -> bool {
        self.compiled.wasi
    }

    /// Fuel the latest call's export used (`None` without a fuel limit or before a call).
    pub fn fuel_consumed(&self) -> Option<u64> {
        self.fuel_consumed
    }

    /// The profile recorded since the plugin was created or since the previous call of this
    /// method, for plugins built with [`crate::PluginBuilder::with_profiler`]; recording
    /// goes on. A call that failed (a timeout, say) is in it up to where it stopped.
    pub fn take_profile(&mut self) -> Result<crate::Profile> {
        match self.store.data_mut().profile.as_mut() {
            Some(recorder) => Ok(recorder.take()),
            None => Err(anyhow!(
                "the plugin records no profile: build it with PluginBuilder::with_profiler"
            )),
        }
    }

    /// A handle that cancels this plugin's running call from any thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// True when the main module exports `name` as `() -> ()` or `() -> i32`.
    pub fn function_exists(&self, name: impl AsRef<str>) -> bool {
        CompiledPlugin {
            inner: self.compiled.clone(),
        }
        .function_exists(name.as_ref())
    }

    /// The configuration the guest reads with `config_get`.
    pub fn config(&self) -> &std::collections::BTreeMap<String, String> {
        &self.store.data().config
    }

    /// Changes the configuration for later calls (kept across resets and `_start` rebuilds).
    pub fn config_mut(&mut self) -> &mut std::collections::BTreeMap<String, String> {
        &mut self.store.data_mut().config
    }

    /// The plugin's vars (what the guest stores with `var_set`).
    pub fn vars(&self) -> &std::collections::BTreeMap<String, Vec<u8>> {
        &self.store.data().vars
    }

    /// Replaces or edits the vars, for example to restore them from an earlier run.
    pub fn vars_mut(&mut self) -> &mut std::collections::BTreeMap<String, Vec<u8>> {
        &mut self.store.data_mut().vars
    }

    /// Makes `http_headers` return the latest response's headers (off by default).
    pub fn allow_http_response_headers(&mut self) {
        self.store.data_mut().http.headers_enabled = true;
    }

    /// Calls `name` with `input` and converts the output. A non-zero return code without an
    /// error message is reported as `Returned non-zero exit code: N`. Example: [`Plugin`].
    pub fn call<'a, 'b, T: ToBytes<'a>, U: FromBytes<'b>>(
        &'b mut self,
        name: impl AsRef<str>,
        input: T,
    ) -> Result<U> {
        let input = input.to_bytes()?;
        match self.raw_call(name.as_ref(), input.as_ref(), None) {
            Ok(0) => U::from_bytes(self.output()),
            Ok(rc) => Err(anyhow!("Returned non-zero exit code: {rc}")),
            Err((e, _)) => Err(e),
        }
    }

    /// Like [`Plugin::call`], but the error comes with the call's return code. As upstream, a
    /// non-zero return code without an error message is not an error: the output is
    /// returned.
    pub fn call_get_error_code<'a, 'b, T: ToBytes<'a>, U: FromBytes<'b>>(
        &'b mut self,
        name: impl AsRef<str>,
        input: T,
    ) -> Result<U, (anyhow::Error, i32)> {
        let input = input.to_bytes().map_err(|e| (e, -1))?;
        let rc = self.raw_call(name.as_ref(), input.as_ref(), None);
        self.finish(rc)
    }

    /// Like [`Plugin::call`], with a value that host functions of this call can read through
    /// [`crate::CurrentPlugin::host_context`]. The guest never sees it. As upstream, a
    /// non-zero return code without an error message returns the output.
    pub fn call_with_host_context<'a, 'b, T: ToBytes<'a>, U: FromBytes<'b>, C: Any + Send>(
        &'b mut self,
        name: impl AsRef<str>,
        input: T,
        host_context: C,
    ) -> Result<U> {
        let input = input.to_bytes()?;
        let rc = self.raw_call(name.as_ref(), input.as_ref(), Some(Box::new(host_context)));
        self.finish(rc).map_err(|(e, _)| e)
    }

    pub(crate) fn finish<'b, U: FromBytes<'b>>(
        &'b mut self,
        rc: Result<i32, (anyhow::Error, i32)>,
    ) -> Result<U, (anyhow::Error, i32)> {
        match rc {
            Ok(_) => U::from_bytes(self.output()).map_err(|e| (e, -1)),
            Err(e) => Err(e),
        }
    }

    /// The output of the latest call: valid until the next call or reset. After a failed call
    /// it holds whatever the guest declared before failing.
    pub fn output(&self) -> &[u8] {
        let (offset, len) = self.output;
        self.kernel
            .as_ref()
            .and_then(|k| k.slice(&self.store, offset, len).ok())
            .unwrap_or_default()
    }

    /// Address of the output bytes (the C API hands this out); never null.
    pub fn output_ptr(&self) -> *const u8 {
        let Some(kernel) = &self.kernel else {
            return std::ptr::NonNull::dangling().as_ptr();
        };
        let base = kernel.memory.data_ptr(&self.store);
        let (offset, len) = self.output;
        let in_bounds = offset
            .checked_add(len)
            .is_some_and(|end| end as usize <= kernel.memory.data_size(&self.store));
        if in_bounds {
            base.wrapping_add(offset as usize)
        } else {
            base
        }
    }

    /// Releases every kernel block and forgets input, output and error. Vars, config and the
    /// module instances are kept.
    pub fn reset(&mut self) -> Result<()> {
        self.output = (0, 0);
        self.refuel_for_host()?;
        match &self.kernel {
            Some(kernel) => kernel.reset(&mut self.store),
            None => Ok(()),
        }
    }

    /// Runs one call and returns the return code, or the error with its return code
    /// (`spec/guest-abi.md` §11.3). `host_context` is visible to host functions only.
    pub fn raw_call(
        &mut self,
        name: &str,
        input: &[u8],
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<i32, (anyhow::Error, i32)> {
        let started = self.begin_call(name, input);
        let result = self.run(name, input, host_context);
        self.end_call(name, &result, started);
        result
    }

    /// The first step of every call (sync or async): returns when the call started if the
    /// call is recorded.
    pub(crate) fn begin_call(&mut self, name: &str, input: &[u8]) -> Option<Instant> {
        // The clock is read only when someone records the call (no cost otherwise).
        let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
        tracing::debug!(plugin = %self.id(), input_bytes = input.len(), "call to {name} started");
        self.output = (0, 0);
        if let Some(recorder) = self.store.data_mut().profile.as_mut() {
            recorder.begin();
        }
        started
    }

    /// The last step of every call: forgets the call's host context and deadline, and
    /// records the outcome.
    pub(crate) fn end_call(
        &mut self,
        name: &str,
        result: &Result<i32, (anyhow::Error, i32)>,
        started: Option<Instant>,
    ) {
        if let Some(recorder) = self.store.data_mut().profile.as_mut() {
            recorder.end();
        }
        if result.is_err() {
            let memory = self.kernel.as_ref().map(|k| k.memory);
            let id = self.id();
            self.compiled.dumps.failed(&mut self.store, memory, id);
        }
        self.store.data_mut().host_context = None;
        self.store.data_mut().deadline = None;
        self.cancel.state.end();
        if name == "_start" {
            self.rebuild = true;
        }
        self.log_outcome(name, result, started);
    }

    /// The call's outcome on `tracing`: finished at debug, failures at error with upstream's
    /// wording (`call to NAME returned with error message: ...` for the guest's `error_set`,
    /// `call to NAME encountered an error: ...` for everything else).
    fn log_outcome(
        &self,
        name: &str,
        result: &Result<i32, (anyhow::Error, i32)>,
        started: Option<Instant>,
    ) {
        let elapsed = started.map(|s| s.elapsed());
        match result {
            Ok(0) => tracing::debug!(
                plugin = %self.id(), rc = 0, elapsed = ?elapsed.unwrap_or_default(),
                "call to {name} finished"
            ),
            Ok(rc) => tracing::error!(
                plugin = %self.id(), rc, elapsed = ?elapsed.unwrap_or_default(),
                "call to {name} returned non-zero exit code: {rc}"
            ),
            Err((e, rc)) => match e.downcast_ref::<GuestError>() {
                Some(message) => tracing::error!(
                    plugin = %self.id(), rc, elapsed = ?elapsed.unwrap_or_default(),
                    "call to {name} returned with error message: {message}"
                ),
                None => tracing::error!(
                    plugin = %self.id(), rc, elapsed = ?elapsed.unwrap_or_default(),
                    "call to {name} encountered an error: {e:#}"
                ),
            },
        }
    }

    fn run(
        &mut self,
        name: &str,
        input: &[u8],
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<i32, (anyhow::Error, i32)> {
        let prepared = self.prepare(name, input, host_context)?;
        let deadline = self.arm();
        let (result, slots) = prepared.run(&mut self.store);
        self.settle(result, slots, deadline)
    }

    /// Everything before the export runs: initialisation fuel, rebuild after `_start`,
    /// first-call instantiation, call fuel, host context, kernel reset and input (or the input
    /// placed for the export's call entry, which resets the kernel itself). Returns the export
    /// to run next, under [`Plugin::arm`].
    pub(crate) fn prepare(
        &mut self,
        name: &str,
        input: &[u8],
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<Prepared, (anyhow::Error, i32)> {
        if self.rebuild || self.main.is_none() {
            if let Some(fuel) = self.compiled.initialization_fuel {
                self.store.set_fuel(fuel).map_err(|e| (e.into(), -1))?;
            }
            if self.rebuild {
                tracing::debug!(plugin = %self.id(), "starting from a fresh store after _start");
                self.rebuild_store().map_err(step_error)?;
            }
            if self.main.is_none() {
                tracing::debug!(plugin = %self.id(), "instantiating the main module");
                self.instantiate_main()
                    .or_else(|e| match pool_full(&e) {
                        true => self
                            .move_to_fallback()
                            .and_then(|()| self.instantiate_main()),
                        false => Err(e),
                    })
                    .map_err(|e| step_error(init_error(e)))?;
            }
        }
        // Initialisation is paid from its own budget, not the call's.
        if let Some(fuel) = self.compiled.fuel {
            self.store.set_fuel(fuel).map_err(|e| (e.into(), -1))?;
        }
        self.store.data_mut().host_context = host_context;
        let export = self.export(name);
        let kernel = present(&self.kernel).map_err(step_error)?;
        let export = match export {
            Ok(export) => export,
            Err(e) => {
                // No call runs, but the previous output must not be reported again.
                let _ = kernel.reset(&mut self.store);
                return Err(step_error(e));
            }
        };
        self.calls += 1;
        if self.placed != 0 {
            // The last call was abandoned: whatever became of its begin, these bytes are dead.
            kernel.unplace(&mut self.store, std::mem::take(&mut self.placed));
        }
        let placed = export.entry.is_some() && kernel.place_input(&mut self.store, input);
        if placed {
            self.placed = input.len() as u64;
        }
        if !placed {
            kernel
                .begin(&mut self.store, input, self.calls)
                .map_err(|e| step_error(e.context("failed to allocate extism memory")))?;
        }
        Ok(Prepared {
            export,
            placed: placed.then_some(input.len() as u64),
            call: self.calls,
        })
    }

    /// Everything after the export ran: ends the deadline, records fuel, reads output and
    /// error and classifies the outcome.
    pub(crate) fn settle(
        &mut self,
        result: wasmtime::Result<i32>,
        slots: Slots,
        deadline: Option<Deadline>,
    ) -> Result<i32, (anyhow::Error, i32)> {
        if let Err(e) = &result {
            let id = self.id();
            self.compiled.dumps.trapped(&mut self.store, e, id);
        }
        self.cancel.state.end();
        drop(deadline);
        if let Some(limit) = self.compiled.fuel {
            self.fuel_consumed = Some(limit.saturating_sub(self.store.get_fuel().unwrap_or(0)));
        }
        self.conclude(result, slots)
    }

    /// Starts the plugin's deadline and makes cancels effective; the returned registration
    /// keeps the ticker watching the deadline until dropped (and, for async plugins, wakes
    /// a call waiting in a host function when it passes).
    pub(crate) fn arm(&mut self) -> Option<Deadline> {
        let timeout = self.compiled.manifest.timeout();
        let deadline = timeout.map(|t| Instant::now() + t);
        self.store.data_mut().deadline = deadline;
        self.cancel.state.begin();
        self.store.set_epoch_deadline(1);
        self.cancel.state.rearm();
        let wake = self
            .compiled
            .asynchronous
            .then(|| self.cancel.state.waker.clone());
        deadline.map(|at| Deadline::register(at, wake))
    }

    /// The store, for the async call path (async_plugin.rs).
    pub(crate) fn store_mut(&mut self) -> &mut Store<PluginState> {
        &mut self.store
    }

    fn export(&mut self, name: &str) -> Result<Arc<Export>> {
        if let Some(e) = self.exports.get(name) {
            return Ok(e.clone());
        }
        if crate::kernel_link::is_private(name) {
            return Err(anyhow!("Function not found: {name}"));
        }
        let main = self
            .main
            .ok_or_else(|| anyhow!("the main module is not instantiated"))?;
        let Some(func) = main.get_func(&mut self.store, name) else {
            return Err(anyhow!("Function not found: {name}"));
        };
        let ty = func.ty(&self.store);
        if ty.params().len() != 0 {
            return Err(anyhow!(
                "Function {name} takes {} parameters, expected none",
                ty.params().len()
            ));
        }
        let mut results = ty.results();
        let plain = match (results.next(), results.next()) {
            (None, _) => Plain::Unit(func.typed(&self.store)?),
            (Some(wasmtime::ValType::I32), None) => Plain::Code(func.typed(&self.store)?),
            (Some(other), None) => {
                return Err(anyhow!(
                    "Function {name} returns {other}, expected i32 or nothing"
                ))
            }
            (Some(_), Some(_)) => {
                let n = ty.results().len();
                return Err(anyhow!("Function {name} has {n} results, expected 0 or 1"));
            }
        };
        let entry = match main.get_func(
            &mut self.store,
            &format!("{}{name}", crate::kernel_link::CALL),
        ) {
            Some(entry) => Some(entry.typed(&self.store)?),
            None => None,
        };
        let export = Arc::new(Export { plain, entry });
        self.exports.insert(name.to_string(), export.clone());
        Ok(export)
    }

    /// Reads output and error (unless the call entry did) and turns the export's result into
    /// a return code.
    fn conclude(
        &mut self,
        result: wasmtime::Result<i32>,
        slots: Slots,
    ) -> Result<i32, (anyhow::Error, i32)> {
        let placed = std::mem::take(&mut self.placed);
        let ended = match slots {
            Slots::Read(offset, len, error) => Some((offset, len, error)),
            Slots::Unread | Slots::EntryFailed { .. } => {
                // Reading results runs kernel code; it must not be refused for want of fuel.
                self.refuel_for_host().map_err(|e| (e, -1))?;
                self.kernel.as_ref().and_then(|k| {
                    // A call entry stopped before its `begin` completed: nothing of this call
                    // is there, and the input bytes written for it must go.
                    if let Slots::EntryFailed { call } = slots {
                        if k.begun(&mut self.store).ok()? != call {
                            k.unplace(&mut self.store, placed);
                            k.reset(&mut self.store).ok()?;
                        }
                    }
                    k.end(&mut self.store).ok()
                })
            }
        };
        let mut guest_error = None;
        if let Some((offset, len, error)) = ended {
            self.output = (offset, len);
            guest_error = self.guest_error(error);
        }
        let err = match result {
            Ok(rc) => {
                return match guest_error {
                    Some(msg) => Err((anyhow::Error::new(msg), rc)),
                    None => Ok(rc),
                }
            }
            Err(e) => anyhow::Error::from(e),
        };
        if let Some(why) = find::<Interrupted>(&err) {
            return Err((anyhow::Error::new(*why), 134));
        }
        if let Some(exit) = find::<wasmtime_wasi::I32Exit>(&err) {
            let code = exit.0;
            return match (code, guest_error) {
                (0, None) => Ok(0),
                (0, Some(msg)) => Err((anyhow::Error::new(msg), -1)),
                (_, Some(msg)) => Err((anyhow::Error::new(msg), code)),
                (_, None) => Err((anyhow!("Exited with i32 exit status {code}"), code)),
            };
        }
        if let Some(msg) = guest_error {
            return Err((anyhow::Error::new(msg), -1));
        }
        if let Some(wasmtime::Trap::OutOfFuel) = find::<wasmtime::Trap>(&err) {
            return Err((anyhow!("plugin ran out of fuel"), -1));
        }
        if find::<OutOfMemory>(&err).is_some() {
            return Err((anyhow::Error::new(OutOfMemory), -1));
        }
        if let Some(trap) = find::<wasmtime::Trap>(&err) {
            return Err((anyhow!("{trap}"), 134));
        }
        Err((crate::profile::without_backtrace(err), -1))
    }

    /// The message the guest set with `error_set`, if any: the block's bytes, or empty when
    /// the slot holds something that is not a live block (upstream's behaviour).
    fn guest_error(&mut self, handle: u64) -> Option<GuestError> {
        let kernel = self.kernel.as_ref()?;
        if handle == 0 {
            return None;
        }
        let bytes = kernel
            .block(&mut self.store, handle)
            .ok()
            .flatten()
            .unwrap_or_default();
        Some(GuestError {
            bytes: bytes.to_vec(),
        })
    }

    fn refuel_for_host(&mut self) -> Result<()> {
        if self.compiled.fuel.is_some() {
            self.store.set_fuel(u64::MAX)?;
        }
        Ok(())
    }

    /// Instantiates the main module under the memory budget and runs its start function and
    /// language runtime initialiser once (`spec/guest-abi.md` §12.3), under the deadline and
    /// cancel flag. A start function that fails leaves the module to be instantiated again.
    fn instantiate_main(&mut self) -> Result<()> {
        let main = self.linked.main().module.clone();
        let asynchronous = self.compiled.asynchronous;
        let Some(exports) = &main.kernel else {
            let _deadline = self.arm();
            self.store.data_mut().memory.arm(0);
            let instance = fiber::instantiate(
                &mut self.store,
                &main.module,
                &self.main_imports,
                asynchronous,
            )?;
            self.store.data_mut().memory.refill();
            self.main = Some(instance);
            initialise(&mut self.store, &instance, asynchronous)?;
            self.cancel.state.end();
            return Ok(());
        };
        // With the kernel linked in, instantiating runs no guest code (kernel_link defers the
        // start function), only wasmtime's memory initialisation: no deadline yet.
        self.store
            .data_mut()
            .memory
            .arm(crate::kernel::initial_memory_bytes());
        let instance = match &self.linked.main_pre {
            Some(pre) => fiber::instantiate_pre(pre, &mut self.store, asynchronous)?,
            None => fiber::instantiate(
                &mut self.store,
                &main.module,
                &self.main_imports,
                asynchronous,
            )?,
        };
        self.store.data_mut().memory.refill();
        let kernel = Kernel::new(&mut self.store, instance, exports, asynchronous)?;
        self.store.data_mut().set_kernel(kernel.clone());
        let _deadline = self.arm();
        let start = exports.start.as_ref();
        if let Some(Extern::Func(start)) =
            start.and_then(|at| instance.get_module_export(&mut self.store, at))
        {
            let start = start.typed::<(), ()>(&self.store)?;
            fiber::call(&start, &mut self.store, (), asynchronous)?;
        }
        self.kernel = Some(kernel);
        self.main = Some(instance);
        initialise(&mut self.store, &instance, asynchronous)?;
        self.cancel.state.end();
        Ok(())
    }

    /// Moves a plugin that found the instance pool full to the on-demand fallback, with a
    /// fresh store: nothing of the guest's exists yet.
    fn move_to_fallback(&mut self) -> Result<()> {
        self.use_fallback()?;
        self.rebuild_store()
    }

    /// From now on, stores of this plugin are made on the fallback's engine.
    fn use_fallback(&mut self) -> Result<()> {
        tracing::debug!(plugin = %self.id(), "the instance pool is full: allocating on demand");
        self.linked = self.compiled.fallback()?;
        self.cancel
            .state
            .set_engine(self.linked.runtime.engine.clone());
        Ok(())
    }

    /// What a new store takes over from the current one.
    fn carried(&mut self) -> Carried {
        let data = self.store.data_mut();
        Carried {
            id: data.id,
            config: data.config.clone(),
            headers_enabled: data.http.headers_enabled,
            profile: data.profile.take(),
        }
    }

    /// Throws the store away and starts from scratch, keeping id, config and the headers flag.
    fn rebuild_store(&mut self) -> Result<()> {
        let interrupt = self.cancel.state.clone();
        let carried = self.carried();
        let setup = match setup(&self.compiled, &self.linked, carried, interrupt.clone()) {
            Err(e) if pool_full(&e) => {
                self.use_fallback()?;
                let carried = self.carried();
                setup(&self.compiled, &self.linked, carried, interrupt)?
            }
            setup => setup?,
        };
        self.store = setup.store;
        self.kernel = setup.kernel;
        self.instances = setup.instances;
        self.main_imports = setup.main_imports;
        self.main = None;
        self.exports.clear();
        self.rebuild = false;
        if let Some(fuel) = self.compiled.initialization_fuel {
            self.store.set_fuel(fuel)?;
        }
        Ok(())
    }
}

/// A recorder for each instance of a profiled plugin: its modules by manifest name, and the
/// kernel when it is an instance of its own.
fn recorder(compiled: &Compiled, linked: &Linked) -> Result<Option<Box<crate::profile::Recorder>>> {
    let Some(options) = compiled.profile else {
        return Ok(None);
    };
    let modules = linked
        .modules
        .iter()
        .map(|m| (m.name.clone(), m.module.module.clone()))
        .collect();
    let kernel = match linked.main().module.kernel {
        Some(_) => None,
        None => Some(linked.runtime.kernel()?.0.clone()),
    };
    Ok(Some(Box::new(crate::profile::Recorder::new(
        options,
        &linked.runtime.engine,
        modules,
        kernel,
    ))))
}

/// The kernel, which exists from the first call on.
fn present(kernel: &Option<Kernel>) -> Result<&Kernel> {
    kernel
        .as_ref()
        .ok_or_else(|| anyhow!("the plugin's kernel is not instantiated"))
}

/// A failure before the export runs: always -1, with fuel exhaustion named as such.
fn step_error(e: anyhow::Error) -> (anyhow::Error, i32) {
    if let Some(wasmtime::Trap::OutOfFuel) = find::<wasmtime::Trap>(&e) {
        return (anyhow!("plugin ran out of fuel"), -1);
    }
    if find::<Interrupted>(&e).is_some() || find::<OutOfMemory>(&e).is_some() {
        return (e, -1);
    }
    (crate::profile::without_backtrace(e), -1)
}

fn init_error(e: anyhow::Error) -> anyhow::Error {
    if find::<Interrupted>(&e).is_some() || find::<OutOfMemory>(&e).is_some() {
        return e;
    }
    e.context("plugin initialisation failed")
}

/// True when `e` says the instance pool has no room (engine.rs).
fn pool_full(e: &anyhow::Error) -> bool {
    find::<wasmtime::PoolConcurrencyLimitError>(e).is_some()
}

/// Finds an error of type `E` anywhere in the chain, including inside wasmtime errors.
fn find<E: std::error::Error + Send + Sync + 'static>(err: &anyhow::Error) -> Option<&E> {
    err.downcast_ref::<E>()
        .or_else(|| err.chain().find_map(|cause| cause.downcast_ref::<E>()))
}

/// A store ready for its first call.
struct Setup {
    store: Store<PluginState>,
    kernel: Option<Kernel>,
    instances: Vec<Option<Instance>>,
    main_imports: Vec<Extern>,
}

/// A new store with its kernel (unless linked into main), the non-main module instances and
/// the main module's imports resolved (unless pre-linked), so that a missing or mistyped
/// import fails plugin creation, not the first call.
fn setup(
    compiled: &Arc<Compiled>,
    linked: &Linked,
    carried: Carried,
    interrupt: Arc<InterruptState>,
) -> Result<Setup> {
    let wasi = if compiled.wasi {
        Some(crate::wasi::build(
            compiled.manifest.allowed_paths.as_ref(),
        )?)
    } else {
        None
    };
    let state = PluginState::new(
        carried.id,
        carried.config,
        compiled.permissions.clone(),
        compiled.manifest.clone(),
        carried.headers_enabled,
        wasi,
        MemoryBudget::new(compiled.manifest.memory.max_pages),
        interrupt.clone(),
    );
    let asynchronous = compiled.asynchronous;
    let mut store = Store::new(&linked.runtime.engine, state);
    store.data_mut().profile = carried.profile;
    store.limiter(|s| &mut s.memory);
    if asynchronous {
        store.epoch_deadline_callback(epoch::on_epoch_yielding);
    } else {
        store.epoch_deadline_callback(epoch::on_epoch);
    }
    store.set_epoch_deadline(1);
    if let Some(fuel) = compiled.initialization_fuel {
        // Support modules' initialisers run under the initialisation budget.
        store.set_fuel(fuel)?;
    }
    let main = linked.main();
    let kernel = if main.module.kernel.is_some() {
        None
    } else {
        let exports = &linked.runtime.kernel()?.1;
        let pre = linked
            .kernel_pre
            .as_ref()
            .ok_or_else(|| anyhow!("the plugin's kernel is not pre-linked"))?;
        let instance = fiber::instantiate_pre(pre, &mut store, asynchronous)?;
        let kernel = Kernel::new(&mut store, instance, exports, asynchronous)?;
        store.data_mut().set_kernel(kernel.clone());
        Some(kernel)
    };
    if linked.main_pre.is_some() {
        // A kernel-linked plugin of one module, its imports already resolved.
        return Ok(Setup {
            store,
            kernel,
            instances: vec![None; linked.modules.len()],
            main_imports: Vec::new(),
        });
    }

    let mut instances: Vec<Option<Instance>> = vec![None; linked.modules.len()];
    let support = &linked.modules[..linked.modules.len() - 1];
    if !support.is_empty() {
        let timeout = compiled.manifest.timeout();
        store.data_mut().deadline = timeout.map(|t| Instant::now() + t);
        let _registration = store.data().deadline.map(|at| Deadline::register(at, None));
        interrupt.begin();
        let result = (|| -> Result<()> {
            for (i, m) in support.iter().enumerate() {
                let imports = resolve_imports(linked, &mut store, kernel.as_ref(), &instances, m)?;
                let instance =
                    fiber::instantiate(&mut store, &m.module.module, &imports, asynchronous)?;
                instances[i] = Some(instance);
                // Reactors are initialised once, as wasmtime's linker does for them.
                if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
                    fiber::call(&init, &mut store, (), asynchronous)?;
                }
            }
            Ok(())
        })();
        interrupt.end();
        store.data_mut().deadline = None;
        result?;
    }
    let main_imports = resolve_imports(linked, &mut store, kernel.as_ref(), &instances, main)?;
    // Kernel imports were type-checked when compiling; the others depend on the linker.
    let linked = main
        .module
        .module
        .imports()
        .zip(&main_imports)
        .zip(&main.imports);
    for ((import, ext), source) in linked {
        if matches!(source, ImportSource::Kernel(_)) {
            continue;
        }
        if let (wasmtime::ExternType::Func(want), Extern::Func(f)) = (import.ty(), ext) {
            let found = f.ty(&store);
            if !found.matches(&want) {
                anyhow::bail!(
                    "incompatible import type for `{}::{}`: the module expects {}, the host provides {}",
                    import.module(),
                    import.name(),
                    crate::signature::describe(&want.into()),
                    crate::signature::describe(&found.into()),
                );
            }
        }
    }
    Ok(Setup {
        store,
        kernel,
        instances,
        main_imports,
    })
}

/// The externs satisfying `module`'s imports, in import order.
fn resolve_imports(
    linked: &Linked,
    store: &mut Store<PluginState>,
    kernel: Option<&Kernel>,
    instances: &[Option<Instance>],
    module: &crate::compiled::LinkedModule,
) -> Result<Vec<Extern>> {
    let mut externs = Vec::with_capacity(module.imports.len());
    for (import, source) in module.module.module.imports().zip(&module.imports) {
        let missing = || {
            anyhow!(
                "unknown import: `{}::{}` has not been defined",
                import.module(),
                import.name()
            )
        };
        let ext = match source {
            ImportSource::Kernel(index) => {
                kernel.and_then(|k| k.instance.get_module_export(&mut *store, index))
            }
            ImportSource::Linker => {
                let ext = linked
                    .linker
                    .get(&mut *store, import.module(), import.name());
                match ext {
                    Ok(ext) if store.data().profile.is_some() => Some(
                        crate::host_timing::wrap_host(store, import.module(), import.name(), ext),
                    ),
                    ext => ext.ok(),
                }
            }
            ImportSource::Module(pos) => instances[*pos]
                .as_ref()
                .and_then(|i| i.get_export(&mut *store, import.name())),
        };
        externs.push(ext.ok_or_else(missing)?);
    }
    Ok(externs)
}

/// Runs the language runtime initialiser, once per instance (`spec/guest-abi.md` §12.3).
fn initialise(
    store: &mut Store<PluginState>,
    instance: &Instance,
    asynchronous: bool,
) -> Result<()> {
    let unit = |store: &mut Store<PluginState>, name: &str| {
        instance.get_typed_func::<(), ()>(store, name).ok()
    };
    let run = |store: &mut Store<PluginState>, f: TypedFunc<(), ()>| {
        fiber::call(&f, store, (), asynchronous)
    };
    if let Ok(hs_init) = instance.get_typed_func::<(i32, i32), ()>(&mut *store, "hs_init") {
        if let Some(init) = unit(store, "_initialize") {
            run(store, init)?;
        }
        fiber::call(&hs_init, &mut *store, (0, 0), asynchronous)?;
    } else if let Some(ctors) = unit(store, "__wasm_call_ctors") {
        run(store, ctors)?;
    } else if let Some(init) = unit(store, "_initialize") {
        run(store, init)?;
    }
    Ok(())
}
