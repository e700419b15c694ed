//! `ExtismPlugin`: creating, calling and freeing plugins, and the results of the last call
//! (§5–§8 of `spec/c-api.md`).
//!
//! Owns the per-plugin lock that serialises calls from C threads, re-entrancy detection
//! (a host function calling back into its own plugin fails at once instead of deadlocking),
//! and the storage of the last call's error string. What never needs the lock lives outside
//! it: the id bytes, the cancel handle and the compiled plugin (for `function_exists`).

use std::{
    ffi::{c_char, c_void, CString},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex, MutexGuard,
    },
};

use super::{
    c_slice, c_str,
    cancel::ExtismCancelHandle,
    compiled::{self, ExtismCompiledPlugin},
    current_plugin::HostContext,
    function::ExtismFunction,
    guard, set_errmsg, to_cstring, ExtismSize,
};
use crate::{CompiledPlugin, Plugin};

/// What a call changes, behind the plugin's lock.
struct Locked {
    plugin: Plugin,
    /// The last call's error, handed out by `extism_plugin_error` until the next call.
    error: Option<CString>,
}

/// Opaque `ExtismPlugin` of the header.
pub struct ExtismPlugin {
    locked: Mutex<Locked>,
    /// Marker of the thread holding `locked` (0: none); see [`thread_marker`]. Relaxed
    /// accesses suffice: only the question "do *I* hold it?" is asked, and a thread always
    /// sees its own latest store (its marker while it holds the lock, 0 after); no other
    /// thread ever stores this thread's marker. (A `SeqCst` store is an `xchg` on x86, three
    /// of them per C call sequence.)
    holder: AtomicUsize,
    compiled: CompiledPlugin,
    id: [u8; 16],
    pub(crate) cancel: ExtismCancelHandle,
}

thread_local! {
    static MARKER: u8 = const { 0 };
}

/// A non-zero number unique to this thread among running threads (the address of a
/// thread-local), used to recognise the lock holder.
fn thread_marker() -> usize {
    MARKER.with(|m| m as *const u8 as usize)
}

/// The plugin lock, held; clears the holder marker before unlocking.
struct Held<'a> {
    locked: MutexGuard<'a, Locked>,
    holder: &'a AtomicUsize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.holder.store(0, Ordering::Relaxed);
    }
}

impl std::ops::Deref for Held<'_> {
    type Target = Locked;
    fn deref(&self) -> &Locked {
        &self.locked
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Locked {
        &mut self.locked
    }
}

impl ExtismPlugin {
    fn new(compiled: CompiledPlugin) -> anyhow::Result<ExtismPlugin> {
        let plugin = Plugin::new_from_compiled(&compiled)?;
        Ok(ExtismPlugin {
            id: *plugin.id().as_bytes(),
            cancel: ExtismCancelHandle(plugin.cancel_handle()),
            holder: AtomicUsize::new(0),
            compiled,
            locked: Mutex::new(Locked {
                plugin,
                error: None,
            }),
        })
    }

    /// Takes the plugin lock, waiting for a call on another thread to finish. `None` when this
    /// thread already holds it: a host function called back into its own plugin, which would
    /// otherwise deadlock.
    fn lock(&self, what: &str) -> Option<Held<'_>> {
        let me = thread_marker();
        if self.holder.load(Ordering::Relaxed) == me {
            tracing::error!(target: "extism::sdk", "{what}: cannot make reentrant calls into plugin");
            return None;
        }
        // A panic while locked was already turned into an error; the state is still usable.
        let locked = self.locked.lock().unwrap_or_else(|e| e.into_inner());
        self.holder.store(me, Ordering::Relaxed);
        Some(Held {
            locked,
            holder: &self.holder,
        })
    }

    /// One call, on the locked plugin. Output and error of the previous call are dropped
    /// first, whatever happens next.
    ///
    /// # Safety
    /// The pointers are NULL or valid as the header describes.
    unsafe fn call(
        &self,
        func_name: *const c_char,
        data: *const u8,
        data_len: ExtismSize,
        host_context: *mut c_void,
    ) -> i32 {
        let Some(mut held) = self.lock("extism_plugin_call") else {
            return -1;
        };
        held.error = None;
        let args = c_str(func_name, "func_name")
            .and_then(|name| Ok((name, c_slice(data, data_len, "data")?)));
        let (name, input) = match args {
            Ok(args) => args,
            Err(e) => {
                // No call runs, but the previous output must not be reported again.
                let _ = held.plugin.reset();
                held.error = Some(to_cstring(e));
                return -1;
            }
        };
        let context = (!host_context.is_null())
            .then(|| Box::new(HostContext(host_context)) as Box<dyn std::any::Any + Send>);
        let outcome = guard(
            |panic| Err((anyhow::anyhow!("internal error: {panic}"), -1)),
            || held.plugin.raw_call(name, input, context),
        );
        match outcome {
            Ok(rc) => rc,
            Err((e, rc)) => {
                // The guest's own message is handed out byte for byte, as upstream does.
                held.error = Some(match e.downcast_ref::<crate::GuestError>() {
                    Some(guest) => to_cstring(guest.bytes()),
                    None => to_cstring(format!("{e:#}")),
                });
                rc
            }
        }
    }
}

/// Instantiates a compiled plugin: the plugin, or the `errmsg` text.
fn instantiate(compiled: CompiledPlugin, prefix: &str) -> Result<*mut ExtismPlugin, String> {
    match ExtismPlugin::new(compiled) {
        Ok(p) => Ok(Box::into_raw(Box::new(p))),
        Err(e) => Err(format!("{prefix}{}", compiled::cause(&e))),
    }
}

const CREATE_ERROR: &str = "Unable to create Extism plugin: ";

/// Runs a constructor body: the plugin, or NULL with `*errmsg` set.
fn construct(
    errmsg: *mut *mut c_char,
    body: impl FnOnce() -> Result<*mut ExtismPlugin, String>,
) -> *mut ExtismPlugin {
    let result = guard(
        |panic| Err(format!("{CREATE_ERROR}internal error: {panic}")),
        body,
    );
    result.unwrap_or_else(|e| {
        // SAFETY: `errmsg` is NULL or writable, per the header.
        unsafe { set_errmsg(errmsg, e) };
        std::ptr::null_mut()
    })
}

/// The two `extism_plugin_new*` constructors. The host functions are consumed, also when
/// creation fails (they are then freed).
///
/// # Safety
/// The pointers are NULL or valid as the header describes.
unsafe fn new_plugin(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *const *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: Option<u64>,
    errmsg: *mut *mut c_char,
) -> *mut ExtismPlugin {
    construct(errmsg, || {
        // SAFETY: the header's contract for the arguments.
        let compiled = unsafe {
            compiled::compile(
                wasm,
                wasm_size,
                functions,
                n_functions,
                with_wasi,
                fuel_limit,
            )
        }?;
        // Upstream's `extism_plugin_new` reports every failure as a compile error; the fuel
        // variant tells instantiation errors apart.
        let prefix = if fuel_limit.is_some() {
            CREATE_ERROR
        } else {
            compiled::COMPILE_ERROR
        };
        instantiate(compiled, prefix)
    })
}

/// Creates a plugin from a manifest, wasm or WAT, with host functions (consumed, also on
/// failure; see `spec/c-api.md` §4) and WASI on or off. NULL with `*errmsg` set on failure. The caller
/// owns the plugin (`extism_plugin_free`).
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_new(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *const *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    errmsg: *mut *mut c_char,
) -> *mut ExtismPlugin {
    unsafe {
        new_plugin(
            wasm,
            wasm_size,
            functions,
            n_functions,
            with_wasi,
            None,
            errmsg,
        )
    }
}

/// Like `extism_plugin_new`, with a per-call fuel limit.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_new_with_fuel_limit(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *const *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: u64,
    errmsg: *mut *mut c_char,
) -> *mut ExtismPlugin {
    let fuel = Some(fuel_limit);
    unsafe {
        new_plugin(
            wasm,
            wasm_size,
            functions,
            n_functions,
            with_wasi,
            fuel,
            errmsg,
        )
    }
}

/// Creates a new instance of a compiled plugin (which is only read, so this may run on many
/// threads at once). NULL with `*errmsg` set on failure, including a NULL `compiled`.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_new_from_compiled(
    compiled: *const ExtismCompiledPlugin,
    errmsg: *mut *mut c_char,
) -> *mut ExtismPlugin {
    construct(errmsg, || {
        // SAFETY: NULL or a live compiled plugin, per the header.
        let compiled = unsafe { compiled.as_ref() }
            .ok_or_else(|| format!("{CREATE_ERROR}compiled plugin is a null pointer"))?;
        instantiate(compiled.compiled.clone(), CREATE_ERROR)
    })
}

/// Frees a string stored in `errmsg` by a constructor. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_new_error_free(err: *mut c_char) {
    guard(
        |_| (),
        || {
            if !err.is_null() {
                // SAFETY: the string came from `set_errmsg` (`CString::into_raw`), freed once.
                drop(unsafe { CString::from_raw(err) });
            }
        },
    )
}

/// Destroys a plugin, waiting for a call running on another thread to finish. Every pointer
/// obtained from it becomes invalid. NULL is a no-op; so is freeing a plugin from inside one
/// of its own host functions (it is in use).
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_free(plugin: *mut ExtismPlugin) {
    guard(
        |_| (),
        || {
            // SAFETY: NULL or a live plugin, per the header.
            let Some(p) = (unsafe { plugin.as_ref() }) else {
                return;
            };
            if p.lock("extism_plugin_free").is_none() {
                return;
            }
            // SAFETY: the pointer came from a constructor and is freed once; no call runs.
            drop(unsafe { Box::from_raw(plugin) });
        },
    )
}

/// Calls `func_name` with `data_len` bytes of input (`data` may be NULL when the length is 0).
/// Returns the call's return code (`spec/guest-abi.md` §11.3), or -1 for a NULL plugin, bad
/// arguments, or a re-entrant call from one of the plugin's own host functions. Serialised
/// with other calls on the same plugin.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_call(
    plugin: *mut ExtismPlugin,
    func_name: *const c_char,
    data: *const u8,
    data_len: ExtismSize,
) -> i32 {
    unsafe {
        extism_plugin_call_with_host_context(
            plugin,
            func_name,
            data,
            data_len,
            std::ptr::null_mut(),
        )
    }
}

/// Like `extism_plugin_call`; host functions of this call get `host_context` from
/// `extism_current_plugin_host_context`. The library never reads or frees it.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_call_with_host_context(
    plugin: *mut ExtismPlugin,
    func_name: *const c_char,
    data: *const u8,
    data_len: ExtismSize,
    host_context: *mut c_void,
) -> i32 {
    guard(
        |_| -1,
        // SAFETY: the header's contract for the arguments.
        || match unsafe { plugin.as_ref() } {
            Some(p) => unsafe { p.call(func_name, data, data_len, host_context) },
            None => -1,
        },
    )
}

/// The last call's error, or NULL if it succeeded (or for NULL / re-entrant use). Owned by
/// the plugin; the same pointer until the next call or `extism_plugin_free`.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_error(plugin: *mut ExtismPlugin) -> *const c_char {
    guard(
        |_| std::ptr::null(),
        || {
            // SAFETY: NULL or a live plugin.
            let held = unsafe { plugin.as_ref() }.and_then(|p| p.lock("extism_plugin_error"));
            held.and_then(|h| h.error.as_ref().map(|e| e.as_ptr()))
                .unwrap_or(std::ptr::null())
        },
    )
}

/// Deprecated name of `extism_plugin_error`.
#[no_mangle]
pub unsafe extern "C" fn extism_error(plugin: *mut ExtismPlugin) -> *const c_char {
    unsafe { extism_plugin_error(plugin) }
}

/// Length of the last call's output; 0 for NULL / re-entrant use.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_output_length(plugin: *mut ExtismPlugin) -> ExtismSize {
    guard(
        |_| 0,
        || {
            // SAFETY: NULL or a live plugin.
            let held =
                unsafe { plugin.as_ref() }.and_then(|p| p.lock("extism_plugin_output_length"));
            held.map_or(0, |h| h.plugin.output().len() as ExtismSize)
        },
    )
}

/// The last call's output bytes, in kernel memory: valid until the next call, reset or free.
/// Never NULL for a valid plugin; NULL for NULL / re-entrant use.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_output_data(plugin: *mut ExtismPlugin) -> *const u8 {
    guard(
        |_| std::ptr::null(),
        || {
            // SAFETY: NULL or a live plugin.
            let held = unsafe { plugin.as_ref() }.and_then(|p| p.lock("extism_plugin_output_data"));
            held.map_or(std::ptr::null(), |h| h.plugin.output_ptr())
        },
    )
}

/// The 16 bytes of the plugin's UUID v4; owned by the plugin, constant for its life. NULL for
/// NULL.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_id(plugin: *mut ExtismPlugin) -> *const u8 {
    // SAFETY: NULL or a live plugin.
    guard(
        |_| std::ptr::null(),
        || unsafe { plugin.as_ref() }.map_or(std::ptr::null(), |p| p.id.as_ptr()),
    )
}

/// Merges a JSON object of string (set) or null (remove) values into the plugin's config.
/// `false`, changing nothing, for NULL arguments, invalid JSON, other value types, or
/// re-entrant use.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_config(
    plugin: *mut ExtismPlugin,
    json: *const u8,
    json_size: ExtismSize,
) -> bool {
    guard(
        |_| false,
        || {
            // SAFETY: NULL or a live plugin, and NULL or `json_size` readable bytes.
            let (Some(p), Ok(json)) = (unsafe { plugin.as_ref() }, unsafe {
                c_slice(json, json_size, "json")
            }) else {
                return false;
            };
            let Ok(object) =
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(json)
            else {
                return false;
            };
            let mut changes = Vec::with_capacity(object.len());
            for (key, value) in object {
                match value {
                    serde_json::Value::String(s) => changes.push((key, Some(s))),
                    serde_json::Value::Null => changes.push((key, None)),
                    _ => return false,
                }
            }
            let Some(mut held) = p.lock("extism_plugin_config") else {
                return false;
            };
            let config = held.plugin.config_mut();
            for (key, value) in changes {
                match value {
                    Some(v) => config.insert(key, v),
                    None => config.remove(&key),
                };
            }
            true
        },
    )
}

/// True if the main module exports `func_name` as `() -> ()` or `() -> i32`. Runs no wasm and
/// takes no lock.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_function_exists(
    plugin: *mut ExtismPlugin,
    func_name: *const c_char,
) -> bool {
    guard(
        |_| false,
        || {
            // SAFETY: NULL or a live plugin and a NUL-terminated string.
            match (unsafe { plugin.as_ref() }, unsafe {
                c_str(func_name, "func_name")
            }) {
                (Some(p), Ok(name)) => p.compiled.function_exists(name),
                _ => false,
            }
        },
    )
}

/// Releases every kernel block and forgets input, output and error slots (vars, config and
/// the instance are kept); the output is empty afterwards. `false` if the reset failed, for
/// NULL, or for re-entrant use.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_reset(plugin: *mut ExtismPlugin) -> bool {
    guard(
        |_| false,
        || {
            // SAFETY: NULL or a live plugin.
            let held = unsafe { plugin.as_ref() }.and_then(|p| p.lock("extism_plugin_reset"));
            held.is_some_and(|mut h| h.plugin.reset().is_ok())
        },
    )
}

/// Makes `http_headers` return the latest response's headers for this plugin, for good.
/// No-op for NULL or re-entrant use.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_allow_http_response_headers(plugin: *mut ExtismPlugin) {
    guard(
        |_| (),
        || {
            // SAFETY: NULL or a live plugin.
            if let Some(mut held) = unsafe { plugin.as_ref() }
                .and_then(|p| p.lock("extism_plugin_allow_http_response_headers"))
            {
                held.plugin.allow_http_response_headers();
            }
        },
    )
}
