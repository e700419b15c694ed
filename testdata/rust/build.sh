#!/usr/bin/env bash
# Rebuilds the Rust test plugins and copies them to wasm/<name>.wasm.
# Needs rustup + cargo and network access to crates.io (or a warm cargo cache).
# CI never runs this: the runtime tests use the committed wasm/*.wasm files.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
HERE="$(pwd)"

# plugin name -> target triple
PLUGINS_UNKNOWN=(count_vowels echo host_fns logging faults bigdata)
PLUGINS_WASI=(wasi_stdout wasi_fs wasi_command)
TARGET_UNKNOWN=wasm32-unknown-unknown
TARGET_WASI=wasm32-wasip1

installed_targets="$(rustup target list --installed)"
for t in "$TARGET_UNKNOWN" "$TARGET_WASI"; do
    if ! grep -qx "$t" <<<"$installed_targets"; then
        echo "adding rustup target $t"
        rustup target add "$t"
    fi
done

# Keep local paths out of the binaries (panic locations etc.).
CARGO_HOME_DIR="${CARGO_HOME:-$HOME/.cargo}"
export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$CARGO_HOME_DIR/registry/src=/cargo/registry/src --remap-path-prefix=$HERE=/testdata/rust"

build() {
    local target="$1"
    shift
    local args=()
    for p in "$@"; do args+=(-p "$p"); done
    cargo build --locked --release --target "$target" "${args[@]}"
}

build "$TARGET_UNKNOWN" "${PLUGINS_UNKNOWN[@]}"
build "$TARGET_WASI" "${PLUGINS_WASI[@]}"

mkdir -p wasm
copy() {
    local target="$1"
    shift
    for p in "$@"; do
        local src="target/$target/release/$p.wasm"
        local dst="wasm/$p.wasm"
        install -m 644 "$src" "$dst"
        echo "wrote testdata/rust/$dst ($(wc -c <"$dst") bytes, $target)"
    done
}
copy "$TARGET_UNKNOWN" "${PLUGINS_UNKNOWN[@]}"
copy "$TARGET_WASI" "${PLUGINS_WASI[@]}"

# count_vowels once more as a debug build (no optimisation, DWARF and other custom sections):
# the size of plugins as many users ship them, for benchmarks (benches/).
cargo build --locked --target "$TARGET_UNKNOWN" -p count_vowels
install -m 644 "target/$TARGET_UNKNOWN/debug/count_vowels.wasm" wasm/count_vowels_debug.wasm
echo "wrote testdata/rust/wasm/count_vowels_debug.wasm ($(wc -c <wasm/count_vowels_debug.wasm) bytes, $TARGET_UNKNOWN, debug)"
