#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ for a while each (default 600 s) and prints, per target,
# the executions done and whether anything was found. Needs cargo-fuzz (`cargo install
# cargo-fuzz`); it works on a stable toolchain through RUSTC_BOOTSTRAP, without sanitizers.
#   scripts/fuzz.sh                 # every target, 600 s each
#   scripts/fuzz.sh 60 manifest     # one target for 60 s
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O -s none
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log="target/fuzz-$t.log"
    status=0
    cargo fuzz run -O -s none "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=4096 \
        -timeout=20 -print_final_stats=1 >"$log" 2>&1 || status=$?
    execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
    if [ "$status" -eq 0 ]; then
        echo "$t: $execs executions, no findings"
    else
        echo "$t: $execs executions, FINDING (exit $status); see fuzz/$log and fuzz/artifacts/$t/"
    fi
done
