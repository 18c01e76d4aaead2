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


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values to int32, as C's int32 arithmetic does."""
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """``QuantizeMultiplierGreaterThanOne``: the shift is >= 0."""
    multiplier, shift = quantize_multiplier(real)
    assert shift >= 0
    return multiplier, shift


def down_scale_int32_to_int16_multiplier(multiplier: int) -> int:
    """``DownScaleInt32ToInt16Multiplier`` (quantization_util.cc): round to Q0.15."""
    rounding = 1 << 15
    if multiplier >= INT32_MAX - rounding:
        return (1 << 15) - 1
    return (multiplier + rounding) >> 16


def calculate_input_radius(integer_bits: int, left_shift: int, total_signed_bits: int = 31) -> int:
    """``CalculateInputRadius``: the largest input magnitude the fixed-point path represents."""
    radius = (
        1.0
        * ((1 << integer_bits) - 1)
        * float(1 << (total_signed_bits - integer_bits))
        / float(1 << left_shift)
    )
    return math.floor(radius)


def preprocess_softmax_scaling(
    beta: float, input_scale: float, integer_bits: int
) -> tuple[int, int]:
    """``PreprocessSoftmaxScaling`` (double-rounding build): (multiplier, left shift)."""
    real = min(beta * input_scale * float(1 << (31 - integer_bits)), float((1 << 31) - 1))
    return quantize_multiplier_greater_than_one(real)


def round_half_away_array(x: np.ndarray) -> np.ndarray:
    """C's ``std::round`` on a float array (halves away from zero), exact."""
    x = np.asarray(x)
    floor = np.floor(x)
    frac = x - floor  # exact for |x| < 2^52
    up = np.where(x >= 0, frac >= 0.5, frac > 0.5)
    return floor + up


def saturating_rounding_multiply_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>`` on int32 values."""
    x = np.asarray(x, dtype=np.int64)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    shifted = wrap_int32(x << exponent)
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, shifted))


def rounding_half_sum(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp ``RoundingHalfSum`` for int32: (a + b + sign) / 2, truncating."""
    total = np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64)
    total = total + np.where(total >= 0, 1, -1)
    return np.where(total >= 0, total // 2, -((-total) // 2))


# gemmlowp fixedpoint.h constants (raw Q0.31 values, quoted there with their real meaning).
EXP_MINUS_ONE_EIGHTH = 1895147668  # exp(-1/8)
ONE_THIRD = 715827883  # 1/3
EXP_BARREL = (
    (-2, 1672461947),
    (-1, 1302514674),
    (0, 790015084),
    (1, 290630308),
    (2, 39332535),
    (3, 720401),
    (4, 242),
)  # (exponent e, exp(-2^e))
FORTY_EIGHT_OVER_SEVENTEEN = 1515870810  # 48/17 in Q2.29
NEG_THIRTY_TWO_OVER_SEVENTEEN = -1010580540  # -32/17 in Q2.29


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    """gemmlowp: exp(a) for a in [-1/4, 0), Q0.31 in and out (Taylor series around -1/8)."""
    srdhm = saturating_rounding_doubling_high_mul
    x = wrap_int32(np.asarray(a, dtype=np.int64) + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(
        wrap_int32(srdhm(wrap_int32(x4_over_4 + x3), ONE_THIRD) + x2), -1
    )
    return wrap_int32(EXP_MINUS_ONE_EIGHTH + srdhm(EXP_MINUS_ONE_EIGHTH, wrap_int32(x + poly)))


def exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """gemmlowp ``exp_on_negative_values``: Q(integer_bits).(31-integer_bits) in, Q0.31 out."""
    a = np.asarray(a, dtype=np.int64)
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_one_quarter = wrap_int32((a & (one_quarter - 1)) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, integer_bits)
    )
    remainder = wrap_int32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in EXP_BARREL:
        if integer_bits > exponent:
            bit = (remainder >> (fractional_bits + exponent)) & 1
            result = np.where(
                bit != 0, saturating_rounding_doubling_high_mul(result, multiplier), result
            )
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """gemmlowp: 1 / (1 + a) for a in [0, 1), Q0.31 in and out (Newton-Raphson)."""
    srdhm = saturating_rounding_doubling_high_mul
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = wrap_int32(
        FORTY_EIGHT_OVER_SEVENTEEN + srdhm(half_denominator, NEG_THIRTY_TWO_OVER_SEVENTEEN)
    )
    one_q2 = 1 << 29
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = wrap_int32(one_q2 - half_denominator_times_x)
        x = wrap_int32(x + saturating_rounding_multiply_by_pot(srdhm(x, one_minus), 2))
    return saturating_rounding_multiply_by_pot(x, 1)


def count_leading_zeros_u32(x: np.ndarray) -> np.ndarray:
    """Leading zeros of the uint32 view of ``x`` (32 for zero)."""
    x = np.asarray(x, dtype=np.int64) & 0xFFFFFFFF
    _, bit_length = np.frexp(x.astype(np.float64))  # exact: uint32 values fit a double
    return 32 - bit_length.astype(np.int64)


def get_reciprocal(x: np.ndarray, integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``GetReciprocal``: (Q0.31 reciprocal of the scaled sum, num_bits_over_unit)."""
    x = np.asarray(x, dtype=np.int64)
    headroom_plus_one = count_leading_zeros_u32(x)
    num_bits_over_unit = integer_digits - headroom_plus_one
    shifted = ((x & 0xFFFFFFFF) << headroom_plus_one) & 0xFFFFFFFF
    shifted_minus_one = wrap_int32(shifted - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_minus_one), num_bits_over_unit


def multiply_by_quantized_multiplier_int64(
    x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int
) -> np.ndarray:
    """The int64-accumulator ``MultiplyByQuantizedMultiplier`` (16-bit paths, common.cc)."""
    multiplier = np.asarray(multiplier, dtype=np.int64)
    reduced = np.where(multiplier < 0x7FFF0000, (multiplier + (1 << 15)) >> 16, 0x7FFF)
    total_shift = 15 - np.asarray(shift, dtype=np.int64)
    result = np.asarray(x, dtype=np.int64) * reduced + (np.int64(1) << (total_shift - 1))
    return wrap_int32(result >> total_shift)


# IEEE 754 binary32: 1 sign bit, 8 exponent bits (bias 127), 23 mantissa bits.
FLOAT32_MANTISSA_BITS = 23
FLOAT32_EXPONENT_BITS = 8
FLOAT32_EXPONENT_BIAS = 127


def float32_parts(value: float) -> tuple[int, int, int]:
    """(sign, biased exponent, 23-bit mantissa) of ``value`` rounded to float32.

    Hardware that takes a scale "from the float bits" (etnaviv's post multiplier, brief
    ``etnaviv-ml.md`` §4) reads these three fields; drivers call this instead of shifting and
    masking the bits themselves.
    """
    bits = int(np.array([value], dtype=np.float32).view(np.uint32)[0])
    mantissa = bits & ((1 << FLOAT32_MANTISSA_BITS) - 1)
    exponent = (bits >> FLOAT32_MANTISSA_BITS) & ((1 << FLOAT32_EXPONENT_BITS) - 1)
    return bits >> (FLOAT32_MANTISSA_BITS + FLOAT32_EXPONENT_BITS), exponent, mantissa


def float32_bits(value: float) -> int:
    """The IEEE binary32 bit pattern of ``value`` (rounded to float32) as an unsigned int."""
    return int(np.array([value], dtype=np.float32).view(np.uint32)[0])


def mantissa_top_bits(mantissa: int, bits: int) -> int:
    """The ``bits`` most significant of a float32's 23 mantissa bits (truncated)."""
    assert 0 <= bits <= FLOAT32_MANTISSA_BITS
    return mantissa >> (FLOAT32_MANTISSA_BITS - bits)


def float32_rounded_parts(value: float, bits: int) -> tuple[int, int]:
    """(biased exponent, mantissa) of ``value`` as a float with a ``bits``-bit mantissa: the
    float32 mantissa rounded to nearest, ties to even, with the carry into the exponent (how
    Mesa rounds the TP post multiplier, brief ``etnaviv-ml.md`` §4)."""
    sign, exponent, mantissa = float32_parts(value)
    assert sign == 0 and 0 < bits <= FLOAT32_MANTISSA_BITS
    drop = FLOAT32_MANTISSA_BITS - bits
    if drop == 0:
        return exponent, mantissa
    kept, rest = mantissa >> drop, mantissa & ((1 << drop) - 1)
    half = 1 << (drop - 1)
    if rest > half or (rest == half and kept & 1):
        kept += 1
    if kept >> bits:  # the mantissa overflowed: 1.111.. rounds up to 2.0
        return exponent + 1, 0
    return exponent, kept


def int16_bits(value: int) -> int:
    """The 16-bit two's complement pattern of ``value`` (a field that holds an int16)."""
    return int(np.array([value], dtype=np.int16).view(np.uint16)[0])


# fp21, the etnaviv TP unit's PWL number format (brief etnaviv-ml.md §6): 1 sign bit (bit 20),
# 5 exponent bits (bias 15), 15 mantissa bits. Exponent 0 is zero (no subnormals).
FP21_MANTISSA_BITS = 15
FP21_EXPONENT_BITS = 5
FP21_EXPONENT_BIAS = 15
FP21_SIGN_BIT = FP21_MANTISSA_BITS + FP21_EXPONENT_BITS
FP21_MAX_EXPONENT = (1 << FP21_EXPONENT_BITS) - 2  # 31 is reserved (largest finite)


def fp21_encode(values: np.ndarray) -> np.ndarray:
    """fp21 codes of real ``values``: mantissa rounded to nearest (ties away from zero),
    magnitudes below the smallest normal flush to zero, above the largest saturate."""
    v = np.asarray(values, dtype=np.float64)
    sign = (v < 0).astype(np.int64)
    mag = np.abs(v)
    frac, exp = np.frexp(mag)  # mag = frac * 2**exp, frac in [0.5, 1)
    mant = np.floor((frac * 2 - 1) * (1 << FP21_MANTISSA_BITS) + 0.5).astype(np.int64)
    exp = exp.astype(np.int64) - 1 + FP21_EXPONENT_BIAS
    carry = mant >> FP21_MANTISSA_BITS  # 1.111.. rounded up to 2.0
    exp, mant = exp + carry, np.where(carry > 0, 0, mant)
    top = exp > FP21_MAX_EXPONENT
    exp = np.where(top, FP21_MAX_EXPONENT, exp)
    mant = np.where(top, (1 << FP21_MANTISSA_BITS) - 1, mant)
    zero = (mag == 0) | (exp < 1)
    exp, mant = np.where(zero, 0, exp), np.where(zero, 0, mant)
    return (sign << FP21_SIGN_BIT) | (exp << FP21_MANTISSA_BITS) | mant


def fp21_decode(codes: np.ndarray) -> np.ndarray:
    """Real values of fp21 codes (exponent 0 is zero; 31 the largest finite value)."""
    codes = np.asarray(codes, dtype=np.int64)
    sign = (codes >> FP21_SIGN_BIT) & 1
    exp = (codes >> FP21_MANTISSA_BITS) & ((1 << FP21_EXPONENT_BITS) - 1)
    mant = codes & ((1 << FP21_MANTISSA_BITS) - 1)
    top = exp > FP21_MAX_EXPONENT
    exp = np.where(top, FP21_MAX_EXPONENT, exp)
    mant = np.where(top, (1 << FP21_MANTISSA_BITS) - 1, mant)
    mag = (1 + mant / (1 << FP21_MANTISSA_BITS)) * np.exp2(exp - FP21_EXPONENT_BIAS)
    mag = np.where(exp == 0, 0.0, mag)
    return np.where(sign == 1, -mag, mag)


def fp21_without_sign(codes: np.ndarray) -> np.ndarray:
    """The codes with their sign bit cleared (the magnitude's code)."""
    return np.asarray(codes, dtype=np.int64) & ((1 << FP21_SIGN_BIT) - 1)


def fp21_table_inputs(entries: int) -> np.ndarray:
    """The value each entry of a ``entries``-long table indexed by the top bits of an fp21 code
    stands for: the code with the entry's index in its top bits and zeros below."""
    shift = FP21_SIGN_BIT + 1 - (entries.bit_length() - 1)
    return fp21_decode(np.arange(entries, dtype=np.int64) << shift)


def fp21_table_codes(entries: int) -> np.ndarray:
    """Those entries' own codes (the identity table)."""
    shift = FP21_SIGN_BIT + 1 - (entries.bit_length() - 1)
    return np.arange(entries, dtype=np.int64) << shift
