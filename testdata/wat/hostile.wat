;; A hostile plugin: forged and out-of-range handles, enormous lengths and memory bombs. Every
;; export returns 0 when the runtime answered as it must without trapping; the ones that must
;; trap say so in tests/hostile.rs.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "length_unsafe" (func $length_unsafe (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "input_set" (func $input_set (param i64 i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
  (import "extism:host/env" "log_error" (func $log_error (param i64)))
  (memory 1)
  (global $forged i32 (i32.const 8))
  ;; offsets a hostile guest might try: past the end, wrapping, inside a block, huge
  (data (i32.const 0)
    "\ff\ff\ff\ff\ff\ff\ff\ff"   ;; u64::MAX
    "\f9\ff\ff\ff\ff\ff\ff\ff"   ;; u64::MAX - 6
    "\00\00\00\00\01\00\00\00"   ;; 2^32
    "\01\00\00\00\00\00\00\00"   ;; 1
    "\00\00\00\80\00\00\00\00"   ;; 2^31
    "\00\00\10\00\00\00\00\00"   ;; 1 MiB (end of the kernel's initial memory)
    "\f8\ff\0f\00\00\00\00\00"   ;; 1 MiB - 8
    "\00\00\00\00\00\00\00\80")  ;; 2^63
  (func $each (param $i i32) (result i64) (i64.load (i32.mul (local.get $i) (i32.const 8))))

  ;; kernel functions given forged offsets never trap and answer 0 / ignore
  (func (export "kernel_forged") (result i32)
    (local $i i32) (local $p i64) (local $h i64)
    (local.set $h (call $alloc (i64.const 100)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (global.get $forged)))
      (local.set $p (call $each (local.get $i)))
      (if (i64.ne (call $length (local.get $p)) (i64.const 0)) (then (return (i32.const 1))))
      (drop (call $length_unsafe (local.get $p)))
      (drop (call $load_u8 (local.get $p)))
      (drop (call $load_u64 (local.get $p)))
      (call $store_u8 (local.get $p) (i32.const 1))
      (call $store_u64 (local.get $p) (i64.const -1))
      (drop (call $input_load_u8 (local.get $p)))
      (if (i64.ne (call $input_load_u64 (local.get $p)) (i64.const 0)) (then (return (i32.const 2))))
      (call $free (local.get $p))
      (call $input_set (local.get $p) (i64.const -1))
      (call $output_set (local.get $p) (i64.const -1))
      (call $error_set (i64.add (local.get $p) (i64.const 4096)))
      (call $error_set (i64.const 0))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    ;; a handle one past a block start, and one inside it
    (if (i64.ne (call $length (i64.add (local.get $h) (i64.const 1))) (i64.const 0)) (then (return (i32.const 3))))
    (call $free (i64.add (local.get $h) (i64.const 16)))
    (if (i64.ne (call $length (local.get $h)) (i64.const 100)) (then (return (i32.const 4))))
    ;; double free is harmless
    (call $free (local.get $h))
    (call $free (local.get $h))
    (if (i64.ne (call $length (local.get $h)) (i64.const 0)) (then (return (i32.const 5))))
    ;; enormous allocations fail with 0
    (if (i64.ne (call $alloc (i64.const -1)) (i64.const 0)) (then (return (i32.const 6))))
    (if (i64.ne (call $alloc (i64.const 0x1_0000_0000)) (i64.const 0)) (then (return (i32.const 7))))
    (i32.const 0))

  ;; output and error pointing outside memory are ignored: the call succeeds with no output
  (func (export "output_outside") (result i32)
    (call $output_set (i64.const 0xffff_fff0) (i64.const 64))
    (call $output_set (i64.const 8) (i64.const -1))
    (call $error_set (i64.const 0x7fff_ffff_ffff))
    (i32.const 0))

  ;; host functions given forged handles trap (one export each)
  (func (export "config_forged") (result i32) (drop (call $config_get (i64.const -1))) (i32.const 0))
  (func (export "var_get_forged") (result i32) (drop (call $var_get (i64.const 0x1_0000_0000))) (i32.const 0))
  (func (export "var_set_forged") (result i32)
    (call $var_set (call $alloc (i64.const 1)) (i64.const 99999)) (i32.const 0))
  (func (export "http_forged") (result i32) (drop (call $http_request (i64.const 77) (i64.const 0))) (i32.const 0))
  (func (export "log_forged") (result i32) (call $log_error (i64.const -8)) (i32.const 0))

  ;; grows its own memory until refused
  (func (export "memory_bomb") (result i32)
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 256)) (i32.const -1))))
    (i32.const 0))
  ;; allocates kernel memory until refused
  (func (export "kernel_bomb") (result i32)
    (loop $more (br_if $more (i64.ne (call $alloc (i64.const 0x100000)) (i64.const 0))))
    (i32.const 0)))
