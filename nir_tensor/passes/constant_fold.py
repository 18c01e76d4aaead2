"""opt_constant_fold: evaluate operations whose inputs are all constant (Mesa:
``nir_opt_constant_folding.c``).

The exact evaluator's own kernel computes the value, so the folded constant is, by
construction, what the node would have produced at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..evaluate import kernel_problem
from ..ir import Graph, Node
from ..kernels import KERNELS
from ..rewrite import Replacement, rewrite_graph, rules


@dataclass(frozen=True, slots=True)
class _Ctx:
    max_elements: int


def _all_constant(node: Node) -> bool:
    return all(t is None or t.is_constant for t in node.inputs)


def _fold(graph: Graph, node: Node, ctx: _Ctx) -> Replacement | None:
    if any(graph.is_output(t) for t in node.outputs):
        return None  # a graph output stays produced by a node
    if sum(t.size for t in node.outputs) > ctx.max_elements or kernel_problem(node):
        return None
    args = [None if t is None else t.data for t in node.inputs]
    values = KERNELS[node.op].prepare(node)(args)
    forward = tuple(
        (t, t.with_(data=v.reshape(t.shape).astype(t.dtype.numpy)))
        for t, v in zip(node.outputs, values, strict=True)
    )
    return Replacement((), forward)


RULES = rules((_all_constant, _fold))


def opt_constant_fold(graph: Graph, *, max_elements: int = 1 << 22) -> bool:
    """Replace every node whose inputs are all constant by its (constant) result.

    Options: ``max_elements`` bounds the size of a folded result (a driver may prefer to
    compute a huge broadcast rather than store it). Preconditions: none.
    Exact: the value comes from the node's own reference kernel.
    """
    assert max_elements > 0
    return rewrite_graph(graph, RULES, _Ctx(max_elements))
