"""The simulated accel/rocket device and its open files (Linux: ``rocket_drv.c``,
``rocket_gem.c``, ``rocket_job.c``).

:class:`SimulatedRocketFile` implements ``util.drm.DrmFile``: the four rocket ioctls (plus the DRM
core's GEM_CLOSE) with the kernel's validation and errno values, BOs whose memory the CPU maps
and the NPU model reads, and job submission. Jobs run synchronously inside SUBMIT, in submission
order, on the cores of the :class:`SimulatedRocketDevice`; a simulated clock assigns each job a
core, a start and an end as the kernel's scheduler would (``DeviceOptions.scheduling``), and
records counters and a dmesg-like log. ``docs/rocket-npu-model.md`` §1-2 and §5 describe the
semantics and their deviations from upstream.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from ...util import uapi
from ...util.blas import blas_threads, find_openblas
from ...util.drm import DrmError
from ...util.soc import RocketNpu, Soc, soc
from .cache import DecodeCache
from .faults import NpuFault, NpuHang
from .memory import MMAP_OFFSET_BASE, AddressSpace, Bo, page_align
from .npu import Core
from .options import DeviceOptions, NpuModelOptions
from .stats import TaskStats
from .usermem import UserMemory

ffi = uapi.ffi
NS_PER_S = 1_000_000_000
NS_PER_US = 1_000
# Sanity bound on what one SUBMIT copies from user space (the kernel's kvmalloc would fail).
MAX_COPY_BYTES = 256 * 1024 * 1024
MAX_NOTES_PER_JOB = 16
MAX_LOG_LINES = 10_000  # like a kernel log buffer, the oldest lines go


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What one submitted job did (counters for the cost model and ``teflon profile``)."""

    index: int  # submission order within the file, from 0
    core: int
    tasks: int
    status: str  # "ok", "fault", "timeout" or "dependency"
    message: str
    errno: int  # what PREP_BO reports for the job's out-BOs (0 when ok)
    cause: str  # the fault or timeout a failure started from (this job's, or a dependency's)
    macs: int
    bytes_read: Mapping[str, int]
    bytes_written: Mapping[str, int]
    start_ns: int
    end_ns: int
    in_bos: tuple[int, ...]
    out_bos: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Job:
    tasks: tuple[tuple[int, int], ...]  # (regcmd IOVA, regcmd_count)
    in_bos: tuple[Bo, ...]
    out_bos: tuple[Bo, ...]


class SimulatedRocketDevice:
    """Three NPU cores shared by every file opened on the device."""

    def __init__(
        self, options: DeviceOptions | None = None, model: NpuModelOptions | None = None
    ) -> None:
        self.options = options or DeviceOptions()
        self.model = model or NpuModelOptions()
        self.soc: Soc = soc(self.options.soc)
        if not isinstance(self.soc.npu, RocketNpu):
            raise ValueError(f"SoC '{self.options.soc}' has no rocket NPU")
        self.npu: RocketNpu = self.soc.npu
        self.decode_cache = DecodeCache()
        self.cores = [
            Core(i, self.npu, self.model, self.decode_cache) for i in range(self.npu.cores)
        ]
        self.core_free_ns = [0] * self.npu.cores
        self.now_ns = 0  # the simulated time the CPU has reached
        self.blas = find_openblas()

    def open(self) -> SimulatedRocketFile:
        return SimulatedRocketFile(self)

    def task_ns(self, stats: TaskStats) -> int:
        """Simulated duration of a task: compute or memory bound, plus the task overhead."""
        clock = self.soc.npu_clock_hz
        compute = stats.macs / self.npu.macs_per_core / clock
        traffic = sum(stats.bytes_read.values()) + sum(stats.bytes_written.values())
        memory = traffic / self.soc.dram_bytes_per_s
        return int(max(compute, memory) * NS_PER_S + self.soc.task_overhead_us * NS_PER_US)


class SimulatedRocketFile:
    """One open file of the simulated device (``/dev/accel/accel0``): a ``util.drm.DrmFile``."""

    def __init__(self, device: SimulatedRocketDevice) -> None:
        self.device = device
        self.options = device.options
        self.space = AddressSpace(self.options.iova_base, self.options.iova_guard_pages)
        self.bos: dict[int, Bo] = {}
        self.by_offset: dict[int, Bo] = {}
        self._next_handle = 1
        self._next_offset = MMAP_OFFSET_BASE
        self.user = UserMemory()
        self.jobs: list[JobRecord] = []
        self._next_job = 0
        self._log: list[str] = []
        self._last_fault: str | None = None
        self.entity_core = 0
        self.entity_end_ns = 0
        self.closed = False
        self._handlers = MappingProxyType(
            {
                uapi.ROCKET_CREATE_BO: ("CREATE_BO", self._create_bo),
                uapi.ROCKET_SUBMIT: ("SUBMIT", self._submit),
                uapi.ROCKET_PREP_BO: ("PREP_BO", self._prep_bo),
                uapi.ROCKET_FINI_BO: ("FINI_BO", self._fini_bo),
                uapi.DRM_IOCTL_GEM_CLOSE: ("GEM_CLOSE", self._gem_close),
            }
        )

    # ----------------------------------------------------------------------------------------
    # DrmFile
    # ----------------------------------------------------------------------------------------

    def ioctl(self, request: int, arg: Any) -> None:
        if self.closed:
            raise DrmError(errno.EBADF, "simulated rocket: ioctl on a closed file")
        name, handler = self._handlers.get(request, (None, None))
        if handler is None:
            raise DrmError(errno.EINVAL, f"simulated rocket: unknown ioctl {request:#x}")
        try:
            handler(arg)
        except _Errno as e:
            raise DrmError(
                e.errno, f"simulated rocket: {name} failed: {os.strerror(e.errno)}: {e.detail}"
            ) from None

    def mmap(self, offset: int, size: int) -> memoryview:
        if self.closed:
            raise DrmError(errno.EBADF, "simulated rocket: mmap on a closed file")
        bo = self.by_offset.get(offset)
        if bo is None or not 0 < size <= bo.mapped_size:
            raise DrmError(
                errno.EINVAL,
                f"simulated rocket: mmap of {size} bytes at offset {offset:#x} matches no BO",
            )
        return memoryview(bo.data)[:size]

    def close(self) -> None:
        for bo in list(self.bos.values()):
            self._release(bo)
        self.user.close()
        self.closed = True

    # ----------------------------------------------------------------------------------------
    # What a driver may read beyond the kernel's interface (the kernel only gives errno)
    # ----------------------------------------------------------------------------------------

    def fault_log(self) -> list[str]:
        """dmesg-like lines: faults, timeouts and warnings of this file's jobs."""
        return list(self._log)

    def last_fault(self) -> str | None:
        return self._last_fault

    def job_counters(self) -> list[JobRecord]:
        """One record per job submitted on this file since the last clear, in submission order
        (``JobRecord.index`` counts every job of the file)."""
        return list(self.jobs)

    def clear_job_counters(self) -> None:
        self.jobs = []

    # ----------------------------------------------------------------------------------------
    # Buffer objects
    # ----------------------------------------------------------------------------------------

    def _create_bo(self, arg: Any) -> None:
        args = ffi.cast("struct drm_rocket_create_bo *", arg)
        if args.size == 0:
            raise _Errno(errno.EINVAL, "size 0")
        iova = self.space.allocate(args.size)
        if iova is None:
            raise _Errno(errno.ENOSPC, f"no room for {args.size} bytes in the 32-bit IOVA space")
        try:
            data = np.zeros(page_align(args.size), dtype=np.uint8)
        except MemoryError:
            raise _Errno(errno.ENOMEM, f"{args.size} bytes") from None
        bo = Bo(self._next_handle, args.size, iova, self._next_offset, data)
        self._next_handle += 1
        self._next_offset += bo.mapped_size
        self.space.map(bo)
        self.bos[bo.handle] = bo
        self.by_offset[bo.mmap_offset] = bo
        args.handle = bo.handle
        args.dma_address = bo.iova
        args.offset = bo.mmap_offset

    def _lookup(self, handle: int) -> Bo:
        bo = self.bos.get(handle)
        if bo is None:
            raise _Errno(errno.ENOENT, f"no BO with handle {handle}")
        return bo

    def _prep_bo(self, arg: Any) -> None:
        args = ffi.cast("struct drm_rocket_prep_bo *", arg)
        if args.reserved:
            raise _Errno(errno.EINVAL, "reserved field is not 0")
        bo = self._lookup(args.handle)
        job = bo.writer
        if job is None:
            return
        self.device.now_ns = max(self.device.now_ns, job.end_ns)  # the CPU waited
        if job.errno and self.options.job_errors == "report":
            # The details are in the fault log (file.last_fault()), as dmesg has them.
            raise _Errno(job.errno, f"BO {bo.handle} was written by job {job.index}, which failed")

    def _fini_bo(self, arg: Any) -> None:
        args = ffi.cast("struct drm_rocket_fini_bo *", arg)
        if args.reserved:
            raise _Errno(errno.EINVAL, "reserved field is not 0")
        self._lookup(args.handle)

    def _gem_close(self, arg: Any) -> None:
        args = ffi.cast("struct drm_gem_close *", arg)
        bo = self.bos.get(args.handle)
        if bo is None:  # drm_gem_handle_delete()
            raise _Errno(errno.EINVAL, f"no BO with handle {args.handle}")
        self._release(bo)

    def _release(self, bo: Bo) -> None:
        del self.bos[bo.handle]
        del self.by_offset[bo.mmap_offset]
        self.space.unmap(bo)

    # ----------------------------------------------------------------------------------------
    # Submission
    # ----------------------------------------------------------------------------------------

    def _submit(self, arg: Any) -> None:
        args = ffi.cast("struct drm_rocket_submit *", arg)
        if args.job_count == 0:
            return
        job_size = ffi.sizeof("struct drm_rocket_job")
        if args.job_struct_size < job_size:
            raise _Errno(errno.EINVAL, f"job_struct_size {args.job_struct_size} < {job_size}")
        if args.reserved:
            raise _Errno(errno.EINVAL, "reserved field is not 0")
        raw_jobs = self._copy_array(
            args.jobs, args.job_count, args.job_struct_size, job_size, "struct drm_rocket_job"
        )
        jobs: list[_Job | None] = []
        for i, raw in enumerate(raw_jobs):
            try:
                jobs.append(self._copy_job(raw))
            except _Errno as e:
                if self.options.submit_errors == "strict":
                    raise _Errno(e.errno, f"job {i}: {e.detail}") from None
                self._note(f"submit: job {i} dropped ({os.strerror(e.errno)}: {e.detail})")
                jobs.append(None)
        # One BLAS thread: the matrices are a layer's, and OpenBLAS threads spinning on a loaded
        # machine cost more than they give (util/blas.py).
        with blas_threads(1, self.device.blas):
            for job in jobs:
                if job is not None:
                    self._run(job)

    def _copy_array(self, address: int, count: int, stride: int, size: int, ctype: str) -> list:
        """``count`` structs of ``size`` bytes every ``stride`` bytes from user memory (the known
        prefix of each, as the kernel's copy_from_user loop reads it)."""
        if count * stride > MAX_COPY_BYTES:
            raise _Errno(errno.ENOMEM, f"{count} elements of {stride} bytes")
        out = []
        for i in range(count):
            data = self.user.read(address + i * stride, size)
            if data is None:
                raise _Errno(
                    errno.EFAULT, f"{ctype} {i} at {address + i * stride:#x} is not readable"
                )
            item = ffi.new(f"{ctype} *")
            ffi.memmove(item, data, size)
            out.append(item)
        return out

    def _copy_handles(self, address: int, count: int, what: str) -> tuple[Bo, ...]:
        if not count:
            return ()
        if count * 4 > MAX_COPY_BYTES:
            raise _Errno(errno.ENOMEM, f"{count} {what}")
        data = self.user.read(address, count * ffi.sizeof("uint32_t"))
        if data is None:
            raise _Errno(errno.EFAULT, f"{what} at {address:#x} are not readable")
        return tuple(self._lookup(h) for h in np.frombuffer(data, dtype="<u4").tolist())

    def _copy_job(self, job: Any) -> _Job:
        """rocket_ioctl_submit_job() and rocket_copy_tasks(), in the kernel's order."""
        if job.task_count == 0:
            raise _Errno(errno.EINVAL, "task_count is 0")
        task_size = ffi.sizeof("struct drm_rocket_task")
        if job.task_struct_size < task_size:
            raise _Errno(errno.EINVAL, f"task_struct_size {job.task_struct_size} < {task_size}")
        tasks = self._copy_array(
            job.tasks, job.task_count, job.task_struct_size, task_size, "struct drm_rocket_task"
        )
        for i, t in enumerate(tasks):
            if t.regcmd_count == 0:
                raise _Errno(errno.EINVAL, f"task {i}: regcmd_count is 0")
        ins = self._copy_handles(job.in_bo_handles, job.in_bo_handle_count, "in_bo_handles")
        outs = self._copy_handles(job.out_bo_handles, job.out_bo_handle_count, "out_bo_handles")
        return _Job(tuple((t.regcmd, t.regcmd_count) for t in tasks), ins, outs)

    # ----------------------------------------------------------------------------------------
    # Execution on the simulated cores
    # ----------------------------------------------------------------------------------------

    def _pick_core(self, ready_ns: int) -> tuple[int, int]:
        """(core, start) for a job whose dependencies are done at ``ready_ns``."""
        free = self.device.core_free_ns
        now = self.device.now_ns
        if self.options.scheduling == "entity":
            # drm_sched_entity_select_rq(): stay on the entity's core while its last job is
            # unfinished; else drm_sched_pick_best(): the first core with the least work queued.
            if self.entity_end_ns > now:
                core = self.entity_core
            else:
                core = min(range(len(free)), key=lambda c: (max(free[c], now), c))
            return core, max(now, ready_ns, free[core], self.entity_end_ns)
        ready = max(now, ready_ns)
        core = min(range(len(free)), key=lambda c: (max(free[c], ready), c))
        return core, max(ready, free[core])

    def _run(self, job: _Job) -> None:
        index = self._next_job
        self._next_job += 1
        deps: dict[int, JobRecord] = {}
        for bo in job.in_bos + job.out_bos:
            if bo.writer is not None:
                deps[bo.writer.index] = bo.writer
        for bo in job.out_bos:
            deps.update((r.index, r) for r in bo.readers)
        ready = max((r.end_ns for r in deps.values()), default=0)
        core_index, start = self._pick_core(ready)
        core = self.device.cores[core_index]
        soc_ = self.device.soc
        t = start + int(soc_.job_overhead_us * NS_PER_US)
        status, message, err = "ok", "", 0
        cause = ""
        macs = 0
        reads: Counter = Counter()
        writes: Counter = Counter()
        notes: list[str] = []
        declared_out = {bo.handle for bo in job.out_bos}
        declared = declared_out | {bo.handle for bo in job.in_bos}
        for ti, (regcmd, count) in enumerate(job.tasks):
            where = f"job {index} task {ti} core {core_index}"
            try:
                stats = core.run_task(self.space, regcmd, count)
            except NpuHang as e:
                status, message, err = "timeout", f"{where}: hang: {e.message}", e.errno
                t = start + self.options.job_timeout_ns
                core.reset()  # rocket_job_timedout() -> rocket_reset()
                break
            except NpuFault as e:
                status, message, err = "fault", f"{where}: {e.message}", e.errno
                break
            except Exception as e:  # no exception may leave the model
                status, err = "fault", errno.EIO
                message = f"{where}: internal model error: {type(e).__name__}: {e}"
                break
            macs += stats.macs
            reads.update(stats.bytes_read)
            writes.update(stats.bytes_written)
            t += self.device.task_ns(stats)
            notes += [f"{where}: {n}" for n in stats.notes]
            notes += self._undeclared(where, stats, declared, declared_out)
        if status == "ok":
            # A failure travels with the data: through the writers of the BOs this job reads.
            failed = [bo.writer for bo in job.in_bos if bo.writer is not None and bo.writer.errno]
            if failed:
                first = min(failed, key=lambda r: r.index)
                status, err, cause = "dependency", first.errno, first.cause
                message = f"job {index} depends on failed job {first.index}; first failure: {cause}"
        record = JobRecord(
            index=index,
            core=core_index,
            tasks=len(job.tasks),
            status=status,
            message=message,
            errno=err,
            cause=cause or message,
            macs=macs,
            bytes_read=MappingProxyType(dict(reads)),
            bytes_written=MappingProxyType(dict(writes)),
            start_ns=start,
            end_ns=t,
            in_bos=tuple(bo.handle for bo in job.in_bos),
            out_bos=tuple(bo.handle for bo in job.out_bos),
        )
        self.jobs.append(record)
        self.device.core_free_ns[core_index] = t
        self.entity_core, self.entity_end_ns = core_index, t
        now = self.device.now_ns
        for bo in job.in_bos:
            # Like signalled fences leaving a reservation object: finished readers no longer
            # order anything.
            bo.readers = [r for r in bo.readers if r.end_ns > now] + [record]
        for bo in job.out_bos:
            bo.writer = record
            bo.readers = []
        for note in notes[:MAX_NOTES_PER_JOB]:
            self._note(f"warning: {note}", t)
        if len(notes) > MAX_NOTES_PER_JOB:
            self._note(f"job {index}: {len(notes) - MAX_NOTES_PER_JOB} more warnings", t)
        if status in ("fault", "timeout"):
            self._note(message, t)
            self._last_fault = message

    def _undeclared(
        self, where: str, stats: TaskStats, declared: set[int], declared_out: set[int]
    ) -> list[str]:
        """Accesses the job's BO lists do not declare (no implicit dependency covers them)."""
        notes = []
        for handle, role in stats.bos_written.items():
            if handle not in declared_out:
                notes.append(f"writes BO {handle} ({role}) without listing it in out_bo_handles")
        for handle, role in stats.bos_read.items():
            bo = self.bos.get(handle)
            if handle not in declared and bo is not None and bo.writer is not None:
                notes.append(
                    f"reads BO {handle} ({role}), written by job {bo.writer.index}, "
                    "without listing it in in_bo_handles"
                )
        return notes

    def _note(self, line: str, at_ns: int | None = None) -> None:
        t = self.device.now_ns if at_ns is None else at_ns
        self._log.append(f"[{t / NS_PER_S:12.6f}] rocket: {line}")
        if len(self._log) > MAX_LOG_LINES:
            del self._log[: len(self._log) - MAX_LOG_LINES]


class _Errno(Exception):
    """An ioctl's error return inside the simulated kernel."""

    def __init__(self, errno_: int, detail: str) -> None:
        super().__init__(detail)
        self.errno = errno_
        self.detail = detail
