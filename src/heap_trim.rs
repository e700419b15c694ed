//! Giving the heap that freed plugins leave behind back to the operating system.
//!
//! A plugin's store is hundreds of small allocations. When they are freed, glibc keeps small
//! chunks in its per-size lists without merging them, so after a burst of plugins is freed
//! their memory stays resident (about 13 KiB per plugin). Each [`Live`] token counts one live
//! plugin; when the count falls back to zero after a burst (at least [`BURST`] plugins alive at
//! once since the last trim), `malloc_trim(0)` returns the free pages. Plugins created and freed
//! one at a time reuse the same chunks and never trigger it. Elsewhere than glibc this does
//! nothing. It never runs under a lock of the runtime.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Live plugins in this process.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most plugins alive at once since the count last fell to zero.
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Plugins alive at once that make their release worth a trim.
const BURST: usize = 64;

/// One live plugin; dropping the last one after a burst trims the heap. Keep it the last field
/// of its owner, so that everything else the plugin holds is freed first.
#[derive(Debug)]
pub(crate) struct Live(());

impl Live {
    pub fn new() -> Live {
        let live = LIVE.fetch_add(1, Ordering::Relaxed) + 1;
        PEAK.fetch_max(live, Ordering::Relaxed);
        Live(())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if LIVE.fetch_sub(1, Ordering::Relaxed) == 1 && PEAK.swap(0, Ordering::Relaxed) >= BURST {
            trim();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim has no preconditions; it only releases free memory.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
