//! Criterion benchmarks of the Rust API, on the same workloads as `benches/compare` (which
//! compares the C library with upstream's): `cargo bench --bench runtime [FILTER]`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use extism::{CompiledPlugin, Function, Plugin, PluginBuilder, UserData, PTR};

fn wasm(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/rust/wasm/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn text(n: usize) -> Vec<u8> {
    b"The quick brown fox jumps over the lazy dog. "
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}

/// `host_reflect` returns a copy of its argument block; `host_context` returns 0.
fn host_functions() -> Vec<Function> {
    vec![
        Function::new(
            "host_reflect",
            [PTR],
            [PTR],
            UserData::new(()),
            |plugin, inputs, outputs, _| {
                let bytes: Vec<u8> = plugin.memory_get_val(&inputs[0])?;
                plugin.memory_set_val(&mut outputs[0], bytes)
            },
        ),
        Function::new(
            "host_context",
            [],
            [PTR],
            UserData::new(()),
            |_, _, outputs, _| {
                outputs[0] = extism::Val::I64(0);
                Ok(())
            },
        ),
    ]
}

fn calls(c: &mut Criterion) {
    let count_vowels = wasm("count_vowels.wasm");
    let echo = wasm("echo.wasm");
    let host_fns = wasm("host_fns.wasm");

    let mut g = c.benchmark_group("call");
    let mut plugin = Plugin::new(&count_vowels, [], false).unwrap();
    for export in ["count_vowels_no_vars", "count_vowels"] {
        g.bench_function(BenchmarkId::new(export, "13 B"), |b| {
            b.iter(|| {
                let out: &[u8] = plugin.call(export, black_box("Hello, world!")).unwrap();
                black_box(out.len())
            })
        });
    }
    // The same calls through the async API, each driven to completion by a current-thread
    // tokio runtime (what one `.await` costs on top of the sync call).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut async_plugin = PluginBuilder::new(&count_vowels).build_async().unwrap();
    for export in ["count_vowels_no_vars", "count_vowels"] {
        g.bench_function(BenchmarkId::new(format!("async {export}"), "13 B"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let out: &[u8] = async_plugin
                        .call(export, black_box("Hello, world!"))
                        .await
                        .unwrap();
                    black_box(out.len())
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("throughput");
    for (label, size) in [("64 KiB", 64 << 10), ("1 MiB", 1 << 20)] {
        let input = text(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("count_vowels_no_vars", label),
            &input,
            |b, i| {
                b.iter(|| {
                    plugin
                        .call::<&[u8], &[u8]>("count_vowels_no_vars", i)
                        .unwrap()
                        .len()
                })
            },
        );
    }
    let mut echo_plugin = Plugin::new(&echo, [], false).unwrap();
    let input = text(1 << 20);
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_with_input(BenchmarkId::new("echo", "1 MiB"), &input, |b, i| {
        b.iter(|| echo_plugin.call::<&[u8], &[u8]>("echo", i).unwrap().len())
    });
    let mut host_plugin = Plugin::new(&host_fns, host_functions(), false).unwrap();
    for (label, size) in [("64 KiB", 64 << 10), ("1 MiB", 1 << 20)] {
        let input = text(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("host_roundtrip", label), &input, |b, i| {
            b.iter(|| {
                host_plugin
                    .call::<&[u8], &[u8]>("roundtrip", i)
                    .unwrap()
                    .len()
            })
        });
    }
    g.finish();

    for export in ["alloc_live", "alloc_bench"] {
        c.bench_function(&format!("kernel/{export} (10 000 alloc/free)"), |b| {
            b.iter(|| echo_plugin.call::<&[u8], &[u8]>(export, b"").unwrap().len())
        });
    }
}

/// What host calls add over the guest's own work: each export of `host_calls.wat` makes 1000
/// calls, `baseline` of a local function; subtract its time and divide by 1000.
fn host_calls(c: &mut Criterion) {
    let path = format!("{}/testdata/wat/host_calls.wat", env!("CARGO_MANIFEST_DIR"));
    let wasm = wat::parse_file(&path).unwrap();
    let noop = Function::new("noop", [], [PTR], UserData::new(()), |_, _, outputs, _| {
        outputs[0] = extism::Val::I64(0);
        Ok(())
    });
    let mut plugin = Plugin::new(&wasm, [noop], false).unwrap();
    let mut g = c.benchmark_group("host_call");
    for export in ["baseline", "user_noop", "config_get", "var_get"] {
        g.bench_function(BenchmarkId::new(export, "x1000"), |b| {
            b.iter(|| plugin.call::<&[u8], &[u8]>(export, b"").unwrap().len())
        });
    }
    g.finish();
}

/// The choices for the module cache's content key (engine.rs): SHA-256 over the bytes (what
/// the disk cache keys files by), or a fast hash to find the candidate plus a full comparison
/// with its bytes (what the in-process cache does).
fn content_key(c: &mut Criterion) {
    let mut g = c.benchmark_group("content_key");
    for (label, size) in [("20 KB", 20_000), ("2 MB", 2_000_000)] {
        let bytes: Vec<u8> = (0..size as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let cached = bytes.clone();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("sha256", label), |b| {
            b.iter(|| <sha2::Sha256 as sha2::Digest>::digest(black_box(&bytes)))
        });
        let state = foldhash::quality::RandomState::default();
        g.bench_function(BenchmarkId::new("foldhash + compare", label), |b| {
            b.iter(|| {
                let hash = std::hash::BuildHasher::hash_one(&state, black_box(&bytes[..]));
                (hash, black_box(&bytes[..]) == black_box(&cached[..]))
            })
        });
        // What the cache does (engine.rs): the comparison, plus a hash of a constant-size
        // sample, which costs about what hashing the 20 KB module does.
        g.bench_function(BenchmarkId::new("compare", label), |b| {
            b.iter(|| black_box(&bytes[..]) == black_box(&cached[..]))
        });
    }
    g.finish();
}

fn creation(c: &mut Criterion) {
    let count_vowels = wasm("count_vowels.wasm");
    let count_vowels_debug = wasm("count_vowels_debug.wasm");
    let wasi_stdout = wasm("wasi_stdout.wasm");
    let mut g = c.benchmark_group("new");
    drop(Plugin::new(&count_vowels, [], false).unwrap());
    g.bench_function("from the same bytes again", |b| {
        b.iter(|| Plugin::new(black_box(&count_vowels), [], false).unwrap())
    });
    drop(Plugin::new(&count_vowels_debug, [], false).unwrap());
    g.bench_function("from the same bytes again, 4.7 MB debug build", |b| {
        b.iter(|| Plugin::new(black_box(&count_vowels_debug), [], false).unwrap())
    });
    drop(Plugin::new(&wasi_stdout, [], true).unwrap());
    g.bench_function("from the same bytes again, WASI", |b| {
        b.iter(|| Plugin::new(black_box(&wasi_stdout), [], true).unwrap())
    });
    let compiled = CompiledPlugin::new(PluginBuilder::new(&count_vowels)).unwrap();
    g.bench_function("from compiled", |b| {
        b.iter(|| Plugin::new_from_compiled(&compiled).unwrap())
    });
    g.bench_function("from compiled + first call", |b| {
        b.iter(|| {
            let mut p = Plugin::new_from_compiled(&compiled).unwrap();
            let out: &[u8] = p.call("count_vowels_no_vars", "Hello, world!").unwrap();
            black_box(out.len());
        })
    });
    let compiled_debug = CompiledPlugin::new(PluginBuilder::new(&count_vowels_debug)).unwrap();
    g.bench_function("from compiled + first call, 4.7 MB debug build", |b| {
        b.iter(|| {
            let mut p = Plugin::new_from_compiled(&compiled_debug).unwrap();
            let out: &[u8] = p.call("count_vowels", "Hello, world!").unwrap();
            black_box(out.len());
        })
    });
    // The first call instantiates (plugin.rs): only the call is timed, not creating the
    // plugin or freeing it, as a host sees it after `extism_plugin_new`.
    for (label, bytes) in [
        ("first call", &count_vowels),
        ("first call, 4.7 MB debug build", &count_vowels_debug),
    ] {
        g.bench_function(label, |b| {
            b.iter_batched(
                || Plugin::new(bytes, [], false).unwrap(),
                |mut p| {
                    let out: &[u8] = p.call("count_vowels", "Hello, world!").unwrap();
                    black_box(out.len());
                    p
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, calls, host_calls, content_key, creation);
criterion_main!(benches);
