//! Short `memory.copy`s inlined, in modules the kernel is linked into.
//!
//! wasmtime expands a `memory.copy` of a constant length up to 128 bytes itself; any other
//! runs as a call into the runtime, which costs tens of nanoseconds whatever the length.
//! Guests compiled with bulk memory (rustc's default for wasm32 since 1.87) implement `memcpy`
//! with it, and most of their copies are a few bytes of a length known only at run time: a
//! 13-byte `count_vowels` call of the Rust PDK makes several. [`inline`] replaces such a copy
//! within one 32-bit memory by code that moves up to 16 bytes with at most two loads and two
//! stores, when the whole source and destination lie inside the memory; everything else (a
//! longer copy, one that would trap) still runs as the `memory.copy` itself, after one compare
//! for the longer ones. Both loads happen before either store, so overlapping ranges copy as
//! `memory.copy` does, and a copy that would trap traps before writing anything, as it does.
//! kernel_link.rs leaves copies of constant length to wasmtime, and every copy as it is under
//! fuel metering (which charges a copy by its length).
//!
//! This module only writes instructions: it knows nothing of modules or the runtime.

use wasm_encoder::{BlockType, Instruction, MemArg};

/// Copies of at most this many bytes are inlined.
const MAX_INLINE: i32 = 16;

/// Locals of the rewritten function that the inlined copy may use as it likes.
#[derive(Clone, Copy)]
pub(crate) struct Scratch {
    /// Three i32 locals: destination, source, length.
    pub i32s: u32,
    /// Two i64 locals: the bytes loaded.
    pub i64s: u32,
}

/// The instructions for `memory.copy memory memory` (destination, source and length on the
/// stack), for a 32-bit `memory`.
pub(crate) fn inline(memory: u32, scratch: Scratch) -> Vec<Instruction<'static>> {
    use Instruction as I;
    let (dst, src, len) = (scratch.i32s, scratch.i32s + 1, scratch.i32s + 2);
    let (a, b) = (scratch.i64s, scratch.i64s + 1);
    let arg = MemArg {
        offset: 0,
        align: 0,
        memory_index: memory,
    };
    let mut out = Vec::with_capacity(96);
    out.extend([I::LocalSet(len), I::LocalSet(src), I::LocalSet(dst)]);
    // block { block { to the copy below unless len <= MAX_INLINE, src + len <= size and
    // dst + len <= size (in 64 bits: no wrap); inline copy; br out } memory.copy }
    out.extend([I::Block(BlockType::Empty), I::Block(BlockType::Empty)]);
    out.extend([
        I::LocalGet(len),
        I::I32Const(MAX_INLINE),
        I::I32GtU,
        I::BrIf(0),
    ]);
    for at in [src, dst] {
        out.extend([
            I::LocalGet(at),
            I::I64ExtendI32U,
            I::LocalGet(len),
            I::I64ExtendI32U,
            I::I64Add,
        ]);
        out.extend(crate::wasm_code::memory_bytes(memory));
        out.extend([I::I64GtU, I::BrIf(0)]);
    }
    // Sizes [w, 2w] as two possibly overlapping accesses of width w: at 0 and at len - w.
    let pair = |load: Instruction<'static>, store: Instruction<'static>, w: i32| {
        let last = |at: u32| {
            [
                I::LocalGet(at),
                I::LocalGet(len),
                I::I32Add,
                I::I32Const(w),
                I::I32Sub,
            ]
        };
        let mut code = vec![I::LocalGet(src), load.clone(), I::LocalSet(a)];
        code.extend(last(src));
        code.extend([
            load,
            I::LocalSet(b),
            I::LocalGet(dst),
            I::LocalGet(a),
            store.clone(),
        ]);
        code.extend(last(dst));
        code.extend([I::LocalGet(b), store]);
        code
    };
    // 8..=16, 4..=7, 2..=3
    let widths = [
        (8, I::I64Load(arg), I::I64Store(arg)),
        (4, I::I64Load32U(arg), I::I64Store32(arg)),
        (2, I::I64Load16U(arg), I::I64Store16(arg)),
    ];
    for (w, load, store) in widths {
        out.extend([
            I::LocalGet(len),
            I::I32Const(w),
            I::I32GeU,
            I::If(BlockType::Empty),
        ]);
        out.extend(pair(load, store, w));
        out.push(I::Else);
    }
    // 1 (0 copies nothing)
    out.extend([
        I::LocalGet(len),
        I::If(BlockType::Empty),
        I::LocalGet(dst),
        I::LocalGet(src),
        I::I32Load8U(arg),
        I::I32Store8(arg),
        I::End,
    ]);
    out.extend([I::End, I::End, I::End, I::Br(1), I::End]);
    out.extend([
        I::LocalGet(dst),
        I::LocalGet(src),
        I::LocalGet(len),
        I::MemoryCopy {
            src_mem: memory,
            dst_mem: memory,
        },
        I::End,
    ]);
    out
}
