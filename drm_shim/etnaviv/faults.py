"""Job faults of the simulated NPU: what stops a submit, and the kernel-log lines it leaves.

A :class:`JobFault` raised anywhere in the model ends the submit; the device records a
:class:`FaultRecord` (a ``dmesg`` line) and fails the submit's fence after the job timeout. No
Python exception other than a ``DrmError`` from an ioctl ever leaves the device.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FaultKind(enum.Enum):
    """Classes of faults, as the fault log names them."""

    MMU = "address outside the submit's buffers"
    CONFIG = "bad configuration"
    WEIGHTS = "corrupt weight stream"
    UNSUPPORTED = "not modelled"
    STREAM = "bad command stream"
    HANG = "hung job"
    INTERNAL = "internal model error"
    WARNING = "warning"


class JobFault(Exception):
    """Raised by the model; ``kind`` classifies it, the message names address, field and job."""

    def __init__(self, kind: FaultKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One kernel-log line: which submit (fence), which job of it, and what happened."""

    fence: int
    job: int | None
    unit: str
    kind: FaultKind
    message: str

    def line(self) -> str:
        where = f"fence {self.fence}"
        if self.job is not None:
            where += f" job {self.job}"
        if self.unit:
            where += f" ({self.unit})"
        if self.kind is FaultKind.WARNING:
            return f"etnaviv: {where}: warning: {self.message}"
        return f"etnaviv: {where}: {self.kind.value}: {self.message}"
