"""The rule walker: dispatch, fixed point, origin stamping, dead-producer cleanup, contracts."""

from __future__ import annotations

from itertools import pairwise

import pytest

from mesa_npu.gallium import ElementType, Quant
from mesa_npu.gallium.operation import AxisParams, PadParams
from mesa_npu.nir_tensor.ir import Graph, Node, Op, Tensor
from mesa_npu.nir_tensor.rewrite import Replacement, RewriteError, rewrite_graph, rules

Q = Quant(0.5, 3)


def t(*shape: int) -> Tensor:
    return Tensor(shape=shape, dtype=ElementType.UINT8, quant=Q)


def reshape_chain(length: int) -> tuple[Graph, list[Tensor]]:
    ts = [t(1, 2, 2, 3)] + [t(1, 4, 1, 3) if i % 2 == 0 else t(1, 2, 2, 3) for i in range(length)]
    nodes = [Node(Op.RESHAPE, (a,), (b,), origin=i) for i, (a, b) in enumerate(pairwise(ts))]
    return Graph.build(nodes, [ts[0]], [ts[-1]]), ts


def drop_double_reshape(graph, node, ctx):
    """RESHAPE(RESHAPE(x)) -> RESHAPE(x): a local rule that needs the producer."""
    src = graph.producer(node.input)
    if src is None or src.op is not Op.RESHAPE:
        return None
    ctx.append(node.origin)
    return [Node(Op.RESHAPE, src.inputs, node.outputs)]


def test_rules_reach_a_fixed_point_and_stamp_origins():
    graph, ts = reshape_chain(5)
    seen: list[int] = []
    assert rewrite_graph(graph, rules((Op.RESHAPE, drop_double_reshape)), seen)
    # Five reshapes collapse into one reading the graph input and writing the graph output.
    assert len(graph) == 1
    (node,) = graph.nodes
    assert node.inputs[0] is ts[0] and node.outputs[0] is ts[-1]
    assert node.origin == 4  # the new node inherited the matched node's origin
    assert seen == [1, 2, 3, 4]  # each rewrite saw the result of the previous one
    # The intermediate producers went with the rewrite: no dead node is left.
    assert all(graph.consumers(x) == [] for x in ts[1:-1])
    assert not rewrite_graph(graph, rules((Op.RESHAPE, drop_double_reshape)), [])


def test_match_by_set_and_predicate():
    x, y, z = t(1, 2, 2, 3), t(1, 2, 2, 6), t(1, 2, 2, 6)
    graph = Graph.build(
        [
            Node(Op.CONCAT, (x, x), (y,), AxisParams(3), origin=0),
            Node(Op.PAD, (y,), (z,), PadParams((0,) * 4, (0,) * 4, 3), origin=1),
        ],
        [x],
        [z],
    )
    calls: list[str] = []

    def record(name):
        def fn(graph, node, ctx):
            calls.append(f"{name}:{node.op.name}")

        return fn

    table = rules(
        (frozenset({Op.PAD, Op.SPLIT}), record("set")),
        (lambda n: n.op is Op.CONCAT, record("pred")),
        (Op.CONCAT, record("op")),
    )
    assert not rewrite_graph(graph, table)
    assert calls == ["pred:CONCAT", "op:CONCAT", "set:PAD"]


def test_forwarding_rewires_consumers_but_never_graph_outputs():
    graph, _ = reshape_chain(3)

    def identity(graph, node, ctx):
        # Forward a reshape's output to its input when shapes agree (not a graph output).
        if node.input.shape != node.output.shape or graph.is_output(node.output):
            return None
        return Replacement((), ((node.output, node.input),))

    assert not rewrite_graph(graph, rules((Op.RESHAPE, identity)))  # shapes alternate

    def forward_everything(graph, node, ctx):
        return Replacement((), ((node.output, node.input),))

    with pytest.raises(RewriteError, match="cannot forward graph input/output"):
        rewrite_graph(graph, rules((Op.RESHAPE, forward_everything)))


def test_losing_a_used_output_is_an_error():
    graph, _ = reshape_chain(2)

    def drop(graph, node, ctx):
        return []

    with pytest.raises(RewriteError, match="lost its output"):
        rewrite_graph(graph, rules((Op.RESHAPE, drop)))


def test_a_rule_that_never_settles_is_reported():
    graph, _ = reshape_chain(1)

    def churn(graph, node, ctx):
        return [node.with_(origin=node.origin)]  # a "new" node every time

    with pytest.raises(RewriteError, match="keeps rewriting"):
        rewrite_graph(graph, rules((Op.RESHAPE, churn)))


def test_forwarding_into_a_node_that_reads_the_tensor_twice():
    x, y, z = t(1, 2, 2, 3), t(1, 2, 2, 3), t(1, 2, 2, 6)
    graph = Graph.build(
        [
            Node(Op.RESHAPE, (x,), (y,), origin=0),
            Node(Op.CONCAT, (y, y), (z,), AxisParams(3), origin=1),
        ],
        [x],
        [z],
    )

    def identity(graph, node, ctx):
        return Replacement((), ((node.output, node.input),))

    assert rewrite_graph(graph, rules((Op.RESHAPE, identity)))
    (concat,) = graph.nodes
    assert concat.inputs == (x, x) and graph.consumers(x) == [concat, concat]
