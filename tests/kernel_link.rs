//! The kernel linked into single-module plugins (src/kernel_link.rs): same behaviour as the
//! kernel as an instance of its own, private exports hidden, start functions deferred.

mod common;

use common::{pdk, wat};
use extism::{CompiledPlugin, Function, Manifest, Plugin, PluginBuilder, UserData, ValType, Wasm};

/// testdata/wat/NAME.wat with the kernel linked in (one module) or as its own instance (a
/// second, empty module in the manifest keeps the kernel separate).
fn linked_or_not(name: &str, linked: bool) -> CompiledPlugin {
    let mut modules = vec![Wasm::data(wat(name))];
    if !linked {
        modules.push(Wasm::data(b"(module)".to_vec()).with_name("other"));
    }
    let compiled = CompiledPlugin::new(PluginBuilder::new(Manifest::new(modules))).unwrap();
    assert_eq!(compiled.kernel_linked(), linked);
    compiled
}

/// The probe plugin, linked or not.
fn probe(linked: bool) -> Plugin {
    Plugin::new_from_compiled(&linked_or_not("kernel_probe", linked)).unwrap()
}

fn run(p: &mut Plugin, op: u64, a: u64, b: u64) -> u64 {
    let input: Vec<u8> = [op, a, b].iter().flat_map(|v| v.to_le_bytes()).collect();
    let out: Vec<u8> = p.call("probe", input).unwrap();
    u64::from_le_bytes(out.try_into().expect("8 bytes of output"))
}

#[test]
fn inlined_kernel_calls_behave_like_the_kernel() {
    let mut plugins = [probe(true), probe(false)];
    let size = run(&mut plugins[0], 6, 0, 0);
    assert_eq!(size, run(&mut plugins[1], 6, 0, 0));
    assert_eq!(size, 1 << 20, "the kernel starts with 16 pages");

    let edges = [
        0,
        1,
        7,
        8,
        15,
        16,
        17,
        23,
        24,
        25,
        127,
        128,
        size - 9,
        size - 8,
        size - 7,
        size - 1,
        size,
        size + 1,
        u32::MAX as u64,
        1 << 32,
        u64::MAX - 7,
        u64::MAX - 6,
        u64::MAX,
    ];
    let mut cases = Vec::new();
    for &a in &edges {
        for op in [0, 1, 2, 3, 10] {
            cases.push((op, a, 0));
        }
        cases.push((4, a, 0x1ab));
        cases.push((5, a, 0x0102_0304_0506_0708));
    }
    cases.extend([(7, 0, 0), (8, 0, 0)]);

    for (op, a, b) in cases {
        let linked = run(&mut plugins[0], op, a, b);
        let separate = run(&mut plugins[1], op, a, b);
        assert_eq!(linked, separate, "op {op}, a {a:#x}, b {b:#x}");
    }

    // A few answers spelled out (spec/kernel.md §9.5).
    let p = &mut plugins[0];
    assert_eq!(run(p, 1, 16, 42), 42, "the last 8 input bytes are b");
    assert_eq!(run(p, 1, 8, 0), 8, "input bytes 8..16 are a");
    assert_eq!(run(p, 1, 17, 42), 0, "fewer than 8 bytes left");
    assert_eq!(run(p, 1, u64::MAX - 6, 0), 0, "no wrap-around");
    assert_eq!(run(p, 0, 24, 0), 0);
    assert_eq!(run(p, 3, size - 7, 0), 0);
    assert_eq!(run(p, 5, size - 8, 77), 77);
    assert_eq!(
        run(p, 5, size - 7, 77),
        0,
        "an out-of-range store is ignored"
    );
    assert_eq!(run(p, 7, 0, 0), 24);
}

#[test]
fn inlined_stores_past_the_bump_pointer_never_leak_into_fresh_space() {
    // On new plugins, so that nothing was stored high up before. The second call's input
    // takes [128, 160) and its new block [160, size - 16), which covers the stored bytes.
    let size = 1 << 20;
    for (op, value) in [(4, 0xab), (5, u64::MAX)] {
        for linked in [true, false] {
            let mut p = probe(linked);
            assert_eq!(run(&mut p, op, size - 64, value), value);
            assert_eq!(
                run(&mut p, 9, size - 176, size - 64),
                0,
                "op {op}, {linked}"
            );
        }
    }
}

#[test]
fn private_kernel_exports_are_not_plugin_functions() {
    let compiled = CompiledPlugin::new(PluginBuilder::new(pdk("count_vowels"))).unwrap();
    assert!(compiled.kernel_linked());
    let mut p = Plugin::new_from_compiled(&compiled).unwrap();
    for name in [
        "extism-run:kernel/reset",
        "extism-run:kernel/alloc",
        "extism-run:kernel/start",
    ] {
        assert!(!p.function_exists(name), "{name}");
        let err = p.call::<_, &[u8]>(name, "").unwrap_err();
        assert_eq!(err.to_string(), format!("Function not found: {name}"));
    }
    let out: String = p.call("count_vowels_no_vars", "aaa").unwrap();
    assert!(out.contains("\"count\":3"), "{out}");
}

const START_SETS_A_VAR: &str = r#"
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (global $starts (mut i32) (i32.const 0))
  (func $byte (param $v i32) (result i64)
    (local $h i64)
    (local.set $h (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $h) (local.get $v))
    (local.get $h))
  ;; A start function that needs the kernel and a host function.
  (func $start
    (global.set $starts (i32.add (global.get $starts) (i32.const 1)))
    (call $var_set (call $byte (i32.const 107)) (call $byte (i32.const 118))))
  (start $start)
  (func (export "starts") (result i32)
    (local $h i64)
    (local.set $h (call $byte (i32.add (i32.const 48) (global.get $starts))))
    (call $output_set (local.get $h) (i64.const 1))
    (i32.const 0))
)
"#;

#[test]
fn start_functions_run_once_and_can_use_the_kernel() {
    let mut p = Plugin::new(START_SETS_A_VAR.as_bytes(), [], false).unwrap();
    for _ in 0..2 {
        let out: String = p.call("starts", "").unwrap();
        assert_eq!(out, "1");
    }
    assert_eq!(p.vars().get("k").map(Vec::as_slice), Some(&b"v"[..]));
}

#[test]
fn a_failing_start_function_fails_every_call() {
    let wat = START_SETS_A_VAR.replace("(global.set $starts", "(unreachable) (global.set $starts");
    let mut p = Plugin::new(wat.as_bytes(), [], false).unwrap();
    for _ in 0..2 {
        let (err, rc) = p.call_get_error_code::<_, &[u8]>("starts", "").unwrap_err();
        assert_eq!(rc, -1);
        assert!(format!("{err:#}").contains("unreachable"), "{err:#}");
    }
}

#[test]
fn a_kernel_import_with_another_type_is_refused() {
    let wat = r#"(module
        (import "extism:host/env" "load_u64" (func (param i32) (result i64)))
        (func (export "run") (result i32) (i32.const 0)))"#;
    let err = Plugin::new(wat.as_bytes(), [], false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "incompatible import type for `extism:host/env::load_u64`: the module expects \
         (i32) -> i64, the host provides (i64) -> i64"
    );
}

/// The host would take such exports for the kernel, with or without it linked in.
#[test]
fn guest_exports_under_the_private_prefix_are_refused() {
    let wat = r#"(module
        (import "extism:host/env" "input_length" (func $len (result i64)))
        (memory (export "extism-run:kernel/memory") 1)
        (func (export "extism-run:kernel/alloc") (param i64) (result i64) (i64.const 144))
        (func (export "run") (result i32) (i32.const 0)))"#;
    let want = "the module exports `extism-run:kernel/memory`: export names starting with \
                `extism-run:kernel/` are reserved for the runtime";
    let err = Plugin::new(wat.as_bytes(), [], false).unwrap_err();
    assert_eq!(format!("{err:#}"), want);
    let two = Manifest::new([
        Wasm::data(wat.as_bytes().to_vec()),
        Wasm::data(b"(module)".to_vec()).with_name("other"),
    ]);
    let err = Plugin::new(two, [], false).unwrap_err();
    assert_eq!(format!("{err:#}"), want);
}

/// Section counts that the section's contents do not back.
#[test]
fn declared_counts_beyond_the_contents_are_an_error() {
    for section in [5u8, 6] {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.extend([section, 5, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(Plugin::new(wasm, [], false).is_err(), "section {section}");
    }
}

#[test]
fn absurd_local_counts_are_refused_before_linking_allocates_them() {
    // One function that calls input_length and declares 0xF000_0000 i64 locals: invalid
    // (at most 50 000), and linking reads the declaration before anything validates it.
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    let section = |wasm: &mut Vec<u8>, id: u8, content: &[u8]| {
        wasm.push(id);
        wasm.push(content.len() as u8);
        wasm.extend_from_slice(content);
    };
    section(&mut wasm, 1, &[2, 0x60, 0, 1, 0x7e, 0x60, 0, 1, 0x7f]);
    let mut import = vec![1, 15];
    import.extend_from_slice(b"extism:host/env");
    import.push(12);
    import.extend_from_slice(b"input_length");
    import.extend([0, 0]);
    section(&mut wasm, 2, &import);
    section(&mut wasm, 3, &[1, 1]);
    section(&mut wasm, 7, &[1, 3, b'r', b'u', b'n', 0, 1]);
    let body = [
        1, 0x80, 0x80, 0x80, 0x80, 0x0f, 0x7e, 0x10, 0, 0x1a, 0x41, 0, 0x0b,
    ];
    let mut code = vec![1, body.len() as u8];
    code.extend_from_slice(&body);
    section(&mut wasm, 10, &code);
    let err = Plugin::new(&wasm, [], false).unwrap_err();
    assert!(format!("{err:#}").contains("locals"), "{err:#}");
}

#[test]
fn the_padding_of_host_written_blocks_reads_as_zero() {
    // The 24-byte input takes [128, 152) of a 32-byte block; a store dirties [152, 160).
    for linked in [true, false] {
        let mut p = probe(linked);
        assert_eq!(run(&mut p, 5, 152, u64::MAX), u64::MAX);
        assert_eq!(run(&mut p, 3, 152, 0), 0, "linked: {linked}");
    }
}

#[test]
fn the_runtime_s_own_kernel_exports_cannot_be_imported() {
    for (name, ty) in [
        ("extism-run:alloc_filled", "(func (param i64) (result i64))"),
        ("extism-run:clean", "(global (mut i64))"),
        ("extism-run:begin", "(func (param i64) (result i64))"),
        ("extism-run:end", "(func (result i64 i64 i64))"),
    ] {
        let wat = format!(r#"(module (import "extism:host/env" "{name}" {ty}))"#);
        let err = Plugin::new(wat.as_bytes(), [], false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Invalid import from extism:host/env: `{name}` is internal to the runtime")
        );
    }
    // Nor what the kernel asks of the host, linked or not, nor may a host function take its
    // place.
    let guest = br#"(module
        (import "extism-run:host" "copy" (func (param i32 i64)))
        (memory (export "memory") 1)
        (func (export "f") (result i32) (i32.const 0)))"#;
    let separate = Manifest::new([
        Wasm::data(guest.to_vec()),
        Wasm::data(b"(module)".to_vec()).with_name("other"),
    ]);
    for builder in [PluginBuilder::new(&guest[..]), PluginBuilder::new(separate)] {
        let err = builder.build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid import: `extism-run:host::copy` is internal to the runtime"
        );
    }
    let shadow = Function::new(
        "copy",
        [ValType::I32, ValType::I64],
        [],
        UserData::new(()),
        |_, _, _, _| Ok(()),
    )
    .with_namespace("extism-run:host");
    let err = PluginBuilder::new(wat("copy_loops"))
        .with_functions([shadow])
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "host function extism-run:host::copy: the namespace is internal to the runtime"
    );
}

/// Each module is invalid on its own: it names a memory, global, function or type it does not
/// have, which in the linked module would be one of the kernel's.
#[test]
fn indices_beyond_the_guest_never_reach_the_kernel() {
    let bodies = [
        "(memory 1) (func (export \"f\") (result i32) (i32.load 1 (i32.const 0)))",
        "(memory 1) (func (export \"f\") (result i32) (i32.store 2 (i32.const 0) (i32.const 1)) (i32.const 0))",
        "(func (export \"f\") (result i32) (drop (global.get 0)) (i32.const 0))",
        "(func (export \"f\") (result i32) (global.set 1 (i64.const 0)) (i32.const 0))",
        "(func (export \"f\") (result i32) (call 7) (i32.const 0))",
        "(table 1 funcref) (func (export \"f\") (result i32) (call_indirect (type 40) (i32.const 0)) (i32.const 0))",
    ];
    for body in bodies {
        let wat = format!(
            r#"(module (import "extism:host/env" "input_length" (func (result i64))) {body})"#
        );
        assert!(
            Plugin::new(wat.as_bytes(), [], false).is_err(),
            "accepted: {body}"
        );
    }
}

/// Output or error text of one copy loop run with `a`, `b`, `c` and `payload`.
fn copy(p: &mut Plugin, export: &str, abc: [u64; 3], payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut input: Vec<u8> = abc.iter().flat_map(|v| v.to_le_bytes()).collect();
    input.extend_from_slice(payload);
    p.call::<_, Vec<u8>>(export, input)
        .map_err(|e| format!("{e:#}"))
}

#[test]
fn copy_loops_and_short_copies_are_rewritten_where_they_qualify() {
    use common::capture::Captured;
    let events = Captured::default();
    // With a wasmtime configuration of their own, the modules compile for an engine of their
    // own: other tests of this binary cannot have put them into its module cache. With fuel,
    // copies keep no fast forms (they would change what a call is charged).
    let build = |bytes: Vec<u8>, fuel: bool| {
        let mut builder = PluginBuilder::new(bytes).with_wasmtime_config(wasmtime::Config::new());
        if fuel {
            builder = builder.with_fuel_limit(u64::MAX);
        }
        assert!(CompiledPlugin::new(builder).unwrap().kernel_linked());
    };
    tracing::subscriber::with_default(events.subscriber(tracing::Level::DEBUG), || {
        build(wat("copy_loops"), false);
        build(wat("kernel_probe"), false);
        build(wat("small_copy"), false);
        build(pdk("echo"), false);
        build(wat("small_copy"), true);
        build(pdk("echo"), true);
        // Memories of other page sizes (a host may enable them): the inlined bounds checks
        // count 64 KiB pages, so their copies stay as they are.
        let mut config = wasmtime::Config::new();
        config.wasm_custom_page_sizes(true);
        let small_pages = br#"(module
            (import "extism:host/env" "input_length" (func $len (result i64)))
            (memory 100 (pagesize 1))
            (func (export "copy") (result i32)
              (memory.copy (i32.const 92) (i32.const 0) (i32.wrap_i64 (call $len)))
              (i32.const 0)))"#;
        let compiled = CompiledPlugin::new(
            PluginBuilder::new(small_pages.to_vec()).with_wasmtime_config(config),
        )
        .unwrap();
        assert!(compiled.kernel_linked());
    });
    let text = events.text();
    let counts = |field: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("kernel linked into the module"))
            .filter_map(|l| l.split(&format!("{field}=")).nth(1))
            .map(|rest| rest.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    // copy_loops.wat: its six copy loops, not its checksum and fill loops; kernel_probe
    // has no loop; echo (Rust PDK): its input reader and its output writer.
    // None under fuel, nor for memories of other page sizes.
    assert_eq!(
        counts("copy_loops"),
        ["6", "0", "0", "2", "0", "0", "0"],
        "{text}"
    );
    // small_copy.wat's copy of a length from the input, not its copy of constant length; the
    // Rust PDK's memcpy uses memory.copy too. None under fuel.
    let small = counts("small_copies");
    assert_eq!(small[..3], ["0", "0", "1"], "{text}");
    assert_ne!(small[3], "0", "{text}");
    assert_eq!(small[4..], ["0", "0", "0"], "{text}");
    // A call entry for every export a call can run (() -> i32 or () -> ()): copy_loops.wat's
    // 6, kernel_probe's 1, small_copy's 3, the echo plugin's 5, the small-page module's 1;
    // none under fuel.
    let entries = counts("call_entries");
    assert_eq!(entries, ["6", "1", "3", "5", "0", "0", "1"], "{text}");
}

#[test]
fn bulk_copies_behave_like_the_loops_they_replace() {
    let (linked, separate) = (
        linked_or_not("copy_loops", true),
        linked_or_not("copy_loops", false),
    );
    let kernel = 1u64 << 20; // the kernel's 16 pages
    let guest = 1u64 << 16; // copy_loops.wat's one page
    let payload: Vec<u8> = (0..4000u32).map(|i| (i * 13 + 7) as u8).collect();
    let input_len = 24 + payload.len() as u64;
    let mut cases = Vec::new();
    // 2^32 and 2^32 + 9: counts a 32-bit counter sees as 0 and 9
    for n in [
        1u64,
        2,
        10,
        1000,
        8191,
        8192,
        0,
        u64::MAX,
        1 << 32,
        (1 << 32) + 9,
    ] {
        let ks = [
            128,
            1003,
            4200,
            kernel - 8 * n.min(1000),
            kernel - 8 * n.min(1000) + 1,
            kernel - 4,
            (1 << 32) - 8,
            u64::MAX - 7,
        ];
        let gs = [
            0,
            3,
            guest.saturating_sub(8 * n.min(8192)),
            guest.saturating_sub(8 * n.min(8192)) + 4,
            guest - 8,
            guest,
            (1 << 32) - 8,
        ];
        for k in ks {
            for g in gs {
                for export in [
                    "to_kernel",
                    "from_kernel",
                    "to_kernel_up",
                    "from_kernel_i32",
                    "to_kernel_until",
                ] {
                    cases.push((export, [k, g, n]));
                }
            }
        }
    }
    for i in [
        0u64,
        3,
        24,
        input_len - 8,
        input_len - 3,
        input_len,
        u64::MAX - 7,
    ] {
        let ends = [
            i.wrapping_add(8),
            i.wrapping_add(64),
            i.wrapping_add(8 * 500),
            i.wrapping_add(12),
            i,
            i.wrapping_sub(8),
            input_len,
            input_len - input_len % 8,
        ];
        for end in ends {
            for g in [0, 5, guest - 8 - 8, guest - 16 - 8 * 500, guest] {
                cases.push(("from_input", [i, g, end]));
            }
        }
    }
    // Cases that ran to the end, by export: each shape must have some, long enough (8
    // iterations or more) for the bulk copy.
    let mut succeeded: std::collections::BTreeMap<&str, usize> = Default::default();
    // A new pair of plugins for each case: what a loop leaves in the kernel (its clean mark)
    // must not hide what the next one does.
    for (export, abc) in cases {
        let fresh = |c: &CompiledPlugin| Plugin::new_from_compiled(c).unwrap();
        let linked = copy(&mut fresh(&linked), export, abc, &payload);
        let separate = copy(&mut fresh(&separate), export, abc, &payload);
        assert_eq!(linked, separate, "{export} {abc:x?}");
        let long = abc[2] >= 8 || export == "from_input";
        *succeeded.entry(export).or_default() += (linked.is_ok() && long) as usize;
    }
    assert_eq!(succeeded.len(), 6, "{succeeded:?}");
    assert!(succeeded.values().all(|&n| n >= 10), "{succeeded:?}");
}

#[test]
fn inlined_short_copies_behave_like_memory_copy() {
    let build = |linked| Plugin::new_from_compiled(&linked_or_not("small_copy", linked)).unwrap();
    let mut plugins = [build(true), build(false)];
    let size = 1u64 << 16;
    let mut cases = Vec::new();
    for len in 0..=20u64 {
        let mut places = vec![0, 1, 100, size - len, size - len + 1, size, size + 1];
        places.extend([u32::MAX as u64, (u32::MAX - 3) as u64]);
        for &dst in &places {
            for &src in &places {
                cases.push([dst, src, len]);
            }
        }
        // overlapping both ways
        for shift in 1..=9u64 {
            cases.push([500 + shift, 500, len]);
            cases.push([500, 500 + shift, len]);
        }
    }
    cases.push([0, 0, u32::MAX as u64]);
    cases.push([10, 20, 1000]);
    let mut copied = 0;
    for abc in cases {
        let input: Vec<u8> = abc.iter().flat_map(|v| v.to_le_bytes()).collect();
        let run = |p: &mut Plugin| {
            p.call::<_, Vec<u8>>("copy", input.clone())
                .map_err(|e| format!("{e:#}"))
        };
        let linked = run(&mut plugins[0]);
        let separate = run(&mut plugins[1]);
        assert_eq!(linked, separate, "dst, src, len = {abc:?}");
        copied += linked.is_ok() as usize;
        // What a trapped copy left in memory (a copy that traps writes nothing).
        let [linked, separate] = plugins
            .each_mut()
            .map(|p| p.call::<_, Vec<u8>>("sum", "").unwrap());
        assert_eq!(linked, separate, "memory after dst, src, len = {abc:?}");
    }
    assert!(copied > 300, "only {copied} copies ran to the end");
}

/// A linked module's call entry finds its input where the host wrote it before entering (the
/// kernel's first block after its reset), when it fits the kernel's memory as it is; larger
/// inputs go through the kernel's `begin` first, which grows memory. Inputs on both sides of
/// that edge, before and after memory grew, arrive whole, linked or not.
#[test]
fn call_inputs_arrive_whole_on_both_sides_of_the_memory_s_end() {
    let echo = |linked: bool| {
        let mut modules = vec![Wasm::data(pdk("echo"))];
        if !linked {
            modules.push(Wasm::data(b"(module)".to_vec()).with_name("other"));
        }
        Plugin::new(Manifest::new(modules), [], false).unwrap()
    };
    let mib = 1usize << 20;
    let edge = mib - 128; // the kernel's 16 pages, less what comes before the first block
    let sizes = [
        0,
        1,
        15,
        16,
        17,
        edge - 16,
        edge - 1,
        edge,
        edge + 1,
        3 * mib,
        edge + 1,
        edge,
        5,
        0,
    ];
    for linked in [true, false] {
        let mut p = echo(linked);
        for (i, &n) in sizes.iter().enumerate() {
            let input: Vec<u8> = (0..n).map(|j| (j * 31 + i) as u8).collect();
            let out: Vec<u8> = p.call("echo", &input).unwrap();
            assert!(out == input, "linked: {linked}, {n} bytes");
            let len: String = p.call("length", &input).unwrap();
            assert_eq!(len, n.to_string(), "linked: {linked}");
        }
    }
}
