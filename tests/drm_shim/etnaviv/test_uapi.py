"""GEM UAPI semantics and errors of the simulated etnaviv device, through the real structs."""

from __future__ import annotations

import errno
import time

import numpy as np
import pytest
from etna_testkit import RW, R, W, flush_words, init_words, load_state, tp_words, transpose_config

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.util import uapi
from mesa_npu.util.drm import DrmError
from mesa_npu.util.soc import soc
from mesa_npu.util.uapi import ffi


def _param(f, param, pipe=0):
    p = ffi.new("struct drm_etnaviv_param *", {"pipe": pipe, "param": param})
    f.ioctl(uapi.ETNAVIV_GET_PARAM, p)
    return p.value


@pytest.mark.parametrize("name", ["a311d", "imx8mp", "s905d3"])
def test_get_param_identity_matches_the_soc_row(harness, name):
    f = harness(name).file
    npu = soc(name).npu
    assert _param(f, uapi.ETNAVIV_PARAM_GPU_MODEL) == npu.gpu_model
    assert _param(f, uapi.ETNAVIV_PARAM_GPU_REVISION) == npu.gpu_revision
    assert _param(f, uapi.ETNAVIV_PARAM_GPU_CUSTOMER_ID) == npu.customer_id
    assert _param(f, uapi.ETNAVIV_PARAM_SOFTPIN_START_ADDR) == 4 << 20
    with pytest.raises(DrmError) as e:
        _param(f, 0x7F)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(DrmError) as e:
        _param(f, uapi.ETNAVIV_PARAM_GPU_MODEL, pipe=1)
    assert e.value.errno == errno.ENXIO


def test_gem_new_info_mmap_and_errors(harness):
    f = harness().file
    new = ffi.new("struct drm_etnaviv_gem_new *", {"size": 100, "flags": uapi.ETNA_BO_WC})
    f.ioctl(uapi.ETNAVIV_GEM_NEW, new)
    info = ffi.new("struct drm_etnaviv_gem_info *", {"handle": new.handle})
    f.ioctl(uapi.ETNAVIV_GEM_INFO, info)
    view = f.mmap(info.offset, 4096)  # rounded up to a page
    view[:3] = b"abc"
    assert bytes(f.mmap(info.offset, 3)) == b"abc"
    for flags in (0, uapi.ETNA_BO_WC | uapi.ETNA_BO_CACHED, uapi.ETNA_BO_WC | 0x8):
        bad = ffi.new("struct drm_etnaviv_gem_new *", {"size": 64, "flags": flags})
        with pytest.raises(DrmError) as e:
            f.ioctl(uapi.ETNAVIV_GEM_NEW, bad)
        assert e.value.errno == errno.EINVAL
    with pytest.raises(DrmError) as e:
        f.ioctl(uapi.ETNAVIV_GEM_INFO, ffi.new("struct drm_etnaviv_gem_info *", {"handle": 99}))
    assert e.value.errno == errno.ENOENT
    with pytest.raises(DrmError) as e:
        f.mmap(info.offset, 8192)
    assert e.value.errno == errno.EINVAL
    f.ioctl(uapi.DRM_IOCTL_GEM_CLOSE, ffi.new("struct drm_gem_close *", {"handle": new.handle}))
    with pytest.raises(DrmError) as e:
        f.ioctl(uapi.ETNAVIV_GEM_INFO, info)
    assert e.value.errno == errno.ENOENT


def _submit_errno(hw, words, bos, **kw):
    with pytest.raises(DrmError) as e:
        hw.submit_raw(words, bos, **kw)
    return e.value.errno


def test_submit_validation_errors(harness):
    hw = harness()
    a, b = hw.bo(4096), hw.bo(8192)
    ok = init_words()
    assert hw.submit_raw(ok, [(a, R)]) == 1
    assert _submit_errno(hw, ok, [(a, 0x10)]) == errno.EINVAL  # bad BO flags
    ghost = type(a)(handle=77, va=a.va, size=4096, view=a.view)
    assert _submit_errno(hw, ok, [(ghost, R)]) == errno.EINVAL  # Linux: invalid handle
    assert _submit_errno(hw, ok, [(a, R)], stream_size=6) == errno.EINVAL  # not a multiple of 4
    assert _submit_errno(hw, ok, [(a, R)], exec_state=7) == errno.EINVAL
    assert _submit_errno(hw, ok, [(a, R)], pipe=5) == errno.EINVAL
    assert _submit_errno(hw, ok, [(a, R)], pipe=1) == errno.ENXIO
    assert _submit_errno(hw, ok, [(a, R)], flags=0x100) == errno.EINVAL
    assert _submit_errno(hw, ok, [(a, R)], nr_relocs=1) == errno.EINVAL  # relocs with softpin
    b.va = a.va  # overlapping softpin ranges in one submit
    assert _submit_errno(hw, ok, [(a, R), (b, R)]) == errno.ENOSPC
    b.va = a.va + 123  # not page aligned
    assert _submit_errno(hw, ok, [(b, R)]) == errno.EINVAL
    b.va = 4096  # below the softpin range
    assert _submit_errno(hw, ok, [(b, R)]) == errno.ENOSPC
    assert hw.file.job_counters() == ()


def test_fences_cpu_prep_and_waits(harness):
    hw = harness()
    h, w, c = 3, 4, 2
    src, dst = hw.bo(24, np.arange(24, dtype=np.uint8)), hw.bo(24)
    cfg = hw.bo(124, transpose_config(h, w, c, src.va, dst.va, 0))
    fence = hw.run(tp_words([cfg.va]), [(cfg, R), (src, R), (dst, W)])
    assert fence == 1
    hw.wait(fence, flags=uapi.ETNA_WAIT_NONBLOCK)
    prep = ffi.new(
        "struct drm_etnaviv_gem_cpu_prep *",
        {"handle": dst.handle, "op": uapi.ETNA_PREP_READ | uapi.ETNA_PREP_NOSYNC},
    )
    hw.file.ioctl(uapi.ETNAVIV_GEM_CPU_PREP, prep)
    hw.file.ioctl(
        uapi.ETNAVIV_GEM_CPU_FINI,
        ffi.new("struct drm_etnaviv_gem_cpu_fini *", {"handle": dst.handle}),
    )
    with pytest.raises(DrmError) as e:
        hw.wait(5)
    assert e.value.errno == errno.EINVAL  # never issued
    bad = ffi.new("struct drm_etnaviv_gem_cpu_prep *", {"handle": dst.handle, "op": 0x40})
    with pytest.raises(DrmError) as e:
        hw.file.ioctl(uapi.ETNAVIV_GEM_CPU_PREP, bad)
    assert e.value.errno == errno.EINVAL
    fini = ffi.new("struct drm_etnaviv_gem_cpu_fini *", {"handle": dst.handle, "flags": 1})
    with pytest.raises(DrmError) as e:
        hw.file.ioctl(uapi.ETNAVIV_GEM_CPU_FINI, fini)
    assert e.value.errno == errno.EINVAL


def _prep(hw, bo, op, timeout_ns):
    deadline = time.monotonic_ns() + timeout_ns
    prep = ffi.new(
        "struct drm_etnaviv_gem_cpu_prep *",
        {"handle": bo.handle, "op": op,
         "timeout": {"tv_sec": deadline // 10**9, "tv_nsec": deadline % 10**9}},
    )  # fmt: skip
    hw.file.ioctl(uapi.ETNAVIV_GEM_CPU_PREP, prep)


def test_hung_submit_times_out_then_fails_with_eio(harness):
    hw = harness(job_timeout_ns=300_000_000)
    out = hw.bo(4096)
    end = [E.FE_END.HEADER.pack(OP=E.FeOpcode.END), 0]  # leaves the stream: no fence event
    fence = hw.submit_raw(init_words() + end, [(out, RW)])
    # READ waits for writers, WRITE for all users
    with pytest.raises(DrmError) as e:
        _prep(hw, out, uapi.ETNA_PREP_WRITE, 10_000_000)
    assert e.value.errno == errno.ETIMEDOUT
    with pytest.raises(DrmError) as e:
        _prep(hw, out, uapi.ETNA_PREP_WRITE | uapi.ETNA_PREP_NOSYNC, 0)
    assert e.value.errno == errno.EBUSY
    with pytest.raises(DrmError) as e:
        hw.wait(fence, timeout_s=1.0)
    assert e.value.errno == errno.EIO
    assert "hung job" in hw.file.fault_log()[-1] and "END" in hw.file.fault_log()[-1]
    # the device keeps working: a later submit signals (after the recovered one)
    fence2 = hw.submit_raw(init_words() + flush_words(), [(out, R)])
    hw.wait(fence2, timeout_s=1.0)
    # a good submit behind a hung one signals only after the recovery (fences are in order)
    hung = hw.submit_raw(init_words() + end, [(out, RW)])
    after = hw.submit_raw(init_words() + flush_words(), [(out, R)])
    with pytest.raises(DrmError) as e:
        hw.wait(after, flags=uapi.ETNA_WAIT_NONBLOCK)
    assert e.value.errno == errno.EBUSY
    hw.wait(after, timeout_s=1.0)  # no error of its own
    with pytest.raises(DrmError) as e:
        hw.wait(hung, flags=uapi.ETNA_WAIT_NONBLOCK)
    assert e.value.errno == errno.EIO  # signalled by now, with its error


def test_fence_errors_switch_off_reports_success_like_linux(harness):
    hw = harness(fence_errors=False)
    fence = hw.submit_raw(init_words() + load_state(uapi_state_unknown(), 1), [])
    hw.wait(fence, timeout_s=1.0)
    assert "unknown state" in hw.file.fault_log()[-1]


def uapi_state_unknown():
    class _Reg:
        offset = 0x1234

    return _Reg()
