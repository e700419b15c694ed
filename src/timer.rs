//! The process-wide epoch ticker that turns deadlines into interruptions, and gives running
//! async calls their time slices.
//!
//! One thread for the whole process, started on the first call that has a timeout (or the
//! first async call). It sleeps on a condition variable until the earliest registered deadline
//! (indefinitely when none is registered and no async call runs: no busy thread, unlike
//! upstream #814), then advances the engines' epochs so the running plugin's epoch callback
//! (`epoch.rs`) checks its own deadline, and wakes the task of an async call waiting on that
//! deadline. While async calls run (`Slices`), it also advances the epochs every
//! [`SLICE`], so their guests yield to the executor regularly. A sync call without a timeout
//! never touches the ticker.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Condvar, Mutex, MutexGuard, OnceLock,
    },
    task::Waker,
    time::{Duration, Instant},
};

use wasmtime::{Engine, EngineWeak};

/// How long an async call's guest runs before it yields to the executor.
pub(crate) const SLICE: Duration = Duration::from_millis(1);

#[derive(Default)]
struct Schedule {
    /// Each deadline, with the waker slot of the async call waiting on it (if any).
    deadlines: BTreeMap<(Instant, u64), Option<Arc<WakerSlot>>>,
    /// Async calls running now; the ticker slices time while this is not zero.
    sliced: usize,
    /// The ticker will wake at the next slice boundary. While it does, a call that starts
    /// need not wake it: back-to-back short calls cost it one wake-up per slice, not one
    /// per call.
    slicing: bool,
}

struct Ticker {
    schedule: Mutex<Schedule>,
    wake: Condvar,
}

fn ticker() -> &'static Ticker {
    static TICKER: OnceLock<&'static Ticker> = OnceLock::new();
    TICKER.get_or_init(|| {
        let t: &'static Ticker = Box::leak(Box::new(Ticker {
            schedule: Mutex::new(Schedule::default()),
            wake: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("extism-epoch-ticker".into())
            .spawn(move || t.run())
            .expect("spawning the epoch ticker thread");
        t
    })
}

/// Every engine that may still run wasm, registered by engine.rs as it creates them; weak, so
/// the ticker keeps no engine alive.
fn engines() -> MutexGuard<'static, Vec<EngineWeak>> {
    static ENGINES: Mutex<Vec<EngineWeak>> = Mutex::new(Vec::new());
    ENGINES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes the ticker advance `engine`'s epoch (at deadlines and time slices).
pub(crate) fn watch_engine(engine: &Engine) {
    let mut engines = engines();
    engines.retain(|e| e.upgrade().is_some());
    engines.push(engine.weak());
}

fn advance_epochs() {
    for engine in engines().iter().filter_map(EngineWeak::upgrade) {
        engine.increment_epoch();
    }
}

impl Ticker {
    fn lock(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(&self) {
        let mut s = self.lock();
        // The next slice boundary, while async calls run.
        let mut next_slice: Option<Instant> = None;
        loop {
            let now = Instant::now();
            next_slice = match (s.sliced > 0, next_slice) {
                (false, _) => None,
                // Slicing starts: a full slice first.
                (true, None) => Some(now + SLICE),
                (true, Some(at)) if at <= now => {
                    advance_epochs();
                    Some(now + SLICE)
                }
                (true, at) => at,
            };
            s.slicing = next_slice.is_some();
            let first = s.deadlines.first_key_value().map(|(k, _)| *k);
            if let Some(first) = first.filter(|f| f.0 <= now) {
                if let Some(Some(slot)) = s.deadlines.remove(&first) {
                    slot.wake();
                }
                advance_epochs();
                continue;
            }
            let until = match (first, next_slice) {
                (Some(f), Some(at)) => Some(f.0.min(at)),
                (Some(f), None) => Some(f.0),
                (None, at) => at,
            };
            s = match until {
                None => self.wake.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(at) => {
                    let wait = at.saturating_duration_since(now);
                    let woken = self.wake.wait_timeout(s, wait);
                    woken.unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
    }
}

/// Where an async call waiting in a host function leaves its waker, so that its deadline or
/// a cancel wakes it.
#[derive(Debug, Default)]
pub(crate) struct WakerSlot(Mutex<Option<Waker>>);

impl WakerSlot {
    pub fn register(&self, waker: &Waker) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    pub fn wake(&self) {
        let waker = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A registered deadline; dropping it unregisters.
pub(crate) struct Deadline {
    key: (Instant, u64),
}

impl Deadline {
    /// Watches `at`; when it passes, the epochs advance and `wake` (if any) is woken.
    pub fn register(at: Instant, wake: Option<Arc<WakerSlot>>) -> Deadline {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let key = (at, NEXT.fetch_add(1, Ordering::Relaxed));
        let t = ticker();
        let mut s = t.lock();
        let earliest = s
            .deadlines
            .first_key_value()
            .is_none_or(|(first, _)| key < *first);
        s.deadlines.insert(key, wake);
        drop(s);
        if earliest {
            t.wake.notify_one();
        }
        Deadline { key }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        ticker().lock().deadlines.remove(&self.key);
    }
}

/// Time slicing for one running async call: while any exists, the epochs advance every
/// [`SLICE`].
pub(crate) struct Slices(());

impl Slices {
    pub fn start() -> Slices {
        let t = ticker();
        let mut s = t.lock();
        s.sliced += 1;
        let idle = !s.slicing;
        drop(s);
        if idle {
            t.wake.notify_one();
        }
        Slices(())
    }
}

impl Drop for Slices {
    fn drop(&mut self) {
        ticker().lock().sliced -= 1;
    }
}
