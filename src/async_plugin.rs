//! Async plugins: [`AsyncPlugin`], a plugin whose calls are futures, for async Rust hosts
//! (a web server on tokio) that must not block a worker thread on a call.
//!
//! Owns the async form of the call lifecycle; every step but the export itself is the sync
//! plugin's (plugin.rs: preparation, deadline, outcome classification), so outputs and errors
//! are the same. While the export runs, the guest yields to the executor every
//! `timer::SLICE` (epoch yielding, epoch.rs), and awaits the async host functions it calls
//! (async_function.rs). It never blocks on an executor's primitives, so it runs on any
//! executor; WASI in async plugins uses wasmtime-wasi's async functions, which need tokio.

use std::{any::Any, future::Future, pin::Pin};

use anyhow::{anyhow, bail, Result};

use crate::{
    cancel::CancelHandle,
    compiled::CompiledPlugin,
    convert::{FromBytes, ToBytes},
    plugin::Plugin,
    timer::Slices,
    PluginBuilder,
};

/// A loaded plugin whose calls are futures: the async counterpart of [`Plugin`], built from
/// the same manifests and builders ([`PluginBuilder::build_async`],
/// [`PluginBuilder::compile_async`] + [`AsyncPlugin::new`]).
///
/// Differences from [`Plugin`]:
/// - calls are `async` and their futures are `Send` (use them from any tokio worker);
/// - host functions may be async ([`crate::Function::new_async`]); sync ones work too;
/// - a guest busy in a loop yields to the executor every millisecond or so, so it does not
///   starve other tasks on its worker;
/// - timeouts and [`CancelHandle`] also interrupt an awaited host function (its future is
///   dropped) and the call fails with `timeout` at once;
/// - the plugin's first call instantiates and initialises it (start function, constructors)
///   without yielding: host functions called from there must not wait for the executor.
///
/// Dropping a call's future abandons the call; the plugin stays usable, as after a timeout.
pub struct AsyncPlugin {
    plugin: Plugin,
}

impl std::fmt::Debug for AsyncPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncPlugin")
            .field("id", &self.id())
            .finish()
    }
}

impl<'a> PluginBuilder<'a> {
    /// Compiles the plugin for async use ([`AsyncPlugin::new`]); like
    /// [`PluginBuilder::compile`], it may be shared by any number of async plugins.
    pub fn compile_async(self) -> Result<CompiledPlugin> {
        let mut options = self.into_options()?;
        // The profiler times host functions with synchronous wrappers (profile.rs), which an
        // async store cannot call.
        anyhow::ensure!(
            options.profile.is_none(),
            "PluginBuilder::with_profiler applies to sync plugins only; async plugins cannot be profiled"
        );
        options.asynchronous = true;
        crate::compiled::compile(options)
    }

    /// Compiles and instantiates an async plugin.
    pub fn build_async(self) -> Result<AsyncPlugin> {
        AsyncPlugin::new(&self.compile_async()?)
    }
}

impl CompiledPlugin {
    /// True when compiled for async plugins ([`PluginBuilder::compile_async`]).
    pub fn is_async(&self) -> bool {
        self.inner.asynchronous
    }
}

impl AsyncPlugin {
    /// Creates an instance of a plugin compiled with [`PluginBuilder::compile_async`]: fresh
    /// id, kernel, vars, WASI context and a copy of the manifest's config.
    pub fn new(compiled: &CompiledPlugin) -> Result<AsyncPlugin> {
        if !compiled.is_async() {
            bail!("this plugin was compiled for sync use: compile it with PluginBuilder::compile_async");
        }
        Ok(AsyncPlugin {
            plugin: Plugin::instance_of(compiled)?,
        })
    }

    /// Calls `name` with `input` and converts the output, as [`Plugin::call`].
    ///
    /// The input is converted (and copied) before the future is returned, so the future
    /// borrows only the plugin and is `Send` whatever `T` borrows.
    pub fn call<'a, 'b, T: ToBytes<'a>, U: FromBytes<'b> + 'b>(
        &'b mut self,
        name: impl AsRef<str>,
        input: T,
    ) -> CallFuture<'b, U> {
        let name = name.as_ref().to_owned();
        let input = owned_bytes(input);
        Box::pin(async move {
            let input = input?;
            match self.raw_call(&name, &input, None).await {
                Ok(0) => U::from_bytes(self.plugin.output()),
                Ok(rc) => Err(anyhow!("Returned non-zero exit code: {rc}")),
                Err((e, _)) => Err(e),
            }
        })
    }

    /// As [`Plugin::call_get_error_code`].
    pub fn call_get_error_code<'a, 'b, T: ToBytes<'a>, U: FromBytes<'b> + 'b>(
        &'b mut self,
        name: impl AsRef<str>,
        input: T,
    ) -> CallFuture<'b, U, (anyhow::Error, i32)> {
        let name = name.as_ref().to_owned();
        let input = owned_bytes(input);
        Box::pin(async move {
            let input = input.map_err(|e| (e, -1))?;
            let rc = self.raw_call(&name, &input, None).await;
            self.plugin.finish(rc)
        })
    }

    /// As [`Plugin::call_with_host_context`]: host functions of this call read `host_context`
    /// through [`crate::CurrentPlugin::host_context`].
    pub fn call_with_host_context<'a, 'b, T, U, C>(
        &'b mut self,
        name: impl AsRef<str>,
        input: T,
        host_context: C,
    ) -> CallFuture<'b, U>
    where
        T: ToBytes<'a>,
        U: FromBytes<'b> + 'b,
        C: Any + Send,
    {
        let name = name.as_ref().to_owned();
        let input = owned_bytes(input);
        let context: Box<dyn Any + Send> = Box::new(host_context);
        Box::pin(async move {
            let input = input?;
            let rc = self.raw_call(&name, &input, Some(context)).await;
            self.plugin.finish(rc).map_err(|(e, _)| e)
        })
    }

    /// Runs one call and returns the return code, or the error with its return code, as
    /// [`Plugin::raw_call`].
    pub async fn raw_call(
        &mut self,
        name: &str,
        input: &[u8],
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<i32, (anyhow::Error, i32)> {
        let plugin = &mut self.plugin;
        let started = plugin.begin_call(name, input);
        let result = run(plugin, name, input, host_context).await;
        plugin.end_call(name, &result, started);
        result
    }

    /// The output of the latest call: valid until the next call or reset.
    pub fn output(&self) -> &[u8] {
        self.plugin.output()
    }

    /// Releases every kernel block and forgets input, output and error, as [`Plugin::reset`].
    pub fn reset(&mut self) -> Result<()> {
        self.plugin.reset()
    }

    /// The plugin's id (a random UUID v4, fixed for its life).
    pub fn id(&self) -> uuid::Uuid {
        self.plugin.id()
    }

    /// A handle that cancels this plugin's running call from any thread or task.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.plugin.cancel_handle()
    }

    /// True when the main module exports `name` as `() -> ()` or `() -> i32`.
    pub fn function_exists(&self, name: impl AsRef<str>) -> bool {
        self.plugin.function_exists(name)
    }

    /// True when the plugin was created with WASI.
    pub fn has_wasi(&self) -> bool {
        self.plugin.has_wasi()
    }

    /// Fuel the latest call's export used (`None` without a fuel limit or before a call).
    pub fn fuel_consumed(&self) -> Option<u64> {
        self.plugin.fuel_consumed()
    }

    /// The configuration the guest reads with `config_get`.
    pub fn config(&self) -> &std::collections::BTreeMap<String, String> {
        self.plugin.config()
    }

    /// Changes the configuration for later calls.
    pub fn config_mut(&mut self) -> &mut std::collections::BTreeMap<String, String> {
        self.plugin.config_mut()
    }

    /// The plugin's vars (what the guest stores with `var_set`).
    pub fn vars(&self) -> &std::collections::BTreeMap<String, Vec<u8>> {
        self.plugin.vars()
    }

    /// Replaces or edits the vars.
    pub fn vars_mut(&mut self) -> &mut std::collections::BTreeMap<String, Vec<u8>> {
        self.plugin.vars_mut()
    }

    /// Makes `http_headers` return the latest response's headers (off by default).
    pub fn allow_http_response_headers(&mut self) {
        self.plugin.allow_http_response_headers()
    }
}

/// The future of [`AsyncPlugin::call`] and its siblings: boxed, so that it does not depend
/// on the input's type (whose lifetimes would otherwise keep it from being `Send`).
pub type CallFuture<'b, U, E = anyhow::Error> =
    Pin<Box<dyn Future<Output = Result<U, E>> + Send + 'b>>;

fn owned_bytes<'a, T: ToBytes<'a>>(input: T) -> Result<Vec<u8>> {
    Ok(input.to_bytes()?.as_ref().to_vec())
}

/// The sync lifecycle's steps around the awaited export.
async fn run(
    plugin: &mut Plugin,
    name: &str,
    input: &[u8],
    host_context: Option<Box<dyn Any + Send>>,
) -> Result<i32, (anyhow::Error, i32)> {
    let prepared = plugin.prepare(name, input, host_context)?;
    let deadline = plugin.arm();
    let slices = Slices::start();
    let (result, slots) = prepared.run_async(plugin.store_mut()).await;
    drop(slices);
    plugin.settle(result, slots, deadline)
}
