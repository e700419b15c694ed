//! Running wasm from sync code in the stores of async plugins.
//!
//! An async plugin's store has async host functions, so wasmtime accepts only its async entry
//! points there (`call_async`, `instantiate_async`), and a host function may enter wasm again
//! only through them. The steps around a call that run wasm without waiting for anything
//! (kernel calls, instantiation, initialisers) drive those futures to completion here, on the
//! calling thread; only the export itself is awaited (async_plugin.rs). Sync plugins take the
//! sync entry points, so this costs them one branch.
//!
//! Must never be used for wasm that may wait for an async host function: that is awaited,
//! never driven here (a pending host future would be polled in a loop).

use std::{
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};

use wasmtime::{AsContextMut, Instance, InstancePre, Module, Store, TypedFunc};

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
