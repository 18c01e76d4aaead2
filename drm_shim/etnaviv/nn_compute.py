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
    [OC, IC, KH, KW]. Returns float64 [OC, out_h, out_w] holding exact integers."""
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
    return acc.reshape(oc, out_h, out_w)  # float64, exact integers


def conv_depthwise(
    window: np.ndarray, weights: np.ndarray, out_h: int, out_w: int, step: int
) -> np.ndarray:
    """Per-channel convolution: ``weights`` float64 [C, KH, KW] against ``window`` [C, *, *]."""
    _, kh, kw = weights.shape
    views = sliding_window_view(window, (kh, kw), axis=(1, 2))[:, ::step, ::step]
    views = views[:, :out_h, :out_w]
    return np.einsum("chwij,cij->chw", views, weights, optimize=True)  # float64, exact


def diagonal(centered: np.ndarray) -> np.ndarray | None:
    """[C, KH, KW] when the centered weights [OC, IC, KH, KW] are zero off the diagonal oc == ic
    (a depthwise convolution that v7 expands to a dense one, brief §1), else None."""
    oc, ic = centered.shape[:2]
    if oc != ic or oc == 1:
        return None
    diag = centered[np.arange(oc), np.arange(oc)].copy()
    centered[np.arange(oc), np.arange(oc)] = 0
    off_diagonal = np.any(centered)
    centered[np.arange(oc), np.arange(oc)] = diag
    return None if off_diagonal else diag


def shift_round(values: np.ndarray, shift: int, rounding: Rounding) -> np.ndarray:
    """``values / 2**shift`` rounded to nearest with the given tie rule (int64, exact), in place
    when it can."""
    if shift <= 0:
        return values << -shift if shift else values
    if shift >= 63:  # every |value| < 2**62: the quotient rounds to 0
        return np.zeros_like(values)
    half = np.int64(1) << np.int64(shift - 1)
    s = np.int64(shift)
    if rounding is Rounding.HALF_UP:
        values += half
        values >>= s
        return values
    if rounding is Rounding.HALF_AWAY_FROM_ZERO:
        negative = values < 0
        np.abs(values, out=values)
        values += half
        values >>= s
        np.negative(values, out=values, where=negative)
        return values
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
    uint8. ``acc`` (int64) is consumed."""
    acc *= np.int64(multiplier)
    q = shift_round(acc, shift, rounding)
    if relu:
        np.maximum(q, 0, out=q)
    q += out_zero_point
    np.clip(q, 0, UINT8_MAX, out=q)
    return q.astype(np.uint8)


EXACT_FLOAT = 2**53  # float64 holds every integer below this exactly


def requantize_float(
    acc: np.ndarray,
    bias: np.ndarray,
    multiplier: int,
    shift: int,
    rounding: Rounding,
    relu: bool,
    out_zero_point: int,
) -> np.ndarray:
    """:func:`requantize` on the float64 accumulators (exact integers) when the caller has
    checked ``max|acc| * multiplier < 2**53``: then the scaled value and its half-integer
    neighbours are exact in float64 and the result equals the integer path. ``acc`` is
    consumed."""
    acc += bias[:, None, None]
    acc *= multiplier * 2.0**-shift
    if rounding is Rounding.HALF_AWAY_FROM_ZERO:
        acc += np.copysign(0.5, acc)
        np.trunc(acc, out=acc)
    elif rounding is Rounding.HALF_UP:
        acc += 0.5
        np.floor(acc, out=acc)
    else:
        np.rint(acc, out=acc)
    np.clip(acc, -out_zero_point if not relu else 0, UINT8_MAX - out_zero_point, out=acc)
    acc += out_zero_point
    return acc.astype(np.uint8)


def strided_image(
    data: np.ndarray, offset: int, planes: int, rows: int, cols: int, row: int, plane: int
) -> np.ndarray:
    """A [planes, rows, cols] view of ``data`` (uint8) from ``offset`` with the given pitches."""
    base = data[offset:]
    return as_strided(base, shape=(planes, rows, cols), strides=(plane, row, 1), writeable=True)
