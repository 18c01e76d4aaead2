"""lower_depthwise_to_dense: a depthwise convolution as a dense one (etnaviv v7, which has no
depthwise mode: etnaviv-ml.md §1 step 2).

Output channel ``o`` of a depthwise conv with multiplier M reads input channel ``o // M``
only. The dense equivalent has ``C·M`` kernels of depth C; kernel ``o`` holds the depthwise
taps in input channel ``o // M`` and the neutral weight everywhere else (the zero point the
kernel subtracts, ``common.weight_fill``), so the other channels add ``(x − z_in)·0``. Same
sum, same per-channel scales (moved from the depthwise axis 3 to the dense axis 0): exact.
Costs C times the MACs and weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ...gallium.operation import ConvParams
from ...gallium.tensor import Quant
from ..ir import Graph, Node, Op
from ..rewrite import rewrite_graph, rules
from .common import constant, weight_fill


def dense_weights(weight: np.ndarray, zero_points: np.ndarray, channels: int) -> np.ndarray:
    """1HW(C·M) depthwise weights -> (C·M)HWC dense weights."""
    _, kh, kw, om = weight.shape
    mult = om // channels
    dense = np.empty((om, kh, kw, channels), dtype=weight.dtype)
    dense[...] = zero_points.astype(weight.dtype).reshape(om, 1, 1, 1)
    outs = np.arange(om)
    dense[outs, :, :, outs // mult] = weight[0].transpose(2, 0, 1)
    return dense


@dataclass(frozen=True, slots=True)
class _Ctx:
    select: Callable[[Node], bool] | None
    max_channels: int | None


def _densify(graph: Graph, node: Node, ctx: _Ctx) -> list[Node] | None:
    p: ConvParams = node.params
    if not p.depthwise or (ctx.select is not None and not ctx.select(node)):
        return None
    weight, c = node.inputs[1], node.input.shape[3]
    om = weight.shape[3]
    if ctx.max_channels is not None and om > ctx.max_channels:
        return None
    q = weight.quant
    quant = Quant(q.scale, q.zero_point, q.scales, q.zero_points, 0) if q.per_axis else q
    data = dense_weights(weight.data, weight_fill(node, om), c)
    wt = constant(weight, data, "dense", quant=quant)
    return [
        node.with_(inputs=(node.input, wt, *node.inputs[2:]), params=replace(p, depthwise=False))
    ]


RULES = rules((Op.CONV, _densify))


def lower_depthwise_to_dense(
    graph: Graph,
    *,
    select: Callable[[Node], bool] | None = None,
    max_channels: int | None = None,
) -> bool:
    """Lower depthwise convolutions to dense ones.

    Options: ``select`` is the driver's predicate (etnaviv v7: OC > 1 or stride > 1), None
    for all; ``max_channels`` leaves wider ones alone (the dense form grows as C²).
    Preconditions: depthwise weights are constant and 1HWC (asserted). Exact.
    """
    for n in graph:
        if n.op is Op.CONV and n.params.depthwise:
            w = n.inputs[1]
            assert w.is_constant and w.shape[0] == 1, f"{n!r}: depthwise weights {w.shape}"
    return rewrite_graph(graph, RULES, _Ctx(select, max_channels))
