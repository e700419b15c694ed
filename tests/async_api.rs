//! The async Rust API: `AsyncPlugin`, async host functions, cooperative yielding, and
//! deadlines and cancels that reach host functions (sync and async).

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::pdk;
use extism::{
    AsyncPlugin, CompiledPlugin, CurrentPlugin, Function, Manifest, Plugin, PluginBuilder,
    UserData, Val, Wasm, PTR,
};

/// `host_reflect` as an async host function: waits `delay` on a tokio timer, then returns
/// a copy of its argument. Input `panic` panics, `error` fails, `slow` waits a minute.
fn async_reflect(delay: Duration) -> Function {
    Function::new_async(
        "host_reflect",
        [PTR],
        [PTR],
        UserData::new(()),
        move |plugin, inputs, outputs, _| {
            Box::pin(async move {
                let bytes: Vec<u8> = plugin.memory_get_val(&inputs[0])?;
                match &bytes[..] {
                    b"panic" => panic!("the host function gave up"),
                    b"error" => anyhow::bail!("the database is down"),
                    b"slow" => tokio::time::sleep(Duration::from_secs(60)).await,
                    _ => tokio::time::sleep(delay).await,
                }
                plugin.memory_set_val(&mut outputs[0], bytes)
            })
        },
    )
}

/// `host_reflect` as a sync host function; input `panic` panics.
fn sync_reflect() -> Function {
    Function::new(
        "host_reflect",
        [PTR],
        [PTR],
        UserData::new(()),
        |plugin, inputs, outputs, _| {
            let bytes: Vec<u8> = plugin.memory_get_val(&inputs[0])?;
            if bytes == b"panic" {
                panic!("the sync host function gave up");
            }
            plugin.memory_set_val(&mut outputs[0], bytes)
        },
    )
}

fn host_context_fn() -> Function {
    Function::new(
        "host_context",
        [],
        [PTR],
        UserData::new(()),
        |plugin, _, outputs, _| {
            let text = plugin.host_context::<String>()?.clone();
            plugin.memory_set_val(&mut outputs[0], text)
        },
    )
}

fn compile_async(manifest: Manifest, functions: Vec<Function>) -> CompiledPlugin {
    PluginBuilder::new(manifest)
        .with_functions(functions)
        .compile_async()
        .unwrap()
}

fn host_fns(timeout: Option<Duration>) -> Manifest {
    let manifest = Manifest::new([Wasm::data(pdk("host_fns"))]);
    match timeout {
        Some(t) => manifest.with_timeout(t),
        None => manifest,
    }
}

/// Compile-time check: call futures can be spawned on a multi-threaded runtime.
fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_calls_share_one_compiled_plugin() {
    const CALLS: usize = 1000;
    let delay = Duration::from_millis(100);
    // How many calls wait in the host function at once: 1 if calls were serialised.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, peak) = (in_flight.clone(), most.clone());
    let counting_reflect = Function::new_async(
        "host_reflect",
        [PTR],
        [PTR],
        UserData::new(()),
        move |plugin, inputs, outputs, _| {
            let (now, peak) = (now.clone(), peak.clone());
            Box::pin(async move {
                let bytes: Vec<u8> = plugin.memory_get_val(&inputs[0])?;
                peak.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                now.fetch_sub(1, Ordering::SeqCst);
                plugin.memory_set_val(&mut outputs[0], bytes)
            })
        },
    );
    let compiled = compile_async(host_fns(None), vec![counting_reflect, host_context_fn()]);

    let single = Instant::now();
    let mut plugin = AsyncPlugin::new(&compiled).unwrap();
    let out: String = assert_send(plugin.call("roundtrip", "one call"))
        .await
        .unwrap();
    assert_eq!(out, "one call");
    let single = single.elapsed();

    let all = Instant::now();
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let compiled = compiled.clone();
            tokio::spawn(async move {
                let mut plugin = AsyncPlugin::new(&compiled).unwrap();
                let input = format!("call {i}");
                let out: String = plugin.call("roundtrip", &input).await.unwrap();
                assert_eq!(out, input);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let most = most.load(Ordering::SeqCst);
    assert!(
        most >= 10,
        "at most {most} calls awaited the host function at once"
    );
    // Reported, not asserted (timing is the benchmark's business): close to one call's time
    // means the calls waited concurrently.
    eprintln!(
        "{CALLS} concurrent calls awaiting a {delay:?} timer: {:?} in total; one call: {single:?}",
        all.elapsed()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn looping_guest_yields_to_other_tasks_until_its_timeout() {
    let manifest =
        Manifest::new([Wasm::data(pdk("faults"))]).with_timeout(Duration::from_millis(200));
    let compiled = compile_async(manifest, vec![]);
    let mut plugin = AsyncPlugin::new(&compiled).unwrap();

    let ticks = Arc::new(AtomicUsize::new(0));
    let counter = ticks.clone();
    let other = tokio::spawn(async move {
        loop {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
        }
    });
    let err = plugin
        .call::<&str, &[u8]>("loop_forever", "")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "timeout");
    // On this one thread, the other task ran only while the guest yielded.
    let progress = ticks.load(Ordering::SeqCst);
    other.abort();
    eprintln!("the other task ran {progress} times while the guest looped for 200 ms");
    assert!(
        progress > 0,
        "the other task never ran while the guest looped"
    );

    // Usable afterwards, as a sync plugin after a timeout.
    let out: String = plugin.call("count_calls", "").await.unwrap();
    assert_eq!(out, "1");
}

#[tokio::test(flavor = "current_thread")]
async fn cancel_drops_an_awaited_host_function() {
    let compiled = compile_async(
        host_fns(None),
        vec![async_reflect(Duration::ZERO), host_context_fn()],
    );
    let mut plugin = AsyncPlugin::new(&compiled).unwrap();
    let handle = plugin.cancel_handle();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        handle.cancel().unwrap();
    });
    let started = Instant::now();
    let (err, rc) = plugin
        .call_get_error_code::<&str, &[u8]>("roundtrip", "slow")
        .await
        .unwrap_err();
    canceller.await.unwrap();
    assert_eq!((err.to_string().as_str(), rc), ("timeout", 134));
    // The minute-long wait was abandoned (a sanity bound, not a measurement).
    assert!(started.elapsed() < Duration::from_secs(30));

    let out: String = plugin.call("roundtrip", "after cancel").await.unwrap();
    assert_eq!(out, "after cancel");
}

#[tokio::test(flavor = "current_thread")]
async fn timeout_drops_an_awaited_host_function() {
    let compiled = compile_async(
        host_fns(Some(Duration::from_millis(200))),
        vec![async_reflect(Duration::ZERO), host_context_fn()],
    );
    let mut plugin = AsyncPlugin::new(&compiled).unwrap();
    let started = Instant::now();
    let (err, rc) = plugin
        .call_get_error_code::<&str, &[u8]>("roundtrip", "slow")
        .await
        .unwrap_err();
    assert_eq!((err.to_string().as_str(), rc), ("timeout", 134));
    assert!(started.elapsed() < Duration::from_secs(30));

    let out: String = plugin.call("roundtrip", "after timeout").await.unwrap();
    assert_eq!(out, "after timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_function_panics_and_errors_fail_the_call() {
    let compiled = compile_async(
        host_fns(None),
        vec![async_reflect(Duration::ZERO), host_context_fn()],
    );
    let mut plugin = AsyncPlugin::new(&compiled).unwrap();
    let err = plugin
        .call::<&str, &[u8]>("roundtrip", "panic")
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("host function `host_reflect` panicked: the host function gave up"),
        "{text}"
    );
    let err = plugin
        .call::<&str, &[u8]>("roundtrip", "error")
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("the database is down"),
        "{err:#}"
    );
    let out: String = plugin.call("roundtrip", "still fine").await.unwrap();
    assert_eq!(out, "still fine");

    // The same for a sync host function in an async plugin.
    let compiled = compile_async(host_fns(None), vec![sync_reflect(), host_context_fn()]);
    let mut plugin = AsyncPlugin::new(&compiled).unwrap();
    let err = plugin
        .call::<&str, &[u8]>("roundtrip", "panic")
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("panicked: the sync host function gave up"),
        "{err:#}"
    );
    let out: String = plugin.call("roundtrip", "still fine").await.unwrap();
    assert_eq!(out, "still fine");
}

#[tokio::test(flavor = "current_thread")]
async fn sync_host_functions_and_host_context_work_in_async_plugins() {
    let compiled = compile_async(host_fns(None), vec![sync_reflect(), host_context_fn()]);
    let mut plugin = AsyncPlugin::new(&compiled).unwrap();
    let out: String = plugin.call("roundtrip", "sync inside async").await.unwrap();
    assert_eq!(out, "sync inside async");
    let out: String = plugin
        .call_with_host_context("read_context", "", "from the host".to_string())
        .await
        .unwrap();
    assert_eq!(out, "from the host");
}

/// Every outcome of a sync call (output, error message, return code) is the async call's.
#[tokio::test(flavor = "current_thread")]
async fn outputs_and_errors_match_the_sync_api() {
    let cases: &[(&str, &str, &[u8])] = &[
        ("count_vowels", "count_vowels", b"Hello, world!"),
        ("count_vowels", "count_vowels_no_vars", b"Hello, world!"),
        ("count_vowels", "count_vowels", b""),
        ("count_vowels", "no_such_export", b""),
        ("faults", "trap", b""),
        ("faults", "fail", b""),
        ("faults", "ok_after_error", b""),
        ("faults", "config_get", b"greeting"),
        ("faults", "config_get", b"missing"),
        ("faults", "var_roundtrip", b"some bytes"),
        ("faults", "var_roundtrip", b""),
        ("faults", "count_calls", b""),
    ];
    for &(wasm, export, input) in cases {
        let manifest = Manifest::new([Wasm::data(pdk(wasm))]).with_config_key("greeting", "hello");
        let mut sync = PluginBuilder::new(manifest.clone()).build().unwrap();
        let mut asynchronous = PluginBuilder::new(manifest).build_async().unwrap();
        for round in 0..2 {
            let want = sync.call_get_error_code::<&[u8], Vec<u8>>(export, input);
            let got = asynchronous
                .call_get_error_code::<&[u8], Vec<u8>>(export, input)
                .await;
            let show = |r: &Result<Vec<u8>, (anyhow::Error, i32)>| match r {
                Ok(out) => format!("ok {}", String::from_utf8_lossy(out)),
                Err((e, rc)) => format!("error {rc}: {e:#}"),
            };
            assert_eq!(show(&got), show(&want), "{wasm} {export} (round {round})");
        }
        assert_eq!(asynchronous.vars(), sync.vars(), "{wasm} {export}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn wasi_plugins_run_async() {
    let manifest = Manifest::new([Wasm::data(pdk("count_vowels"))]);
    let mut plugin = PluginBuilder::new(manifest)
        .with_wasi(true)
        .build_async()
        .unwrap();
    assert!(plugin.has_wasi());
    let out: String = plugin.call("count_vowels", "aeiou").await.unwrap();
    assert!(out.contains("\"count\":5"), "{out}");
}

#[test]
fn sync_and_async_plugins_are_not_mixed_up() {
    let sync = PluginBuilder::new(host_fns(None))
        .with_functions([sync_reflect(), host_context_fn()])
        .compile()
        .unwrap();
    assert!(!sync.is_async());
    let err = AsyncPlugin::new(&sync).unwrap_err();
    assert!(err.to_string().contains("compile_async"), "{err}");

    let asynchronous = compile_async(host_fns(None), vec![sync_reflect(), host_context_fn()]);
    assert!(asynchronous.is_async());
    let err = Plugin::new_from_compiled(&asynchronous).unwrap_err();
    assert!(err.to_string().contains("AsyncPlugin"), "{err}");

    let err = PluginBuilder::new(host_fns(None))
        .with_functions([async_reflect(Duration::ZERO), host_context_fn()])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("is async"), "{err}");
    assert!(async_reflect(Duration::ZERO).is_async());
    assert!(!sync_reflect().is_async());
}

/// The pattern for sync host functions doing slow work: check `is_interrupted` between
/// steps, and the call ends with `timeout` soon after its deadline.
#[test]
fn sync_host_functions_see_the_deadline() {
    let remaining = Arc::new(std::sync::Mutex::new(None));
    let seen = remaining.clone();
    let patient = Function::new(
        "host_reflect",
        [PTR],
        [PTR],
        UserData::new(()),
        move |plugin: &mut CurrentPlugin, _: &[Val], outputs: &mut [Val], _| {
            *seen.lock().unwrap() = plugin.time_remaining();
            while !plugin.is_interrupted() {
                std::thread::sleep(Duration::from_millis(1));
            }
            plugin.memory_set_val(&mut outputs[0], "gave up")
        },
    );
    let mut plugin = PluginBuilder::new(host_fns(Some(Duration::from_millis(200))))
        .with_functions([patient, host_context_fn()])
        .build()
        .unwrap();
    let (err, rc) = plugin
        .call_get_error_code::<&str, &[u8]>("roundtrip", "x")
        .unwrap_err();
    assert_eq!((err.to_string().as_str(), rc), ("timeout", 134));
    let left = remaining.lock().unwrap().expect("a timeout was set");
    assert!(left <= Duration::from_millis(200));
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_a_call_future_leaves_the_plugin_usable() {
    let manifest = Manifest::new([Wasm::data(pdk("faults"))]);
    let compiled = compile_async(manifest, vec![]);
    let mut plugin = AsyncPlugin::new(&compiled).unwrap();
    // Abandoned while the guest loops (at one of its yields).
    let abandoned = tokio::time::timeout(
        Duration::from_millis(50),
        plugin.call::<&str, &[u8]>("loop_forever", ""),
    )
    .await;
    assert!(abandoned.is_err());
    let out: String = plugin.call("count_calls", "").await.unwrap();
    assert_eq!(out, "1");

    // Abandoned while it awaits a host function.
    let compiled = compile_async(
        host_fns(None),
        vec![async_reflect(Duration::ZERO), host_context_fn()],
    );
    let mut plugin = AsyncPlugin::new(&compiled).unwrap();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(50),
        plugin.call::<&str, &[u8]>("roundtrip", "slow"),
    )
    .await;
    assert!(abandoned.is_err());
    let out: String = plugin.call("roundtrip", "next call").await.unwrap();
    assert_eq!(out, "next call");
}
