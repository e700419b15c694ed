//! The host's view of a plugin's kernel (`kernel/kernel.wat`, `spec/kernel.md`): a kernel
//! instance of its own, or the kernel exports of a main module it is linked into
//! (kernel_link.rs).
//!
//! Owns the typed handles to the kernel functions the host calls on every call and from host
//! functions, and bounds-checked access to kernel memory by handle. Every read or write of
//! kernel memory by the host goes through here, so no handle, however hostile, makes the host
//! touch memory outside the kernel's linear memory. It knows nothing about calls or plugins.

use anyhow::{bail, Result};

use crate::fiber::KernelValues;
use wasmtime::{
    AsContext, AsContextMut, Extern, Instance, Memory, Module, ModuleExport, TypedFunc,
};

/// The kernel, assembled from `kernel/kernel.wat` by `build.rs`.
pub const KERNEL_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernel.wasm"));

/// The first handle after a reset: the kernel hands out blocks from here on (kernel.wat).
pub const DATA_START: u64 = 128;

/// The import namespace of the kernel and the runtime's own host functions.
pub const ENV_MODULE: &str = "extism:host/env";

/// Kernel exports a guest may import (every function export of the kernel).
pub const KERNEL_FUNCTIONS: &[&str] = &[
    "alloc",
    "free",
    "length",
    "length_unsafe",
    "load_u8",
    "load_u64",
    "store_u8",
    "store_u64",
    "input_length",
    "input_offset",
    "input_load_u8",
    "input_load_u64",
    "input_set",
    "output_set",
    "output_offset",
    "output_length",
    "error_set",
    "error_get",
    "memory_bytes",
    "reset",
    "config_get",
    "var_get",
    "var_set",
];

/// The host functions among [`KERNEL_FUNCTIONS`]: the kernel runs them, asking the host for the
/// values. Unlike the rest, a user host function may replace them (`spec/guest-abi.md` §10:
/// later definitions shadow built-ins), and then the guest's import is the user's.
pub const KERNEL_BUILTINS: &[&str] = &["config_get", "var_get", "var_set"];

/// The import namespace of what the kernel asks of the host (src/host/): never resolved for a
/// guest's own imports.
pub const KERNEL_HOST_MODULE: &str = "extism-run:host";

/// True when the kernel exports `name` (functions, its memory and globals).
pub(crate) fn is_export(name: &str) -> bool {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| {
            let mut names = Vec::new();
            for payload in wasmparser::Parser::new(0).parse_all(KERNEL_WASM) {
                if let Ok(wasmparser::Payload::ExportSection(reader)) = payload {
                    names.extend(reader.into_iter().flatten().map(|e| e.name.to_string()));
                }
            }
            names
        })
        .iter()
        .any(|n| n == name)
}

/// Bytes of the kernel's memories when it is instantiated (both memories' minimum sizes).
pub(crate) fn initial_memory_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        let mut pages = 0u64;
        for payload in wasmparser::Parser::new(0).parse_all(KERNEL_WASM) {
            if let Ok(wasmparser::Payload::MemorySection(reader)) = payload {
                pages += reader.into_iter().flatten().map(|m| m.initial).sum::<u64>();
            }
        }
        (pages as usize) << 16
    })
}

/// Where a module exports the kernel (the kernel's own module, or a guest module it is linked
/// into, under a prefix): looked up once per compiled module, so that setting up each instance
/// needs no name lookups.
#[derive(Clone)]
pub(crate) struct KernelExports {
    memory: ModuleExport,
    alloc: ModuleExport,
    alloc_filled: ModuleExport,
    free: ModuleExport,
    length: ModuleExport,
    reset: ModuleExport,
    error_get: ModuleExport,
    error_set: ModuleExport,
    begin: ModuleExport,
    end: ModuleExport,
    begun: ModuleExport,
    /// The guest's start function, deferred by kernel_link (`{prefix}start`), if any.
    pub start: Option<ModuleExport>,
}

impl KernelExports {
    /// The kernel exports of `module`, each name starting with `prefix`; `None` unless all
    /// are there.
    pub fn find(module: &Module, prefix: &str) -> Option<KernelExports> {
        let at = |name: &str| module.get_export_index(&format!("{prefix}{name}"));
        Some(KernelExports {
            memory: at("memory")?,
            alloc: at("alloc")?,
            alloc_filled: at("extism-run:alloc_filled")?,
            free: at("free")?,
            length: at("length")?,
            reset: at("reset")?,
            error_get: at("error_get")?,
            error_set: at("error_set")?,
            begin: at("extism-run:begin")?,
            end: at("extism-run:end")?,
            begun: at("extism-run:begun")?,
            start: at("start"),
        })
    }
}

/// A kernel inside one store; only valid with that store. Cloning it counts every typed
/// handle's function type, engine-wide: the store keeps one behind an `Arc`.
#[derive(Clone)]
pub(crate) struct Kernel {
    /// The instance exporting the kernel (the kernel's own, or a kernel-linked main module).
    pub instance: Instance,
    pub memory: Memory,
    alloc: TypedFunc<u64, u64>,
    alloc_filled: TypedFunc<u64, u64>,
    free: TypedFunc<u64, ()>,
    length: TypedFunc<u64, u64>,
    reset: TypedFunc<(), ()>,
    error_get: TypedFunc<(), u64>,
    error_set: TypedFunc<u64, ()>,
    begin: TypedFunc<(u64, u64), u64>,
    end: TypedFunc<(), (u64, u64, u64)>,
    begun: TypedFunc<(), u64>,
    /// In an async plugin's store the kernel is entered directly, without a fiber
    /// (fiber.rs).
    asynchronous: bool,
}

impl Kernel {
    /// The kernel that `instance` exports at `exports` (found in the instance's module).
    pub fn new(
        mut store: impl AsContextMut,
        instance: Instance,
        exports: &KernelExports,
        asynchronous: bool,
    ) -> Result<Kernel> {
        let s = &mut store;
        let Some(Extern::Memory(memory)) = instance.get_module_export(&mut *s, &exports.memory)
        else {
            bail!("the kernel exports no memory");
        };
        fn func<P, R>(
            store: &mut impl AsContextMut,
            i: &Instance,
            at: &ModuleExport,
        ) -> Result<TypedFunc<P, R>>
        where
            P: wasmtime::WasmParams,
            R: wasmtime::WasmResults,
        {
            match i.get_module_export(&mut *store, at) {
                Some(Extern::Func(f)) => Ok(f.typed(store)?),
                _ => bail!("a kernel export is not a function"),
            }
        }
        let (i, e) = (&instance, exports);
        Ok(Kernel {
            instance,
            memory,
            alloc: func(s, i, &e.alloc)?,
            alloc_filled: func(s, i, &e.alloc_filled)?,
            free: func(s, i, &e.free)?,
            length: func(s, i, &e.length)?,
            reset: func(s, i, &e.reset)?,
            error_get: func(s, i, &e.error_get)?,
            error_set: func(s, i, &e.error_set)?,
            begin: func(s, i, &e.begin)?,
            end: func(s, i, &e.end)?,
            begun: func(s, i, &e.begun)?,
            asynchronous,
        })
    }

    /// Calls a kernel function the way the store allows (fiber.rs).
    #[inline]
    fn enter<P, R>(
        &self,
        f: &TypedFunc<P, R>,
        store: impl AsContextMut<Data: Send>,
        params: P,
    ) -> wasmtime::Result<R>
    where
        P: wasmtime::WasmParams + KernelValues,
        R: wasmtime::WasmResults + KernelValues,
    {
        crate::fiber::call_kernel(f, store, params, self.asynchronous)
    }

    /// Allocates `n` bytes; 0 when `n == 0` or memory cannot be had.
    pub fn alloc(&self, store: impl AsContextMut<Data: Send>, n: u64) -> Result<u64> {
        Ok(self.enter(&self.alloc, store, n)?)
    }

    pub fn free(&self, store: impl AsContextMut<Data: Send>, handle: u64) -> Result<()> {
        Ok(self.enter(&self.free, store, handle)?)
    }

    /// Length of the live block `handle`, 0 for anything else.
    pub fn length(&self, store: impl AsContextMut<Data: Send>, handle: u64) -> Result<u64> {
        Ok(self.enter(&self.length, store, handle)?)
    }

    pub fn reset(&self, store: impl AsContextMut<Data: Send>) -> Result<()> {
        Ok(self.enter(&self.reset, store, ())?)
    }

    /// The start of call number `call` in one kernel entry: reset, then `input` written into a
    /// new block and set as the input.
    pub fn begin(
        &self,
        mut store: impl AsContextMut<Data: Send>,
        input: &[u8],
        call: u64,
    ) -> Result<()> {
        let handle = self.enter(&self.begin, &mut store, (input.len() as u64, call))?;
        self.fill(store, handle, input)
    }

    /// Writes `input` where the kernel's `begin` puts it right after its reset (the first
    /// block, at [`DATA_START`]), when that fits the memory as it is, so that a call entry
    /// which begins with `begin` (kernel_link::CALL) finds its input in place. False when it
    /// does not fit: `begin` would have to grow memory, so the host calls it itself.
    /// Whatever the previous call left there is gone by then anyway.
    pub fn place_input(&self, mut store: impl AsContextMut, input: &[u8]) -> bool {
        let data = self.memory.data_mut(&mut store);
        let end = (DATA_START as usize).checked_add(input.len().next_multiple_of(16));
        match end {
            Some(end) if end <= data.len() => {
                data[DATA_START as usize..][..input.len()].copy_from_slice(input);
                true
            }
            _ => false,
        }
    }

    /// Zeroes the `len` bytes [`Kernel::place_input`] wrote, for a call whose `begin` did not
    /// complete: they lie in fresh space, which must read as zero above the kernel's clean
    /// mark.
    pub fn unplace(&self, mut store: impl AsContextMut, len: u64) {
        let data = self.memory.data_mut(&mut store);
        if let Some(placed) = data
            .get_mut(DATA_START as usize..)
            .and_then(|d| d.get_mut(..len as usize))
        {
            placed.fill(0);
        }
    }

    /// The end of a call in one kernel entry: output offset and length, and the error handle.
    pub fn end(&self, store: impl AsContextMut<Data: Send>) -> Result<(u64, u64, u64)> {
        Ok(self.enter(&self.end, store, ())?)
    }

    /// The number of the call whose `begin` completed last (a call entry that failed may have
    /// stopped before its own).
    pub fn begun(&self, store: impl AsContextMut<Data: Send>) -> Result<u64> {
        Ok(self.enter(&self.begun, store, ())?)
    }

    pub fn error_get(&self, store: impl AsContextMut<Data: Send>) -> Result<u64> {
        Ok(self.enter(&self.error_get, store, ())?)
    }

    pub fn error_set(&self, store: impl AsContextMut<Data: Send>, handle: u64) -> Result<()> {
        Ok(self.enter(&self.error_set, store, handle)?)
    }

    /// The bytes `[offset, offset + len)` of kernel memory, or an error when any part of the
    /// range lies outside it.
    pub fn slice<'a, T: 'static>(
        &self,
        store: &'a impl AsContext<Data = T>,
        offset: u64,
        len: u64,
    ) -> Result<&'a [u8]> {
        range(self.memory.data(store), offset, len)
    }

    pub fn slice_mut<'a, T: 'static>(
        &self,
        store: &'a mut impl AsContextMut<Data = T>,
        offset: u64,
        len: u64,
    ) -> Result<&'a mut [u8]> {
        range_mut(self.memory.data_mut(store), offset, len)
    }

    /// The whole block `handle`, or `None` when `handle` is not a live block (`0` included).
    pub fn block<'a, T: Send + 'static>(
        &self,
        store: &'a mut impl AsContextMut<Data = T>,
        handle: u64,
    ) -> Result<Option<&'a [u8]>> {
        if handle == 0 {
            return Ok(None);
        }
        let len = self.length(&mut *store, handle)?;
        if len == 0 {
            return Ok(None);
        }
        self.slice(store, handle, len).map(Some)
    }

    /// Allocates a block holding `bytes` and returns its handle (0 for empty `bytes`). The
    /// block is not zeroed first: `bytes` fill it.
    pub fn write_new(&self, mut store: impl AsContextMut<Data: Send>, bytes: &[u8]) -> Result<u64> {
        if bytes.is_empty() {
            return Ok(0);
        }
        let handle = self.enter(&self.alloc_filled, &mut store, bytes.len() as u64)?;
        self.fill(store, handle, bytes)?;
        Ok(handle)
    }

    /// Copies `bytes` into `handle`, a block of their length that an entry not zeroing it just
    /// allocated (0: it could not be had).
    fn fill(
        &self,
        mut store: impl AsContextMut<Data: Send>,
        handle: u64,
        bytes: &[u8],
    ) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if handle == 0 {
            return Err(allocation_failed(bytes.len() as u64));
        }
        self.slice_mut(&mut store, handle, bytes.len() as u64)?
            .copy_from_slice(bytes);
        Ok(())
    }
}

pub(crate) fn allocation_failed(n: u64) -> anyhow::Error {
    anyhow::anyhow!("failed to allocate {n} bytes of Extism memory")
}

/// The bytes `[offset, offset + len)` of kernel memory `data` (as `Memory::data_and_store_mut`
/// gives it, for host code that needs the store's data at the same time), or an error when any
/// part of the range lies outside it.
pub(crate) fn range(data: &[u8], offset: u64, len: u64) -> Result<&[u8]> {
    Ok(&data[checked_range(data.len(), offset, len)?])
}

pub(crate) fn range_mut(data: &mut [u8], offset: u64, len: u64) -> Result<&mut [u8]> {
    let range = checked_range(data.len(), offset, len)?;
    Ok(&mut data[range])
}

fn checked_range(mem_len: usize, offset: u64, len: u64) -> Result<std::ops::Range<usize>> {
    let end = offset.checked_add(len);
    match end {
        Some(end) if end <= mem_len as u64 => Ok(offset as usize..end as usize),
        _ => bail!("memory range {offset}+{len} is outside Extism memory ({mem_len} bytes)"),
    }
}
