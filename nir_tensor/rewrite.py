"""The shared rule walker: local rewrites written as ``(match, rewrite)`` tables.

Mirrors tinygrad's ``PatternMatcher`` + ``graph_rewrite`` (``tinygrad/uop/ops.py``) and the
callback style of NIR's ``nir_shader_instructions_pass``: a pass states *what* to rewrite as a
table of :class:`Rule` s, and :func:`rewrite_graph` is the one traversal every pass shares. No
pass walks the graph itself.

A rule's ``match`` is an :class:`Op`, a set of ops, or a predicate on the node. Its
``rewrite(graph, node, ctx)`` returns ``None`` (no change), a sequence of nodes that take the
matched node's place, or a :class:`Replacement` when some outputs of the node become tensors
that already exist (a folded constant, an identity's input). ``ctx`` is the pass's explicit
state, usually a frozen record of its options.

The walker sweeps the nodes in order; after a rewrite it looks at the replacement nodes again
(so rules compose, as tinygrad rewrites a result until nothing matches), and it sweeps again
until a whole sweep changes nothing. Three things it does for every rewrite, so rules don't:

* a new node whose ``origin`` is -1 gets the matched node's origin (the source-model op it
  came from, which ``teflon check`` reports);
* every output of the matched node that is still used must be produced by a replacement node
  or forwarded, else :class:`RewriteError`;
* producers left without any user by the rewrite are removed (transitively), the way a DAG
  rewriter drops unreferenced nodes, so a fold (PAD into a conv, a clamp into its producer)
  needs no DCE after it. Nodes that were already dead are left to ``opt_dce``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .ir import Graph, Node, Op, Tensor

Match = Op | frozenset[Op] | set[Op] | Callable[[Node], bool]


class RewriteError(RuntimeError):
    """A rule broke the walker's contract (an output lost, no fixed point)."""


@dataclass(frozen=True, slots=True)
class Replacement:
    """What a rewrite returns when outputs of the matched node are replaced by existing tensors.

    ``nodes`` take the matched node's place in order; each ``(old, new)`` pair in ``forward``
    makes every consumer of ``old`` read ``new``. A graph input or output is never forwarded
    (its identity is part of the subgraph's interface): a rule must produce it instead.
    """

    nodes: tuple[Node, ...] = ()
    forward: tuple[tuple[Tensor, Tensor], ...] = ()


Result = Sequence[Node] | Replacement | None
RewriteFn = Callable[[Graph, Node, Any], Result]


@dataclass(frozen=True, slots=True)
class Rule:
    match: Match
    rewrite: RewriteFn

    @property
    def name(self) -> str:
        return getattr(self.rewrite, "__name__", repr(self.rewrite))

    @property
    def ops(self) -> frozenset[Op]:
        """The ops this rule can match without calling it (every op for a predicate)."""
        if isinstance(self.match, Op):
            return frozenset((self.match,))
        if isinstance(self.match, set | frozenset):
            return frozenset(self.match)
        return frozenset(Op)

    def matches(self, node: Node) -> bool:
        if isinstance(self.match, Op | set | frozenset):
            return node.op in self.ops
        return bool(self.match(node))


@dataclass(frozen=True, slots=True)
class Rules:
    """An ordered rule table; tables compose with ``+`` (the first rule that rewrites wins)."""

    rules: tuple[Rule, ...]
    _by_op: Mapping[Op, tuple[Rule, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Dispatch by op once, in table order, so a sweep only calls rules that can match.
        by_op = {op: tuple(r for r in self.rules if op in r.ops) for op in Op}
        object.__setattr__(self, "_by_op", MappingProxyType(by_op))

    def __add__(self, other: Rules) -> Rules:
        return Rules(self.rules + other.rules)

    def for_op(self, op: Op) -> tuple[Rule, ...]:
        return self._by_op[op]


def rules(*pairs: tuple[Match, RewriteFn]) -> Rules:
    """``rules((Op.CLAMP, fuse_clamp), (is_dead, drop))``: a table from (match, rewrite) pairs."""
    return Rules(tuple(Rule(m, f) for m, f in pairs))


# A rule that keeps rewriting the node it produced this many times in a row is looping.
MAX_LOCAL_REWRITES = 64


def _is_dead(graph: Graph, node: Node) -> bool:
    return not any(graph.consumers(t) or graph.is_output(t) for t in node.outputs)


def _stamp(nodes: Iterable[Node], origin: int) -> tuple[Node, ...]:
    return tuple(n if n.origin >= 0 else n.with_(origin=origin) for n in nodes)


def _commit(graph: Graph, node: Node, index: int, result: Result, rule: Rule) -> int:
    """Apply one rewrite of ``graph.nodes[index]``; return how many nodes before it went."""
    if isinstance(result, Replacement):
        new_nodes, forward = _stamp(result.nodes, node.origin), result.forward
    else:
        new_nodes, forward = _stamp(result, node.origin), ()
    graph.replace(node, new_nodes)
    for old, new in forward:
        if graph.is_output(old) or any(t is old for t in graph.inputs):
            raise RewriteError(f"{rule.name}: cannot forward graph input/output {old!r}")
        graph.replace_tensor(old, new)
    produced = {id(t) for n in new_nodes for t in n.outputs}
    for t in node.outputs:
        if id(t) not in produced and (graph.consumers(t) or graph.is_output(t)):
            raise RewriteError(f"{rule.name}: rewriting {node!r} lost its output {t!r}")
    removed_before = 0
    pending = [t for t in node.inputs if t is not None]
    while pending:
        producer = graph.producer(pending.pop())
        if producer is None or not _is_dead(graph, producer):
            continue
        if graph.position(producer) < index:
            removed_before += 1
        graph.remove(producer)
        pending.extend(t for t in producer.inputs if t is not None)
    return removed_before


def _first_result(graph: Graph, node: Node, table: Rules, ctx: Any) -> tuple[Rule | None, Result]:
    """The first rule that rewrites ``node`` and its result, or ``None``s."""
    for rule in table.for_op(node.op):
        # Rules matched by op were already picked by dispatch; only predicates need a call.
        if isinstance(rule.match, Op | set | frozenset) or rule.match(node):
            result = rule.rewrite(graph, node, ctx)
            if result is not None:
                return rule, result
    return None, None


def rewrite_graph(graph: Graph, table: Rules, ctx: Any = None, *, max_sweeps: int = 64) -> bool:
    """Run ``table`` over ``graph`` to a fixed point; True when anything changed."""
    progress = False
    for _ in range(max_sweeps):
        changed = False
        index, local = 0, 0
        while index < len(graph.nodes):
            node = graph.nodes[index]
            rule, result = _first_result(graph, node, table, ctx)
            if rule is None:
                index, local = index + 1, 0
                continue
            local += 1
            if local > MAX_LOCAL_REWRITES:
                raise RewriteError(f"{rule.name} keeps rewriting {node!r} (no fixed point)")
            # Stay at the replacement's first node so the rules see it too.
            index -= _commit(graph, node, index, result, rule)
            changed = True
        if not changed:
            return progress
        progress = True
    raise RewriteError(f"no fixed point after {max_sweeps} sweeps")


__all__ = [
    "Match",
    "Replacement",
    "RewriteError",
    "Rule",
    "Rules",
    "rewrite_graph",
    "rules",
]
