//! `ExtismCompiledPlugin` and the compile step shared by every plugin constructor (§5 of
//! `spec/c-api.md`).

use std::ffi::c_char;

use super::{c_slice, function, guard, set_errmsg, ExtismSize};
use crate::{CompiledPlugin, PluginBuilder};

/// Opaque `ExtismCompiledPlugin` of the header: immutable, shared by the plugins made from it.
pub struct ExtismCompiledPlugin {
    pub(crate) compiled: CompiledPlugin,
}

/// Prefix of every compile-stage error.
pub(crate) const COMPILE_ERROR: &str = "Unable to compile Extism plugin: ";

/// Compiles the C constructor arguments. The host functions are taken out of their
/// `ExtismFunction`s first, as upstream does, so they are consumed whatever happens next: a
/// constructor that fails drops them (running `free_user_data`). The error is the final
/// `errmsg` text.
///
/// # Safety
/// The pointers are NULL or valid as the header describes.
pub(crate) unsafe fn compile(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *const *const function::ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: Option<u64>,
) -> Result<CompiledPlugin, String> {
    let functions = function::take_all(functions, n_functions)?;
    if wasm.is_null() {
        return Err(format!("{COMPILE_ERROR}wasm is a null pointer"));
    }
    let wasm = c_slice(wasm, wasm_size, "wasm").map_err(|e| format!("{COMPILE_ERROR}{e}"))?;
    let mut builder = PluginBuilder::new(wasm)
        .with_wasi(with_wasi)
        .with_functions(functions);
    if let Some(fuel) = fuel_limit {
        builder = builder.with_fuel_limit(fuel);
    }
    builder
        .compile()
        .map_err(|e| format!("{COMPILE_ERROR}{}", cause(&e)))
}

/// The text of a constructor error: the whole chain of causes, outermost first, so that
/// neither the step that failed nor its reason is lost.
pub(crate) fn cause(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

/// The two compiled-plugin constructors.
///
/// # Safety
/// The pointers are NULL or valid as the header describes.
unsafe fn new_compiled(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *const *const function::ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: Option<u64>,
    errmsg: *mut *mut c_char,
) -> *mut ExtismCompiledPlugin {
    guard(
        |panic| Err(format!("{COMPILE_ERROR}internal error: {panic}")),
        // SAFETY: the header's contract for the arguments.
        || unsafe {
            compile(
                wasm,
                wasm_size,
                functions,
                n_functions,
                with_wasi,
                fuel_limit,
            )
        },
    )
    .map_or_else(
        |e| {
            // SAFETY: `errmsg` is NULL or writable, per the header.
            unsafe { set_errmsg(errmsg, e) };
            std::ptr::null_mut()
        },
        |compiled| Box::into_raw(Box::new(ExtismCompiledPlugin { compiled })),
    )
}

/// Compiles a plugin (manifest, wasm or WAT) without instantiating it. Returns NULL and sets
/// `*errmsg` on failure. The caller owns the result (`extism_compiled_plugin_free`); the
/// functions passed now belong to it (or, on failure, were freed).
#[no_mangle]
pub unsafe extern "C" fn extism_compiled_plugin_new(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *const *const function::ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    errmsg: *mut *mut c_char,
) -> *mut ExtismCompiledPlugin {
    let fuel = None;
    unsafe {
        new_compiled(
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

/// Like `extism_compiled_plugin_new`; every plugin made from it gets a per-call fuel limit.
#[no_mangle]
pub unsafe extern "C" fn extism_compiled_plugin_new_with_fuel_limit(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *const *const function::ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: u64,
    errmsg: *mut *mut c_char,
) -> *mut ExtismCompiledPlugin {
    let fuel = Some(fuel_limit);
    unsafe {
        new_compiled(
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

/// Frees a compiled plugin; plugins made from it stay valid. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn extism_compiled_plugin_free(plugin: *mut ExtismCompiledPlugin) {
    guard(
        |_| (),
        || {
            if !plugin.is_null() {
                // SAFETY: the pointer came from a compiled-plugin constructor, freed once.
                drop(unsafe { Box::from_raw(plugin) });
            }
        },
    )
}
