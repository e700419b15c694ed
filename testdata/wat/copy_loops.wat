;; copy_loops: the copy loops of the Rust PDK (one kernel call per 8 bytes), with their
;; addresses, offsets and counts taken from the input, so that tests can compare the kernel
;; linked into a guest (src/kernel_link.rs, where src/copy_loop.rs turns such loops into bulk
;; copies when every iteration would succeed) against the kernel as an instance of its own.
;;
;; Input: u64 a, b, c (little-endian, read with input_load_u64 at 0, 8 and 16), then any bytes.
;; Output: 32 bytes: the loop's final counters and a checksum of what it wrote.
;;   to_kernel    store_u64 loop, counting down: kernel offset a, guest address b, c times
;;                (the Rust PDK's output and host-argument writer)
;;   from_kernel  load_u64 loop, counting down: kernel offset a, guest address b, c times
;;                (its reader of host-made blocks); kernel memory holds a pattern first
;;   from_input   input_load_u64 loop up to a bound: guest address b, input index a, until
;;                the index equals c (its input reader)
;;   to_kernel_up, from_kernel_i32, to_kernel_until: as to_kernel / from_kernel, with the
;;                other loop shapes the linker accepts (count up, 32-bit counter, pointer bound)
;; Guest memory is one page holding a pattern, so a runaway loop traps at its end. Each export
;; is meant for a new plugin: the kernel's clean mark (kernel.wat) depends on earlier calls.
(module
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "memory_bytes" (func $memory_bytes (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)

  ;; guest memory [0, 64 KiB) := bytes i * 7 + 3
  (func $pattern
    (local $i i32)
    (loop $l
      (i32.store8 (local.get $i) (i32.add (i32.mul (local.get $i) (i32.const 7)) (i32.const 3)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 65536)))))

  ;; a checksum of guest memory (xor and rotate: not a copy loop)
  (func $guest_sum (result i64)
    (local $i i32) (local $s i64)
    (loop $l
      (local.set $s (i64.xor (i64.rotl (local.get $s) (i64.const 5)) (i64.load (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 65536))))
    (local.get $s))

  ;; a checksum of kernel memory [from, from + 8 * n), n capped at 16384 (not a copy loop)
  (func $kernel_sum (param $from i64) (param $n i64) (result i64)
    (local $s i64)
    (if (i64.gt_u (local.get $n) (i64.const 16384)) (then (local.set $n (i64.const 16384))))
    (if (i64.eqz (local.get $n)) (then (return (i64.const 0))))
    (loop $l
      (local.set $s (i64.xor (i64.rotl (local.get $s) (i64.const 5))
                             (call $load_u64 (local.get $from))))
      (local.set $from (i64.add (local.get $from) (i64.const 8)))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br_if $l (i64.ne (local.get $n) (i64.const 0))))
    (local.get $s))

  ;; kernel memory [0, 64 KiB) := bytes i * 5 + 1, written byte by byte (not a copy loop)
  (func $kernel_pattern
    (local $i i64)
    (loop $fill
      (call $store_u8 (local.get $i) (i32.add (i32.mul (i32.wrap_i64 (local.get $i)) (i32.const 5)) (i32.const 1)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $fill (i64.lt_u (local.get $i) (i64.const 65536)))))

  ;; output := four u64
  (func $out (param i64 i64 i64 i64) (result i32)
    (local $h i64)
    (local.set $h (call $alloc (i64.const 32)))
    (call $store_u64 (local.get $h) (local.get 0))
    (call $store_u64 (i64.add (local.get $h) (i64.const 8)) (local.get 1))
    (call $store_u64 (i64.add (local.get $h) (i64.const 16)) (local.get 2))
    (call $store_u64 (i64.add (local.get $h) (i64.const 24)) (local.get 3))
    (call $output_set (local.get $h) (i64.const 32))
    (i32.const 0))

  ;; The shape rustc gives the PDK's `Memory::store` loop.
  (func (export "to_kernel") (result i32)
    (local $k i64) (local $g i32) (local $n i64) (local $k0 i64) (local $n0 i64) (local $fresh i64) (local $sum i64)
    (call $pattern)
    (local.set $k (call $input_load_u64 (i64.const 0)))
    (local.set $g (i32.wrap_i64 (call $input_load_u64 (i64.const 8))))
    (local.set $n (call $input_load_u64 (i64.const 16)))
    (local.set $k0 (local.get $k))
    (local.set $n0 (local.get $n))
    loop
      local.get $k
      local.get $g
      i64.load
      call $store_u64
      local.get $k
      i64.const 8
      i64.add
      local.set $k
      local.get $g
      i32.const 8
      i32.add
      local.set $g
      local.get $n
      i64.const -1
      i64.add
      local.tee $n
      i64.const 0
      i64.ne
      br_if 0
    end
    (local.set $sum (call $kernel_sum (local.get $k0) (local.get $n0)))
    ;; fresh space handed out now must read as zero wherever the loop wrote
    (local.set $fresh (call $alloc (i64.const 4096)))
    (call $out (local.get $k) (i64.extend_i32_u (local.get $g))
      (i64.xor (local.get $n) (call $kernel_sum (local.get $fresh) (i64.const 512)))
      (local.get $sum)))

  ;; The shape rustc gives the PDK's `Memory::load` loop.
  (func (export "from_kernel") (result i32)
    (local $k i64) (local $g i32) (local $n i64)
    (call $pattern)
    (local.set $k (call $input_load_u64 (i64.const 0)))
    (local.set $g (i32.wrap_i64 (call $input_load_u64 (i64.const 8))))
    (local.set $n (call $input_load_u64 (i64.const 16)))
    ;; after reading the input: the pattern covers the input's block
    (call $kernel_pattern)
    loop
      local.get $g
      local.get $k
      call $load_u64
      i64.store
      local.get $k
      i64.const 8
      i64.add
      local.set $k
      local.get $g
      i32.const 8
      i32.add
      local.set $g
      local.get $n
      i64.const -1
      i64.add
      local.tee $n
      i64.const 0
      i64.ne
      br_if 0
    end
    (call $out (local.get $k) (i64.extend_i32_u (local.get $g)) (local.get $n) (call $guest_sum)))

  ;; The shape rustc gives the PDK's input reader.
  (func (export "from_input") (result i32)
    (local $i i64) (local $g i32) (local $end i64)
    (call $pattern)
    (local.set $i (call $input_load_u64 (i64.const 0)))
    (local.set $g (i32.wrap_i64 (call $input_load_u64 (i64.const 8))))
    (local.set $end (call $input_load_u64 (i64.const 16)))
    loop
      local.get $g
      local.get $i
      call $input_load_u64
      i64.store offset=8
      local.get $g
      i32.const 8
      i32.add
      local.set $g
      local.get $end
      local.get $i
      i64.const 8
      i64.add
      local.tee $i
      i64.ne
      br_if 0
    end
    (call $out (local.get $i) (i64.extend_i32_u (local.get $g)) (local.get $end) (call $guest_sum)))

  ;; The other shapes src/copy_loop.rs accepts, with the same inputs as the loops above.

  ;; store_u64 loop counting up with a counter of its own (i + 1 != c), reading the guest
  ;; through a static offset.
  (func (export "to_kernel_up") (result i32)
    (local $k i64) (local $g i32) (local $n i64) (local $i i64) (local $k0 i64) (local $fresh i64) (local $sum i64)
    (call $pattern)
    (local.set $k (call $input_load_u64 (i64.const 0)))
    (local.set $g (i32.wrap_i64 (call $input_load_u64 (i64.const 8))))
    (local.set $n (call $input_load_u64 (i64.const 16)))
    (local.set $k0 (local.get $k))
    loop
      local.get $k
      local.get $g
      i64.load offset=16
      call $store_u64
      local.get $g
      i32.const 8
      i32.add
      local.set $g
      local.get $k
      i64.const 8
      i64.add
      local.set $k
      local.get $i
      i64.const 1
      i64.add
      local.tee $i
      local.get $n
      i64.ne
      br_if 0
    end
    (local.set $sum (call $kernel_sum (local.get $k0) (local.get $n)))
    (local.set $fresh (call $alloc (i64.const 4096)))
    (call $out (local.get $k) (i64.extend_i32_u (local.get $g))
      (i64.xor (local.get $i) (call $kernel_sum (local.get $fresh) (i64.const 512)))
      (local.get $sum)))

  ;; load_u64 loop with a 32-bit counter (c wrapped) counting down to zero, tested by
  ;; `br_if` on the counter itself.
  (func (export "from_kernel_i32") (result i32)
    (local $k i64) (local $g i32) (local $n i32)
    (call $pattern)
    (local.set $k (call $input_load_u64 (i64.const 0)))
    (local.set $g (i32.wrap_i64 (call $input_load_u64 (i64.const 8))))
    (local.set $n (i32.wrap_i64 (call $input_load_u64 (i64.const 16))))
    ;; after reading the input: the pattern covers the input's block
    (call $kernel_pattern)
    loop
      local.get $g
      local.get $k
      call $load_u64
      i64.store
      local.get $k
      i64.const 8
      i64.add
      local.set $k
      local.get $g
      i32.const 8
      i32.add
      local.set $g
      local.get $n
      i32.const -1
      i32.add
      local.tee $n
      br_if 0
    end
    (call $out (local.get $k) (i64.extend_i32_u (local.get $g)) (i64.extend_i32_u (local.get $n))
      (call $guest_sum)))

  ;; store_u64 loop that stops when the guest address reaches b + 8 * c (32-bit, so it may
  ;; wrap): a condition with a step of 8, on a pointer rather than a counter.
  (func (export "to_kernel_until") (result i32)
    (local $k i64) (local $g i32) (local $e i32) (local $k0 i64) (local $n i64) (local $sum i64)
    (call $pattern)
    (local.set $k (call $input_load_u64 (i64.const 0)))
    (local.set $g (i32.wrap_i64 (call $input_load_u64 (i64.const 8))))
    (local.set $n (call $input_load_u64 (i64.const 16)))
    (local.set $e (i32.add (local.get $g) (i32.shl (i32.wrap_i64 (local.get $n)) (i32.const 3))))
    (local.set $k0 (local.get $k))
    loop
      local.get $k
      local.get $g
      i64.load
      call $store_u64
      local.get $k
      i64.const 8
      i64.add
      local.set $k
      local.get $e
      local.get $g
      i32.const 8
      i32.add
      local.tee $g
      i32.ne
      br_if 0
    end
    (local.set $sum (call $kernel_sum (local.get $k0) (local.get $n)))
    (call $out (local.get $k) (i64.extend_i32_u (local.get $g)) (local.get $n) (local.get $sum)))
)
