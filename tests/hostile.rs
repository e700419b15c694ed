//! Hostile plugins (issue 6): forged handles, enormous lengths, out-of-memory bombs, stack
//! overflows and panicking host functions end in clear errors; the host never crashes and the
//! plugin stays usable.

mod common;

use common::{pdk, wat};
use extism::{Function, Manifest, Plugin, UserData, Wasm, PTR};

fn hostile(max_pages: Option<u32>) -> Plugin {
    let mut m = Manifest::new([Wasm::data(wat("hostile"))]).with_allowed_host("*");
    m.memory.max_pages = max_pages;
    Plugin::new(&m, [], false).unwrap()
}

fn outcome(p: &mut Plugin, name: &str) -> (i32, String) {
    match p.raw_call(name, b"", None) {
        Ok(rc) => (rc, String::new()),
        Err((e, rc)) => (rc, format!("{e:#}")),
    }
}

#[test]
fn kernel_functions_survive_forged_offsets() {
    let mut p = hostile(None);
    assert_eq!(outcome(&mut p, "kernel_forged"), (0, String::new()));
    assert_eq!(outcome(&mut p, "output_outside"), (0, String::new()));
    assert!(p.output().is_empty());
}

#[test]
fn host_functions_refuse_forged_handles() {
    let mut p = hostile(None);
    for (export, expect) in [
        ("config_forged", "invalid handle offset for config key"),
        ("var_get_forged", "invalid handle offset for var key"),
        ("var_set_forged", "invalid handle offset for var value"),
        ("http_forged", "invalid handle offset for http request"),
    ] {
        let (rc, msg) = outcome(&mut p, export);
        assert_eq!(rc, -1, "{export}");
        assert!(msg.contains(expect), "{export}: {msg}");
    }
    // still usable
    assert_eq!(outcome(&mut p, "kernel_forged").0, 0);
}

#[test]
fn memory_bombs_hit_max_pages() {
    let mut p = hostile(Some(64));
    assert_eq!(outcome(&mut p, "memory_bomb"), (-1, "oom".to_string()));
    assert_eq!(outcome(&mut p, "kernel_bomb"), (-1, "oom".to_string()));
    assert_eq!(outcome(&mut p, "kernel_forged").0, 0);
}

#[test]
fn memory_bomb_without_a_limit_ends_when_memory_is_exhausted() {
    // 4 GiB of address space per memory: growth stops with memory.grow returning -1
    let mut p = hostile(None);
    assert_eq!(outcome(&mut p, "memory_bomb"), (0, String::new()));
}

#[test]
fn panicking_host_functions_fail_the_call_only() {
    let f = Function::new(
        "host_reflect",
        [PTR],
        [PTR],
        UserData::new(()),
        |_, _, _, _| -> anyhow::Result<()> { panic!("bug in the host function") },
    );
    let ctx = Function::new(
        "host_context",
        [],
        [PTR],
        UserData::new(()),
        |_, _, _, _| Ok(()),
    );
    let mut p = Plugin::new(pdk("host_fns"), [f, ctx], false).unwrap();
    let (err, rc) = p
        .call_get_error_code::<_, &[u8]>("roundtrip", "x")
        .unwrap_err();
    assert_eq!(rc, -1);
    assert!(format!("{err:#}")
        .contains("host function `host_reflect` panicked: bug in the host function"));
    assert_eq!(p.call::<_, String>("read_context", "").unwrap(), "");
}

#[test]
fn forged_log_handles_trap_only_when_the_level_is_enabled() {
    let mut p = hostile(None);
    // no subscriber: logging is off and the message is never read
    assert_eq!(outcome(&mut p, "log_forged"), (0, String::new()));
    let subscriber = common::capture::Captured::default().subscriber(tracing::Level::ERROR);
    tracing::subscriber::with_default(subscriber, || {
        let (rc, msg) = outcome(&mut p, "log_forged");
        assert_eq!(rc, -1);
        assert!(
            msg.contains("invalid handle offset for log message"),
            "{msg}"
        );
    });
}
