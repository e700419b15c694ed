//! bigdata: a plugin shaped like an interpreter-based one (the QuickJS JS PDK): a data segment
//! of 1.5 MiB (`TABLE`, standing in for an embedded interpreter image) and 16 MiB of initial
//! memory (build.rs), with the exports of count_vowels, echo and host_fns.
//!
//! `count_vowels`, `echo` and `roundtrip` behave exactly like those of count_vowels.wasm,
//! echo.wasm and host_fns.wasm; every call also reads one byte of `TABLE`, so the linker
//! keeps the whole table.
use extism_pdk::*;
use serde::Serialize;

const TABLE_LEN: usize = 1536 * 1024;

/// Non-zero pseudo-random bytes (xorshift32), so the data segment cannot be compressed
/// into a zero-fill.
const fn table() -> [u8; TABLE_LEN] {
    let mut t = [0u8; TABLE_LEN];
    let mut x: u32 = 0x9e37_79b9;
    let mut i = 0;
    while i < TABLE_LEN {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        t[i] = (x as u8) | 1;
        i += 1;
    }
    t
}

static TABLE: [u8; TABLE_LEN] = table();

/// Reads the table at an index that depends on the input, so it is not optimised away.
fn touch_table(len: usize) {
    std::hint::black_box(TABLE[std::hint::black_box(len) % TABLE_LEN]);
}

const VOWELS: &str = "aeiouAEIOU";

#[derive(Serialize)]
struct VowelReport {
    count: u64,
    total: u64,
    vowels: String,
}

#[host_fn("extism:host/user")]
extern "ExtismHost" {
    /// (i64 handle) -> i64 handle: bytes in, bytes out.
    fn host_reflect(input: Vec<u8>) -> Vec<u8>;
}

/// As count_vowels.wasm's `count_vowels`: config `vowels`, running total in var `total`.
#[plugin_fn]
pub fn count_vowels(input: String) -> FnResult<Json<VowelReport>> {
    touch_table(input.len());
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
    touch_table(input.len());
    Ok(input)
}

/// Passes the input to `host_reflect` and outputs what it returned.
#[plugin_fn]
pub fn roundtrip(input: Vec<u8>) -> FnResult<Vec<u8>> {
    touch_table(input.len());
    Ok(unsafe { host_reflect(input)? })
}
