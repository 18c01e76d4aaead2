"""SOFTMAX for uint8/int8 inputs, exact (gemmlowp fixed point).

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
"""

from __future__ import annotations

import numpy as np

from ...gallium.tensor import ElementType
from ...util.fixedpoint import (
    calculate_input_radius,
    exp_on_negative_values,
    get_reciprocal,
    preprocess_softmax_scaling,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap_int32,
)
from ..ir import Node, Op
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


def softmax_problem(node: Node) -> str | None:
    """SOFTMAX runs uint8 and int8 inputs (int16 softmax uses LUTs not implemented here)."""
    inp, out = node.input, node.output
    if inp.dtype not in (ElementType.UINT8, ElementType.INT8):
        return f"{inp.dtype.short} SOFTMAX"
    if out.dtype not in (inp.dtype, ElementType.INT16):
        return f"{inp.dtype.short} to {out.dtype.short} SOFTMAX"
    return None


KERNELS = {Op.SOFTMAX: Kernel(prepare_softmax, softmax_problem)}
