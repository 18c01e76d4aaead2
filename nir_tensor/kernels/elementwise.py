"""ADD, SUB and MUL with numpy broadcasting, exact.

Mirrors LiteRT ``tflite/kernels/{add,sub,mul}.cc`` and ``internal/reference/{add,sub,mul}.h``
(``AddElementwise``, ``SubElementwise``/``BroadcastQuantSubSlow``, ``MulElementwise``):

* ADD/SUB: both inputs are shifted left by 20 (8-bit) or 15 (int16), rescaled to twice the
  larger input scale with ``MultiplyByQuantizedMultiplierSmallerThanOneExp``, added or
  subtracted, rescaled to the output and clamped.
* MUL: ``zp_out + MultiplyByQuantizedMultiplier((a - zp_a) * (b - zp_b), M, s)`` where the real
  multiplier ``s_a * s_b / s_out`` is evaluated in float32, as mul.cc does.

With 8-bit inputs every result depends on one (a, b) pair, so ``prepare`` evaluates the exact
formula on all 65536 pairs and ``run`` is a table lookup.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ...gallium.tensor import ElementType
from ...util.fixedpoint import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    quantize_multiplier_smaller_than_one_exp,
)
from ..ir import Node, Op
from .base import Kernel, Run
from .conv import activation_bounds
from .requant import qrange

ADD_LEFT_SHIFT = {ElementType.UINT8: 20, ElementType.INT8: 20, ElementType.INT16: 15}  # add.cc

Formula = Callable[[np.ndarray, np.ndarray], np.ndarray]


def add_sub_formula(node: Node, sign: int) -> Formula:
    """The reference ADD (sign +1) or SUB (sign -1) on int64 arrays of quantized values."""
    a, b, out = node.inputs[0], node.inputs[1], node.output
    left_shift = ADD_LEFT_SHIFT[out.dtype]
    s1, s2, so = a.quant.scale, b.quant.scale, out.quant.scale
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier_smaller_than_one_exp(s1 / twice_max)
    m2, sh2 = quantize_multiplier_smaller_than_one_exp(s2 / twice_max)
    mo, sho = quantize_multiplier_smaller_than_one_exp(twice_max / (float(1 << left_shift) * so))
    za, zb, zo = a.quant.zero_point, b.quant.zero_point, out.quant.zero_point
    lo, hi = activation_bounds(node)

    def formula(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        sx = multiply_by_quantized_multiplier((x - za) << left_shift, m1, sh1)
        sy = multiply_by_quantized_multiplier((y - zb) << left_shift, m2, sh2)
        raw = multiply_by_quantized_multiplier(sx + sign * sy, mo, sho)
        return np.clip(raw + zo, lo, hi)

    return formula


def mul_formula(node: Node) -> Formula:
    a, b, out = node.inputs[0], node.inputs[1], node.output
    real = np.float32(a.quant.scale) * np.float32(b.quant.scale) / np.float32(out.quant.scale)
    m, s = quantize_multiplier(float(real))
    za, zb, zo = a.quant.zero_point, b.quant.zero_point, out.quant.zero_point
    lo, hi = activation_bounds(node)

    def formula(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.clip(zo + multiply_by_quantized_multiplier((x - za) * (y - zb), m, s), lo, hi)

    return formula


def prepare_binary(node: Node, formula: Formula) -> Run:
    out = node.output
    dtype = out.dtype.numpy
    if out.dtype in (ElementType.UINT8, ElementType.INT8):
        values = qrange(dtype)
        index = values & 0xFF  # the uint8 view of each value
        table = np.empty((256, 256), dtype=dtype)
        table[np.ix_(index, index)] = formula(values[:, None], values[None, :])
        flat = table.ravel()  # entry (a << 8) | b

        def run_table(v: list[np.ndarray | None]) -> list[np.ndarray]:
            x = np.ascontiguousarray(v[0]).view(np.uint8)
            y = np.ascontiguousarray(v[1]).view(np.uint8)
            pairs = np.left_shift(x, 8, dtype=np.uint16) | y
            return [np.broadcast_to(flat.take(pairs), out.shape).copy()]

        return run_table

    def run(v: list[np.ndarray | None]) -> list[np.ndarray]:
        x, y = (np.asarray(t, dtype=np.int64) for t in v[:2])
        return [np.broadcast_to(formula(x, y), out.shape).astype(dtype)]

    return run


def prepare_add(node: Node) -> Run:
    return prepare_binary(node, add_sub_formula(node, +1))


def prepare_sub(node: Node) -> Run:
    return prepare_binary(node, add_sub_formula(node, -1))


def prepare_mul(node: Node) -> Run:
    return prepare_binary(node, mul_formula(node))


def is_power_of_two(scale: float) -> bool:
    return scale > 0 and math.frexp(scale)[0] == 0.5


def same_types(node: Node) -> str | None:
    a, b, out = node.inputs[0], node.inputs[1], node.output
    if not a.dtype == b.dtype == out.dtype:
        return f"{a.dtype.short} and {b.dtype.short} inputs with {out.dtype.short} output"
    if out.dtype not in ADD_LEFT_SHIFT:
        return f"{out.dtype.short} {node.op.debug_name.upper()}"
    return None


def add_sub_problem(node: Node) -> str | None:
    """ADD/SUB run uint8, int8 and general-scale int16 (symmetric for ADD)."""
    reason = same_types(node)
    if reason:
        return reason
    tensors = (node.inputs[0], node.inputs[1], node.output)
    if node.output.dtype is ElementType.INT16:
        if all(is_power_of_two(t.quant.scale) for t in tensors):
            return "int16 with power-of-two scales (pot_scale_int16 is not carried by the IR)"
        if node.op is Op.ADD and any(t.quant.zero_point for t in tensors):
            return "int16 ADD with a non-zero zero point (TFLite rejects it)"
    if node.op is Op.SUB:
        a, b, out = tensors
        left_shift = ADD_LEFT_SHIFT[out.dtype]
        if 2.0 * max(a.quant.scale, b.quant.scale) / ((1 << left_shift) * out.quant.scale) > 1:
            return "SUB with an output multiplier above 1 (undefined shift in TFLite)"
    return None


def mul_problem(node: Node) -> str | None:
    """MUL runs uint8, int8 and symmetric int16."""
    reason = same_types(node)
    if reason:
        return reason
    if node.output.dtype is ElementType.INT16 and any(
        t.quant.zero_point for t in (node.inputs[0], node.inputs[1], node.output)
    ):
        return "int16 MUL with a non-zero zero point (TFLite rejects it)"
    return None


KERNELS = {
    Op.ADD: Kernel(prepare_add, add_sub_problem),
    Op.SUB: Kernel(prepare_sub, add_sub_problem),
    Op.MUL: Kernel(prepare_mul, mul_problem),
}
