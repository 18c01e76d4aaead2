"""Activation passes: fuse a CLAMP (RELU, RELU6, RELU_N1_TO_1) into the operation producing
its input, and drop clamps that the output quantization already implies.

A pipe CLAMP is a clamp in its output's quantized domain, but TFLite's RELU also requantizes
when its input and output quantization differ; only a pure clamp (same type and
quantization on both sides) is fused, so the producer's single rounding is unchanged. Two
clamps in a row are one clamp on the intersection of their bounds, which is exact as long as
the bounds overlap. Rocket never programs an activation and relies on the quantized range
instead (rocket-nvdla.md §3, "Activations"), which is what ``opt_drop_implied_clamp`` detects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ...gallium.operation import Clamp
from ..ir import Graph, Node, Op
from ..rewrite import Replacement, rewrite_graph, rules
from .common import same_quant, sole_consumer

# Ops whose params carry an output clamp (``params.clamp``); CLAMP's params are the clamp.
CLAMPED_OPS = frozenset(
    {Op.CONV, Op.FULLY_CONNECTED, Op.POOL, Op.ADD, Op.SUB, Op.MUL, Op.CONV_ADD, Op.CLAMP}
)


def clamp_of(node: Node) -> Clamp | None:
    return node.params if node.op is Op.CLAMP else node.params.clamp


def with_clamp(node: Node, clamp: Clamp | None) -> Node:
    if node.op is Op.CLAMP:
        return node.with_(params=clamp)
    return node.with_(params=dataclasses.replace(node.params, clamp=clamp))


def intersect(a: Clamp | None, b: Clamp | None) -> Clamp | None:
    """The clamp equal to ``a`` then ``b``; None when they do not overlap."""
    if a is None or b is None:
        return a or b
    lo, hi = max(a.lo, b.lo), min(a.hi, b.hi)
    return Clamp(lo, hi) if lo <= hi else None


def is_implied(clamp: Clamp | None, node: Node) -> bool:
    """The clamp covers the output type's whole range, so saturation already does it."""
    t = node.output.dtype
    return clamp is not None and clamp.lo <= t.qmin and clamp.hi >= t.qmax


@dataclass(frozen=True, slots=True)
class _FuseCtx:
    into: frozenset[Op]


def _fuse(graph: Graph, node: Node, ctx: _FuseCtx) -> list[Node] | None:
    producer = graph.producer(node.input)
    if producer is None or producer.op not in ctx.into or len(producer.outputs) != 1:
        return None
    if sole_consumer(graph, node.input) is not node or not same_quant(node.input, node.output):
        return None
    if node.input.dtype is not producer.output.dtype:
        return None
    out = node.output.dtype
    # The type's range is a clamp too: a CLAMP may state bounds beyond it, a fused one may not
    # (the kernels saturate to the fused bounds, then store in the type).
    a, b = intersect(clamp_of(producer), Clamp(out.qmin, out.qmax)), node.params
    merged = intersect(a, b)
    if merged is None:
        return None  # disjoint bounds: the result is a constant; leave it
    fused = with_clamp(producer, merged).with_(outputs=node.outputs, origin=producer.origin)
    return [fused]


FUSE_RULES = rules((Op.CLAMP, _fuse))


def opt_fuse_activation(graph: Graph, *, into: frozenset[Op] = CLAMPED_OPS) -> bool:
    """Fuse each pure CLAMP into the node producing its input, when that node has no other
    user and its op is in ``into`` (the ops whose clamp the driver can program).

    Preconditions: CLAMP params are ``Clamp`` records (asserted). Exact: a clamp after the
    producer's rounding, or the intersection of two overlapping clamps, is the same clamp.
    """
    assert into <= CLAMPED_OPS, f"cannot fuse into {sorted(o.name for o in into - CLAMPED_OPS)}"
    assert all(isinstance(n.params, Clamp) for n in graph if n.op is Op.CLAMP)
    return rewrite_graph(graph, FUSE_RULES, _FuseCtx(frozenset(into)))


def _drop_fused(graph: Graph, node: Node, ctx: None) -> list[Node] | None:
    if node.op is Op.CLAMP or not is_implied(clamp_of(node), node):
        return None
    return [with_clamp(node, None)]


def _drop_identity_clamp(graph: Graph, node: Node, ctx: None) -> Replacement | None:
    if not is_implied(node.params, node) or not same_quant(node.input, node.output):
        return None
    if graph.is_output(node.output) or node.input.is_constant:
        return None  # a graph output keeps its producer
    return Replacement((), ((node.output, node.input),))


DROP_RULES = rules((CLAMPED_OPS - {Op.CLAMP}, _drop_fused), (Op.CLAMP, _drop_identity_clamp))


def opt_drop_implied_clamp(graph: Graph) -> bool:
    """Drop clamps whose bounds cover the output type's range: a fused clamp becomes None, and
    a pure CLAMP node (same quantization in and out) disappears (its readers read its input).

    A ReLU6 into an output quantized over [0, 6] is the common case. Preconditions: none.
    Exact: saturation to the type range is what the clamp would have done.
    """
    return rewrite_graph(graph, DROP_RULES)
