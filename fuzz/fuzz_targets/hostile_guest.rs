//! A generated guest calls every `extism:host/env` function with arbitrary arguments. The host
//! must answer with results or a clean error, never panic or touch memory outside the kernel,
//! and the plugin must stay usable afterwards.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

/// (name, number of i64 params, second param is i32, has result, result is i32)
const ENV: &[(&str, usize, bool, bool, bool)] = &[
    ("alloc", 1, false, true, false),
    ("free", 1, false, false, false),
    ("length", 1, false, true, false),
    ("length_unsafe", 1, false, true, false),
    ("load_u8", 1, false, true, true),
    ("load_u64", 1, false, true, false),
    ("store_u8", 2, true, false, false),
    ("store_u64", 2, false, false, false),
    ("input_length", 0, false, true, false),
    ("input_offset", 0, false, true, false),
    ("input_load_u8", 1, false, true, true),
    ("input_load_u64", 1, false, true, false),
    ("input_set", 2, false, false, false),
    ("output_set", 2, false, false, false),
    ("output_offset", 0, false, true, false),
    ("output_length", 0, false, true, false),
    ("error_set", 1, false, false, false),
    ("error_get", 0, false, true, false),
    ("memory_bytes", 0, false, true, false),
    ("reset", 0, false, false, false),
    ("config_get", 1, false, true, false),
    ("var_get", 1, false, true, false),
    ("var_set", 2, false, false, false),
    ("http_request", 2, false, true, false),
    ("http_status_code", 0, false, true, true),
    ("http_headers", 0, false, true, false),
    ("log_info", 1, false, false, false),
    ("get_log_level", 0, false, true, true),
];

#[derive(Arbitrary, Debug)]
enum Arg {
    Const(u64),
    /// The result of the latest `alloc`, plus an offset: lands near real blocks.
    LastAlloc(i16),
}

#[derive(Arbitrary, Debug)]
struct Call {
    func: u8,
    a: Arg,
    b: Arg,
}

#[derive(Arbitrary, Debug)]
struct Input {
    calls: Vec<Call>,
    input: Vec<u8>,
}

fn arg(a: &Arg) -> String {
    match a {
        Arg::Const(v) => format!("(i64.const {})", *v as i64),
        Arg::LastAlloc(d) => format!("(i64.add (global.get $last) (i64.const {d}))"),
    }
}

fn module(calls: &[Call]) -> String {
    let mut wat = String::from("(module\n");
    for (name, params, second_i32, result, result_i32) in ENV {
        let mut p: Vec<&str> = vec!["i64"; *params];
        if *second_i32 {
            p[1] = "i32";
        }
        let r = match (result, result_i32) {
            (true, true) => "(result i32)",
            (true, false) => "(result i64)",
            _ => "",
        };
        wat += &format!("(import \"extism:host/env\" \"{name}\" (func ${name} (param {}) {r}))\n", p.join(" "));
    }
    wat += "(global $last (mut i64) (i64.const 0))\n(func (export \"run\") (result i32)\n";
    for c in calls.iter().take(64) {
        let (name, params, second_i32, result, _) = ENV[c.func as usize % ENV.len()];
        let mut args = String::new();
        if params >= 1 {
            args += &arg(&c.a);
        }
        if params == 2 {
            args += &if second_i32 { "(i32.wrap_i64 ".to_string() + &arg(&c.b) + ")" } else { arg(&c.b) };
        }
        let call = format!("(call ${name} {args})");
        wat += &match (name, result) {
            ("alloc", _) => format!("(global.set $last {call})\n"),
            (_, true) => format!("(drop {call})\n"),
            _ => format!("{call}\n"),
        };
    }
    wat += "(i32.const 0)))\n";
    wat
}

fuzz_target!(|input: Input| {
    let wat = module(&input.calls);
    let manifest = extism::Manifest::new([extism::Wasm::data(wat.into_bytes())])
        .with_timeout(std::time::Duration::from_secs(2))
        .with_memory_max(256)
        .with_config_key("k", "v");
    let mut plugin = extism::Plugin::new(&manifest, [], false).expect("generated module links");
    let _ = plugin.raw_call("run", &input.input, None);
    let _ = plugin.output();
    // whatever happened, the plugin still works
    let _ = plugin.raw_call("run", b"", None);
});
