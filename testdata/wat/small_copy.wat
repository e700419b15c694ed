;; small_copy: one memory.copy with destination, source and length from the input, so that
;; tests can compare the kernel linked into a guest (src/kernel_link.rs, where
;; src/small_copy.rs inlines short copies) against the kernel as an instance of its own (the
;; guest's memory.copy as it is).
;;
;; Input: u64 dst, src, len (little-endian, read with input_load_u64 at 0, 8 and 16).
;; Output: 8 bytes, a checksum of guest memory (one page, filled with a pattern first).
;; `sum`: the checksum of guest memory as it is (what a trapped copy left behind).
;; `copy_constant`: the same with a length of 8 written as a constant, which is left to
;; wasmtime (it expands short constant copies itself), so the module has one inlined copy.
(module
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)

  (func (export "copy") (result i32)
    (local $i i32)
    ;; guest memory [0, 64 KiB) := bytes i * 7 + 3
    (loop $fill
      (i32.store8 (local.get $i) (i32.add (i32.mul (local.get $i) (i32.const 7)) (i32.const 3)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 65536))))
    (memory.copy
      (i32.wrap_i64 (call $input_load_u64 (i64.const 0)))
      (i32.wrap_i64 (call $input_load_u64 (i64.const 8)))
      (i32.wrap_i64 (call $input_load_u64 (i64.const 16))))
    (call $sum))

  (func (export "copy_constant") (result i32)
    (memory.copy
      (i32.wrap_i64 (call $input_load_u64 (i64.const 0)))
      (i32.wrap_i64 (call $input_load_u64 (i64.const 8)))
      (i32.const 8))
    (call $sum))

  (func $sum (export "sum") (result i32)
    (local $i i32) (local $s i64) (local $h i64)
    (loop $sum
      (local.set $s (i64.xor (i64.rotl (local.get $s) (i64.const 5)) (i64.load (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br_if $sum (i32.lt_u (local.get $i) (i32.const 65536))))
    (local.set $h (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $h) (local.get $s))
    (call $output_set (local.get $h) (i64.const 8))
    (i32.const 0))
)
