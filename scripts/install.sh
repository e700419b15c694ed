#!/usr/bin/env bash
# Installs libextism for C and C++ programs: the shared and static libraries, include/extism.h
# and a pkg-config file, so that `cc app.c $(pkg-config --cflags --libs extism)` works.
#
#   scripts/install.sh [--prefix DIR] [--from DIR]
#
#   --prefix DIR  installation prefix (default: $PREFIX, else /usr/local); $DESTDIR is
#                 prepended to every path written, for packaging
#   --from DIR    install libextism.so and libextism.a found in DIR instead of building them
#                 with `cargo build --release --lib`
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${PREFIX:-/usr/local}"
from=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --from) from="$2"; shift 2 ;;
        *) echo "usage: $0 [--prefix DIR] [--from DIR]" >&2; exit 2 ;;
    esac
done

if [ -z "$from" ]; then
    (cd "$root" && cargo build --release --locked --lib)
    from="${CARGO_TARGET_DIR:-$root/target}/release"
fi
for lib in libextism.so libextism.a; do
    [ -f "$from/$lib" ] || { echo "$from/$lib not found" >&2; exit 1; }
done

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)"
libdir="$prefix/lib"
includedir="$prefix/include"
dest="${DESTDIR:-}"

install -d "$dest$libdir/pkgconfig" "$dest$includedir"
install -m 0755 "$from/libextism.so" "$dest$libdir/libextism.so"
install -m 0644 "$from/libextism.a" "$dest$libdir/libextism.a"
install -m 0644 "$root/include/extism.h" "$dest$includedir/extism.h"
# Libs.private: what the static library needs from the system (`pkg-config --static`).
cat > "$dest$libdir/pkgconfig/extism.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: extism
Description: WebAssembly plugin runtime compatible with Extism (C API)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lextism
Libs.private: -lpthread -ldl -lm
PC
echo "installed libextism $version into $dest$prefix"
