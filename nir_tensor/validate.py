"""The graph validator: structural checks plus a table of per-op rules.

Like NIR's validator and tinygrad's ``spec.py``, it states what a legal graph is, and the pass
manager runs it after every pass in debug mode. Each rule returns None or a one-line problem.
"""

from __future__ import annotations

from collections.abc import Callable

from ..gallium.operation import ConvParams
from . import params, shapes
from .ir import Graph, Node, Op, OpGroup
from .physical import view_offset, view_parts


class ValidationError(ValueError):
    pass


def _arity(node: Node) -> str | None:
    want = ARITY.get(node.op)
    if want is None:
        return None
    lo, hi = want
    n = len(node.inputs)
    if not lo <= n <= hi:
        return f"takes {lo}..{hi} inputs, has {n}"
    optional = OPTIONAL_INPUTS.get(node.op, frozenset())
    if any(t is None for i, t in enumerate(node.inputs[:lo]) if i not in optional):
        return "a required input is missing"
    return None


def _shape(node: Node) -> str | None:
    if any(t is None for t in node.inputs[:1]):
        return None
    ins = [t.shape for t in node.inputs if t is not None]
    if node.op in (Op.CONV, Op.CONV_ADD, Op.FULLY_CONNECTED, Op.POOL):
        ins = ins[:2]
    try:
        want = shapes.infer(node.op, ins, node.params)
    except (ValueError, TypeError) as e:
        return f"cannot infer shape: {e}"
    if want is None:
        if node.op in (Op.RESHAPE, Op.LAYOUT) and node.input.size != node.output.size:
            return f"changes element count {node.input.size} -> {node.output.size}"
        return None
    got = [t.shape for t in node.outputs]
    if node.op is Op.SPLIT:
        return None
    if got != want:
        return f"output shape {got} but inputs give {want}"
    return None


def _conv(node: Node) -> str | None:
    p = node.params.conv if isinstance(node.params, params.ConvAddParams) else node.params
    if not isinstance(p, ConvParams):
        return f"params are {type(p).__name__}, not ConvParams"
    if min(p.stride) < 1 or min(p.dilation) < 1:
        return "stride and dilation must be >= 1"
    weight = node.inputs[1]
    if not weight.is_constant:
        return "weights must be constant"
    if p.depthwise and weight.shape[0] != 1:
        return f"depthwise weights must be 1HWC, are {weight.shape}"
    if not p.depthwise and weight.shape[3] != node.input.shape[3]:
        return f"weight depth {weight.shape[3]} != input channels {node.input.shape[3]}"
    return None


def _split(node: Node) -> str | None:
    axis = node.params.axis
    total = sum(t.shape[axis] for t in node.outputs)
    if total != node.input.shape[axis]:
        return f"outputs cover {total} of {node.input.shape[axis]} along axis {axis}"
    return None


def _conv_add(node: Node) -> str | None:
    if not isinstance(node.params, params.ConvAddParams):
        return f"params are {type(node.params).__name__}, not ConvAddParams"
    other = node.inputs[3]
    if other.shape != node.output.shape or other.dtype is not node.output.dtype:
        return f"added tensor {other!r} does not match the output {node.output!r}"
    return None


def _space_to_depth(node: Node) -> str | None:
    p = node.params
    if not isinstance(p, params.SpaceToDepthParams) or p.block < 1:
        return f"params {p!r} are not a SpaceToDepthParams with block >= 1"
    want = node.input.shape[3] * p.block * p.block
    if node.output.shape[3] != want or node.output.shape[0] != node.input.shape[0]:
        return f"output {node.output.shape} must have {want} channels and the input's batch"
    return None


def _layout(node: Node) -> str | None:
    a, b = node.input, node.output
    if a.dtype is not b.dtype or a.quant != b.quant:
        return "a layout change keeps type and quantization"
    return None


def _view(node: Node) -> str | None:
    """A view's offsets match the layouts (a layout change after lower_views breaks them)."""
    p = node.params
    if not isinstance(p, params.VIEW_PARAMS):
        return None
    parts = node.inputs if isinstance(p, params.ConcatView) else node.outputs
    if len(p.offsets) != len(parts):
        return f"{len(p.offsets)} view offsets for {len(parts)} parts"
    if isinstance(p, params.ReshapeView):
        return None if p.offsets == (0,) else "a reshape view starts at offset 0"
    for part, base, begin, offset in view_parts(node):
        if view_offset(base, part, begin, strided=p.strided) != offset:
            return f"view offset {offset} of {part!r} does not match its layout"
    return None


def _quantized(node: Node) -> str | None:
    if node.op.group & OpGroup.DATA:
        return None
    for t in (*node.inputs[:1], *node.outputs):
        if t is not None and t.dtype.is_integer and t.quant.scale <= 0 and not t.quant.per_axis:
            return f"{t!r} has no quantization scale"
    return None


ARITY: dict[Op, tuple[int, int]] = {
    Op.CONV: (2, 3),
    Op.FULLY_CONNECTED: (2, 3),
    Op.CONV_ADD: (4, 4),
    Op.ADD: (2, 2),
    Op.SUB: (2, 2),
    Op.MUL: (2, 2),
    Op.CONCAT: (1, 64),
    Op.SPACE_TO_DEPTH: (1, 1),
    Op.LAYOUT: (1, 1),
}
# Inputs that may be absent (None) within the required count: CONV_ADD's bias.
OPTIONAL_INPUTS: dict[Op, frozenset[int]] = {Op.CONV_ADD: frozenset({2})}

Rule = Callable[[Node], str | None]

# Rules for every node, then per-op rules.
COMMON_RULES: tuple[Rule, ...] = (_arity, _shape, _quantized)
OP_RULES: dict[Op, tuple[Rule, ...]] = {
    Op.CONV: (_conv,),
    Op.CONV_ADD: (_conv_add, _conv),
    Op.SPLIT: (_split, _view),
    Op.CONCAT: (_view,),
    Op.RESHAPE: (_view,),
    Op.STRIDED_SLICE: (_view,),
    Op.SPACE_TO_DEPTH: (_space_to_depth,),
    Op.LAYOUT: (_layout,),
}


def validate(graph: Graph) -> None:
    """Raise :class:`ValidationError` naming the first problem found."""
    ready = {id(t) for t in graph.inputs}
    for i, node in enumerate(graph.nodes):
        where = f"node {i} {node!r}"
        for t in node.inputs:
            if t is None:
                continue
            if id(t) not in ready and not t.is_constant:
                raise ValidationError(f"{where}: input {t!r} is used before it is produced")
            if not any(u is node for u in graph.consumers(t)):
                raise ValidationError(f"{where}: consumer link of {t!r} is missing")
        for t in node.outputs:
            if graph.producer(t) is not node:
                raise ValidationError(f"{where}: producer link of {t!r} is wrong")
            ready.add(id(t))
        for rule in (*COMMON_RULES, *OP_RULES.get(node.op, ())):
            problem = rule(node)
            if problem:
                raise ValidationError(f"{where}: {problem}")
    for t in graph.outputs:
        if id(t) not in ready:
            raise ValidationError(f"graph output {t!r} is never produced")
