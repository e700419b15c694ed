//! Guest ABI edge cases (spec/guest-abi.md) with the hand-written plugins of testdata/wat.

mod common;

use common::wat;
use extism::{Manifest, Plugin, Wasm};

fn abi() -> Plugin {
    Plugin::new(wat("abi"), [], false).unwrap()
}

/// An 8-byte input whose first byte is `n` (the plugin reads it with input_load_u64).
fn arg(n: u8) -> Vec<u8> {
    vec![n, 0, 0, 0, 0, 0, 0, 0]
}

/// (return code, error message) of a call, or (0, None) on success.
fn outcome(p: &mut Plugin, name: &str, input: &[u8]) -> (i32, Option<String>) {
    match p.raw_call(name, input, None) {
        Ok(rc) => (rc, None),
        Err((e, rc)) => (rc, Some(format!("{e:#}"))),
    }
}

#[test]
fn every_env_function_can_be_imported_with_its_exact_signature() {
    let mut p = Plugin::new(wat("all_imports"), [], false).unwrap();
    let out: Vec<u8> = p.call("run", "echo me").unwrap();
    assert_eq!(out, b"echo me");
}

#[test]
fn return_codes_follow_the_outcome_table() {
    let mut p = abi();
    assert_eq!(outcome(&mut p, "rc_7", b""), (7, None));
    assert_eq!(outcome(&mut p, "unit", b""), (0, None));
    assert_eq!(
        outcome(&mut p, "error_rc0", b""),
        (0, Some("guest failure".into()))
    );
    assert_eq!(
        outcome(&mut p, "error_rc5", b""),
        (5, Some("guest failure".into()))
    );
    assert_eq!(
        outcome(&mut p, "error_not_block", b""),
        (3, Some(String::new()))
    );
    assert_eq!(
        outcome(&mut p, "error_then_trap", b""),
        (-1, Some("guest failure".into()))
    );
    assert_eq!(outcome(&mut p, "error_cleared", b""), (0, None));
    let (rc, msg) = outcome(&mut p, "trap", b"");
    assert_eq!(rc, 134);
    assert!(msg.unwrap().contains("unreachable"));
    let (rc, msg) = outcome(&mut p, "divide_by_zero", b"");
    assert_eq!(rc, 134);
    assert!(msg.unwrap().contains("divide by zero"));
    let (rc, msg) = outcome(&mut p, "recurse", b"");
    assert_eq!(rc, 134);
    let msg = msg.unwrap();
    assert!(msg.contains("call stack exhausted"), "{msg}");
    assert_eq!(
        outcome(&mut p, "missing", b""),
        (-1, Some("Function not found: missing".into()))
    );
    assert_eq!(
        outcome(&mut p, "not_a_function", b""),
        (-1, Some("Function not found: not_a_function".into()))
    );
    let (rc, msg) = outcome(&mut p, "takes_params", b"");
    assert_eq!(rc, -1);
    assert!(msg.unwrap().contains("parameters"));
    assert_eq!(
        outcome(&mut p, "two_results", b""),
        (
            -1,
            Some("Function two_results has 2 results, expected 0 or 1".into())
        )
    );
    assert_eq!(outcome(&mut p, "i64_result", b"").0, -1);
    // the Rust API reports a bare non-zero code as an error
    let err = p.call::<_, &[u8]>("rc_7", "").unwrap_err();
    assert_eq!(err.to_string(), "Returned non-zero exit code: 7");
    // and the plugin is usable after all of it
    assert_eq!(outcome(&mut p, "unit", b""), (0, None));
}

#[test]
fn function_exists_only_for_callable_signatures() {
    let p = abi();
    for yes in ["rc_7", "unit", "trap", "_start"] {
        assert!(p.function_exists(yes), "{yes}");
    }
    for no in [
        "takes_params",
        "two_results",
        "i64_result",
        "not_a_function",
        "memory",
        "missing",
    ] {
        assert!(!p.function_exists(no), "{no}");
    }
}

#[test]
fn input_and_output_rules() {
    let mut p = abi();
    let out: Vec<u8> = p.call("echo_input", "hello").unwrap();
    assert_eq!(out, b"hello");
    let out: Vec<u8> = p.call("echo_input", "").unwrap();
    assert!(out.is_empty());
    // input_load_u64 returns 0 when fewer than 8 bytes remain
    let out: Vec<u8> = p.call("input_word", "abcdefg").unwrap();
    assert_eq!(out, [0u8; 8]);
    let out: Vec<u8> = p.call("input_word", "abcdefgh").unwrap();
    assert_eq!(out, b"abcdefgh");
    let out: Vec<u8> = p.call("output_null_ignored", "").unwrap();
    assert_eq!(out, b"key");
    let out: Vec<u8> = p.call("output_out_of_range", "").unwrap();
    assert!(out.is_empty());
    let out: String = p.call("free_input", "12345").unwrap();
    assert_eq!(out, "0");
    assert_eq!(
        p.call::<_, String>("load_oob", "")
            .map_err(|e| e.to_string()),
        Ok(String::new())
    );
}

#[test]
fn output_stays_readable_after_the_call_and_reset_clears_it() {
    let mut p = abi();
    p.raw_call("echo_input", b"persisted", None).unwrap();
    assert_eq!(p.output(), b"persisted");
    assert_eq!(p.output(), b"persisted");
    p.reset().unwrap();
    assert!(p.output().is_empty());
}

#[test]
fn host_freed_handles_are_never_handed_back_to_old_pdks() {
    let manifest = Manifest::new([Wasm::data(wat("abi"))]).with_config_key("key", "value!");
    let mut p = Plugin::new(&manifest, [], false).unwrap();
    for _ in 0..3 {
        let out: String = p.call("config_double_free", "").unwrap();
        assert_eq!(out, "value!");
    }
}

#[test]
fn bad_handles_passed_to_host_functions_trap_with_a_clear_message() {
    let mut p = abi();
    let (rc, msg) = outcome(&mut p, "config_bad_handle", b"");
    assert_eq!(rc, -1);
    assert!(msg
        .unwrap()
        .contains("invalid handle offset for config key: 3735928559"));
    let (rc, msg) = outcome(&mut p, "var_bad_handle", b"");
    assert_eq!(rc, -1);
    assert!(msg
        .unwrap()
        .contains("invalid handle offset for var key: 12345"));
    // logging is off (no subscriber): an invalid message handle is ignored
    assert_eq!(outcome(&mut p, "log_bad_handle", b""), (0, None));
}

#[test]
fn host_functions_free_their_argument_blocks() {
    let mut p = abi();
    p.config_mut().insert("key".into(), "value".into());
    // Twice: the second time var_get finds the var and allocates its value first.
    for _ in 0..2 {
        assert_eq!(
            p.call::<_, String>("host_frees_arguments", "").unwrap(),
            "0"
        );
    }
}

#[test]
fn vars_persist_across_calls_failures_and_resets() {
    let mut p = abi();
    p.call::<_, ()>("var_store", "kept").unwrap();
    assert!(p.call::<_, ()>("trap", "").is_err());
    p.reset().unwrap();
    let out: String = p.call("var_load", "").unwrap();
    assert_eq!(out, "kept");
    // Setting a var again overwrites it in place, longer or shorter.
    for value in [
        "a value longer than the first",
        "x",
        &"0123456789".repeat(300),
        "y",
    ] {
        p.call::<_, ()>("var_store", value).unwrap();
        assert_eq!(p.call::<_, String>("var_load", "").unwrap(), *value);
    }
}

#[test]
fn instance_persists_and_start_rebuilds_it() {
    let mut p = abi();
    let id = p.id();
    assert_eq!(p.call::<_, String>("count", "").unwrap(), "1");
    assert_eq!(p.call::<_, String>("count", "").unwrap(), "2");
    assert!(p.call::<_, ()>("trap", "").is_err());
    assert_eq!(p.call::<_, String>("count", "").unwrap(), "3");
    p.call::<_, ()>("var_store", "gone after _start").unwrap();
    p.config_mut().insert("key".into(), "kept".into());
    p.call::<_, ()>("_start", "").unwrap();
    // the store was rebuilt: globals and vars start over, config and id are kept
    assert_eq!(p.call::<_, String>("count", "").unwrap(), "1");
    assert_eq!(p.call::<_, String>("var_load", "").unwrap(), "");
    assert_eq!(
        p.call::<_, String>("config_double_free", "").unwrap(),
        "kept"
    );
    assert_eq!(p.id(), id);
}

#[test]
fn initialiser_runs_once_and_ctors_win_over_initialize() {
    let mut p = Plugin::new(wat("init_order"), [], false).unwrap();
    assert_eq!(p.call::<_, String>("get", "").unwrap(), "1");
    assert_eq!(p.call::<_, String>("get", "").unwrap(), "1");
}

#[test]
fn unknown_env_imports_and_kernel_memory_imports_are_refused() {
    let err = Plugin::new(
        r#"(module (import "extism:host/env" "frobnicate" (func (param i64) (result i64))))"#,
        [],
        false,
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("Invalid function import from extism:host/env: frobnicate (i64) -> i64"),
        "{msg}"
    );
    let err = Plugin::new(
        r#"(module (import "extism:host/env" "memory" (memory 1)))"#,
        [],
        false,
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("memory"), "{err:#}");
    let err = Plugin::new(
        r#"(module (import "extism:host/env" "alloc" (func (param i32) (result i64))))"#,
        [],
        false,
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("alloc"), "{err:#}");
}

#[test]
fn memory_max_pages_limits_growth_with_oom() {
    // the module has 1 page; 4 pages of budget allow growing by 3 but not by 4 more
    let manifest = Manifest::new([Wasm::data(wat("abi"))]).with_memory_max(4);
    let mut p = Plugin::new(&manifest, [], false).unwrap();
    assert_eq!(p.call::<_, String>("grow", arg(2)).unwrap(), "2");
    let (rc, msg) = outcome(&mut p, "grow", &arg(8));
    assert_eq!((rc, msg.as_deref()), (-1, Some("oom")));
    // kernel growth counts too
    let (rc, msg) = outcome(&mut p, "kernel_alloc_pow2", &arg(24));
    assert_eq!((rc, msg.as_deref()), (-1, Some("oom")));
    assert_eq!(p.call::<_, String>("count", "").unwrap(), "1");
}

#[test]
fn initial_memory_over_the_budget_fails_calls_not_creation() {
    let wasm = r#"(module (memory 17) (func (export "f")))"#;
    let manifest = Manifest::new([Wasm::data(wasm)]).with_memory_max(16);
    let mut p = Plugin::new(&manifest, [], false).unwrap();
    let (rc, msg) = outcome(&mut p, "f", b"");
    assert_eq!((rc, msg.as_deref()), (-1, Some("oom")));
    let manifest = Manifest::new([Wasm::data(wasm)]).with_memory_max(17);
    let mut p = Plugin::new(&manifest, [], false).unwrap();
    assert_eq!(outcome(&mut p, "f", b""), (0, None));
}

#[test]
fn huge_kernel_allocations_fail_cleanly_without_a_limit() {
    let mut p = abi();
    // 2^40 bytes cannot exist in a 32-bit memory: alloc returns 0
    assert_eq!(
        p.call::<_, String>("kernel_alloc_pow2", arg(40)).unwrap(),
        "0"
    );
    assert_eq!(
        p.call::<_, String>("kernel_alloc_pow2", arg(10)).unwrap(),
        "1"
    );
}

#[test]
fn guest_error_messages_keep_their_exact_bytes() {
    let mut p = abi();
    let (err, rc) = p
        .call_get_error_code::<_, &[u8]>("error_bytes", "")
        .unwrap_err();
    assert_eq!(rc, 1);
    let guest = err.downcast_ref::<extism::GuestError>().unwrap();
    assert_eq!(guest.bytes(), b"\xffbad");
    assert_eq!(err.to_string(), "\u{fffd}bad");
}
