"""TP unit: transposes, reshuffle, pad and PWL lookups from configurations packed here after the
brief §6, against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from etna_testkit import (
    R,
    W,
    detranspose_config,
    lut_abs,
    lut_logistic,
    lut_relu,
    pad_config,
    pwl_config,
    reshuffle_config,
    tp_words,
    transpose_config,
)


def run_tp(hw, configs, src: np.ndarray, out_size: int, extra=()):
    ibo = hw.bo(src.size, np.ascontiguousarray(src))
    obo = hw.bo(out_size)
    cfg_bos = [hw.bo(124, cfg(ibo.va, obo.va)) for cfg in configs]
    fence = hw.run(
        tp_words([c.va for c in cfg_bos]),
        [(c, R) for c in cfg_bos] + [(ibo, R), (obo, W)] + list(extra),
    )
    hw.wait(fence)
    return obo.view[:out_size].copy()


@pytest.mark.parametrize("h,w,c", [(5, 7, 3), (4, 4, 16), (1, 9, 2), (6, 3, 1)])
def test_transpose_detranspose_round_trip(harness, h, w, c):
    hw = harness()
    rng = np.random.default_rng(h * w * c)
    nhwc = rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
    planar = run_tp(hw, [lambda s, d: transpose_config(h, w, c, s, d, 77)], nhwc, nhwc.size)
    np.testing.assert_array_equal(planar.reshape(c, h, w), nhwc.transpose(2, 0, 1))
    back = run_tp(hw, [lambda s, d: detranspose_config(h, w, c, s, d, 77)], planar, nhwc.size)
    np.testing.assert_array_equal(back.reshape(h, w, c), nhwc)
    assert hw.file.fault_log() == ()


def space_to_depth(planar, pad_x, pad_y, zp):
    c, h, w = planar.shape
    ow, oh = -(-(w + pad_x) // 2), -(-(h + pad_y) // 2)
    padded = np.full((c, 2 * oh, 2 * ow), zp, dtype=np.uint8)
    padded[:, pad_y : pad_y + h, pad_x : pad_x + w] = planar
    out = np.empty((c, 4, oh, ow), dtype=np.uint8)
    for py in range(2):
        for px in range(2):
            out[:, 2 * py + px] = padded[:, py::2, px::2]
    return out.reshape(4 * c, oh, ow)


@pytest.mark.parametrize("h,w,c,pad", [(8, 8, 3, 0), (7, 9, 2, 1), (6, 5, 4, 1), (5, 5, 1, 0)])
def test_reshuffle_is_space_to_depth(harness, h, w, c, pad):
    hw = harness()
    rng = np.random.default_rng(h + w + c)
    planar = rng.integers(0, 256, size=(c, h, w), dtype=np.uint8)
    want = space_to_depth(planar, pad, pad, 91)
    cfg = lambda s, d: reshuffle_config(h, w, c, pad, pad, s, d, 91)  # noqa: E731
    got = run_tp(hw, [cfg], planar, want.size)
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_pad_single_and_multi_core_with_channel_overfetch(harness):
    hw = harness()
    rng = np.random.default_rng(5)
    c, h, w, zp = 4, 5, 6, 33
    planar = rng.integers(0, 256, size=(c, h, w), dtype=np.uint8)
    want = np.pad(planar, ((0, 0), (1, 2), (2, 1)), constant_values=zp)
    got = run_tp(
        hw, [lambda s, d: pad_config(h, w, c, (2, 1), (1, 2), s, d, zp)], planar, want.size
    )
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    # two cores, two channels each, one zero-point plane before and after (z overfetch)
    want_z = np.pad(planar, ((1, 1), (1, 1), (1, 1)), constant_values=zp)
    plane = (h + 2) * (w + 2)

    def core(i):
        return lambda s, d: pad_config(
            h, w, 2, (1, 1), (1, 1), s + i * 2 * h * w, d + i * 3 * plane, zp,
            z_before=int(i == 0), z_after=int(i == 1), no_flush=int(i == 0),
        )  # fmt: skip

    got = run_tp(hw, [core(0), core(1)], planar, want_z.size)
    np.testing.assert_array_equal(got.reshape(want_z.shape), want_z)
    counters = hw.file.job_counters()[-1]
    assert counters.cores == 2 and counters.bytes_written["output"] == want_z.size
    assert hw.file.fault_log() == ()


def _pwl(hw, table, planar, izp, ozp, scale):
    c, h, w = planar.shape
    lut = hw.bo(4096, table)
    cfg = lambda s, d: pwl_config(h, w, c, s, d, lut.va, izp, ozp, scale)  # noqa: E731
    return run_tp(hw, [cfg], planar, planar.size, extra=[(lut, R)]).reshape(planar.shape)


def _round_away(v):
    return np.where(v < 0, -np.floor(-v + 0.5), np.floor(v + 0.5))


def test_relu_and_abs_tables_are_exact(harness):
    hw = harness()
    planar = np.arange(256, dtype=np.uint8).reshape(1, 4, 64)
    planar = np.concatenate([planar, planar[:, :, ::-1]], axis=2)  # 128 wide: two x tiles
    izp, ozp = 120, 10
    # scale 1: the output is max(x - izp, 0) + ozp exactly
    got = _pwl(hw, lut_relu(), planar, izp, ozp, 1.0)
    want = np.clip(np.maximum(planar.astype(int) - izp, 0) + ozp, 0, 255)
    np.testing.assert_array_equal(got, want)
    got = _pwl(hw, lut_abs(), planar, izp, ozp, 0.5)
    want = np.clip(_round_away(np.abs(planar.astype(int) - izp) * 0.5) + ozp, 0, 255)
    np.testing.assert_array_equal(got, want)


def test_logistic_table_within_one_lsb(harness):
    hw = harness()
    planar = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    s_in, izp, s_out = 0.05, 128, 1 / 256
    got = _pwl(hw, lut_logistic(s_in), planar, izp, 0, 1 / s_out)
    ideal = np.clip(np.rint(1 / (1 + np.exp(-(planar.astype(int) - izp) * s_in)) / s_out), 0, 255)
    assert np.abs(got.astype(int) - ideal).max() <= 1
    assert np.unique(got).size > 100  # not saturated: the table is really read
