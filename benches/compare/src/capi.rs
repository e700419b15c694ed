//! The slice of the C API (`include/extism.h`) the comparison drives, loaded from a shared
//! library by path. Both libraries export the same names; each is opened `RTLD_LOCAL`, so every
//! symbol is looked up in its own library only.

use std::ffi::{c_char, c_void, CStr, CString};

use libloading::Library;

pub type Plugin = *mut c_void;
pub type Compiled = *mut c_void;
pub type Function = *mut c_void;
pub type CurrentPlugin = *mut c_void;

/// `ExtismVal`: the type tag, then the 8-byte union at offset 8.
#[repr(C)]
pub struct Val {
    pub t: i32,
    pub v: i64,
}

pub const I64: i32 = 1;

pub type HostFn = unsafe extern "C" fn(CurrentPlugin, *const Val, u64, *mut Val, u64, *mut c_void);

type NewFn = unsafe extern "C" fn(
    *const u8,
    u64,
    *const Function,
    u64,
    bool,
    *mut *mut c_char,
) -> *mut c_void;

/// One loaded libextism. Function pointers stay valid while `_lib` lives, i.e. for the
/// process: an `Api` is leaked once loaded, so host-function user data can point at it.
pub struct Api {
    pub name: &'static str,
    pub version: String,
    plugin_new: NewFn,
    plugin_free: unsafe extern "C" fn(Plugin),
    plugin_call: unsafe extern "C" fn(Plugin, *const c_char, *const u8, u64) -> i32,
    plugin_error: unsafe extern "C" fn(Plugin) -> *const c_char,
    plugin_config: unsafe extern "C" fn(Plugin, *const u8, u64) -> bool,
    output_length: unsafe extern "C" fn(Plugin) -> u64,
    output_data: unsafe extern "C" fn(Plugin) -> *const u8,
    error_free: unsafe extern "C" fn(*mut c_char),
    function_new: unsafe extern "C" fn(
        *const c_char,
        *const i32,
        u64,
        *const i32,
        u64,
        HostFn,
        *mut c_void,
        Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> Function,
    function_free: unsafe extern "C" fn(Function),
    pub cp_memory: unsafe extern "C" fn(CurrentPlugin) -> *mut u8,
    pub cp_alloc: unsafe extern "C" fn(CurrentPlugin, u64) -> u64,
    pub cp_length: unsafe extern "C" fn(CurrentPlugin, u64) -> u64,
    /// `extism_compiled_plugin_new`, `_free` and `extism_plugin_new_from_compiled`, when the
    /// library has them.
    compiled: Option<(
        NewFn,
        unsafe extern "C" fn(Compiled),
        unsafe extern "C" fn(Compiled, *mut *mut c_char) -> Plugin,
    )>,
    _lib: Library,
}

// SAFETY: the C API is thread-safe for what is used here; the pointers are plain functions.
unsafe impl Sync for Api {}
unsafe impl Send for Api {}

impl Api {
    pub fn load(name: &'static str, path: &str) -> &'static Api {
        // SAFETY: loading a libextism runs no initialiser with preconditions; every symbol is
        // given the type of its declaration in extism.h.
        unsafe {
            let lib = Library::new(path).unwrap_or_else(|e| panic!("loading {path}: {e}"));
            macro_rules! sym {
                ($n:literal) => {
                    *lib.get(concat!($n, "\0").as_bytes())
                        .unwrap_or_else(|e| panic!("{path}: {}: {e}", $n))
                };
            }
            let version: unsafe extern "C" fn() -> *const c_char = sym!("extism_version");
            let compiled = match (
                lib.get::<NewFn>(b"extism_compiled_plugin_new\0"),
                lib.get::<unsafe extern "C" fn(Compiled)>(b"extism_compiled_plugin_free\0"),
                lib.get::<unsafe extern "C" fn(Compiled, *mut *mut c_char) -> Plugin>(
                    b"extism_plugin_new_from_compiled\0",
                ),
            ) {
                (Ok(a), Ok(b), Ok(c)) => Some((*a, *b, *c)),
                _ => None,
            };
            let api = Api {
                name,
                version: CStr::from_ptr(version()).to_string_lossy().into_owned(),
                plugin_new: sym!("extism_plugin_new"),
                plugin_free: sym!("extism_plugin_free"),
                plugin_call: sym!("extism_plugin_call"),
                plugin_error: sym!("extism_plugin_error"),
                plugin_config: sym!("extism_plugin_config"),
                output_length: sym!("extism_plugin_output_length"),
                output_data: sym!("extism_plugin_output_data"),
                error_free: sym!("extism_plugin_new_error_free"),
                function_new: sym!("extism_function_new"),
                function_free: sym!("extism_function_free"),
                cp_memory: sym!("extism_current_plugin_memory"),
                cp_alloc: sym!("extism_current_plugin_memory_alloc"),
                cp_length: sym!("extism_current_plugin_memory_length"),
                compiled,
                _lib: lib,
            };
            Box::leak(Box::new(api))
        }
    }

    pub fn has_compiled(&self) -> bool {
        self.compiled.is_some()
    }

    fn check(&self, p: *mut c_void, errmsg: *mut c_char, what: &str) -> *mut c_void {
        if p.is_null() {
            let msg = if errmsg.is_null() {
                "(no message)".to_string()
            } else {
                // SAFETY: a NUL-terminated message from the library, freed right after.
                let m = unsafe { CStr::from_ptr(errmsg) }
                    .to_string_lossy()
                    .into_owned();
                unsafe { (self.error_free)(errmsg) };
                m
            };
            panic!("{}: {what} failed: {msg}", self.name);
        }
        p
    }

    pub fn plugin_new(&self, wasm: &[u8], functions: &[Function], wasi: bool) -> Plugin {
        let mut err = std::ptr::null_mut();
        // SAFETY: valid buffers for the duration of the call.
        let p = unsafe {
            (self.plugin_new)(
                wasm.as_ptr(),
                wasm.len() as u64,
                functions.as_ptr(),
                functions.len() as u64,
                wasi,
                &mut err,
            )
        };
        self.check(p, err, "extism_plugin_new")
    }

    pub fn compiled_new(&self, wasm: &[u8], wasi: bool) -> Compiled {
        let (new, _, _) = self.compiled.expect("no compiled plugins in this library");
        let mut err = std::ptr::null_mut();
        // SAFETY: as for plugin_new.
        let p = unsafe {
            new(
                wasm.as_ptr(),
                wasm.len() as u64,
                std::ptr::null(),
                0,
                wasi,
                &mut err,
            )
        };
        self.check(p, err, "extism_compiled_plugin_new")
    }

    pub fn compiled_free(&self, c: Compiled) {
        let (_, free, _) = self.compiled.expect("no compiled plugins in this library");
        // SAFETY: `c` came from compiled_new and is freed once.
        unsafe { free(c) }
    }

    pub fn plugin_from_compiled(&self, c: Compiled) -> Plugin {
        let (_, _, from) = self.compiled.expect("no compiled plugins in this library");
        let mut err = std::ptr::null_mut();
        // SAFETY: `c` is a live compiled plugin.
        let p = unsafe { from(c, &mut err) };
        self.check(p, err, "extism_plugin_new_from_compiled")
    }

    pub fn plugin_free(&self, p: Plugin) {
        // SAFETY: `p` is a live plugin, freed once.
        unsafe { (self.plugin_free)(p) }
    }

    /// One call; returns the output length (the bytes stay in the plugin). Panics on failure:
    /// every workload here is expected to succeed.
    pub fn call(&self, p: Plugin, func: &CStr, input: &[u8]) -> u64 {
        // SAFETY: live plugin, NUL-terminated name, valid input buffer.
        unsafe {
            let rc = (self.plugin_call)(p, func.as_ptr(), input.as_ptr(), input.len() as u64);
            if rc != 0 {
                let e = (self.plugin_error)(p);
                let msg = if e.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(e).to_string_lossy().into_owned()
                };
                panic!("{}: call {func:?} returned {rc}: {msg}", self.name);
            }
            let len = (self.output_length)(p);
            std::hint::black_box((self.output_data)(p));
            len
        }
    }

    /// Merges a JSON object of config values into the plugin's config.
    pub fn config(&self, p: Plugin, json: &str) {
        // SAFETY: live plugin, valid buffer.
        let ok = unsafe { (self.plugin_config)(p, json.as_ptr(), json.len() as u64) };
        assert!(ok, "{}: extism_plugin_config {json} failed", self.name);
    }

    pub fn output(&self, p: Plugin) -> Vec<u8> {
        // SAFETY: the output of the latest call, valid until the next one.
        unsafe {
            let len = (self.output_length)(p) as usize;
            let data = (self.output_data)(p);
            if len == 0 {
                return Vec::new();
            }
            std::slice::from_raw_parts(data, len).to_vec()
        }
    }

    /// A host function `extism:host/user::name` whose user data is this `Api`.
    pub fn function(
        &'static self,
        name: &str,
        params: &[i32],
        results: &[i32],
        f: HostFn,
    ) -> Function {
        let name = CString::new(name).unwrap();
        // SAFETY: valid arrays; user data is the leaked Api, never freed.
        let func = unsafe {
            (self.function_new)(
                name.as_ptr(),
                params.as_ptr(),
                params.len() as u64,
                results.as_ptr(),
                results.len() as u64,
                f,
                self as *const Api as *mut c_void,
                None,
            )
        };
        assert!(!func.is_null(), "{}: extism_function_new failed", self.name);
        func
    }

    /// Frees a function object; after attaching it only releases the wrapper (the plugin keeps
    /// the definition).
    pub fn function_free(&self, f: Function) {
        // SAFETY: a function object of this library, freed once.
        unsafe { (self.function_free)(f) }
    }
}
