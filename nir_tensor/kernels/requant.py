"""The output stage shared by the accumulating kernels, and 8-bit lookup tables.

An accumulating kernel (conv, depthwise, fully connected) ends the way TFLite's reference kernels
end: ``clamp(MultiplyByQuantizedMultiplier(acc + bias, M, shift) + zero_point, lo, hi)``.
:class:`OutputStage` does that on whole int arrays, exactly, with the per-channel multipliers on
the last axis. Mirrors the tail of ``reference_ops::Conv`` / ``reference_integer_ops::
ConvPerChannel`` (LiteRT ``tflite/kernels/internal/reference``) and gemmlowp's double rounding.

The fast path folds bias, rounding constants and the zero point into one int64 constant per
channel. With ``h = SRDHM(x, M) = floor((x*M + 2^30) / 2^31)`` (gemmlowp's nudge makes it
round half up) and ``RoundingDivideByPOT(h, r) = floor((h + 2^(r-1) - [h < 0]) / 2^r)`` for
``r > 0``, a kernel pays per element: ``u = (x*M + fold) >> 31`` (which is ``h + 2^(r-1) +
zp*2^r``), ``u -= u < K`` (the negative-value correction), ``u >>= r`` and a clamp. ``u`` is
narrowed to int32 when the accumulator bound proves it fits, and rows are processed in
cache-sized chunks. The first step runs in float64 (``floor(x * M/2^31 + fold/2^31)``, AVX2 has
no 64-bit integer multiply) whenever the accumulators seen are small enough for every term to be
exact below 2^53; otherwise in int64.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ...util.fixedpoint import (
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_int64,
    round_half_away_array,
    wrap_int32,
)

CHUNK_ELEMENTS = 1 << 16  # int64 working set of 512 KiB: stays in L2 on the machines we run on
FLOAT64_EXACT = 1 << 53  # integers up to here are exact doubles


class Rescale(enum.Enum):
    """How the accumulator is scaled to the output; the value names the TFLite function."""

    DOUBLE_ROUNDING = "MultiplyByQuantizedMultiplier(int32)"  # gemmlowp SRDHM + RDBP
    INT64_ACCUMULATOR = "MultiplyByQuantizedMultiplier(int64)"  # 16-bit paths, reduced multiplier
    DOUBLE_PRODUCT = "round(acc * double scale)"  # newer 16x8 reference kernels


@dataclass(frozen=True, slots=True, eq=False)
class OutputStage:
    """``clamp(rescale(acc + bias) + zero_point, lo, hi)`` with per-channel parameters.

    Build it with :func:`make_output_stage`; the fields below are derived there.
    """

    rescale: Rescale
    multiplier: np.ndarray  # int64, shape () or (C,)
    shift: np.ndarray  # int64 TFLite exponent (> 0 is a left shift)
    bias: np.ndarray  # int64, shape () or (C,)
    zero_point: int
    lo: int
    hi: int
    dtype: np.dtype
    real_scale: np.ndarray  # float64, for Rescale.DOUBLE_PRODUCT
    fast: bool  # the folded path applies (DOUBLE_ROUNDING, no left shifts)
    narrow: bool  # u fits int32
    fold: np.ndarray  # int64: bias*M + 2^30 + (2^(r-1) + folded zp * 2^r) << 31
    negative_below: np.ndarray  # u below this means h < 0 (int32 or int64)
    right: np.ndarray  # r, or None when every r is 0
    add_zero_point: int  # the zero point when it is not folded
    float_multiplier: np.ndarray  # M / 2^31 (exact)
    float_fold: np.ndarray  # fold / 2^31 (exact when float_limit >= 0)
    float_limit: int  # largest |acc| for which the float64 first step is exact, or -1

    def __call__(self, acc: np.ndarray) -> np.ndarray:
        """The output values (``dtype``) for integer-valued ``acc`` (any numeric dtype),
        channels on the last axis."""
        shape = acc.shape
        channels = shape[-1] if shape else 1
        flat = acc.reshape(-1, channels)
        out = np.empty(flat.shape, dtype=self.dtype)
        rows = max(1, CHUNK_ELEMENTS // max(channels, 1))
        consts = self._constants(slice(None), self._use_float(acc))
        for start in range(0, flat.shape[0], rows):
            self._rows(flat[start : start + rows], consts, out[start : start + rows])
        return out.reshape(shape)

    def _use_float(self, acc: np.ndarray) -> bool:
        if not self.fast or self.float_limit < 0 or acc.size == 0:
            return False
        return max(-float(acc.min()), float(acc.max())) <= self.float_limit

    def planar(self, acc: np.ndarray) -> np.ndarray:
        """Like calling the stage, for ``acc`` of shape (N, C, H, W): channels on axis 1."""
        n, c = acc.shape[:2]
        flat = acc.reshape(n, c, -1)
        out = np.empty(flat.shape, dtype=self.dtype)
        rows = max(1, CHUNK_ELEMENTS // max(flat.shape[2], 1))
        use_float = self._use_float(acc)
        for b in range(n):
            for start in range(0, c, rows):
                part = slice(start, start + rows)
                consts = self._constants(part, use_float, column=True)
                self._rows(flat[b, part], consts, out[b, part])
        return out.reshape(acc.shape)

    def _constants(self, part: slice, use_float: bool, *, column: bool = False) -> tuple:
        """The per-channel arrays for channels ``part``, as columns for planar data."""
        names = ("multiplier", "shift", "bias", "real_scale", "fold", "negative_below", "right")
        if use_float:
            names = (
                "float_multiplier",
                "shift",
                "bias",
                "real_scale",
                "float_fold",
                "negative_below",
                "right",
            )
        values = [use_float]
        for name in names:
            v = getattr(self, name)
            if v is not None and v.ndim:
                v = v[part][:, None] if column else v[part]
            values.append(v)
        return tuple(values)

    def _rows(self, acc: np.ndarray, consts: tuple, out: np.ndarray) -> None:
        use_float, multiplier, shift, bias, real_scale, fold, negative_below, right = consts
        if not self.fast:
            out[...] = self._general(acc, multiplier, shift, bias, real_scale)
            return
        if use_float:  # every term below 2^53: floor((x*M + fold) / 2^31) in float64
            f = np.multiply(acc, multiplier, dtype=np.float64)
            f += fold
            np.floor(f, out=f)
            u = f.astype(np.int32 if self.narrow else np.int64)
        else:
            if self.narrow:  # |acc| < 2^31: a float-to-int32 conversion is the cheapest
                acc = acc.astype(np.int32)
            t = np.multiply(acc, multiplier, dtype=np.int64, casting="unsafe")
            t += fold
            if self.narrow:
                u = np.empty(t.shape, dtype=np.int32)
                np.right_shift(t, 31, out=u, casting="unsafe")
            else:
                u = t
                u >>= 31
        if right is not None:
            u -= u < negative_below
            u >>= right
        if self.add_zero_point:
            u += self.add_zero_point
        np.clip(u, self.lo, self.hi, out=out, casting="unsafe")

    def _general(self, acc, multiplier, shift, bias, real_scale) -> np.ndarray:
        x = acc.astype(np.int64) + bias
        if self.rescale is Rescale.DOUBLE_ROUNDING:
            y = multiply_by_quantized_multiplier(wrap_int32(x), multiplier, shift)
        elif self.rescale is Rescale.INT64_ACCUMULATOR:
            y = multiply_by_quantized_multiplier_int64(x, multiplier, shift)
        else:
            y = round_half_away_array(x.astype(np.float64) * real_scale)
            y = np.clip(y, -(2.0**31), 2.0**31 - 1).astype(np.int64)
        return np.clip(y + self.zero_point, self.lo, self.hi)


def make_output_stage(
    multiplier: np.ndarray | int,
    shift: np.ndarray | int,
    *,
    bias: np.ndarray | None,
    zero_point: int,
    lo: int,
    hi: int,
    dtype: np.dtype,
    rescale: Rescale = Rescale.DOUBLE_ROUNDING,
    real_scale: np.ndarray | float = 0.0,
    acc_bound: int = 1 << 31,
) -> OutputStage:
    """``acc_bound`` bounds |acc| (before the bias); it decides whether int32 is wide enough."""
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    b = np.zeros((), dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
    right = np.maximum(-s, 0)
    half = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0)
    # |h| <= |acc + bias| * M / 2^31 + 1; u adds 2^(r-1) and, when folded, zp * 2^r.
    h_bound = (acc_bound + int(np.abs(b).max(initial=0))) * int(m.max(initial=0)) // (1 << 31) + 1
    extra = int(half.max(initial=0))
    zp_term = abs(zero_point) << int(right.max(initial=0))
    fold_zp = extra + zp_term < (1 << 30)
    folded = np.int64(zero_point) << right if fold_zp else np.int64(0)
    k = half + folded
    narrow = h_bound + extra + (zp_term if fold_zp else 0) + abs(zero_point) < (1 << 31)
    below = np.where(right > 0, k, np.iinfo(np.int32 if narrow else np.int64).min)
    fold = b * m + (1 << 30) + (k << 31)
    fold_max = int(np.abs(fold).max(initial=0))
    m_max = max(int(m.max(initial=0)), 1)
    float_limit = (FLOAT64_EXACT - fold_max) // m_max - 1 if fold_max < FLOAT64_EXACT else -1
    return OutputStage(
        rescale=rescale,
        multiplier=m,
        shift=s,
        bias=b,
        zero_point=int(zero_point),
        lo=int(lo),
        hi=int(hi),
        dtype=np.dtype(dtype),
        real_scale=np.asarray(real_scale, dtype=np.float64),
        fast=rescale is Rescale.DOUBLE_ROUNDING and bool(np.all(s <= 0)),
        narrow=narrow,
        fold=fold,
        negative_below=below.astype(np.int32 if narrow else np.int64),
        right=right.astype(np.int32 if narrow else np.int64) if right.any() else None,
        add_zero_point=0 if fold_zp else int(zero_point),
        float_multiplier=m.astype(np.float64) * 2.0**-31,
        float_fold=fold.astype(np.float64) * 2.0**-31,
        float_limit=float_limit,
    )


def lookup(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply a 256-entry table indexed by the uint8 view of 8-bit ``x`` (TFLite's int8 LUT order).

    For int8 data, entry ``v & 0xFF`` holds the result for value ``v``, as ``LUTPopulateInt8``
    lays it out.
    """
    return table.take(np.ascontiguousarray(x).view(np.uint8))


def table_for(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A 256-entry table from the results for inputs ``qmin..qmax`` of 8-bit ``dtype``."""
    dtype = np.dtype(dtype)
    inputs = np.arange(np.iinfo(dtype).min, np.iinfo(dtype).max + 1).astype(dtype)
    table = np.empty(256, dtype=np.asarray(values).dtype)
    table[inputs.view(np.uint8)] = values
    return table


def qrange(dtype: np.dtype) -> np.ndarray:
    """All values of an 8-bit type, as int64, in the order :func:`table_for` expects."""
    info = np.iinfo(np.dtype(dtype))
    return np.arange(info.min, info.max + 1, dtype=np.int64)
