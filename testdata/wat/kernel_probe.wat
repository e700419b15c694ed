;; kernel_probe: runs one kernel operation chosen by the input, so that tests can compare the
;; kernel linked into a guest (src/kernel_link.rs, with load/store/input calls inlined) against
;; the kernel as an instance of its own (what plugins of several modules use).
;;
;; Input: three u64 (little-endian) read with input_load_u64 at 0, 8 and 16: op, a, b.
;; Output: 8 bytes, the u64 result (little-endian).
;;   op 0  input_load_u8(a)        op 1  input_load_u64(a)
;;   op 2  load_u8(a)              op 3  load_u64(a)
;;   op 4  store_u8(a, b); load_u8(a)
;;   op 5  store_u64(a, b); load_u64(a)
;;   op 6  memory_bytes()          op 7  input_length()      op 8  input_offset()
;;   op 9  alloc(a); load_u64(b)   (fresh space must read as zero)
;;   op 10 the same kernel calls made through a table (call_indirect): load_u64(a)
(module
  (type $load64 (func (param i64) (result i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (type $load64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "load_u64" (func $load_u64 (type $load64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "memory_bytes" (func $memory_bytes (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (table 1 funcref)
  (elem (i32.const 0) func $load_u64)

  (func $out (param $v i64) (result i32)
    (local $h i64)
    (local.set $h (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $h) (local.get $v))
    (call $output_set (local.get $h) (i64.const 8))
    (i32.const 0))

  (func (export "probe") (result i32)
    (local $op i64) (local $a i64) (local $b i64)
    (local.set $op (call $input_load_u64 (i64.const 0)))
    (local.set $a (call $input_load_u64 (i64.const 8)))
    (local.set $b (call $input_load_u64 (i64.const 16)))
    (block $bad
      (block $10 (block $9 (block $8 (block $7 (block $6 (block $5 (block $4 (block $3
      (block $2 (block $1 (block $0
        (br_table $0 $1 $2 $3 $4 $5 $6 $7 $8 $9 $10 $bad (i32.wrap_i64 (local.get $op))))
        (return (call $out (i64.extend_i32_u (call $input_load_u8 (local.get $a))))))
        (return (call $out (call $input_load_u64 (local.get $a)))))
        (return (call $out (i64.extend_i32_u (call $load_u8 (local.get $a))))))
        (return (call $out (call $load_u64 (local.get $a)))))
        (call $store_u8 (local.get $a) (i32.wrap_i64 (local.get $b)))
        (return (call $out (i64.extend_i32_u (call $load_u8 (local.get $a))))))
        (call $store_u64 (local.get $a) (local.get $b))
        (return (call $out (call $load_u64 (local.get $a)))))
        (return (call $out (call $memory_bytes))))
        (return (call $out (call $input_length))))
        (return (call $out (call $input_offset))))
        (drop (call $alloc (local.get $a)))
        (return (call $out (call $load_u64 (local.get $b)))))
        (return (call $out (call_indirect (type $load64) (local.get $a) (i32.const 0)))))
    (i32.const 1))
)
