//! Assembles the kernel from WebAssembly text so that no wasm compiler target is needed.
use std::{env, fs, path::PathBuf};

fn main() {
    let src = PathBuf::from("kernel/kernel.wat");
    println!("cargo:rerun-if-changed={}", src.display());
    let wasm = wat::parse_file(&src).unwrap_or_else(|e| panic!("kernel/kernel.wat: {e}"));
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("kernel.wasm");
    fs::write(&out, wasm).unwrap();
}
