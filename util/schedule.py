"""Multi-core overlap for the cost model: when each job of one invoke starts and ends.

Jobs are placed in submission order, as the kernel queues them (Linux rocket: one DRM scheduler
entity per file, implicit fences on the BOs a job lists; etnaviv: the front end runs one
instruction after the other). A job starts when the jobs it depends on have ended and every core
it uses is free. Job ``j`` depends on an earlier job ``i`` when ``i`` writes a buffer ``j`` reads
or writes, or reads a buffer ``j`` writes (the kernel's implicit read/write fences), and on its
predecessor whenever either of them reports no buffers at all (nothing to prove they are
independent). Which core a job used is what the device reported.

Because each job waits only for jobs placed before it, the timeline has no idle gap: from 0 to
the makespan some job always runs. :func:`attribute` splits the makespan among the jobs (each
instant to the lowest-numbered running job), so per-job wall shares are integers that sum
exactly to the makespan, which is what lets a per-layer report add up.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Slot:
    """One job to place: its estimated cycles, the cores it occupies, the buffers it touches."""

    cycles: int
    cores: tuple[int, ...]
    reads: tuple[int, ...] = ()
    writes: tuple[int, ...] = ()

    @property
    def buffers_known(self) -> bool:
        return bool(self.reads or self.writes)


@dataclass(frozen=True, slots=True)
class Schedule:
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    walls: tuple[int, ...]  # each job's share of the makespan; sums to it exactly

    @property
    def makespan(self) -> int:
        return max(self.ends, default=0)


def depends(earlier: Slot, later: Slot) -> bool:
    """Whether ``later`` must wait for ``earlier`` (module docstring)."""
    if not (earlier.buffers_known and later.buffers_known):
        return True
    written = set(earlier.writes)
    return bool(
        written & set(later.reads)
        or written & set(later.writes)
        or set(earlier.reads) & set(later.writes)
    )


def place(slots: Sequence[Slot]) -> tuple[list[int], list[int]]:
    """Start and end cycle of every job, in submission order."""
    starts: list[int] = []
    ends: list[int] = []
    core_free: dict[int, int] = {}
    for j, slot in enumerate(slots):
        ready = 0
        for i in range(j):
            if depends(slots[i], slot):
                ready = max(ready, ends[i])
        start = max([ready] + [core_free.get(c, 0) for c in slot.cores])
        end = start + slot.cycles
        for c in slot.cores:
            core_free[c] = end
        starts.append(start)
        ends.append(end)
    return starts, ends


def attribute(starts: Sequence[int], ends: Sequence[int]) -> list[int]:
    """Each job's share of the makespan: every instant goes to the lowest-numbered job running
    then. The shares sum to the covered time (the makespan, since the timeline has no gap)."""
    points = sorted(set(starts) | set(ends))
    walls = [0] * len(starts)
    for t0, t1 in itertools.pairwise(points):
        for j, (s, e) in enumerate(zip(starts, ends, strict=True)):
            if s <= t0 and t1 <= e:
                walls[j] += t1 - t0
                break
    return walls


def schedule(slots: Sequence[Slot]) -> Schedule:
    starts, ends = place(slots)
    return Schedule(tuple(starts), tuple(ends), tuple(attribute(starts, ends)))
