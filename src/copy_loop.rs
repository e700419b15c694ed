//! Bulk copies for the PDKs' copy loops, in modules the kernel is linked into.
//!
//! PDKs move data between their memory and the kernel's with one kernel call per 8 bytes: the
//! Rust PDK (and the PDKs built on it, such as the JS PDK) reads its input with an
//! `input_load_u64` loop, reads host-made blocks with a `load_u64` loop and writes its output
//! and host-function arguments with a `store_u64` loop. kernel_link.rs inlines those calls;
//! this module recognises the loop around one of them and puts a bulk copy (`memory.copy`
//! between the guest's memory and the kernel's) in front of it, guarded by checks that every
//! iteration of the loop would have succeeded. The loop itself stays, and runs whenever a
//! check fails, so the guest sees exactly what it would have seen: the same bytes in both
//! memories, the same final values of the loop's counters and pointers, the same traps.
//!
//! A loop qualifies when its body is straight-line code (no blocks, no calls but the one
//! kernel call) that ends in `br_if 0`, moves 8 bytes per iteration between one ascending
//! guest address and one ascending kernel offset, changes locals only by adding constants,
//! and stops when a counter reaches a value it reaches exactly (a power-of-two step). Whatever
//! else a loop does, it is left alone. Runs of fewer than 8 iterations stay loops too: the
//! `memory.copy` is a call into wasmtime that costs more than they do. This module only reads operators and writes
//! instructions: it knows nothing of modules, indices outside the loop, or the runtime.

use std::collections::HashMap;

use wasm_encoder::{BlockType, Instruction};
use wasmparser::{Operator, ValType};

/// The direction of a loop's kernel call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transfer {
    /// `input_load_u64(i)`: 8 input bytes at offset `i`, into guest memory.
    InputToGuest,
    /// `load_u64(p)`: 8 bytes of kernel memory at `p`, into guest memory.
    KernelToGuest,
    /// `store_u64(p, v)`: 8 bytes of guest memory, to kernel memory at `p`.
    GuestToKernel,
}

/// Where the kernel keeps what the fast path reads and writes (indices in the linked module).
#[derive(Clone, Copy)]
pub(crate) struct KernelPlaces {
    pub memory: u32,
    pub in_off: u32,
    pub in_len: u32,
    pub clean: u32,
}

/// The function being rewritten, as far as its loops need it.
pub(crate) struct Function<'a> {
    /// Types of the function's parameters and locals, in index order.
    pub locals: &'a [ValType],
    /// The direction of each kernel call the guest makes, by the guest's function index.
    pub transfers: &'a HashMap<u32, Transfer>,
    /// For each guest memory: whether it is a 32-bit memory of 64 KiB pages (only those are
    /// copied).
    pub memories32: &'a [bool],
    /// A scratch i64 local of the rewritten function, unused by the guest.
    pub scratch: u32,
    pub kernel: KernelPlaces,
}

/// At most this many iterations are copied at once (64 MiB): a longer copy runs as the loop,
/// which checks the epoch (deadline, cancel) at every iteration.
const MAX_ITERATIONS: i64 = 1 << 23;
/// Fewer iterations run as the loop: `memory.copy` is a call into the runtime, which costs
/// more than a few inlined iterations.
const MIN_ITERATIONS: i64 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Width {
    I32,
    I64,
}

/// `local + add` (the local's value when the iteration began), or `add` alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Affine {
    local: Option<u32>,
    add: i64,
    width: Width,
}

#[derive(Clone, Copy, Debug)]
enum Value {
    Affine(Affine),
    /// The 8 guest bytes a `GuestToKernel` loop loads.
    GuestBytes,
    /// The 8 bytes the kernel call of a `*ToGuest` loop returns.
    KernelBytes,
    /// `a != b`.
    Ne(Affine, Affine),
}

/// What one iteration of a qualifying loop does.
struct Iteration {
    transfer: Transfer,
    /// The kernel call's offset argument.
    kernel_at: Affine,
    /// The guest access: address, memory, static offset.
    guest_at: Affine,
    guest_memory: u32,
    guest_offset: u64,
    /// The loop goes on while `a != b`.
    condition: (Affine, Affine),
    /// Each local the body writes, with what it adds per iteration.
    steps: Vec<(u32, i64, Width)>,
}

/// The most operators (with the loop's `end`) a qualifying loop body has: the PDKs' copy loops
/// have a few dozen. Longer bodies are not read ahead further.
pub(crate) const MAX_BODY: usize = 256;

/// Whether a loop whose body has `op` may still qualify: the caller reads a loop's body
/// ahead only while this holds (and up to the loop's `end`).
pub(crate) fn may_contain(op: &Operator<'_>) -> bool {
    matches!(
        op,
        Operator::LocalGet { .. }
            | Operator::LocalSet { .. }
            | Operator::LocalTee { .. }
            | Operator::I32Const { .. }
            | Operator::I64Const { .. }
            | Operator::I32Add
            | Operator::I64Add
            | Operator::I32Sub
            | Operator::I64Sub
            | Operator::I32Ne
            | Operator::I64Ne
            | Operator::Call { .. }
            | Operator::I64Load { .. }
            | Operator::I64Store { .. }
            | Operator::BrIf { relative_depth: 0 }
    )
}

/// The instructions to emit before a loop whose body (between `loop` and its `end`) is
/// `body`: `if (checks) { bulk copy; final locals } else {`, to be followed by the loop as it
/// is and one more `end`. `None` when the loop does not qualify.
pub(crate) fn fast_path(
    body: &[Operator<'_>],
    f: &Function<'_>,
) -> Option<Vec<Instruction<'static>>> {
    let it = analyse(body, f)?;
    emit(&it, f)
}

fn analyse(body: &[Operator<'_>], f: &Function<'_>) -> Option<Iteration> {
    let (last, body) = body.split_last()?;
    if !matches!(last, Operator::BrIf { relative_depth: 0 }) {
        return None;
    }
    let mut stack: Vec<Value> = Vec::new();
    let mut written: HashMap<u32, Affine> = HashMap::new();
    let mut transfer = None;
    let mut kernel_at = None;
    let mut guest = None;
    let width_of = |local: u32| match f.locals.get(local as usize)? {
        ValType::I32 => Some(Width::I32),
        ValType::I64 => Some(Width::I64),
        _ => None,
    };
    let affine = |v: Option<Value>| match v? {
        Value::Affine(a) => Some(a),
        _ => None,
    };
    for op in body {
        match *op {
            Operator::LocalGet { local_index } => {
                let value = match written.get(&local_index) {
                    Some(a) => *a,
                    None => Affine {
                        local: Some(local_index),
                        add: 0,
                        width: width_of(local_index)?,
                    },
                };
                stack.push(Value::Affine(value));
            }
            Operator::LocalSet { local_index } | Operator::LocalTee { local_index } => {
                let a = affine(stack.pop())?;
                if a.width != width_of(local_index)? {
                    return None;
                }
                written.insert(local_index, a);
                if matches!(op, Operator::LocalTee { .. }) {
                    stack.push(Value::Affine(a));
                }
            }
            Operator::I32Const { value } => stack.push(constant(value as i64, Width::I32)),
            Operator::I64Const { value } => stack.push(constant(value, Width::I64)),
            Operator::I32Add | Operator::I64Add | Operator::I32Sub | Operator::I64Sub => {
                let width = match op {
                    Operator::I32Add | Operator::I32Sub => Width::I32,
                    _ => Width::I64,
                };
                let b = affine(stack.pop())?;
                let a = affine(stack.pop())?;
                if a.width != width || b.width != width {
                    return None;
                }
                let sum = match op {
                    Operator::I32Add | Operator::I64Add => match (a.local, b.local) {
                        (Some(_), Some(_)) => return None,
                        (local, None) | (None, local) => Affine {
                            local,
                            add: a.add.wrapping_add(b.add),
                            width,
                        },
                    },
                    _ if b.local.is_none() => Affine {
                        local: a.local,
                        add: a.add.wrapping_sub(b.add),
                        width,
                    },
                    _ => return None,
                };
                stack.push(Value::Affine(normalise(sum)));
            }
            Operator::I32Ne | Operator::I64Ne => {
                let width = match op {
                    Operator::I32Ne => Width::I32,
                    _ => Width::I64,
                };
                let b = affine(stack.pop())?;
                let a = affine(stack.pop())?;
                if a.width != width || b.width != width {
                    return None;
                }
                stack.push(Value::Ne(a, b));
            }
            Operator::Call { function_index } => {
                let t = *f.transfers.get(&function_index)?;
                if transfer.replace(t).is_some() {
                    return None;
                }
                if t == Transfer::GuestToKernel && !matches!(stack.pop()?, Value::GuestBytes) {
                    return None;
                }
                let at = affine(stack.pop())?;
                if at.width != Width::I64 {
                    return None;
                }
                kernel_at = Some(at);
                if t != Transfer::GuestToKernel {
                    stack.push(Value::KernelBytes);
                }
            }
            Operator::I64Load { memarg } => {
                let at = affine(stack.pop())?;
                if guest.replace((at, memarg)).is_some() || at.width != Width::I32 {
                    return None;
                }
                stack.push(Value::GuestBytes);
            }
            Operator::I64Store { memarg } => {
                if !matches!(stack.pop()?, Value::KernelBytes) {
                    return None;
                }
                let at = affine(stack.pop())?;
                if guest.replace((at, memarg)).is_some() || at.width != Width::I32 {
                    return None;
                }
            }
            _ => return None,
        }
    }
    let condition = match stack.pop()? {
        Value::Ne(a, b) => (a, b),
        Value::Affine(a) if a.width == Width::I32 => (a, constant_affine(0, Width::I32)),
        _ => return None,
    };
    if !stack.is_empty() {
        return None;
    }
    let (transfer, kernel_at, (guest_at, memarg)) = (transfer?, kernel_at?, guest?);
    // The loads and stores pair up: guest load with store_u64, kernel load with guest store.
    let guest_loads = matches!(transfer, Transfer::GuestToKernel);
    if guest_loads != body.iter().any(|op| matches!(op, Operator::I64Load { .. })) {
        return None;
    }
    if !f
        .memories32
        .get(memarg.memory as usize)
        .copied()
        .unwrap_or(false)
    {
        return None;
    }
    // Every local the body writes must be a counter: its own value plus a constant.
    let mut steps = Vec::new();
    for (&local, a) in &written {
        if a.local != Some(local) {
            return None;
        }
        steps.push((local, a.add, a.width));
    }
    steps.sort_by_key(|s| s.0);
    let it = Iteration {
        transfer,
        kernel_at,
        guest_at,
        guest_memory: memarg.memory,
        guest_offset: memarg.offset,
        condition,
        steps,
    };
    // Both sides move forward by exactly the 8 bytes moved.
    (it.step(&it.guest_at) == 8 && it.step(&it.kernel_at) == 8).then_some(it)
}

fn constant(value: i64, width: Width) -> Value {
    Value::Affine(constant_affine(value, width))
}

fn constant_affine(value: i64, width: Width) -> Affine {
    normalise(Affine {
        local: None,
        add: value,
        width,
    })
}

/// Keeps 32-bit constants as their unsigned 32-bit value.
fn normalise(mut a: Affine) -> Affine {
    if a.width == Width::I32 {
        a.add = a.add as u32 as i64;
    }
    a
}

impl Iteration {
    /// What `a` grows by per iteration, in its width (as a signed value).
    fn step(&self, a: &Affine) -> i64 {
        let Some(local) = a.local else {
            return 0;
        };
        let add = self.steps.iter().find(|s| s.0 == local).map_or(0, |s| s.1);
        match a.width {
            Width::I32 => add as i32 as i64,
            Width::I64 => add,
        }
    }
}

/// Pushes `a` (the value at loop entry) in its own width.
fn push(a: &Affine, out: &mut Vec<Instruction<'static>>) {
    use Instruction as I;
    match (a.local, a.width) {
        (Some(l), Width::I32) => out.extend([I::LocalGet(l), I::I32Const(a.add as i32), I::I32Add]),
        (Some(l), Width::I64) => out.extend([I::LocalGet(l), I::I64Const(a.add), I::I64Add]),
        (None, Width::I32) => out.push(I::I32Const(a.add as i32)),
        (None, Width::I64) => out.push(I::I64Const(a.add)),
    }
}

/// Pushes `a` as an unsigned 64-bit value.
fn push_u64(a: &Affine, out: &mut Vec<Instruction<'static>>) {
    push(a, out);
    if a.width == Width::I32 {
        out.push(Instruction::I64ExtendI32U);
    }
}

fn emit(it: &Iteration, f: &Function<'_>) -> Option<Vec<Instruction<'static>>> {
    use Instruction as I;
    let n = f.scratch;
    let (a, b) = it.condition;
    if a.width != b.width {
        return None;
    }
    // The loop stops after iteration k (from 0) when d + t·k == 0 (mod 2^width), with
    // d = a - b at entry and t = step(a) - step(b). With t = ±2^j that k is unique and
    // exists iff 2^j divides ±d: k = (±d) >> j.
    let t = match a.width {
        Width::I32 => (it.step(&a) - it.step(&b)) as i32 as i64,
        Width::I64 => it.step(&a).wrapping_sub(it.step(&b)),
    };
    if t == 0 || t == i64::MIN || !t.unsigned_abs().is_power_of_two() {
        return None;
    }
    let j = t.unsigned_abs().trailing_zeros() as i64;
    let mut out = Vec::with_capacity(64);
    // scratch = ±d as an unsigned value of the condition's width
    match t > 0 {
        true => {
            push(&b, &mut out);
            push(&a, &mut out);
        }
        false => {
            push(&a, &mut out);
            push(&b, &mut out);
        }
    }
    out.push(match a.width {
        Width::I32 => I::I32Sub,
        Width::I64 => I::I64Sub,
    });
    if a.width == Width::I32 {
        out.push(I::I64ExtendI32U);
    }
    out.push(I::LocalSet(n));
    // ok = 2^j divides it ...
    out.extend([
        I::LocalGet(n),
        I::I64Const((1i64 << j) - 1),
        I::I64And,
        I::I64Eqz,
    ]);
    // ... and n = k + 1 = (it >> j) + 1 lies in [MIN_ITERATIONS, MAX_ITERATIONS] (one
    // unsigned comparison of k - (MIN - 1)); scratch = n
    out.extend([
        I::LocalGet(n),
        I::I64Const(j),
        I::I64ShrU,
        I::LocalTee(n),
        I::I64Const(MIN_ITERATIONS - 1),
        I::I64Sub,
        I::I64Const(MAX_ITERATIONS - (MIN_ITERATIONS - 1)),
        I::I64LtU,
        I::I32And,
        I::LocalGet(n),
        I::I64Const(1),
        I::I64Add,
        I::LocalSet(n),
    ]);
    let bytes = |out: &mut Vec<Instruction<'static>>| {
        out.extend([I::LocalGet(n), I::I64Const(3), I::I64Shl]);
    };
    let guest_address = |out: &mut Vec<Instruction<'static>>| {
        push_u64(&it.guest_at, out);
        out.extend([I::I64Const(it.guest_offset as i64), I::I64Add]);
    };
    // ... and the guest's 8n bytes lie inside its memory (the offset is below 2^32 once this
    // holds, so the guest's 32-bit address arithmetic never wrapped) ...
    if it.guest_offset >= 1 << 32 {
        return None;
    }
    guest_address(&mut out);
    bytes(&mut out);
    out.push(I::I64Add);
    out.extend(crate::wasm_code::memory_bytes(it.guest_memory));
    out.extend([I::I64LeU, I::I32And]);
    // ... and the kernel's: every offset passed the kernel call's own check.
    push(&it.kernel_at, &mut out);
    out.extend([I::I64Const(1 << 32), I::I64LeU, I::I32And]);
    push(&it.kernel_at, &mut out);
    bytes(&mut out);
    out.push(I::I64Add);
    match it.transfer {
        Transfer::InputToGuest => out.push(I::GlobalGet(f.kernel.in_len)),
        Transfer::KernelToGuest | Transfer::GuestToKernel => {
            out.extend(crate::wasm_code::memory_bytes(f.kernel.memory))
        }
    }
    out.extend([I::I64LeU, I::I32And, I::If(BlockType::Empty)]);

    // memory.copy dst src len
    let kernel_address = |out: &mut Vec<Instruction<'static>>| {
        push(&it.kernel_at, out);
        if it.transfer == Transfer::InputToGuest {
            out.extend([I::GlobalGet(f.kernel.in_off), I::I64Add]);
        }
        out.push(I::I32WrapI64);
    };
    let guest_address32 = |out: &mut Vec<Instruction<'static>>| {
        guest_address(out);
        out.push(I::I32WrapI64);
    };
    match it.transfer {
        Transfer::GuestToKernel => {
            kernel_address(&mut out);
            guest_address32(&mut out);
        }
        Transfer::InputToGuest | Transfer::KernelToGuest => {
            guest_address32(&mut out);
            kernel_address(&mut out);
        }
    }
    bytes(&mut out);
    out.push(I::I32WrapI64);
    out.push(match it.transfer {
        Transfer::GuestToKernel => I::MemoryCopy {
            src_mem: it.guest_memory,
            dst_mem: f.kernel.memory,
        },
        _ => I::MemoryCopy {
            src_mem: f.kernel.memory,
            dst_mem: it.guest_memory,
        },
    });
    // Stores raise the kernel's clean mark to the end of what they wrote (kernel.wat).
    if it.transfer == Transfer::GuestToKernel {
        let end = |out: &mut Vec<Instruction<'static>>| {
            push(&it.kernel_at, out);
            bytes(out);
            out.push(I::I64Add);
        };
        end(&mut out);
        out.extend([
            I::GlobalGet(f.kernel.clean),
            I::I64GtU,
            I::If(BlockType::Empty),
        ]);
        end(&mut out);
        out.extend([I::GlobalSet(f.kernel.clean), I::End]);
    }
    for &(local, step, width) in &it.steps {
        match width {
            Width::I32 => out.extend([
                I::LocalGet(local),
                I::LocalGet(n),
                I::I32WrapI64,
                I::I32Const(step as i32),
                I::I32Mul,
                I::I32Add,
                I::LocalSet(local),
            ]),
            Width::I64 => out.extend([
                I::LocalGet(local),
                I::LocalGet(n),
                I::I64Const(step),
                I::I64Mul,
                I::I64Add,
                I::LocalSet(local),
            ]),
        }
    }
    out.push(I::Else);
    Some(out)
}
