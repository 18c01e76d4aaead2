"""opt_fold_pad: fold an explicit PAD into the following convolution's padding.

TFLite graphs from TF2 often carry ``PAD`` + ``CONV_2D(padding=VALID)`` where the pad value is
the input zero point. A convolution's own padding reads exactly that value (the reference
kernels skip out-of-image taps, which is the same as reading the zero point: the tap adds
``(zp - zp) * w = 0``), so folding is exact. Etnaviv does border fill with the input zero point
in hardware, rocket with PAD_VALUE; both are limited in how much padding they can do, hence
``max_padding``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...gallium.operation import ConvParams, Padding, PadParams
from ..ir import Graph, Node, Op
from ..rewrite import rewrite_graph, rules
from .common import same_quant


@dataclass(frozen=True, slots=True)
class _Ctx:
    max_padding: int | None


def _foldable_pad(graph: Graph, node: Node) -> Node | None:
    pad = graph.producer(node.input)
    if pad is None or pad.op is not Op.PAD or not isinstance(pad.params, PadParams):
        return None
    p = pad.params
    if p.before[0] or p.after[0] or p.before[3] or p.after[3]:
        return None  # batch or channel padding is not a convolution border
    if not same_quant(pad.input, pad.output) or p.value != pad.input.quant.zero_point:
        return None
    return pad


def _fold_into_conv(graph: Graph, node: Node, ctx: _Ctx) -> Node | None:
    pad = _foldable_pad(graph, node)
    if pad is None:
        return None
    conv: ConvParams = node.params
    p = pad.params
    padding = Padding(
        conv.padding.top + p.before[1],
        conv.padding.bottom + p.after[1],
        conv.padding.left + p.before[2],
        conv.padding.right + p.after[2],
    )
    sides = (padding.top, padding.bottom, padding.left, padding.right)
    if ctx.max_padding is not None and max(sides) > ctx.max_padding:
        return None
    return [node.with_(inputs=(pad.input, *node.inputs[1:]), params=replace(conv, padding=padding))]


RULES = rules((Op.CONV, _fold_into_conv))


def opt_fold_pad(graph: Graph, *, max_padding: int | None = None) -> bool:
    """Fold ``PAD`` (spatial only, value = input zero point) into each consuming CONV.

    The PAD disappears when no other node reads it. Options: ``max_padding`` is the largest
    padding per side the driver's convolution can do (None: unlimited); a PAD that would
    exceed it stays. Preconditions: conv params are ``ConvParams`` (asserted).
    Exact (see the module docstring).
    """
    assert all(isinstance(n.params, ConvParams) for n in graph if n.op is Op.CONV)
    return rewrite_graph(graph, RULES, _Ctx(max_padding))
