"""cffi build script of libteflon.so: emits the C of the Python half, never compiles it.

Meson runs it in a ``custom_target`` (``python build_ffi.py --output teflon_cffi.c``) and compiles
the result with ``shim.c`` into ``libteflon.so`` against the embedded Python; tests run it with a
modified header to build a deliberately wrong ABI. The cdef is ``tflite_abi.h`` verbatim (one
source of truth, also ``#include``d by the C) plus the declarations below:

* ``embedding_api``: the two functions the shim's exported TFLite entry points forward to;
* ``extern "Python"`` / ``"Python+C"``: the delegate's Prepare and the partition kernel callbacks
  (the latter are referenced from the shim's by-value ``TfLiteRegistration``);
* the shim's three C helpers (``shim.h``).

The init code runs once per process when the host first calls in: it finds the package from the
library's own path (``dladdr``) when ``mesa_npu`` is not importable yet, and installs a
:class:`~mesa_npu.frontends.teflon.delegate.device.Library`, which registers the callbacks.
"""

from __future__ import annotations

import argparse
import os
import sys

import cffi

MODULE_NAME = "_mesa_npu_teflon"
HEADER = "tflite_abi.h"

DECLARATIONS = """
TfLiteDelegate *teflon_py_create_delegate(const char *const *keys, const char *const *values,
                                          size_t count, void (*report_error)(const char *));
void teflon_py_destroy_delegate(TfLiteDelegate *delegate);
"""

CALLBACKS = """
extern "Python" TfLiteStatus teflon_delegate_prepare(TfLiteContext *, TfLiteDelegate *);
extern "Python+C" void *teflon_partition_init(TfLiteContext *, const char *, size_t);
extern "Python+C" void teflon_partition_free(TfLiteContext *, void *);
extern "Python+C" TfLiteStatus teflon_partition_prepare(TfLiteContext *, TfLiteNode *);
extern "Python+C" TfLiteStatus teflon_partition_invoke(TfLiteContext *, TfLiteNode *);

TfLiteStatus teflon_replace_node_subsets(TfLiteContext *, TfLiteDelegate *,
                                         const TfLiteIntArray *);
void teflon_report_error(TfLiteContext *, const char *);
const char *teflon_library_path(void);
"""

SOURCE = f"""
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "{HEADER}"
#include "shim.h"
"""

# The package directory is three levels above the library when it is installed
# (<site>/mesa_npu/frontends/teflon/libteflon.so).
INIT_CODE = """
import os
import sys

from {module} import ffi, lib

_path = ffi.string(lib.teflon_library_path()).decode(errors="surrogateescape")
try:
    try:
        import mesa_npu  # noqa: F401 - a Python host, or TEFLON_PYTHON's environment
    except ImportError:
        import site

        site.addsitedir(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(_path)))))
    from mesa_npu.frontends.teflon.delegate.device import Library

    sys.modules["{module}"].library = Library(ffi, lib, _path, "{module}")
except Exception as _error:
    # Without this, cffi would print the traceback and every call would return 0: say why
    # through the host's error reporter instead.
    _reason = (
        f"teflon: cannot load the delegate's Python side from {{_path}} "
        f"({{type(_error).__name__}}: {{_error}}); sys.path: {{sys.path}}"
    )

    @ffi.def_extern(name="teflon_py_create_delegate")
    def _create(keys, values, count, report_error):
        if report_error != ffi.NULL:
            report_error(_reason.encode(errors="replace"))
        else:
            sys.stderr.write(_reason + "\\n")
        return ffi.NULL
"""


def make_builder(header_text: str, module: str = MODULE_NAME) -> cffi.FFI:
    """The FFI builder for ``module`` over the given ABI header text."""
    ffi = cffi.FFI()
    ffi.cdef(header_text)
    ffi.embedding_api(DECLARATIONS)
    ffi.cdef(CALLBACKS)
    ffi.set_source(module, SOURCE)
    ffi.embedding_init_code(INIT_CODE.format(module=module))
    return ffi


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--header", default=os.path.join(here, HEADER))
    parser.add_argument("--module", default=MODULE_NAME)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    with open(args.header, encoding="utf-8") as f:
        header = f.read()
    make_builder(header, args.module).emit_c_code(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
