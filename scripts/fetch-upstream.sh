#!/usr/bin/env bash
# Fetches upstream Extism's C library (libextism_sys.so from the PyPI wheel extism-sys) into
# target/upstream/, for the side-by-side benchmark (benches/compare). Never committed.
#
#   scripts/fetch-upstream.sh            # prints the path of the .so
#   EXTISM_SYS_VERSION=1.41.0 scripts/fetch-upstream.sh
#
# Idempotent: a library already unpacked for that version is reused without network access.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
version="${EXTISM_SYS_VERSION:-1.41.0}"
dir="$root/target/upstream/extism-sys-$version"
python="${PYTHON:-python3}"

find_so() { find "$dir/unpacked" -name 'libextism_sys*.so' -o -name '_extism_sys*.so' 2>/dev/null | head -1; }

so="$(find_so || true)"
if [ -z "$so" ]; then
    rm -rf "$dir"
    mkdir -p "$dir/wheel" "$dir/unpacked"
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
        "extism-sys==$version" -d "$dir/wheel" >&2
    wheel="$(find "$dir/wheel" -name '*.whl' | head -1)"
    [ -n "$wheel" ] || { echo "fetch-upstream: pip downloaded no wheel for extism-sys==$version" >&2; exit 1; }
    "$python" -m zipfile -e "$wheel" "$dir/unpacked"
    so="$(find_so || true)"
    [ -n "$so" ] || { echo "fetch-upstream: no libextism_sys .so in $wheel" >&2; exit 1; }
fi
echo "$so"
