"""Fixed-point arithmetic as TFLite's reference kernels do it (gemmlowp double rounding).

Sources (read for the formulas): LiteRT ``tflite/kernels/internal/quantization_util.cc``
(``QuantizeMultiplier``) and ``tflite/kernels/internal/common.h``
(``MultiplyByQuantizedMultiplier``), gemmlowp ``fixedpoint/fixedpoint.h``
(``SaturatingRoundingDoublingHighMul``, ``RoundingDivideByPOT``). All array functions are
vectorised over int64 numpy arrays and exact.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def round_half_away(x: float) -> int:
    """C's ``std::round``: halves away from zero."""
    return math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(multiplier Q0.31, shift) with real ~= multiplier * 2^(shift - 31); shift > 0 is left."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:  # saturate, as QuantizeMultiplier does for huge multipliers
        return INT32_MAX, 30
    return q_fixed, shift


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """``QuantizeMultiplierSmallerThanOneExp``: the shift is <= 0."""
    multiplier, shift = quantize_multiplier(real)
    assert shift <= 0 or real >= 1.0
    return multiplier, shift


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    # C integer division truncates toward zero.
    result = np.where(total >= 0, total >> 31, -((-total) >> 31))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, result)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(
    x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int
) -> np.ndarray:
    """``MultiplyByQuantizedMultiplier``: x * multiplier * 2^(shift-31), double rounding.

    ``multiplier`` and ``shift`` may be per-channel vectors broadcasting against ``x``.
    """
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = np.asarray(x, dtype=np.int64) << left
    # The C code works in int32; a left-shifted value that overflows wraps there.
    x = ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), right)
