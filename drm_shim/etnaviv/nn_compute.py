"""The NN unit's arithmetic: convolution over an 8-bit planar image with a border, the hardware's
accumulation forms, requantization and the first-pixel pool (brief §3, §4; the interpretation
is ``docs/etnaviv-npu-model.md`` §3).

Everything is exact integer arithmetic: products of two 9-bit values summed over at most a few
hundred thousand terms stay far below 2**53, so the float64 BLAS product (any summation order)
gives the exact integer, at BLAS speed. im2col is a strided view (numpy sliding windows).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from .switches import Rounding

UINT8_MAX = 255


def padded_window(
    image: np.ndarray, border: int, off_x: int, off_y: int, height: int, width: int
) -> np.ndarray:
    """The ``height`` x ``width`` region of ``image`` [C, H, W] starting at (off_y, off_x), with
    ``border`` where it lies outside the image."""
    c, h, w = image.shape
    out = np.full((c, height, width), border, dtype=np.uint8)
    y0, x0 = max(off_y, 0), max(off_x, 0)
    y1, x1 = min(off_y + height, h), min(off_x + width, w)
    if y0 < y1 and x0 < x1:
        out[:, y0 - off_y : y1 - off_y, x0 - off_x : x1 - off_x] = image[:, y0:y1, x0:x1]
    return out


def conv_dense(
    window: np.ndarray, weights: np.ndarray, out_h: int, out_w: int, step: int
) -> np.ndarray:
    """acc[oc, oy, ox] = sum over ic, ky, kx of weights[oc, ic, ky, kx] * window[ic, oy*step+ky,
    ox*step+kx]; ``window`` float64 [IC, *, *] already shifted, ``weights`` float64
    [OC, IC, KH, KW]. Returns int64 [OC, out_h, out_w]."""
    oc, ic, kh, kw = weights.shape
    if kh == kw == 1:
        cols = window[:, : (out_h - 1) * step + 1 : step, : (out_w - 1) * step + 1 : step]
        cols = cols.reshape(ic, out_h * out_w)
        acc = weights.reshape(oc, ic) @ cols
    else:
        views = sliding_window_view(window, (kh, kw), axis=(1, 2))[:, ::step, ::step]
        views = views[:, :out_h, :out_w]  # [IC, oh, ow, kh, kw]
        cols = np.ascontiguousarray(views.transpose(1, 2, 0, 3, 4)).reshape(out_h * out_w, -1)
        acc = weights.reshape(oc, -1) @ cols.T
    return np.rint(acc).astype(np.int64).reshape(oc, out_h, out_w)


def conv_depthwise(
    window: np.ndarray, weights: np.ndarray, out_h: int, out_w: int, step: int
) -> np.ndarray:
    """Per-channel convolution: ``weights`` float64 [C, KH, KW] against ``window`` [C, *, *]."""
    _, kh, kw = weights.shape
    views = sliding_window_view(window, (kh, kw), axis=(1, 2))[:, ::step, ::step]
    views = views[:, :out_h, :out_w]
    acc = np.einsum("chwij,cij->chw", views, weights, optimize=True)
    return np.rint(acc).astype(np.int64)


def diagonal(centered: np.ndarray) -> np.ndarray | None:
    """[C, KH, KW] when the centered weights [OC, IC, KH, KW] are zero off the diagonal oc == ic
    (a depthwise convolution that v7 expands to a dense one, brief §1), else None."""
    oc, ic = centered.shape[:2]
    if oc != ic or oc == 1:
        return None
    used = np.any(centered != 0, axis=(2, 3))
    if np.any(used & ~np.eye(oc, dtype=bool)):
        return None
    return centered[np.arange(oc), np.arange(oc)]


def shift_round(values: np.ndarray, shift: int, rounding: Rounding) -> np.ndarray:
    """``values / 2**shift`` rounded to nearest with the given tie rule (int64, exact)."""
    if shift <= 0:
        return values << -shift if shift else values
    if shift >= 63:  # every |value| < 2**62: the quotient rounds to 0
        return np.zeros_like(values)
    half = np.int64(1) << np.int64(shift - 1)
    s = np.int64(shift)
    if rounding is Rounding.HALF_UP:
        return (values + half) >> s
    if rounding is Rounding.HALF_AWAY_FROM_ZERO:
        mag = (np.abs(values) + half) >> s
        return np.where(values < 0, -mag, mag)
    floor = values >> s
    rem = values - (floor << s)
    up = (rem > half) | ((rem == half) & (floor % 2 == 1))
    return floor + up


def requantize(
    acc: np.ndarray,
    multiplier: int,
    shift: int,
    rounding: Rounding,
    relu: bool,
    out_zero_point: int,
) -> np.ndarray:
    """``round(acc * multiplier / 2**shift)``, ReLU, plus the output zero point, saturated to
    uint8."""
    q = shift_round(acc * np.int64(multiplier), shift, rounding)
    if relu:
        q = np.maximum(q, 0)
    return np.clip(q + out_zero_point, 0, UINT8_MAX).astype(np.uint8)


def strided_image(
    data: np.ndarray, offset: int, planes: int, rows: int, cols: int, row: int, plane: int
) -> np.ndarray:
    """A [planes, rows, cols] view of ``data`` (uint8) from ``offset`` with the given pitches."""
    base = data[offset:]
    return as_strided(base, shape=(planes, rows, cols), strides=(plane, row, 1), writeable=True)
