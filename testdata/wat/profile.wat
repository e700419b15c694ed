;; A plugin with known nested functions, for profiles (tests/profile.rs, tests/cli.rs).
;; `run`: `hot` is called by `three_parts` with 3 shares of work and by `one_part` with 1,
;; in turns, so a profile shows them at about 3:1 even when the machine's load changes. `deep`: `descend` recurses 100 frames deep before
;; spinning (stacks deeper than wasmtime's default backtrace limit of 20). `host_and_kernel`:
;; alternates host calls (`get_log_level`) and kernel calls (`alloc`/`free`). `quick`: one share
;; of work. `forever`: never returns (for timeouts).
(module
  (import "extism:host/env" "get_log_level" (func $get_log_level (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (memory (export "memory") 1)

  ;; One share of work: 2^20 loop iterations, `n` times.
  (func $hot (param $n i32)
    (local $i i32)
    (loop $outer
      (local.set $i (i32.const 0x100000))
      (loop $inner
        (br_if $inner (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
      (br_if $outer (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))

  (func $three_parts (call $hot (i32.const 3)))
  (func $one_part (call $hot (i32.const 1)))

  (func $run (export "run") (result i32)
    (local $turns i32)
    (local.set $turns (i32.const 40))
    (loop $l
      (call $three_parts)
      (call $one_part)
      (br_if $l (local.tee $turns (i32.sub (local.get $turns) (i32.const 1)))))
    (i32.const 0))

  (func $quick (export "quick") (result i32)
    (call $hot (i32.const 1))
    (i32.const 0))

  (func $descend (param $depth i32)
    (if (i32.eqz (local.get $depth))
      (then (call $hot (i32.const 40)) (return)))
    (call $descend (i32.sub (local.get $depth) (i32.const 1))))

  (func $deep (export "deep") (result i32)
    (call $descend (i32.const 100))
    (i32.const 0))

  (func $host_and_kernel (export "host_and_kernel") (result i32)
    (local $i i32)
    (local.set $i (i32.const 2000))
    (loop $l
      (drop (call $get_log_level))
      (call $free (call $alloc (i64.const 64)))
      (br_if $l (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
    (i32.const 0))

  (func $forever (export "forever") (result i32)
    (loop $l (br $l))
    (i32.const 0)))
