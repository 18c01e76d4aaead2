"""Scoped control of the BLAS thread count (numpy's bundled OpenBLAS).

The reference evaluator's matrices are small (a layer's im2col against its weights), and LiteRT's
reference kernels, which it is measured against, run on one thread. OpenBLAS threads spin while
they wait, so on a loaded two-core machine its default of one thread per core made a whole
mobilenet_v2 invoke three times slower than one thread. :func:`blas_threads` sets the count for
the duration of a block and restores it; where no OpenBLAS is found it does nothing.

The count is process-wide: two blocks running at once in different threads would race on it.
The library is located through ``/proc/self/maps`` (the way threadpoolctl finds loaded BLAS
libraries), so no extra dependency is needed.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# (setter, getter) symbol names of the OpenBLAS builds numpy ships or links.
SYMBOLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


@dataclass(frozen=True, slots=True)
class BlasControl:
    set_threads: ctypes._CFuncPtr
    get_threads: ctypes._CFuncPtr


def find_openblas() -> BlasControl | None:
    """The thread controls of the OpenBLAS loaded in this process, if any."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(p for p in paths if ".so" in p):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for setter, getter in SYMBOLS:
            if hasattr(lib, setter) and hasattr(lib, getter):
                set_threads, get_threads = getattr(lib, setter), getattr(lib, getter)
                set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
                get_threads.argtypes, get_threads.restype = [], ctypes.c_int
                return BlasControl(set_threads, get_threads)
    return None


@contextmanager
def blas_threads(count: int, control: BlasControl | None) -> Iterator[None]:
    """Run the block with ``count`` BLAS threads (``control`` from :func:`find_openblas`)."""
    if control is None:
        yield
        return
    previous = control.get_threads()
    if previous == count:
        yield
        return
    control.set_threads(count)
    try:
        yield
    finally:
        control.set_threads(previous)
