#!/usr/bin/env python3
"""Writes a large (about 2 MB) Extism plugin for the CLI cold/warm cache benchmark.

    python3 benches/cli/gen_big_plugin.py OUT.wasm [SIZE_BYTES]

The module is deterministic (same bytes on every run). It imports `alloc`, `store_u8` and
`output_set` from extism:host/env and exports `run`, which outputs `ok`. The bulk is filler:
straight-line integer functions (distinct constants), so compiling it is real work for cranelift
while running it is instant. `run` calls the first filler so the code is reachable.
"""
import sys


def uleb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def sleb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def vec(items):
    return uleb(len(items)) + b"".join(items)


def name(s):
    return uleb(len(s)) + s.encode()


def section(id_, body):
    return bytes([id_]) + uleb(len(body)) + body


I32, I64 = 0x7F, 0x7E


def functype(params, results):
    return b"\x60" + vec([bytes([p]) for p in params]) + vec([bytes([r]) for r in results])


def filler(i):
    """(i32, i32) -> i32 with one i32 local; about 40 arithmetic steps."""
    code = bytearray()
    seed = (i * 2654435761) & 0xFFFFFFFF
    for step in range(40):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        c = seed - (1 << 30)
        a, b = (0, 1) if step % 2 == 0 else (1, 2)
        op = [0x6A, 0x6B, 0x6C, 0x73, 0x71, 0x72][step % 6]  # add sub mul xor and or
        code += b"\x20" + uleb(a) + b"\x41" + sleb(c) + bytes([op])
        code += b"\x20" + uleb(b) + b"\x6A"  # i32.add
        code += b"\x21" + uleb(2)  # local.set 2
    code += b"\x20\x02\x0B"  # local.get 2; end
    body = vec([uleb(1) + bytes([I32])]) + bytes(code)
    return uleb(len(body)) + body


def main():
    out = sys.argv[1]
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000_000
    types = vec([
        functype([I64], [I64]),  # 0 alloc
        functype([I64, I32], []),  # 1 store_u8
        functype([I64, I64], []),  # 2 output_set
        functype([], [I32]),  # 3 run
        functype([I32, I32], [I32]),  # 4 filler
    ])
    env = "extism:host/env"
    imports = vec([
        name(env) + name("alloc") + b"\x00" + uleb(0),
        name(env) + name("store_u8") + b"\x00" + uleb(1),
        name(env) + name("output_set") + b"\x00" + uleb(2),
    ])
    # run: h = alloc(2); store_u8(h, 'o'); store_u8(h + 1, 'k'); output_set(h, 2);
    #      drop(filler0(1, 2)); return 0
    run = bytearray()
    run += b"\x42\x02\x10\x00\x21\x00"  # i64.const 2; call alloc; local.set 0
    run += b"\x20\x00\x41" + sleb(ord("o")) + b"\x10\x01"
    run += b"\x20\x00\x42\x01\x7C\x41" + sleb(ord("k")) + b"\x10\x01"
    run += b"\x20\x00\x42\x02\x10\x02"
    run += b"\x41\x01\x41\x02\x10\x04\x1A"  # call filler 0 (function index 4); drop
    run += b"\x41\x00\x0B"
    run_body = vec([uleb(1) + bytes([I64])]) + bytes(run)
    bodies = [uleb(len(run_body)) + run_body]
    total = 0
    i = 0
    while total < size:
        f = filler(i)
        bodies.append(f)
        total += len(f) + 1
        i += 1
    funcs = vec([uleb(3)] + [uleb(4)] * (len(bodies) - 1))
    exports = vec([name("run") + b"\x00" + uleb(3)])
    module = b"\x00asm\x01\x00\x00\x00"
    module += section(1, types) + section(2, imports) + section(3, funcs)
    module += section(7, exports) + section(10, vec(bodies))
    with open(out, "wb") as f:
        f.write(module)
    print(f"{out}: {len(module)} bytes, {len(bodies)} functions")


if __name__ == "__main__":
    main()
