"""Data-movement kernels: no arithmetic on values, so exact by construction.

The one exception is uint8 CONCATENATION, which TFLite requantizes per input
(``reference_ops::ConcatenationWithScaling``, LiteRT ``internal/reference/concatenation.h``).
"""

from __future__ import annotations

import numpy as np

from ...gallium.tensor import ElementType
from ...util.fixedpoint import round_half_away_array
from ..ir import Node, Op, Tensor
from .base import Kernel, Run


def prepare_identity(node: Node) -> Run:
    """RESHAPE (row-major reinterpretation) and LAYOUT (logical identity)."""
    shape = node.output.shape
    return lambda v: [v[0].reshape(shape)]


def concat_requantize_table(inp: Tensor, out: Tensor) -> np.ndarray | None:
    """``ConcatenationWithScaling`` (uint8 only) for one input, as a 256-entry table.

    TFLite rescales in float32: ``round(q * s + b) + zp_out`` with ``s = s_in * (1 / s_out)``
    and ``b = -zp_in * s``; an input whose scale and zero point equal the output's is copied.
    """
    f32 = np.float32
    if inp.quant.zero_point == out.quant.zero_point and f32(inp.quant.scale) == f32(
        out.quant.scale
    ):
        return None
    scale = f32(inp.quant.scale) * (f32(1) / f32(out.quant.scale))
    bias = f32(-inp.quant.zero_point) * scale
    values = np.arange(256).astype(f32) * scale + bias
    rounded = round_half_away_array(values.astype(np.float64)).astype(np.int64)
    return np.clip(rounded + out.quant.zero_point, 0, 255).astype(np.uint8)


def prepare_concat(node: Node) -> Run:
    axis = node.params.axis
    out = node.output
    tables = [None] * len(node.inputs)
    if out.dtype is ElementType.UINT8:
        tables = [concat_requantize_table(t, out) for t in node.inputs]

    def run(v: list[np.ndarray | None]) -> list[np.ndarray]:
        parts = [x if table is None else table[x] for x, table in zip(v, tables, strict=True)]
        return [np.concatenate(parts, axis=axis)]

    return run


def concat_problem(node: Node) -> str | None:
    """CONCATENATION requantizes uint8 inputs; int8 inputs must match the output's quantization
    (TFLite rejects a mismatch); int16 is copied."""
    out = node.output
    for i, t in enumerate(node.inputs):
        if t.dtype != out.dtype:
            return f"input {i} is {t.dtype.short}, output {out.dtype.short}"
        if out.dtype is ElementType.INT8 and (
            t.quant.zero_point != out.quant.zero_point
            or np.float32(t.quant.scale) != np.float32(out.quant.scale)
        ):
            return "int8 CONCATENATION with differing quantization (TFLite rejects it)"
    return None


def prepare_split(node: Node) -> Run:
    axis = node.params.axis
    cuts = np.cumsum([t.shape[axis] for t in node.outputs])[:-1]
    return lambda v: np.split(v[0], cuts, axis=axis)


def prepare_pad(node: Node) -> Run:
    p = node.params
    widths = list(zip(p.before, p.after, strict=True))
    return lambda v: [np.pad(v[0], widths, constant_values=p.value)]


def prepare_transpose(node: Node) -> Run:
    perm = node.params.perm
    return lambda v: [np.ascontiguousarray(v[0].transpose(perm))]


def prepare_strided_slice(node: Node) -> Run:
    p = node.params
    # Explicit indices: a negative end (-1) means "down to index 0", unlike numpy slicing.
    index = np.ix_(*(np.arange(b, e, s) for b, e, s in zip(p.begin, p.end, p.strides, strict=True)))
    return lambda v: [v[0][index]]


KERNELS = {
    Op.RESHAPE: Kernel(prepare_identity),
    Op.LAYOUT: Kernel(prepare_identity),
    Op.CONCAT: Kernel(prepare_concat, concat_problem),
    Op.SPLIT: Kernel(prepare_split),
    Op.PAD: Kernel(prepare_pad),
    Op.TRANSPOSE: Kernel(prepare_transpose),
    Op.STRIDED_SLICE: Kernel(prepare_strided_slice),
}
