#!/usr/bin/env bash
# Runs the Python host SDK (PyPI package `extism`) against this repository's libextism.
#
#   EXTISM_LIB=/path/to/libextism.so scripts/python-tests.sh [pytest args...]
#
# The SDK imports `extism_sys` for its cffi `ffi` and `lib`; tests/python/extism_sys provides
# them from include/extism.h and $EXTISM_LIB instead of upstream's bundled library.
# A virtual environment is made once ($EXTISM_PY_VENV, default target/python-venv) and reused
# while tests/python/requirements.txt is unchanged, so re-runs need no network.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
: "${EXTISM_LIB:?set EXTISM_LIB to the libextism.so to test}"
venv="${EXTISM_PY_VENV:-$root/target/python-venv}"
python="${PYTHON:-python3}"
requirements="$root/tests/python/requirements.txt"

mkdir -p "$(dirname "$venv")"
# One setup at a time (two test runs may share the venv).
exec 9>"$venv.lock"
flock 9

stamp="$venv/.installed"
want="$(sha256sum "$requirements" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version)' | head -1)"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c '' 2>/dev/null || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$requirements"
    echo "$want" > "$stamp"
fi
flock -u 9

export EXTISM_LIB
export PYTHONPATH="$root/tests/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
cd "$root/tests/python"
exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
