//! The process-wide epoch ticker that turns deadlines into interruptions.
//!
//! One thread for the whole process, started on the first call that has a timeout. It sleeps
//! on a condition variable until the earliest registered deadline (indefinitely when none is
//! registered: no busy thread, unlike upstream #814), then advances the engines' epochs so the
//! running plugin's epoch callback (`cancel.rs`) checks its own deadline. A call without a
//! timeout never touches the ticker.

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Condvar, Mutex, OnceLock,
    },
    time::Instant,
};

use crate::engine::Runtime;

struct Ticker {
    deadlines: Mutex<BTreeSet<(Instant, u64)>>,
    wake: Condvar,
}

fn ticker() -> &'static Ticker {
    static TICKER: OnceLock<&'static Ticker> = OnceLock::new();
    TICKER.get_or_init(|| {
        let t: &'static Ticker = Box::leak(Box::new(Ticker {
            deadlines: Mutex::new(BTreeSet::new()),
            wake: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("extism-epoch-ticker".into())
            .spawn(move || t.run())
            .expect("spawning the epoch ticker thread");
        t
    })
}

impl Ticker {
    fn run(&self) {
        let mut set = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = Instant::now();
            match set.first().copied() {
                None => set = self.wake.wait(set).unwrap_or_else(|p| p.into_inner()),
                Some(first) if first.0 <= now => {
                    set.remove(&first);
                    for rt in Runtime::all() {
                        rt.engine.increment_epoch();
                    }
                }
                Some(first) => {
                    set = self
                        .wake
                        .wait_timeout(set, first.0 - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }
}

/// A registered deadline; dropping it unregisters.
pub(crate) struct Deadline {
    key: (Instant, u64),
}

impl Deadline {
    pub fn register(at: Instant) -> Deadline {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let key = (at, NEXT.fetch_add(1, Ordering::Relaxed));
        let t = ticker();
        let mut set = t.deadlines.lock().unwrap_or_else(|p| p.into_inner());
        let earliest = set.first().is_none_or(|first| key < *first);
        set.insert(key);
        drop(set);
        if earliest {
            t.wake.notify_one();
        }
        Deadline { key }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        let t = ticker();
        t.deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}
