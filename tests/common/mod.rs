//! Paths to the test plugins in testdata/.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

/// A Rust PDK plugin from testdata/rust/wasm.
pub fn pdk(name: &str) -> Vec<u8> {
    std::fs::read(testdata(&format!("rust/wasm/{name}.wasm"))).expect("test plugin")
}

/// A WAT plugin from testdata/wat, as text (the runtime accepts text wherever wasm goes).
pub fn wat(name: &str) -> Vec<u8> {
    std::fs::read(testdata(&format!("wat/{name}.wat"))).expect("test plugin")
}
pub mod capture;
pub mod server;

/// Resident memory of this process in KiB (`/proc/self/statm`).
pub fn rss_kib() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let resident: i64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions; 30 is _SC_PAGESIZE on Linux.
    resident * unsafe { sysconf(30) } / 1024
}

extern "C" {
    fn sysconf(name: std::ffi::c_int) -> std::ffi::c_long;
}
