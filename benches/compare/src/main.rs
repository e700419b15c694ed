//! Side-by-side comparison of two libextism shared libraries through the C API.
//!
//! ```sh
//! scripts/bench-compare.sh            # fetches upstream, builds ours (release), runs this
//! cargo run --release --manifest-path benches/compare/Cargo.toml -- --ours LIB --upstream LIB
//! ```
//!
//! Both libraries are loaded into this process and get identical workloads on the plugins of
//! `testdata/rust/wasm/` (built with the real extism-pdk). Every metric is sampled in rounds
//! that alternate between the two libraries (ours first in even rounds, upstream first in odd
//! ones), so machine noise hits both alike; the table shows each library's median and the ratio
//! ours/upstream (below 1 means ours is faster or smaller); the 2-thread row shows each
//! library's own scaling instead. Rows ending in "(plugin, size, PDK)" repeat one set of
//! workloads for each plugin size (`plugin_sizes`). The 1000-live-plugins workloads run in a
//! child process per library (this program re-executed with `live`), so resident memory is not
//! mixed.

mod capi;

use std::{
    ffi::{c_void, CStr},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use capi::{Api, CurrentPlugin, Plugin, Val, I64};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

struct Options {
    ours: String,
    upstream: String,
    rounds: usize,
    /// Target wall time of one sample of one library.
    sample: Duration,
    live: usize,
    live_rounds: usize,
    only: Option<String>,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("live") {
        return live_child(&args[1..]);
    }
    let opts = parse(&args);
    let root = &repo_root();
    let ours = Api::load("ours", &opts.ours);
    let upstream = Api::load("upstream", &opts.upstream);
    eprintln!("ours:     {} ({})", opts.ours, ours.version);
    eprintln!("upstream: {} ({})", opts.upstream, upstream.version);

    // Leaked: the workloads keep them for the whole run.
    let wasm = |name: &str| -> &'static [u8] {
        let p = root.join("testdata/rust/wasm").join(name);
        std::fs::read(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .leak()
    };
    let count_vowels = wasm("count_vowels.wasm");
    let echo = wasm("echo.wasm");
    let host_fns = wasm("host_fns.wasm");
    let wasi_stdout = wasm("wasi_stdout.wasm");
    let sizes = plugin_sizes(&wasm);

    let mut rows: Vec<Row> = Vec::new();
    let want = |name: &str| wanted(&opts, name);
    let sides = [ours, upstream];

    // ---- calls -------------------------------------------------------------------------
    let text13 = b"Hello, world!".to_vec();
    let text = |n: usize| -> Vec<u8> {
        b"The quick brown fox jumps over the lazy dog. "
            .iter()
            .copied()
            .cycle()
            .take(n)
            .collect()
    };
    let mut calls: Vec<(String, &[u8], &CStr, Vec<u8>, Option<&str>, Option<usize>)> = vec![
        (
            "call latency: count_vowels_no_vars, 13 B".into(),
            count_vowels,
            c"count_vowels_no_vars",
            text13.clone(),
            Some("≤ 0.2"),
            None,
        ),
        (
            "throughput: count_vowels_no_vars, 64 KiB".into(),
            count_vowels,
            c"count_vowels_no_vars",
            text(64 * KIB),
            Some("≤ 0.5"),
            Some(64 * KIB),
        ),
        (
            "throughput: count_vowels_no_vars, 1 MiB".into(),
            count_vowels,
            c"count_vowels_no_vars",
            text(MIB),
            Some("≤ 0.5"),
            Some(MIB),
        ),
        (
            "throughput: echo, 1 MiB".into(),
            echo,
            c"echo",
            text(MIB),
            Some("≤ 0.5"),
            Some(MIB),
        ),
        (
            "host function round trip, 64 KiB".into(),
            host_fns,
            c"roundtrip",
            text(64 * KIB),
            Some("≤ 0.5"),
            Some(64 * KIB),
        ),
        (
            "host function round trip, 1 MiB".into(),
            host_fns,
            c"roundtrip",
            text(MIB),
            Some("≤ 0.5"),
            Some(MIB),
        ),
        // spec/kernel.md §10.1: many live blocks, where upstream's length/free/reuse walk them.
        (
            "kernel: 10 000 alloc/free, up to 6 667 live blocks (alloc_live)".into(),
            echo,
            c"alloc_live",
            Vec::new(),
            Some("≤ 0.1"),
            None,
        ),
        (
            "kernel: 10 000 alloc/free, at most 2 live blocks (alloc_bench)".into(),
            echo,
            c"alloc_bench",
            Vec::new(),
            None,
            None,
        ),
    ];
    // The same rows for every plugin size.
    for size in &sizes {
        let label = &size.label;
        calls.push((
            format!("call latency: count_vowels (config + vars), 13 B {label}"),
            size.wasm,
            c"count_vowels",
            text13.clone(),
            Some("≤ 0.15"),
            None,
        ));
        if size.roundtrip {
            for (n, what) in [(64 * KIB, "64 KiB"), (MIB, "1 MiB")] {
                calls.push((
                    format!("host function round trip, {what} {label}"),
                    size.wasm,
                    c"roundtrip",
                    text(n),
                    (n == MIB).then_some("≤ 0.33"),
                    Some(n),
                ));
            }
        }
        if size.echo {
            calls.push((
                format!("throughput: echo, 1 MiB {label}"),
                size.wasm,
                c"echo",
                text(MIB),
                Some("≤ 0.33"),
                Some(MIB),
            ));
        }
    }
    for (name, wasm, func, input, target, bytes) in calls {
        let name = name.as_str();
        if !want(name) {
            continue;
        }
        let wasi = sizes.iter().any(|s| s.wasi && std::ptr::eq(s.wasm, wasm));
        let host_fns_needed = func == c"roundtrip"
            || sizes
                .iter()
                .any(|s| s.roundtrip && std::ptr::eq(s.wasm, wasm));
        let mut runs: Vec<Box<dyn FnMut(u64) -> Duration>> = Vec::new();
        let mut outputs = Vec::new();
        for api in sides {
            let plugin = plugin_from_bytes(api, wasm, wasi, host_fns_needed);
            if func == c"count_vowels" {
                // A config value that is present, so config_get finds it (the default vowels).
                api.config(plugin, r#"{"vowels":"aeiouAEIOU"}"#);
            }
            api.call(plugin, func, &input);
            outputs.push(api.output(plugin));
            let input = input.clone();
            runs.push(Box::new(move |n| {
                let start = Instant::now();
                for _ in 0..n {
                    api.call(plugin, func, &input);
                }
                start.elapsed()
            }));
        }
        assert_eq!(
            outputs[0], outputs[1],
            "{name}: the libraries disagree on the output"
        );
        if func == c"echo" || func == c"roundtrip" {
            assert_eq!(outputs[0], input, "{name}: output is not the input");
        }
        rows.push(measure(name, &opts, runs, Unit::Time, target, bytes));
    }

    // ---- plugin creation ---------------------------------------------------------------
    let mut creations: Vec<(String, &[u8], bool, bool, Option<&str>)> = vec![(
        "new plugin from the same bytes again, WASI (wasi_stdout)".into(),
        wasi_stdout,
        true,
        false,
        None,
    )];
    for size in &sizes {
        creations.push((
            format!("new plugin from the same bytes again {}", size.label),
            size.wasm,
            size.wasi,
            size.roundtrip,
            Some("≤ 0.1"),
        ));
    }
    for (name, wasm, wasi, host_fns_needed, target) in creations {
        if !want(&name) {
            continue;
        }
        let runs = sides
            .map(|api| {
                // The first time compiles.
                api.plugin_free(plugin_from_bytes(api, wasm, wasi, host_fns_needed));
                Box::new(move |n: u64| {
                    let mut total = Duration::ZERO;
                    for _ in 0..n {
                        let start = Instant::now();
                        let p = plugin_from_bytes(api, wasm, wasi, host_fns_needed);
                        total += start.elapsed();
                        api.plugin_free(p);
                    }
                    total
                }) as Box<dyn FnMut(u64) -> Duration>
            })
            .into_iter()
            .collect();
        rows.push(measure(&name, &opts, runs, Unit::Time, target, None));
    }
    // The first call of a plugin made from bytes instantiates it (and runs the PDK's set-up);
    // plugin_new itself is not timed.
    for size in &sizes {
        let name = format!(
            "first call of a new plugin from bytes, count_vowels 13 B {}",
            size.label
        );
        if !want(&name) {
            continue;
        }
        let runs = sides
            .map(|api| {
                let (wasm, wasi, host_fns) = (size.wasm, size.wasi, size.roundtrip);
                let input = text13.clone();
                // The first time compiles.
                api.plugin_free(plugin_from_bytes(api, wasm, wasi, host_fns));
                Box::new(move |n: u64| {
                    let mut total = Duration::ZERO;
                    for _ in 0..n {
                        let p = plugin_from_bytes(api, wasm, wasi, host_fns);
                        let start = Instant::now();
                        api.call(p, c"count_vowels", &input);
                        total += start.elapsed();
                        api.plugin_free(p);
                    }
                    total
                }) as Box<dyn FnMut(u64) -> Duration>
            })
            .into_iter()
            .collect();
        rows.push(measure(&name, &opts, runs, Unit::Time, Some("≤ 0.3"), None));
    }
    let from_compiled = [
        ("new plugin from a compiled plugin", false, Some("≤ 0.2")),
        (
            "new plugin from a compiled plugin + first call (13 B)",
            true,
            None,
        ),
    ];
    for (name, first_call, target) in from_compiled {
        if !want(name) {
            continue;
        }
        if !sides.iter().all(|a| a.has_compiled()) {
            eprintln!("skipped: {name} (a library lacks extism_compiled_plugin_new)");
            continue;
        }
        let runs = sides
            .map(|api| {
                let compiled = api.compiled_new(count_vowels, false);
                let input = text13.clone();
                Box::new(move |n: u64| {
                    let mut total = Duration::ZERO;
                    for _ in 0..n {
                        let start = Instant::now();
                        let p = api.plugin_from_compiled(compiled);
                        if first_call {
                            api.call(p, c"count_vowels_no_vars", &input);
                        }
                        total += start.elapsed();
                        api.plugin_free(p);
                    }
                    total
                }) as Box<dyn FnMut(u64) -> Duration>
            })
            .into_iter()
            .collect();
        rows.push(measure(name, &opts, runs, Unit::Time, target, None));
    }

    // ---- two threads -------------------------------------------------------------------------
    let name = "count_vowels (config + vars) 13 B calls per second, 2 threads / 1 thread \
                (count_vowels, one plugin per thread from the same bytes)";
    if want(name) {
        rows.push(thread_scaling(name, &opts, sides, count_vowels, &text13));
    }

    // ---- 1000 live plugins, one child process per library and round ---------------------
    rows.extend(live_rows(&opts, &sizes));

    print_table(&rows, ours, upstream, &opts);
}

/// One plugin size with its rows: the same count_vowels export in all, echo and roundtrip where
/// the plugin has them (count_vowels.wasm has neither; echo.wasm and host_fns.wasm give those rows).
struct Size {
    file: &'static str,
    wasm: &'static [u8],
    /// "(name, size, PDK)" for the row names.
    label: String,
    wasi: bool,
    echo: bool,
    /// Exports `roundtrip`, so it imports `host_reflect` and needs the host functions.
    roundtrip: bool,
}

fn plugin_sizes(wasm: &dyn Fn(&str) -> &'static [u8]) -> Vec<Size> {
    let size = |file: &'static str, what: &str, wasi, echo, roundtrip| {
        let bytes = wasm(file);
        let n = bytes.len() as f64;
        let shown = match n >= 1e6 {
            true => format!("{:.1} MB", n / 1e6),
            false => format!("{:.0} KB", n / 1e3),
        };
        let name = file.trim_end_matches(".wasm");
        Size {
            file,
            wasm: bytes,
            label: format!("({name}, {shown}{what}, Rust PDK)"),
            wasi,
            echo,
            roundtrip,
        }
    };
    vec![
        size("count_vowels.wasm", "", false, false, false),
        size(
            "count_vowels_debug.wasm",
            " debug build",
            false,
            false,
            false,
        ),
        size("bigdata.wasm", " + 16 MiB memory", false, true, true),
        size("wasi_command.wasm", " WASI command", true, true, false),
    ]
}

/// Calls per second of two threads, each calling its own plugin (both made from the same
/// bytes), divided by the calls per second of one thread: 2.0 is perfect scaling.
fn thread_scaling(
    name: &str,
    opts: &Options,
    sides: [&'static Api; 2],
    wasm: &'static [u8],
    input: &[u8],
) -> Row {
    // Plugins are raw pointers; each is used by one thread at a time.
    let plugins = sides.map(|api| {
        [0, 1].map(|_| {
            let p = api.plugin_new(wasm, &[], false);
            api.config(p, r#"{"vowels":"aeiouAEIOU"}"#);
            api.call(p, c"count_vowels", input);
            p as usize
        })
    });
    let batch = |api: &Api, p: usize, n: u64| {
        for _ in 0..n {
            api.call(p as Plugin, c"count_vowels", input);
        }
    };
    // Batch size per library (each ratio is of one library alone): about `opts.sample` of one
    // thread, so starting the threads is a small part of a sample.
    let counts: Vec<u64> = sides
        .iter()
        .zip(&plugins)
        .map(|(api, ps)| {
            let start = Instant::now();
            batch(api, ps[0], 1000);
            let per_call = start.elapsed().as_secs_f64() / 1000.0;
            ((opts.sample.as_secs_f64() / per_call) as u64).max(100)
        })
        .collect();
    let mut samples = [Vec::new(), Vec::new()];
    for round in 0..opts.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let (api, ps, n) = (sides[i], plugins[i], counts[i]);
            let start = Instant::now();
            batch(api, ps[0], n);
            let one = start.elapsed().as_secs_f64();
            let start = Instant::now();
            std::thread::scope(|s| {
                for p in ps {
                    s.spawn(move || batch(api, p, n));
                }
            });
            let two = start.elapsed().as_secs_f64();
            samples[i].push((2 * n) as f64 / two / (n as f64 / one));
        }
    }
    for (api, ps) in sides.iter().zip(plugins) {
        for p in ps {
            api.plugin_free(p as Plugin);
        }
    }
    let row = Row {
        name: name.to_string(),
        unit: Unit::Ratio,
        ours: median(&mut samples[0]),
        upstream: median(&mut samples[1]),
        target: Some("≥ 1.8×".into()),
        bytes: None,
    };
    eprintln!(
        "{name}: upstream {} ours {} ({} and {} calls per thread and sample, {} rounds)",
        fmt_value(row.upstream, Unit::Ratio),
        fmt_value(row.ours, Unit::Ratio),
        counts[1],
        counts[0],
        opts.rounds
    );
    row
}

/// Whether the row `name` is measured (`--only SUBSTRING`).
fn wanted(opts: &Options, name: &str) -> bool {
    opts.only.as_deref().is_none_or(|o| name.contains(o))
}

/// The extism-run checkout this harness lives in (benches/compare/..).
fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}

fn parse(args: &[String]) -> Options {
    let root = &repo_root();
    let mut opts = Options {
        ours: root
            .join("target/release/libextism.so")
            .display()
            .to_string(),
        upstream: find_upstream(root).unwrap_or_default(),
        rounds: 15,
        sample: Duration::from_millis(40),
        live: 1000,
        live_rounds: 3,
        only: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| panic!("{a} needs a value"))
                .clone()
        };
        match a.as_str() {
            "--ours" => opts.ours = value(),
            "--upstream" => opts.upstream = value(),
            "--rounds" => opts.rounds = value().parse().expect("--rounds N"),
            "--sample-ms" => {
                opts.sample = Duration::from_millis(value().parse().expect("--sample-ms N"))
            }
            "--live" => opts.live = value().parse().expect("--live N"),
            "--live-rounds" => opts.live_rounds = value().parse().expect("--live-rounds N"),
            "--only" => opts.only = Some(value()),
            "-h" | "--help" => {
                eprintln!(
                    "usage: compare [--ours LIB] [--upstream LIB] [--rounds N] [--sample-ms MS] \
                     [--live N] [--live-rounds N] [--only SUBSTRING]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        !opts.upstream.is_empty(),
        "no upstream library: run scripts/fetch-upstream.sh or pass --upstream PATH"
    );
    opts
}

/// `target/upstream/extism-sys-*/unpacked/extism_sys/libextism_sys.so`, as fetched by
/// scripts/fetch-upstream.sh.
fn find_upstream(root: &Path) -> Option<String> {
    let dir = root.join("target/upstream");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path().join("unpacked/extism_sys/libextism_sys.so"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().map(|p| p.display().to_string())
}

// ---- host functions of host_fns.wasm ---------------------------------------------------------

/// `host_reflect (i64) -> i64`: a new block holding a copy of the argument block.
unsafe extern "C" fn host_reflect(
    plugin: CurrentPlugin,
    inputs: *const Val,
    _n_inputs: u64,
    outputs: *mut Val,
    _n_outputs: u64,
    data: *mut c_void,
) {
    // SAFETY: `data` is the leaked Api of the library calling us; one input, one output.
    unsafe {
        let api = &*(data as *const Api);
        let handle = (*inputs).v as u64;
        let len = (api.cp_length)(plugin, handle);
        let out = (api.cp_alloc)(plugin, len);
        if out != 0 {
            // The base is read after allocating: allocation may move kernel memory.
            let base = (api.cp_memory)(plugin);
            std::ptr::copy_nonoverlapping(
                base.add(handle as usize),
                base.add(out as usize),
                len as usize,
            );
        }
        (*outputs).v = out as i64;
    }
}

/// `host_context () -> i64`: no context here, so the null handle.
unsafe extern "C" fn host_context(
    _plugin: CurrentPlugin,
    _inputs: *const Val,
    _n_inputs: u64,
    outputs: *mut Val,
    _n_outputs: u64,
    _data: *mut c_void,
) {
    // SAFETY: one output.
    unsafe { (*outputs).v = 0 };
}

/// A plugin made from bytes, with the host functions of host_fns.wasm when `host_fns`. A function
/// object can be attached to one plugin only, so every plugin gets new ones (as a host creating
/// plugins with host functions must do); their wrappers are freed once attached.
fn plugin_from_bytes(api: &'static Api, wasm: &[u8], wasi: bool, host_fns: bool) -> Plugin {
    let functions = match host_fns {
        true => host_functions(api),
        false => Vec::new(),
    };
    let p = api.plugin_new(wasm, &functions, wasi);
    for f in functions {
        api.function_free(f);
    }
    p
}

fn host_functions(api: &'static Api) -> Vec<capi::Function> {
    vec![
        api.function("host_reflect", &[I64], &[I64], host_reflect),
        api.function("host_context", &[], &[I64], host_context),
    ]
}

// ---- measuring -------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Unit {
    Time,
    Bytes,
    /// A figure of each library on its own (the target applies to ours, not ours/upstream).
    Ratio,
}

struct Row {
    name: String,
    unit: Unit,
    /// Medians: ours, upstream (seconds or bytes).
    ours: f64,
    upstream: f64,
    target: Option<String>,
    /// Bytes processed per operation, for a throughput figure.
    bytes: Option<usize>,
}

/// Samples two workloads (ours, upstream) in alternating rounds; each closure runs `n`
/// operations and returns the time they took.
fn measure(
    name: &str,
    opts: &Options,
    mut runs: Vec<Box<dyn FnMut(u64) -> Duration>>,
    unit: Unit,
    target: Option<&str>,
    bytes: Option<usize>,
) -> Row {
    // Warm up, then size the batch so the slower library's sample takes about `opts.sample`.
    let mut per_op = [0f64; 2];
    for (i, run) in runs.iter_mut().enumerate() {
        run(1);
        let mut n = 1u64;
        loop {
            let t = run(n);
            if t >= Duration::from_millis(5) || n >= 1 << 20 {
                per_op[i] = t.as_secs_f64() / n as f64;
                break;
            }
            n *= 4;
        }
    }
    let slow = per_op[0].max(per_op[1]);
    let n = ((opts.sample.as_secs_f64() / slow) as u64).max(1);
    let mut samples = [Vec::new(), Vec::new()];
    for round in 0..opts.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            samples[i].push(runs[i](n).as_secs_f64() / n as f64);
        }
    }
    let row = Row {
        name: name.to_string(),
        unit,
        ours: median(&mut samples[0]),
        upstream: median(&mut samples[1]),
        target: target.map(str::to_string),
        bytes,
    };
    eprintln!(
        "{name}: upstream {} ours {} ({} ops per sample, {} rounds)",
        fmt_value(row.upstream, unit),
        fmt_value(row.ours, unit),
        n,
        opts.rounds
    );
    row
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---- live plugins ----------------------------------------------------------------------------

/// What one child reports.
struct Live {
    create_s: f64,
    call_s: f64,
    free_s: f64,
    rss_created: f64,
    rss_per_plugin: f64,
    rss_held: f64,
}

/// One workload of live children: plugin file, creation mode, export called once per plugin.
struct LiveRun<'a> {
    file: &'a str,
    /// `compiled` or `bytes`.
    mode: &'a str,
    export: &'a str,
    wasi: bool,
    host_fns: bool,
    rounds: usize,
}

fn live_rows(opts: &Options, sizes: &[Size]) -> Vec<Row> {
    let mut rows = Vec::new();
    let n = opts.live;
    let med = |results: &[Vec<Live>; 2], i: usize, f: fn(&Live) -> f64| {
        median(&mut results[i].iter().map(f).collect::<Vec<_>>())
    };
    let row = |name: String, unit, ours, upstream, target: Option<&str>| Row {
        name,
        unit,
        ours,
        upstream,
        target: target.map(str::to_string),
        bytes: None,
    };

    // A workload runs if `--only` selects one of its rows.
    let any_wanted = |prefix: &str, whats: &[&str]| {
        whats
            .iter()
            .any(|what| wanted(opts, &format!("{prefix}{what}")))
    };

    let label = "create from compiled + first call";
    let whats = [
        "create, per plugin",
        "free them all, per plugin",
        "RSS per plugin",
        "memory still held after freeing them",
    ];
    let prefix = format!("{n} live plugins ({label}): ");
    if any_wanted(&prefix, &whats) {
        let results = live_runs(
            opts,
            &LiveRun {
                file: "count_vowels.wasm",
                mode: "compiled",
                export: "count_vowels_no_vars",
                wasi: false,
                host_fns: false,
                rounds: opts.live_rounds,
            },
        );
        let create = |l: &Live| l.create_s + l.call_s;
        rows.push(row(
            format!("{prefix}create, per plugin"),
            Unit::Time,
            med(&results, 0, create) / n as f64,
            med(&results, 1, create) / n as f64,
            None,
        ));
        rows.push(row(
            format!("{prefix}free them all, per plugin"),
            Unit::Time,
            med(&results, 0, |l| l.free_s) / n as f64,
            med(&results, 1, |l| l.free_s) / n as f64,
            None,
        ));
        rows.push(row(
            format!("{prefix}RSS per plugin"),
            Unit::Bytes,
            med(&results, 0, |l| l.rss_per_plugin),
            med(&results, 1, |l| l.rss_per_plugin),
            Some("≤ 0.5"),
        ));
        rows.push(row(
            format!("{prefix}memory still held after freeing them"),
            Unit::Bytes,
            med(&results, 0, |l| l.rss_held),
            med(&results, 1, |l| l.rss_held),
            Some("≤ 8 MiB"),
        ));
    }

    let whats = [
        "create, per plugin",
        "RSS per plugin after creating",
        "RSS per plugin after one call each",
        "memory still held after freeing them",
    ];
    for size in sizes {
        let label = &size.label;
        let prefix = format!("{n} live plugins from bytes {label}: ");
        if !any_wanted(&prefix, &whats) {
            continue;
        }
        // Creating 1000 plugins of a large module from bytes takes seconds per child.
        let rounds = match size.wasm.len() > 1_000_000 {
            true => opts.live_rounds.div_ceil(3),
            false => opts.live_rounds,
        };
        let results = live_runs(
            opts,
            &LiveRun {
                file: size.file,
                mode: "bytes",
                export: "count_vowels",
                wasi: size.wasi,
                host_fns: size.roundtrip,
                rounds,
            },
        );
        let name = |what: &str| format!("{prefix}{what}");
        // (row, unit, figure, target, divided by)
        let figures: [(&str, Unit, fn(&Live) -> f64, Option<&str>, f64); 4] = [
            (
                "create, per plugin",
                Unit::Time,
                |l| l.create_s,
                None,
                n as f64,
            ),
            (
                "RSS per plugin after creating",
                Unit::Bytes,
                |l| l.rss_created,
                Some("≤ 0.3"),
                1.0,
            ),
            (
                "RSS per plugin after one call each",
                Unit::Bytes,
                |l| l.rss_per_plugin,
                Some("≤ 0.3"),
                1.0,
            ),
            (
                "memory still held after freeing them",
                Unit::Bytes,
                |l| l.rss_held,
                Some("≤ 8 MiB"),
                1.0,
            ),
        ];
        for (what, unit, figure, target, per) in figures {
            rows.push(row(
                name(what),
                unit,
                med(&results, 0, figure) / per,
                med(&results, 1, figure) / per,
                target,
            ));
        }
    }
    rows
}

/// The live child's figures for each library (ours, upstream), one per round.
fn live_runs(opts: &Options, run: &LiveRun) -> [Vec<Live>; 2] {
    let exe = std::env::current_exe().expect("current_exe");
    let libs = [&opts.ours, &opts.upstream];
    let mut results: [Vec<Live>; 2] = [Vec::new(), Vec::new()];
    let flag = |b: bool| if b { "1" } else { "0" };
    for round in 0..run.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let out = Command::new(&exe)
                .args(["live", libs[i], &opts.live.to_string(), run.file, run.mode])
                .args([run.export, flag(run.wasi), flag(run.host_fns)])
                .output()
                .expect("running the live child");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "live child for {} failed: {}{}",
                libs[i],
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
            let field = |key: &str| -> f64 {
                stdout
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
                    .unwrap_or_else(|| panic!("live child printed no {key}: {stdout}"))
            };
            results[i].push(Live {
                create_s: field("create_s"),
                call_s: field("call_s"),
                free_s: field("free_s"),
                rss_created: field("rss_created"),
                rss_per_plugin: field("rss_per_plugin"),
                rss_held: field("rss_held"),
            });
            eprintln!(
                "live {} {} {}: {}",
                ["ours", "upstream"][i],
                run.file,
                run.mode,
                stdout.trim()
            );
        }
    }
    results
}

fn rss_bytes() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc_page_size() } as f64
}

unsafe extern "C" {
    fn sysconf(name: i32) -> i64;
}

/// `sysconf(_SC_PAGESIZE)` (30 on Linux).
unsafe fn libc_page_size() -> i64 {
    unsafe { sysconf(30) }
}

/// `live LIB N PLUGIN MODE EXPORT WASI HOST_FNS`: compiles PLUGIN (a file of
/// testdata/rust/wasm/) once, then creates N plugins, from the compiled plugin (MODE `compiled`)
/// or from the bytes (`bytes`, as `extism_plugin_new` does), then calls EXPORT once on each (so
/// every plugin is fully instantiated), then frees them all. WASI and HOST_FNS (`1` or `0`)
/// enable WASI and pass the host functions of host_fns.wasm. Prints the creation and first-call
/// time, resident memory per plugin after creating and after the calls, and still held after
/// freeing.
fn live_child(args: &[String]) {
    let lib: &str = Box::leak(args[0].clone().into_boxed_str());
    let n: usize = args[1].parse().expect("count");
    let from_bytes = args[3] == "bytes";
    let export = std::ffi::CString::new(args[4].as_str()).unwrap();
    let (wasi, host_fns) = (args[5] == "1", args[6] == "1");
    let root = &repo_root();
    let wasm = std::fs::read(root.join("testdata/rust/wasm").join(&args[2])).unwrap();
    let api = Api::load("lib", lib);
    let input = b"Hello, world!";
    let t = Instant::now();
    let compiled = (!from_bytes).then(|| api.compiled_new(&wasm, wasi));
    let warm = match compiled {
        Some(c) => api.plugin_from_compiled(c),
        None => plugin_from_bytes(api, &wasm, wasi, host_fns),
    };
    let compile_s = t.elapsed().as_secs_f64();
    api.call(warm, &export, input);
    api.plugin_free(warm);

    let before = rss_bytes();
    let start = Instant::now();
    let plugins: Vec<Plugin> = (0..n)
        .map(|_| match compiled {
            Some(c) => api.plugin_from_compiled(c),
            None => plugin_from_bytes(api, &wasm, wasi, host_fns),
        })
        .collect();
    let create = start.elapsed();
    let created = rss_bytes();
    let start = Instant::now();
    for &p in &plugins {
        api.call(p, &export, input);
    }
    let call = start.elapsed();
    let live = rss_bytes();
    if std::env::var_os("COMPARE_SMAPS").is_some() {
        eprintln!("resident memory with {n} live plugins, by mapping:");
        dump_smaps();
    }
    let start = Instant::now();
    for p in plugins {
        api.plugin_free(p);
    }
    let free = start.elapsed();
    let after = rss_bytes();
    if std::env::var_os("COMPARE_SMAPS").is_some() {
        dump_smaps();
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim has no preconditions.
        unsafe { malloc_trim(0) };
        eprintln!("after malloc_trim: held {}", rss_bytes() - before);
    }
    if let Some(c) = compiled {
        api.compiled_free(c);
    }
    println!(
        "compile_s={compile_s} create_s={} call_s={} free_s={} rss_created={} rss_per_plugin={} rss_held={} rss_before={before} rss_live={live} rss_after={after}",
        create.as_secs_f64(),
        call.as_secs_f64(),
        free.as_secs_f64(),
        (created - before) / n as f64,
        (live - before) / n as f64,
        after - before,
    );
}

/// Debugging aid (COMPARE_SMAPS=1): resident memory summed by kind of mapping (the heap,
/// named files, anonymous mappings grouped by size), largest first.
fn dump_smaps() {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut totals: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut kind = String::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16)) {
                let name = line.split_whitespace().nth(5).unwrap_or("");
                kind = if name.is_empty() {
                    format!("anonymous, {} KiB mappings", (hi - lo) / 1024)
                } else {
                    name.to_string()
                };
                totals.entry(kind.clone()).or_default().1 += 1;
                continue;
            }
        }
        if first == "Rss:" {
            let kb: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            totals.entry(kind.clone()).or_default().0 += kb;
        }
    }
    let mut rows: Vec<_> = totals.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0));
    for (kind, (kb, count)) in rows.iter().take(12) {
        eprintln!("{kb:>8} kB in {count:>5} mappings: {kind}");
    }
}

// ---- output ------------------------------------------------------------------------------------

fn fmt_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Time if v >= 1.0 => format!("{v:.2} s"),
        Unit::Time if v >= 1e-3 => format!("{:.2} ms", v * 1e3),
        Unit::Time if v >= 1e-6 => format!("{:.2} µs", v * 1e6),
        Unit::Time => format!("{:.0} ns", v * 1e9),
        Unit::Bytes if v.abs() >= MIB as f64 => format!("{:.1} MiB", v / MIB as f64),
        Unit::Bytes if v.abs() >= KIB as f64 => format!("{:.1} KiB", v / KIB as f64),
        Unit::Bytes => format!("{v:.0} B"),
        Unit::Ratio => format!("{v:.2}×"),
    }
}

fn met(row: &Row) -> &'static str {
    let Some(t) = &row.target else { return "" };
    let ok = if let Some(limit) = t.strip_prefix("≥ ").and_then(|s| s.strip_suffix('×')) {
        row.ours >= limit.parse::<f64>().unwrap()
    } else if let Some(limit) = t.strip_prefix("≤ ").and_then(|s| s.strip_suffix(" MiB")) {
        row.ours <= limit.parse::<f64>().unwrap() * MIB as f64
    } else if let Some(limit) = t.strip_prefix("≤ ") {
        row.ours / row.upstream <= limit.parse::<f64>().unwrap()
    } else {
        return "";
    };
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

fn print_table(rows: &[Row], ours: &Api, upstream: &Api, opts: &Options) {
    let with_rate = |v: f64, row: &Row| match row.bytes {
        Some(b) => format!(
            "{} ({:.0} MiB/s)",
            fmt_value(v, row.unit),
            b as f64 / v / MIB as f64
        ),
        None => fmt_value(v, row.unit),
    };
    println!();
    println!(
        "upstream: libextism_sys {} · ours: extism-run {} · medians of {} alternating rounds",
        upstream.version, ours.version, opts.rounds
    );
    println!();
    println!("| metric | upstream | ours | ours / upstream | target | met |");
    println!("|---|---:|---:|---:|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {:.3} | {} | {} |",
            row.name,
            with_rate(row.upstream, row),
            with_rate(row.ours, row),
            row.ours / row.upstream,
            row.target.as_deref().unwrap_or(""),
            met(row)
        );
    }
}
