//! `extism::set_log_callback` as upstream users call it: runtime events (target `extism`) and
//! guest log messages (target `extism::pdk`) reach the callback. In a file of its own because
//! it installs the process's global log subscriber. Only items upstream has are used, so this
//! file also builds against upstream's crate.

use std::sync::{Arc, Mutex};

use extism::{Manifest, Plugin, Wasm};

/// `say` logs its input at info level through `extism:host/env::log_info`; `boom` traps.
const WAT: &str = r#"(module
  (import "extism:host/env" "input_offset" (func $off (result i64)))
  (import "extism:host/env" "log_info" (func $info (param i64)))
  (func (export "say") (result i32) (call $info (call $off)) (i32.const 0))
  (func (export "boom") (result i32) unreachable))"#;

#[test]
fn runtime_events_and_guest_logs_reach_the_callback() {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    extism::set_log_callback(
        move |line: &str| sink.lock().unwrap().push(line.to_string()),
        "extism=debug",
    )
    .unwrap();
    // one global subscriber per process: a second setup is refused
    assert!(extism::set_log_callback(|_: &str| (), "trace").is_err());

    let mut plugin = Plugin::new(Manifest::new([Wasm::data(WAT)]), [], false).unwrap();
    plugin
        .call::<&str, &str>("say", "hello from the guest")
        .unwrap();
    assert!(plugin.call::<&str, &str>("boom", "").is_err());

    let lines = lines.lock().unwrap();
    let find = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in {lines:#?}"))
    };
    let guest = find("hello from the guest");
    assert!(guest.contains("INFO"), "{guest}");
    assert!(guest.ends_with('\n'), "{guest:?}");
    let failed = find("call to boom encountered an error");
    assert!(failed.contains("ERROR"), "{failed}");
    // one call per event, each ending in a newline
    assert!(lines.iter().all(|l| l.ends_with('\n')), "{lines:#?}");
}
