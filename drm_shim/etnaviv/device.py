"""The simulated etnaviv render node: Linux's etnaviv GEM UAPI in process, in front of a
functional model of the NPU's NN and TP units (Mesa's counterpart: ``src/drm-shim`` plus the
hardware; the kernel side mirrors ``drivers/gpu/drm/etnaviv/etnaviv_drv.c``,
``etnaviv_gem_submit.c`` and ``etnaviv_mmu.c``).

``SimulatedEtnavivFile(soc_name)`` implements :class:`mesa_npu.util.drm.DrmFile`: ``ioctl`` takes
the request number and a cffi pointer to the request's struct (``util.uapi``) and raises
``DrmError`` with the kernel's errno; ``mmap`` maps a BO at the offset ``GEM_INFO`` gave.
Semantics, errors and the model: ``docs/etnaviv-npu-model.md``.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from mesa_npu.util import uapi
from mesa_npu.util.blas import blas_threads, find_openblas
from mesa_npu.util.drm import DrmError
from mesa_npu.util.soc import EtnavivNpu, soc
from mesa_npu.util.uapi import ffi

from .cmdstream import FrontEnd, SubmitContext
from .counters import JobCounters
from .faults import FaultKind, FaultRecord, JobFault
from .gem import (
    MMAP_OFFSET_BASE,
    PAGE_SIZE,
    SOFTPIN_START,
    VA_LIMIT,
    GemObject,
    Timeline,
    page_align,
)
from .memory import Mapped, SubmitMemory
from .submit import SubmitArgs, fail, read_submit
from .switches import ModelSwitches

NEW_FLAGS = uapi.ETNA_BO_CACHE_MASK | uapi.ETNA_BO_FORCE_MMU
CACHE_MODES = (uapi.ETNA_BO_CACHED, uapi.ETNA_BO_WC, uapi.ETNA_BO_UNCACHED)
PREP_OPS = uapi.ETNA_PREP_READ | uapi.ETNA_PREP_WRITE | uapi.ETNA_PREP_NOSYNC
NS_PER_S = 1_000_000_000
KERNEL_VA_START = 2**31  # where this "kernel" places BOs of non-softpin submits (ours)


def _deadline(ts) -> int:
    return int(ts.tv_sec) * NS_PER_S + int(ts.tv_nsec)


class SimulatedEtnavivFile:
    """An open etnaviv render node on a simulated SoC (a row of ``util.soc``)."""

    def __init__(self, soc_name: str, switches: ModelSwitches | None = None) -> None:
        row = soc(soc_name)
        if not isinstance(row.npu, EtnavivNpu):
            raise ValueError(f"SoC '{soc_name}' has no etnaviv NPU (driver {row.driver})")
        self.soc = row
        self.npu: EtnavivNpu = row.npu
        self.switches = switches or ModelSwitches()
        self._objects: dict[int, GemObject] = {}
        self._by_offset: dict[int, int] = {}
        self._next_handle = 1
        self._next_offset = MMAP_OFFSET_BASE
        self._next_kernel_va = KERNEL_VA_START
        self._allocated = 0
        self._timeline = Timeline()
        self._faults: list[FaultRecord] = []
        self._counters: list[JobCounters] = []
        self._decode_cache: dict = {}
        self._frontend = FrontEnd(self.npu, self.switches, self._decode_cache)
        self._blas = find_openblas()  # one BLAS thread per job, as the reference evaluator
        self._handlers: dict[int, tuple[str, Callable[[Any], None]]] = {
            uapi.ETNAVIV_GET_PARAM: ("drm_etnaviv_param", self._get_param),
            uapi.ETNAVIV_GEM_NEW: ("drm_etnaviv_gem_new", self._gem_new),
            uapi.ETNAVIV_GEM_INFO: ("drm_etnaviv_gem_info", self._gem_info),
            uapi.ETNAVIV_GEM_CPU_PREP: ("drm_etnaviv_gem_cpu_prep", self._cpu_prep),
            uapi.ETNAVIV_GEM_CPU_FINI: ("drm_etnaviv_gem_cpu_fini", self._cpu_fini),
            uapi.ETNAVIV_GEM_SUBMIT: ("drm_etnaviv_gem_submit", self._submit),
            uapi.ETNAVIV_WAIT_FENCE: ("drm_etnaviv_wait_fence", self._wait_fence),
            uapi.ETNAVIV_GEM_WAIT: ("drm_etnaviv_gem_wait", self._gem_wait),
            uapi.DRM_IOCTL_GEM_CLOSE: ("drm_gem_close", self._gem_close),
        }

    # -- DrmFile ------------------------------------------------------------------------------

    def ioctl(self, request: int, arg: Any) -> None:
        entry = self._handlers.get(request)
        if entry is None:
            raise DrmError(errno.EINVAL, f"etnaviv: unknown ioctl {request:#x}")
        struct, handler = entry
        handler(ffi.cast(f"struct {struct} *", arg))

    def mmap(self, offset: int, size: int) -> memoryview:
        handle = self._by_offset.get(offset)
        bo = self._objects.get(handle) if handle is not None else None
        if bo is None:
            raise DrmError(errno.EINVAL, f"mmap: no BO at offset {offset:#x}")
        if size > bo.size:
            raise DrmError(errno.EINVAL, f"mmap: {size} bytes of a {bo.size}-byte BO")
        return memoryview(bo.data[:size])

    def close(self) -> None:
        self._objects.clear()
        self._by_offset.clear()
        self._decode_cache.clear()

    # -- what a kernel log and the cost model see ---------------------------------------------

    def fault_log(self) -> tuple[str, ...]:
        return tuple(r.line() for r in self._faults)

    def fault_records(self) -> tuple[FaultRecord, ...]:
        return tuple(self._faults)

    def job_counters(self) -> tuple[JobCounters, ...]:
        return tuple(self._counters)

    def clear_counters(self) -> None:
        self._counters.clear()

    # -- ioctls -------------------------------------------------------------------------------

    def _lookup(self, handle: int, what: str, code: int = errno.ENOENT) -> GemObject:
        bo = self._objects.get(handle)
        if bo is None:
            raise DrmError(code, f"{what}: no BO with handle {handle}")
        return bo

    def _get_param(self, p) -> None:
        if p.pipe >= uapi.ETNA_MAX_PIPES:
            raise DrmError(errno.EINVAL, f"GET_PARAM: pipe {p.pipe} out of range")
        if p.pipe != 0:
            raise DrmError(errno.ENXIO, f"GET_PARAM: no GPU core at pipe {p.pipe}")
        features = range(
            uapi.ETNAVIV_PARAM_GPU_FEATURES_0,
            uapi.ETNAVIV_PARAM_GPU_FEATURES_0 + uapi.ETNAVIV_PARAM_GPU_FEATURES_COUNT,
        )
        values = {
            uapi.ETNAVIV_PARAM_GPU_MODEL: self.npu.gpu_model,
            uapi.ETNAVIV_PARAM_GPU_REVISION: self.npu.gpu_revision,
            uapi.ETNAVIV_PARAM_GPU_CUSTOMER_ID: self.npu.customer_id,
            uapi.ETNAVIV_PARAM_GPU_PRODUCT_ID: 0,  # no public source (docs §1)
            uapi.ETNAVIV_PARAM_GPU_ECO_ID: 0,
            uapi.ETNAVIV_PARAM_SOFTPIN_START_ADDR: SOFTPIN_START,
        } | {param: 0 for param in features}
        if p.param not in values:
            raise DrmError(errno.EINVAL, f"GET_PARAM: invalid param {p.param:#x}")
        p.value = values[p.param]

    def _gem_new(self, a) -> None:
        flags = int(a.flags)
        if flags & ~NEW_FLAGS or flags & uapi.ETNA_BO_CACHE_MASK not in CACHE_MODES:
            raise DrmError(errno.EINVAL, f"GEM_NEW: invalid flags {flags:#x}")
        if a.size == 0:
            raise DrmError(errno.EINVAL, "GEM_NEW: size 0")
        size = page_align(int(a.size))
        if self._allocated + size > self.switches.memory_limit:
            raise DrmError(errno.ENOMEM, f"GEM_NEW: {size} bytes past the memory limit")
        handle = self._next_handle
        self._next_handle += 1
        bo = GemObject(handle, size, flags, np.zeros(size, dtype=np.uint8), self._next_offset)
        self._next_offset += size
        self._objects[handle] = bo
        self._by_offset[bo.mmap_offset] = handle
        self._allocated += size
        a.handle = handle

    def _gem_info(self, a) -> None:
        if a.pad:
            raise DrmError(errno.EINVAL, "GEM_INFO: pad is not zero")
        a.offset = self._lookup(a.handle, "GEM_INFO").mmap_offset

    def _gem_close(self, a) -> None:
        bo = self._lookup(a.handle, "GEM_CLOSE", errno.EINVAL)
        del self._objects[bo.handle]
        del self._by_offset[bo.mmap_offset]
        self._allocated -= bo.size

    def _wait(self, seqno: int, deadline: int | None, what: str) -> None:
        code = self._timeline.wait(seqno, deadline, fence_errors=self.switches.fence_errors)
        if code:
            raise DrmError(code, f"{what}: fence {seqno}: {errno.errorcode[code]}")

    def _cpu_prep(self, a) -> None:
        if a.op & ~PREP_OPS:
            raise DrmError(errno.EINVAL, f"GEM_CPU_PREP: invalid op {a.op:#x}")
        bo = self._lookup(a.handle, "GEM_CPU_PREP")
        write = a.op & uapi.ETNA_PREP_WRITE
        seqno = max(bo.write_fence, bo.read_fence) if write else bo.write_fence
        deadline = None if a.op & uapi.ETNA_PREP_NOSYNC else _deadline(a.timeout)
        self._wait(seqno, deadline, f"GEM_CPU_PREP of BO {bo.handle}")

    def _cpu_fini(self, a) -> None:
        if a.flags:
            raise DrmError(errno.EINVAL, f"GEM_CPU_FINI: invalid flags {a.flags:#x}")
        self._lookup(a.handle, "GEM_CPU_FINI")

    def _wait_fence(self, a) -> None:
        if a.flags & ~uapi.ETNA_WAIT_NONBLOCK:
            raise DrmError(errno.EINVAL, f"WAIT_FENCE: invalid flags {a.flags:#x}")
        if a.pipe >= uapi.ETNA_MAX_PIPES or a.pipe != 0:
            raise DrmError(
                errno.EINVAL if a.pipe >= uapi.ETNA_MAX_PIPES else errno.ENXIO,
                f"WAIT_FENCE: pipe {a.pipe}",
            )
        if a.fence > self._timeline.last:
            raise DrmError(
                errno.EINVAL,
                f"WAIT_FENCE: waiting on invalid fence: {a.fence} (of {self._timeline.last})",
            )
        nonblock = a.flags & uapi.ETNA_WAIT_NONBLOCK
        self._wait(int(a.fence), None if nonblock else _deadline(a.timeout), "WAIT_FENCE")

    def _gem_wait(self, a) -> None:
        if a.flags & ~uapi.ETNA_WAIT_NONBLOCK:
            raise DrmError(errno.EINVAL, f"GEM_WAIT: invalid flags {a.flags:#x}")
        bo = self._lookup(a.handle, "GEM_WAIT")
        nonblock = a.flags & uapi.ETNA_WAIT_NONBLOCK
        seqno = max(bo.write_fence, bo.read_fence)
        self._wait(seqno, None if nonblock else _deadline(a.timeout), f"GEM_WAIT of {bo.handle}")

    # -- submit -------------------------------------------------------------------------------

    def _map(self, sub: SubmitArgs) -> list[Mapped]:
        """Pin every BO of the submit at its GPU address (Linux ``submit_pin_objects``)."""
        placed: dict[int, int] = {}
        for i, entry in enumerate(sub.bos):
            bo = self._lookup(entry.handle, "GEM_SUBMIT", errno.EINVAL)
            if sub.softpin:
                va = entry.presumed
                if va % PAGE_SIZE:
                    raise fail(errno.EINVAL, f"invalid softpin address {va:#x} (bo {i})")
                if va < SOFTPIN_START or va + bo.size > VA_LIMIT:
                    raise fail(errno.ENOSPC, f"softpin address {va:#x} outside the VA range")
            else:
                va = bo.va if bo.va is not None else self._kernel_va(bo)
            if placed.get(bo.handle, va) != va:
                raise fail(errno.EINVAL, f"BO {bo.handle} pinned at two addresses")
            placed[bo.handle] = va
        spans = sorted((va, va + self._objects[h].size, h) for h, va in placed.items())
        for (_, end, h), (start, _, h2) in itertools.pairwise(spans):
            if start < end:
                raise fail(errno.ENOSPC, f"BOs {h} and {h2} overlap in the GPU address space")
        for handle, va in placed.items():  # idle mappings in the way are reaped
            for other in self._objects.values():
                if other.handle not in placed and other.va is not None:
                    if other.va < va + self._objects[handle].size and va < other.va + other.size:
                        other.va = None
            self._objects[handle].va = va
        flags: dict[int, int] = {}
        for entry in sub.bos:
            flags[entry.handle] = flags.get(entry.handle, 0) | entry.flags
        return [Mapped(placed[h], h, self._objects[h].data, flags[h]) for h in placed]

    def _kernel_va(self, bo: GemObject) -> int:
        va = self._next_kernel_va
        self._next_kernel_va += bo.size
        if self._next_kernel_va > VA_LIMIT:
            raise fail(errno.ENOSPC, "GPU address space exhausted")
        return va

    def _submit(self, a) -> None:
        sub = read_submit(a, uapi.ETNA_MAX_PIPES)
        mapped = self._map(sub)
        stream = sub.stream
        for r in sub.relocs:
            va = self._objects[sub.bos[r.reloc_idx].handle].va
            stream[r.submit_offset // 4] = (va + r.reloc_offset) % VA_LIMIT
        fence_no = self._timeline.last + 1
        ctx = SubmitContext(fence=fence_no, memory=None, warn=None)
        ctx.warn = lambda message: self._faults.append(
            FaultRecord(fence_no, ctx.job, ctx.unit, FaultKind.WARNING, message)
        )
        ctx.memory = SubmitMemory(mapped, ctx.warn)
        error = 0
        try:
            with blas_threads(1, self._blas):
                self._frontend.run(stream, ctx)
        except JobFault as fault:
            error = errno.EIO
            self._faults.append(FaultRecord(fence_no, ctx.job, ctx.unit, fault.kind, fault.message))
        except Exception as exc:  # a model bug must not take the process down
            error = errno.EIO
            message = f"{type(exc).__name__}: {exc}"
            self._faults.append(
                FaultRecord(fence_no, ctx.job, ctx.unit, FaultKind.INTERNAL, message)
            )
        self._counters.extend(ctx.counters)
        fence = self._timeline.issue(self.switches.job_timeout_ns if error else 0, error)
        for entry in sub.bos:
            bo = self._objects[entry.handle]
            bo.read_fence = fence.seqno
            if entry.flags & uapi.ETNA_SUBMIT_BO_WRITE:
                bo.write_fence = fence.seqno
        a.fence = fence.seqno
