#!/usr/bin/env bash
# Regenerates docs/flamegraph.svg, the flame graph shown in README ("Profiling"): a call of the
# bundled testdata/wat/profile.wat plugin's `run`, whose `hot` loop is called by `three_parts`
# with three times the work of `one_part`, sampled every 250 µs.
#   scripts/flamegraph.sh [OUT.svg|OUT.json]   (default docs/flamegraph.svg)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/flamegraph.svg}
cargo run --locked -q -- call testdata/wat/profile.wat run --loop 3 \
  --profile "$out" --profile-interval 250us > /dev/null
echo "wrote $out"
