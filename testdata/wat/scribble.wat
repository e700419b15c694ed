;; scribble: leaves traces everywhere a plugin's memories can hold them, and reports what an
;; earlier plugin left. Freed plugins' instance slots are reused, with the pages a plugin wrote
;; reset in place (src/engine.rs, KEEP_RESIDENT); every new plugin must still start pristine.
;;
;; Export `scribble` (no input) outputs 16 bytes: the counter at address 16 after adding 1
;; (its data segment holds 41, so always 42 in a new plugin), then the OR of everything found
;; that a new plugin must not see: the first word of each of the 64 initial pages (all zero
;; but for the counter's page), memory grown by an earlier plugin and what it wrote there, and
;; blocks of the kernel that an earlier plugin allocated. Then it writes -1 into every page, grows memory by a page
;; and writes there, and allocates two kernel blocks before the output's.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 4)
  (data (i32.const 16) "\29")
  (func (export "scribble") (result i32)
    (local $p i32) (local $dirt i64) (local $h i64)
    ;; the guest's memory
    (if (i32.ne (memory.size) (i32.const 4))
      (then (local.set $dirt (i64.const 1))))
    (local.set $p (i32.const 0))
    (block $done (loop $pages
      (br_if $done (i32.ge_u (local.get $p) (i32.const 262144)))
      (local.set $dirt (i64.or (local.get $dirt) (i64.load (local.get $p))))
      (i64.store (local.get $p) (i64.const -1))
      (local.set $p (i32.add (local.get $p) (i32.const 4096)))
      (br $pages)))
    (i32.store (i32.const 16) (i32.add (i32.load (i32.const 16)) (i32.const 1)))
    (drop (memory.grow (i32.const 1)))
    (local.set $dirt (i64.or (local.get $dirt) (i64.load (i32.const 262144))))
    (i64.store (i32.const 262144) (i64.const -1))
    ;; the kernel's: no block exists before this call allocates one, and fresh blocks are zero
    (local.set $dirt (i64.or (local.get $dirt) (call $length (i64.const 128))))
    (local.set $dirt (i64.or (local.get $dirt) (call $length (i64.const 144))))
    (local.set $h (call $alloc (i64.const 16)))
    (local.set $dirt (i64.or (local.get $dirt) (call $load_u64 (local.get $h))))
    (call $store_u64 (local.get $h) (i64.const -1))
    (local.set $h (call $alloc (i64.const 40000)))
    (local.set $dirt (i64.or (local.get $dirt) (call $load_u64 (i64.add (local.get $h) (i64.const 39992)))))
    (call $store_u64 (i64.add (local.get $h) (i64.const 39992)) (i64.const -1))
    (local.set $h (call $alloc (i64.const 16)))
    (call $store_u64 (local.get $h) (i64.extend_i32_u (i32.load (i32.const 16))))
    (call $store_u64 (i64.add (local.get $h) (i64.const 8)) (local.get $dirt))
    (call $output_set (local.get $h) (i64.const 16))
    (i32.const 0)))
