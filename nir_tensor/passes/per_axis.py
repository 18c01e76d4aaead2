"""lower_per_axis_weights: requantize per-channel weights to one scale, for hardware with a
single requantization multiplier per layer (etnaviv's older CPU path, ``requantize_weights``
in etnaviv-ml.md §1; rocket and etnaviv's support queries reject per-axis models instead).

The new scale is the largest channel scale ``s``, so no weight grows and none saturates:
``q' = round(q·s_c/s)`` (weights are symmetric, zero point 0, as TFLite's int8 spec requires)
and the bias moves to scale ``s_in·s``: ``b' = round(b·s_c/s)``. The accumulator of output
channel c changes by ``Σ_k (x_k − z_in)·(q'_k·s − q_k·s_c)/s_c`` in its own units, so the
bound per channel, in output LSB, is (``per_axis_bound`` computes it from the weights)::

    δ_c = s_in/s_out · ( X · Σ_k |q'_k·s − q_k·s_c| + |b'·s − b·s_c| ),  bound = floor(max δ_c) + 1

with ``X = max|x − z_in|`` over the input type. This is a worst case (every input at its
extreme, every rounding error the same sign); on random inputs the error is far smaller. The
tests measure both (see ``tests/nir_tensor/passes/test_per_axis.py``). Not exact.
"""

from __future__ import annotations

import numpy as np

from ...gallium.operation import ConvParams
from ...gallium.tensor import Quant
from ..ir import Graph, Node, Op
from ..rewrite import rewrite_graph, rules
from .common import constant

WEIGHTED_OPS = frozenset({Op.CONV, Op.FULLY_CONNECTED, Op.CONV_ADD})


def _channels(node: Node) -> tuple[int, int]:
    """(output channel count, the weight axis that indexes them)."""
    w = node.inputs[1]
    if node.op is Op.FULLY_CONNECTED:
        return w.shape[2], 2
    params = node.params.conv if node.op is Op.CONV_ADD else node.params
    return (w.shape[3], 3) if params.depthwise else (w.shape[0], 0)


def _rounded(x: np.ndarray) -> np.ndarray:
    """C's ``round``: halves away from zero (TFLite's converter rounds this way)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def requantized(node: Node) -> tuple[np.ndarray, np.ndarray | None, float]:
    """(new weights, new bias or None, new scale) of a per-axis weighted node."""
    w, bias = node.inputs[1], (*node.inputs, None)[2]
    count, axis = _channels(node)
    scales = w.quant.channel_scales(count)
    s = float(np.float32(scales.max()))
    shape = [1, 1, 1, 1]
    shape[axis] = count
    ratio = (scales / s).reshape(shape)
    q = _rounded(w.data.astype(np.float64) * ratio)
    q = np.clip(q, w.dtype.qmin, w.dtype.qmax).astype(w.dtype.numpy)
    b = None
    if bias is not None:
        b_ratio = (scales / s).reshape(1, 1, 1, count)
        b = _rounded(bias.data.astype(np.float64) * b_ratio).astype(bias.dtype.numpy)
    return q, b, s


def per_axis_bound(node: Node) -> tuple[float, int]:
    """(max δ_c, bound in output LSB) of requantizing ``node`` 's weights (module docstring)."""
    w, bias = node.inputs[1], (*node.inputs, None)[2]
    count, axis = _channels(node)
    scales = w.quant.channel_scales(count)
    q, b, s = requantized(node)
    shape = [1, 1, 1, 1]
    shape[axis] = count
    err = np.abs(q.astype(np.float64) * s - w.data.astype(np.float64) * scales.reshape(shape))
    per_channel = np.moveaxis(err, axis, 0).reshape(count, -1).sum(axis=1)
    inp = node.input
    x = max(inp.dtype.qmax - inp.quant.zero_point, inp.quant.zero_point - inp.dtype.qmin)
    delta = per_channel * x
    if bias is not None:
        delta += np.abs(b.reshape(-1) * s - bias.data.reshape(-1) * scales)
    delta *= inp.quant.scale / node.output.quant.scale
    worst = float(delta.max())
    return worst, int(np.floor(worst + 1e-9)) + 1


def _requantize(graph: Graph, node: Node, ctx: None) -> list[Node] | None:
    w = node.inputs[1]
    if not w.quant.per_axis or w.quant.zero_points is not None or w.quant.zero_point != 0:
        return None  # per-tensor already, or asymmetric per-channel (not TFLite's int8 spec)
    q, b, s = requantized(node)
    wt = constant(w, q, "per_tensor", quant=Quant(s, 0))
    inputs = [node.input, wt, *node.inputs[2:]]
    if b is not None:
        bias = node.inputs[2]
        inputs[2] = constant(bias, b, "per_tensor", quant=Quant(node.input.quant.scale * s, 0))
    return [node.with_(inputs=tuple(inputs))]


RULES = rules((WEIGHTED_OPS, _requantize))


def lower_per_axis_weights(graph: Graph) -> bool:
    """Requantize per-channel symmetric weights (and biases) of CONV, FULLY_CONNECTED and
    CONV_ADD to one scale, the largest channel scale.

    Preconditions: weights are constant; conv params are ``ConvParams`` (asserted).
    Not exact: within ``per_axis_bound(node)`` LSB (module docstring).
    """
    for n in graph:
        if n.op in WEIGHTED_OPS:
            assert n.inputs[1].is_constant, f"{n!r}: weights are not constant"
        if n.op is Op.CONV:
            assert isinstance(n.params, ConvParams)
    return rewrite_graph(graph, RULES)
