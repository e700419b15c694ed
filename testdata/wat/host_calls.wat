;; Benchmark plugin (benches/runtime.rs `host_call`): each export makes 1000 calls of one kind,
;; so the difference to `baseline` (1000 calls of a local function) is what 1000 host calls
;; add. Key and result handles are 0 (the empty key, absent value), so no guest code runs
;; besides the loop.
(module
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  (import "extism:host/user" "noop" (func $noop (result i64)))
  (memory (export "memory") 1)
  (global $sink (mut i64) (i64.const 0))

  (func $local (result i64) (global.get $sink))

  (func (export "baseline") (result i32)
    (local $i i32)
    (loop $l
      (global.set $sink (call $local))
      (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 1000))))
    (i32.const 0))

  (func (export "user_noop") (result i32)
    (local $i i32)
    (loop $l
      (global.set $sink (call $noop))
      (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 1000))))
    (i32.const 0))

  (func (export "config_get") (result i32)
    (local $i i32)
    (loop $l
      (global.set $sink (call $config_get (i64.const 0)))
      (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 1000))))
    (i32.const 0))

  (func (export "var_get") (result i32)
    (local $i i32)
    (loop $l
      (global.set $sink (call $var_get (i64.const 0)))
      (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 1000))))
    (i32.const 0))
)
