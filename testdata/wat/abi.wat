;; Hand-written plugin for guest ABI edge cases. Exports are named for the behaviour they show;
;; tests/abi.rs says what each must produce.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 0) "guest failure")      ;; 13 bytes at 0
  (data (i32.const 16) "key")               ;; 3 bytes at 16
  (data (i32.const 32) "total")             ;; 5 bytes at 32
  (data (i32.const 48) "\ffbad")             ;; 4 bytes at 48, not UTF-8

  ;; copies len bytes at ptr of this module's memory into a new kernel block
  (func $block (param $ptr i32) (param $len i32) (result i64)
    (local $h i64) (local $i i32)
    (local.set $h (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done (loop $copy
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))
                      (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $copy)))
    (local.get $h))

  ;; outputs the decimal digits of n (n < 10^9 is plenty here)
  (func $out_u32 (param $n i32)
    (local $h i64) (local $len i32) (local $m i32) (local $i i32)
    (local.set $m (local.get $n))
    (local.set $len (i32.const 1))
    (block $d (loop $count
      (br_if $d (i32.lt_u (local.get $m) (i32.const 10)))
      (local.set $m (i32.div_u (local.get $m) (i32.const 10)))
      (local.set $len (i32.add (local.get $len) (i32.const 1)))
      (br $count)))
    (local.set $h (call $alloc (i64.extend_i32_u (local.get $len))))
    (local.set $i (local.get $len))
    (loop $digits
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (call $store_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))
                      (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digits (i32.gt_u (local.get $i) (i32.const 0))))
    (call $output_set (local.get $h) (i64.extend_i32_u (local.get $len))))

  (func (export "rc_7") (result i32) (i32.const 7))
  (func (export "unit"))
  (func (export "trap") (result i32) unreachable)
  (func (export "divide_by_zero") (result i32) (i32.div_u (i32.const 1) (i32.const 0)))
  (func (export "recurse") (result i32) (call $recurse (i32.const 0)))
  (func $recurse (param i32) (result i32)
    (call $recurse (i32.add (local.get 0) (i32.const 1))))

  ;; error_set with a live block and a return code of 0: still a failure
  (func (export "error_rc0") (result i32)
    (call $error_set (call $block (i32.const 0) (i32.const 13)))
    (i32.const 0))
  (func (export "error_rc5") (result i32)
    (call $error_set (call $block (i32.const 0) (i32.const 13)))
    (i32.const 5))
  ;; error_set with an offset inside a block that is not its start: empty message
  (func (export "error_not_block") (result i32)
    (call $error_set (i64.add (call $alloc (i64.const 64)) (i64.const 16)))
    (i32.const 3))
  ;; an error message that is not UTF-8
  (func (export "error_bytes") (result i32)
    (call $error_set (call $block (i32.const 48) (i32.const 4)))
    (i32.const 1))
  (func (export "error_then_trap") (result i32)
    (call $error_set (call $block (i32.const 0) (i32.const 13)))
    unreachable)
  ;; set, then clear with error_set(0)
  (func (export "error_cleared") (result i32)
    (call $error_set (call $block (i32.const 0) (i32.const 13)))
    (call $error_set (i64.const 0))
    (i32.const 0))

  ;; output = the input block itself, no copy
  (func (export "echo_input") (result i32)
    (call $output_set (call $input_offset) (call $input_length))
    (i32.const 0))
  ;; output = the 8 bytes input_load_u64(0) returned (0 for inputs shorter than 8 bytes)
  (func (export "input_word") (result i32)
    (local $h i64)
    (local.set $h (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $h) (call $input_load_u64 (i64.const 0)))
    (call $output_set (local.get $h) (i64.const 8))
    (i32.const 0))
  ;; output_set(0,0) does not clear an earlier output
  (func (export "output_null_ignored") (result i32)
    (call $output_set (call $block (i32.const 16) (i32.const 3)) (i64.const 3))
    (call $output_set (i64.const 0) (i64.const 0))
    (i32.const 0))
  ;; an out-of-range output_set is ignored: the output stays empty
  (func (export "output_out_of_range") (result i32)
    (call $output_set (i64.const 0xffff_ffff_0000) (i64.const 16))
    (i32.const 0))
  ;; freeing the input block zeroes input_length
  (func (export "free_input") (result i32)
    (call $free (call $input_offset))
    (call $out_u32 (i32.wrap_i64 (call $input_length)))
    (i32.const 0))

  ;; old-PDK behaviour: free the key again after config_get; the value must stay live
  (func (export "config_double_free") (result i32)
    (local $k i64) (local $v i64)
    (local.set $k (call $block (i32.const 16) (i32.const 3)))
    (local.set $v (call $config_get (local.get $k)))
    (call $free (local.get $k))
    (if (i64.eqz (local.get $v)) (then (return (i32.const 1))))
    (call $output_set (local.get $v) (call $length (local.get $v)))
    (i32.const 0))
  (func (export "config_bad_handle") (result i32)
    (drop (call $config_get (i64.const 0xdead_beef)))
    (i32.const 0))
  (func (export "var_bad_handle") (result i32)
    (drop (call $var_get (i64.const 12345)))
    (i32.const 0))
  ;; stores the input under var "total"
  (func (export "var_store") (result i32)
    (call $var_set (call $block (i32.const 32) (i32.const 5)) (call $input_offset))
    (i32.const 0))
  (func (export "var_load") (result i32)
    (local $v i64)
    (local.set $v (call $var_get (call $block (i32.const 32) (i32.const 5))))
    (call $output_set (local.get $v) (call $length (local.get $v)))
    (i32.const 0))
  (func (export "log_bad_handle") (result i32)
    (call $log_info (i64.const 0xdead_beef))
    (i32.const 0))

  ;; reads out of kernel bounds return 0 instead of trapping
  (func (export "load_oob") (result i32)
    (if (i64.ne (call $load_u64 (i64.const -1)) (i64.const 0)) (then (return (i32.const 1))))
    (if (i64.ne (call $load_u64 (i64.const 0xffff_fff8)) (i64.const 0)) (then (return (i32.const 2))))
    (call $store_u64 (i64.const -4) (i64.const 7))
    (i32.const 0))

  ;; instance state persists across calls
  (func (export "count") (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (call $out_u32 (global.get $calls))
    (i32.const 0))
  ;; a WASI-style command entry point: the instance is rebuilt after it is called
  (func (export "_start")
    (global.set $calls (i32.add (global.get $calls) (i32.const 100))))

  ;; grows this module's memory by the input's first byte in pages; outputs memory.grow's result
  (func (export "grow") (result i32)
    (local $r i32)
    (local.set $r (memory.grow (i32.wrap_i64 (i64.and (call $input_load_u64 (i64.const 0)) (i64.const 0xff)))))
    (call $out_u32 (i32.add (local.get $r) (i32.const 1)))
    (i32.const 0))
  ;; allocates the input's decimal value... kept simple: allocates 2^k kernel bytes, k = first input byte
  (func (export "kernel_alloc_pow2") (result i32)
    (local $h i64)
    (local.set $h (call $alloc (i64.shl (i64.const 1)
      (i64.and (call $input_load_u64 (i64.const 0)) (i64.const 0xff)))))
    (call $out_u32 (i64.ne (local.get $h) (i64.const 0)))
    (i32.const 0))

  (func (export "takes_params") (param i32) (result i32) (i32.const 0))
  (func (export "two_results") (result i32 i32) (i32.const 0) (i32.const 0))
  (func (export "i64_result") (result i64) (i64.const 0))
  (global (export "not_a_function") i32 (i32.const 0)))
