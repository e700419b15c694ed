//! Upstream `extism` 1.41's Rust API used as an upstream user writes it: `host_fn!`,
//! `typed_plugin!`, `extism::convert` encodings with the derives, `UserData`, `CurrentPlugin`
//! named without a lifetime, `PluginBuilder` options and return codes. Only items upstream
//! has are used, so this file also builds against upstream's crate.

use extism::{
    convert::{Json, MemoryHandle},
    host_fn, typed_plugin, CurrentPlugin, Function, Manifest, Plugin, PluginBuilder, UserData, Val,
    ValType, Wasm, PTR,
};
use serde::{Deserialize, Serialize};

/// Calls `extism:host/user::transform` with its input and outputs what it returns; `rc`
/// returns 7 without setting an error.
const WAT: &str = r#"(module
  (import "extism:host/env" "input_length" (func $len (result i64)))
  (import "extism:host/env" "input_offset" (func $off (result i64)))
  (import "extism:host/env" "output_set" (func $out (param i64 i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/user" "transform" (func $transform (param i64) (result i64)))
  (func (export "run") (result i32) (local $h i64)
    (local.set $h (call $transform (call $off)))
    (call $out (local.get $h) (call $length (local.get $h)))
    (i32.const 0))
  (func (export "rc") (result i32)
    (call $out (call $off) (call $len))
    (i32.const 7)))"#;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Greeting {
    name: String,
    count: u32,
}

host_fn!(shout(text: String) -> String { Ok(text.to_uppercase()) });

host_fn!(pub count(counter: u32; text: String) -> String {
    let counter = counter.get()?;
    let mut counter = counter.lock().unwrap();
    *counter += 1;
    Ok(format!("{text}:{counter}"))
});

host_fn!(greet(g: Json<Greeting>) -> Json<Greeting> {
    let Json(mut g) = g;
    g.count += 1;
    g.name = format!("Hello, {}", g.name);
    Ok(Json(g))
});

fn manifest() -> Manifest {
    Manifest::new([Wasm::data(WAT.as_bytes().to_vec())])
}

#[test]
fn host_fn_without_user_data() {
    let f = Function::new("transform", [PTR], [PTR], UserData::new(()), shout);
    let mut plugin = Plugin::new(manifest(), [f], false).unwrap();
    let out: String = plugin.call("run", "hello").unwrap();
    assert_eq!(out, "HELLO");
}

#[test]
fn host_fn_with_user_data_shared_across_calls() {
    let counter = UserData::new(0u32);
    let mut plugin = PluginBuilder::new(manifest())
        .with_functions([Function::new(
            "transform",
            [PTR],
            [PTR],
            counter.clone(),
            count,
        )])
        .build()
        .unwrap();
    assert_eq!(plugin.call::<&str, &str>("run", "a").unwrap(), "a:1");
    assert_eq!(plugin.call::<&str, &str>("run", "b").unwrap(), "b:2");
    assert_eq!(*counter.get().unwrap().lock().unwrap(), 2);
}

#[test]
fn json_encoding_both_ways() {
    let f = Function::new("transform", [PTR], [PTR], UserData::new(()), greet);
    let mut plugin = Plugin::new(manifest(), [f], false).unwrap();
    let Json(out): Json<Greeting> = plugin
        .call(
            "run",
            Json(Greeting {
                name: "Ann".into(),
                count: 1,
            }),
        )
        .unwrap();
    assert_eq!(
        out,
        Greeting {
            name: "Hello, Ann".into(),
            count: 2
        }
    );
}

/// A hand-written host function naming `CurrentPlugin` without a lifetime, using the
/// borrowed `memory_get::<&str>`, `memory_from_val`/`memory_to_val`, vars and errors.
fn by_hand(
    plugin: &mut CurrentPlugin,
    inputs: &[Val],
    outputs: &mut [Val],
    _: UserData<()>,
) -> Result<(), extism::Error> {
    let handle: MemoryHandle = plugin.memory_from_val(&inputs[0]).unwrap();
    let text: &str = plugin.memory_get(handle)?;
    let reversed: String = text.chars().rev().collect();
    plugin
        .vars_mut()
        .insert("last".into(), reversed.clone().into_bytes());
    assert_eq!(plugin.vars()["last"], reversed.as_bytes());
    assert!(plugin.manifest().timeout_ms.is_none());
    assert!(plugin.time_remaining().is_none());
    assert!(plugin.get_error().is_none());
    let (_, len) = plugin.set_error("temporary")?;
    assert_eq!(len, 9);
    assert_eq!(plugin.get_error(), Some("temporary"));
    plugin.clear_error();
    assert!(plugin.get_error().is_none());
    let out = plugin.memory_new(reversed)?;
    outputs[0] = plugin.memory_to_val(out);
    Ok(())
}

#[test]
fn current_plugin_helpers() {
    let f = Function::new(
        "transform",
        [ValType::I64],
        [ValType::I64],
        UserData::default(),
        by_hand,
    )
    .with_namespace("extism:host/user");
    assert_eq!(f.namespace(), Some("extism:host/user"));
    let mut plugin = Plugin::new(manifest(), [f], false).unwrap();
    assert_eq!(plugin.call::<&str, String>("run", "abc").unwrap(), "cba");
}

typed_plugin!(Typed {
    run(&str) -> String;
});

typed_plugin!(pub Missing {
    nope(&str) -> String;
});

#[test]
fn typed_plugin_wraps_exports() {
    let f = Function::new("transform", [PTR], [PTR], UserData::new(()), shout);
    let plugin = Plugin::new(manifest(), [f.clone()], false).unwrap();
    let mut typed: Typed = plugin.try_into().unwrap();
    assert_eq!(typed.run("x").unwrap(), "X");
    let _plugin: Plugin = typed.into();
    let plugin = Plugin::new(manifest(), [f], false).unwrap();
    let err = Missing::try_from(plugin).err().unwrap();
    assert_eq!(err.to_string(), "Invalid function: nope");
}

#[test]
fn non_zero_return_code_without_error_returns_output() {
    let f = Function::new("transform", [PTR], [PTR], UserData::new(()), shout);
    let mut plugin = Plugin::new(manifest(), [f], false).unwrap();
    let err = plugin.call::<&str, &str>("rc", "in").unwrap_err();
    assert_eq!(err.to_string(), "Returned non-zero exit code: 7");
    assert_eq!(
        plugin
            .call_get_error_code::<&str, &str>("rc", "in")
            .unwrap(),
        "in"
    );
    assert_eq!(
        plugin
            .call_with_host_context::<&str, String, _>("rc", "ctx", 5u8)
            .unwrap(),
        "ctx"
    );
}

#[test]
fn builder_is_clone_and_takes_a_wasmtime_config() {
    let f = Function::new("transform", [PTR], [PTR], UserData::new(()), shout);
    let builder = PluginBuilder::new(manifest())
        .with_functions([f])
        .with_wasmtime_config(wasmtime::Config::new());
    let mut a = builder.clone().build().unwrap();
    let mut b = builder.build().unwrap();
    assert_eq!(a.call::<&str, &str>("run", "a").unwrap(), "A");
    assert_eq!(b.call::<&str, &str>("run", "b").unwrap(), "B");
}

#[test]
fn pool_from_many_threads() {
    use std::time::Duration;
    let pool = extism::PoolBuilder::new().with_max_instances(3).build(|| {
        PluginBuilder::new(manifest())
            .with_function("transform", [PTR], [PTR], UserData::new(()), shout)
            .build()
    });
    let ids = std::sync::Mutex::new(std::collections::HashSet::new());
    std::thread::scope(|s| {
        for t in 0..8 {
            let (pool, ids) = (&pool, &ids);
            s.spawn(move || {
                for i in 0..20 {
                    let mut plugin: extism::PoolPlugin =
                        pool.get(Duration::from_secs(30)).unwrap().unwrap();
                    ids.lock().unwrap().insert(plugin.id());
                    let out: String = plugin.call("run", format!("t{t}-{i}")).unwrap();
                    assert_eq!(out, format!("T{t}-{i}"));
                }
            });
        }
    });
    assert!(pool.count() <= 3);
    assert!(ids.lock().unwrap().len() <= 3);
    assert!(pool.function_exists("run", Duration::from_secs(1)).unwrap());
    assert!(!pool
        .function_exists("nope", Duration::from_secs(1))
        .unwrap());
    let out = pool
        .with_plugin(Duration::from_secs(1), |p| {
            p.call::<&str, String>("run", "w")
        })
        .unwrap();
    assert_eq!(out.as_deref(), Some("W"));

    // All instances checked out: `get` times out with `None`.
    let held: Vec<_> = (0..3)
        .map(|_| pool.get(Duration::from_secs(1)).unwrap().unwrap())
        .collect();
    assert!(pool.get(Duration::from_millis(10)).unwrap().is_none());
    drop(held);
    assert!(pool.get(Duration::from_millis(10)).unwrap().is_some());
}

#[test]
fn pool_reports_creation_errors_and_recovers_the_slot() {
    use std::time::Duration;
    let pool = extism::Pool::new_from_builder(
        || Plugin::new(&b"not wasm"[..], [], false),
        extism::PoolBuilder::new().with_max_instances(1),
    );
    assert!(pool.get(Duration::from_millis(10)).is_err());
    assert_eq!(pool.count(), 0);
}

#[test]
fn plugin_items() {
    let mut m = manifest();
    let mut plugin = PluginBuilder::new(&mut m)
        .with_function_in_namespace(
            extism::EXTISM_USER_MODULE,
            "transform",
            [PTR],
            [PTR],
            UserData::new(()),
            shout,
        )
        .with_wasi(true)
        .with_fuel_limit(1_000_000)
        .with_http_response_headers(true)
        .build()
        .unwrap();
    assert!(plugin.has_wasi());
    assert_eq!(plugin.cancel_handle().id, plugin.id);
    assert_eq!(plugin.call::<&str, &str>("run", "f").unwrap(), "F");
    assert!(plugin.fuel_consumed().unwrap() > 0);
    assert_eq!(extism::EXTISM_ENV_MODULE, "extism:host/env");
}

#[test]
fn manifest_builders() {
    let m = Manifest::default()
        .with_wasm(WAT.as_bytes().to_vec())
        .disallow_all_hosts()
        .with_allowed_hosts(["example.com".to_string()].into_iter())
        .with_allowed_paths([("ro:.".to_string(), std::path::PathBuf::from("/x"))].into_iter())
        .with_memory_max(4)
        .with_config_key("k", "v");
    assert_eq!(m.allowed_hosts, Some(vec!["example.com".to_string()]));
    assert_eq!(m.memory.max_pages, Some(4));
    assert_eq!(
        Manifest::default().disallow_all_hosts().allowed_hosts,
        Some(vec![])
    );
    let file: Wasm = std::path::PathBuf::from("plugin.wasm").into();
    assert!(matches!(file, Wasm::File { .. }));
    let f = Function::new("transform", [PTR], [PTR], UserData::new(()), shout);
    let mut plugin = Plugin::new(&m, [f], true).unwrap();
    assert_eq!(plugin.call::<&str, String>("run", "ok").unwrap(), "OK");
}

#[test]
fn manifest_is_upstreams_type() {
    // `extism::Manifest` is `extism_manifest::Manifest`: values pass between the two freely.
    let m: extism_manifest::Manifest = manifest().with_timeout(std::time::Duration::from_secs(5));
    let wasm: extism_manifest::Wasm = Wasm::data(WAT.as_bytes().to_vec());
    let memory = extism_manifest::MemoryOptions::new().with_max_var_bytes(64);
    let m = m.with_wasm(wasm).with_memory_options(memory);
    let req = extism_manifest::HttpRequest::new("http://x");
    assert_eq!(
        Wasm::http(req).meta(),
        &extism_manifest::WasmMetadata::default()
    );
    let f = Function::new("transform", [PTR], [PTR], UserData::new(()), shout);
    let one = Manifest::new([m.wasm[0].clone()]).with_timeout(std::time::Duration::from_secs(5));
    let mut plugin = Plugin::new(one, [f], false).unwrap();
    assert_eq!(plugin.call::<&str, String>("run", "m").unwrap(), "M");
}

#[test]
fn debug_options_write_core_and_memory_dumps() {
    let dir = tempfile::tempdir().unwrap();
    let (core, mem) = (dir.path().join("core"), dir.path().join("mem"));
    let trap = r#"(module (func (export "boom") unreachable) (func (export "fine")))"#;
    let options = extism::DebugOptions {
        coredump: Some(core.clone()),
        memdump: Some(mem.clone()),
        ..extism::DebugOptions::default()
    };
    let mut plugin = PluginBuilder::new(Manifest::new([Wasm::data(trap)]))
        .with_debug_options(options)
        .build()
        .unwrap();
    plugin.call::<&str, &str>("fine", "input").unwrap();
    assert!(!core.exists() && !mem.exists());
    assert!(plugin.call::<&str, &str>("boom", "input").is_err());
    assert!(std::fs::read(&core).unwrap().starts_with(b"\0asm"));
    assert!(!std::fs::read(&mem).unwrap().is_empty());

    // the single-setting forms
    let (core2, mem2) = (dir.path().join("core2"), dir.path().join("mem2"));
    let mut plugin = PluginBuilder::new(Manifest::new([Wasm::data(trap)]))
        .with_coredump(&core2)
        .with_memdump(&mem2)
        .build()
        .unwrap();
    assert!(plugin.call::<&str, &str>("boom", "").is_err());
    assert!(core2.exists() && mem2.exists());
}

#[test]
fn cache_config_and_disabled_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let config = dir.path().join("cache.toml");
    std::fs::write(
        &config,
        format!("[cache]\ndirectory = \"{}\"\n", cache.display()),
    )
    .unwrap();
    let f = Function::new("transform", [PTR], [PTR], UserData::new(()), shout);
    let mut plugin = PluginBuilder::new(manifest())
        .with_functions([f.clone()])
        .with_cache_config(&config)
        .build()
        .unwrap();
    assert_eq!(plugin.call::<&str, &str>("run", "c").unwrap(), "C");
    assert!(std::fs::read_dir(&cache).unwrap().next().is_some());

    let mut plugin = PluginBuilder::new(manifest())
        .with_functions([f])
        .with_cache_disabled()
        .build()
        .unwrap();
    assert_eq!(plugin.call::<&str, &str>("run", "d").unwrap(), "D");
}

/// `_initialize` loops 100 000 times (a few hundred thousand fuel units); `run` is almost free.
const COSTLY_INIT: &str = r#"(module
  (func (export "_initialize") (local $i i32)
    (loop $again
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 100000)))))
  (func (export "run") (result i32) (i32.const 0)))"#;

/// Builds `COSTLY_INIT` with the given limits and calls `run` twice. Initialisation runs when
/// the plugin is built (upstream, for reactors) or before its first call (here): either way
/// running out of initialisation fuel is an error from this function.
fn run_costly_init(call: u64, init: Option<u64>) -> Result<(), extism::Error> {
    let builder = PluginBuilder::new(COSTLY_INIT.as_bytes()).with_fuel_limit(call);
    let builder = match init {
        Some(init) => builder.with_initialization_fuel_limit(init),
        None => builder,
    };
    let mut plugin = builder.build()?;
    for _ in 0..2 {
        assert_eq!(plugin.call::<&str, &[u8]>("run", "")?, b"");
    }
    Ok(())
}

#[test]
fn initialization_fuel_limit_is_apart_from_the_call_limit() {
    // Without an initialisation limit the call limit also bounds initialisation.
    assert!(run_costly_init(10_000, None).is_err());
    // A large initialisation budget does not count against a small call budget.
    run_costly_init(10_000, Some(100_000_000)).unwrap();
    // A small initialisation budget stops initialisation even with a large call budget.
    assert!(run_costly_init(100_000_000, Some(10_000)).is_err());
    // An initialisation limit without a call limit is refused.
    assert!(PluginBuilder::new(COSTLY_INIT.as_bytes())
        .with_initialization_fuel_limit(1_000)
        .build()
        .is_err());
}
