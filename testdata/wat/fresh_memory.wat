;; fresh_memory: checks that the kernel's fresh blocks read as zero after calls that stopped
;; while the host had written into fresh space (tests/limits.rs).
;;   echo           the input as output (its own block)
;;   burn_then_get  burns fuel for as many rounds as the input's u64 says, then reads config "v"
;;   zeros          "1" when a fresh block of as many bytes as the input's u64 says reads as
;;                  zero, else "0"
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)

  (func (export "echo") (result i32)
    (call $output_set (call $input_offset) (call $input_length))
    (i32.const 0))

  (func (export "burn_then_get") (result i32) (local $i i64) (local $k i64)
    (local.set $i (call $input_load_u64 (i64.const 0)))
    (block $done (loop $burn
      (br_if $done (i64.eqz (local.get $i)))
      (local.set $i (i64.sub (local.get $i) (i64.const 1)))
      (br $burn)))
    (local.set $k (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $k) (i32.const 118))
    (drop (call $config_get (local.get $k)))
    (i32.const 0))

  (func (export "zeros") (result i32) (local $n i64) (local $h i64) (local $i i64) (local $ok i32)
    (local.set $n (call $input_load_u64 (i64.const 0)))
    (local.set $h (call $alloc (local.get $n)))
    (local.set $ok (i32.const 49))
    (loop $l
      (if (call $load_u8 (i64.add (local.get $h) (local.get $i)))
        (then (local.set $ok (i32.const 48))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (local.get $n))))
    (local.set $h (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $h) (local.get $ok))
    (call $output_set (local.get $h) (i64.const 1))
    (i32.const 0)))
