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


class UnpackCache:
    """Unpacked register records by (offset, value): streams repeat their values from task to
    task and invoke to invoke, and a record is immutable. Bounded: cleared when full."""

    __slots__ = ("_records",)
    LIMIT = 65536

    def __init__(self) -> None:
        self._records: dict[tuple[int, int], Any] = {}

    def unpack(self, reg: R.Register, value: int) -> Any:
        key = (reg.offset, value)
        record = self._records.get(key)
        if record is None:
            if len(self._records) >= self.LIMIT:
                self._records.clear()
            record = self._records[key] = reg.unpack(value)
        return record


class TaskRegs:
    """Unpacked registers for one task; ``stale`` lists the ones it read but did not write."""

    __slots__ = ("_unpacked", "stale", "values", "written")

    def __init__(self, values: dict[int, int], written: set[int], unpacked: UnpackCache) -> None:
        self.values = values
        self.written = written
        self.stale: list[str] = []
        self._unpacked = unpacked

    def __call__(self, reg: R.Register) -> Any:
        offset = reg.offset
        if offset not in self.written and reg.path not in self.stale:
            self.stale.append(reg.path)
        return self._unpacked.unpack(reg, self.values.get(offset, 0))
