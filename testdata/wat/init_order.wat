;; Records which initialisers ran: __wasm_call_ctors wins over _initialize (guest-abi.md §12.3),
;; and it runs exactly once per instance. `get` outputs the log as ASCII digits:
;; 1 = __wasm_call_ctors, 2 = _initialize.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (func $record (param $what i32)
    (i32.store8 (global.get $n) (local.get $what))
    (global.set $n (i32.add (global.get $n) (i32.const 1))))
  (func (export "__wasm_call_ctors") (call $record (i32.const 49)))
  (func (export "_initialize") (call $record (i32.const 50)))
  (func (export "get") (result i32)
    (local $h i64) (local $i i32)
    (local.set $h (call $alloc (i64.extend_i32_u (global.get $n))))
    (block $done (loop $copy
      (br_if $done (i32.ge_u (local.get $i) (global.get $n)))
      (call $store_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))
                      (i32.load8_u (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $copy)))
    (call $output_set (local.get $h) (i64.extend_i32_u (global.get $n)))
    (i32.const 0)))
