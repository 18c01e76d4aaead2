"""opt_dce: remove operations whose results nobody reads (Mesa: ``nir_opt_dce.c``).

Algorithm: a node is dead when none of its outputs is consumed by another node or is a graph
output. Our graphs are acyclic and keep consumer lists, so "has a user" is exact liveness; the
walk that NIR needs for loops (where counting uses fails on self-referencing cycles) is not
needed here. Removing a node can make its producers dead: the rule walker drops producers a
rewrite leaves without users, so one sweep clears a dead chain from its end.
"""

from __future__ import annotations

from ..ir import Graph, Node
from ..rewrite import rewrite_graph, rules


def _is_dead(node: Node, graph: Graph) -> bool:
    return not any(graph.consumers(t) or graph.is_output(t) for t in node.outputs)


def _drop_dead(graph: Graph, node: Node, ctx: None) -> list[Node] | None:
    return [] if _is_dead(node, graph) else None


RULES = rules((lambda node: True, _drop_dead))


def opt_dce(graph: Graph) -> bool:
    """Remove nodes whose outputs are neither consumed nor graph outputs.

    Preconditions: none. Exact: only computations whose results are never read go.
    """
    return rewrite_graph(graph, RULES)
