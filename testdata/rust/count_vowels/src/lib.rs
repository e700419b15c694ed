//! count_vowels: the well-known upstream Extism example plugin.
//!
//! Counts the vowels of the input string. The vowel set comes from config key
//! `vowels` (default "aeiouAEIOU"); a running total is kept in var `total`
//! (u64, 8 little-endian bytes). Output is JSON:
//! `{"count":N,"total":T,"vowels":"..."}`.
use extism_pdk::*;
use serde::Serialize;

const VOWELS: &str = "aeiouAEIOU";

#[derive(Serialize)]
struct VowelReport {
    count: u64,
    total: u64,
    vowels: String,
}

fn vowels() -> Result<String, Error> {
    Ok(config::get("vowels")?.unwrap_or_else(|| VOWELS.to_string()))
}

fn count(input: &str, vowels: &str) -> u64 {
    input.chars().filter(|ch| vowels.contains(*ch)).count() as u64
}

/// Counts vowels and keeps a running total in var `total`.
#[plugin_fn]
pub fn count_vowels(input: String) -> FnResult<Json<VowelReport>> {
    let vowels = vowels()?;
    let count = count(&input, &vowels);
    let total = var::get::<u64>("total")?.unwrap_or(0) + count;
    var::set("total", total)?;
    Ok(Json(VowelReport {
        count,
        total,
        vowels,
    }))
}

/// Same as `count_vowels` but never touches vars: `total` always equals `count`.
#[plugin_fn]
pub fn count_vowels_no_vars(input: String) -> FnResult<Json<VowelReport>> {
    let vowels = vowels()?;
    let count = count(&input, &vowels);
    Ok(Json(VowelReport {
        count,
        total: count,
        vowels,
    }))
}
