"""CORE: the MAC array and the accumulator (NVDLA CMAC + CACC).

The OW term (``BS_OW_OP * Σx`` over the same taps, brief §7) sums the same inputs as the MAC
array, so where it joins the accumulator (``ow_term="accumulator"``) the model usually folds it
into the weights: ``Σ x·w + OW·Σ x = Σ x·(w + OW)``. Otherwise (the other placement, or when
folding would cost float32 exactness) the window sum comes on its own: an all-ones weight column
of the same product, or a second ``einsum`` for depthwise (``dpu.plan_ow``).

Direct convolution is one matrix product per task: the padded input is unfolded with stride
tricks (im2col; a plain reshape for 1x1 stride-1) and multiplied by the weight matrix. Depthwise
convolution is one ``einsum`` over the same unfolded view. Both run in float32 when every sum is
provably below 2^24 in magnitude (float32's exact integers), else in float64 (exact below 2^53):
the bound is ``taps * 128 * max|w|``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arith import INT8_MIN
from .cna import CnaConfig

FLOAT32_EXACT = 2**24  # every integer of magnitude up to 2^24 is a float32


@dataclass(frozen=True, slots=True)
class MacResult:
    acc: np.ndarray  # [oh, ow, out_c] float integers: MAC sums (with the OW term when folded)
    window_sum: np.ndarray | None  # [oh, ow, 1] (direct) or [oh, ow, out_c] (depthwise)
    macs: int
    bound: float  # a bound on |acc|
    sum_bound: float  # a bound on |window_sum|


@dataclass(slots=True)
class Weights:
    """A weight matrix ready for the MAC array (OW term folded or a sum column appended)."""

    matrix: np.ndarray  # direct [kh*kw*C, K (+1)]; depthwise [kh, kw, C]
    max_abs: float  # max |w| of the products (after folding)


def pad_input(cfg: CnaConfig, x: np.ndarray, oh: int, ow: int, dtype: type) -> np.ndarray:
    """The input as ``dtype`` ``[hp, wp, C]`` with the pad value around it, exactly as large as
    the output needs: every tap outside the fetched cube reads PAD_VALUE (top/left from
    PAD_CON0, bottom/right implicit). ``x`` is ``[in_h, in_w, C]`` or ``[in_h, in_w, S, atom]``
    (any strides): gathered and converted in one pass."""
    hp = (oh - 1) * cfg.stride_y + cfg.kh
    wp = (ow - 1) * cfg.stride_x + cfg.kw
    if (hp, wp) == x.shape[:2] and not (cfg.pad_top or cfg.pad_left):
        return x.astype(dtype, order="C").reshape(hp, wp, -1)
    xp = np.full((hp, wp, *x.shape[2:]), cfg.pad_value, dtype=dtype)
    rows = max(0, min(cfg.in_h, hp - cfg.pad_top))
    cols = max(0, min(cfg.in_w, wp - cfg.pad_left))
    if rows and cols:
        xp[cfg.pad_top : cfg.pad_top + rows, cfg.pad_left : cfg.pad_left + cols] = x[:rows, :cols]
    return xp.reshape(hp, wp, -1)


def exact_dtype(taps: int, max_abs_w: float) -> type:
    """float32 when no sum of ``taps`` products of an int8 and a weight of magnitude at most
    ``max_abs_w`` (nor any partial sum) can leave float32's exact integers; else float64."""
    return np.float32 if taps * -INT8_MIN * max_abs_w <= FLOAT32_EXACT else np.float64


def prepare(weights: np.ndarray, depthwise: bool, fold: int, with_sum: bool) -> Weights:
    """Weights from the CNA (``[K, kh, kw, C]`` or ``[kh, kw, C]`` int8) with ``fold`` (the OW
    operand) added to every weight, and for direct convolution an all-ones column when the
    window sum is wanted on its own."""
    w = weights.astype(np.int64) + fold
    max_abs = float(np.abs(w).max()) if w.size else 0.0
    if depthwise:
        taps = w.shape[0] * w.shape[1]
        return Weights(w.astype(exact_dtype(taps, max(max_abs, 1.0))), max_abs)
    k = w.shape[0]
    flat = w.reshape(k, -1)
    dtype = exact_dtype(flat.shape[1], max(max_abs, 1.0))
    out = np.empty((flat.shape[1], k + with_sum), dtype=dtype)
    out[:, :k] = flat.T
    if with_sum:
        out[:, k] = 1.0
    return Weights(out, max_abs)


def _unfold(cfg: CnaConfig, xp: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """The ``[oh, ow, kh, kw, C]`` window view of the padded input (no copy)."""
    e = xp.itemsize
    wp, c = xp.shape[1], xp.shape[2]
    sy, sx = cfg.stride_y, cfg.stride_x
    return np.lib.stride_tricks.as_strided(
        xp,
        (oh, ow, cfg.kh, cfg.kw, c),
        (sy * wp * c * e, sx * c * e, wp * c * e, c * e, e),
        writeable=False,
    )


def direct(
    cfg: CnaConfig, x: np.ndarray, w: Weights, with_sum: bool, oh: int, ow: int, out_c: int
) -> MacResult:
    """Direct convolution of ``x`` ``[in_h, in_w, C]`` by the weight matrix."""
    xp = pad_input(cfg, x, oh, ow, w.matrix.dtype)
    c = xp.shape[2]
    if cfg.kh == cfg.kw == cfg.stride_y == cfg.stride_x == 1:
        cols = xp.reshape(oh * ow, c)
    else:
        cols = _unfold(cfg, xp, oh, ow).reshape(oh * ow, cfg.kh * cfg.kw * c)
    res = cols @ w.matrix
    k = cfg.kernels
    n = min(k, out_c)
    if n == out_c:
        acc = res[:, :n]
    else:
        acc = np.zeros((oh * ow, out_c), dtype=res.dtype)
        acc[:, :n] = res[:, :n]
    taps = cfg.kh * cfg.kw * c
    window_sum = res[:, k].reshape(oh, ow, 1) if with_sum else None
    bound = taps * -INT8_MIN * w.max_abs
    return MacResult(
        acc.reshape(oh, ow, out_c), window_sum, oh * ow * taps * k, bound, float(taps * -INT8_MIN)
    )


def depthwise(
    cfg: CnaConfig, x: np.ndarray, w: Weights, with_sum: bool, oh: int, ow: int, out_c: int
) -> MacResult:
    """Depthwise convolution: channel c of the output from channel c of the input only."""
    xp = pad_input(cfg, x, oh, ow, w.matrix.dtype)
    c = xp.shape[2]
    cols = _unfold(cfg, xp, oh, ow)
    acc = np.einsum("hwabc,abc->hwc", cols, w.matrix)
    window_sum = None
    if with_sum:
        window_sum = np.einsum("hwabc->hwc", cols)
    if c < out_c:
        acc = np.concatenate([acc, np.zeros((oh, ow, out_c - c), dtype=acc.dtype)], axis=2)
        if window_sum is not None:
            pad = np.zeros((oh, ow, out_c - c), dtype=window_sum.dtype)
            window_sum = np.concatenate([window_sum, pad], axis=2)
    elif c > out_c:
        acc = acc[:, :, :out_c]
        window_sum = window_sum[:, :, :out_c] if window_sum is not None else None
    taps = cfg.kh * cfg.kw
    bound = taps * -INT8_MIN * w.max_abs
    return MacResult(acc, window_sum, oh * ow * taps * c, bound, float(taps * -INT8_MIN))
