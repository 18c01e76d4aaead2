"""SOFTMAX, exact: gemmlowp fixed point for uint8/int8 inputs, interpolated tables for int16.

Mirrors LiteRT ``tflite/kernels/activations.cc`` (``SoftmaxPrepare`` for ``kReference``:
``PreprocessSoftmaxScaling`` with 5 integer bits and ``diff_min`` from
``CalculateInputRadius``) and ``reference_ops::Softmax`` in ``internal/reference/softmax.h``:
per row, ``diff = x - max``; differences at or above ``diff_min`` are rescaled by the beta
multiplier into Q5.26, exponentiated with ``exp_on_negative_values`` and summed in Q12.19;
``GetReciprocal`` of the sum scales each exponential to the output, whose scale is fixed at
1/256 (1/65536 for int16 outputs) with the type's minimum as zero point. Smaller differences
give the type's minimum.

With 8-bit inputs a difference is one of 256 values, so the exponentials are a table; the sum,
reciprocal and final products are vectorised over rows.

int16 (``SoftmaxInt16``): the rescaled difference indexes a 513-entry ``exp`` table on [-10, 0]
and the normalised sum a ``1 / (1 + x)`` table, both filled by ``LUTPopulateInt16<double>``
(``internal/common.h``) and read with ``LUTLookup``'s 7-bit linear interpolation.
"""

from __future__ import annotations

import numpy as np

from ...gallium.tensor import ElementType
from ...util.fixedpoint import (
    calculate_input_radius,
    count_leading_zeros_u32,
    exp_on_negative_values,
    get_reciprocal,
    multiply_by_quantized_multiplier,
    preprocess_softmax_scaling,
    quantize_multiplier,
    round_half_away_array,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap_int32,
)
from ..ir import Node, Op
from .activation import libm_function
from .base import Kernel, Run

SCALED_DIFF_INTEGER_BITS = 5  # Q5.26 input to exp (softmax.h)
ACCUMULATION_INTEGER_BITS = 12  # Q12.19 sum of exponentials


def prepare_softmax(node: Node) -> Run:
    inp, out = node.input, node.output
    multiplier, left_shift = preprocess_softmax_scaling(
        float(np.float32(node.params.beta)), inp.quant.scale, SCALED_DIFF_INTEGER_BITS
    )
    diff_min = -calculate_input_radius(SCALED_DIFF_INTEGER_BITS, left_shift)
    # Table over d = max - x in 0..255: the Q0.31 exponential, 0 where the difference is skipped.
    d = np.arange(256, dtype=np.int64)
    rescaled = saturating_rounding_doubling_high_mul(wrap_int32((-d) << left_shift), multiplier)
    exps = exp_on_negative_values(rescaled, SCALED_DIFF_INTEGER_BITS)
    used = -d >= diff_min
    exps = np.where(used, exps, 0)
    accumulated = np.where(used, rounding_divide_by_pot(exps, ACCUMULATION_INTEGER_BITS), 0)
    out_bits = 8 * out.dtype.size
    out_min, out_max = out.dtype.qmin, out.dtype.qmax
    dtype = out.dtype.numpy

    def run(v: list[np.ndarray | None]) -> list[np.ndarray]:
        x = v[0].astype(np.int64)
        diff = x.max(axis=-1, keepdims=True) - x
        total = wrap_int32(accumulated[diff].sum(axis=-1, keepdims=True))
        scale, bits_over_unit = get_reciprocal(total, ACCUMULATION_INTEGER_BITS)
        exponent = bits_over_unit + 31 - out_bits
        y = rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(scale, exps[diff]), exponent
        )
        y = np.clip(y + out_min, out_min, out_max)
        return [np.where(used[diff], y, out_min).astype(dtype)]

    return run


LUT_STEPS = 512  # LUTPopulateInt16: 512 segments, 513 entries
INT16_RANGE = 65535  # int16 max - min, as activations.cc writes it


def lut_populate_int16(input_scale, input_zero_point, output_scale, transform) -> np.ndarray:
    """``LUTPopulateInt16<double>`` (output zero point 0): samples with a midpoint bias
    correction, so that interpolating between entries is centred."""
    input_min = input_scale * (-32768 - input_zero_point)
    input_max = input_scale * (32767 - input_zero_point)
    output_min, output_max = output_scale * -32768, output_scale * 32767
    step = (input_max - input_min) / LUT_STEPS
    inverse = 65536.0 / (output_max - output_min)
    i = np.arange(LUT_STEPS, dtype=np.float64)
    val = transform(input_min + i * step)
    midpoint = transform(input_min + i * step + step / 2)
    following = transform(input_min + (i + 1) * step)
    sample = round_half_away_array(val * inverse)
    interpolated = round_half_away_array((following * inverse + sample) / 2)
    error = interpolated - round_half_away_array(midpoint * inverse)
    bias = round_half_away_array(error / 2)
    last = round_half_away_array(transform(np.array([input_max])) * inverse)
    table = np.concatenate([sample - bias, last])
    return np.clip(table, -32768, 32767).astype(np.int64)


def lut_lookup(table: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``LUTLookup`` for int16: the upper 9 bits index, the lower 7 interpolate."""
    index = 256 + (value >> 7)
    offset = value & 0x7F
    base = table[index]
    slope = table[index + 1] - base
    return base + ((slope * offset + 64) >> 7)


def prepare_softmax_int16(node: Node) -> Run:
    inp, out = node.input, node.output
    exp = libm_function("exp", np.exp, double=True)
    exp_table = lut_populate_int16(10.0 / INT16_RANGE, 32767, 2.0 / INT16_RANGE, exp)
    reciprocal_table = lut_populate_int16(
        1.0 / INT16_RANGE, -32768, 2.0 / INT16_RANGE, lambda x: 1.0 / (1.0 + x)
    )
    # scale * beta in float32, then rescaled so that [-65535, 0] spans [-10, 0]
    real = float(np.float32(inp.quant.scale) * np.float32(node.params.beta)) / (10.0 / 65535.0)
    multiplier, shift = quantize_multiplier(real)
    dtype = out.dtype.numpy

    def run(v: list[np.ndarray | None]) -> list[np.ndarray]:
        x = v[0].astype(np.int64)
        diff = x - x.max(axis=-1, keepdims=True)
        scaled = multiply_by_quantized_multiplier(diff, multiplier, shift)
        exps = lut_lookup(exp_table, np.clip(scaled + 32767, -32768, 32767))
        total = exps.sum(axis=-1, keepdims=True)
        headroom_plus_one = count_leading_zeros_u32(total)
        shifted = ((total << (headroom_plus_one - 1)) + (1 << 13)) >> 14
        centred = np.clip(shifted - ((1 << 15) + (1 << 16)), -32768, 32767)
        reciprocal = lut_lookup(reciprocal_table, centred)
        right = 31 - headroom_plus_one
        result = (exps * reciprocal + (np.int64(1) << (right - 1))) >> right
        return [np.clip(result, 0, 32767).astype(dtype)]

    return run


def prepare_any_softmax(node: Node) -> Run:
    if node.input.dtype is ElementType.INT16:
        return prepare_softmax_int16(node)
    return prepare_softmax(node)


def softmax_problem(node: Node) -> str | None:
    """SOFTMAX runs uint8/int8 inputs (to the same type or int16) and symmetric int16."""
    inp, out = node.input, node.output
    if inp.dtype is ElementType.INT16:
        if out.dtype is not ElementType.INT16:
            return f"i16 to {out.dtype.short} SOFTMAX"
        if inp.quant.zero_point or out.quant.zero_point:
            return "int16 SOFTMAX with a non-zero zero point (TFLite rejects it)"
        return None
    if inp.dtype not in (ElementType.UINT8, ElementType.INT8):
        return f"{inp.dtype.short} SOFTMAX"
    if out.dtype not in (inp.dtype, ElementType.INT16):
        return f"{inp.dtype.short} to {out.dtype.short} SOFTMAX"
    return None


KERNELS = {Op.SOFTMAX: Kernel(prepare_any_softmax, softmax_problem)}
