"""NN unit against an independent numpy formula: small convolutions with configurations packed
here through the generated register code and weights from the codec encoders (tests may use
encoders; the simulator may not)."""

from __future__ import annotations

import numpy as np
import pytest
from etna_testkit import conv_job, encode_coefs

from mesa_npu.drm_shim.etnaviv.switches import Requant, Rounding, V8Weights
from mesa_npu.util.soc import soc

V7_SOC, V8_SOC = "a311d", "imx8mp"


def brief_requant(acc, multiplier, shift):
    """round(acc * multiplier / 2**shift), ties away from zero, in Python integers."""
    out = np.empty(acc.shape, dtype=np.int64)
    for i, a in np.ndenumerate(acc):
        num = int(a) * multiplier
        mag = (abs(num) + (1 << (shift - 1))) >> shift if shift else abs(num)
        out[i] = mag if num >= 0 else -mag
    return out


def reference(
    x, w, bias, *, izp, wzp, ozp, off, out_hw, mult, shift, relu=False, step=1, depthwise=False
):
    """sum (w - wzp)(x - izp) + bias over a window starting at ``off`` with izp outside the
    image, requantized; x [IC, H, W], w [OC, IC|1, KH, KW]."""
    ic, h, wd = x.shape
    oc, _, kh, kw = w.shape
    oh, ow = out_hw
    ph, pw = (oh - 1) * step + kh, (ow - 1) * step + kw
    pad = np.full((ic, ph, pw), izp, dtype=np.int64)
    for yy in range(ph):
        for xx in range(pw):
            sy, sx = yy + off, xx + off
            if 0 <= sy < h and 0 <= sx < wd:
                pad[:, yy, xx] = x[:, sy, sx]
    acc = np.zeros((oc, oh, ow), dtype=np.int64)
    wc = w.astype(np.int64) - wzp
    for ky in range(kh):
        for kx in range(kw):
            patch = pad[
                :, ky : ky + (oh - 1) * step + 1 : step, kx : kx + (ow - 1) * step + 1 : step
            ]
            patch = patch - izp
            if depthwise:
                acc += wc[:, 0, ky, kx][:, None, None] * patch
            else:
                acc += np.einsum("oi,ihw->ohw", wc[:, :, ky, kx], patch)
    acc += np.asarray(bias, dtype=np.int64)[:, None, None]
    q = brief_requant(acc, mult, shift)
    if relu:
        q = np.maximum(q, 0)
    return np.clip(q + ozp, 0, 255).astype(np.uint8)


def run_conv(h, soc_name, x, w, bias, **kw):
    """Run one NN job on a fresh device; (output [OC, oh, ow], the device file)."""
    hw = h(soc_name)
    job = conv_job(hw, soc_name, x, w, bias, **kw)
    hw.wait(job.submit())
    return job.output(), hw.file


def scale_fields(generation: int, scale: float) -> tuple[int, int, int, int]:
    """(POST_MULTIPLIER, POST_SHIFT, multiplier with its leading one, total shift) of a conv
    scale, as the brief §4 derives them from the float32 bits."""
    bits = int(np.float32(scale).view(np.uint32))
    e, m = bits // (1 << 23), bits % (1 << 23)
    if generation == 7:
        pm, post_shift = m // 256, 142 - e
        return pm, post_shift, (1 << 15) + pm, post_shift
    pm, post_shift = m, 127 - e
    return pm, post_shift, (1 << 23) + m, post_shift + 23


def rand(rng, shape, lo=0, hi=256):
    return rng.integers(lo, hi, size=shape).astype(np.uint8)


@pytest.mark.parametrize("soc_name", [V7_SOC, V8_SOC])
@pytest.mark.parametrize(
    "ic,oc,k,off,size,relu,zrl",
    [
        (3, 5, 3, -1, 7, False, None),
        (8, 12, 1, 0, 6, True, None),
        (1, 4, 3, 0, 9, False, None),
        (6, 9, 5, -2, 8, True, 3),
        (16, 20, 3, -1, 5, False, 0),
    ],
    ids=lambda v: str(v),
)
def test_conv_matches_formula(harness, soc_name, ic, oc, k, off, size, relu, zrl):
    rng = np.random.default_rng(ic * 100 + oc)
    gen = soc(soc_name).npu.nn_core_version
    izp, wzp, ozp = 117, 131, 7
    scale = 0.016 / np.sqrt(ic * k * k)  # keeps most outputs inside 0..255
    x = rand(rng, (ic, size, size))
    w = rand(rng, (oc, ic, k, k), wzp - 90, wzp + 90)
    bias = rng.integers(-3000, 3000, size=oc).astype(np.int32)
    oh = ow = size + 2 * off - k + 1 if off else size - k + 1
    if off:
        oh = ow = size
    pm, post_shift, mult, shift = scale_fields(gen, scale)
    out, _ = run_conv(
        harness,
        soc_name,
        x,
        w,
        bias,
        izp=izp,
        wzp=wzp,
        ozp=ozp,
        off=off,
        out_hw=(oh, ow),
        pm=pm,
        post_shift=post_shift,
        relu=relu,
        zrl=zrl if gen == 7 else None,
    )
    want = reference(
        x,
        w,
        bias,
        izp=izp,
        wzp=wzp,
        ozp=ozp,
        off=off,
        out_hw=(oh, ow),
        mult=mult,
        shift=shift,
        relu=relu,
    )
    np.testing.assert_array_equal(out, want)

    assert np.unique(out).size > 20  # the values are not saturated


@pytest.mark.parametrize("soc_name", [V7_SOC, V8_SOC])
def test_first_pixel_pooling_is_a_stride_two_convolution(harness, soc_name):
    rng = np.random.default_rng(7)
    gen = soc(soc_name).npu.nn_core_version
    x = rand(rng, (4, 9, 9))
    w = rand(rng, (6, 4, 3, 3), 60, 200)
    bias = rng.integers(-500, 500, size=6).astype(np.int32)
    pm, ps, mult, shift = scale_fields(gen, 0.004)
    # programmed 10x10 at stride 1 with offset -1, every other pixel kept: 5x5
    out, f = run_conv(
        harness,
        soc_name,
        x,
        w,
        bias,
        izp=100,
        wzp=128,
        ozp=90,
        off=-1,
        out_hw=(5, 5),
        pm=pm,
        post_shift=ps,
        pool=True,
    )
    want = reference(
        x, w, bias, izp=100, wzp=128, ozp=90, off=-1, out_hw=(5, 5), mult=mult, shift=shift, step=2
    )
    np.testing.assert_array_equal(out, want)
    assert f.job_counters()[0].macs == 6 * 10 * 10 * 9 * 4  # the hardware computes 10x10


def test_v8_hardware_depthwise(harness):
    rng = np.random.default_rng(8)
    c = 10
    x = rand(rng, (c, 6, 6))
    w = rand(rng, (c, 1, 3, 3), 30, 220)
    bias = rng.integers(-900, 900, size=c).astype(np.int32)
    pm, ps, mult, shift = scale_fields(8, 0.01)
    out, f = run_conv(
        harness,
        V8_SOC,
        x,
        w,
        bias,
        izp=128,
        wzp=125,
        ozp=128,
        off=-1,
        pm=pm,
        post_shift=ps,
        depthwise=True,
    )
    want = reference(
        x,
        w,
        bias,
        izp=128,
        wzp=125,
        ozp=128,
        off=-1,
        out_hw=(6, 6),
        mult=mult,
        shift=shift,
        depthwise=True,
    )
    np.testing.assert_array_equal(out, want)
    assert f.job_counters()[0].kind == "depthwise"


def test_v7_expanded_depthwise_runs_per_channel(harness):
    """v7 has no depthwise: the driver expands it to a dense kernel with the zero point off the
    diagonal (brief §1); the model computes it per channel, with the same values."""
    rng = np.random.default_rng(9)
    c, wzp = 12, 119
    dw = rand(rng, (c, 1, 3, 3), 20, 230)
    dense = np.full((c, c, 3, 3), wzp, dtype=np.uint8)
    dense[np.arange(c), np.arange(c)] = dw[:, 0]
    x = rand(rng, (c, 8, 8))
    bias = rng.integers(-900, 900, size=c).astype(np.int32)
    pm, ps, mult, shift = scale_fields(7, 0.01)
    out, f = run_conv(
        harness, V7_SOC, x, dense, bias, izp=99, wzp=wzp, ozp=128, off=-1, pm=pm, post_shift=ps
    )
    want = reference(
        x,
        dw,
        bias,
        izp=99,
        wzp=wzp,
        ozp=128,
        off=-1,
        out_hw=(8, 8),
        mult=mult,
        shift=shift,
        depthwise=True,
    )
    np.testing.assert_array_equal(out, want)
    (job,) = f.job_counters()
    assert job.macs == job.slot_macs == c * 64 * 9 * c  # dense MACs on the hardware
    # Off the diagonal every tap is the zero point: a zero-skipping core issues the diagonal.
    rows = np.any(dw[:, 0].astype(int) != wzp, axis=-1).sum()  # 3-tap kernel rows, nonzero
    assert rows == c * 3 and job.nonzero_slot_macs == 64 * rows * 3


@pytest.mark.parametrize("soc_name", [V7_SOC, V8_SOC])
def test_superblocks_and_kernels_per_core(harness, soc_name):
    rng = np.random.default_rng(10)
    gen = soc(soc_name).npu.nn_core_version
    x = rand(rng, (5, 6, 6))
    w = rand(rng, (40, 5, 3, 3), 70, 190)
    bias = rng.integers(-900, 900, size=40).astype(np.int32)
    pm, ps, mult, shift = scale_fields(gen, 0.003)
    out, f = run_conv(
        harness,
        soc_name,
        x,
        w,
        bias,
        izp=128,
        wzp=130,
        ozp=128,
        off=-1,
        pm=pm,
        post_shift=ps,
        superblocks=2,
    )
    want = reference(
        x, w, bias, izp=128, wzp=130, ozp=128, off=-1, out_hw=(6, 6), mult=mult, shift=shift
    )
    np.testing.assert_array_equal(out, want)
    assert f.job_counters()[0].superblocks == 2


def test_v7_add_form(harness):
    """Mesa's v7 ADD (brief §1): two tensors back to back as a 2-plane image, a 2x2 kernel with
    W in its first slot, addition_offset in the offset slot."""
    rng = np.random.default_rng(11)
    h, wd = 4, 32  # the reshaped image (w = 32 divides W*H*C)
    a, b = rand(rng, (h, wd)), rand(rng, (h, wd))
    s0, zp0, s1, zp1, s_out, zp_out = 0.05, 120, 0.08, 130, 0.1, 125
    ws = max(s1 / s0, 1.0) / 255
    weight, add_off = round(1 / ws), round((s1 / s0) / ws)
    bias = round((zp0 - zp1) * s1 / (ws * s0)) - add_off * zp0
    w = np.zeros((1, 1, 2, 2), dtype=np.uint8)
    w[0, 0, 0, 0] = weight
    coefs = encode_coefs(
        V7_SOC,
        w,
        np.array([bias], np.int32),
        izp=zp0,
        wzp=0,
        out_plane=0,
        add_offset=add_off,
        in_width=wd,
    )
    pm, ps, mult, shift = scale_fields(7, s0 * ws / s_out)
    hw = harness(V7_SOC)
    job = conv_job(
        hw,
        V7_SOC,
        np.stack([a, b]),
        w,
        np.array([bias], np.int32),
        izp=zp0,
        wzp=0,
        ozp=zp_out,
        pm=pm,
        post_shift=ps,
        kernel_z=2,
        coefs=coefs,
    )
    hw.wait(job.submit())
    got = job.output()[0]
    acc = weight * (a.astype(np.int64) - zp0) + add_off * b.astype(np.int64) + bias
    np.testing.assert_array_equal(got, np.clip(brief_requant(acc, mult, shift) + zp_out, 0, 255))
    real = (s0 * (a.astype(float) - zp0) + s1 * (b.astype(float) - zp1)) / s_out + zp_out
    assert np.abs(got - np.clip(np.rint(real), 0, 255)).max() <= 1  # Mesa's numbers work
    assert hw.file.job_counters()[0].kind == "add"


def test_v8_add_as_1x1_convolution_over_both_operands(harness):
    """The v8 ADD is a plain convolution over the concatenated operands (brief §1): a 1x1
    kernel on 2C channels, each output reading its two channels."""
    rng = np.random.default_rng(12)
    c = 6
    x = rand(rng, (2 * c, 5, 5))
    s0, s1, s_out, zp0, zp1, zpo = 0.05, 0.03, 0.07, 128, 110, 120
    # weights in units of ws; |w - wzp| stays within a signed byte (the v8 stream codes
    # w - wzp as one byte with a sign bit, see test_v8_weights_are_signed_bytes)
    ws, wzp = 1 / 120, 3
    lo = s1 / s0
    w = np.full((c, 2 * c, 1, 1), wzp, dtype=np.uint8)
    w[np.arange(c), np.arange(c)] = round(1 / ws) + wzp
    w[np.arange(c), c + np.arange(c)] = round(lo / ws) + wzp
    bias = np.full(c, (zp0 - zp1) * round(s1 / (s0 * ws)), dtype=np.int32)
    pm, ps, mult, shift = scale_fields(8, s0 * ws / s_out)
    out, f = run_conv(harness, V8_SOC, x, w, bias, izp=zp0, wzp=wzp, ozp=zpo, pm=pm, post_shift=ps)
    want = reference(
        x, w, bias, izp=zp0, wzp=wzp, ozp=zpo, off=0, out_hw=(5, 5), mult=mult, shift=shift
    )
    np.testing.assert_array_equal(out, want)
    # A 1x1 tap fills one MAD slot of three; a zero-skipping core issues only the two groups
    # of each kernel whose weight is not the zero point.
    (job,) = f.job_counters()
    assert job.macs == 25 * c * 2 * c
    assert job.slot_macs == 3 * job.macs
    assert job.nonzero_slot_macs == 25 * c * 2 * 3
    assert (job.out_x, job.tile_x) == (5, 5)


@pytest.mark.parametrize("rounding,expect", [
    ("half_away_from_zero", [-2, -1, -1, 0, 1, 1, 2, 2]),
    ("half_up", [-1, -1, 0, 0, 1, 1, 2, 2]),
    ("half_even", [-2, -1, 0, 0, 0, 1, 2, 2]),
])  # fmt: skip
def test_requant_rounding_ties_follow_the_switch(harness, rounding, expect):
    """acc / 2 for acc = -3..4 (v7: multiplier 2**15, shift 16 = exactly 0.5)."""
    x = (np.arange(8, dtype=np.uint8) + 100).reshape(1, 1, 8)
    w = np.full((1, 1, 1, 1), 129, dtype=np.uint8)  # w - wzp = 1
    hw = harness(V7_SOC, nn_rounding=Rounding(rounding))
    job = conv_job(
        hw, V7_SOC, x, w, np.array([0], np.int32), izp=103, wzp=128, ozp=100, pm=0, post_shift=16
    )
    hw.wait(job.submit())
    np.testing.assert_array_equal(job.output().ravel().astype(int) - 100, expect)


@pytest.mark.parametrize("mode", list(V8Weights))
def test_v8_weight_byte_interpretation(harness, mode):
    """The v8 stream codes w - wzp as one byte (brief §3.2). Default (UINT8): the core rebuilds
    w and multiplies w - wzp = +200 exactly; SIGNED_BYTE: the byte acts as 200 - 256 = -56
    (docs/etnaviv-npu-model.md §3)."""
    x = np.full((1, 1, 4), 129, dtype=np.uint8)  # x - 128 = 1
    w = np.full((1, 1, 1, 1), 210, dtype=np.uint8)  # w - wzp = 200
    pm, ps, _, _ = scale_fields(8, 0.25)
    hw = harness(V8_SOC, v8_weights=mode)
    job = conv_job(
        hw, V8_SOC, x, w, np.array([0], np.int32), izp=128, wzp=10, ozp=100, pm=pm, post_shift=ps
    )
    hw.wait(job.submit())
    want = 100 + (50 if mode is V8Weights.UINT8 else -14)  # 0.25 * 200, 0.25 * -56
    np.testing.assert_array_equal(job.output().ravel(), np.full(4, want, np.uint8))


def test_v8_requant_mantissa15_switch_drops_the_low_multiplier_bits(harness):
    """requant=mantissa15: v8 multiplies by the top 15 mantissa bits only (switch). acc = 51327
    and scale (1 + 255/2**23)/2**8: 200.502 rounds to 201; without the low bits 200.496 -> 200."""
    x = np.full((1, 1, 4), 228, dtype=np.uint8)  # x - 128 = 100
    w = np.full((1, 1, 1, 1), 110, dtype=np.uint8)  # w - wzp = 100: acc = 10000 + bias
    outs = {}
    for mode in Requant:
        hw = harness(V8_SOC, requant=mode)
        job = conv_job(
            hw,
            V8_SOC,
            x,
            w,
            np.array([41327], np.int32),
            izp=128,
            wzp=10,
            ozp=0,
            pm=255,
            post_shift=8,
        )
        hw.wait(job.submit())
        outs[mode] = int(job.output()[0, 0, 0])
    assert outs == {Requant.BRIEF: 201, Requant.MANTISSA15: 200}
