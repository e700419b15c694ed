//! Calls one export in a loop, for profilers (perf, callgrind):
//!
//! ```sh
//! EXTISM_RUN_PERFMAP=1 perf record -g -- \
//!     target/release/examples/profile_call testdata/rust/wasm/echo.wasm echo 1048576 2000
//! ```
//!
//! Arguments: plugin, export, input size in bytes (text), number of calls, and optionally
//! `async`: the calls then go through an [`extism::AsyncPlugin`], each awaited on a
//! current-thread tokio runtime (as the `call/async` benchmarks do). The host functions of
//! testdata/rust/host_fns are provided (`host_reflect` returns a copy of its argument).
//! With `fresh` instead, every call is the first call of a new plugin made from the bytes (as
//! the comparison harness's "first call" rows): creating and freeing it is not timed.

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, export, size, calls, mode) = match args.as_slice() {
        [path, export, size, calls] => (path, export, size, calls, ""),
        [path, export, size, calls, mode] if mode == "async" || mode == "fresh" => {
            (path, export, size, calls, mode.as_str())
        }
        _ => anyhow::bail!("usage: profile_call PLUGIN EXPORT INPUT_BYTES CALLS [async|fresh]"),
    };
    let input: Vec<u8> = b"The quick brown fox jumps over the lazy dog. "
        .iter()
        .copied()
        .cycle()
        .take(size.parse()?)
        .collect();
    let reflect = extism::Function::new(
        "host_reflect",
        [extism::PTR],
        [extism::PTR],
        extism::UserData::new(()),
        |plugin, inputs, outputs, _| {
            let bytes: Vec<u8> = plugin.memory_get_val(&inputs[0])?;
            plugin.memory_set_val(&mut outputs[0], bytes)
        },
    );
    let context = extism::Function::new(
        "host_context",
        [],
        [extism::PTR],
        extism::UserData::new(()),
        |_, _, outputs, _| {
            outputs[0] = extism::Val::I64(0);
            Ok(())
        },
    );
    let wasm = std::fs::read(path)?;
    let functions = [reflect, context];
    let builder = extism::PluginBuilder::new(wasm.clone()).with_functions(functions.clone());
    let calls: u32 = calls.parse()?;
    let start;
    if mode == "fresh" {
        let mut busy = std::time::Duration::ZERO;
        for _ in 0..calls {
            let mut plugin = extism::Plugin::new(&wasm, functions.clone(), false)?;
            let began = Instant::now();
            plugin.call::<&[u8], &[u8]>(export, &input)?;
            busy += began.elapsed();
        }
        eprintln!("{export}: {:?} per first call", busy / calls);
        return Ok(());
    } else if mode == "async" {
        let mut plugin = builder.build_async()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        start = Instant::now();
        for _ in 0..calls {
            rt.block_on(plugin.call::<&[u8], &[u8]>(export, &input))?;
        }
    } else {
        let mut plugin = builder.build()?;
        start = Instant::now();
        for _ in 0..calls {
            plugin.call::<&[u8], &[u8]>(export, &input)?;
        }
    }
    let each = start.elapsed() / calls;
    eprintln!("{export}: {each:?} per call");
    Ok(())
}
