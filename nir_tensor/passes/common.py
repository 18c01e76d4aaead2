"""Small helpers the pass families share: tensor creation, weight zero points, quant slices.

Not a pass family itself; every function here is pure and works on frozen tensors.
"""

from __future__ import annotations

import numpy as np

from ...gallium.tensor import Quant
from ..ir import Graph, Node, Op, Tensor


def sole_consumer(graph: Graph, t: Tensor) -> Node | None:
    """The only reader of ``t``, when it has exactly one and is not a graph output."""
    users = graph.consumers(t)
    if len(users) != 1 or graph.is_output(t):
        return None
    return users[0]


def derived(t: Tensor, suffix: str, **changes) -> Tensor:
    """A new tensor made by a pass from ``t`` (no pipe index: it is internal)."""
    base = t.name or (f"t{t.index}" if t.index >= 0 else "tmp")
    fields = {"index": -1, "name": f"{base}/{suffix}", "data": None} | changes
    return t.with_(**fields)


def constant(like: Tensor, data: np.ndarray, suffix: str, **changes) -> Tensor:
    """A new constant tensor shaped like ``data`` (4-D), e.g. rewritten weights."""
    data = np.ascontiguousarray(data)
    return derived(like, suffix, data=data, shape=tuple(int(d) for d in data.shape), **changes)


def activation_inputs(node: Node) -> tuple[int, ...]:
    """Positions of the inputs that carry feature maps (not weights or biases)."""
    if node.op in (Op.CONV, Op.FULLY_CONNECTED):
        return (0,)
    if node.op is Op.CONV_ADD:
        return (0, 3)
    return tuple(i for i, t in enumerate(node.inputs) if t is not None)


def weight_fill(node: Node, count: int) -> np.ndarray:
    """Per output channel, the weight value that adds nothing to the accumulator.

    That is the weight zero point where the kernel subtracts it (uint8, per tensor), and 0
    for int8/int16, whose per-channel kernels ignore the weight zero point (TFLite's
    ``ConvPerChannel`` and ``DepthwiseConvPerChannel`` run with ``weights_offset = 0``).
    """
    from ...gallium.tensor import ElementType

    if node.input.dtype is ElementType.UINT8:
        return np.full(count, node.inputs[1].quant.zero_point, dtype=np.int64)
    return np.zeros(count, dtype=np.int64)


def per_channel_quant(scales: np.ndarray, zero_points: np.ndarray, axis: int) -> Quant:
    """A Quant that is per-axis only when the values differ (the pipe convention)."""
    scales = np.asarray(scales, dtype=np.float64)
    zps = np.asarray(zero_points, dtype=np.int64)
    same_s = bool((scales == scales[0]).all())
    same_z = bool((zps == zps[0]).all())
    return Quant(
        float(scales[0]),
        int(zps[0]),
        None if same_s else tuple(float(s) for s in scales),
        None if same_z else tuple(int(z) for z in zps),
        axis if not (same_s and same_z) else 0,
    )


def slice_quant(q: Quant, lo: int, hi: int, count: int, axis: int) -> Quant:
    """The quantization of channels ``lo:hi`` of a tensor with ``count`` channels on ``axis``."""
    if not q.per_axis:
        return q
    return per_channel_quant(
        q.channel_scales(count)[lo:hi], q.channel_zero_points(count)[lo:hi], axis
    )


def same_quant(a: Tensor, b: Tensor) -> bool:
    return a.dtype is b.dtype and a.quant == b.quant
