"""lower_layouts: give every tensor the physical layout its users need, with LAYOUT nodes only
where a consumer needs another layout than its producer gives.

A driver states, per op, which layout it consumes and produces (a :class:`LayoutRule`);
``None`` means "whatever layout the first feature input has" (element-wise ops, which
etnaviv runs in any layout and propagates, etnaviv-ml.md §1 "Layout inference"). Ops missing
from the table work in NHWC (the CPU's layout). Graph inputs and outputs stay NHWC: a
producer of a graph output writes a tensor in its own layout and a LAYOUT node converts it.
Constants (weights, biases) keep their logical form; a constant feature operand (an ADD of a
constant) is simply tagged with the layout its consumer wants, since the driver lays constant
data out when it uploads it.

The rules run forward in graph order, so a layout propagates through a chain of
layout-agnostic ops; two LAYOUT nodes in a row collapse into one, and a LAYOUT that converts
to the layout its input already has disappears. Exact: LAYOUT is a logical identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..ir import NHWC, Graph, Layout, Node, Op, Tensor
from ..rewrite import Replacement, rewrite_graph, rules
from .common import activation_inputs, derived


@dataclass(frozen=True, slots=True)
class LayoutRule:
    """What one op reads and writes; None: the layout of its first feature input."""

    consumes: Layout | None = NHWC
    produces: Layout | None = None


LayoutTable = Mapping[Op, LayoutRule]


@dataclass(frozen=True, slots=True)
class _Ctx:
    table: LayoutTable


def _wanted(node: Node, ctx: _Ctx) -> tuple[Layout, Layout]:
    """(layout of every feature input, layout of every output) for ``node``."""
    rule = ctx.table.get(node.op, LayoutRule())
    first = node.inputs[activation_inputs(node)[0]]
    consumes = first.layout if rule.consumes is None else rule.consumes
    produces = consumes if rule.produces is None else rule.produces
    return consumes, produces


def _existing_conversion(graph: Graph, t: Tensor, layout: Layout, before: Node) -> Tensor | None:
    """The output of a LAYOUT of ``t`` to ``layout`` that runs before ``before``, if any."""
    limit = graph.position(before)
    for user in graph.consumers(t):
        if user.op is Op.LAYOUT and user.output.layout == layout:
            if graph.position(user) < limit:
                return user.output
    return None


def _convert_inputs(graph: Graph, node: Node, ctx: _Ctx) -> list[Node] | None:
    consumes, _ = _wanted(node, ctx)
    inputs = list(node.inputs)
    new: list[Node] = []
    for i in activation_inputs(node):
        t = inputs[i]
        if t.layout == consumes:
            continue
        if t.is_constant:
            inputs[i] = t.with_(layout=consumes)
            continue
        done = _existing_conversion(graph, t, consumes, node)
        if done is None:
            done = derived(t, str(consumes), layout=consumes)
            new.append(Node(Op.LAYOUT, (t,), (done,)))
        inputs[i] = done
    if len(new) == 0 and all(a is b for a, b in zip(inputs, node.inputs, strict=True)):
        return None
    return [*new, node.with_(inputs=tuple(inputs))]


def _retag_outputs(graph: Graph, node: Node, ctx: _Ctx) -> Replacement | None:
    _, produces = _wanted(node, ctx)
    outputs, after, forward = list(node.outputs), [], []
    for i, t in enumerate(node.outputs):
        if t.layout == produces:
            continue
        tagged = derived(t, str(produces), layout=produces)
        outputs[i] = tagged
        if graph.is_output(t):  # graph outputs stay as they are: convert back
            after.append(Node(Op.LAYOUT, (tagged,), (t,)))
        else:
            forward.append((t, tagged))
    if not after and not forward:
        return None
    return Replacement((node.with_(outputs=tuple(outputs)), *after), tuple(forward))


def _collapse(graph: Graph, node: Node, ctx: _Ctx) -> list[Node] | Replacement | None:
    src = graph.producer(node.input)
    if src is not None and src.op is Op.LAYOUT:  # LAYOUT(LAYOUT(x)) = LAYOUT(x)
        return [node.with_(inputs=src.inputs)]
    if node.input.layout == node.output.layout and not graph.is_output(node.output):
        return Replacement((), ((node.output, node.input),))
    return None


def _not_layout(node: Node) -> bool:
    return node.op is not Op.LAYOUT


RULES = rules((Op.LAYOUT, _collapse), (_not_layout, _convert_inputs), (_not_layout, _retag_outputs))


def lower_layouts(graph: Graph, *, table: LayoutTable) -> bool:
    """Assign layouts from the driver's ``table`` (op -> :class:`LayoutRule`), inserting LAYOUT
    nodes only where a consumer needs another layout.

    Preconditions: graph inputs and outputs are NHWC, and no view exists yet (views record
    byte offsets that depend on layouts) (asserted). Exact.
    """
    from ..params import VIEW_PARAMS

    assert all(t.layout == NHWC for t in (*graph.inputs, *graph.outputs))
    assert not any(isinstance(n.params, VIEW_PARAMS) for n in graph), "run before lower_views"
    assert all(isinstance(r, LayoutRule) for r in table.values())
    return rewrite_graph(graph, RULES, _Ctx(table))
