"""How a simulated task ends badly: a fault (the job fails at once, PREP_BO reports EIO) or a
hang (no completion interrupt: the job times out, PREP_BO reports ETIMEDOUT). The model raises
these; the device turns them, and any other exception, into a failed job and a log line, so no
Python exception leaves the model.
"""

from __future__ import annotations

import errno

# Fault kinds and what they mean (docs/rocket-npu-model.md §5).
KINDS = {
    "iommu": "an access outside every BO",
    "stream": "a truncated or malformed regcmd stream",
    "unsupported": "a register setting the model does not implement",
    "inconsistent": "registers that contradict each other",
    "internal": "an exception inside the model",
}


class NpuFault(Exception):
    """The task stopped with an error the hardware would report or corrupt on."""

    errno = errno.EIO

    def __init__(self, kind: str, message: str) -> None:
        assert kind in KINDS, kind
        super().__init__(message)
        self.kind = kind
        self.message = message


class NpuHang(Exception):
    """The task never raises the DPU completion interrupt."""

    errno = errno.ETIMEDOUT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
