"""Pointwise ops: CLAMP (RELU, RELU6, RELU_N1_TO_1), ABS, LOGISTIC, TANH, HARD_SWISH, QUANTIZE.

Each 8-bit op is a 256-entry table that ``prepare`` fills by evaluating the reference formula
on every input value; int16 ops evaluate the same formula on the data. Sources (LiteRT
``tflite/kernels``): ``activations.cc`` (``QuantizedReluX``, ``SigmoidPrepare``/``TanhPrepare``
with ``LUTPopulate`` in ``internal/common.h``, ``HardSwishPrepare`` with
``reference_ops::HardSwish`` in ``internal/reference/hard_swish.h``), ``elementwise.cc``
(``AbsEvalQuantized``) and ``quantize.cc`` (``Requantize``).

LOGISTIC and TANH tables are computed in float32 by TFLite, through libm's ``expf`` and
``tanhf``; we call the same libm functions (ctypes) so the tables agree bit for bit, and fall
back to numpy (float64 rounded to float32) where no C math library is found.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

import numpy as np

from ...gallium.tensor import ElementType
from ...util.fixedpoint import (
    down_scale_int32_to_int16_multiplier,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    round_half_away_array,
    rounding_divide_by_pot,
)
from ..ir import Node, Op
from .base import Kernel, Run
from .requant import lookup, qrange, table_for

EIGHT_BIT = (ElementType.UINT8, ElementType.INT8)
Formula = Callable[[np.ndarray], np.ndarray]  # int64 quantized inputs -> int64 outputs


def pointwise(node: Node, formula: Formula) -> Run:
    """A table for 8-bit inputs, the formula itself for int16."""
    inp, out = node.input, node.output
    dtype = out.dtype.numpy
    if inp.dtype in EIGHT_BIT:
        table = table_for(formula(qrange(inp.dtype.numpy)).astype(dtype), inp.dtype.numpy)
        return lambda v: [lookup(table, v[0])]
    return lambda v: [formula(v[0].astype(np.int64)).astype(dtype)]


def saturate(values: np.ndarray, t: ElementType) -> np.ndarray:
    return np.clip(values, t.qmin, t.qmax)


# -- CLAMP, ABS, QUANTIZE -----------------------------------------------------------------------


def float_ratio_multiplier(s_in: float, s_out: float) -> tuple[int, int]:
    """``QuantizeMultiplier(input_scale / output_scale)`` with the division in float32."""
    return quantize_multiplier(float(np.float32(s_in) / np.float32(s_out)))


def prepare_clamp(node: Node) -> Run:
    """``QuantizedReluX``: requantize, then clamp to the activation bounds."""
    inp, out = node.input, node.output
    m, s = float_ratio_multiplier(inp.quant.scale, out.quant.scale)
    zi, zo = inp.quant.zero_point, out.quant.zero_point
    lo, hi = node.params.lo, node.params.hi
    return pointwise(
        node, lambda x: np.clip(zo + multiply_by_quantized_multiplier(x - zi, m, s), lo, hi)
    )


def prepare_abs(node: Node) -> Run:
    inp, out = node.input, node.output
    zi, zo = inp.quant.zero_point, out.quant.zero_point
    if np.float32(inp.quant.scale) == np.float32(out.quant.scale):
        return pointwise(node, lambda x: saturate(np.abs(x - zi) + zo, out.dtype))
    m, s = float_ratio_multiplier(inp.quant.scale, out.quant.scale)
    return pointwise(
        node,
        lambda x: saturate(multiply_by_quantized_multiplier(np.abs(x - zi), m, s) + zo, out.dtype),
    )


def prepare_quantize(node: Node) -> Run:
    """``Requantize``: the multiplier for ``s_in / s_out`` is computed in double."""
    inp, out = node.input, node.output
    m, s = quantize_multiplier(inp.quant.scale / out.quant.scale)
    zi, zo = inp.quant.zero_point, out.quant.zero_point
    return pointwise(
        node, lambda x: saturate(multiply_by_quantized_multiplier(x - zi, m, s) + zo, out.dtype)
    )


# -- LOGISTIC, TANH (float tables) --------------------------------------------------------------


def libm_function(
    name: str, fallback: Callable[[np.ndarray], np.ndarray], double: bool = False
) -> Formula:
    """The C library's ``name`` on an array: float32 (``expf``, ``tanhf``) or, with ``double``,
    float64 (``exp``)."""
    dtype, ctype = (np.float64, ctypes.c_double) if double else (np.float32, ctypes.c_float)
    path = ctypes.util.find_library("m")
    if path is None:
        return lambda x: fallback(np.asarray(x, dtype=np.float64)).astype(dtype)
    func = getattr(ctypes.CDLL(path), name)
    func.restype, func.argtypes = ctype, [ctype]
    return lambda x: np.array([func(float(v)) for v in np.ravel(x)], dtype=dtype).reshape(
        np.shape(x)
    )


def lut_populate(node: Node, transform: Formula) -> np.ndarray:
    """``LUTPopulateInt8``: dequantize, transform, requantize, all in float32."""
    inp, out = node.input, node.output
    f32 = np.float32
    values = qrange(inp.dtype.numpy)
    dequantized = f32(inp.quant.scale) * (values - inp.quant.zero_point).astype(f32)
    transformed = transform(dequantized)
    inverse_scale = f32(1) / f32(out.quant.scale)
    rescaled = round_half_away_array((transformed * inverse_scale).astype(np.float64))
    quantized = (rescaled.astype(f32) + f32(out.quant.zero_point)).astype(np.int64)
    return saturate(quantized, out.dtype)


def prepare_logistic(node: Node) -> Run:
    expf = libm_function("expf", np.exp)
    one = np.float32(1)
    return pointwise_table(node, lut_populate(node, lambda x: one / (one + expf(-x))))


def prepare_tanh(node: Node) -> Run:
    return pointwise_table(node, lut_populate(node, libm_function("tanhf", np.tanh)))


def pointwise_table(node: Node, values: np.ndarray) -> Run:
    table = table_for(values.astype(node.output.dtype.numpy), node.input.dtype.numpy)
    return lambda v: [lookup(table, v[0])]


# -- HARD_SWISH ---------------------------------------------------------------------------------


def srdhm16(a: np.ndarray, b: int) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int16 values."""
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    total = ab + nudge
    high = np.where(total >= 0, total >> 15, -((-total) >> 15))
    return np.where((a == -32768) & (b == -32768), 32767, high)


def saturating_left_shift16(x: np.ndarray, amount: int) -> np.ndarray:
    return np.clip(x * (1 << amount), -32768, 32767)


def prepare_hard_swish(node: Node) -> Run:
    """``reference_ops::HardSwish`` with ``HardSwishPrepare``'s int16 multipliers."""
    inp, out = node.input, node.output
    f32 = np.float32
    hires_input_scale = f32(1.0 / 128.0) * f32(inp.quant.scale)
    reluish_scale = f32(3.0) / f32(32768.0)
    m_out, e_out = quantize_multiplier(float(hires_input_scale / f32(out.quant.scale)))
    m_out16 = down_scale_int32_to_int16_multiplier(m_out)
    m_relu, e_relu = quantize_multiplier(float(hires_input_scale / reluish_scale))
    m_relu16 = down_scale_int32_to_int16_multiplier(m_relu)
    zi, zo = inp.quant.zero_point, out.quant.zero_point

    def formula(x: np.ndarray) -> np.ndarray:
        value = x - zi
        hires = value * (1 << 7)
        preshift = srdhm16(hires, m_out16)
        reluish = hires
        if e_relu > 0:
            reluish = saturating_left_shift16(reluish, e_relu - 1)
        reluish = srdhm16(reluish, m_relu16)
        if e_relu > 0:
            reluish = saturating_left_shift16(reluish, 1)
        if e_relu < 0:
            reluish = rounding_divide_by_pot(reluish, -e_relu)
        reluish = (reluish + (1 << 15)) >> 1
        product = reluish * preshift  # SaturatingDoublingHighMul: truncating division by 2^15
        product = np.where(product >= 0, product >> 15, -((-product) >> 15))
        # output_value is an int16_t: adding the zero point wraps before the clamp.
        result = rounding_divide_by_pot(product, -e_out) + zo
        result = ((result + (1 << 15)) & 0xFFFF) - (1 << 15)
        return saturate(result, out.dtype)

    return pointwise(node, formula)


# -- support predicates -------------------------------------------------------------------------


def same_type(node: Node) -> str | None:
    if node.input.dtype != node.output.dtype:
        return f"{node.input.dtype.short} to {node.output.dtype.short}"
    return None


def clamp_problem(node: Node) -> str | None:
    """RELU/RELU6/RELU_N1_TO_1 run 8-bit and symmetric int16."""
    reason = same_type(node)
    if reason is None and node.input.dtype is ElementType.INT16:
        if node.input.quant.zero_point or node.output.quant.zero_point:
            return "int16 activation with a non-zero zero point (TFLite rejects it)"
    return reason


def abs_problem(node: Node) -> str | None:
    """ABS runs int8 and symmetric int16 (TFLite has no uint8 ABS)."""
    reason = same_type(node)
    if reason:
        return reason
    if node.input.dtype is ElementType.UINT8:
        return "uint8 ABS (TFLite has no uint8 ABS)"
    if node.input.dtype is ElementType.INT16 and (
        node.input.quant.zero_point or node.output.quant.zero_point
    ):
        return "int16 ABS with a non-zero zero point (TFLite rejects it)"
    return None


def table_problem(node: Node) -> str | None:
    """LOGISTIC and TANH run uint8 and int8; their int16 kernels interpolate LiteRT's constant
    sigmoid table, which is not reproduced here."""
    reason = same_type(node)
    if reason:
        return reason
    if node.input.dtype not in EIGHT_BIT:
        name = node.op.debug_name.upper()
        return f"{node.input.dtype.short} {name} (LiteRT interpolates a constant table)"
    if node.op is Op.LOGISTIC and node.output.quant.scale != 1.0 / 256:
        return "LOGISTIC output scale is not 1/256 (TFLite rejects it)"
    return None


def hard_swish_problem(node: Node) -> str | None:
    """HARD_SWISH runs uint8 and int8."""
    reason = same_type(node)
    if reason:
        return reason
    if node.input.dtype not in EIGHT_BIT:
        return f"{node.input.dtype.short} HARD_SWISH (TFLite has none)"
    out_scale = np.float32(node.output.quant.scale)
    if np.float32(1.0 / 128.0) * np.float32(node.input.quant.scale) / out_scale >= 1:
        return "HARD_SWISH output multiplier above 1 (TFLite rejects it)"
    return None


def quantize_problem(node: Node) -> str | None:
    """QUANTIZE requantizes 8-bit to 8-bit and int16 to int8/int16."""
    inp, out = node.input, node.output
    if inp.dtype in EIGHT_BIT and out.dtype in EIGHT_BIT:
        return None
    if inp.dtype is ElementType.INT16 and out.dtype in (ElementType.INT8, ElementType.INT16):
        if out.dtype is ElementType.INT16 and (inp.quant.zero_point or out.quant.zero_point):
            return "int16 QUANTIZE with a non-zero zero point (TFLite rejects it)"
        return None
    return f"{inp.dtype.short} to {out.dtype.short} QUANTIZE (TFLite has none)"


KERNELS = {
    Op.CLAMP: Kernel(prepare_clamp, clamp_problem),
    Op.ABS: Kernel(prepare_abs, abs_problem),
    Op.LOGISTIC: Kernel(prepare_logistic, table_problem),
    Op.TANH: Kernel(prepare_tanh, table_problem),
    Op.HARD_SWISH: Kernel(prepare_hard_swish, hard_swish_problem),
    Op.QUANTIZE: Kernel(prepare_quantize, quantize_problem),
}
