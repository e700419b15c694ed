//! The Rust PDK plugins of testdata/rust through the public Rust API: outputs must be what
//! upstream Extism gives for the same plugins.

mod common;

use common::{capture::Captured, pdk};
use extism::{
    CompiledPlugin, CurrentPlugin, Function, Manifest, ManifestExt, Plugin, PluginBuilder,
    UserData, Val, Wasm, PTR,
};

fn plugin(name: &str) -> Plugin {
    Plugin::new(pdk(name), [], false).unwrap()
}

#[test]
fn count_vowels_keeps_a_running_total_in_vars() {
    let mut p = plugin("count_vowels");
    let out: String = p.call("count_vowels", "Hello, World!").unwrap();
    assert_eq!(out, r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#);
    let out: String = p.call("count_vowels", "Hello, World!").unwrap();
    assert_eq!(out, r#"{"count":3,"total":6,"vowels":"aeiouAEIOU"}"#);
    // vars are per instance
    let mut other = plugin("count_vowels");
    let out: String = other.call("count_vowels", "aaa").unwrap();
    assert_eq!(out, r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#);
}

#[test]
fn count_vowels_reads_config_and_config_can_change_between_calls() {
    let manifest = Manifest::new([Wasm::data(pdk("count_vowels"))]).with_config_key("vowels", "lo");
    let mut p = Plugin::new(&manifest, [], false).unwrap();
    let out: String = p.call("count_vowels_no_vars", "Hello, World!").unwrap();
    assert_eq!(out, r#"{"count":5,"total":5,"vowels":"lo"}"#);
    p.config_mut().insert("vowels".into(), "o".into());
    let out: String = p.call("count_vowels_no_vars", "Hello, World!").unwrap();
    assert_eq!(out, r#"{"count":2,"total":2,"vowels":"o"}"#);
    p.config_mut().remove("vowels");
    let out: String = p.call("count_vowels_no_vars", "Hello, World!").unwrap();
    assert_eq!(out, r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#);
}

#[test]
fn vars_disabled_traps_var_set_but_not_the_plugin() {
    let manifest = Manifest::new([Wasm::data(pdk("count_vowels"))]).with_var_max(0);
    let mut p = Plugin::new(&manifest, [], false).unwrap();
    let (err, rc) = p
        .call_get_error_code::<_, &[u8]>("count_vowels", "aaa")
        .unwrap_err();
    assert_eq!(rc, -1);
    assert!(
        format!("{err:#}").contains("Vars are disabled by this host"),
        "{err:#}"
    );
    let out: String = p.call("count_vowels_no_vars", "aaa").unwrap();
    assert_eq!(out, r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#);
}

#[test]
fn var_store_is_bounded_by_max_var_bytes() {
    // upstream's accounting counts the replaced value too: "k"="small" then "k"="again"
    // needs 2 * (1 + 5 + 48) = 108 bytes
    let manifest = Manifest::new([Wasm::data(pdk("faults"))]).with_var_max(120);
    let mut p = Plugin::new(&manifest, [], false).unwrap();
    let out: String = p.call("var_roundtrip", "small").unwrap();
    assert_eq!(out, "small");
    let big = "x".repeat(60);
    let err = p
        .call::<_, String>("var_roundtrip", big.as_str())
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("Variable store is full"),
        "{err:#}"
    );
    // the old value is still there and the plugin still works
    let out: String = p.call("var_roundtrip", "again").unwrap();
    assert_eq!(out, "again");
    let out: String = p.call("var_roundtrip", "").unwrap();
    assert_eq!(out, "<none>");
}

#[test]
fn echo_returns_input_of_any_size() {
    let mut p = plugin("echo");
    for len in [0usize, 1, 7, 8, 9, 1283, 65536, 1 << 20, 3 << 20] {
        let input: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let out: Vec<u8> = p.call("echo", &input).unwrap();
        assert_eq!(out, input, "len {len}");
        let n: String = p.call("length", &input).unwrap();
        assert_eq!(n, len.to_string());
        let out: Vec<u8> = p.call("consume", &input).unwrap();
        assert!(out.is_empty());
    }
}

#[test]
fn alloc_bench_runs_in_the_kernel() {
    let mut p = plugin("echo");
    let out: String = p.call("alloc_bench", "").unwrap();
    assert_eq!(out, "10000");
}

#[test]
fn alloc_live_keeps_thousands_of_blocks() {
    let mut p = plugin("echo");
    for _ in 0..3 {
        let out: String = p.call("alloc_live", "").unwrap();
        assert_eq!(out, "10000");
    }
}

fn reflect() -> Function {
    Function::new(
        "host_reflect",
        [PTR],
        [PTR],
        UserData::new(0u64),
        |plugin, inputs, outputs, calls| {
            *calls.get()?.lock().unwrap() += 1;
            let input: Vec<u8> = plugin.memory_get_val(&inputs[0])?;
            plugin.memory_set_val(&mut outputs[0], input)
        },
    )
}

fn context_fn() -> Function {
    Function::new(
        "host_context",
        [],
        [PTR],
        UserData::new(()),
        |plugin: &mut CurrentPlugin, _, outputs, _| {
            let text = match plugin.host_context::<String>() {
                Ok(s) => s.clone(),
                Err(_) => "no context".to_string(),
            };
            plugin.memory_set_val(&mut outputs[0], text)
        },
    )
}

#[test]
fn host_function_round_trip_with_user_data() {
    let calls = UserData::new(0u64);
    let seen = calls.clone();
    let f = Function::new(
        "host_reflect",
        [PTR],
        [PTR],
        calls,
        |plugin, inputs, outputs, calls| {
            *calls.get()?.lock().unwrap() += 1;
            let input: Vec<u8> = plugin.memory_get_val(&inputs[0])?;
            plugin.memory_set_val(&mut outputs[0], input)
        },
    );
    let mut p = Plugin::new(pdk("host_fns"), [f, context_fn()], false).unwrap();
    for input in ["", "hi", &"z".repeat(100_000)] {
        let out: String = p.call("roundtrip", input).unwrap();
        assert_eq!(out, input);
    }
    assert_eq!(*seen.get().unwrap().lock().unwrap(), 3);
}

#[test]
fn host_context_is_seen_by_host_functions_of_that_call_only() {
    let mut p = Plugin::new(pdk("host_fns"), [reflect(), context_fn()], false).unwrap();
    let out: String = p
        .call_with_host_context("read_context", "", "ctx-1".to_string())
        .unwrap();
    assert_eq!(out, "ctx-1");
    let out: String = p.call("read_context", "").unwrap();
    assert_eq!(out, "no context");
    let out: String = p
        .call_with_host_context("read_context", "", "ctx-2".to_string())
        .unwrap();
    assert_eq!(out, "ctx-2");
}

#[test]
fn a_failing_host_function_traps_the_call() {
    let f = Function::new(
        "host_reflect",
        [PTR],
        [PTR],
        UserData::new(()),
        |_, _, _, _| anyhow::bail!("host says no"),
    );
    let mut p = Plugin::new(pdk("host_fns"), [f, context_fn()], false).unwrap();
    let (err, rc) = p
        .call_get_error_code::<_, &[u8]>("roundtrip", "x")
        .unwrap_err();
    assert_eq!(rc, -1);
    assert!(format!("{err:#}").contains("host says no"), "{err:#}");
    // usable afterwards
    let out: String = p.call("read_context", "").unwrap();
    assert_eq!(out, "no context");
}

#[test]
fn missing_host_function_fails_creation_naming_it() {
    let err = Plugin::new(pdk("host_fns"), [reflect()], false).unwrap_err();
    assert!(
        format!("{err:#}").contains("extism:host/user::host_context"),
        "{err:#}"
    );
}

#[test]
fn guest_errors_traps_and_return_codes() {
    let mut p = plugin("faults");
    let (err, rc) = p.call_get_error_code::<_, &[u8]>("fail", "").unwrap_err();
    assert_eq!((err.to_string().as_str(), rc), ("this call failed", -1));
    let (err, rc) = p
        .call_get_error_code::<_, &[u8]>("ok_after_error", "")
        .unwrap_err();
    assert_eq!(
        (err.to_string().as_str(), rc),
        ("error with return code 0", 0)
    );
    let (err, rc) = p.call_get_error_code::<_, &[u8]>("trap", "").unwrap_err();
    assert_eq!(rc, 134);
    assert!(err.to_string().contains("unreachable"), "{err}");
    // the instance survives all of that
    let a: String = p.call("count_calls", "").unwrap();
    let b: String = p.call("count_calls", "").unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("1", "2"));
}

#[test]
fn missing_export() {
    let mut p = plugin("faults");
    let (err, rc) = p.call_get_error_code::<_, &[u8]>("nope", "").unwrap_err();
    assert_eq!(
        (err.to_string().as_str(), rc),
        ("Function not found: nope", -1)
    );
    assert!(p.function_exists("fail"));
    assert!(!p.function_exists("nope"));
    assert!(!p.function_exists("memory"));
}

#[test]
fn wasi_plugin_runs_with_wasi_and_exit_codes_pass_through() {
    let err = Plugin::new(pdk("wasi_stdout"), [], false).unwrap_err();
    assert!(
        format!("{err:#}").contains("wasi_snapshot_preview1::"),
        "{err:#}"
    );
    let mut p = Plugin::new(pdk("wasi_stdout"), [], true).unwrap();
    let out: String = p.call("hello", "").unwrap();
    assert_eq!(out, "done");
    assert_eq!(
        p.call_get_error_code::<_, &[u8]>("exit_code", "0")
            .map(|_| ())
            .map_err(|e| e.1),
        Ok(())
    );
    let (err, rc) = p
        .call_get_error_code::<_, &[u8]>("exit_code", "7")
        .unwrap_err();
    assert_eq!(rc, 7);
    assert!(err.to_string().contains("7"), "{err}");
    let out: String = p.call("hello", "").unwrap();
    assert_eq!(out, "done");
}

#[test]
fn logging_reaches_tracing_with_level_filter() {
    let lines = Captured::default();
    let subscriber = lines.subscriber(tracing::Level::WARN);
    let mut p = plugin("logging");
    let id = p.id().to_string();
    tracing::subscriber::with_default(subscriber, || {
        let out: String = p.call("log_all", "").unwrap();
        assert_eq!(out, "ok");
    });
    let text = lines.text();
    assert!(
        text.contains("warn message") && text.contains("error message"),
        "{text}"
    );
    assert!(
        !text.contains("info message") && !text.contains("debug message"),
        "{text}"
    );
    assert!(text.contains(&id), "{text}");
    // no subscriber: logging is off and the plugin still runs
    let out: String = p.call("log_all", "").unwrap();
    assert_eq!(out, "ok");
}

#[test]
fn runtime_events_reach_a_rust_subscriber() {
    let lines = Captured::default();
    tracing::subscriber::with_default(lines.subscriber(tracing::Level::TRACE), || {
        assert!(Plugin::new(Vec::<u8>::new(), [], false).is_err());
        let mut p = plugin("faults");
        let id = p.id().to_string();
        p.call::<&str, &str>("config_get", "missing").unwrap();
        p.call::<&str, &str>("fail", "").unwrap_err();
        let text = lines.text();
        for expected in [
            "TRACE extism::manifest: loading 0 bytes as a manifest",
            // compiled, or found compiled by an earlier test of this process
            "DEBUG extism::engine: ",
            "extism::compiled: plugin compiled",
            "extism::plugin: plugin instance created",
            "DEBUG extism::plugin: call to config_get started",
            "DEBUG extism::plugin: call to config_get finished",
            "ERROR extism::plugin: call to fail returned with error message: this call failed",
            &id,
        ] {
            assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
        }
    });
    // Only what the subscriber asks for is formatted: at ERROR the started/finished lines go.
    let errors = Captured::default();
    tracing::subscriber::with_default(errors.subscriber(tracing::Level::ERROR), || {
        let mut p = plugin("faults");
        p.call::<&str, &str>("config_get", "missing").unwrap();
        p.call::<&str, &str>("fail", "").unwrap_err();
    });
    let text = errors.text();
    assert!(
        !text.contains("started") && !text.contains("finished"),
        "{text}"
    );
    assert_eq!(
        text.matches("call to fail returned with error message")
            .count(),
        1,
        "{text}"
    );
}

#[test]
fn compiled_plugin_instances_are_independent() {
    let compiled = PluginBuilder::new(pdk("count_vowels")).compile().unwrap();
    let mut a = Plugin::new_from_compiled(&compiled).unwrap();
    let mut b = Plugin::new_from_compiled(&compiled).unwrap();
    assert_ne!(a.id(), b.id());
    let _: String = a.call("count_vowels", "aaaa").unwrap();
    let out: String = b.call("count_vowels", "a").unwrap();
    assert_eq!(out, r#"{"count":1,"total":1,"vowels":"aeiouAEIOU"}"#);
}

#[test]
fn compiled_plugin_is_shared_across_threads() {
    let compiled = PluginBuilder::new(pdk("count_vowels")).compile().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let c = compiled.clone();
            std::thread::spawn(move || {
                let mut p = Plugin::new_from_compiled(&c).unwrap();
                for i in 1..=50u64 {
                    let out: String = p.call("count_vowels", "ae").unwrap();
                    assert_eq!(
                        out,
                        format!(r#"{{"count":2,"total":{},"vowels":"aeiouAEIOU"}}"#, 2 * i)
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn same_bytes_share_compiled_code() {
    let bytes = pdk("echo");
    let a = PluginBuilder::new(&bytes).compile().unwrap();
    let b = PluginBuilder::new(&bytes).compile().unwrap();
    assert!(a.shares_code_with(&b));
    let mut other = bytes.clone();
    other.extend_from_slice(&[0, 4, 3, b'x', b'y', b'z']); // a trailing custom section
    let c = PluginBuilder::new(&other).compile().unwrap();
    assert!(!a.shares_code_with(&c));
}

#[test]
fn large_modules_that_differ_in_one_byte_do_not_share_compiled_code() {
    // The cache hashes only a sample of a large module; the full comparison must tell these
    // apart wherever the byte is.
    let mut bytes = pdk("echo");
    let payload = 300_000u32;
    let name = b"pad";
    let mut size = payload + 1 + name.len() as u32;
    bytes.push(0); // a custom section
    loop {
        let low = (size & 0x7f) as u8;
        size >>= 7;
        bytes.push(if size == 0 { low } else { low | 0x80 });
        if size == 0 {
            break;
        }
    }
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    let start = bytes.len();
    bytes.resize(start + payload as usize, 0);
    let base = PluginBuilder::new(&bytes).compile().unwrap();
    assert!(base.shares_code_with(&PluginBuilder::new(bytes.clone()).compile().unwrap()));
    for i in 0..16 {
        let mut other = bytes.clone();
        other[start + i * (payload as usize / 16) + 4099] = 1;
        let c = PluginBuilder::new(&other).compile().unwrap();
        assert!(!base.shares_code_with(&c), "byte {i}");
        let mut p = Plugin::new_from_compiled(&c).unwrap();
        assert_eq!(p.call::<&str, &str>("echo", "hi").unwrap(), "hi");
    }
}

#[test]
fn val_types_are_reexported() {
    let _ = Val::I32(1);
}

#[test]
fn host_functions_in_any_namespace_with_every_value_type() {
    let wasm = r#"(module
        (import "my:ns" "mix" (func $mix (param i32 i64 f32 f64) (result f64)))
        (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
        (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
        (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
        (func (export "run") (result i32) (local $h i64)
            (local.set $h (call $alloc (i64.const 8)))
            (call $store_u64 (local.get $h) (i64.reinterpret_f64
                (call $mix (i32.const -2) (i64.const 40) (f32.const 0.5) (f64.const 0.25))))
            (call $output_set (local.get $h) (i64.const 8))
            (i32.const 0)))"#;
    use extism::ValType::{F32, F64, I32, I64};
    let mix = Function::new(
        "mix",
        [I32, I64, F32, F64],
        [F64],
        UserData::new(()),
        |_, inputs, outputs, _| {
            let sum = inputs[0].unwrap_i32() as f64
                + inputs[1].unwrap_i64() as f64
                + inputs[2].unwrap_f32() as f64
                + inputs[3].unwrap_f64();
            outputs[0] = Val::F64(sum.to_bits());
            Ok(())
        },
    )
    .with_namespace("my:ns");
    let mut p = Plugin::new(wasm, [mix], false).unwrap();
    let out: Vec<u8> = p.call("run", "").unwrap();
    assert_eq!(f64::from_le_bytes(out.try_into().unwrap()), 38.75);
}

/// Values of every size arrive whole: written in place by the host when their block fits the
/// kernel's fresh space, copied into the block the kernel found otherwise (here: a value larger
/// than the kernel's memory, which grows for it; then the same value fits in place).
#[test]
fn config_and_var_values_of_every_size_arrive_whole() {
    let big: String = "0123456789abcdef".repeat(200_000); // 3.2 MB
    let manifest = Manifest::new([Wasm::data(pdk("faults"))])
        .with_config_key("big", &big)
        .with_config_key("small", "v");
    for linked in [true, false] {
        let manifest = match linked {
            true => manifest.clone(),
            false => {
                let mut m = manifest.clone();
                m.wasm
                    .push(Wasm::data(b"(module)".to_vec()).with_name("other"));
                m
            }
        };
        let mut p = Plugin::new(manifest, [], false).unwrap();
        for key in ["small", "big", "small", "big"] {
            let value: String = p.call("config_get", key).unwrap();
            assert!(
                value == manifest_value(key, &big),
                "linked: {linked}, {key}"
            );
        }
        for n in [1usize, 15, 16, 17, 1000, 300_000, 5, 700_000] {
            let value: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
            let back: Vec<u8> = p.call("var_roundtrip", &value).unwrap();
            assert!(back == value, "linked: {linked}, a var of {n} bytes");
        }
    }
}

fn manifest_value<'a>(key: &str, big: &'a str) -> &'a str {
    match key {
        "big" => big,
        _ => "v",
    }
}

/// `config_get`, `var_get` and `var_set` run in the kernel (kernel.wat), but stay built-ins a
/// user function may replace (spec/guest-abi.md §10): the guest then calls the user's.
#[test]
fn user_functions_replace_the_built_ins_the_kernel_runs() {
    let guest = r#"(module
        (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
        (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
        (import "extism:host/env" "length" (func $length (param i64) (result i64)))
        (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
        (func (export "config") (result i32) (local $h i64)
            (local.set $h (call $config_get (i64.const 0)))
            (call $output_set (local.get $h) (call $length (local.get $h)))
            (i32.const 0))
        (func (export "var") (result i32) (local $h i64)
            (local.set $h (call $var_get (i64.const 0)))
            (call $output_set (local.get $h) (call $length (local.get $h)))
            (i32.const 0)))"#;
    let replacement = |name: &'static str| {
        Function::new(
            name,
            [extism::PTR],
            [extism::PTR],
            UserData::new(()),
            move |plugin, _, outputs, _| {
                let handle = plugin.memory_new(format!("{name} replaced"))?;
                outputs[0] = plugin.memory_to_val(handle);
                Ok(())
            },
        )
        .with_namespace("extism:host/env")
    };
    let manifest = || {
        Manifest::new([Wasm::data(guest.as_bytes().to_vec())])
            .with_config_key("", "the config value")
    };
    let compiled = CompiledPlugin::new(
        PluginBuilder::new(manifest()).with_functions([replacement("config_get")]),
    )
    .unwrap();
    assert!(!compiled.kernel_linked());
    let mut p = Plugin::new_from_compiled(&compiled).unwrap();
    assert_eq!(
        p.call::<&str, &str>("config", "").unwrap(),
        "config_get replaced"
    );
    // The other built-in is still the runtime's (no var: no value).
    assert_eq!(p.call::<&str, &str>("var", "").unwrap(), "");
    // Without a replacement, the runtime's.
    let mut p = PluginBuilder::new(manifest()).build().unwrap();
    assert_eq!(
        p.call::<&str, &str>("config", "").unwrap(),
        "the config value"
    );
    let mut p = Plugin::new(guest.as_bytes(), [replacement("var_get")], false).unwrap();
    assert_eq!(p.call::<&str, &str>("var", "").unwrap(), "var_get replaced");
}

#[test]
fn plugin_ids_are_random_uuid_v4() {
    let a = plugin("echo");
    let b = plugin("echo");
    assert_eq!(a.id().get_version_num(), 4);
    assert_ne!(a.id(), b.id());
}

/// The two tests below fill the instance pool (32 plugins) or need room in it: one at a time.
static INSTANCE_POOL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Freed plugins' instance slots are reused with the pages they wrote reset in place
/// (src/engine.rs): whichever slot a new plugin gets, from the same module or another, it sees
/// the module's initial memory, initial size and an empty kernel.
#[test]
fn new_plugins_start_pristine_in_reused_instance_slots() {
    let _pool = INSTANCE_POOL.lock().unwrap_or_else(|e| e.into_inner());
    let scribble = CompiledPlugin::new(PluginBuilder::new(common::wat("scribble"))).unwrap();
    let other = CompiledPlugin::new(PluginBuilder::new(pdk("echo"))).unwrap();
    for round in 0..100 {
        let events = Captured::default();
        let (counter, dirt) =
            tracing::subscriber::with_default(events.subscriber(tracing::Level::DEBUG), || {
                let mut p = Plugin::new_from_compiled(&scribble).unwrap();
                let out: Vec<u8> = p.call("scribble", "").unwrap();
                let word = |i: usize| u64::from_le_bytes(out[i..i + 8].try_into().unwrap());
                (word(0), word(8))
            });
        assert_eq!((counter, dirt), (42, 0), "round {round}");
        assert!(
            !events.text().contains("the instance pool is full"),
            "round {round}: {}",
            events.text()
        );
        // Some rounds fill every slot with another module's plugins, scribble's included.
        if round % 10 == 0 {
            let echoes: Vec<Plugin> = (0..40)
                .map(|_| {
                    let mut e = Plugin::new_from_compiled(&other).unwrap();
                    let echoed: Vec<u8> = e.call("echo", vec![7u8; 50_000]).unwrap();
                    assert_eq!(echoed, vec![7u8; 50_000]);
                    e
                })
                .collect();
            drop(echoes);
        }
    }
}

/// The instance pool is bounded; plugins beyond it allocate on demand and work the same.
#[test]
fn plugins_beyond_the_instance_pool_run_on_demand() {
    let _pool = INSTANCE_POOL.lock().unwrap_or_else(|e| e.into_inner());
    let events = Captured::default();
    let compiled = CompiledPlugin::new(PluginBuilder::new(pdk("count_vowels"))).unwrap();
    let plugins =
        tracing::subscriber::with_default(events.subscriber(tracing::Level::DEBUG), || {
            (0..150)
                .map(|i| {
                    let mut p = Plugin::new_from_compiled(&compiled).unwrap();
                    let out: String = p.call("count_vowels_no_vars", "a".repeat(i)).unwrap();
                    assert_eq!(
                        out,
                        format!(r#"{{"count":{i},"total":{i},"vowels":"aeiouAEIOU"}}"#)
                    );
                    p
                })
                .collect::<Vec<_>>()
        });
    assert!(
        events
            .text()
            .contains("the instance pool is full: allocating on demand"),
        "{}",
        events.text()
    );
    for mut p in plugins {
        let out: String = p.call("count_vowels_no_vars", "ee").unwrap();
        assert_eq!(out, r#"{"count":2,"total":2,"vowels":"aeiouAEIOU"}"#);
    }
}
