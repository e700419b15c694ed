//! User host functions: what an embedder registers for plugins to import.
//!
//! Owns the definition (name, namespace, signature, callback, user data), the value types of
//! upstream's API ([`ValType`], [`Val`]) and how a definition is put into a linker. The callback
//! sees a [`CurrentPlugin`]; an `Err` it returns (or a panic) traps the call. It never touches
//! a store outside a host call.

use std::{
    ffi::c_void,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
};

use anyhow::{bail, Result};
use wasmtime::{Engine, FuncType, Linker};

use crate::{
    async_function::{AsyncCallback, HostFuture},
    current_plugin::CurrentPlugin,
    host_call::{panicked, zero_results},
    plugin_state::PluginState,
};

/// The value types of WebAssembly, as host function signatures name them.
///
/// ```
/// use extism::ValType;
/// assert_eq!(extism::PTR, ValType::I64);
/// assert_eq!(ValType::from(wasmtime::ValType::F32), ValType::F32);
/// ```
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
#[repr(C)]
pub enum ValType {
    /// Signed 32 bit integer.
    I32,
    /// Signed 64 bit integer.
    I64,
    /// 32 bit float.
    F32,
    /// 64 bit float.
    F64,
    /// 128 bit vector.
    V128,
    /// A reference to a function.
    FuncRef,
    /// A reference to host data.
    ExternRef,
}

impl From<wasmtime::ValType> for ValType {
    fn from(value: wasmtime::ValType) -> ValType {
        match value {
            wasmtime::ValType::I32 => ValType::I32,
            wasmtime::ValType::I64 => ValType::I64,
            wasmtime::ValType::F32 => ValType::F32,
            wasmtime::ValType::F64 => ValType::F64,
            wasmtime::ValType::V128 => ValType::V128,
            wasmtime::ValType::Ref(r) if r.heap_type().is_func() => ValType::FuncRef,
            wasmtime::ValType::Ref(_) => ValType::ExternRef,
        }
    }
}

impl From<ValType> for wasmtime::ValType {
    fn from(value: ValType) -> wasmtime::ValType {
        match value {
            ValType::I32 => wasmtime::ValType::I32,
            ValType::I64 => wasmtime::ValType::I64,
            ValType::F32 => wasmtime::ValType::F32,
            ValType::F64 => wasmtime::ValType::F64,
            ValType::V128 => wasmtime::ValType::V128,
            ValType::FuncRef => wasmtime::ValType::FUNCREF,
            ValType::ExternRef => wasmtime::ValType::EXTERNREF,
        }
    }
}

/// A WebAssembly value passed to or returned from a host function.
pub type Val = wasmtime::Val;

/// The value type used for kernel memory handles.
pub const PTR: ValType = ValType::I64;

/// The namespace user functions live in unless given another.
pub const USER_NAMESPACE: &str = "extism:host/user";

/// A pointer given by a C host together with the function that releases it (called once,
/// when the last [`UserData`] holding it is dropped). Only the C API creates one.
#[derive(Debug)]
pub struct CPtr {
    ptr: *mut c_void,
    free: Option<unsafe extern "C" fn(*mut c_void)>,
}

// SAFETY: the C API makes the host responsible for the pointer being usable from the threads
// it calls plugins on (spec/c-api.md §9); the library only passes it along and frees it once.
unsafe impl Send for CPtr {}
unsafe impl Sync for CPtr {}

impl Drop for CPtr {
    fn drop(&mut self) {
        if let (Some(free), false) = (self.free, self.ptr.is_null()) {
            // SAFETY: the host handed over this pair to be called exactly once; this is it.
            unsafe { free(self.ptr) };
        }
    }
}

/// Data shared by every invocation of a host function (and every plugin using it).
///
/// Rust data is an `Arc<Mutex<T>>` reached with [`UserData::get`]; `C` holds a C host's
/// pointer and is not usable from Rust. Unlike upstream, `UserData<T>` is `Send`/`Sync` only
/// when `T: Send` (upstream declares it for any `T`, which lets `!Send` data cross threads).
///
/// ```
/// use extism::UserData;
/// let counter = UserData::new(0u32);
/// *counter.get()?.lock().unwrap() += 1;
/// assert_eq!(*counter.clone().get()?.lock().unwrap(), 1);
/// # Ok::<(), extism::Error>(())
/// ```
#[derive(Debug)]
pub enum UserData<T: Sized> {
    /// A C host's pointer (created by the C API only).
    C(Arc<CPtr>),
    /// Rust data, shared by every clone.
    Rust(Arc<Mutex<T>>),
}

impl<T: Default> Default for UserData<T> {
    fn default() -> Self {
        UserData::new(T::default())
    }
}

impl<T> Clone for UserData<T> {
    fn clone(&self) -> Self {
        match self {
            UserData::C(ptr) => UserData::C(ptr.clone()),
            UserData::Rust(data) => UserData::Rust(data.clone()),
        }
    }
}

impl<T> UserData<T> {
    /// Wraps `value` in a shared mutex.
    pub fn new(value: T) -> UserData<T> {
        UserData::Rust(Arc::new(Mutex::new(value)))
    }

    /// Wraps a C host's pointer; `free` releases it when the last clone is dropped.
    pub(crate) fn new_pointer(
        ptr: *mut c_void,
        free: Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> UserData<T> {
        UserData::C(Arc::new(CPtr { ptr, free }))
    }

    /// The C pointer (null for Rust data).
    pub(crate) fn as_ptr(&self) -> *mut c_void {
        match self {
            UserData::C(ptr) => ptr.ptr,
            UserData::Rust(_) => std::ptr::null_mut(),
        }
    }

    /// The shared value; lock it to use it. Fails for C data.
    pub fn get(&self) -> Result<Arc<Mutex<T>>> {
        match self {
            UserData::C(_) => bail!("C UserData should not be used from Rust"),
            UserData::Rust(data) => Ok(data.clone()),
        }
    }
}

type Callback = dyn Fn(&mut CurrentPlugin, &[Val], &mut [Val]) -> Result<()> + Send + Sync;

/// What a host function runs: a sync callback, or one returning a future (async plugins
/// only, async_function.rs).
#[derive(Clone)]
pub(crate) enum Body {
    Sync(Arc<Callback>),
    Async(Arc<AsyncCallback>),
}

/// A host function plugins can import as `namespace::name` (namespace `extism:host/user`
/// unless set).
///
/// ```
/// use extism::{Function, UserData, PTR};
/// let f = Function::new("hello", [PTR], [PTR], UserData::new(()), |plugin, inputs, outputs, _| {
///     let name: String = plugin.memory_get_val(&inputs[0])?;
///     plugin.memory_set_val(&mut outputs[0], format!("Hello, {name}!"))
/// })
/// .with_namespace("env");
/// assert_eq!(f.name(), "hello");
/// assert_eq!(f.namespace(), Some("env"));
/// ```
#[derive(Clone)]
pub struct Function {
    name: String,
    namespace: Option<String>,
    params: Vec<ValType>,
    results: Vec<ValType>,
    callback: Body,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("namespace", &self.namespace_or_default())
            .field("params", &self.params)
            .field("results", &self.results)
            .finish()
    }
}

impl Function {
    /// A host function named `name` with the given signature; `f` gets the running plugin,
    /// the arguments, the result slots (pre-set to zero) and a clone of `user_data`.
    pub fn new<T, F>(
        name: impl Into<String>,
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
        user_data: UserData<T>,
        f: F,
    ) -> Function
    where
        F: Fn(&mut CurrentPlugin, &[Val], &mut [Val], UserData<T>) -> Result<()>
            + Send
            + Sync
            + 'static,
        T: Send + 'static,
    {
        Function {
            name: name.into(),
            namespace: None,
            params: params.into_iter().collect(),
            results: results.into_iter().collect(),
            callback: Body::Sync(Arc::new(move |plugin, inputs, outputs| {
                f(plugin, inputs, outputs, user_data.clone())
            })),
        }
    }

    /// A function named `name` of this signature running `body`.
    pub(crate) fn with_body(
        name: String,
        params: Vec<ValType>,
        results: Vec<ValType>,
        body: Body,
    ) -> Function {
        Function {
            name,
            namespace: None,
            params,
            results,
            callback: body,
        }
    }

    /// The import name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The import module, if one was set (otherwise `extism:host/user`).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The import module actually used.
    pub(crate) fn namespace_or_default(&self) -> &str {
        self.namespace().unwrap_or(USER_NAMESPACE)
    }

    /// Sets the import module.
    pub fn set_namespace(&mut self, namespace: impl Into<String>) {
        self.namespace = Some(namespace.into());
    }

    /// Sets the import module.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Function {
        self.set_namespace(namespace);
        self
    }

    /// Parameter types.
    pub fn params(&self) -> &[ValType] {
        &self.params
    }

    /// Result types.
    pub fn results(&self) -> &[ValType] {
        &self.results
    }

    pub(crate) fn body(&self) -> &Body {
        &self.callback
    }

    /// Defines the function in `linker`; in an async plugin's linker (`asynchronous`) as a
    /// wasmtime async host function, also when its callback is sync, because only those may
    /// enter the kernel again from inside a call (fiber.rs).
    pub(crate) fn add_to_linker(
        &self,
        linker: &mut Linker<PluginState>,
        engine: &Engine,
        asynchronous: bool,
    ) -> Result<()> {
        let wasm_types = |types: &[ValType]| -> Vec<wasmtime::ValType> {
            types.iter().map(|&t| t.into()).collect()
        };
        let ty = FuncType::new(engine, wasm_types(&self.params), wasm_types(&self.results));
        let name: Arc<str> = self.name.as_str().into();
        let results: Arc<[wasmtime::ValType]> = wasm_types(&self.results).into();
        let module = self.namespace_or_default();
        match (&self.callback, asynchronous) {
            (Body::Sync(callback), false) => {
                let callback = callback.clone();
                linker.func_new(module, &self.name, ty, move |caller, inputs, outputs| {
                    zero_results(outputs, &results);
                    run_sync(caller, &name, &*callback, inputs, outputs)
                })?;
            }
            (Body::Sync(callback), true) => {
                let callback = callback.clone();
                linker.func_new_async(module, &self.name, ty, move |caller, inputs, outputs| {
                    let (callback, name) = (callback.clone(), name.clone());
                    zero_results(outputs, &results);
                    Box::new(async move { run_sync(caller, &name, &*callback, inputs, outputs) })
                })?;
            }
            (Body::Async(callback), true) => {
                crate::async_function::define(linker, module, ty, name, results, callback.clone())?
            }
            (Body::Async(_), false) => bail!(
                "host function `{}` is async: build the plugin with PluginBuilder::build_async \
                 or compile_async",
                self.name
            ),
        }
        Ok(())
    }
}

impl Function {
    /// A host function whose callback is async: it gets the same `&mut CurrentPlugin` (memory
    /// helpers, vars, host context) as [`Function::new`] and returns a [`HostFuture`] that
    /// the call awaits, e.g. for a database query or an HTTP request of the host's own.
    ///
    /// Only async plugins ([`crate::AsyncPlugin`]) can import it; building a sync plugin with
    /// it fails. When the call times out or is cancelled while the future waits, the future
    /// is dropped and the call fails with `timeout` at once.
    ///
    /// ```
    /// use extism::{Function, UserData, ValType, PTR};
    /// let greet = Function::new_async(
    ///     "greet",
    ///     [PTR],
    ///     [PTR],
    ///     UserData::new(()),
    ///     |plugin, inputs, outputs, _user_data| {
    ///         Box::pin(async move {
    ///             let name: String = plugin.memory_get_val(&inputs[0])?;
    ///             // ... `.await` whatever the answer needs ...
    ///             plugin.memory_set_val(&mut outputs[0], format!("Hello, {name}!"))
    ///         })
    ///     },
    /// );
    /// ```
    pub fn new_async<T, F>(
        name: impl Into<String>,
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
        user_data: UserData<T>,
        f: F,
    ) -> Function
    where
        F: for<'a> Fn(
                &'a mut CurrentPlugin,
                &'a [Val],
                &'a mut [Val],
                UserData<T>,
            ) -> HostFuture<'a>
            + Send
            + Sync
            + 'static,
        T: Send + 'static,
    {
        let callback: Arc<AsyncCallback> =
            Arc::new(move |plugin, inputs, outputs| f(plugin, inputs, outputs, user_data.clone()));
        Function::with_body(
            name.into(),
            params.into_iter().collect(),
            results.into_iter().collect(),
            Body::Async(callback),
        )
    }

    /// True when the callback is async ([`Function::new_async`]).
    pub fn is_async(&self) -> bool {
        matches!(self.body(), Body::Async(_))
    }
}

fn run_sync(
    caller: wasmtime::Caller<'_, PluginState>,
    name: &str,
    callback: &Callback,
    inputs: &[Val],
    outputs: &mut [Val],
) -> wasmtime::Result<()> {
    let result = CurrentPlugin::with(caller, |plugin| {
        // A panicking host function fails the call instead of unwinding into the host.
        let run = AssertUnwindSafe(|| callback(plugin, inputs, outputs));
        match std::panic::catch_unwind(run) {
            // A host function that returns after the deadline or a cancel (having seen
            // `is_interrupted`, or just slow) ends the call at once: the guest may not reach
            // another epoch check before it returns.
            Ok(Ok(())) => match plugin.interruption() {
                Some(interrupted) => Err(interrupted.into()),
                None => Ok(()),
            },
            Ok(result) => result,
            Err(panic) => Err(panicked(name, &*panic)),
        }
    });
    result.map_err(wasmtime::Error::from_anyhow)
}
