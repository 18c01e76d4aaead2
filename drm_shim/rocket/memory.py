"""Buffer objects and the per-file NPU address space (Linux: ``rocket_gem.c``, the file's
``drm_mm`` and its IOMMU domain).

A BO's memory is one numpy ``uint8`` array of the page-rounded size; the CPU maps it as a
memoryview of that array and the NPU model reads and writes it through strided numpy views, so
nothing is copied between the two sides. Every NPU access goes through
:meth:`AddressSpace.view`, which turns an address outside every BO into an IOMMU fault naming
what was accessed.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .faults import NpuFault

PAGE_SIZE = 4096  # Linux PAGE_SIZE on arm64 Rockchip kernels; drm_gem_shmem rounds to it
IOVA_LIMIT = 2**32  # rockchip-iommu aperture: 32-bit device addresses
MMAP_OFFSET_BASE = 2**32  # DRM_FILE_PAGE_OFFSET_START << PAGE_SHIFT on 64-bit kernels


def page_align(size: int) -> int:
    return -(-size // PAGE_SIZE) * PAGE_SIZE


@dataclass(eq=False, slots=True)
class Bo:
    """One GEM object of a simulated file."""

    handle: int
    size: int  # as requested
    iova: int
    mmap_offset: int
    data: np.ndarray  # uint8, page-rounded
    # The record of the last job that listed this BO as an out-BO (its fence), and of the jobs
    # that listed it as an in-BO since.
    writer: Any = None
    readers: list[Any] = field(default_factory=list)

    @property
    def mapped_size(self) -> int:
        return self.data.size

    @property
    def end(self) -> int:
        return self.iova + self.mapped_size


class AddressSpace:
    """First-fit IOVA allocator and address lookup, private to one file."""

    def __init__(self, base: int, guard_pages: int) -> None:
        self.base = page_align(base)
        self.guard = guard_pages * PAGE_SIZE
        self._starts: list[int] = []  # sorted IOVAs of mapped BOs
        self._bos: list[Bo] = []  # in the same order

    def allocate(self, size: int) -> int | None:
        """A page-aligned IOVA for ``size`` bytes (page-rounded), or None when full."""
        need = page_align(size) + self.guard
        at = self.base
        for bo in self._bos:
            if bo.iova - at >= need:
                break
            at = max(at, bo.end + self.guard)
        return at if at + need <= IOVA_LIMIT else None

    def map(self, bo: Bo) -> None:
        i = bisect.bisect(self._starts, bo.iova)
        self._starts.insert(i, bo.iova)
        self._bos.insert(i, bo)

    def unmap(self, bo: Bo) -> None:
        i = self._bos.index(bo)
        del self._starts[i], self._bos[i]

    def find(self, address: int) -> Bo | None:
        i = bisect.bisect(self._starts, address) - 1
        if i >= 0 and address < self._bos[i].end:
            return self._bos[i]
        return None

    def describe(self, address: int) -> str:
        """Where ``address`` lies relative to the BOs, for fault messages."""
        i = bisect.bisect(self._starts, address) - 1
        if i >= 0:
            bo = self._bos[i]
            if address < bo.end:
                return f"inside BO {bo.handle} ({bo.iova:#x}+{bo.mapped_size:#x})"
            return (
                f"{address - bo.end:#x} bytes past the end of BO {bo.handle} "
                f"({bo.iova:#x}+{bo.mapped_size:#x})"
            )
        if self._bos:
            return f"below the first BO ({self._bos[0].iova:#x})"
        return "no BO is mapped"

    def view(
        self,
        what: str,
        address: int,
        shape: tuple[int, ...],
        strides: tuple[int, ...],
        *,
        writeable: bool = False,
    ) -> tuple[Bo | None, np.ndarray]:
        """A strided uint8 view of NPU memory: element ``i`` at ``address + Σ i_k·strides_k``.

        Raises an IOMMU :class:`NpuFault` naming ``what`` unless every byte lies in one BO.
        """
        if any(n <= 0 for n in shape):  # nothing is accessed
            return None, np.zeros(tuple(max(n, 0) for n in shape), dtype=np.uint8)
        extent = 1 + sum((n - 1) * s for n, s in zip(shape, strides, strict=True))
        bo = self.find(address)
        if bo is None or address + extent > bo.end:
            raise NpuFault(
                "iommu",
                f"IOMMU fault: {what} {'write' if writeable else 'read'} of {extent} bytes at "
                f"{address:#010x}..{address + extent - 1:#010x}: "
                + (
                    self.describe(address)
                    if bo is None
                    else f"runs {address + extent - bo.end:#x} bytes past the end of BO "
                    f"{bo.handle} ({bo.iova:#x}+{bo.mapped_size:#x})"
                ),
            )
        offset = address - bo.iova
        base = bo.data[offset : offset + extent]
        view = np.lib.stride_tricks.as_strided(base, shape, strides, writeable=writeable)
        return bo, view

    def read(self, what: str, address: int, nbytes: int) -> tuple[Bo | None, np.ndarray]:
        """``nbytes`` contiguous bytes (a view; callers do not write through it)."""
        bo = self.find(address)
        if bo is None or nbytes <= 0 or address + nbytes > bo.end:
            return self.view(what, address, (nbytes,), (1,))  # the fault, or nothing read
        offset = address - bo.iova
        return bo, bo.data[offset : offset + nbytes]
