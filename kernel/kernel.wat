;; extism-run kernel: the runtime-owned memory for input, output, errors and handles.
;;
;; See kernel/README.md for the full design. In short:
;;  * memory 0 ("memory", exported) holds block data only. A handle is the byte offset of a
;;    block's first byte: a multiple of 16 (one granule), >= DATA_START (128), never 0.
;;  * memory 1 (not exported) holds all allocator metadata, out of the guest's reach: one
;;    16-byte entry per granule of memory 0, at the SAME byte offset as the granule (the entry of
;;    handle h is meta[h .. h+16)); bytes 0..111 of memory 1 hold the 28 free-list heads.
;;    Memory 1 always has at least as many pages as memory 0.
;;  * entry fields (i32, little-endian):
;;      +0  generation the entry was written in (only entries of the current one mean anything)
;;      +4  flags | size in granules (flags: ALLOC, FSTART = free block start, FEND = free block end)
;;      +8  ALLOC: requested byte length          FSTART: next block of the circular free list
;;      +12 ALLOC: 0                              FSTART: previous block of the free list
;;  * fresh space is zero-filled when handed out, but only in [$high, $clean): bytes below $high
;;    were handed out since the reset (recycled), bytes from $clean up were never written;
;;    recycled blocks keep their bytes, as upstream (kernel.md §3).
;;  * invariants (current generation only): [DATA_START, bump) is tiled by blocks; an ALLOC
;;    entry exists exactly at the start of each live block, FSTART/FEND exactly at the first/last
;;    granule of each free block (stale tags are cleared when a block stops being free), and no
;;    two free blocks are adjacent.
;;
;; Every export validates its arguments as unsigned 64-bit values and never traps (the
;; exceptions: alloc under a host memory limit, where the host's limiter traps the call, and
;; config_get/var_get/var_set, where the host's part traps on what spec/guest-abi.md §6-§7 call
;; errors).
(module
  ;; What only the host has (src/host/): the values of config and vars. The host functions that
  ;; read and write them are kernel functions below, which call these for the host's part.
  ;; $what: 0 = config, 1 = vars.
  ;;   lookup  the value under the key [k, k + len) (the key's block and its length): its
  ;;           length, 0 when there is none; traps on a bad key. The value is written at $at
  ;;           (the bump pointer) when its block fits the fresh space there: the kernel's
  ;;           block for it will be that one
  ;;   copy    that value, when it is not empty and was not written in place, into block $h
  ;;           (allocated for it); traps when $h is 0 (its block could not be had)
  ;;   var_set sets (or, for $v = 0, removes) the var; traps on a bad key or value, when vars
  ;;           are disabled and when the store is full
  (import "extism-run:host" "lookup" (func $host_lookup (param $what i32) (param $k i64) (param $len i64) (param $at i64) (result i64)))
  (import "extism-run:host" "copy" (func $host_copy (param $what i32) (param $h i64)))
  (import "extism-run:host" "var_set" (func $host_var_set (param $k i64) (param $klen i64) (param $v i64) (param $vlen i64)))

  (memory $data (export "memory") 16)
  (memory $meta 16)

  ;; ---- constants (inlined below) -------------------------------------------------------------
  ;; DATA_START = 128        first handle; memory-1 bytes [0,112) hold the list heads
  ;; ALLOC      = 0x80000000 FSTART = 0x40000000  FEND = 0x20000000  SIZE = 0x0fffffff
  ;; MAX_ALLOC  = 0xffffff80 largest request that can fit a 4 GiB memory (2^32 - DATA_START)
  ;; SCAN       = 8          blocks examined in the good-fit class before taking a larger class

  ;; ---- root state (wasm globals: unreachable from the guest) ------------------------------
  (global $gen (mut i32) (i32.const 1))      ;; current generation, never 0
  (global $bump (mut i64) (i64.const 128))   ;; start of fresh space, multiple of 16
  (global $classes (mut i32) (i32.const 0))  ;; bit c set <=> free list of class c non-empty
  ;; $in_off, $in_len and $clean are also exported for the load/store code that the host
  ;; inlines into guest modules (src/kernel_link.rs); guests cannot import them.
  (global $in_off (export "extism-run:input_offset") (mut i64) (i64.const 0))
  (global $in_len (export "extism-run:input_length") (mut i64) (i64.const 0))
  ;; Exported for the call entries that src/kernel_link.rs adds to guest modules.
  (global $out_off (export "extism-run:output_offset") (mut i64) (i64.const 0))
  (global $out_len (export "extism-run:output_length") (mut i64) (i64.const 0))
  (global $err (export "extism-run:error") (mut i64) (i64.const 0))
  ;; Every byte of memory 0 at or above $clean is zero (pages are zero when they appear; the
  ;; kernel raises the mark when it hands out fresh space and when store_* writes above it).
  (global $clean (export "extism-run:clean") (mut i64) (i64.const 128))
  ;; The highest bump pointer since the reset: every byte below it was handed out in this
  ;; generation, so handing it out again (after it was given back to fresh space) is reuse.
  (global $high (mut i64) (i64.const 128))
  ;; The host's number for the call whose `begin` completed last: when a call entry (a
  ;; linked module's begin and export in one function, src/kernel_link.rs) fails, the host
  ;; learns from it whether this call's `begin` ran to the end.
  (global $call (mut i64) (i64.const 0))
  ;; Toolchain leftovers of the upstream kernel, kept for an identical export list.
  (global (export "__heap_base") i32 (i32.const 1048576))
  (global (export "__data_end") i32 (i32.const 1048576))

  ;; ---- helpers ------------------------------------------------------------------------------
  ;; wasmtime's compiler does not inline calls (every call also pays an epoch check), so the
  ;; code below spells out $mem_bytes, $class, $size, $has and $clear in place, $live in free
  ;; and length, and $claim, $free_before and $mark_free on the paths every call takes (fresh
  ;; space in alloc, free); these definitions name what those expressions compute.
  (func $mem_bytes (result i64)
    (i64.shl (i64.extend_i32_u (memory.size $data)) (i64.const 16)))

  ;; Entry address of handle $h if it is a live block of this generation, else 0. O(1).
  (func $live (param $h i64) (result i32)
    (local $a i32)
    ;; 16-aligned and DATA_START <= h < memory size (one unsigned compare, no overflow)
    (if (i32.or (i64.ne (i64.and (local.get $h) (i64.const 15)) (i64.const 0))
                (i64.ge_u (i64.sub (local.get $h) (i64.const 128))
                          (i64.sub (i64.shl (i64.extend_i32_u (memory.size $data)) (i64.const 16)) (i64.const 128))))
      (then (return (i32.const 0))))
    (local.set $a (i32.wrap_i64 (local.get $h)))
    (if (i32.ne (i32.load $meta (local.get $a)) (global.get $gen))
      (then (return (i32.const 0))))
    (if (i32.eqz (i32.and (i32.load $meta offset=4 (local.get $a)) (i32.const 0x80000000)))
      (then (return (i32.const 0))))
    (local.get $a))

  ;; Size class of a block of $s >= 1 granules: floor(log2 s), 0..27.
  (func $class (param $s i32) (result i32)
    (i32.sub (i32.const 31) (i32.clz (local.get $s))))

  (func $size (param $a i32) (result i32)
    (i32.and (i32.load $meta offset=4 (local.get $a)) (i32.const 0x0fffffff)))

  ;; Does entry $a carry flag $f in the current generation?
  (func $has (param $a i32) (param $f i32) (result i32)
    (i32.and (i32.eq (i32.load $meta (local.get $a)) (global.get $gen))
             (i32.ne (i32.and (i32.load $meta offset=4 (local.get $a)) (local.get $f))
                     (i32.const 0))))

  ;; Start of the free block ending just below $e (a block boundary > DATA_START), or 0.
  ;; Found through the end tag at $e - 16 and confirmed by the start tag: tags are exact by
  ;; construction, the second check is defence in depth and costs O(1). ($e = 2^32 arrives as 0
  ;; when memory is full; the arithmetic below is right modulo 2^32.)
  (func $free_before (param $e i32) (result i32)
    (local $t i32) (local $s i32) (local $b i32)
    (local.set $t (i32.sub (local.get $e) (i32.const 16)))
    (if (i32.eqz (i32.and (i32.eq (i32.load $meta (local.get $t)) (global.get $gen)) (i32.ne (i32.and (i32.load $meta offset=4 (local.get $t)) (i32.const 0x20000000)) (i32.const 0))))
      (then (return (i32.const 0))))
    (local.set $s (i32.and (i32.load $meta offset=4 (local.get $t)) (i32.const 0x0fffffff)))
    (if (i32.gt_u (local.get $s) (i32.shr_u (i32.sub (local.get $e) (i32.const 128)) (i32.const 4)))
      (then (return (i32.const 0))))
    (local.set $b (i32.sub (local.get $e) (i32.shl (local.get $s) (i32.const 4))))
    (if (result i32) (i32.and (i32.and (i32.eq (i32.load $meta (local.get $b)) (global.get $gen)) (i32.ne (i32.and (i32.load $meta offset=4 (local.get $b)) (i32.const 0x40000000)) (i32.const 0)))
                              (i32.eq (i32.and (i32.load $meta offset=4 (local.get $b)) (i32.const 0x0fffffff)) (local.get $s)))
      (then (local.get $b))
      (else (i32.const 0))))

  (func $clear (param $a i32)   ;; drop a stale tag
    (i32.store $meta offset=4 (local.get $a) (i32.const 0)))

  ;; Remove free block $b of $s granules from its class list (circular, doubly linked). O(1).
  (func $unlink (param $b i32) (param $s i32)
    (local $c i32) (local $n i32) (local $p i32)
    (local.set $c (i32.shl (i32.sub (i32.const 31) (i32.clz (local.get $s))) (i32.const 2)))
    (local.set $n (i32.load $meta offset=8 (local.get $b)))
    (if (i32.eq (local.get $n) (local.get $b))
      (then  ;; last member: the class becomes empty
        (i32.store $meta (local.get $c) (i32.const 0))
        (global.set $classes (i32.and (global.get $classes)
          (i32.xor (i32.shl (i32.const 1) (i32.shr_u (local.get $c) (i32.const 2))) (i32.const -1)))))
      (else
        (local.set $p (i32.load $meta offset=12 (local.get $b)))
        (i32.store $meta offset=8 (local.get $p) (local.get $n))
        (i32.store $meta offset=12 (local.get $n) (local.get $p))
        (if (i32.eq (i32.load $meta (local.get $c)) (local.get $b))
          (then (i32.store $meta (local.get $c) (local.get $n)))))))

  ;; Tag [b, b + 16s) as a free block and append it to the tail of its class list (FIFO, so
  ;; the block released longest ago is recycled first). O(1).
  (func $mark_free (param $b i32) (param $s i32)
    (local $c i32) (local $head i32) (local $tail i32) (local $e i32)
    (i32.store $meta (local.get $b) (global.get $gen))
    (i32.store $meta offset=4 (local.get $b)
      (i32.or (i32.or (local.get $s) (i32.const 0x40000000))
              (select (i32.const 0x20000000) (i32.const 0) (i32.eq (local.get $s) (i32.const 1)))))
    (if (i32.gt_u (local.get $s) (i32.const 1))
      (then  ;; boundary tag on the last granule, found by the right neighbour's free
        (local.set $e (i32.add (local.get $b) (i32.shl (i32.sub (local.get $s) (i32.const 1)) (i32.const 4))))
        (i32.store $meta (local.get $e) (global.get $gen))
        (i32.store $meta offset=4 (local.get $e) (i32.or (local.get $s) (i32.const 0x20000000)))))
    (local.set $c (i32.sub (i32.const 31) (i32.clz (local.get $s))))
    (local.set $head (i32.load $meta (i32.shl (local.get $c) (i32.const 2))))
    (if (i32.eqz (local.get $head))
      (then
        (i32.store $meta (i32.shl (local.get $c) (i32.const 2)) (local.get $b))
        (i32.store $meta offset=8 (local.get $b) (local.get $b))
        (i32.store $meta offset=12 (local.get $b) (local.get $b))
        (global.set $classes (i32.or (global.get $classes) (i32.shl (i32.const 1) (local.get $c)))))
      (else
        (local.set $tail (i32.load $meta offset=12 (local.get $head)))
        (i32.store $meta offset=8 (local.get $b) (local.get $head))
        (i32.store $meta offset=12 (local.get $b) (local.get $tail))
        (i32.store $meta offset=8 (local.get $tail) (local.get $b))
        (i32.store $meta offset=12 (local.get $head) (local.get $b)))))

  ;; A free block of at least $k granules, or 0. O(1): at most SCAN blocks of class floor(log2 k)
  ;; (good fit), then the head of the smallest non-empty class whose every block fits.
  (func $find (param $k i32) (result i32)
    (local $f i32) (local $b i32) (local $head i32) (local $i i32) (local $m i32)
    (local.set $f (i32.sub (i32.const 31) (i32.clz (local.get $k))))
    (if (i32.and (global.get $classes) (i32.shl (i32.const 1) (local.get $f)))
      (then
        (local.set $head (i32.load $meta (i32.shl (local.get $f) (i32.const 2))))
        (local.set $b (local.get $head))
        (local.set $i (i32.const 8))
        (loop $scan
          (if (i32.ge_u (i32.and (i32.load $meta offset=4 (local.get $b)) (i32.const 0x0fffffff)) (local.get $k))
            (then (return (local.get $b))))
          (local.set $b (i32.load $meta offset=8 (local.get $b)))
          (local.set $i (i32.sub (local.get $i) (i32.const 1)))
          (br_if $scan (i32.and (i32.ne (local.get $b) (local.get $head))
                                (i32.ne (local.get $i) (i32.const 0)))))))
    ;; classes above f hold blocks of >= 2^(f+1) > k granules
    (local.set $m (i32.and (global.get $classes) (i32.shl (i32.const -2) (local.get $f))))
    (if (result i32) (local.get $m)
      (then (i32.load $meta (i32.shl (i32.ctz (local.get $m)) (i32.const 2))))
      (else (i32.const 0))))

  ;; Turn [a, a + 16k) into a live block of $n bytes. Its bytes are left as they are: a recycled
  ;; block keeps the data it held (upstream does the same; the guest can read every byte of
  ;; memory 0 anyway). Fresh space goes through $claim_fresh.
  (func $claim (param $a i32) (param $k i32) (param $n i64) (result i64)
    (i32.store $meta (local.get $a) (global.get $gen))
    (i32.store $meta offset=4 (local.get $a) (i32.or (local.get $k) (i32.const 0x80000000)))
    (i32.store $meta offset=8 (local.get $a) (i32.wrap_i64 (local.get $n)))
    (i32.store $meta offset=12 (local.get $a) (i32.const 0))
    (i64.extend_i32_u (local.get $a)))

  ;; Claim fresh space [a, a + 16k), zeroed where it is handed out for the first time since the
  ;; reset: fresh space after a reset reads as zero although reset does not zero anything. Only
  ;; [max(a, $high), min(a + 16k, $clean)) can hold old bytes from before the reset (or from a
  ;; guest store past the bump pointer), so only that part is filled; below $high it is reuse.
  ;; $zero = 0: the host fills the first $n bytes at once, so only the padding after them is.
  (func $claim_fresh (param $a i32) (param $k i32) (param $n i64) (param $zero i32) (result i64)
    (local $end i64) (local $from i64) (local $to i64)
    (local.set $end (i64.add (i64.extend_i32_u (local.get $a)) (i64.shl (i64.extend_i32_u (local.get $k)) (i64.const 4))))
    (local.set $from (select (global.get $high) (i64.extend_i32_u (local.get $a))
                             (i64.gt_u (global.get $high) (i64.extend_i32_u (local.get $a)))))
    (local.set $to (select (local.get $end) (global.get $clean) (i64.lt_u (local.get $end) (global.get $clean))))
    (if (i32.eqz (local.get $zero))
      (then (local.set $from (select (i64.add (i64.extend_i32_u (local.get $a)) (local.get $n)) (local.get $from)
                                     (i64.gt_u (i64.add (i64.extend_i32_u (local.get $a)) (local.get $n)) (local.get $from))))))
    ;; memory.fill is a call into wasmtime's runtime: short ranges (most of a small call's
    ;; blocks) are zeroed in place, 8 bytes at a time while 8 remain, then byte by byte.
    (if (i64.le_u (i64.sub (local.get $to) (local.get $from)) (i64.const 64))
      (then
        (block $words (loop $word
          (br_if $words (i64.gt_s (i64.add (local.get $from) (i64.const 8)) (local.get $to)))
          (i64.store $data (i32.wrap_i64 (local.get $from)) (i64.const 0))
          (local.set $from (i64.add (local.get $from) (i64.const 8)))
          (br $word)))
        (block $bytes (loop $byte
          (br_if $bytes (i64.ge_s (local.get $from) (local.get $to)))
          (i32.store8 $data (i32.wrap_i64 (local.get $from)) (i32.const 0))
          (local.set $from (i64.add (local.get $from) (i64.const 1)))
          (br $byte))))
      (else (if (i64.lt_u (local.get $from) (local.get $to))
        (then
          (memory.fill $data (i32.wrap_i64 (local.get $from)) (i32.const 0)
            (i32.wrap_i64 (i64.sub (local.get $to) (local.get $from))))))))
    (if (i64.gt_u (local.get $end) (global.get $clean))
      (then (global.set $clean (local.get $end))))
    (if (i64.gt_u (local.get $end) (global.get $high))
      (then (global.set $high (local.get $end))))
    ;; $claim, spelled out
    (i32.store $meta (local.get $a) (global.get $gen))
    (i32.store $meta offset=4 (local.get $a) (i32.or (local.get $k) (i32.const 0x80000000)))
    (i32.store $meta offset=8 (local.get $a) (i32.wrap_i64 (local.get $n)))
    (i32.store $meta offset=12 (local.get $a) (i32.const 0))
    (i64.extend_i32_u (local.get $a)))

  ;; ---- allocation ---------------------------------------------------------------------------
  ;; alloc for a block the host fills completely right away (input, host function results):
  ;; zeroing its fresh space first would be wasted work.
  (func (export "extism-run:alloc_filled") (param $n i64) (result i64)
    (call $alloc (local.get $n) (i32.const 0)))

  (func (export "alloc") (param $n i64) (result i64)
    (call $alloc (local.get $n) (i32.const 1)))

  ;; $zero: zero the fresh space handed out (0 only for blocks the host fills at once). Guests'
  ;; calls of alloc are linked straight to this one (src/kernel_link.rs), skipping the wrapper.
  (func $alloc (export "extism-run:alloc") (param $n i64) (param $zero i32) (result i64)
    (local $k i32) (local $kb i64) (local $a i32) (local $s i32) (local $t i32)
    (local $end i64) (local $pages i64) (local $d i64)
    ;; 0, and anything that cannot fit a 4 GiB memory, is refused (sizes stay in i64 here).
    (if (i32.or (i64.eqz (local.get $n)) (i64.gt_u (local.get $n) (i64.const 0xffffff80)))
      (then (return (i64.const 0))))
    (local.set $kb (i64.and (i64.add (local.get $n) (i64.const 15)) (i64.const -16)))
    (local.set $k (i32.wrap_i64 (i64.shr_u (local.get $kb) (i64.const 4))))
    ;; 1. fresh space inside the current memory: released blocks wait until it runs out
    (if (i64.le_u (i64.add (global.get $bump) (local.get $kb)) (i64.shl (i64.extend_i32_u (memory.size $data)) (i64.const 16)))
      (then
        (local.set $a (i32.wrap_i64 (global.get $bump)))
        (global.set $bump (i64.add (global.get $bump) (local.get $kb)))
        (return (call $claim_fresh (local.get $a) (local.get $k) (local.get $n) (local.get $zero)))))
    ;; 2. a released block, split exactly; the remainder stays free
    (local.set $a (call $find (local.get $k)))
    (if (local.get $a)
      (then
        (local.set $s (i32.and (i32.load $meta offset=4 (local.get $a)) (i32.const 0x0fffffff)))
        (call $unlink (local.get $a) (local.get $s))
        (if (i32.gt_u (local.get $s) (local.get $k))
          (then (call $mark_free
                  (i32.add (local.get $a) (i32.shl (local.get $k) (i32.const 4)))
                  (i32.sub (local.get $s) (local.get $k))))
          (else (if (i32.gt_u (local.get $s) (i32.const 1))
            (then (i32.store $meta offset=4 (i32.add (local.get $a)
                    (i32.shl (i32.sub (local.get $s) (i32.const 1)) (i32.const 4))) (i32.const 0))))))
        ;; $claim, spelled out
        (i32.store $meta (local.get $a) (global.get $gen))
        (i32.store $meta offset=4 (local.get $a) (i32.or (local.get $k) (i32.const 0x80000000)))
        (i32.store $meta offset=8 (local.get $a) (i32.wrap_i64 (local.get $n)))
        (i32.store $meta offset=12 (local.get $a) (i32.const 0))
        (return (i64.extend_i32_u (local.get $a)))))
    ;; 3. fresh space is short and no released block fits. A free block just below the bump
    ;;    pointer is given back to fresh space first, so growth is only what is missing.
    (if (i64.gt_u (global.get $bump) (i64.const 128))
      (then
        (local.set $t (i32.wrap_i64 (global.get $bump)))
        (local.set $a (call $free_before (local.get $t)))
        (if (local.get $a)
          (then
            (call $unlink (local.get $a) (i32.and (i32.load $meta offset=4 (local.get $a)) (i32.const 0x0fffffff)))
            (i32.store $meta offset=4 (local.get $a) (i32.const 0))
            (i32.store $meta offset=4 (i32.sub (local.get $t) (i32.const 16)) (i32.const 0))
            (global.set $bump (i64.extend_i32_u (local.get $a)))))))
    (local.set $end (i64.add (global.get $bump) (local.get $kb)))
    (if (i64.gt_u (local.get $end) (i64.const 0x100000000))
      (then (return (i64.const 0))))
    ;; grow memory 1 first, then memory 0, to exactly the pages needed: metadata always covers
    ;; memory 0 even if the second growth fails.
    (local.set $pages (i64.shr_u (i64.add (local.get $end) (i64.const 0xffff)) (i64.const 16)))
    (local.set $d (i64.sub (local.get $pages) (i64.extend_i32_u (memory.size $meta))))
    (if (i64.gt_s (local.get $d) (i64.const 0))
      (then (if (i32.eq (memory.grow $meta (i32.wrap_i64 (local.get $d))) (i32.const -1))
        (then (return (i64.const 0))))))
    (local.set $d (i64.sub (local.get $pages) (i64.extend_i32_u (memory.size $data))))
    (if (i64.gt_s (local.get $d) (i64.const 0))
      (then (if (i32.eq (memory.grow $data (i32.wrap_i64 (local.get $d))) (i32.const -1))
        (then (return (i64.const 0))))))
    (local.set $a (i32.wrap_i64 (global.get $bump)))
    (global.set $bump (local.get $end))
    (call $claim_fresh (local.get $a) (local.get $k) (local.get $n) (local.get $zero)))

  ;; O(1). Not a live block (0, misaligned, out of range, inside a block, released, from an
  ;; earlier generation) -> no-op.
  (func $free (export "free") (param $h i64)
    (local $a i32) (local $k i32) (local $b i32) (local $s i32) (local $r i64) (local $t i32)
    (local $x i32) (local $c i32) (local $head i32) (local $tail i32) (local $e i32)
    ;; $live: a live block of this generation, else a no-op
    (if (i32.or (i64.ne (i64.and (local.get $h) (i64.const 15)) (i64.const 0))
                (i64.ge_u (i64.sub (local.get $h) (i64.const 128))
                          (i64.sub (i64.shl (i64.extend_i32_u (memory.size $data)) (i64.const 16)) (i64.const 128))))
      (then (return)))
    (local.set $a (i32.wrap_i64 (local.get $h)))
    (if (i32.or (i32.ne (i32.load $meta (local.get $a)) (global.get $gen))
                (i32.eqz (i32.and (i32.load $meta offset=4 (local.get $a)) (i32.const 0x80000000))))
      (then (return)))
    (local.set $k (i32.and (i32.load $meta offset=4 (local.get $a)) (i32.const 0x0fffffff)))
    ;; Releasing the block holding the input forgets the input (length AND offset).
    (if (i64.lt_u (i64.sub (global.get $in_off) (local.get $h))
                  (i64.shl (i64.extend_i32_u (local.get $k)) (i64.const 4)))
      (then (global.set $in_off (i64.const 0)) (global.set $in_len (i64.const 0))))
    (i32.store $meta offset=4 (local.get $a) (i32.const 0))
    (local.set $b (local.get $a))
    (local.set $s (local.get $k))
    ;; merge with a free right neighbour (only below bump: fresh space is not a block)
    (local.set $r (i64.add (local.get $h) (i64.shl (i64.extend_i32_u (local.get $k)) (i64.const 4))))
    (if (i64.lt_u (local.get $r) (global.get $bump))
      (then
        (local.set $t (i32.wrap_i64 (local.get $r)))
        (if (i32.and (i32.eq (i32.load $meta (local.get $t)) (global.get $gen)) (i32.ne (i32.and (i32.load $meta offset=4 (local.get $t)) (i32.const 0x40000000)) (i32.const 0)))
          (then
            (local.set $x (i32.and (i32.load $meta offset=4 (local.get $t)) (i32.const 0x0fffffff)))
            (call $unlink (local.get $t) (local.get $x))
            (i32.store $meta offset=4 (local.get $t) (i32.const 0))   ;; its end tag is rewritten by $mark_free below
            (local.set $s (i32.add (local.get $s) (local.get $x)))))))
    ;; merge with a free left neighbour, found through its end tag
    (if (i32.gt_u (local.get $a) (i32.const 128))
      (then
        ;; $free_before, spelled out: $e is the end tag's entry, $x the size it gives
        (local.set $t (block $found (result i32)
          (local.set $e (i32.sub (local.get $a) (i32.const 16)))
          (drop (br_if $found (i32.const 0)
            (i32.eqz (i32.and (i32.eq (i32.load $meta (local.get $e)) (global.get $gen))
                              (i32.ne (i32.and (i32.load $meta offset=4 (local.get $e)) (i32.const 0x20000000)) (i32.const 0))))))
          (local.set $x (i32.and (i32.load $meta offset=4 (local.get $e)) (i32.const 0x0fffffff)))
          (drop (br_if $found (i32.const 0)
            (i32.gt_u (local.get $x) (i32.shr_u (i32.sub (local.get $a) (i32.const 128)) (i32.const 4)))))
          (local.set $t (i32.sub (local.get $a) (i32.shl (local.get $x) (i32.const 4))))
          (select (local.get $t) (i32.const 0)
            (i32.and (i32.and (i32.eq (i32.load $meta (local.get $t)) (global.get $gen))
                              (i32.ne (i32.and (i32.load $meta offset=4 (local.get $t)) (i32.const 0x40000000)) (i32.const 0)))
                     (i32.eq (i32.and (i32.load $meta offset=4 (local.get $t)) (i32.const 0x0fffffff)) (local.get $x))))))
        (if (local.get $t)
          (then
            (local.set $x (i32.and (i32.load $meta offset=4 (local.get $t)) (i32.const 0x0fffffff)))
            (call $unlink (local.get $t) (local.get $x))
            (i32.store $meta offset=4 (i32.sub (local.get $a) (i32.const 16)) (i32.const 0))  ;; its end tag
            (local.set $b (local.get $t))
            (local.set $s (i32.add (local.get $s) (local.get $x)))))))
    ;; $mark_free, spelled out
    (i32.store $meta (local.get $b) (global.get $gen))
    (i32.store $meta offset=4 (local.get $b)
      (i32.or (i32.or (local.get $s) (i32.const 0x40000000))
              (select (i32.const 0x20000000) (i32.const 0) (i32.eq (local.get $s) (i32.const 1)))))
    (if (i32.gt_u (local.get $s) (i32.const 1))
      (then
        (local.set $e (i32.add (local.get $b) (i32.shl (i32.sub (local.get $s) (i32.const 1)) (i32.const 4))))
        (i32.store $meta (local.get $e) (global.get $gen))
        (i32.store $meta offset=4 (local.get $e) (i32.or (local.get $s) (i32.const 0x20000000)))))
    (local.set $c (i32.sub (i32.const 31) (i32.clz (local.get $s))))
    (local.set $head (i32.load $meta (i32.shl (local.get $c) (i32.const 2))))
    (if (i32.eqz (local.get $head))
      (then
        (i32.store $meta (i32.shl (local.get $c) (i32.const 2)) (local.get $b))
        (i32.store $meta offset=8 (local.get $b) (local.get $b))
        (i32.store $meta offset=12 (local.get $b) (local.get $b))
        (global.set $classes (i32.or (global.get $classes) (i32.shl (i32.const 1) (local.get $c)))))
      (else
        (local.set $tail (i32.load $meta offset=12 (local.get $head)))
        (i32.store $meta offset=8 (local.get $b) (local.get $head))
        (i32.store $meta offset=12 (local.get $b) (local.get $tail))
        (i32.store $meta offset=8 (local.get $tail) (local.get $b))
        (i32.store $meta offset=12 (local.get $head) (local.get $b)))))

  (func $length (export "length") (param $h i64) (result i64)
    (local $a i32)
    ;; $live
    (if (i32.or (i64.ne (i64.and (local.get $h) (i64.const 15)) (i64.const 0))
                (i64.ge_u (i64.sub (local.get $h) (i64.const 128))
                          (i64.sub (i64.shl (i64.extend_i32_u (memory.size $data)) (i64.const 16)) (i64.const 128))))
      (then (return (i64.const 0))))
    (local.set $a (i32.wrap_i64 (local.get $h)))
    (if (result i64) (i32.and (i32.eq (i32.load $meta (local.get $a)) (global.get $gen))
                              (i32.ne (i32.and (i32.load $meta offset=4 (local.get $a)) (i32.const 0x80000000)) (i32.const 0)))
      (then (i64.extend_i32_u (i32.load $meta offset=8 (local.get $a))))
      (else (i64.const 0))))

  ;; Validation is O(1) already, so the "unsafe" variant is the same exact function.
  (func (export "length_unsafe") (param $h i64) (result i64)
    (call $length (local.get $h)))

  ;; O(1): a new generation invalidates every handle at once; memory is neither zeroed nor shrunk
  ;; (blocks are zero-filled when handed out instead).
  (func $reset (export "reset")
    (global.set $gen (i32.add (global.get $gen) (i32.const 1)))
    (if (i32.eqz (global.get $gen))
      (then  ;; wrapped after 2^32 resets: entries of generation 1 may still exist, wipe them
        (memory.fill $meta (i32.const 128) (i32.const 0)
          (i32.sub (i32.shl (memory.size $meta) (i32.const 16)) (i32.const 128)))
        (global.set $gen (i32.const 1))))
    ;; the 28 list heads, [0, 112): stores, as memory.fill is a call into wasmtime's runtime
    (i64.store $meta offset=0 (i32.const 0) (i64.const 0))
    (i64.store $meta offset=8 (i32.const 0) (i64.const 0))
    (i64.store $meta offset=16 (i32.const 0) (i64.const 0))
    (i64.store $meta offset=24 (i32.const 0) (i64.const 0))
    (i64.store $meta offset=32 (i32.const 0) (i64.const 0))
    (i64.store $meta offset=40 (i32.const 0) (i64.const 0))
    (i64.store $meta offset=48 (i32.const 0) (i64.const 0))
    (i64.store $meta offset=56 (i32.const 0) (i64.const 0))
    (i64.store $meta offset=64 (i32.const 0) (i64.const 0))
    (i64.store $meta offset=72 (i32.const 0) (i64.const 0))
    (i64.store $meta offset=80 (i32.const 0) (i64.const 0))
    (i64.store $meta offset=88 (i32.const 0) (i64.const 0))
    (i64.store $meta offset=96 (i32.const 0) (i64.const 0))
    (i64.store $meta offset=104 (i32.const 0) (i64.const 0))
    (global.set $classes (i32.const 0))
    (global.set $bump (i64.const 128))
    (global.set $high (i64.const 128))
    (global.set $in_off (i64.const 0))
    (global.set $in_len (i64.const 0))
    (global.set $out_off (i64.const 0))
    (global.set $out_len (i64.const 0))
    (global.set $err (i64.const 0)))

  (func (export "memory_bytes") (result i64) (i64.shl (i64.extend_i32_u (memory.size $data)) (i64.const 16)))

  ;; ---- raw loads and stores: valid iff the whole access is inside memory 0 -----------------
  (func (export "load_u8") (param $p i64) (result i32)
    (if (result i32) (i64.lt_u (local.get $p) (i64.shl (i64.extend_i32_u (memory.size $data)) (i64.const 16)))
      (then (i32.load8_u $data (i32.wrap_i64 (local.get $p))))
      (else (i32.const 0))))

  (func (export "load_u64") (param $p i64) (result i64)
    (if (result i64) (i64.le_u (local.get $p) (i64.sub (i64.shl (i64.extend_i32_u (memory.size $data)) (i64.const 16)) (i64.const 8)))
      (then (i64.load $data (i32.wrap_i64 (local.get $p))))
      (else (i64.const 0))))

  ;; A store at or above $clean raises it (fresh space handed out later is zeroed up to it).
  (func (export "store_u8") (param $p i64) (param $v i32)
    (if (i64.lt_u (local.get $p) (i64.shl (i64.extend_i32_u (memory.size $data)) (i64.const 16)))
      (then
        (i32.store8 $data (i32.wrap_i64 (local.get $p)) (local.get $v))
        (if (i64.ge_u (local.get $p) (global.get $clean))
          (then (global.set $clean (i64.add (local.get $p) (i64.const 1))))))))

  (func (export "store_u64") (param $p i64) (param $v i64)
    (if (i64.le_u (local.get $p) (i64.sub (i64.shl (i64.extend_i32_u (memory.size $data)) (i64.const 16)) (i64.const 8)))
      (then
        (i64.store $data (i32.wrap_i64 (local.get $p)) (local.get $v))
        (if (i64.gt_u (i64.add (local.get $p) (i64.const 8)) (global.get $clean))
          (then (global.set $clean (i64.add (local.get $p) (i64.const 8))))))))

  ;; ---- input, output, error ---------------------------------------------------------------
  ;; DATA_START <= h and h + len <= memory size, without overflow.
  (func $range_ok (param $h i64) (param $len i64) (result i32)
    (local $m i64)
    (local.set $m (i64.shl (i64.extend_i32_u (memory.size $data)) (i64.const 16)))
    (i32.and (i32.and (i64.ge_u (local.get $h) (i64.const 128))
                      (i64.le_u (local.get $len) (local.get $m)))
             (i64.le_u (local.get $h) (i64.sub (local.get $m) (local.get $len)))))

  (func (export "input_set") (param $h i64) (param $len i64)
    (if (call $range_ok (local.get $h) (local.get $len))
      (then (global.set $in_off (local.get $h)) (global.set $in_len (local.get $len)))))

  (func (export "input_length") (result i64) (global.get $in_len))
  (func (export "input_offset") (result i64) (global.get $in_off))

  ;; The input range was inside memory when set and memory never shrinks: the loads are in bounds.
  (func (export "input_load_u8") (param $i i64) (result i32)
    (if (result i32) (i64.lt_u (local.get $i) (global.get $in_len))
      (then (i32.load8_u $data (i32.wrap_i64 (i64.add (global.get $in_off) (local.get $i)))))
      (else (i32.const 0))))

  ;; 0 whenever fewer than 8 input bytes remain at i (i + 8 > len, with no wrap-around).
  (func (export "input_load_u64") (param $i i64) (result i64)
    (if (result i64) (i32.and (i64.ge_u (global.get $in_len) (i64.const 8))
                              (i64.le_u (local.get $i) (i64.sub (global.get $in_len) (i64.const 8))))
      (then (i64.load $data (i32.wrap_i64 (i64.add (global.get $in_off) (local.get $i)))))
      (else (i64.const 0))))

  (func (export "output_set") (param $h i64) (param $len i64)
    (if (call $range_ok (local.get $h) (local.get $len))
      (then (global.set $out_off (local.get $h)) (global.set $out_len (local.get $len)))))

  (func (export "output_length") (result i64) (global.get $out_len))
  (func (export "output_offset") (result i64) (global.get $out_off))

  ;; 0 clears; otherwise kept only if DATA_START <= h < memory size.
  (func (export "error_set") (param $h i64)
    (if (i32.or (i64.eqz (local.get $h))
                (i64.lt_u (i64.sub (local.get $h) (i64.const 128))
                          (i64.sub (i64.shl (i64.extend_i32_u (memory.size $data)) (i64.const 16)) (i64.const 128))))
      (then (global.set $err (local.get $h)))))

  (func (export "error_get") (result i64) (global.get $err))

  ;; ---- the host's side of a call, one entry each (src/kernel.rs) -------------------------
  ;; Before the export runs: reset, then a block of $n bytes for the input (the host fills it
  ;; at once, so it is not zeroed) set as the input, and $call := the host's number for the
  ;; call. Its handle; 0 for no input, or when the block cannot be had.
  (func (export "extism-run:begin") (param $n i64) (param $call i64) (result i64)
    (local $h i64)
    (call $reset)
    (local.set $h (call $alloc (local.get $n) (i32.const 0)))
    (if (i64.ne (local.get $h) (i64.const 0))
      (then (global.set $in_off (local.get $h)) (global.set $in_len (local.get $n))))
    (global.set $call (local.get $call))
    (local.get $h))

  ;; After the export ran: output offset, output length, error handle.
  (func (export "extism-run:end") (result i64 i64 i64)
    (global.get $out_off) (global.get $out_len) (global.get $err))

  ;; The number of the call whose `begin` completed last (0 before any).
  (func (export "extism-run:begun") (result i64)
    (global.get $call))

  ;; ---- config and vars (spec/guest-abi.md §6-§7): the host keeps the values --------------
  ;; A host function's reply: a block of $n bytes for its result, not zeroed (the host fills it
  ;; at once), then its arguments $x and $y released (guest-abi §13: the result is allocated
  ;; before the arguments are freed, so it is never one of them). 0 for $n = 0; when $n bytes
  ;; cannot be had, 0 and nothing is released.
  (func $reply (param $n i64) (param $x i64) (param $y i64) (result i64)
    (local $h i64)
    (if (i64.ne (local.get $n) (i64.const 0))
      (then
        (local.set $h (call $alloc (local.get $n) (i32.const 0)))
        (if (i64.eqz (local.get $h))
          (then (return (i64.const 0))))))
    (call $free (local.get $x))
    (call $free (local.get $y))
    (local.get $h))

  ;; The kernel's part of these host functions runs here, so that a call of one enters the
  ;; host only to look up and copy (two cheap calls out of wasm) instead of the host entering
  ;; the kernel twice. The key's block is released after the result's is allocated, and not
  ;; when that fails (§13, as $reply).
  (func (export "config_get") (param $k i64) (result i64)
    (call $value_of_key (i32.const 0) (local.get $k)))

  (func (export "var_get") (param $k i64) (result i64)
    (call $value_of_key (i32.const 1) (local.get $k)))

  ;; The host writes the value into fresh space at the bump pointer when its block fits there,
  ;; and then $reply's block is exactly that one (fresh space comes first); otherwise (and it
  ;; is the same test on both sides) the host copies it into whatever block $reply found.
  (func $value_of_key (param $what i32) (param $k i64) (result i64)
    (local $at i64) (local $n i64) (local $h i64) (local $end i64) (local $written i32)
    (local.set $at (global.get $bump))
    (local.set $n (call $host_lookup (local.get $what) (local.get $k) (call $length (local.get $k)) (local.get $at)))
    ;; the host's test, on the memory as it was (before $reply can grow it)
    (local.set $end (i64.add (local.get $at) (i64.and (i64.add (local.get $n) (i64.const 15)) (i64.const -16))))
    (local.set $written
      (i32.and (i64.ne (local.get $n) (i64.const 0))
               (i64.le_u (local.get $end) (i64.shl (i64.extend_i32_u (memory.size $data)) (i64.const 16)))))
    ;; The host's bytes lie in fresh space, which must read as zero above $clean: raised now,
    ;; before any call (and its epoch check) could stop this one short of $reply's.
    (if (i32.and (local.get $written) (i64.gt_u (local.get $end) (global.get $clean)))
      (then (global.set $clean (local.get $end))))
    (local.set $h (call $reply (local.get $n) (local.get $k) (i64.const 0)))
    ;; nothing to copy for no value (nor when it is in place)
    (if (i32.and (i64.ne (local.get $n) (i64.const 0)) (i32.eqz (local.get $written)))
      (then (call $host_copy (local.get $what) (local.get $h))))
    (local.get $h))

  ;; The value's block is released before the key's.
  (func (export "var_set") (param $k i64) (param $v i64)
    (call $host_var_set (local.get $k) (call $length (local.get $k)) (local.get $v) (call $length (local.get $v)))
    (drop (call $reply (i64.const 0) (local.get $v) (local.get $k))))
)
