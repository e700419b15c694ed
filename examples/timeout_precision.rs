//! Measures how long after `timeout_ms` an interrupted call returns (the "timeout precision"),
//! for an infinite loop in the faults test plugin.
//!
//! `cargo run --example timeout_precision` prints min/median/max overshoot per limit.

use std::time::{Duration, Instant};

use extism::{Manifest, Plugin, Wasm};

fn main() -> anyhow::Result<()> {
    let wasm = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/rust/wasm/faults.wasm"
    ))?;
    println!(
        "{:>10} {:>12} {:>12} {:>12}",
        "limit", "min over", "median over", "max over"
    );
    for limit_ms in [1u64, 10, 50, 100, 500] {
        let manifest =
            Manifest::new([Wasm::data(wasm.clone())]).with_timeout(Duration::from_millis(limit_ms));
        let mut plugin = Plugin::new(&manifest, [], false)?;
        plugin.call::<_, String>("count_calls", "")?; // instantiate before measuring
        let mut overshoot: Vec<Duration> = (0..20)
            .map(|_| {
                let start = Instant::now();
                let _ = plugin.call::<_, ()>("loop_forever", "");
                start
                    .elapsed()
                    .saturating_sub(Duration::from_millis(limit_ms))
            })
            .collect();
        overshoot.sort();
        println!(
            "{:>8}ms {:>12?} {:>12?} {:>12?}",
            limit_ms,
            overshoot[0],
            overshoot[overshoot.len() / 2],
            overshoot[overshoot.len() - 1]
        );
    }
    Ok(())
}
