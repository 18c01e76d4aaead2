"""The functional model against an independent formula (``rk.reference``: element-by-element
windows and exact rational rounding), driven by regcmd streams the test builds with
``rocket_regs`` and Mesa's register values. Each case names its parameters."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mesa_npu.drivers.rocket import rocket_regs as R

CASES = {
    "1x1-c16-k32": dict(in_h=4, in_w=5, c=16, k=32),
    "1x1-c48-k34-ow": dict(in_h=3, in_w=7, c=48, k=34, ow_op=37),
    "3x3-c20-k40-same": dict(
        in_h=5,
        in_w=6,
        c=20,
        k=40,
        kh=3,
        kw=3,
        pad_top=1,
        pad_left=1,
        pad_bottom=1,
        pad_right=1,
        pad_value=-3,
        ow_op=5,
    ),
    "3x3-c3-k8-s2-same": dict(
        in_h=9,
        in_w=8,
        c=3,
        k=8,
        kh=3,
        kw=3,
        stride=2,
        pad_top=1,
        pad_left=1,
        pad_bottom=1,
        pad_right=0,
        pad_value=-128,
        ow_op=128,
    ),
    "5x3-c64-k70-s2-valid-ow": dict(in_h=9, in_w=11, c=64, k=70, kh=5, kw=3, stride=2, ow_op=100),
    "2x2-c33-k2-s1-asym": dict(
        in_h=4, in_w=4, c=33, k=2, kh=2, kw=2, pad_bottom=1, pad_right=1, pad_value=7, ow_op=-20
    ),
    "dw3x3-c32-same": dict(
        in_h=6,
        in_w=5,
        c=32,
        k=32,
        kh=3,
        kw=3,
        depthwise=True,
        pad_top=1,
        pad_left=1,
        pad_bottom=1,
        pad_right=1,
        pad_value=11,
        ow_op=3,
    ),
    "dw3x3-c144-s2": dict(
        in_h=7,
        in_w=7,
        c=144,
        k=144,
        kh=3,
        kw=3,
        depthwise=True,
        stride=2,
        pad_top=1,
        pad_left=1,
        pad_bottom=1,
        pad_right=1,
        pad_value=-1,
        ow_op=100,
    ),
    "dw5x5-c96-valid": dict(in_h=6, in_w=7, c=96, k=96, kh=5, kw=5, depthwise=True),
    "pixel-3x3-k16-s2": dict(
        in_h=9,
        in_w=20,
        c=1,
        k=16,
        kh=3,
        kw=3,
        stride=2,
        pixel=True,
        pad_top=1,
        pad_left=1,
        pad_bottom=1,
        pad_right=1,
        pad_value=-128,
        ow_op=9,
    ),
    "pixel-narrow-w7": dict(in_h=5, in_w=7, c=1, k=4, kh=3, kw=3, pixel=True),
}


@pytest.mark.parametrize("name", CASES)
def test_convolution_matches_formula(rk, name):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    run = rk.fit_shift(rk.random_run(rk.Conv(**CASES[name], offset=3), rng))
    cv = run.cv
    got = rk.execute(rk.Sim(), run)
    want = rk.reference(cv, run.x, run.w, run.bias)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 10  # the case exercises more than saturation


@pytest.mark.parametrize("clip", [1, 3])
@pytest.mark.parametrize("ow_term", ["accumulator", "after_truncate", "off"])
def test_clip_truncate_and_ow_placement(rk, clip, ow_term):
    rng = np.random.default_rng(clip * 7 + len(ow_term))
    cv = rk.Conv(
        in_h=4,
        in_w=4,
        c=32,
        k=32,
        kh=3,
        kw=3,
        pad_top=1,
        pad_left=1,
        pad_bottom=1,
        pad_right=1,
        ow_op=77,
        clip=clip,
        shift=20 - clip,
        pad_value=-50,
    )
    run = rk.fit_shift(rk.random_run(cv, rng))
    cv = run.cv
    got = rk.execute(rk.Sim(ow_term=ow_term), run)
    place = {"off": "none"}.get(ow_term, ow_term)
    want = rk.reference(cv, run.x, run.w, run.bias, ow_place=place)
    np.testing.assert_array_equal(got, want)
    if ow_term != "accumulator":  # the placement is observable
        other = rk.reference(cv, run.x, run.w, run.bias, ow_place="accumulator")
        assert (other != want).any()


def _halves_case(rk):
    """A 1x1 conv whose every output lands exactly on .5 before rounding."""
    cv = rk.Conv(in_h=2, in_w=8, c=16, k=32, scale=1, shift=1, offset=0)
    x = np.zeros((2, 8, 16), dtype=np.int8)
    x[:, :, 0] = np.arange(-8, 8).reshape(2, 8)
    w = np.zeros((32, 1, 1, 16), dtype=np.int8)
    w[:, 0, 0, 0] = 1
    bias = np.zeros(32, dtype=np.int32)
    return cv, rk.ConvRun(cv, x, w, bias)


@pytest.mark.parametrize(
    "cvt_round, forced, mode",
    [
        (0, "register", "half_even"),
        (1, "register", "half_up"),
        (0, "half_away", "half_away"),
        (1, "floor", "floor"),
    ],
)
def test_output_rounding(rk, cvt_round, forced, mode):
    cv, run = _halves_case(rk)
    cv = replace(cv, cvt_round=cvt_round)
    run.cv = cv
    got = rk.execute(rk.Sim(round_mode=forced), run)
    want = rk.reference(cv, run.x, run.w, run.bias, out_mode=mode)
    np.testing.assert_array_equal(got, want)
    # x / 2 for x in -8..7: the four modes disagree on the halves.
    expect = {
        "half_even": [-4, -4, -3, -2, -2, -2, -1, 0],
        "half_up": [-4, -3, -3, -2, -2, -1, -1, 0],
        "half_away": [-4, -4, -3, -3, -2, -2, -1, -1],
        "floor": [-4, -4, -3, -3, -2, -2, -1, -1],
    }[mode]
    assert got[0, :, 0].tolist() == expect


def test_multiply_then_add_vs_add_then_multiply(rk):
    rng = np.random.default_rng(5)
    cv = rk.Conv(in_h=3, in_w=3, c=16, k=32, scale=23456, shift=19, offset=-9, cvt_type=1)
    run = rk.fit_shift(rk.random_run(cv, rng))
    cv = run.cv
    got = rk.execute(rk.Sim(), run)
    np.testing.assert_array_equal(got, rk.reference(cv, run.x, run.w, run.bias))


@pytest.mark.parametrize("ew_mode", ["comb", "plain"])
@pytest.mark.parametrize("k", [16, 48, 64])
def test_fused_add(rk, ew_mode, k):
    rng = np.random.default_rng(k)
    cv = rk.Conv(
        in_h=4,
        in_w=5,
        c=24,
        k=k,
        shift=18,
        ew=(37, 30000, 4),
        ew_mode=ew_mode,
        ew_round=1,
        offset=-4,
    )
    run = rk.fit_shift(rk.random_run(cv, rng))
    cv = run.cv
    got = rk.execute(rk.Sim(ew_fetch=ew_mode), run)
    want = rk.reference(cv, run.x, run.w, run.bias, run.e)
    np.testing.assert_array_equal(got, want)
    without = rk.reference(cv, run.x, run.w, run.bias)
    assert (without != want).mean() > 0.5


def test_mesa_ew_values_need_the_comb_reading(rk):
    """Mesa's EW registers (EW_BASE one surface ahead) read the operand off by one surface under
    the plain NVDLA reading: the switch is observable, and the default is the one that works."""
    rng = np.random.default_rng(9)
    cv = rk.Conv(in_h=3, in_w=3, c=16, k=64, shift=18, ew=(0, 16384, 10), ew_mode="comb")
    run = rk.fit_shift(rk.random_run(cv, rng))
    cv = run.cv
    want = rk.reference(cv, run.x, run.w, run.bias, run.e)
    assert (rk.execute(rk.Sim(ew_fetch="plain"), run) != want).any()


@pytest.mark.parametrize("split", [2, 3])
@pytest.mark.parametrize("ew", [False, True])
def test_row_split_tasks_reuse_weights(rk, split, ew):
    """Tasks of one job split the output rows (brief §5): later tasks set WEIGHT_REUSE and start
    at an input row offset; the EW operand is read through the per-task notch."""
    rng = np.random.default_rng(split)
    cv = rk.Conv(
        in_h=11,
        in_w=6,
        c=40,
        k=36,
        kh=3,
        kw=3,
        stride=1,
        pad_top=1,
        pad_left=1,
        pad_bottom=1,
        pad_right=1,
        pad_value=2,
        ow_op=-7,
        shift=21,
        ew=(5, 30000, 4) if ew else None,
    )
    run = rk.fit_shift(rk.random_run(cv, rng))
    cv = run.cv
    sim = rk.Sim()
    got = rk.execute(sim, run, split=split)
    np.testing.assert_array_equal(got, rk.reference(cv, run.x, run.w, run.bias, run.e))
    [job] = sim.file.job_counters()
    assert job.tasks == split
    wbytes = cv.kernels * cv.kh * cv.kw * cv.c_al
    assert job.bytes_read["weights"] == wbytes  # fetched once, reused from the CBUF


def test_masked_padding_channels(rk):
    rng = np.random.default_rng(3)
    cv = rk.Conv(in_h=3, in_w=4, c=20, k=32, kh=1, kw=1, ow_op=11, shift=20)
    run = rk.fit_shift(rk.random_run(cv, rng))
    cv = run.cv
    got = rk.execute(rk.Sim(padded_channels="masked"), run)
    np.testing.assert_array_equal(got, rk.reference(cv, run.x, run.w, run.bias, masked=True))
    read = rk.reference(cv, run.x, run.w, run.bias)
    assert (read != got).any()


def test_quantized_uint8_conv_is_exact(rk):
    """The algebra of brief §7 through the model: uint8 tensors stored as q - 128, weights
    q_w - 128, bias pre-corrected, BS_OW_OP = 128 - z_w, PAD_VALUE = z_in - 128. The output
    equals the exact quantized convolution requantized with the programmed scale and shift."""
    rng = np.random.default_rng(11)
    h, w_, c, k, kk = 6, 5, 24, 40, 3
    z_in, z_w, z_out = 131, 119, 124
    q_in = rng.integers(0, 256, (h, w_, c))
    q_w = rng.integers(0, 256, (k, kk, kk, c))
    bias = rng.integers(-5000, 5000, k)
    scale, shift = 17000, 23  # M = 17000 / 2^23
    cv = rk.Conv(
        in_h=h,
        in_w=w_,
        c=c,
        k=k,
        kh=kk,
        kw=kk,
        pad_top=1,
        pad_left=1,
        pad_bottom=1,
        pad_right=1,
        pad_value=z_in - 128,
        ow_op=128 - z_w,
        scale=scale,
        shift=shift,
        offset=z_out - 128,
    )
    x = np.full((h, w_, cv.c_al), z_in - 128, dtype=np.int8)
    x[:, :, :c] = q_in - 128
    wq = np.full((cv.kernels, kk, kk, cv.c_al), z_w - 128, dtype=np.int8)
    wq[:k, :, :, :c] = q_w - 128
    wq[k:] = 0
    corr = ((q_w - z_w) * (z_in - 128)).sum(axis=(1, 2, 3))
    bias_hw = np.zeros(cv.c_out, dtype=np.int32)
    bias_hw[:k] = bias - corr
    run = rk.ConvRun(cv, x, wq, bias_hw)
    got = rk.execute(rk.Sim(), run).astype(np.int64) + 128

    padded = np.pad(q_in - z_in, ((1, 1), (1, 1), (0, 0)))
    acc = np.zeros((h, w_, k), dtype=np.int64)
    for y in range(h):
        for xx in range(w_):
            acc[y, xx] = np.einsum("abc,kabc->k", padded[y : y + kk, xx : xx + kk], q_w - z_w)
    want = np.clip(rk.rshift((acc + bias) * scale, shift, "half_even") + z_out, 0, 255)
    np.testing.assert_array_equal(got, want)


def test_cna_strides_in_bytes_switch(rk):
    """With cna_strides="bytes" a stream whose DMA_CON1/2 hold byte strides reads the same
    cube as Mesa's values do under the default."""
    rng = np.random.default_rng(2)
    cv = rk.Conv(in_h=5, in_w=3, c=40, k=32, shift=20)
    run = rk.fit_shift(rk.random_run(cv, rng))
    cv = run.cv
    sim = rk.Sim(cna_strides="bytes")
    bufs = rk.load(sim, run)
    stream = rk.conv_stream(cv, bufs)
    line_off, surf_off = R.CNA.DMA_CON1.offset, R.CNA.DMA_CON2.offset
    for i, word in enumerate(stream.words):
        e = rk.ENTRY.unpack(word)
        if e.BLOCK and e.OFFSET in (line_off, surf_off):
            value = cv.in_w * 16 if e.OFFSET == line_off else cv.in_w * cv.in_h * 16
            stream.words[i] = rk.ENTRY.pack(BLOCK=e.BLOCK, UNK48=True, OFFSET=e.OFFSET, VALUE=value)
    _, tasks = sim.regcmd(stream)
    sim.submit([(tasks, [bufs.input], [bufs.output])])
    assert sim.prep(bufs.output) == 0
    plane = cv.out_h * cv.out_w * 16
    got = rk.unpack_features(bytes(bufs.output.mem), cv.out_h, cv.out_w, cv.k, plane)
    np.testing.assert_array_equal(got, rk.reference(cv, run.x, run.w, run.bias))


def test_counters(rk):
    rng = np.random.default_rng(1)
    cv = rk.Conv(
        in_h=8,
        in_w=8,
        c=32,
        k=64,
        kh=3,
        kw=3,
        pad_top=1,
        pad_left=1,
        pad_bottom=1,
        pad_right=1,
        shift=20,
        ew=(0, 16384, 14),
    )
    run = rk.fit_shift(rk.random_run(cv, rng))
    cv = run.cv
    sim = rk.Sim()
    rk.execute(sim, run)
    [job] = sim.file.job_counters()
    assert job.status == "ok" and job.tasks == 1 and job.core == 0
    assert job.macs == 8 * 8 * 3 * 3 * 32 * 64
    assert job.bytes_read["input"] == 8 * 8 * 32
    assert job.bytes_read["weights"] == 64 * 9 * 32
    assert job.bytes_read["bias"] == 64 * 4
    assert job.bytes_read["ew"] == 8 * 8 * 64
    assert job.bytes_written["output"] == 8 * 8 * 64
    assert job.bytes_read["regcmd"] % 16 == 0 and job.bytes_read["regcmd"] > 100 * 8
    assert job.end_ns > job.start_ns
