#!/usr/bin/env bash
# Regenerates docs/flamegraph.svg, the flame graph shown in README ("Profiling"): 200 calls of
# the bundled count_vowels plugin on 256 KiB of text, sampled every 250 µs.
#   scripts/flamegraph.sh [OUT.svg|OUT.json]   (default docs/flamegraph.svg)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/flamegraph.svg}
input=$(mktemp)
trap 'rm -f "$input"' EXIT
# Deterministic text: the sentence repeated to 256 KiB.
yes "The quick brown fox jumps over the lazy dog." | head -c 262144 > "$input"
cargo run --locked -q --release -- call testdata/rust/wasm/count_vowels.wasm count_vowels \
  --input-file "$input" --loop 200 --profile "$out" --profile-interval 250us > /dev/null
echo "wrote $out"
