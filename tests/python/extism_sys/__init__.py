"""Stand-in for PyPI's `extism_sys`, which the `extism` SDK imports as
`from extism_sys import lib, ffi`.

Upstream's package is a cffi ABI-mode module: `ffi` declares the functions of extism.h and
`lib = ffi.dlopen(<bundled libextism>)`. This one declares them from this repository's
include/extism.h (so the header itself is checked by cffi's parser) and opens the library named
by $EXTISM_LIB.
"""

import os
import re

from cffi import FFI

__all__ = ["lib", "ffi"]

_HEADER = os.path.join(os.path.dirname(__file__), "..", "..", "..", "include", "extism.h")


def _declarations(header: str) -> str:
    """The header without comments and preprocessor lines (cffi's cdef takes plain C)."""
    text = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"#ifdef __cplusplus.*?#endif", "", text, flags=re.S)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


ffi = FFI()
with open(_HEADER, encoding="utf-8") as f:
    ffi.cdef(_declarations(f.read()))

lib = ffi.dlopen(os.environ["EXTISM_LIB"])
