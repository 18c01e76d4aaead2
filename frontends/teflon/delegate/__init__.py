"""libteflon.so: the TFLite external delegate (Mesa: src/gallium/frontends/teflon).

``library_path()`` is what to hand to ``load_delegate``; ``delegate_stats(d)`` reads what a
loaded delegate claimed and how long its partitions took. The library itself is built by meson
from ``tflite_abi.h``, ``build_ffi.py`` (cffi, embedding mode) and ``shim.c``; its Python half is
``device.py``.
"""

from __future__ import annotations

import importlib.resources
import os
import sys
from typing import Any

from .stats import DelegateStats, PartitionStats, estimated_hardware_ms

LIBRARY_NAME = "libteflon.so"
# The cffi module name of the installed library (build_ffi.MODULE_NAME, which this package
# does not import at run time: it needs cffi's build machinery).
MODULE_NAME = "_mesa_npu_teflon"

__all__ = [
    "LIBRARY_NAME",
    "MODULE_NAME",
    "DelegateStats",
    "PartitionStats",
    "delegate_stats",
    "estimated_hardware_ms",
    "library_path",
]


def library_path() -> str:
    """Path of ``libteflon.so``: installed next to this package's parent, or, for an editable
    install, in the meson build directory (meson-python's loader maps it there)."""
    path = importlib.resources.files("mesa_npu.frontends.teflon") / LIBRARY_NAME
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{LIBRARY_NAME} was not built (expected at {path})")
    return path


def delegate_stats(delegate: Any, module: str = MODULE_NAME) -> DelegateStats:
    """Stats of a delegate from ``load_delegate`` (or its ``TfLiteDelegate*`` address)."""
    loaded = sys.modules.get(module)
    library = getattr(loaded, "library", None)
    if library is None:
        raise LookupError(f"{LIBRARY_NAME} ({module}) is not loaded in this process")
    address = delegate if isinstance(delegate, int) else delegate._get_native_delegate_pointer()
    return library.stats(address)
