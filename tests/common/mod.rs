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
pub mod server;
