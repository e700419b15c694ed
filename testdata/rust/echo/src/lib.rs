//! echo: input/output and allocator exercises.
use extism_pdk::memory::internal::memory_alloc;
use extism_pdk::*;

/// Output = input bytes (input copied in with input_load_u64/input_load_u8,
/// copied out to a new block with alloc/store_u64/store_u8, then output_set).
#[plugin_fn]
pub fn echo(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(input)
}

/// Reads the whole input, produces no output.
#[plugin_fn]
pub fn consume(input: Vec<u8>) -> FnResult<()> {
    core::hint::black_box(&input);
    Ok(())
}

/// Outputs the input length in bytes as a decimal string.
#[plugin_fn]
pub fn length(input: Vec<u8>) -> FnResult<String> {
    Ok(input.len().to_string())
}

const ITERATIONS: usize = 10_000;
const SIZES: [u64; 6] = [1, 16, 100, 1000, 4096, 65536];

/// 10 000 alloc/free pairs of mixed sizes. Each block stays alive until the
/// next block has been allocated, then it is freed. Every block is checked:
/// non-zero handle, `length(handle) == size`, no overlap with the block that
/// is still alive, and its first and last byte can be written and read back.
#[plugin_fn]
pub fn alloc_bench() -> FnResult<String> {
    let mut prev: Option<Memory> = None;
    for i in 0..ITERATIONS {
        let size = SIZES[i % SIZES.len()];
        let mem = Memory(memory_alloc(size));
        let off = mem.offset();
        if off == 0 {
            return Err(Error::msg(format!(
                "alloc_bench: alloc({size}) returned 0 at iteration {i}"
            ))
            .into());
        }
        let len = Memory::find(off).map(|m| m.len() as u64).unwrap_or(0);
        if len != size {
            return Err(Error::msg(format!(
                "alloc_bench: length({off}) = {len}, expected {size} at iteration {i}"
            ))
            .into());
        }
        if let Some(p) = &prev {
            let (ps, pe) = (p.offset(), p.offset() + p.len() as u64);
            if off < pe && ps < off + size {
                return Err(Error::msg(format!(
                    "alloc_bench: block {off}+{size} overlaps live block {ps}+{} at iteration {i}",
                    p.len()
                ))
                .into());
            }
        }
        let (a, b) = (i as u8, (i as u8).wrapping_mul(7).wrapping_add(1));
        unsafe {
            extism::store_u8(off, a);
            extism::store_u8(off + size - 1, b);
            let (ra, rb) = (extism::load_u8(off), extism::load_u8(off + size - 1));
            if (size > 1 && (ra, rb) != (a, b)) || (size == 1 && rb != b) {
                return Err(Error::msg(format!(
                    "alloc_bench: read back mismatch in block {off}+{size} at iteration {i}"
                ))
                .into());
            }
        }
        if let Some(p) = prev.take() {
            p.free();
        }
        prev = Some(mem);
    }
    if let Some(p) = prev.take() {
        p.free();
    }
    Ok(ITERATIONS.to_string())
}

const LIVE_SIZES: [u64; 6] = [1, 8, 16, 100, 256, 1000];

/// The kernel workload of spec/kernel.md §10.1: 10 000 allocations of mixed sizes in one call
/// with many blocks live at once. Every third step frees a block from the middle of the live
/// set (leaving holes for later allocations to reuse); the rest stay live until the end (up to
/// 6 667 at once) and are then freed: 10 000 alloc/free pairs in all. Every block is checked
/// (non-zero handle, `length(handle) == size`) and its first and last byte written.
#[plugin_fn]
pub fn alloc_live() -> FnResult<String> {
    let mut live: Vec<Memory> = Vec::with_capacity(ITERATIONS);
    for i in 0..ITERATIONS {
        let size = LIVE_SIZES[i % LIVE_SIZES.len()];
        let mem = Memory(memory_alloc(size));
        let off = mem.offset();
        if off == 0 {
            return Err(Error::msg(format!(
                "alloc_live: alloc({size}) returned 0 at iteration {i}"
            ))
            .into());
        }
        let len = Memory::find(off).map(|m| m.len() as u64).unwrap_or(0);
        if len != size {
            return Err(Error::msg(format!(
                "alloc_live: length({off}) = {len}, expected {size} at iteration {i}"
            ))
            .into());
        }
        unsafe {
            extism::store_u8(off, i as u8);
            extism::store_u8(off + size - 1, (i as u8).wrapping_add(1));
        }
        live.push(mem);
        if i % 3 == 2 {
            let middle = live.len() / 2;
            live.swap_remove(middle).free();
        }
    }
    for m in live {
        m.free();
    }
    Ok(ITERATIONS.to_string())
}
