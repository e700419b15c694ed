#!/usr/bin/env bash
# Builds the test files written against upstream's API (tests/upstream_api.rs,
# tests/log_callback.rs) with upstream's `extism` 1.41.0 from crates.io instead of this crate,
# so that they keep using nothing upstream lacks. Compiles only (`--no-run`): behaviour is
# checked by `cargo test` on this crate. Needs the nightly toolchain (upstream's wasmtime does)
# and a long first build (wasmtime 49 from scratch); CI does not run it.
#
#   scripts/upstream-check.sh [--run]     --run also runs the tests against upstream
#
# Target directory: $UPSTREAM_CHECK_TARGET (default /work/bench-target-upstream, else
# target/upstream-check when /work does not exist).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
default_target="$root/target/upstream-check"
[ -d /work ] && default_target=/work/bench-target-upstream
target="${UPSTREAM_CHECK_TARGET:-$default_target}"

mode=(--no-run)
[ "${1:-}" = "--run" ] && mode=(--no-fail-fast)

# The target directory may be shared by several checkouts, whose test units cargo cannot tell
# apart (it then reuses another checkout's binaries): always rebuild the two test files.
rm -rf "$target"/debug/.fingerprint/extism-upstream-check-*

cargo +nightly test --locked "${mode[@]}" \
    --manifest-path "$root/scripts/upstream-check/Cargo.toml" --target-dir "$target"
echo "upstream-check: the upstream API test files build against extism 1.41.0" >&2
