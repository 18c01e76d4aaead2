"""A core's register file and the read-side view one task's blocks get of it.

The hardware has two register groups per block (NVDLA ``S_POINTER`` ping-pong); the model keeps
one group per core, written by regcmd entries and the kernel's MMIO writes, persisting across
tasks until a core reset (``docs/rocket-npu-model.md`` §3). Blocks read registers through
:class:`TaskRegs`, which unpacks each register once per task with the generated accessors and
notes every register the task reads without having written it.
"""

from __future__ import annotations

from typing import Any

from ...drivers.rocket import rocket_regs as R


class RegisterFile:
    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[int, int] = {}

    def write(self, reg: R.Register, value: int) -> None:
        self.values[reg.offset] = value

    def reset(self) -> None:
        self.values.clear()


class TaskRegs:
    """Unpacked registers for one task; ``stale`` lists the ones it read but did not write."""

    __slots__ = ("_cache", "stale", "values", "written")

    def __init__(self, values: dict[int, int], written: set[int]) -> None:
        self.values = values
        self.written = written
        self.stale: list[str] = []
        self._cache: dict[int, Any] = {}

    def __call__(self, reg: R.Register) -> Any:
        record = self._cache.get(reg.offset)
        if record is None:
            if reg.offset not in self.written:
                self.stale.append(reg.path)
            record = reg.unpack(self.values.get(reg.offset, 0))
            self._cache[reg.offset] = record
        return record
