"""GEM buffer objects and submission over a DRM file (Mesa: ``src/etnaviv/drm``'s
``etna_bo_new``, ``etna_bo_map``, ``etna_bo_cpu_prep``, ``etna_cmd_stream_flush``,
``etna_pipe_wait``; Linux ``include/uapi/drm/etnaviv_drm.h``).

The winsys talks to a :class:`~mesa_npu.util.drm.DrmFile` only: the kernel's render node
(``KernelDrmFile``) or the simulated device (``drm_shim.etnaviv``), which decode the very same
structs (``util.uapi``); it cannot tell them apart. Every buffer object gets a softpin GPU
address chosen by the driver (``ETNA_SUBMIT_SOFTPIN``): the compiled subgraph already holds
those addresses (relocated once, see ``ml``).
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass

import numpy as np

from ...util import uapi
from ...util.drm import DrmError, DrmFile
from ...util.uapi import ffi

# How long an invoke waits for its fence before calling the job hung. Linux's scheduler
# recovers a hung job after 500 ms (etnaviv_sched.c); waiting longer lets it report the error.
FENCE_TIMEOUT_NS = 5_000_000_000
VA_LIMIT = 2**32  # GPU addresses are 32 bits (the job configurations' address fields)
NS = 1_000_000_000


@dataclass(eq=False)
class EtnaBo:
    """One GEM object: handle, size, CPU mapping and the GPU address the driver chose."""

    handle: int
    size: int
    map: memoryview
    va: int

    def array(self) -> np.ndarray:
        """The mapping as a writable uint8 array (no copy)."""
        return np.frombuffer(self.map, dtype=np.uint8)


class Winsys:
    def __init__(self, drm: DrmFile, pipe: int = uapi.ETNA_PIPE_3D) -> None:
        self.drm = drm
        self.pipe = pipe

    def get_param(self, param: int) -> int:
        arg = ffi.new("struct drm_etnaviv_param *", {"pipe": self.pipe, "param": param})
        self.drm.ioctl(uapi.ETNAVIV_GET_PARAM, arg)
        return int(arg.value)

    def softpin_range(self) -> tuple[int, int]:
        """[start, end) of the GPU addresses the device lets the driver choose."""
        return self.get_param(uapi.ETNAVIV_PARAM_SOFTPIN_START_ADDR), VA_LIMIT

    def bo_new(self, size: int, va: int) -> EtnaBo:
        new = ffi.new("struct drm_etnaviv_gem_new *", {"size": size, "flags": uapi.ETNA_BO_WC})
        self.drm.ioctl(uapi.ETNAVIV_GEM_NEW, new)
        info = ffi.new("struct drm_etnaviv_gem_info *", {"handle": new.handle})
        self.drm.ioctl(uapi.ETNAVIV_GEM_INFO, info)
        return EtnaBo(int(new.handle), size, self.drm.mmap(int(info.offset), size), va)

    def bo_close(self, bo: EtnaBo) -> None:
        arg = ffi.new("struct drm_gem_close *", {"handle": bo.handle})
        self.drm.ioctl(uapi.DRM_IOCTL_GEM_CLOSE, arg)

    def cpu_prep(self, bo: EtnaBo, op: int) -> None:
        deadline = _deadline(FENCE_TIMEOUT_NS)
        arg = ffi.new(
            "struct drm_etnaviv_gem_cpu_prep *",
            {"handle": bo.handle, "op": op, "timeout": deadline},
        )
        self.drm.ioctl(uapi.ETNAVIV_GEM_CPU_PREP, arg)

    def cpu_fini(self, bo: EtnaBo) -> None:
        arg = ffi.new("struct drm_etnaviv_gem_cpu_fini *", {"handle": bo.handle})
        self.drm.ioctl(uapi.ETNAVIV_GEM_CPU_FINI, arg)

    def submit(self, stream: np.ndarray, bos: list[tuple[EtnaBo, int]]) -> int:
        """Submit ``stream`` (uint32 words) with ``bos`` (object, READ/WRITE flags) softpinned at
        their addresses; returns the fence."""
        words = np.ascontiguousarray(stream, dtype="<u4")
        table = ffi.new("struct drm_etnaviv_gem_submit_bo[]", len(bos))
        for i, (bo, flags) in enumerate(bos):
            table[i].flags = flags
            table[i].handle = bo.handle
            table[i].presumed = bo.va
        buf = ffi.from_buffer(words)
        arg = ffi.new(
            "struct drm_etnaviv_gem_submit *",
            {
                "pipe": self.pipe,
                "exec_state": uapi.ETNA_PIPE_3D,
                "nr_bos": len(bos),
                "stream_size": words.nbytes,
                "bos": int(ffi.cast("uintptr_t", table)),
                "stream": int(ffi.cast("uintptr_t", buf)),
                "flags": uapi.ETNA_SUBMIT_SOFTPIN,
                "fence_fd": -1,
            },
        )
        self.drm.ioctl(uapi.ETNAVIV_GEM_SUBMIT, arg)
        return int(arg.fence)

    def wait_fence(self, fence: int, timeout_ns: int = FENCE_TIMEOUT_NS) -> None:
        arg = ffi.new(
            "struct drm_etnaviv_wait_fence *",
            {"pipe": self.pipe, "fence": fence, "timeout": _deadline(timeout_ns)},
        )
        self.drm.ioctl(uapi.ETNAVIV_WAIT_FENCE, arg)


def npu_pipe(drm: DrmFile, ids: tuple[int, int, int]) -> int | None:
    """The pipe (core) of a render node whose (GPU model, revision, customer id) are ``ids``:
    etnaviv exposes each core of a SoC (3D GPU, 2D engine, NPU) as a pipe of one node."""
    params = (
        uapi.ETNAVIV_PARAM_GPU_MODEL,
        uapi.ETNAVIV_PARAM_GPU_REVISION,
        uapi.ETNAVIV_PARAM_GPU_CUSTOMER_ID,
    )
    for pipe in range(uapi.ETNA_MAX_PIPES):
        ws = Winsys(drm, pipe)
        try:
            if tuple(ws.get_param(p) for p in params) == ids:
                return pipe
        except DrmError:
            continue  # no core at this pipe
    return None


def _deadline(timeout_ns: int) -> dict[str, int]:
    """An absolute CLOCK_MONOTONIC deadline, as etnaviv's timeouts are (``get_abs_timeout``)."""
    at = time.clock_gettime_ns(time.CLOCK_MONOTONIC) + timeout_ns
    return {"tv_sec": at // NS, "tv_nsec": at % NS}


def describe_error(e: DrmError) -> str:
    """A short name for the errno an ioctl failed with (EIO: the job faulted or hung)."""
    names = {errno.EIO: "job fault", errno.ETIMEDOUT: "timeout", errno.ENOSPC: "no GPU space"}
    return names.get(e.errno, errno.errorcode.get(e.errno or 0, "error"))
