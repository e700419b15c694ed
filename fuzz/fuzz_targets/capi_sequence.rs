//! Sequences of C API calls (`extism::sdk`, the functions of include/extism.h) with arbitrary
//! arguments: plugins from the bundled test plugins or garbage bytes, compiled plugins, host
//! functions with user data, calls to existing and missing functions, config JSON, reset,
//! function_exists, cancel, the error/output/id accessors and every free. Only NULL and live
//! objects are passed (the API's contract); the library must not crash or panic, echo must echo,
//! and every `free_user_data` must run exactly once, when the last owner is gone.
#![no_main]
use std::{
    collections::HashSet,
    ffi::{c_char, c_void, CStr, CString},
    ptr::{null, null_mut},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use arbitrary::Arbitrary;
use extism::sdk::{
    cancel::*, compiled::*, current_plugin::*, function::*, plugin::*, version::*, ExtismSize,
};
use libfuzzer_sys::fuzz_target;

const COUNT_VOWELS: &[u8] = include_bytes!("../../testdata/rust/wasm/count_vowels.wasm");
const ECHO: &[u8] = include_bytes!("../../testdata/rust/wasm/echo.wasm");
const HOST_FNS: &[u8] = include_bytes!("../../testdata/rust/wasm/host_fns.wasm");
const WAT: &str = r#"(module
  (import "extism:host/env" "input_length" (func $len (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $out (param i64 i64)))
  (import "extism:host/env" "error_set" (func $err (param i64)))
  (func (export "run") (result i32) (call $out (call $alloc (call $len)) (call $len)) (i32.const 0))
  (func (export "fail") (result i32) (call $err (call $alloc (i64.const 3))) (i32.const 7))
  (func (export "trap") (result i32) unreachable))"#;

/// Function names tried on every plugin: exports of the bundled plugins and a few others.
const NAMES: &[&str] = &[
    "count_vowels",
    "echo",
    "roundtrip",
    "read_context",
    "trap",
    "fail",
    "ok_after_error",
    "config_get",
    "var_roundtrip",
    "count_calls",
    "loop_forever",
    "run",
    "_start",
    "memory",
    "host_reflect",
    "host_context",
    "",
];

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Kind {
    CountVowels,
    Echo,
    /// faults.wasm in a manifest with a short timeout (it has `loop_forever`)
    Faults,
    HostFns,
    Wat,
}

#[derive(Arbitrary, Debug)]
enum Source {
    Known(Kind),
    Garbage(Vec<u8>),
    /// A manifest-looking document: `{` + arbitrary bytes
    Manifest(Vec<u8>),
    Null,
}

#[derive(Arbitrary, Debug)]
enum Fns {
    None,
    /// Fresh `host_reflect` and `host_context` functions with counted user data
    Fresh,
    /// Functions already made by `NewFunction` (attached or not)
    Existing(Vec<u8>),
    /// A NULL array with a count
    NullArray(u8),
    /// An array holding NULL
    NullEntry,
}

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Bytes(Vec<u8>),
    Null,
}

#[derive(Arbitrary, Debug)]
enum Op {
    NewPlugin {
        src: Source,
        fns: Fns,
        wasi: bool,
        fuel: Option<u32>,
    },
    NewCompiled {
        src: Source,
        fns: Fns,
        fuel: Option<u32>,
    },
    FromCompiled(u8),
    NewFunction {
        name: Name,
        inputs: Vec<i32>,
        outputs: Vec<i32>,
        null_inputs: bool,
        user_data: bool,
    },
    SetNamespace(u8, Name),
    FreeFunction(u8),
    Call {
        plugin: u8,
        name: Name,
        input: Vec<u8>,
        null_data: bool,
        host_context: bool,
    },
    Config(u8, Vec<u8>),
    ConfigPairs(u8, Vec<(String, Option<String>)>),
    Reset(u8),
    FunctionExists(u8, Name),
    Cancel(u8),
    Accessors(u8),
    AllowHeaders(u8),
    FreePlugin(u8),
    FreeCompiled(u8),
}

/// User data handed to host functions: live tokens; freeing one twice or an unknown one fails.
static LIVE: Mutex<Option<HashSet<u64>>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(1);

fn live() -> std::sync::MutexGuard<'static, Option<HashSet<u64>>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_token() -> *mut c_void {
    let token = NEXT.fetch_add(1, Ordering::Relaxed);
    live().get_or_insert_with(HashSet::new).insert(token);
    Box::into_raw(Box::new(token)) as *mut c_void
}

unsafe extern "C" fn free_token(data: *mut c_void) {
    let token = *Box::from_raw(data as *mut u64);
    let removed = live().get_or_insert_with(HashSet::new).remove(&token);
    assert!(removed, "user data {token} freed twice or never given");
}

/// `host_reflect`: copies the input block to a new block (any arity is tolerated).
unsafe extern "C" fn reflect(
    plugin: *mut ExtismCurrentPlugin,
    inputs: *const ExtismVal,
    n_inputs: ExtismSize,
    outputs: *mut ExtismVal,
    n_outputs: ExtismSize,
    _data: *mut c_void,
) {
    if n_outputs == 0 {
        return;
    }
    let out = &mut *outputs;
    if n_inputs == 0 || (*inputs).t != 1 || out.t != 1 {
        return;
    }
    let h = (*inputs).v.i64 as u64;
    let len = extism_current_plugin_memory_length(plugin, h);
    let r = extism_current_plugin_memory_alloc(plugin, len);
    let base = extism_current_plugin_memory(plugin);
    if len != 0 && r != 0 && !base.is_null() {
        std::ptr::copy(base.add(h as usize), base.add(r as usize), len as usize);
    }
    extism_current_plugin_memory_free(plugin, h);
    out.v.i64 = r as i64;
}

/// `host_context`: the host context as a string, if any.
unsafe extern "C" fn context(
    plugin: *mut ExtismCurrentPlugin,
    _inputs: *const ExtismVal,
    _n_inputs: ExtismSize,
    outputs: *mut ExtismVal,
    n_outputs: ExtismSize,
    _data: *mut c_void,
) {
    if n_outputs == 0 || (*outputs).t != 1 {
        return;
    }
    let ctx = extism_current_plugin_host_context(plugin) as *const u8;
    let text: &[u8] = if ctx.is_null() { b"" } else { b"context" };
    let r = extism_current_plugin_memory_alloc(plugin, text.len() as u64);
    if r != 0 {
        let base = extism_current_plugin_memory(plugin);
        std::ptr::copy_nonoverlapping(text.as_ptr(), base.add(r as usize), text.len());
    }
    (*outputs).v.i64 = r as i64;
}

fn c_name(name: &Name) -> Option<CString> {
    match name {
        Name::Known(i) => Some(CString::new(NAMES[*i as usize % NAMES.len()]).unwrap()),
        Name::Bytes(b) => {
            Some(CString::new(b.iter().map(|&c| c.max(1)).collect::<Vec<u8>>()).unwrap())
        }
        Name::Null => None,
    }
}

fn source(src: &Source) -> (Vec<u8>, Option<Kind>, bool) {
    match src {
        Source::Known(kind) => {
            let bytes = match kind {
                Kind::CountVowels => COUNT_VOWELS.to_vec(),
                Kind::Echo => ECHO.to_vec(),
                Kind::HostFns => HOST_FNS.to_vec(),
                Kind::Wat => WAT.as_bytes().to_vec(),
                Kind::Faults => format!(
                    r#"{{"wasm": [{{"path": "{}/../testdata/rust/wasm/faults.wasm"}}], "timeout_ms": 20, "config": {{"k": "v"}}}}"#,
                    env!("CARGO_MANIFEST_DIR")
                )
                .into_bytes(),
            };
            (bytes, Some(*kind), false)
        }
        Source::Garbage(b) => (b.clone(), None, false),
        Source::Manifest(b) => {
            let mut m = b"{".to_vec();
            m.extend_from_slice(b);
            (m, None, false)
        }
        Source::Null => (Vec::new(), None, true),
    }
}

struct State {
    plugins: Vec<(*mut ExtismPlugin, Option<Kind>)>,
    compiled: Vec<(*mut ExtismCompiledPlugin, Option<Kind>)>,
    functions: Vec<*mut ExtismFunction>,
}

impl State {
    fn plugin(&self, i: u8) -> (*mut ExtismPlugin, Option<Kind>) {
        // one index past the end (and more) means NULL
        self.plugins
            .get(i as usize % (self.plugins.len() + 1))
            .copied()
            .unwrap_or((null_mut(), None))
    }

    fn function(&self, i: u8) -> *mut ExtismFunction {
        self.functions
            .get(i as usize % (self.functions.len() + 1))
            .copied()
            .unwrap_or(null_mut())
    }

    /// The functions array of a constructor; fresh functions are freed by the caller after
    /// the constructor (the API allows it whether or not they were attached).
    fn functions_for(
        &self,
        fns: &Fns,
        fresh: &mut Vec<*mut ExtismFunction>,
    ) -> (Vec<*const ExtismFunction>, ExtismSize, bool) {
        match fns {
            Fns::None => (Vec::new(), 0, false),
            Fns::Fresh => unsafe {
                let ptr = [1 as ExtismValType];
                let r = extism_function_new(
                    c"host_reflect".as_ptr(),
                    ptr.as_ptr(),
                    1,
                    ptr.as_ptr(),
                    1,
                    Some(reflect),
                    new_token(),
                    Some(free_token),
                );
                let c = extism_function_new(
                    c"host_context".as_ptr(),
                    null(),
                    0,
                    ptr.as_ptr(),
                    1,
                    Some(context),
                    new_token(),
                    Some(free_token),
                );
                assert!(!r.is_null() && !c.is_null());
                fresh.push(r);
                fresh.push(c);
                (vec![r as *const _, c as *const _], 2, false)
            },
            Fns::Existing(idx) => {
                let v: Vec<*const ExtismFunction> = idx
                    .iter()
                    .take(4)
                    .map(|&i| self.function(i) as *const _)
                    .collect();
                let n = v.len() as ExtismSize;
                (v, n, false)
            }
            Fns::NullArray(n) => (Vec::new(), *n as ExtismSize, true),
            Fns::NullEntry => (vec![null()], 1, false),
        }
    }
}

unsafe fn check_errmsg(err: *mut c_char, ok: bool) {
    if ok {
        assert!(err.is_null(), "errmsg set on success");
    } else {
        assert!(!err.is_null(), "no errmsg on failure");
        let _ = CStr::from_ptr(err).to_bytes().len();
        extism_plugin_new_error_free(err);
    }
}

unsafe fn run(ops: &[Op]) {
    let mut st = State {
        plugins: Vec::new(),
        compiled: Vec::new(),
        functions: Vec::new(),
    };
    for op in ops.iter().take(48) {
        match op {
            Op::NewPlugin {
                src,
                fns,
                wasi,
                fuel,
            } => {
                let (bytes, kind, null_wasm) = source(src);
                let mut fresh = Vec::new();
                let (arr, n, null_arr) = st.functions_for(fns, &mut fresh);
                let wasm = if null_wasm { null() } else { bytes.as_ptr() };
                let arr_ptr = if null_arr { null() } else { arr.as_ptr() };
                let mut err = null_mut();
                let p = match fuel {
                    Some(f) => extism_plugin_new_with_fuel_limit(
                        wasm,
                        bytes.len() as u64,
                        arr_ptr,
                        n,
                        *wasi,
                        *f as u64 * 1000,
                        &mut err,
                    ),
                    None => {
                        extism_plugin_new(wasm, bytes.len() as u64, arr_ptr, n, *wasi, &mut err)
                    }
                };
                check_errmsg(err, !p.is_null());
                for f in fresh {
                    extism_function_free(f);
                }
                if !p.is_null() {
                    // a fuel limit may stop any call: no expectations then
                    st.plugins
                        .push((p, if fuel.is_some() { None } else { kind }));
                }
            }
            Op::NewCompiled { src, fns, fuel } => {
                let (bytes, kind, null_wasm) = source(src);
                let mut fresh = Vec::new();
                let (arr, n, null_arr) = st.functions_for(fns, &mut fresh);
                let wasm = if null_wasm { null() } else { bytes.as_ptr() };
                let arr_ptr = if null_arr { null() } else { arr.as_ptr() };
                let mut err = null_mut();
                let c = match fuel {
                    Some(f) => extism_compiled_plugin_new_with_fuel_limit(
                        wasm,
                        bytes.len() as u64,
                        arr_ptr,
                        n,
                        false,
                        *f as u64 * 1000,
                        &mut err,
                    ),
                    None => extism_compiled_plugin_new(
                        wasm,
                        bytes.len() as u64,
                        arr_ptr,
                        n,
                        false,
                        &mut err,
                    ),
                };
                check_errmsg(err, !c.is_null());
                for f in fresh {
                    extism_function_free(f);
                }
                if !c.is_null() {
                    st.compiled
                        .push((c, if fuel.is_some() { None } else { kind }));
                }
            }
            Op::FromCompiled(i) => {
                let (c, kind) = st
                    .compiled
                    .get(*i as usize % (st.compiled.len() + 1))
                    .copied()
                    .unwrap_or((null_mut(), None));
                let mut err = null_mut();
                let p = extism_plugin_new_from_compiled(c, &mut err);
                check_errmsg(err, !p.is_null());
                if !p.is_null() {
                    st.plugins.push((p, kind));
                }
            }
            Op::NewFunction {
                name,
                inputs,
                outputs,
                null_inputs,
                user_data,
            } => {
                let name = c_name(name);
                let inputs: Vec<i32> = inputs.iter().take(8).map(|t| t.rem_euclid(8)).collect();
                let outputs: Vec<i32> = outputs.iter().take(4).map(|t| t.rem_euclid(8)).collect();
                let data = if *user_data { new_token() } else { null_mut() };
                let f = extism_function_new(
                    name.as_ref().map_or(null(), |n| n.as_ptr()),
                    if *null_inputs {
                        null()
                    } else {
                        inputs.as_ptr()
                    },
                    inputs.len() as u64,
                    outputs.as_ptr(),
                    outputs.len() as u64,
                    Some(reflect),
                    data,
                    Some(free_token),
                );
                if f.is_null() {
                    // refused: the library keeps nothing, the data is still ours
                    if *user_data {
                        free_token(data);
                    }
                } else {
                    st.functions.push(f);
                }
            }
            Op::SetNamespace(i, name) => {
                let name = c_name(name);
                extism_function_set_namespace(
                    st.function(*i),
                    name.as_ref().map_or(null(), |n| n.as_ptr()),
                );
            }
            Op::FreeFunction(i) => {
                let f = st.function(*i);
                extism_function_free(f);
                st.functions.retain(|&g| g != f);
            }
            Op::Call {
                plugin,
                name,
                input,
                null_data,
                host_context,
            } => {
                let (p, kind) = st.plugin(*plugin);
                let name = c_name(name);
                let data = if *null_data { null() } else { input.as_ptr() };
                let ctx = if *host_context {
                    c"ctx".as_ptr() as *mut c_void
                } else {
                    null_mut()
                };
                let rc = extism_plugin_call_with_host_context(
                    p,
                    name.as_ref().map_or(null(), |n| n.as_ptr()),
                    data,
                    input.len() as u64,
                    ctx,
                );
                let err = extism_plugin_error(p);
                if p.is_null() {
                    assert_eq!(rc, -1);
                    assert!(err.is_null());
                    continue;
                }
                if rc != 0 {
                    // a failed call says why (exit codes of WASI plugins aside)
                    assert!(!err.is_null() || kind.is_none(), "rc {rc} without an error");
                }
                if !err.is_null() {
                    let _ = CStr::from_ptr(err).to_bytes().len();
                }
                let len = extism_plugin_output_length(p);
                let out = extism_plugin_output_data(p);
                assert!(!out.is_null());
                let out = std::slice::from_raw_parts(out, len as usize);
                let echo_call = kind == Some(Kind::Echo)
                    && name.as_ref().is_some_and(|n| n.as_bytes() == b"echo")
                    && !(*null_data && !input.is_empty());
                if echo_call {
                    assert_eq!(rc, 0);
                    assert_eq!(out, &input[..], "echo");
                }
            }
            Op::Config(i, json) => {
                let (p, _) = st.plugin(*i);
                let ok = extism_plugin_config(p, json.as_ptr(), json.len() as u64);
                if ok {
                    assert!(!p.is_null());
                }
            }
            Op::ConfigPairs(i, pairs) => {
                let (p, _) = st.plugin(*i);
                let map: serde_json_map::Map = pairs.iter().cloned().collect();
                let json = map.to_json();
                let ok = extism_plugin_config(p, json.as_ptr(), json.len() as u64);
                assert_eq!(ok, !p.is_null(), "config {json}");
            }
            Op::Reset(i) => {
                let (p, _) = st.plugin(*i);
                let ok = extism_plugin_reset(p);
                assert_eq!(ok, !p.is_null());
                if ok {
                    assert_eq!(extism_plugin_output_length(p), 0);
                }
            }
            Op::FunctionExists(i, name) => {
                let (p, _) = st.plugin(*i);
                let name = c_name(name);
                let yes =
                    extism_plugin_function_exists(p, name.as_ref().map_or(null(), |n| n.as_ptr()));
                if p.is_null() || name.is_none() {
                    assert!(!yes);
                }
            }
            Op::Cancel(i) => {
                let (p, _) = st.plugin(*i);
                let h = extism_plugin_cancel_handle(p);
                assert_eq!(h.is_null(), p.is_null());
                assert_eq!(extism_plugin_cancel(h), !p.is_null());
            }
            Op::Accessors(i) => {
                let (p, _) = st.plugin(*i);
                let id = extism_plugin_id(p);
                assert_eq!(id.is_null(), p.is_null());
                if !id.is_null() {
                    let _ = std::slice::from_raw_parts(id, 16)
                        .iter()
                        .fold(0u8, |a, b| a ^ b);
                }
                let e = extism_error(p);
                if !e.is_null() {
                    let _ = CStr::from_ptr(e).to_bytes().len();
                }
                let len = extism_plugin_output_length(p);
                let data = extism_plugin_output_data(p);
                assert_eq!(data.is_null(), p.is_null());
                if !data.is_null() {
                    let _ = std::slice::from_raw_parts(data, len as usize)
                        .iter()
                        .fold(0u8, |a, b| a ^ b);
                }
                assert!(!CStr::from_ptr(extism_version()).to_bytes().is_empty());
            }
            Op::AllowHeaders(i) => extism_plugin_allow_http_response_headers(st.plugin(*i).0),
            Op::FreePlugin(i) => {
                let (p, _) = st.plugin(*i);
                extism_plugin_free(p);
                st.plugins.retain(|&(q, _)| q != p);
            }
            Op::FreeCompiled(i) => {
                let c = st
                    .compiled
                    .get(*i as usize % (st.compiled.len() + 1))
                    .map_or(null_mut(), |c| c.0);
                extism_compiled_plugin_free(c);
                st.compiled.retain(|&(d, _)| d != c);
            }
        }
    }
    for (p, _) in st.plugins {
        extism_plugin_free(p);
    }
    for (c, _) in st.compiled {
        extism_compiled_plugin_free(c);
    }
    for f in st.functions {
        extism_function_free(f);
    }
    // every user data given to the library has been released exactly once
    let left = live().as_ref().map_or(0, HashSet::len);
    assert_eq!(left, 0, "user data never freed");
}

/// Just enough JSON writing for `ConfigPairs` (no serde_json dependency in the fuzz crate).
mod serde_json_map {
    pub struct Map(Vec<(String, Option<String>)>);

    impl FromIterator<(String, Option<String>)> for Map {
        fn from_iter<I: IntoIterator<Item = (String, Option<String>)>>(iter: I) -> Self {
            Map(iter.into_iter().collect())
        }
    }

    fn quote(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out += "\\\"",
                '\\' => out += "\\\\",
                c if (c as u32) < 0x20 => out += &format!("\\u{:04x}", c as u32),
                c => out.push(c),
            }
        }
        out + "\""
    }

    impl Map {
        pub fn to_json(&self) -> String {
            let fields: Vec<String> = self
                .0
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}: {}",
                        quote(k),
                        v.as_deref().map_or("null".into(), quote)
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// Compiled modules are cached only while a plugin uses them: these keep the bundled plugins
/// compiled for the whole run, so iterations exercise the API rather than the compiler.
static KEEP: std::sync::OnceLock<Vec<extism::CompiledPlugin>> = std::sync::OnceLock::new();

fn keep() {
    KEEP.get_or_init(|| {
        let dummy = |name: &str, params: &[extism::ValType]| {
            extism::Function::new(
                name,
                params.iter().cloned(),
                [extism::PTR],
                extism::UserData::new(()),
                |_, _, _, _| Ok(()),
            )
        };
        [
            Kind::CountVowels,
            Kind::Echo,
            Kind::Faults,
            Kind::HostFns,
            Kind::Wat,
        ]
        .into_iter()
        .map(|kind| {
            let (bytes, _, _) = source(&Source::Known(kind));
            extism::PluginBuilder::new(&bytes[..])
                .with_functions([
                    dummy("host_reflect", &[extism::PTR]),
                    dummy("host_context", &[]),
                ])
                .compile()
                .expect("bundled plugin compiles")
        })
        .collect()
    });
}

fuzz_target!(|ops: Vec<Op>| {
    keep();
    unsafe { run(&ops) };
});
