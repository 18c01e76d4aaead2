"""The accel/rocket UAPI semantics of the simulated device: BOs, mmap, IOVAs, SUBMIT validation
(with the kernel's errno values), PREP_BO / FINI_BO / GEM_CLOSE."""

from __future__ import annotations

import errno
import itertools

import numpy as np
import pytest

from mesa_npu.drm_shim.rocket import SimulatedRocketDevice
from mesa_npu.util import uapi
from mesa_npu.util.drm import DrmError

ffi = uapi.ffi


def _errno(fn, *args, **kwargs) -> int:
    try:
        fn(*args, **kwargs)
    except DrmError as e:
        return e.errno
    return 0


def test_create_bo_handles_iovas_and_mmap(sim):
    sizes = [1, 4096, 4097, 10_000, 123]
    bos = [sim.bo(n) for n in sizes]
    assert [b.handle for b in bos] == [1, 2, 3, 4, 5]
    assert all(b.iova % 4096 == 0 and b.offset % 4096 == 0 for b in bos)
    assert all(b.iova < 2**32 for b in bos)
    spans = sorted((b.iova, b.iova + -(-b.size // 4096) * 4096) for b in bos)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    assert len({b.offset for b in bos}) == len(bos)
    # The CPU mapping is the NPU's memory: zero-filled, writable, and shared by two mappings.
    b = bos[3]
    assert bytes(b.mem) == bytes(10_000)
    b.mem[5:8] = b"abc"
    again = sim.file.mmap(b.offset, 10_000)
    assert bytes(again[5:8]) == b"abc"


def test_create_bo_errors(sim):
    args = ffi.new("struct drm_rocket_create_bo *", {"size": 0})
    assert _errno(sim.file.ioctl, uapi.ROCKET_CREATE_BO, args) == errno.EINVAL
    b = sim.bo(100)
    assert _errno(sim.file.mmap, b.offset + 4096, 100) == errno.EINVAL
    assert _errno(sim.file.mmap, b.offset, 4097) == errno.EINVAL  # beyond the rounded size
    assert _errno(sim.file.mmap, b.offset, 4096) == 0


def test_iovas_are_private_to_a_file():
    device = SimulatedRocketDevice()
    a, b = device.open(), device.open()
    for f in (a, b):
        args = ffi.new("struct drm_rocket_create_bo *", {"size": 4096})
        f.ioctl(uapi.ROCKET_CREATE_BO, args)
        assert args.handle == 1
        first = args.dma_address
    other = ffi.new("struct drm_rocket_create_bo *", {"size": 4096})
    a.ioctl(uapi.ROCKET_CREATE_BO, other)
    assert other.dma_address != first  # same first IOVA in both files, then a new one


def _valid_job(rk, sim):
    """A minimal valid job: a 1x1 convolution task, with its BOs."""
    cv = rk.Conv(in_h=1, in_w=1, c=16, k=32)
    run = rk.random_run(cv, np.random.default_rng(0))
    bufs = rk.load(sim, run)
    _, tasks = sim.regcmd(rk.conv_stream(cv, bufs))
    return tasks, [bufs.input], [bufs.output]


def _submit_errno(sim, job_list, /, **overrides) -> int:
    return _errno(sim.submit, job_list, **overrides)


def test_submit_validation(rk, sim):
    tasks, ins, outs = _valid_job(rk, sim)
    job = (tasks, ins, outs)
    size = ffi.sizeof("struct drm_rocket_job")
    assert _submit_errno(sim, [job], job_struct_size=size - 8) == errno.EINVAL
    assert _submit_errno(sim, [job], reserved=1) == errno.EINVAL
    assert _submit_errno(sim, [([], ins, outs)]) == errno.EINVAL  # task_count 0
    assert _submit_errno(sim, [([(tasks[0][0], 0)], ins, outs)]) == errno.EINVAL  # count 0
    ghost = type(ins[0])(handle=99)
    assert _submit_errno(sim, [(tasks, [ghost], outs)]) == errno.ENOENT
    assert _submit_errno(sim, [(tasks, ins, [ghost])]) == errno.ENOENT
    assert _submit_errno(sim, [job], jobs=8) == errno.EFAULT  # an unreadable user pointer
    assert _submit_errno(sim, [job], job_count=0) == 0
    assert sim.file.job_counters() == []  # nothing ran: strict validation before queueing
    assert _submit_errno(sim, [job, job]) == 0
    assert [j.status for j in sim.file.job_counters()] == ["ok", "ok"]


def test_submit_task_struct_size_smaller_is_einval(rk, sim):
    tasks, ins, outs = _valid_job(rk, sim)
    t = ffi.new("struct drm_rocket_task[]", tasks)
    h = ffi.new("uint32_t[]", [ins[0].handle, outs[0].handle])
    job = ffi.new("struct drm_rocket_job *", {
        "tasks": int(ffi.cast("uintptr_t", t)), "task_count": 1, "task_struct_size": 4,
        "in_bo_handles": int(ffi.cast("uintptr_t", h)), "in_bo_handle_count": 1,
        "out_bo_handles": int(ffi.cast("uintptr_t", h)) + 4, "out_bo_handle_count": 1,
    })  # fmt: skip
    submit = ffi.new("struct drm_rocket_submit *", {
        "jobs": int(ffi.cast("uintptr_t", job)), "job_count": 1,
        "job_struct_size": ffi.sizeof("struct drm_rocket_job"),
    })  # fmt: skip
    assert _errno(sim.file.ioctl, uapi.ROCKET_SUBMIT, submit) == errno.EINVAL


def test_larger_struct_sizes_read_the_known_prefix(rk, sim):
    """A newer user space passes bigger structs; the kernel copies the prefix it knows and
    steps by the given size."""
    tasks, ins, outs = _valid_job(rk, sim)
    job_size, task_size = ffi.sizeof("struct drm_rocket_job") + 16, 8 + 8
    t = ffi.new("uint8_t[]", task_size * 2)
    for i, (addr, count) in enumerate(tasks * 2):
        ffi.cast("struct drm_rocket_task *", t + i * task_size)[0] = (addr, count)
    h = ffi.new("uint32_t[]", [ins[0].handle, outs[0].handle])
    jobs = ffi.new("uint8_t[]", job_size * 2)
    for i in range(2):
        j = ffi.cast("struct drm_rocket_job *", jobs + i * job_size)
        j.tasks = int(ffi.cast("uintptr_t", t))
        j.task_count = 2
        j.task_struct_size = task_size
        j.in_bo_handles = int(ffi.cast("uintptr_t", h))
        j.in_bo_handle_count = 1
        j.out_bo_handles = int(ffi.cast("uintptr_t", h)) + 4
        j.out_bo_handle_count = 1
        ffi.cast("uint8_t *", j)[job_size - 1] = 0xAA  # bytes the kernel must ignore
    submit = ffi.new("struct drm_rocket_submit *", {
        "jobs": int(ffi.cast("uintptr_t", jobs)), "job_count": 2, "job_struct_size": job_size,
    })  # fmt: skip
    sim.file.ioctl(uapi.ROCKET_SUBMIT, submit)
    assert [(j.tasks, j.status) for j in sim.file.job_counters()] == [(2, "ok"), (2, "ok")]


def test_upstream_submit_drops_invalid_jobs(rk):
    sim = rk.Sim(submit_errors="upstream")
    tasks, ins, outs = _valid_job(rk, sim)
    ghost = type(ins[0])(handle=99)
    assert _submit_errno(sim, [(tasks, ins, outs), ([], ins, outs), (tasks, [ghost], outs),
                               (tasks, ins, outs)]) == 0  # fmt: skip
    assert [j.index for j in sim.file.job_counters()] == [0, 1]
    log = "\n".join(sim.file.fault_log())
    assert "job 1 dropped (Invalid argument" in log and "job 2 dropped (No such file" in log


def test_prep_fini_close(rk, sim):
    b = sim.bo(64)
    for request, struct in ((uapi.ROCKET_PREP_BO, "struct drm_rocket_prep_bo *"),
                            (uapi.ROCKET_FINI_BO, "struct drm_rocket_fini_bo *")):  # fmt: skip
        assert _errno(sim.file.ioctl, request, ffi.new(struct, {"handle": b.handle})) == 0
        bad = ffi.new(struct, {"handle": b.handle, "reserved": 1})
        assert _errno(sim.file.ioctl, request, bad) == errno.EINVAL
        assert _errno(sim.file.ioctl, request, ffi.new(struct, {"handle": 42})) == errno.ENOENT
    close = ffi.new("struct drm_gem_close *", {"handle": b.handle})
    sim.file.ioctl(uapi.DRM_IOCTL_GEM_CLOSE, close)
    assert _errno(sim.file.ioctl, uapi.DRM_IOCTL_GEM_CLOSE, close) == errno.EINVAL
    prep = ffi.new("struct drm_rocket_prep_bo *", {"handle": b.handle})
    assert _errno(sim.file.ioctl, uapi.ROCKET_PREP_BO, prep) == errno.ENOENT
    assert _errno(sim.file.ioctl, 0xDEAD, prep) == errno.EINVAL
    sim.file.close()
    assert _errno(sim.file.ioctl, uapi.ROCKET_PREP_BO, prep) == errno.EBADF


def test_a_closed_bo_faults_the_npu(rk, sim):
    tasks, ins, outs = _valid_job(rk, sim)
    sim.file.ioctl(uapi.DRM_IOCTL_GEM_CLOSE,
                   ffi.new("struct drm_gem_close *", {"handle": ins[0].handle}))  # fmt: skip
    sim.submit([(tasks, [], outs)])
    assert sim.prep(outs[0]) == errno.EIO
    assert "IOMMU fault: CNA.FEATURE_DATA_ADDR" in sim.file.last_fault()


@pytest.mark.parametrize("job_errors, expect", [("report", errno.ETIMEDOUT), ("upstream", 0)])
def test_job_error_reporting_switch(rk, job_errors, expect):
    sim = rk.Sim(job_errors=job_errors)
    _tasks, ins, outs = _valid_job(rk, sim)
    stream = rk.Stream()
    stream.raw(rk.MARKER)  # no op_en: the task never completes
    _, hang = sim.regcmd(stream)
    sim.submit([(hang, ins, outs)])
    assert sim.prep(outs[0]) == expect
    assert "hang" in sim.file.last_fault()
