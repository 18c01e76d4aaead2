"""NN unit against an independent numpy formula: small convolutions with configurations packed
here through the generated register code and weights from the codec encoders (tests may use
encoders; the simulator may not)."""

from __future__ import annotations

import numpy as np
import pytest
from etna_testkit import R, W, nn_words

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.drivers.etnaviv.codec_bits import WeightCompressionConfig
from mesa_npu.drivers.etnaviv.codec_v7 import V7Layout, encode_v7, plane_offsets
from mesa_npu.drivers.etnaviv.codec_v8 import encode_v8
from mesa_npu.drivers.etnaviv.codec_v8_format import V8Layout
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


def nn_config(**fields) -> bytes:
    """Mesa's fixed NN config values (brief §2) plus the given fields."""
    base = dict(NN_LAYER_FLUSH=1, ROUNDING_MODE=1, POOLING_XY_SIZE=1, KERNELS_PER_CORE=1)
    return E.NN_CONFIG.pack_words(**(base | fields))


def run_conv(
    h,
    soc_name,
    x,
    w,
    bias,
    *,
    izp,
    wzp,
    ozp,
    off=0,
    out_hw=None,
    pm=0,
    post_shift=0,
    relu=False,
    pool=False,
    depthwise=False,
    superblocks=1,
    zrl=None,
):
    """Encode, place and run one NN job; returns (output [OC, oh, ow], harness file)."""
    hw = h(soc_name)
    npu = soc(soc_name).npu
    ic, ih, iw = x.shape
    oc, _, kh, kw = w.shape
    oh, ow = out_hw or (ih, iw)
    prog_h, prog_w = (oh * 2, ow * 2) if pool else (oh, ow)
    cores = npu.nn_cores
    per_core = -(-oc // min(oc, cores))
    kpc = -(-per_core // superblocks)
    if npu.nn_core_version == 7:
        layout = V7Layout.for_job(
            oc=oc,
            ic=ic,
            kh=kh,
            kw=kw,
            nn_cores=cores,
            superblocks=superblocks,
            zero_point=wzp,
            input_width=iw,
        )
        coefs = encode_v7(
            w,
            bias,
            plane_offsets(layout, oh * ow),
            layout,
            input_zero_point=izp,
            max_zrl_bits=npu.zrl_bits,
            force_zrl=zrl,
        ).data
    else:
        layout = V8Layout(
            oc=oc,
            ic=1 if depthwise else ic,
            kh=kh,
            kw=kw,
            nn_cores=cores,
            superblocks=superblocks,
            zero_point=wzp,
            depthwise=depthwise,
        )
        coefs = encode_v8(
            w, bias, layout, input_zero_point=izp, config=WeightCompressionConfig()
        ).data
    kbo = hw.bo(len(coefs), coefs)
    ibo = hw.bo(x.size, np.ascontiguousarray(x))
    obo = hw.bo(oc * oh * ow)
    cfg = nn_config(
        KERNEL_XY_SIZE=kw,
        KERNEL_Y_SIZE=kh,
        KERNEL_Z_SIZE=ic,
        KERNELS_PER_CORE=kpc,
        IN_IMAGE_X_SIZE=iw,
        IN_IMAGE_Y_SIZE=ih,
        IN_IMAGE_X_STRIDE=iw,
        IN_IMAGE_Y_STRIDE=ih,
        IN_IMAGE_X_OFFSET=off,
        IN_IMAGE_Y_OFFSET=off,
        IN_IMAGE_BORDER_CONST=izp,
        IN_IMAGE_ADDRESS=ibo.va,
        OUT_IMAGE_ADDRESS=obo.va,
        KERNEL_ADDRESS=kbo.va,
        OUT_IMAGE_X_SIZE=prog_w,
        OUT_IMAGE_Y_SIZE=prog_h,
        OUT_IMAGE_Z_SIZE=oc,
        OUT_IMAGE_X_STRIDE=ow,
        OUT_IMAGE_Y_STRIDE=oh,
        OUT_IMAGE_TILE_X_SIZE=min(prog_w, 64),
        OUT_IMAGE_TILE_Y_SIZE=min(prog_h, 4),
        COEF_ZERO_POINT=wzp,
        OUT_ZERO_POINT=ozp,
        POST_MULTIPLIER=pm,
        POST_SHIFT=post_shift,
        RELU=int(relu),
        DEPTHWISE=int(depthwise),
        POOLING=E.NnPooling.POOLING_FIRST_PIXEL if pool else E.NnPooling.POOLING_NON,
        POOLING_XY_SIZE=0 if pool else 1,
    )
    cbo = hw.bo(len(cfg), cfg)
    fence = hw.run(nn_words(cbo.va), [(cbo, R), (kbo, R), (ibo, R), (obo, W)])
    hw.wait(fence)
    return obo.view[: oc * oh * ow].reshape(oc, oh, ow).copy(), hw.file


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
    x = rand(rng, (ic, size, size))
    w = rand(rng, (oc, ic, k, k), wzp - 90, wzp + 90)
    bias = rng.integers(-3000, 3000, size=oc).astype(np.int32)
    oh = ow = size + 2 * off - k + 1 if off else size - k + 1
    if off:
        oh = ow = size
    pm, post_shift, mult, shift = scale_fields(gen, 0.0123)
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
