"""lower_views: CONCATENATION, SPLIT, RESHAPE and row/channel slices as buffer views.

A part of a tensor is a view when its bytes are one contiguous range of the whole tensor's
buffer in the *physical* layout: in physical axis order, every axis before the one the part
cuts has extent 1 in the part, and every axis after it is whole. Channel concatenation is
then contiguous placement in planar NCHW (etnaviv: "since NN outputs are planar, channel
concat is just contiguous placement", etnaviv-ml.md §1) and in NC1HWC2 when the cut falls on a
``c2`` boundary; row concatenation and row slices are contiguous in NHWC (batch 1), which is
how rocket's row tasks address their input (rocket-nvdla.md §5).

A view keeps its op and its params (so the evaluator computes what it did) and the params
become the view record of ``nir_tensor.params`` (``ConcatView``, ``SplitView``, ``SliceView``,
``ReshapeView``), which adds the byte offset of each part in its base: the CONCATENATION's
output, or the input of the others. The memory planner places parts inside their base; a
driver emits no job for a view. Exact: no value changes.

With ``strided`` (rocket), a part is also a view when it is any box of the base, addressed with
the base's line and surface strides: row tiles of an NC1HWC2 tensor with several channel
groups are then views too.

A tensor may be a part of one base only: a concatenation input that is already a view (of a
split, a slice, a reshape or another concatenation) keeps its node; so does a concatenation of
a graph input or a constant (they are not written by a node of the graph). The exception is a
part that is a same-shape reshape view (a byte reinterpretation, as ``lower_add_to_conv``
makes): the tensor it reinterprets is placed in the concatenation instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...gallium.operation import AxisParams, StridedSliceParams
from ..ir import Graph, LayoutKind, Node, Op, Tensor
from ..params import VIEW_PARAMS, ConcatView, ReshapeView, SliceView, SplitView
from ..physical import view_offset
from ..rewrite import rewrite_graph, rules


def _is_view(node: Node) -> bool:
    return isinstance(node.params, VIEW_PARAMS)


def is_view_part(graph: Graph, t: Tensor) -> bool:
    """``t`` already lives inside another tensor's buffer."""
    producer = graph.producer(t)
    if producer is not None and _is_view(producer) and producer.op is not Op.CONCAT:
        return True
    return any(u.op is Op.CONCAT and _is_view(u) for u in graph.consumers(t))


@dataclass(frozen=True, slots=True)
class _Ctx:
    strided: bool


def _whole_alias_source(graph: Graph, t: Tensor) -> Tensor | None:
    """The tensor ``t`` is a same-shape reshape view of (a reinterpretation of its bytes, as
    ``lower_add_to_conv`` makes), when that tensor is free to live inside a concatenation."""
    producer = graph.producer(t)
    if producer is None or not isinstance(producer.params, ReshapeView):
        return None
    src = producer.input
    if src.shape != t.shape or src.is_constant or graph.producer(src) is None:
        return None
    return None if is_view_part(graph, src) else src


def _offsets_along(base: Tensor, parts, axis: int, ctx: _Ctx) -> tuple[int, ...] | None:
    offsets, at = [], 0
    for part in parts:
        begin = [0, 0, 0, 0]
        begin[axis] = at
        offset = view_offset(base, part, tuple(begin), strided=ctx.strided)
        if offset is None:
            return None
        offsets.append(offset)
        at += part.shape[axis]
    return tuple(offsets)


def _concat(graph: Graph, node: Node, ctx: _Ctx) -> list[Node] | None:
    if _is_view(node):
        return None
    parts = node.inputs
    if len({id(t) for t in parts}) != len(parts):
        return None
    for t in parts:
        if t.is_constant or graph.producer(t) is None:
            return None
        if is_view_part(graph, t) and _whole_alias_source(graph, t) is None:
            return None
        if t.quant != node.output.quant:
            return None  # the kernel requantizes this part (uint8): that is arithmetic
    offsets = _offsets_along(node.output, parts, node.params.axis, ctx)
    if offsets is None:
        return None
    return [node.with_(params=ConcatView(node.params.axis, offsets, ctx.strided))]


def _split(graph: Graph, node: Node, ctx: _Ctx) -> list[Node] | None:
    if _is_view(node) or node.input.is_constant:
        return None
    offsets = _offsets_along(node.input, node.outputs, node.params.axis, ctx)
    if offsets is None:
        return None
    return [node.with_(params=SplitView(node.params.axis, offsets, ctx.strided))]


def _slice(graph: Graph, node: Node, ctx: _Ctx) -> list[Node] | None:
    p = node.params
    if _is_view(node) or node.input.is_constant or set(p.strides) != {1}:
        return None
    offset = view_offset(node.input, node.output, p.begin, strided=ctx.strided)
    if offset is None:
        return None
    return [node.with_(params=SliceView(p.begin, p.end, p.strides, (offset,), ctx.strided))]


def _reshape(graph: Graph, node: Node, ctx: _Ctx) -> list[Node] | None:
    a, b = node.input, node.output
    if _is_view(node) or a.is_constant or a.dtype is not b.dtype:
        return None
    same = a.shape == b.shape and a.layout == b.layout  # a pure reinterpretation
    nhwc = a.layout.kind is LayoutKind.NHWC and b.layout.kind is LayoutKind.NHWC
    if not (same or nhwc):
        return None  # a row-major reshape is a view only in NHWC
    return [node.with_(params=ReshapeView())]


RULES = rules(
    (Op.CONCAT, _concat),
    (Op.SPLIT, _split),
    (Op.STRIDED_SLICE, _slice),
    (Op.RESHAPE, _reshape),
)


def lower_views(graph: Graph, *, strided: bool = False) -> bool:
    """Turn every concatenation, split, stride-1 slice and reshape whose parts are contiguous
    in the physical layout into a view (see the module docstring).

    Options: ``strided`` also makes views of parts that are boxes of the base addressed with
    its strides (for a driver whose DMA takes line and surface strides, like rocket's row
    tasks); the view records say so.

    Preconditions: layouts are final (offsets depend on them), so this runs after
    ``lower_layouts``; CONCAT/SPLIT params are ``AxisParams`` and slices
    ``StridedSliceParams`` (asserted). Exact.
    """
    for n in graph:
        if n.op in (Op.CONCAT, Op.SPLIT):
            assert isinstance(n.params, AxisParams), f"{n!r}: params {n.params!r}"
        if n.op is Op.STRIDED_SLICE:
            assert isinstance(n.params, StridedSliceParams), f"{n!r}: params {n.params!r}"
    return rewrite_graph(graph, RULES, _Ctx(strided))
