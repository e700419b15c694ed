//! The plugin as a host function sees it while the guest waits for the answer.
//!
//! Owns the typed helpers over kernel memory handles (read a block as bytes or a string,
//! allocate and fill a block, free), the per-call host context, vars and the error slot. Every
//! memory access is bounds-checked by `kernel.rs`. A `CurrentPlugin` exists only for the
//! duration of one host call and is only ever lent out (`&mut CurrentPlugin`); it never
//! outlives the wasmtime `Caller` it wraps.

use std::{any::Any, collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::{anyhow, bail, Result};
use extism_manifest::Manifest;
use wasmtime::{Caller, Val};

use crate::{
    convert::{FromBytes, MemoryHandle, ToBytes},
    kernel::Kernel,
    plugin_state::PluginState,
};

/// The running plugin, handed to host functions as `&mut CurrentPlugin`.
///
/// Host functions read their arguments from and write their results to the plugin's memory
/// through it:
///
/// ```
/// use extism::{CurrentPlugin, Function, Plugin, UserData, Val, PTR};
///
/// // A host function body written against the type by name, as with upstream.
/// fn reflect(plugin: &mut CurrentPlugin, inputs: &[Val], outputs: &mut [Val]) -> Result<(), extism::Error> {
///     let handle = plugin.memory_from_val(&inputs[0]).expect("a memory handle");
///     let text = plugin.memory_str(handle)?.to_uppercase();
///     plugin.memory_free(handle)?;
///     let out = plugin.memory_new(&text)?;
///     assert_eq!(plugin.memory_bytes(out)?, text.as_bytes());
///     outputs[0] = plugin.memory_to_val(out);
///     Ok(())
/// }
///
/// // `host_context` reads the value the host passed to `call_with_host_context`.
/// fn context(plugin: &mut CurrentPlugin, _: &[Val], outputs: &mut [Val]) -> Result<(), extism::Error> {
///     let name = plugin.host_context::<String>()?.clone();
///     plugin.memory_set_val(&mut outputs[0], format!("called for {name}"))
/// }
///
/// let wasm = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rust/wasm/host_fns.wasm"))?;
/// let functions = [
///     Function::new("host_reflect", [PTR], [PTR], UserData::new(()), |p, i, o, _| reflect(p, i, o)),
///     Function::new("host_context", [], [PTR], UserData::new(()), |p, i, o, _| context(p, i, o)),
/// ];
/// let mut plugin = Plugin::new(&wasm, functions, false)?;
/// assert_eq!(plugin.call::<&str, &str>("roundtrip", "quiet")?, "QUIET");
/// let out: String = plugin.call_with_host_context("read_context", "", "Ada".to_string())?;
/// assert_eq!(out, "called for Ada");
/// # Ok::<(), extism::Error>(())
/// ```
pub struct CurrentPlugin {
    /// The caller of the running host call. Its lifetime is erased (see [`CurrentPlugin::with`]
    /// for why that is sound): upstream's type has no lifetime parameter, and host functions
    /// name it as plain `&mut CurrentPlugin`.
    caller: Caller<'static, PluginState>,
    kernel: Arc<Kernel>,
}

impl CurrentPlugin {
    /// Runs `f` with the plugin behind `caller`.
    ///
    /// Safety of the erased lifetime: the `CurrentPlugin` is created here, lives in this stack
    /// frame and is dropped before this function returns, so the `Caller` it holds never
    /// outlives `'a`. Nothing can move it out while `f` runs: `f` gets only a `&mut` borrow
    /// whose lifetime ends with this frame, the type has no public constructor, no `Default`,
    /// no `Clone` and no public fields (so `mem::replace`/`mem::take` have nothing to put in
    /// its place), and `mem::swap` would need a second `&mut CurrentPlugin` at the same time,
    /// which safe code cannot bring into a host call (callbacks and host contexts are
    /// `'static`, so they cannot hold a borrowed one). Every method returns borrows tied to
    /// `&self`/`&mut self`, never to the erased lifetime.
    pub(crate) fn with<'a, R>(
        caller: Caller<'a, PluginState>,
        f: impl FnOnce(&mut CurrentPlugin) -> Result<R>,
    ) -> Result<R> {
        let kernel = caller.data().kernel()?;
        // SAFETY: see above; only the lifetime parameter changes, not the layout.
        let caller: Caller<'static, PluginState> = unsafe { std::mem::transmute(caller) };
        let mut plugin = CurrentPlugin { caller, kernel };
        f(&mut plugin)
    }

    /// [`CurrentPlugin::with`] for async host functions, whose plugin lives in the host
    /// function's future instead of a stack frame.
    ///
    /// # Safety
    ///
    /// The result must be dropped inside the future that owns `caller` (the host function's
    /// future, which cannot outlive `'a`), and only be lent out as `&mut` borrows that end
    /// there; then the reasoning of [`CurrentPlugin::with`] holds.
    pub(crate) unsafe fn lend(caller: Caller<'_, PluginState>) -> Result<CurrentPlugin> {
        let kernel = caller.data().kernel()?;
        // SAFETY: the caller's contract; only the lifetime parameter changes, not the layout.
        let caller: Caller<'static, PluginState> = unsafe { std::mem::transmute(caller) };
        Ok(CurrentPlugin { caller, kernel })
    }

    fn state(&self) -> &PluginState {
        self.caller.data()
    }

    /// The plugin's id (the same as [`crate::Plugin::id`]).
    pub fn id(&self) -> uuid::Uuid {
        self.state().id
    }

    /// The plugin's current configuration.
    pub fn config(&self) -> &BTreeMap<String, String> {
        &self.state().config
    }

    /// The plugin's variables (what the guest's `var_get`/`var_set` see).
    pub fn vars(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.state().vars
    }

    /// The plugin's variables, to change. The manifest's `max_var_bytes` applies to what the
    /// guest sets, not to what the host puts here.
    pub fn vars_mut(&mut self) -> &mut BTreeMap<String, Vec<u8>> {
        &mut self.caller.data_mut().vars
    }

    /// The manifest the plugin was created from (inline module bytes read as empty, see
    /// [`crate::CompiledPlugin::manifest`]).
    pub fn manifest(&self) -> &Manifest {
        &self.state().manifest
    }

    /// True when the running call has been cancelled ([`crate::CancelHandle::cancel`]) or
    /// has passed its deadline: the call fails with `timeout` as soon as the guest runs
    /// again, so a host function doing slow work in steps may stop early. Cheap (two atomic
    /// loads and, with a timeout, a clock read).
    ///
    /// ```
    /// use extism::{CurrentPlugin, Val};
    /// fn crunch(plugin: &mut CurrentPlugin, _: &[Val], _: &mut [Val]) -> Result<(), extism::Error> {
    ///     for _chunk in 0..1000 {
    ///         if plugin.is_interrupted() {
    ///             // Whatever is returned, the call reports `timeout`.
    ///             return Ok(());
    ///         }
    ///         // ... one bounded piece of work, e.g. at most `plugin.time_remaining()` long ...
    ///     }
    ///     Ok(())
    /// }
    /// ```
    ///
    /// Async host functions ([`crate::Function::new_async`]) need no such checks: their
    /// future is dropped when the call is interrupted.
    pub fn is_interrupted(&self) -> bool {
        self.interruption().is_some()
    }

    /// Why the running call is interrupted, if it is.
    pub(crate) fn interruption(&self) -> Option<crate::Interrupted> {
        let state = self.state();
        state.interrupt.check(state.deadline)
    }

    /// Time left before the running call times out, or `None` without a manifest timeout.
    pub fn time_remaining(&self) -> Option<Duration> {
        let deadline = self.state().deadline?;
        Some(deadline.saturating_duration_since(std::time::Instant::now()))
    }

    /// The value passed to `Plugin::call_with_host_context` for this call.
    pub fn host_context<T: Any>(&mut self) -> Result<&mut T> {
        let ctx = self
            .caller
            .data_mut()
            .host_context
            .as_mut()
            .ok_or_else(|| anyhow!("no host context was passed with this call"))?;
        ctx.downcast_mut::<T>()
            .ok_or_else(|| anyhow!("the host context has a different type"))
    }

    /// True when this call carries a host context.
    pub fn has_host_context(&self) -> bool {
        self.state().host_context.is_some()
    }

    /// Allocates `n` bytes of kernel memory (the null handle for 0). Fails when memory cannot
    /// be had.
    pub fn memory_alloc(&mut self, n: u64) -> Result<MemoryHandle> {
        if n == 0 {
            return Ok(MemoryHandle::null());
        }
        let offset = self.kernel.alloc(&mut self.caller, n)?;
        if offset == 0 {
            bail!("out of memory: cannot allocate {n} bytes of Extism memory");
        }
        Ok(MemoryHandle { offset, length: n })
    }

    /// Allocates a block holding `data` (empty data gives the null handle).
    pub fn memory_new<'b, T: ToBytes<'b>>(&mut self, data: T) -> Result<MemoryHandle> {
        let bytes = data.to_bytes()?;
        let bytes = bytes.as_ref();
        let offset = self.kernel.write_new(&mut self.caller, bytes)?;
        Ok(MemoryHandle {
            offset,
            length: bytes.len() as u64,
        })
    }

    /// Releases a block. Unknown handles are ignored.
    pub fn memory_free(&mut self, handle: MemoryHandle) -> Result<()> {
        self.kernel.free(&mut self.caller, handle.offset)
    }

    /// Length of the live block at `offset`, 0 for anything else.
    pub fn memory_length(&mut self, offset: u64) -> Result<u64> {
        self.kernel.length(&mut self.caller, offset)
    }

    /// Upstream's unchecked length. This kernel's `length` is already constant-time, so this
    /// is the same checked call as [`CurrentPlugin::memory_length`].
    pub fn memory_length_unsafe(&mut self, offset: u64) -> Result<u64> {
        self.memory_length(offset)
    }

    /// The handle of the live block at `offset`: the null handle for 0, `None` when no block
    /// starts there.
    pub fn memory_handle(&mut self, offset: u64) -> Option<MemoryHandle> {
        if offset == 0 {
            return Some(MemoryHandle::null());
        }
        match self.memory_length(offset) {
            Ok(length) if length > 0 => Some(MemoryHandle { offset, length }),
            _ => None,
        }
    }

    /// The bytes of `handle`.
    pub fn memory_bytes(&mut self, handle: MemoryHandle) -> Result<&[u8]> {
        self.kernel
            .slice(&self.caller, handle.offset, handle.length)
    }

    /// The bytes of `handle`, to change in place.
    pub fn memory_bytes_mut(&mut self, handle: MemoryHandle) -> Result<&mut [u8]> {
        self.kernel
            .slice_mut(&mut self.caller, handle.offset, handle.length)
    }

    /// The bytes of `handle` as UTF-8.
    pub fn memory_str(&mut self, handle: MemoryHandle) -> Result<&str> {
        Ok(std::str::from_utf8(self.memory_bytes(handle)?)?)
    }

    /// The bytes of `handle` as UTF-8, to change in place.
    pub fn memory_str_mut(&mut self, handle: MemoryHandle) -> Result<&mut str> {
        Ok(std::str::from_utf8_mut(self.memory_bytes_mut(handle)?)?)
    }

    /// Reads and converts the block `handle`; `&str` and `&[u8]` borrow kernel memory.
    pub fn memory_get<'a, T: FromBytes<'a>>(&'a mut self, handle: MemoryHandle) -> Result<T> {
        T::from_bytes(self.memory_bytes(handle)?)
    }

    /// Reads and converts the block whose handle is the `i64` argument `val`.
    pub fn memory_get_val<'a, T: FromBytes<'a>>(&'a mut self, val: &Val) -> Result<T> {
        let handle = self.handle_from_val(val)?;
        self.memory_get(handle)
    }

    /// Allocates a block holding `data` and stores its handle in the `i64` result `val`.
    pub fn memory_set_val<'b, T: ToBytes<'b>>(&mut self, val: &mut Val, data: T) -> Result<()> {
        let handle = self.memory_new(data)?;
        *val = self.memory_to_val(handle);
        Ok(())
    }

    /// The live block named by an `i64` value, `None` for anything else (0 included).
    pub fn memory_from_val(&mut self, val: &Val) -> Option<MemoryHandle> {
        let offset = val.i64()? as u64;
        match self.memory_length(offset) {
            Ok(length) if length > 0 => Some(MemoryHandle { offset, length }),
            _ => None,
        }
    }

    /// The `i64` value that passes `handle` to the guest.
    pub fn memory_to_val(&mut self, handle: MemoryHandle) -> Val {
        Val::I64(handle.offset as i64)
    }

    /// The live block named by an `i64` value (the null handle for 0); an error for another
    /// type or an offset where no block starts.
    pub fn handle_from_val(&mut self, val: &Val) -> Result<MemoryHandle> {
        let offset = match val {
            Val::I64(v) => *v as u64,
            other => bail!(
                "expected an i64 memory handle, got {:?}",
                other.ty(&self.caller)
            ),
        };
        self.memory_handle(offset)
            .ok_or_else(|| anyhow!("invalid memory handle: {offset}"))
    }

    /// Base address of kernel memory (what `extism_current_plugin_memory` returns). Valid until
    /// kernel memory grows.
    pub fn memory_ptr(&mut self) -> *mut u8 {
        self.kernel.memory.data_ptr(&self.caller)
    }

    /// Marks the call as failed with `message` without trapping; the guest continues. Returns
    /// the message's block (offset, length).
    pub fn set_error(&mut self, message: impl AsRef<str>) -> Result<(u64, u64)> {
        let message = message.as_ref().as_bytes();
        let handle = self.kernel.write_new(&mut self.caller, message)?;
        self.kernel.error_set(&mut self.caller, handle)?;
        Ok((handle, message.len() as u64))
    }

    /// The error set for this call so far (by the guest or [`CurrentPlugin::set_error`]).
    pub fn get_error(&mut self) -> Option<&str> {
        let offset = self.kernel.error_get(&mut self.caller).ok()?;
        let length = self.memory_length(offset).ok().filter(|&l| l > 0)?;
        self.memory_str(MemoryHandle { offset, length }).ok()
    }

    /// Clears the error set for this call.
    pub fn clear_error(&mut self) {
        if let Err(e) = self.kernel.error_set(&mut self.caller, 0) {
            tracing::error!(target: "extism", plugin = %self.id(), "unable to clear error: {e}");
        }
    }
}
