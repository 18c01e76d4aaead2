"""What one task did: MACs, bytes per buffer role, the BOs it touched and its log notes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .memory import Bo

ROLES = ("regcmd", "input", "weights", "bias", "bn", "ew", "output")


@dataclass(slots=True)
class TaskStats:
    macs: int = 0
    bytes_read: Counter = field(default_factory=Counter)
    bytes_written: Counter = field(default_factory=Counter)
    bos_read: dict[int, str] = field(default_factory=dict)  # handle -> first role
    bos_written: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # warnings for the fault log
    # The in-stream chain (tail entries 1 and 2): next regcmd address and fetch amount.
    chain: tuple[int, int] | None = None

    def read(self, role: str, bo: Bo | None, nbytes: int) -> None:
        self.bytes_read[role] += nbytes
        if bo is not None:
            self.bos_read.setdefault(bo.handle, role)

    def write(self, role: str, bo: Bo | None, nbytes: int) -> None:
        self.bytes_written[role] += nbytes
        if bo is not None:
            self.bos_written.setdefault(bo.handle, role)
