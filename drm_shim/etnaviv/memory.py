"""GPU memory as the NPU sees it during one submit: the submit's BOs at their GPU addresses.

The model reads job configurations, coefficients, images and tables only through
:class:`SubmitMemory`, which resolves a GPU virtual address through the submit's BO table (the
softpin addresses) and raises a :class:`JobFault` of kind MMU naming the address, what was being
accessed and the length when the range is not inside one of them. (Real hardware would also
reach BOs mapped by earlier submits; requiring the BO in this submit's table is stricter and
catches a driver that forgot to list a buffer, which would also miss the kernel's fencing.)
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mesa_npu.util.uapi import ETNA_SUBMIT_BO_WRITE

from .faults import FaultKind, JobFault


@dataclass(frozen=True, slots=True)
class Mapped:
    """One BO of a submit at its GPU address."""

    va: int
    handle: int
    data: np.ndarray  # the BO's uint8 memory (shared with the CPU mapping)
    flags: int  # ETNA_SUBMIT_BO_READ / _WRITE of the submit's BO table

    @property
    def end(self) -> int:
        return self.va + self.data.size


class SubmitMemory:
    def __init__(self, mapped: list[Mapped], warn: Callable[[str], None]) -> None:
        self._mapped = sorted(mapped, key=lambda m: m.va)
        self._starts = [m.va for m in self._mapped]
        self._warn = warn
        self._warned: set[int] = set()

    def locate(self, va: int, nbytes: int, what: str) -> tuple[Mapped, int]:
        """The BO holding ``[va, va + nbytes)`` and the offset of ``va`` in it."""
        i = bisect.bisect_right(self._starts, va) - 1
        if i >= 0:
            m = self._mapped[i]
            if va + max(nbytes, 1) <= m.end:
                return m, va - m.va
            if va < m.end:
                raise JobFault(
                    FaultKind.MMU,
                    f"{what}: {nbytes} bytes at {va:#010x} run past the end of BO "
                    f"{m.handle} ({m.va:#010x}..{m.end:#010x})",
                )
        raise JobFault(
            FaultKind.MMU, f"{what}: address {va:#010x} (+{nbytes} bytes) is in no BO of the submit"
        )

    def read(self, va: int, nbytes: int, what: str) -> np.ndarray:
        m, off = self.locate(va, nbytes, what)
        return m.data[off : off + nbytes]

    def read_to_end(self, va: int, what: str) -> np.ndarray:
        """From ``va`` to the end of its BO (coefficient buffers carry their own sizes)."""
        m, off = self.locate(va, 1, what)
        return m.data[off:]

    def write_view(self, va: int, nbytes: int, what: str) -> np.ndarray:
        m, off = self.locate(va, nbytes, what)
        if not m.flags & ETNA_SUBMIT_BO_WRITE and m.handle not in self._warned:
            self._warned.add(m.handle)
            self._warn(f"{what} writes BO {m.handle}, which the submit lists without WRITE")
        return m.data[off : off + nbytes]

    def words(self, va: int, nbytes: int, what: str) -> np.ndarray:
        """Little-endian u32 words (job configurations, tables)."""
        return self.read(va, nbytes, what).view("<u4")
