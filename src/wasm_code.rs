//! Instruction sequences shared by the passes that write code into kernel-linked modules
//! (kernel_link.rs, copy_loop.rs, small_copy.rs). Only builds instructions.

use wasm_encoder::Instruction;

/// Pushes the size of `memory` (a 32-bit memory) in bytes, as an i64.
pub(crate) fn memory_bytes(memory: u32) -> [Instruction<'static>; 4] {
    [
        Instruction::MemorySize(memory),
        Instruction::I64ExtendI32U,
        Instruction::I64Const(16),
        Instruction::I64Shl,
    ]
}
