//! The plugin as a host function sees it while the guest waits for the answer.
//!
//! Owns the typed helpers over kernel memory handles (read a block as bytes or a string,
//! allocate and fill a block, free), the per-call host context and the error slot. Every
//! access is bounds-checked by `kernel.rs`. Valid only for the duration of one host call.

use std::any::Any;

use anyhow::{anyhow, bail, Result};
use wasmtime::{Caller, Val};

use crate::{
    convert::{FromBytesOwned, ToBytes},
    kernel::Kernel,
    plugin_state::PluginState,
};

/// A block of kernel memory: its handle (`offset`) and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryHandle {
    pub offset: u64,
    pub length: u64,
}

impl MemoryHandle {
    pub fn null() -> MemoryHandle {
        MemoryHandle {
            offset: 0,
            length: 0,
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn len(&self) -> usize {
        self.length as usize
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    pub fn is_null(&self) -> bool {
        self.offset == 0
    }
}

/// The running plugin, handed to host functions.
pub struct CurrentPlugin<'a> {
    caller: Caller<'a, PluginState>,
    kernel: Kernel,
}

impl<'a> CurrentPlugin<'a> {
    pub(crate) fn new(caller: Caller<'a, PluginState>) -> Result<CurrentPlugin<'a>> {
        let kernel = caller.data().kernel()?;
        Ok(CurrentPlugin { caller, kernel })
    }

    /// The plugin's id.
    pub fn id(&self) -> uuid::Uuid {
        self.caller.data().id
    }

    /// The plugin's current configuration.
    pub fn config(&self) -> &std::collections::BTreeMap<String, String> {
        &self.caller.data().config
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
        self.caller.data().host_context.is_some()
    }

    /// Allocates `n` bytes of kernel memory. Fails when memory cannot be had.
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

    /// The handle of the live block at `offset`, if there is one.
    pub fn memory_handle(&mut self, offset: u64) -> Option<MemoryHandle> {
        match self.memory_length(offset) {
            Ok(length) if length > 0 => Some(MemoryHandle { offset, length }),
            _ => None,
        }
    }

    /// The bytes of `handle`, mutable.
    pub fn memory_bytes(&mut self, handle: MemoryHandle) -> Result<&mut [u8]> {
        self.kernel
            .slice_mut(&mut self.caller, handle.offset, handle.length)
    }

    /// The bytes of `handle` as UTF-8.
    pub fn memory_str(&mut self, handle: MemoryHandle) -> Result<&mut str> {
        Ok(std::str::from_utf8_mut(self.memory_bytes(handle)?)?)
    }

    /// Reads and converts the block `handle`.
    pub fn memory_get<T: FromBytesOwned>(&mut self, handle: MemoryHandle) -> Result<T> {
        T::from_bytes_owned(self.memory_bytes(handle)?)
    }

    /// Reads and converts the block whose handle is the `i64` argument `val`.
    pub fn memory_get_val<T: FromBytesOwned>(&mut self, val: &Val) -> Result<T> {
        let handle = self.handle_from_val(val)?;
        self.memory_get(handle)
    }

    /// Allocates a block holding `data` and stores its handle in the `i64` result `val`.
    pub fn memory_set_val<'b, T: ToBytes<'b>>(&mut self, val: &mut Val, data: T) -> Result<()> {
        let handle = self.memory_new(data)?;
        *val = Val::I64(handle.offset as i64);
        Ok(())
    }

    /// The live block named by an `i64` value.
    pub fn handle_from_val(&mut self, val: &Val) -> Result<MemoryHandle> {
        let offset = match val {
            Val::I64(v) => *v as u64,
            other => bail!(
                "expected an i64 memory handle, got {:?}",
                other.ty(&self.caller)
            ),
        };
        if offset == 0 {
            return Ok(MemoryHandle::null());
        }
        self.memory_handle(offset)
            .ok_or_else(|| anyhow!("invalid memory handle: {offset}"))
    }

    /// Base address of kernel memory (what `extism_current_plugin_memory` returns). Valid until
    /// kernel memory grows.
    pub fn memory_ptr(&mut self) -> *mut u8 {
        self.kernel.memory.data_ptr(&self.caller)
    }

    /// Marks the call as failed with `message` without trapping; the guest continues.
    pub fn set_error(&mut self, message: impl AsRef<str>) -> Result<()> {
        let handle = self
            .kernel
            .write_new(&mut self.caller, message.as_ref().as_bytes())?;
        self.kernel.error_set(&mut self.caller, handle)
    }
}
