#!/usr/bin/env bash
# Compares this libextism with upstream's (PyPI extism-sys) side by side, and prints the
# Markdown table of README.md's "Performance" section.
#
#   scripts/bench-compare.sh [compare options...]     e.g. --rounds 21, --only latency
#   scripts/bench-compare.sh --cli                    also time the CLI's disk cache (hyperfine)
#
# Steps: fetch upstream's library into target/upstream (scripts/fetch-upstream.sh), build ours
# with the release profile (`cargo build --release --lib`: thin LTO, what users ship), then run
# benches/compare (a small package of its own), which loads both libraries by path and
# alternates between them. With --cli it then builds the release `extism-run` and times a cold
# and a warm call of a generated 2 MB plugin (benches/cli/gen_big_plugin.py).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

cli=0
args=()
for a in "$@"; do
    if [ "$a" = "--cli" ]; then cli=1; else args+=("$a"); fi
done

# With RUST_BACKTRACE set, every error either library creates and drops captures a backtrace
# (upstream's calls each make one), which measures the unwinder, not the runtimes.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

upstream="$(scripts/fetch-upstream.sh)"
cargo build --locked --release --lib >&2
cargo run --locked --release --quiet --manifest-path benches/compare/Cargo.toml \
    --target-dir "$root/target/compare" -- \
    --ours "$root/target/release/libextism.so" --upstream "$upstream" "${args[@]+"${args[@]}"}"

if [ "$cli" = 1 ]; then
    cargo build --locked --release --bin extism-run >&2
    big="$root/target/bench/big.wasm"
    mkdir -p "$(dirname "$big")"
    python3 benches/cli/gen_big_plugin.py "$big" >&2
    cache="$(mktemp -d)"
    trap 'rm -rf "$cache"' EXIT
    exe="$root/target/release/extism-run"
    if command -v hyperfine >/dev/null; then
        # cold: the cache is emptied before every run; warm: it holds the compiled module.
        hyperfine --style basic --warmup 1 --runs 10 \
            --command-name "cold (compiles)" \
            --command-name "warm (disk cache)" \
            --prepare "rm -rf '$cache'/*" --prepare "true" \
            "EXTISM_RUN_CACHE='$cache' '$exe' call '$big' run" \
            "EXTISM_RUN_CACHE='$cache' '$exe' call '$big' run"
    else
        echo "hyperfine not found (apt-get install hyperfine); timing one run each" >&2
        rm -rf "${cache:?}"/*
        /usr/bin/time -f "cold (compiles): %e s" env EXTISM_RUN_CACHE="$cache" "$exe" call "$big" run
        /usr/bin/time -f "warm (disk cache): %e s" env EXTISM_RUN_CACHE="$cache" "$exe" call "$big" run
    fi
fi
