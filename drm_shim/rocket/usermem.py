"""``copy_from_user`` for the simulated kernel: read the caller's structs and arrays through the
user pointers a driver put in its ioctl arguments.

The kernel copies from the process's address space and returns ``EFAULT`` for an address it
cannot read. The simulated kernel runs in the same process, so it reads ``/proc/self/mem``, where
an unmapped address fails with an error instead of crashing the process. Where that file is not
readable, it falls back to dereferencing the pointer with cffi, refusing only NULL.
"""

from __future__ import annotations

import os

from ...util.uapi import ffi


class UserMemory:
    def __init__(self) -> None:
        try:
            self.fd: int | None = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.fd = None

    def read(self, address: int, size: int) -> bytes | None:
        """``size`` bytes at ``address``, or None when they are not readable."""
        if size == 0:
            return b""
        if address == 0:
            return None
        if self.fd is None:
            return bytes(ffi.buffer(ffi.cast("char *", address), size))
        try:
            data = os.pread(self.fd, size, address)
        except (OSError, OverflowError):
            return None
        return data if len(data) == size else None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
