"""GEM objects, GPU address space and fences of the simulated etnaviv device (the state Linux
keeps in ``etnaviv_gem.c``, ``etnaviv_mmu.c`` and the scheduler's fences).

Time is ``CLOCK_MONOTONIC``, the clock of the absolute ``drm_etnaviv_timespec`` deadlines. The
simulator never sleeps: a wait whose deadline reaches a pending fence's signal time returns as
if it had waited, and the fence (and every earlier one) counts as signalled from then on.
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field

import numpy as np

PAGE_SIZE = 4096  # Linux PAGE_SIZE on the boards concerned (arm64 4K pages)
SOFTPIN_START = 4 * 2**20  # Linux ETNAVIV_SOFTPIN_START_ADDRESS (SZ_4M)
VA_LIMIT = 2**32  # MMUv2 contexts address 32 bits
MMAP_OFFSET_BASE = 2**32  # fake mmap offsets start here (DRM_FILE_PAGE_OFFSET-like)


def now_ns() -> int:
    return time.monotonic_ns()


def page_align(size: int) -> int:
    return -(-size // PAGE_SIZE) * PAGE_SIZE


@dataclass(slots=True)
class GemObject:
    handle: int
    size: int
    flags: int
    data: np.ndarray
    mmap_offset: int
    va: int | None = None  # current GPU mapping, kept while the BO lives (Linux: until reaped)
    write_fence: int = 0  # last submit that listed it WRITE
    read_fence: int = 0  # last submit that listed it at all


@dataclass(slots=True)
class Fence:
    seqno: int
    submitted_ns: int
    signal_ns: int
    error: int = 0  # errno of a faulted or hung submit
    signalled: bool = False


@dataclass(slots=True)
class Timeline:
    """In-order fences of one GPU ring."""

    fences: dict[int, Fence] = field(default_factory=dict)
    last: int = 0

    def issue(self, duration_ns: int, error: int) -> Fence:
        now = now_ns()
        previous = self.fences.get(self.last)
        start = max(now, previous.signal_ns) if previous and not previous.signalled else now
        self.last += 1
        # in order: a fence never signals before the one ahead of it (a recovering GPU)
        fence = Fence(self.last, now, start + duration_ns, error, start + duration_ns <= now)
        self.fences[self.last] = fence
        return fence

    def _signal_through(self, seqno: int) -> None:
        for s in range(seqno, 0, -1):
            f = self.fences.get(s)
            if f is None or f.signalled:
                break
            f.signalled = True

    def is_signalled(self, seqno: int) -> bool:
        fence = self.fences.get(seqno)
        if fence is None:
            return seqno <= self.last
        if not fence.signalled and fence.signal_ns <= now_ns():
            self._signal_through(seqno)
        return fence.signalled

    def wait(self, seqno: int, deadline_ns: int | None, *, fence_errors: bool) -> int:
        """0, or the errno of the wait: EBUSY (``deadline_ns`` None = non-blocking), ETIMEDOUT,
        EIO for a fence that carries an error when ``fence_errors`` is on."""
        if seqno == 0:
            return 0
        fence = self.fences.get(seqno)
        if not self.is_signalled(seqno):
            if deadline_ns is None:
                return errno.EBUSY
            if deadline_ns < fence.signal_ns:
                return errno.ETIMEDOUT
            self._signal_through(seqno)
        if fence is not None and fence.error and fence_errors:
            return fence.error
        return 0
