//! Concurrency (issue 6): many threads on instances of one compiled plugin, cancels and
//! timeouts fired under load. CI runs these short versions; `EXTISM_STRESS_CALLS` raises the
//! call count for long runs (`EXTISM_STRESS_CALLS=10000 cargo test --release --test concurrency`).

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use common::pdk;
use extism::{Interrupted, Manifest, Plugin, PluginBuilder, Wasm};

fn calls() -> u64 {
    std::env::var("EXTISM_STRESS_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

#[test]
fn eight_threads_on_one_compiled_plugin_get_correct_outputs() {
    let compiled = PluginBuilder::new(pdk("count_vowels")).compile().unwrap();
    let n = calls();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let compiled = compiled.clone();
            thread::spawn(move || {
                let mut p = Plugin::new_from_compiled(&compiled).unwrap();
                let input = "a".repeat(t as usize + 1);
                for i in 1..=n {
                    let out: String = p.call("count_vowels", input.as_str()).unwrap();
                    let want = format!(
                        r#"{{"count":{},"total":{},"vowels":"aeiouAEIOU"}}"#,
                        t + 1,
                        (t + 1) * i
                    );
                    assert_eq!(out, want);
                }
                n
            })
        })
        .collect();
    let done: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(done, 8 * n);
}

#[test]
fn random_cancels_under_load_only_hit_their_target() {
    let compiled = PluginBuilder::new(pdk("faults")).compile().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // busy siblings: plain calls that must never fail
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (compiled, stop) = (compiled.clone(), stop.clone());
            thread::spawn(move || {
                let mut p = Plugin::new_from_compiled(&compiled).unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    assert_eq!(
                        p.call::<_, String>("count_calls", "").unwrap(),
                        n.to_string()
                    );
                }
                n
            })
        })
        .collect();
    // the target: infinite loops, cancelled after pseudo-random delays
    let mut target = Plugin::new_from_compiled(&compiled).unwrap();
    let mut seed = 0x2545_f491_u64;
    for _ in 0..10 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % 20_000);
        let handle = target.cancel_handle();
        let done = Arc::new(AtomicBool::new(false));
        let finished = done.clone();
        // A cancel only stops a running call; one that comes before the call starts (a short
        // delay on a loaded machine) is repeated until the call ends.
        let canceller = thread::spawn(move || {
            thread::sleep(delay);
            while !finished.load(Ordering::SeqCst) {
                handle.cancel().unwrap();
                thread::sleep(Duration::from_millis(2));
            }
        });
        let err = target.call::<_, ()>("loop_forever", "").unwrap_err();
        done.store(true, Ordering::SeqCst);
        assert_eq!(
            err.downcast_ref::<Interrupted>(),
            Some(&Interrupted::Cancelled)
        );
        canceller.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        assert!(w.join().unwrap() > 0);
    }
}

#[test]
fn timeouts_under_load_return_within_twice_their_limit() {
    let limit = Duration::from_millis(200);
    let m = Manifest::new([Wasm::data(pdk("faults"))]).with_timeout(limit);
    let compiled = PluginBuilder::new(m).compile().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let compiled = compiled.clone();
            thread::spawn(move || {
                let mut p = Plugin::new_from_compiled(&compiled).unwrap();
                p.call::<_, String>("count_calls", "").unwrap();
                (0..5)
                    .map(|_| {
                        let start = Instant::now();
                        let err = p.call::<_, ()>("loop_forever", "").unwrap_err();
                        assert_eq!(
                            err.downcast_ref::<Interrupted>(),
                            Some(&Interrupted::Timeout)
                        );
                        start.elapsed()
                    })
                    .max()
                    .unwrap()
            })
        })
        .collect();
    for t in threads {
        let worst = t.join().unwrap();
        // four spinning threads on a machine that may have two cores: 2x the limit, as the
        // issue asks, is the bound
        assert!(worst >= limit && worst < limit * 2, "{worst:?}");
    }
}
