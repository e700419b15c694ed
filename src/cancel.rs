//! Interrupting a running call: cancel handles and the per-plugin interrupt state that the
//! epoch callbacks (epoch.rs) check against the call's deadline.
//!
//! Every store gets an epoch-deadline callback that looks only at *its own* plugin's state, so
//! a cancel or timeout stops exactly one plugin even when several instances of one compiled
//! plugin share an engine (upstream interrupts all of them). A cancel sets the plugin's flag
//! and advances the engine's epoch so running code reaches the callback at once; a timeout is
//! a deadline that the process-wide ticker (`timer.rs`) wakes up for.
//!
//! Cancel semantics: a cancel interrupts the call (or first-call initialisation) running at
//! that moment. A cancel that arrives while no call is running is forgotten: the next call
//! starts by clearing the flag, as upstream does.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use wasmtime::Engine;

use crate::timer::WakerSlot;

/// Why wasm code was stopped from the outside. Both read as `timeout` to callers, as upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// The plugin's `timeout_ms` expired.
    Timeout,
    /// `CancelHandle::cancel` was called.
    Cancelled,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("timeout")
    }
}

impl std::error::Error for Interrupted {}

/// State shared between a plugin and its cancel handles.
#[derive(Debug)]
pub(crate) struct InterruptState {
    running: AtomicBool,
    cancelled: AtomicBool,
    /// The engine of the plugin's store; changes when the plugin moves from a full instance
    /// pool to on-demand allocation (plugin.rs).
    engine: Mutex<Engine>,
    /// The task of an async call waiting in a host function, woken by a cancel.
    pub waker: Arc<WakerSlot>,
}

impl InterruptState {
    pub fn new(engine: Engine) -> Arc<InterruptState> {
        Arc::new(InterruptState {
            running: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            engine: Mutex::new(engine),
            waker: Arc::default(),
        })
    }

    pub fn set_engine(&self, engine: Engine) {
        *self.engine.lock().unwrap_or_else(|p| p.into_inner()) = engine;
    }

    /// Makes running code of the plugin's engine reach its epoch callback now.
    fn interrupt_engine(&self) {
        let engine = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        engine.increment_epoch();
    }

    /// Marks the start of guest execution that a cancel may interrupt.
    pub fn begin(&self) {
        self.cancelled.store(false, Ordering::SeqCst);
        self.running.store(true, Ordering::SeqCst);
    }

    /// Called after the epoch deadline is armed: a cancel that raced with arming is delivered.
    pub fn rearm(&self) {
        if self.cancelled.load(Ordering::SeqCst) {
            self.interrupt_engine();
        }
    }

    pub fn end(&self) {
        self.running.store(false, Ordering::SeqCst);
    }

    pub fn check(&self, deadline: Option<Instant>) -> Option<Interrupted> {
        if !self.running.load(Ordering::SeqCst) {
            return None;
        }
        if self.cancelled.load(Ordering::SeqCst) {
            return Some(Interrupted::Cancelled);
        }
        match deadline {
            Some(d) if Instant::now() >= d => Some(Interrupted::Timeout),
            _ => None,
        }
    }
}

/// Cancels the call running on one plugin, from any thread. Cheap to clone; stays valid (and
/// harmless) after its plugin is gone.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use extism::{Interrupted, Plugin};
/// let wasm = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rust/wasm/faults.wasm"))?;
/// let mut plugin = Plugin::new(&wasm, [], false)?;
/// let handle = plugin.cancel_handle();
/// assert_eq!(handle.id, plugin.id);
/// let done = AtomicBool::new(false);
/// let err = std::thread::scope(|s| {
///     // A cancel while no call runs does nothing, so keep cancelling until the call ends.
///     s.spawn(|| {
///         while !done.load(Ordering::SeqCst) {
///             handle.cancel().unwrap();
///             std::thread::sleep(std::time::Duration::from_millis(5));
///         }
///     });
///     let err = plugin.call::<&str, &str>("loop_forever", "").unwrap_err();
///     done.store(true, Ordering::SeqCst);
///     err
/// });
/// assert_eq!(err.to_string(), "timeout");
/// assert_eq!(err.downcast_ref::<Interrupted>(), Some(&Interrupted::Cancelled));
/// // The plugin stays usable.
/// assert!(plugin.call::<&str, &str>("trap", "").is_err());
/// # Ok::<(), extism::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CancelHandle {
    pub(crate) state: Arc<InterruptState>,
    /// The id of the plugin it cancels.
    pub id: uuid::Uuid,
}

impl CancelHandle {
    /// Interrupts the plugin's running call, which then fails with `timeout` (code 134).
    /// Does nothing when no call is running.
    pub fn cancel(&self) -> anyhow::Result<()> {
        self.state.cancelled.store(true, Ordering::SeqCst);
        self.state.interrupt_engine();
        self.state.waker.wake();
        Ok(())
    }
}
