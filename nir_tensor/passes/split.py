"""Tiling: split a convolution by output channels or by output rows.

Each piece is a whole convolution over a slice of the weights (channels) or of the input rows
(rows), and a CONCATENATION joins the pieces into the original output tensor. After
``lower_views`` the concatenation and the input row slices are views, so no data moves:
this is how rocket splits tasks by rows (rocket-nvdla.md §5, rows overlap by ``kh − stride``)
and how a driver keeps a kernel group within its weight buffer.

Row piece ``[r0, r1)`` of output rows reads input rows ``r0·s − pt`` to
``(r1 − 1)·s − pt + (kh − 1)·d``; the part of that range outside the image becomes the piece's
own top/bottom padding, so every piece computes exactly the rows it replaces. Channel piece
``[o0, o1)`` takes those kernels, biases and per-channel scales (a depthwise piece also takes
input channels ``o0/M`` to ``o1/M``). Both are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...gallium.operation import AxisParams, ConvParams, Padding, StridedSliceParams
from ..ir import Graph, Node, Op, Tensor
from ..rewrite import rewrite_graph, rules
from .common import constant, derived, slice_quant


def _slice(t: Tensor, begin: tuple, end: tuple, suffix: str) -> tuple[Tensor, list[Node]]:
    """``t[begin:end]`` (stride 1) as a new STRIDED_SLICE, or ``t`` itself when it is whole."""
    if begin == (0, 0, 0, 0) and end == t.shape:
        return t, []
    shape = tuple(e - b for b, e in zip(begin, end, strict=True))
    part = derived(t, suffix, shape=shape, rank=4)
    return part, [Node(Op.STRIDED_SLICE, (t,), (part,), StridedSliceParams(begin, end, (1,) * 4))]


def _chunks(total: int, size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + size, total)) for lo in range(0, total, size)]


@dataclass(frozen=True, slots=True)
class _Ctx:
    size: int
    align: int


def _split_channels(graph: Graph, node: Node, ctx: _Ctx) -> list[Node] | None:
    p: ConvParams = node.params
    inp, weight, bias = (*node.inputs, None)[:3]
    out = node.output
    oc = out.shape[3]
    mult = oc // inp.shape[3] if p.depthwise else 1
    size = ctx.size - ctx.size % max(ctx.align, mult)
    if oc <= ctx.size or size <= 0 or size % mult:
        return None
    axis = 3 if p.depthwise else 0
    new: list[Node] = []
    parts: list[Tensor] = []
    for o0, o1 in _chunks(oc, size):
        tag = f"oc{o0}"
        if p.depthwise:
            c = inp.shape
            x, pre = _slice(inp, (0, 0, 0, o0 // mult), (c[0], c[1], c[2], o1 // mult), tag)
            w = constant(
                weight,
                weight.data[..., o0:o1],
                tag,
                quant=slice_quant(weight.quant, o0, o1, oc, axis),
            )
        else:
            x, pre = inp, []
            w = constant(
                weight, weight.data[o0:o1], tag, quant=slice_quant(weight.quant, o0, o1, oc, axis)
            )
        b = None
        if bias is not None:
            b = constant(
                bias, bias.data[..., o0:o1], tag, quant=slice_quant(bias.quant, o0, o1, oc, 3)
            )
        part = derived(out, tag, shape=(*out.shape[:3], o1 - o0), rank=4)
        new += [*pre, Node(Op.CONV, (x, w, b), (part,), p)]
        parts.append(part)
    return [*new, Node(Op.CONCAT, tuple(parts), (out,), AxisParams(3))]


def lower_split_conv_channels(graph: Graph, *, max_channels: int, align: int = 1) -> bool:
    """Split convolutions with more than ``max_channels`` output channels into pieces of at
    most ``max_channels`` (a multiple of ``align``, e.g. rocket's 16-channel atoms, and of a
    depthwise multiplier), joined by a channel CONCATENATION.

    Preconditions: conv params are ``ConvParams`` with constant weights (asserted). Exact.
    """
    assert max_channels >= 1 and align >= 1
    for n in graph:
        if n.op is Op.CONV:
            assert isinstance(n.params, ConvParams) and n.inputs[1].is_constant
    return rewrite_graph(graph, CHANNEL_RULES, _Ctx(max_channels, align))


CHANNEL_RULES = rules((Op.CONV, _split_channels))


def _split_rows(graph: Graph, node: Node, ctx: _Ctx) -> list[Node] | None:
    p: ConvParams = node.params
    inp, out = node.input, node.output
    n, h, w, c = inp.shape
    oh = out.shape[1]
    if oh <= ctx.size:
        return None
    kh, s, d = node.inputs[1].shape[1], p.stride[0], p.dilation[0]
    new: list[Node] = []
    parts: list[Tensor] = []
    for r0, r1 in _chunks(oh, ctx.size):
        top = r0 * s - p.padding.top
        bottom = (r1 - 1) * s - p.padding.top + (kh - 1) * d
        i0, i1 = max(top, 0), min(bottom, h - 1)
        if i1 < i0:
            return None  # a piece that reads only padding: leave the conv whole
        tag = f"rows{r0}"
        x, pre = _slice(inp, (0, i0, 0, 0), (n, i1 + 1, w, c), tag)
        pad = Padding(i0 - top, bottom - i1, p.padding.left, p.padding.right)
        part = derived(out, tag, shape=(out.shape[0], r1 - r0, *out.shape[2:]), rank=4)
        new += [
            *pre,
            node.with_(
                inputs=(x, *node.inputs[1:]), outputs=(part,), params=replace(p, padding=pad)
            ),
        ]
        parts.append(part)
    return [*new, Node(Op.CONCAT, tuple(parts), (out,), AxisParams(1))]


ROW_RULES = rules((Op.CONV, _split_rows))


def lower_split_conv_rows(graph: Graph, *, max_rows: int) -> bool:
    """Split convolutions with more than ``max_rows`` output rows into pieces of at most
    ``max_rows`` rows, each reading its (overlapping) input rows through a STRIDED_SLICE, joined
    by a row CONCATENATION.

    Preconditions: conv params are ``ConvParams`` (asserted). Exact.
    """
    assert max_rows >= 1
    assert all(isinstance(n.params, ConvParams) for n in graph if n.op is Op.CONV)
    return rewrite_graph(graph, ROW_RULES, _Ctx(max_rows, 1))
