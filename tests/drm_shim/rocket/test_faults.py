"""Faults end the job, never the process: each case ends in an errno on PREP_BO and a readable
fault log line naming the job, task, register or address; the device keeps working after."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from mesa_npu.drivers.rocket import rocket_regs as R
from mesa_npu.drm_shim.rocket.npu import Core


def _setup(rk, sim, **conv):
    cv = rk.Conv(**{"in_h": 4, "in_w": 4, "c": 16, "k": 32, **conv})
    run = rk.random_run(cv, np.random.default_rng(0))
    return cv, run, rk.load(sim, run)


def _replace(rk, stream, reg, **fields):
    """Rewrite every write of ``reg`` in ``stream``."""
    for i, word in enumerate(stream.words):
        e = rk.ENTRY.unpack(word)
        if e.BLOCK and e.OFFSET == reg.offset:
            stream.words[i] = rk.ENTRY.pack(
                BLOCK=e.BLOCK, UNK48=True, OFFSET=reg.offset, VALUE=reg.pack(**fields)
            )


def _run(sim, bufs, stream, count=None):
    _bo, tasks = sim.regcmd(stream)
    if count is not None:
        tasks = [(tasks[0][0], count)]
    sim.submit([(tasks, [bufs.input], [bufs.output])])
    return sim.prep(bufs.output)


def _still_works(rk, sim):
    cv, run, bufs = _setup(rk, sim)
    assert _run(sim, bufs, rk.conv_stream(cv, bufs)) == 0
    plane = cv.out_h * cv.out_w * 16
    got = rk.unpack_features(bytes(bufs.output.mem), cv.out_h, cv.out_w, cv.k, plane)
    np.testing.assert_array_equal(got, rk.reference(cv, run.x, run.w, run.bias))


def test_address_outside_every_bo_is_an_iommu_fault(rk, sim):
    cv, _, bufs = _setup(rk, sim)
    stream = rk.conv_stream(cv, bufs)
    bad = bufs.weights.iova + 3 * 4096  # past the weights BO and its guard page
    _replace(rk, stream, R.CNA.DCOMP_ADDR0, DECOMPRESS_ADDR0=bad)
    assert _run(sim, bufs, stream) == errno.EIO
    msg = sim.file.last_fault()
    assert "job 0 task 0 core 0: IOMMU fault: CNA.DCOMP_ADDR0 (weights) read" in msg
    assert f"{bad:#010x}" in msg
    _still_works(rk, sim)


def test_output_overrunning_its_bo_faults(rk, sim):
    cv, _, bufs = _setup(rk, sim, in_h=8, in_w=8)
    stream = rk.conv_stream(cv, bufs)
    # A surface stride one 4 KiB page too large pushes the second surface out of the BO.
    _replace(rk, stream, R.DPU.DST_SURF_STRIDE, DST_SURF_STRIDE=cv.out_w * cv.out_h + 256)
    assert _run(sim, bufs, stream) == errno.EIO
    assert "IOMMU fault: DPU.DST_BASE_ADDR (output) write" in sim.file.last_fault()
    assert "past the end of BO" in sim.file.last_fault()


def test_truncated_stream_runs_past_its_bo(rk, sim):
    cv, _, bufs = _setup(rk, sim)
    stream = rk.conv_stream(cv, bufs)
    assert _run(sim, bufs, stream, count=len(stream.words) + 600) == errno.EIO
    assert "IOMMU fault: PC regcmd fetch" in sim.file.last_fault()


def test_stream_cut_before_op_en_hangs(rk, sim):
    cv, _, bufs = _setup(rk, sim)
    stream = rk.conv_stream(cv, bufs)
    assert _run(sim, bufs, stream, count=len(stream.words) - 2) == errno.ETIMEDOUT
    [job] = sim.file.job_counters()
    assert job.status == "timeout"
    assert job.end_ns - job.start_ns == 500_000_000  # the kernel's JOB_TIMEOUT_MS, simulated
    assert "hang: the fetched stream" in sim.file.last_fault()
    _still_works(rk, sim)


@pytest.mark.parametrize(
    "word, expect",
    [
        (
            lambda rk: rk.ENTRY.pack(BLOCK=R.Target.CNA, UNK48=True, OFFSET=0x1018, VALUE=1),
            "offset 0x1018 is not a register of the tables",
        ),
        (
            lambda rk: rk.ENTRY.pack(BLOCK=R.Target.UNK400, UNK48=True, OFFSET=0x2004, VALUE=1),
            "unknown target bits 0x0400",
        ),
        (
            lambda rk: rk.ENTRY.pack(
                BLOCK=R.Target.DPU, UNK48=True, OFFSET=R.CNA.CONV_CON1.offset, VALUE=0
            ),
            "block DPU does not own CNA.CONV_CON1",
        ),
        (
            lambda rk: rk.ENTRY.pack(BLOCK=0x0300, UNK48=True, OFFSET=R.CNA.CONV_CON1.offset),
            "unknown target bits 0x0300",
        ),
        (lambda rk: rk.ENTRY.pack(UNK48=True, VALUE=5), "no block bits and not the"),
    ],
    ids=["unknown-offset", "unknown-block", "wrong-block", "two-blocks", "no-block"],
)
def test_malformed_entries(rk, sim, word, expect):
    cv, _, bufs = _setup(rk, sim)
    stream = rk.conv_stream(cv, bufs)
    stream.words.insert(5, word(rk))
    assert _run(sim, bufs, stream) == errno.EIO
    msg = sim.file.last_fault()
    assert "regcmd entry 5 (byte 0x28)" in msg and expect in msg


@pytest.mark.parametrize(
    "enable, marker, expect",
    [
        (0x15, True, "does not enable the DPU"),
        (0x18, True, "not the CNA and CORE"),
        (0x1D, False, "op_en without the 0x0041 marker"),
    ],
)
def test_tasks_without_a_completion_interrupt_time_out(rk, sim, enable, marker, expect):
    cv, _, bufs = _setup(rk, sim)
    stream = rk.conv_stream(cv, bufs, tail_enable=enable)
    if not marker:
        stream.words.remove(rk.MARKER)
    assert _run(sim, bufs, stream) == errno.ETIMEDOUT
    assert expect in sim.file.last_fault()


@pytest.mark.parametrize(
    "reg, fields, expect",
    [
        (
            R.CNA.CONV_CON1,
            {"IN_PRECISION": R.Precision.FP16},
            "unsupported setting CNA.CONV_CON1.IN_PRECISION",
        ),
        (
            R.CNA.CONV_CON3,
            {"CONV_X_STRIDE": 1, "CONV_Y_STRIDE": 1, "ATROUS_X_DILATION": 1},
            "ATROUS_X_DILATION=1",
        ),
        (R.DPU.EW_CFG, {"EW_LUT_BYPASS": 0}, "EW_LUT_BYPASS=0"),
        (R.DPU.DATA_CUBE_WIDTH, {"WIDTH": 2}, "DPU.DATA_CUBE_WIDTH/HEIGHT/CHANNEL give 3x4x32"),
        (R.CNA.WEIGHT_SIZE1, {"WEIGHT_BYTES_PER_KERNEL": 8}, "WEIGHT_BYTES_PER_KERNEL=8"),
        (R.CNA.CBUF_CON0, {"DATA_BANK": 8, "WEIGHT_BANK": 8}, "> the core's 12 banks"),
    ],
    ids=["fp16", "dilation", "lut", "cube", "weight-size", "banks"],
)
def test_unsupported_or_inconsistent_settings(rk, sim, reg, fields, expect):
    cv, _, bufs = _setup(rk, sim)
    stream = rk.conv_stream(cv, bufs)
    _replace(rk, stream, reg, **fields)
    assert _run(sim, bufs, stream) == errno.EIO
    assert expect in sim.file.last_fault()


def test_ppu_is_not_modelled(rk, sim):
    cv, _, bufs = _setup(rk, sim)
    assert _run(sim, bufs, rk.conv_stream(cv, bufs, tail_enable=0x7F)) == errno.EIO
    assert "PPU" in sim.file.last_fault()


def test_an_exception_inside_the_model_becomes_a_fault(rk, sim, monkeypatch):
    def broken(self, mem, regcmd, count):
        raise ZeroDivisionError("simulated model bug")

    monkeypatch.setattr(Core, "run_task", broken)
    cv, _, bufs = _setup(rk, sim)
    assert _run(sim, bufs, rk.conv_stream(cv, bufs)) == errno.EIO
    assert "internal model error: ZeroDivisionError: simulated model bug" in sim.file.last_fault()


def test_a_failed_job_fails_its_dependents(rk, sim):
    cv, _, bufs = _setup(rk, sim)
    bad = rk.conv_stream(cv, bufs)
    _replace(rk, bad, R.CNA.FEATURE_DATA_ADDR, FEATURE_BASE_ADDR=0x10)
    _, tasks1 = sim.regcmd(bad)
    cv2 = rk.Conv(in_h=4, in_w=4, c=32, k=32)
    run2 = rk.random_run(cv2, np.random.default_rng(1))
    bufs2 = rk.load(sim, run2)
    bufs2.input = bufs.output
    _, tasks2 = sim.regcmd(rk.conv_stream(cv2, bufs2))
    sim.submit([(tasks1, [bufs.input], [bufs.output]), (tasks2, [bufs.output], [bufs2.output])])
    assert sim.prep(bufs2.output) == errno.EIO
    first, second = sim.file.job_counters()
    assert (first.status, second.status) == ("fault", "dependency")
    assert "below the first BO" in first.message
    assert second.message.startswith("job 1 depends on failed job 0; first failure: job 0 task 0")
    assert second.cause == first.message


def test_a_failed_reader_does_not_fail_the_next_writer(rk, sim):
    """Failures travel with data (the writers of a job's in-BOs), not with write-after-read
    ordering: a job that overwrites the input of a faulted job still succeeds."""
    cv, _, bufs = _setup(rk, sim)
    bad = rk.conv_stream(cv, bufs)
    _replace(rk, bad, R.CNA.DCOMP_ADDR0, DECOMPRESS_ADDR0=0x10)
    _, tasks_bad = sim.regcmd(bad)
    cv2, _, bufs2 = _setup(rk, sim)
    _, tasks2 = sim.regcmd(rk.conv_stream(cv2, bufs2))
    sim.submit(
        [
            (tasks_bad, [bufs.input], [bufs.output]),
            (tasks2, [bufs2.input], [bufs2.output, bufs.input]),
        ]
    )
    first, second = sim.file.job_counters()
    assert (first.status, second.status) == ("fault", "ok")
    assert second.start_ns >= first.end_ns  # still ordered after the reader
    assert sim.prep(bufs2.output) == 0
