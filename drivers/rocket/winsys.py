"""Buffer objects and job submission over an accel/rocket file (Mesa: ``rkt_device.c``'s
resource and submit paths, plus libdrm's ``drmIoctl``).

The winsys speaks only the four ioctls of the upstream UAPI (``util.uapi``: CREATE_BO, SUBMIT,
PREP_BO, FINI_BO), plus the DRM core's GEM_CLOSE, through a :class:`util.drm.DrmFile`. That
file is either the kernel's device node (``KernelDrmFile``) or the simulated device of
``drm_shim.rocket``; this module cannot tell which, and nothing above it needs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...gallium.device import DeviceError
from ...util import uapi
from ...util.drm import DrmError, DrmFile

ffi = uapi.ffi

# Linux rocket_job.c: a job that does not finish in 500 ms is reset; waiting a little longer
# than that lets the kernel report the timeout before we give up on our side.
PREP_TIMEOUT_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class Task:
    """One ``drm_rocket_task``: a regcmd stream's device address and its length in qwords."""

    regcmd: int
    regcmd_count: int


@dataclass(frozen=True, slots=True)
class Job:
    """One ``drm_rocket_job``: tasks that run in order on one core, and the BOs it reads and
    writes (the kernel orders jobs by these implicit dependencies)."""

    tasks: tuple[Task, ...]
    in_bos: tuple[int, ...]
    out_bos: tuple[int, ...]


class Bo:
    """A buffer object: its handle, device address and CPU mapping."""

    __slots__ = ("dma_address", "handle", "map", "size")

    def __init__(self, handle: int, size: int, dma_address: int, mapping: memoryview) -> None:
        self.handle = handle
        self.size = size
        self.dma_address = dma_address
        self.map = mapping

    def __repr__(self) -> str:
        return f"Bo(handle={self.handle}, size={self.size}, iova={self.dma_address:#x})"


class Winsys:
    """BOs and submissions on one open accel/rocket file."""

    def __init__(self, drm: DrmFile, name: str = "rocket") -> None:
        self.drm = drm
        self.name = name

    def _ioctl(self, request: int, arg, what: str) -> None:
        try:
            self.drm.ioctl(request, arg)
        except DrmError as e:
            raise DeviceError(f"{self.name}: {what} failed: {' '.join(str(e).split())}") from e

    def create_bo(self, size: int) -> Bo:
        args = ffi.new("struct drm_rocket_create_bo *", {"size": size})
        self._ioctl(uapi.ROCKET_CREATE_BO, args, f"CREATE_BO of {size} bytes")
        try:
            mapping = self.drm.mmap(args.offset, size)
        except (OSError, ValueError) as e:
            raise DeviceError(f"{self.name}: mmap of BO {args.handle} failed: {e}") from e
        return Bo(args.handle, size, args.dma_address, mapping)

    def submit(self, jobs: Sequence[Job]) -> None:
        """All jobs in one SUBMIT (Mesa: ``rkt_ml_subgraph_invoke``)."""
        keep = []  # the arrays must outlive the ioctl
        cjobs = ffi.new("struct drm_rocket_job[]", len(jobs))
        for cjob, job in zip(cjobs, jobs, strict=True):
            tasks = ffi.new(
                "struct drm_rocket_task[]", [(t.regcmd, t.regcmd_count) for t in job.tasks]
            )
            ins = ffi.new("uint32_t[]", list(job.in_bos))
            outs = ffi.new("uint32_t[]", list(job.out_bos))
            keep += [tasks, ins, outs]
            cjob.tasks = int(ffi.cast("uintptr_t", tasks))
            cjob.task_count = len(job.tasks)
            cjob.task_struct_size = ffi.sizeof("struct drm_rocket_task")
            cjob.in_bo_handles = int(ffi.cast("uintptr_t", ins))
            cjob.in_bo_handle_count = len(job.in_bos)
            cjob.out_bo_handles = int(ffi.cast("uintptr_t", outs))
            cjob.out_bo_handle_count = len(job.out_bos)
        submit = ffi.new(
            "struct drm_rocket_submit *",
            {
                "jobs": int(ffi.cast("uintptr_t", cjobs)),
                "job_count": len(jobs),
                "job_struct_size": ffi.sizeof("struct drm_rocket_job"),
            },
        )
        self._ioctl(uapi.ROCKET_SUBMIT, submit, f"SUBMIT of {len(jobs)} jobs")
        del keep

    def prep_bo(self, bo: Bo, timeout_ns: int = PREP_TIMEOUT_NS) -> None:
        """Wait for the NPU's writers of ``bo`` and make it coherent for the CPU."""
        args = ffi.new(
            "struct drm_rocket_prep_bo *", {"handle": bo.handle, "timeout_ns": timeout_ns}
        )
        self._ioctl(uapi.ROCKET_PREP_BO, args, f"PREP_BO of BO {bo.handle}")

    def fini_bo(self, bo: Bo) -> None:
        """Hand ``bo`` back to the device after CPU writes."""
        args = ffi.new("struct drm_rocket_fini_bo *", {"handle": bo.handle})
        self._ioctl(uapi.ROCKET_FINI_BO, args, f"FINI_BO of BO {bo.handle}")

    def close_bo(self, bo: Bo) -> None:
        """Release a BO (DRM core GEM_CLOSE; closing the file releases them all too)."""
        args = ffi.new("struct drm_gem_close *", {"handle": bo.handle})
        self._ioctl(uapi.DRM_IOCTL_GEM_CLOSE, args, f"GEM_CLOSE of BO {bo.handle}")

    def close(self) -> None:
        self.drm.close()
