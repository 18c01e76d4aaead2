"""A DRM/accel file: the one interface a driver's winsys talks to.

Two implementations share it: :class:`KernelDrmFile` opens a real device node and issues real
``ioctl(2)``/``mmap(2)`` calls; ``drm_shim.<hw>`` devices implement the same three methods in
process, decoding the very same struct bytes (``util.uapi``). A driver cannot tell them apart.
"""

from __future__ import annotations

import errno
import mmap
import os
from typing import Any, Protocol

from .uapi import ffi

_libc = ffi.dlopen(None)
ffi.cdef("int ioctl(int fd, unsigned long request, ...);")


class DrmError(OSError):
    """An ioctl failed; ``errno`` holds the error number, the message names the request."""


class DrmFile(Protocol):
    def ioctl(self, request: int, arg: Any) -> None:
        """Issue ``request`` with ``arg`` (a cffi struct pointer); raise DrmError on failure."""

    def mmap(self, offset: int, size: int) -> memoryview:
        """Map ``size`` bytes at the fake offset a GEM_INFO/CREATE_BO returned."""

    def close(self) -> None: ...


class KernelDrmFile:
    """A device node of the running kernel (``/dev/accel/accel0``, ``/dev/dri/renderD128``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self._maps: list[mmap.mmap] = []

    def ioctl(self, request: int, arg: Any) -> None:
        while True:
            if _libc.ioctl(self.fd, ffi.cast("unsigned long", request), arg) == 0:
                return
            err = ffi.errno
            if err not in (errno.EINTR, errno.EAGAIN):
                raise DrmError(err, f"{self.path}: ioctl {request:#x} failed: {os.strerror(err)}")

    def mmap(self, offset: int, size: int) -> memoryview:
        m = mmap.mmap(
            self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=offset
        )
        self._maps.append(m)
        return memoryview(m)

    def close(self) -> None:
        for m in self._maps:
            m.close()
        self._maps.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
