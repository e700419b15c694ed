//! wasi_command: a WASI command (the module exports `_start`, which runs `main`) that also
//! exports Extism plugin functions, as plugins built with `cargo build` of a binary crate
//! are. Extism runs `_start` only when it is called by name.
use extism_pdk::*;
use serde::Serialize;

const VOWELS: &str = "aeiouAEIOU";

#[derive(Serialize)]
struct VowelReport {
    count: u64,
    total: u64,
    vowels: String,
}

/// As count_vowels.wasm's `count_vowels`: config `vowels`, running total in var `total`.
#[plugin_fn]
pub fn count_vowels(input: String) -> FnResult<Json<VowelReport>> {
    let vowels = config::get("vowels")?.unwrap_or_else(|| VOWELS.to_string());
    let count = input.chars().filter(|ch| vowels.contains(*ch)).count() as u64;
    let total = var::get::<u64>("total")?.unwrap_or(0) + count;
    var::set("total", total)?;
    Ok(Json(VowelReport {
        count,
        total,
        vowels,
    }))
}

/// Outputs the input bytes.
#[plugin_fn]
pub fn echo(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(input)
}

fn main() {
    println!("hello from wasi_command main");
}
