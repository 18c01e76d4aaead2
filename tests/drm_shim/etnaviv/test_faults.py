"""Faults end the submit with a readable kernel-log line and an errno on the fence, never a
Python exception, and the device keeps working afterwards."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from etna_testkit import (
    R,
    W,
    conv_job,
    flush_words,
    init_words,
    load_state,
    tp_words,
    transpose_config,
)

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.util.drm import DrmError

V = E.VIVS


def small_conv(hw, soc_name="a311d"):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(3, 6, 6), dtype=np.uint8)
    w = rng.integers(60, 200, size=(4, 3, 3, 3), dtype=np.uint8)
    bias = np.arange(4, dtype=np.int32)
    return conv_job(hw, soc_name, x, w, bias, izp=128, wzp=128, ozp=128, off=-1, post_shift=20)


def expect_fault(hw, fence, *needles):
    with pytest.raises(DrmError) as e:
        hw.wait(fence, timeout_s=1.0)
    assert e.value.errno == errno.EIO
    line = hw.file.fault_log()[-1]
    for needle in needles:
        assert needle in line, line
    return line


def still_works(hw, soc_name="a311d"):
    job = small_conv(hw, soc_name)
    hw.wait(job.submit())
    assert job.output().any()


@pytest.mark.parametrize("soc_name", ["a311d", "imx8mp"])
def test_address_outside_any_bo(harness, soc_name):
    hw = harness(soc_name)
    job = small_conv(hw, soc_name)
    bad = job.ibo.va + job.ibo.size + 16  # in the guard page after the input BO
    line = expect_fault(hw, job.submit(IN_IMAGE_ADDRESS=bad), "IN_IMAGE_ADDRESS", f"{bad:#010x}")
    assert "job 0 (NN)" in line and "address outside" in line
    still_works(hw, soc_name)


@pytest.mark.parametrize("soc_name", ["a311d", "imx8mp"])
def test_corrupt_weight_stream(harness, soc_name):
    hw = harness(soc_name)
    job = small_conv(hw, soc_name)
    job.kbo.view[64:72] = 0xFF  # the first core stream's start
    line = expect_fault(hw, job.submit(), "corrupt weight stream", "core 0", "bit")
    assert "KERNEL_ADDRESS" in line
    still_works(hw, soc_name)


@pytest.mark.parametrize(
    "fields,needle",
    [
        ({"KERNELS_PER_CORE": 3}, "KERNELS_PER_CORE 3 above"),
        ({"IN_IMAGE_X_SIZE": 0}, "IN_IMAGE_X_SIZE is 0"),
        ({"OUT_IMAGE_TILE_X_SIZE": 7}, "OUT_IMAGE_TILE_X_SIZE 7"),
        ({"ROUNDING_MODE": 2}, "ROUNDING_MODE = 2"),
        ({"IMAGE_CACHING_MODE": 1, "IMAGE_CACHE_END_ADDRESS": 1 << 20}, "past the 512 KiB SRAM"),
        ({"POOLING": 1}, "POOLING"),
        ({"DEPTHWISE": 1}, "v8 feature"),
    ],
)
def test_bad_configuration(harness, fields, needle):
    hw = harness()
    job = small_conv(hw)
    expect_fault(hw, job.submit(**fields), needle)
    assert hw.file.job_counters() == ()
    still_works(hw)


def test_hung_jobs(harness):
    hw = harness()
    job = small_conv(hw)
    expect_fault(hw, job.submit(NN_LAYER_FLUSH=0), "hung job", "NN_LAYER_FLUSH")
    # a multi-core TP job whose last core never comes
    src, dst = hw.bo(64), hw.bo(64)
    cfg = hw.bo(124, transpose_config(2, 2, 2, src.va, dst.va, 0))
    words = init_words() + load_state(V.PS_TP_INST_ADDR, cfg.va + 1) + flush_words()
    fence = hw.submit_raw(words, [(cfg, R), (src, R), (dst, W)])
    expect_fault(hw, fence, "hung job", "waits forever")
    still_works(hw)


def test_stream_faults(harness):
    hw = harness()
    draw = E.FE.HEADER.pack(OP=E.FeOpcode.DRAW_PRIMITIVES)
    fence = hw.submit_raw([*init_words(), draw, 0], [])
    expect_fault(hw, fence, "DRAW_PRIMITIVES", "not an NPU command")
    head = E.FE_LOAD_STATE.HEADER.pack(OP=E.FeOpcode.LOAD_STATE, COUNT=1, OFFSET=0x2000)
    fence = hw.submit_raw([*init_words(), head, 5], [])
    expect_fault(hw, fence, "unknown state 0x2000")
    fence = hw.submit_raw(init_words() + load_state(V.PS_TP_INST_ADDR, 0x7000000) + [0, 0], [])
    expect_fault(hw, fence, "TP config at 0x07000000", "in no BO")
    still_works(hw)


def test_model_bug_becomes_a_job_fault(harness, monkeypatch):
    hw = harness()
    job = small_conv(hw)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("model bug")

    monkeypatch.setattr(hw.file._frontend.nn, "run", broken)
    expect_fault(hw, job.submit(), "internal model error", "ZeroDivisionError: model bug")


def test_warnings_do_not_stop_the_job(harness):
    hw = harness()
    src, dst = hw.bo(8, np.arange(8, dtype=np.uint8)), hw.bo(8)
    cfg = hw.bo(124, transpose_config(2, 2, 2, src.va, dst.va, 0))
    fence = hw.submit_raw(init_words() + tp_words([cfg.va]), [(cfg, R), (src, R), (dst, R)])
    hw.wait(fence)  # no flush at the end and an output BO listed READ only: warnings
    log = "\n".join(hw.file.fault_log())
    assert "without WRITE" in log and "GL_FLUSH_CACHE" in log
    np.testing.assert_array_equal(dst.view[:8], [0, 2, 4, 6, 1, 3, 5, 7])


@pytest.mark.parametrize(
    "fields,needle",
    [
        ({"ALU_SQUARE_ENABLE": 1}, "not modelled: TP config at"),
        ({"OUT_LOOP_0_COUNT": 3}, "output loops 0..5 cover"),
        ({"IN_TILE_Y_INC": 1}, "IN_TILE_Y_SIZE 2 with IN_TILE_Y_INC 1"),
        ({"ALU_I2F_ENABLE": 0}, "ALU_I2F_ENABLE = 0"),
        ({"OUT_IMAGE_BASE_ADDRESS": 0x100}, "TP core 0 output"),
    ],
)
def test_bad_tp_configuration(harness, fields, needle):
    hw = harness()
    src, dst = hw.bo(64), hw.bo(64)
    raw = transpose_config(2, 2, 2, src.va, dst.va, 0)
    cfg = E.TP_CONFIG.pack_words(**(E.TP_CONFIG.unpack_words(raw)._asdict() | fields))
    cbo = hw.bo(124, cfg)
    fence = hw.run(tp_words([cbo.va]), [(cbo, R), (src, R), (dst, W)])
    expect_fault(hw, fence, needle)
    still_works(hw)
