"""Strided convolutions for hardware that only convolves with stride 1.

**lower_conv_stride_reshuffle** (etnaviv's "reshuffle", etnaviv-ml.md §1 step 3, after
arXiv:1712.02502): a stride-s convolution is a stride-1 convolution of the space-to-depth
image. With ``ky = s·qy + dy``, input row ``s·y + ky − pad_top`` is row ``y + qy`` of the
image whose channel block ``dy`` holds input row ``s·Y + dy − pad_top``. So a SPACE_TO_DEPTH
(block s, offset by the conv's top/left padding, out-of-image pixels = the input zero point)
feeds a ``ceil(K/s)``-sized stride-1 convolution with no padding, whose weights hold
``w[o, s·qy + dy, s·qx + dx, c]`` at ``[o, qy, qx, (dy·s + dx)·C + c]`` and the neutral weight
(the zero point the kernel subtracts, ``common.weight_fill``) where ``s·qy + dy >= K`` (those
taps add ``(x − z_in)·0``). The accumulator sums the same non-zero terms: exact.

**lower_conv_stride_subsample** (etnaviv's ``pooling_first_pixel``): compute the stride-1
convolution and keep every s-th pixel. The NN unit does this as a 2x2 "first pixel" pooling;
in the IR it is a ``STRIDED_SLICE`` with strides ``(1, s_y, s_x, 1)`` (an existing op with
exact semantics, so no new pooling type). Pixel ``s·y`` of the stride-1 output is pixel ``y``
of the strided one, computed and rounded identically: exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ...gallium.operation import ConvParams, Padding, StridedSliceParams
from ..ir import Graph, Node, Op
from ..params import SpaceToDepthParams
from ..rewrite import rewrite_graph, rules
from ..shapes import conv_output_size
from .common import constant, derived, weight_fill

Select = Callable[[Node], bool]


@dataclass(frozen=True, slots=True)
class _Ctx:
    select: Select | None
    strides: frozenset[int]


def _strided(node: Node, ctx: _Ctx) -> bool:
    p: ConvParams = node.params
    if p.stride == (1, 1):
        return False
    return ctx.select is None or ctx.select(node)


def reshuffle_weights(weight: np.ndarray, zero_points: np.ndarray, block: int) -> np.ndarray:
    """OHWI weights of a stride-``block`` conv -> the stride-1 weights on space-to-depth input."""
    o, kh, kw, c = weight.shape
    kh2, kw2 = -(-kh // block), -(-kw // block)
    padded = np.empty((o, kh2 * block, kw2 * block, c), dtype=weight.dtype)
    padded[...] = zero_points.astype(weight.dtype).reshape(o, 1, 1, 1)
    padded[:, :kh, :kw, :] = weight
    blocks = padded.reshape(o, kh2, block, kw2, block, c).transpose(0, 1, 3, 2, 4, 5)
    return blocks.reshape(o, kh2, kw2, block * block * c)


def _reshuffle(graph: Graph, node: Node, ctx: _Ctx) -> list[Node] | None:
    p: ConvParams = node.params
    s = p.stride[0]
    if not _strided(node, ctx) or p.depthwise or p.stride[1] != s or s not in ctx.strides:
        return None
    if p.dilation != (1, 1):
        return None
    inp, weight = node.inputs[0], node.inputs[1]
    n, _, _, c = inp.shape
    o = weight.shape[0]
    _, oh, ow, _ = node.output.shape
    w2 = reshuffle_weights(weight.data, weight_fill(node, o), s)
    kh2, kw2 = w2.shape[1], w2.shape[2]
    s2d_out = derived(inp, "s2d", shape=(n, oh + kh2 - 1, ow + kw2 - 1, c * s * s), rank=4)
    params = SpaceToDepthParams(s, p.padding.top, p.padding.left, inp.quant.zero_point)
    s2d = Node(Op.SPACE_TO_DEPTH, (inp,), (s2d_out,), params)
    wt = constant(weight, w2, "s2d")
    conv_params = replace(p, stride=(1, 1), padding=Padding())
    conv = node.with_(inputs=(s2d_out, wt, *node.inputs[2:]), params=conv_params)
    return [s2d, conv]


RESHUFFLE_RULES = rules((Op.CONV, _reshuffle))


def lower_conv_stride_reshuffle(
    graph: Graph, *, select: Select | None = None, strides: frozenset[int] = frozenset({2})
) -> bool:
    """Lower strided dense convolutions to SPACE_TO_DEPTH + a stride-1 convolution.

    Options: ``strides`` are the (square) strides to lower (etnaviv: only 2); ``select`` is the
    driver's predicate (etnaviv's ``needs_reshuffle``), None for every candidate. Depthwise and
    dilated convolutions are left alone (use ``lower_conv_stride_subsample``).
    Preconditions: conv params are ``ConvParams`` and weights constant (asserted). Exact.
    """
    for n in graph:
        if n.op is Op.CONV:
            assert isinstance(n.params, ConvParams) and n.inputs[1].is_constant
    return rewrite_graph(graph, RESHUFFLE_RULES, _Ctx(select, frozenset(strides)))


def _subsample(graph: Graph, node: Node, ctx: _Ctx) -> list[Node] | None:
    p: ConvParams = node.params
    if not _strided(node, ctx) or not set(p.stride) <= ctx.strides | {1}:
        return None
    inp, weight, out = node.input, node.inputs[1], node.output
    kh, kw = weight.shape[1], weight.shape[2]
    oh1 = conv_output_size(inp.shape[1], kh, 1, p.dilation[0], p.padding.top, p.padding.bottom)
    ow1 = conv_output_size(inp.shape[2], kw, 1, p.dilation[1], p.padding.left, p.padding.right)
    n, oh, ow, c = out.shape
    full = derived(out, "stride1", shape=(n, oh1, ow1, c), rank=4)
    conv = node.with_(outputs=(full,), params=replace(p, stride=(1, 1)))
    sy, sx = p.stride
    keep = StridedSliceParams(
        (0, 0, 0, 0), (n, (oh - 1) * sy + 1, (ow - 1) * sx + 1, c), (1, sy, sx, 1)
    )
    return [conv, Node(Op.STRIDED_SLICE, (full,), (out,), keep)]


SUBSAMPLE_RULES = rules((Op.CONV, _subsample))


def lower_conv_stride_subsample(
    graph: Graph, *, select: Select | None = None, strides: frozenset[int] = frozenset({2})
) -> bool:
    """Lower strided convolutions (dense or depthwise) to a stride-1 convolution followed by a
    first-pixel subsample (``STRIDED_SLICE`` with the conv's strides).

    Options: ``strides``: the stride values to lower; ``select``: the driver's predicate (etnaviv
    uses this for depthwise and some pointwise convs). Preconditions: conv params are
    ``ConvParams`` (asserted). Exact. Costs ``s_y·s_x`` times the MACs.
    """
    assert all(isinstance(n.params, ConvParams) for n in graph if n.op is Op.CONV)
    return rewrite_graph(graph, SUBSAMPLE_RULES, _Ctx(select, frozenset(strides)))
