"""POOL (average, max) and MEAN, exact.

Mirrors LiteRT ``tflite/kernels/pooling.cc`` with ``reference_ops::AveragePool``/``MaxPool``
(uint8) and ``reference_integer_ops::AveragePool``/``MaxPool`` (int8, int16), and
``tflite/kernels/reduce.cc`` with ``reference_ops::QuantizedMeanOrSum``:

* average pool sums the window's in-image values (padding is left out, and so is its count)
  and divides with rounding to nearest, halves away from zero; no requantization;
* max pool takes the in-image maximum; both clamp to the fused activation;
* MEAN sums raw values in int32, subtracts ``zp_in * n``, and rescales with the multiplier for
  ``s_in / s_out`` folded with ``1/n`` (``(M << k) / n`` with ``k = min(floor(log2 n), 32,
  31 + shift)``), then adds ``zp_out`` and saturates to the type.

Windows are summed as kh*kw shifted whole-plane adds.
"""

from __future__ import annotations

import numpy as np

from ...gallium.operation import PoolType
from ...gallium.tensor import ElementType
from ...util.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from ..ir import Node, Op
from .base import Kernel, Run
from .conv import activation_bounds

POOL_TYPES = (ElementType.UINT8, ElementType.INT8, ElementType.INT16)


def window_planes(node: Node, x: np.ndarray, fill: int) -> list[np.ndarray]:
    """For every filter tap, the (N, OH, OW, C) plane it reads; padding reads ``fill``."""
    p = node.params
    fh, fw = p.filter
    sh, sw = p.stride
    _, oh, ow, _ = node.output.shape
    _, h, w, _ = x.shape
    need_h, need_w = (oh - 1) * sh + fh, (ow - 1) * sw + fw
    top, left = p.padding.top, p.padding.left
    pads = ((0, 0), (top, max(0, need_h - h - top)), (left, max(0, need_w - w - left)), (0, 0))
    xp = np.pad(x, pads, constant_values=fill)
    return [
        xp[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :]
        for i in range(fh)
        for j in range(fw)
    ]


def rounding_divide(acc: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``acc > 0 ? (acc + n/2) / n : (acc - n/2) / n`` with C's truncating division."""
    half = count // 2
    positive = (acc + half) // count
    negative = -((half - acc) // count)
    return np.where(acc > 0, positive, negative)


def prepare_pool(node: Node) -> Run:
    p = node.params
    lo, hi = activation_bounds(node)
    dtype = node.output.dtype.numpy
    if p.type is PoolType.MAX:
        fill = node.input.dtype.qmin

        def run_max(v: list[np.ndarray | None]) -> list[np.ndarray]:
            planes = window_planes(node, v[0], fill)
            best = planes[0].copy()
            for plane in planes[1:]:
                np.maximum(best, plane, out=best)
            return [np.clip(best, lo, hi).astype(dtype)]

        return run_max

    _, h, w, _ = node.input.shape
    ones = np.ones((1, h, w, 1), dtype=np.int64)
    count = sum(window_planes(node, ones, 0))  # in-image pixels per window

    def run_avg(v: list[np.ndarray | None]) -> list[np.ndarray]:
        planes = window_planes(node, v[0].astype(np.int64), 0)
        acc = planes[0].copy()
        for plane in planes[1:]:
            acc += plane
        return [np.clip(rounding_divide(acc, count), lo, hi).astype(dtype)]

    return run_avg


def pool_problem(node: Node) -> str | None:
    """POOL runs uint8, int8 and int16 with equal input and output types."""
    if node.input.dtype not in POOL_TYPES or node.output.dtype != node.input.dtype:
        return f"{node.input.dtype.short} to {node.output.dtype.short} pooling"
    return None


def mean_multiplier(node: Node, count: int) -> tuple[int, int]:
    """``QuantizedMeanOrSum``'s multiplier for ``s_in / s_out`` folded with ``1 / count``."""
    m, shift = quantize_multiplier(node.input.quant.scale / node.output.quant.scale)
    k = min(count.bit_length() - 1, 32, 31 + shift)
    return (m << k) // count, shift - k


def prepare_mean(node: Node) -> Run:
    axes = tuple(node.params.axes)
    count = int(np.prod([node.input.shape[a] for a in axes]))
    m, s = mean_multiplier(node, count)
    zp_in, zp_out = node.input.quant.zero_point, node.output.quant.zero_point
    dtype = node.output.dtype
    out_shape = node.output.shape

    def run(v: list[np.ndarray | None]) -> list[np.ndarray]:
        total = v[0].astype(np.int64).sum(axis=axes) - zp_in * count
        y = multiply_by_quantized_multiplier(total, m, s) + zp_out
        return [np.clip(y, dtype.qmin, dtype.qmax).astype(dtype.numpy).reshape(out_shape)]

    return run


def mean_problem(node: Node) -> str | None:
    """MEAN runs uint8, int8 and symmetric int16 with equal input and output types."""
    inp, out = node.input, node.output
    if inp.dtype not in POOL_TYPES or out.dtype != inp.dtype:
        return f"{inp.dtype.short} to {out.dtype.short} MEAN"
    if inp.dtype is ElementType.INT16 and (inp.quant.zero_point or out.quant.zero_point):
        return "int16 MEAN with a non-zero zero point (TFLite rejects it)"
    return None


KERNELS = {
    Op.POOL: Kernel(prepare_pool, pool_problem),
    Op.MEAN: Kernel(prepare_mean, mean_problem),
}
