//! User host functions: what an embedder registers for plugins to import.
//!
//! Owns the definition (name, namespace, signature, callback, user data) and how it is put
//! into a linker. The callback sees a [`CurrentPlugin`]; an `Err` it returns traps the call.

use std::{
    any::Any,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
};

use anyhow::Result;
use wasmtime::{Engine, FuncType, Linker};
pub use wasmtime::{Val, ValType};

use crate::{current_plugin::CurrentPlugin, plugin_state::PluginState};

/// The value type used for kernel memory handles.
pub const PTR: ValType = ValType::I64;

/// The namespace user functions live in unless given another.
pub const USER_NAMESPACE: &str = "extism:host/user";

/// Data shared by every invocation of a host function (and every plugin using it).
#[derive(Debug, Default)]
pub struct UserData<T>(Arc<Mutex<T>>);

impl<T> Clone for UserData<T> {
    fn clone(&self) -> Self {
        UserData(self.0.clone())
    }
}

impl<T> UserData<T> {
    pub fn new(value: T) -> UserData<T> {
        UserData(Arc::new(Mutex::new(value)))
    }

    /// The shared value; lock it to use it.
    pub fn get(&self) -> Result<Arc<Mutex<T>>> {
        Ok(self.0.clone())
    }
}

type Callback = dyn Fn(&mut CurrentPlugin<'_>, &[Val], &mut [Val]) -> Result<()> + Send + Sync;

/// A host function plugins can import as `namespace::name`.
#[derive(Clone)]
pub struct Function {
    name: String,
    namespace: Option<String>,
    params: Vec<ValType>,
    results: Vec<ValType>,
    callback: Arc<Callback>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("namespace", &self.namespace())
            .field("params", &self.params)
            .field("results", &self.results)
            .finish()
    }
}

impl Function {
    pub fn new<T, F>(
        name: impl Into<String>,
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
        user_data: UserData<T>,
        f: F,
    ) -> Function
    where
        F: Fn(&mut CurrentPlugin<'_>, &[Val], &mut [Val], UserData<T>) -> Result<()>
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
            callback: Arc::new(move |plugin, inputs, outputs| {
                f(plugin, inputs, outputs, user_data.clone())
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(USER_NAMESPACE)
    }

    pub fn set_namespace(&mut self, namespace: impl Into<String>) {
        self.namespace = Some(namespace.into());
    }

    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Function {
        self.set_namespace(namespace);
        self
    }

    pub fn params(&self) -> &[ValType] {
        &self.params
    }

    pub fn results(&self) -> &[ValType] {
        &self.results
    }

    pub(crate) fn add_to_linker(
        &self,
        linker: &mut Linker<PluginState>,
        engine: &Engine,
    ) -> Result<()> {
        let ty = FuncType::new(
            engine,
            self.params.iter().cloned(),
            self.results.iter().cloned(),
        );
        let callback = self.callback.clone();
        let name = self.name.clone();
        let results = self.results.clone();
        linker.func_new(
            self.namespace(),
            &self.name,
            ty,
            move |caller, inputs, outputs| {
                // Results the callback leaves alone read as zero of their declared type.
                for (out, ty) in outputs.iter_mut().zip(&results) {
                    if let Some(zero) = Val::default_for_ty(ty) {
                        *out = zero;
                    }
                }
                let mut plugin =
                    CurrentPlugin::new(caller).map_err(wasmtime::Error::from_anyhow)?;
                // A panicking host function fails the call instead of unwinding into the host.
                let run = AssertUnwindSafe(|| callback(&mut plugin, inputs, outputs));
                match std::panic::catch_unwind(run) {
                    Ok(result) => result.map_err(wasmtime::Error::from_anyhow),
                    Err(panic) => Err(wasmtime::Error::msg(format!(
                        "host function `{name}` panicked: {}",
                        panic_message(&*panic)
                    ))),
                }
            },
        )?;
        Ok(())
    }
}

/// The text of a panic payload, when it has one.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
