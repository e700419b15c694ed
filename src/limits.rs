//! The memory budget behind `memory.max_pages` (`spec/manifest.md` §4.1).
//!
//! Owns the accounting only: the limiter is armed just before the main module is instantiated
//! (its initial memories must fit the budget; a kernel linked into it brings its own
//! allowance), the budget is refilled once that instantiation is done, and from then on every
//! growth of any memory in the store is subtracted. Exceeding it traps the call with `oom`.
//! Timeouts, cancellation and fuel live in `cancel.rs`/`timer.rs`.

use wasmtime::ResourceLimiter;

/// The error that ends a call which hit `memory.max_pages`.
#[derive(Debug)]
pub struct OutOfMemory;

impl std::fmt::Display for OutOfMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("oom")
    }
}

impl std::error::Error for OutOfMemory {}

#[derive(Debug, Default)]
pub(crate) struct MemoryBudget {
    /// The full budget in bytes; `None` means no limit.
    max_bytes: Option<usize>,
    remaining: usize,
    armed: bool,
}

impl MemoryBudget {
    pub fn new(max_pages: Option<u32>) -> MemoryBudget {
        let max_bytes = max_pages.map(|p| (p as usize).saturating_mul(65536));
        MemoryBudget {
            max_bytes,
            remaining: max_bytes.unwrap_or(0),
            armed: false,
        }
    }

    /// Called before instantiating the main module: its memories count from now on, except
    /// `uncounted` bytes (the initial memories of a kernel linked into it).
    pub fn arm(&mut self, uncounted: usize) {
        self.armed = true;
        self.remaining = self.max_bytes.unwrap_or(0).saturating_add(uncounted);
    }

    /// Called once the main module is instantiated: the full budget is available for growth.
    pub fn refill(&mut self) {
        self.remaining = self.max_bytes.unwrap_or(0);
    }
}

impl ResourceLimiter for MemoryBudget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let Some(_) = self.max_bytes else {
            return Ok(true);
        };
        if !self.armed {
            return Ok(true);
        }
        let delta = desired.saturating_sub(current);
        if delta > self.remaining {
            return Err(wasmtime::Error::new(OutOfMemory));
        }
        self.remaining -= delta;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}
