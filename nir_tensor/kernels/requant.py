"""The output stage shared by the accumulating kernels, and 8-bit lookup tables.

An accumulating kernel (conv, depthwise, fully connected) ends the way TFLite's reference kernels
end: ``clamp(MultiplyByQuantizedMultiplier(acc + bias, M, shift) + zero_point, lo, hi)``.
:class:`OutputStage` does that on whole int arrays, exactly, with the per-channel multipliers on
the last axis. Mirrors the tail of ``reference_ops::Conv`` / ``reference_integer_ops::
ConvPerChannel`` (LiteRT ``tflite/kernels/internal/reference``) and gemmlowp's double rounding.

The fast path folds both roundings into one arithmetic shift. With ``h = SRDHM(x, M) =
floor((x*M + 2^30) / 2^31)`` (gemmlowp's nudge makes it round half up) and ``RoundingDivideByPOT
(h, r) = floor((h + 2^(r-1) - [h < 0]) / 2^r)`` for ``r > 0``, nested floor divisions compose:

    out = (x*M + 2^30 + 2^(r-1)*2^31 + zp*2^(31+r) - [x*M + 2^30 < 0]*2^31) >> (31 + r)

so bias, rounding constants and the zero point become one int64 constant per channel, and a
kernel pays a multiply, an add, a compare, a masked subtract, a shift and a clip per element.
Rows are processed in cache-sized chunks.
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
INT64_MIN = np.iinfo(np.int64).min


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
    fast: bool  # the folded single-shift path applies
    add_zero_point: int  # zero point added after the shift when folding it could overflow
    fold: np.ndarray  # int64 constant added after the multiply
    negative_below: np.ndarray  # x*M + fold below this -> subtract 2^31
    total_shift: np.ndarray

    def __call__(self, acc: np.ndarray) -> np.ndarray:
        """The output values (``dtype``) for integer-valued ``acc`` (any numeric dtype)."""
        shape = acc.shape
        channels = shape[-1] if shape else 1
        flat = acc.reshape(-1, channels)
        out = np.empty(flat.shape, dtype=self.dtype)
        rows = max(1, CHUNK_ELEMENTS // max(channels, 1))
        for start in range(0, flat.shape[0], rows):
            out[start : start + rows] = self._chunk(flat[start : start + rows])
        return out.reshape(shape)

    def _chunk(self, acc: np.ndarray) -> np.ndarray:
        if self.fast:
            t = acc.astype(np.int64)
            t *= self.multiplier
            t += self.fold
            np.subtract(t, np.int64(1 << 31), out=t, where=t < self.negative_below)
            t >>= self.total_shift
            if self.add_zero_point:
                t += self.add_zero_point
            return np.clip(t, self.lo, self.hi, out=t)
        x = acc.astype(np.int64) + self.bias
        if self.rescale is Rescale.DOUBLE_ROUNDING:
            y = multiply_by_quantized_multiplier(wrap_int32(x), self.multiplier, self.shift)
        elif self.rescale is Rescale.INT64_ACCUMULATOR:
            y = multiply_by_quantized_multiplier_int64(x, self.multiplier, self.shift)
        else:
            y = round_half_away_array(x.astype(np.float64) * self.real_scale)
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
) -> OutputStage:
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    b = np.zeros((), dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
    right = np.maximum(-s, 0)
    fast = rescale is Rescale.DOUBLE_ROUNDING and bool(np.all(s <= 0))
    # int64 must hold the folded sum: (acc + bias)*M < 2^62 for int32 operands, the rounding
    # terms are below 2^61, so the zero point term is folded only while it stays below 2^61.
    fold_zp = (abs(zero_point) << (31 + int(right.max(initial=0)))) < (1 << 61)
    zp_term = (np.int64(zero_point) << (31 + right)) if fold_zp else np.int64(0)
    half = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0)
    fold = b * m + (1 << 30) + (half << 31) + zp_term
    # h < 0 exactly when x*M + fold < half*2^31 + zp term; with r == 0 there is no second
    # rounding and so no correction.
    negative_below = np.where(right > 0, (half << 31) + zp_term, INT64_MIN)
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
        fast=fast,
        add_zero_point=0 if fold_zp else int(zero_point),
        fold=fold,
        negative_below=negative_below,
        total_shift=31 + right,
    )


def lookup(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply a 256-entry table indexed by the uint8 view of 8-bit ``x`` (TFLite's int8 LUT order).

    For int8 data, entry ``v & 0xFF`` holds the result for value ``v``, as ``LUTPopulateInt8``
    lays it out.
    """
    return table[np.ascontiguousarray(x).view(np.uint8)]


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
