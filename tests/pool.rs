//! The instance pool (engine.rs) never limits what plugins can do: more live plugins than it
//! holds, plugins whose module does not fit it, and plugins that moved out of it all run,
//! time out and cancel as any other. Its own process: these tests fill the pool.

mod common;

use std::time::{Duration, Instant};

use common::capture::Captured;
use extism::{CompiledPlugin, Manifest, Plugin, PluginBuilder, Wasm};

/// More than the pool's plugins (32), by far.
const LIVE: usize = 500;

#[test]
fn more_live_plugins_than_the_pool_holds_all_run() {
    let events = Captured::default();
    tracing::subscriber::with_default(events.subscriber(tracing::Level::DEBUG), live_plugins);
    // The pool was used, and filled up: the test is about what happens beyond it.
    let events = events.text();
    assert!(events.contains("plugin compiled") && events.contains("pooled=true"));
    assert!(events.contains("the instance pool is full"));
}

fn live_plugins() {
    let compiled = CompiledPlugin::new(PluginBuilder::new(common::pdk("count_vowels"))).unwrap();
    // Created first and called later: the pool fills up as they instantiate, on first call.
    let mut plugins: Vec<Plugin> = (0..LIVE)
        .map(|_| Plugin::new_from_compiled(&compiled).unwrap())
        .collect();
    for (i, plugin) in plugins.iter_mut().enumerate() {
        let out: String = plugin
            .call("count_vowels", "Hello, world!")
            .unwrap_or_else(|e| panic!("plugin {i}: {e:#}"));
        assert_eq!(out, r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#);
    }
    // Created when the pool is already full.
    for _ in 0..100 {
        let mut plugin = Plugin::new_from_compiled(&compiled).unwrap();
        let out: String = plugin.call("count_vowels", "Hello, world!").unwrap();
        assert_eq!(out, r#"{"count":3,"total":3,"vowels":"aeiouAEIOU"}"#);
        plugins.push(plugin);
    }
    // Every one keeps its own state, wherever its instance came from.
    for plugin in plugins.iter_mut().step_by(97) {
        let out: String = plugin.call("count_vowels", "aaa").unwrap();
        assert_eq!(out, r#"{"count":3,"total":6,"vowels":"aeiouAEIOU"}"#);
    }

    // Beyond the pool, a plugin made from bytes (and one of several modules) still works,
    // and its timeout and cancel handle reach it.
    let mut from_bytes = Plugin::new(common::pdk("count_vowels"), [], false).unwrap();
    let out: String = from_bytes.call("count_vowels", "ee").unwrap();
    assert_eq!(out, r#"{"count":2,"total":2,"vowels":"aeiouAEIOU"}"#);

    // A second module keeps the kernel an instance of its own, made when the plugin is.
    let two_modules = Manifest::new([
        Wasm::data(common::pdk("count_vowels")),
        Wasm::data(b"(module)".to_vec()).with_name("other"),
    ]);
    let mut separate_kernel = Plugin::new(&two_modules, [], false).unwrap();
    let out: String = separate_kernel.call("count_vowels", "ee").unwrap();
    assert_eq!(out, r#"{"count":2,"total":2,"vowels":"aeiouAEIOU"}"#);

    let faults =
        Manifest::new([Wasm::data(common::pdk("faults"))]).with_timeout(Duration::from_millis(50));
    let mut timed = Plugin::new(&faults, [], false).unwrap();
    let started = Instant::now();
    let err = timed.call::<(), &[u8]>("loop_forever", ()).unwrap_err();
    assert!(err.to_string().contains("timeout"), "{err:#}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut looping = Plugin::new(common::pdk("faults"), [], false).unwrap();
    let cancel = looping.cancel_handle();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        cancel.cancel().unwrap();
    });
    let started = Instant::now();
    let err = looping.call::<(), &[u8]>("loop_forever", ()).unwrap_err();
    canceller.join().unwrap();
    // Reported as upstream reports a cancel.
    assert!(err.to_string().contains("timeout"), "{err:#}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Freed slots are taken again.
    drop(plugins);
    let mut again = Plugin::new_from_compiled(&compiled).unwrap();
    let out: String = again.call("count_vowels", "o").unwrap();
    assert_eq!(out, r#"{"count":1,"total":1,"vowels":"aeiouAEIOU"}"#);
}

#[test]
fn a_module_beyond_the_pool_limits_runs() {
    let events = Captured::default();
    tracing::subscriber::with_default(events.subscriber(tracing::Level::DEBUG), beyond_limits);
    assert!(events.text().contains("does not fit the instance pool"));
}

fn beyond_limits() {
    // Three memories and a table far larger than a pool slot holds.
    let wat = r#"(module
      (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
      (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
      (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
      (memory 1) (memory $b 1) (memory $c 1)
      (table 1000000 funcref)
      (func (export "run") (result i32) (local $p i64)
        (local.set $p (call $alloc (i64.const 2)))
        (call $store_u8 (local.get $p) (i32.const 111))
        (call $store_u8 (i64.add (local.get $p) (i64.const 1)) (i32.const 107))
        (call $output_set (local.get $p) (i64.const 2))
        (i32.const 0)))"#;
    for _ in 0..3 {
        let mut plugin = Plugin::new(wat, [], false).unwrap();
        let out: &str = plugin.call("run", "").unwrap();
        assert_eq!(out, "ok");
    }
}
