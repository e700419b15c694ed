//! Running wasm from sync code in the stores of async plugins.
//!
//! An async plugin's store has async host functions, so wasmtime accepts only its async entry
//! points there (`call_async`, `instantiate_async`). The steps of a call that run wasm without
//! waiting for anything take one of two ways here:
//! - instantiation and initialisers (first call only) drive those futures to completion on
//!   the calling thread;
//! - kernel calls (every call, and host functions' memory helpers) enter the kernel directly,
//!   without a fiber of their own ([`call_kernel`]): a fiber per kernel call cost more than
//!   the whole sync call, and one made inside the export's fiber needs a second stack, which
//!   wasmtime maps and unmaps every time (it keeps one spare stack per store).
//!
//! Only the export itself is awaited (async_plugin.rs). Sync plugins take the sync entry
//! points, so this costs them one branch.
//!
//! Must never be used for wasm that may wait for an async host function: that is awaited,
//! never driven here (a pending host future would be polled in a loop).

use std::{
    cell::Cell,
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};

use wasmtime::{AsContextMut, Instance, InstancePre, Module, Store, TypedFunc, ValRaw};

/// Polls `future` until it is ready. The futures handed here only pend when their guest
/// yields at an epoch check (the next poll resumes it).
pub(crate) fn finish<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

/// Calls `f` through the entry point the store accepts.
#[inline]
pub(crate) fn call<P, R>(
    f: &TypedFunc<P, R>,
    store: impl AsContextMut<Data: Send>,
    params: P,
    asynchronous: bool,
) -> wasmtime::Result<R>
where
    P: wasmtime::WasmParams + Sync,
    R: wasmtime::WasmResults + Sync,
{
    if asynchronous {
        finish(f.call_async(store, params))
    } else {
        f.call(store, params)
    }
}

/// The parameters and results of kernel functions: 64-bit integers, at most three.
pub(crate) trait KernelValues: Sized {
    fn write(self, to: &mut [ValRaw; 3]);
    fn read(from: &[ValRaw; 3]) -> Self;
}

impl KernelValues for () {
    fn write(self, _: &mut [ValRaw; 3]) {}
    fn read(_: &[ValRaw; 3]) {}
}

impl KernelValues for u64 {
    fn write(self, to: &mut [ValRaw; 3]) {
        to[0] = ValRaw::i64(self as i64);
    }
    fn read(from: &[ValRaw; 3]) -> u64 {
        from[0].get_i64() as u64
    }
}

impl KernelValues for (u64, u64) {
    fn write(self, to: &mut [ValRaw; 3]) {
        to[0] = ValRaw::i64(self.0 as i64);
        to[1] = ValRaw::i64(self.1 as i64);
    }
    fn read(from: &[ValRaw; 3]) -> (u64, u64) {
        (from[0].get_i64() as u64, from[1].get_i64() as u64)
    }
}

impl KernelValues for (u64, u64, u64) {
    fn write(self, to: &mut [ValRaw; 3]) {
        *to = [self.0, self.1, self.2].map(|v| ValRaw::i64(v as i64));
    }
    fn read(from: &[ValRaw; 3]) -> (u64, u64, u64) {
        let v = |i: usize| from[i].get_i64() as u64;
        (v(0), v(1), v(2))
    }
}

thread_local! {
    /// True while a direct kernel call runs on this thread.
    static DIRECT: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread runs a direct kernel call ([`call_kernel`]): an epoch check then
/// belongs to that call, which must not yield (epoch.rs). A direct call never suspends, so
/// it starts and ends on one thread, and kernel code calls nothing else.
pub(crate) fn in_kernel_call() -> bool {
    DIRECT.get()
}

/// Marks a direct kernel call on this thread until dropped.
struct Direct(bool);

impl Direct {
    fn enter() -> Direct {
        Direct(DIRECT.replace(true))
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        DIRECT.set(self.0);
    }
}

/// Calls the kernel function `f`: in an async store directly, on the current stack.
#[inline]
pub(crate) fn call_kernel<P, R>(
    f: &TypedFunc<P, R>,
    store: impl AsContextMut<Data: Send>,
    params: P,
    asynchronous: bool,
) -> wasmtime::Result<R>
where
    P: wasmtime::WasmParams + KernelValues,
    R: wasmtime::WasmResults + KernelValues,
{
    if !asynchronous {
        return f.call(store, params);
    }
    let mut values = [ValRaw::i64(0); 3];
    params.write(&mut values);
    let _direct = Direct::enter();
    // SAFETY: `f` was type-checked as `P -> R` (`Func::typed`), and `values` holds its
    // parameters and has room for its results (64-bit integers, at most three, no references).
    // `call_unchecked` asks not to be used recursively inside `call_async` (wasmtime refuses
    // sync calls there) because wasm could suspend the fiber with the caller's frames on it,
    // and because of stack depth. A kernel call never suspends: the kernel's imports are sync
    // host functions that do not enter wasm (host/mod.rs), the stores have a sync memory
    // limiter and no fuel yielding, and the epoch callback does not yield while `_direct` is
    // set (epoch.rs); deadline and cancel still trap it. Inside
    // a host function (the one place it nests), wasmtime keeps the enclosing call's stack
    // limit for the recursive entry, so the kernel's stack use counts against the guest's.
    unsafe {
        f.func()
            .call_unchecked(store, &mut values[..] as *mut [ValRaw])?
    };
    Ok(R::read(&values))
}

/// Instantiates `pre` through the entry point the store accepts.
pub(crate) fn instantiate_pre<T: Send + 'static>(
    pre: &InstancePre<T>,
    store: &mut Store<T>,
    asynchronous: bool,
) -> wasmtime::Result<Instance> {
    if asynchronous {
        finish(pre.instantiate_async(store))
    } else {
        pre.instantiate(store)
    }
}

/// Instantiates `module` with `imports` through the entry point the store accepts.
pub(crate) fn instantiate<T: Send + 'static>(
    store: &mut Store<T>,
    module: &Module,
    imports: &[wasmtime::Extern],
    asynchronous: bool,
) -> wasmtime::Result<Instance> {
    if asynchronous {
        finish(Instance::new_async(store, module, imports))
    } else {
        Instance::new(store, module, imports)
    }
}
