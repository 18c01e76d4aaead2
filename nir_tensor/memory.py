"""Memory planning: one arena for a compiled subgraph, by liveness.

Mirrors TFLite's ``ArenaPlanner``/``GreedyMemoryPlanner`` (sort buffers by size, place each at
the lowest offset that does not overlap a buffer alive at the same time) plus the aliasing a
lowered graph asks for:

* **views** (``nir_tensor.params`` view records, made by ``lower_views``): a part lives at its
  recorded byte offset inside its base and gets no buffer of its own;
* **in place**: an element-wise node may write its output over an input that dies at that
  node (same bytes, same layout, no other tensor sharing the buffer), for the ops in
  ``inplace_ops``;
* **contiguity**: a driver may ask for tensor ``b`` to start right after tensor ``a`` (etnaviv
  v7 reads an ADD's two inputs as one buffer, etnaviv-ml.md §1 "ADD / SUB");
* **alignment** of every buffer's start (a driver's DMA or BO rule).

A tensor is live from the node that produces it (graph inputs: from the start) to its last
reader (graph outputs: to the end), both included, since a node reads its inputs while it
writes its outputs. A buffer is live while any tensor in it is. Constants are not planned:
they live in the driver's weight buffers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from .ir import Graph, Op, Tensor
from .params import ConcatView, ReshapeView
from .physical import nbytes, view_parts, view_span

# Element-wise ops whose reference semantics allow writing over an input element by element.
INPLACE_OPS = frozenset(
    {Op.ADD, Op.SUB, Op.MUL, Op.CLAMP, Op.ABS, Op.LOGISTIC, Op.TANH, Op.HARD_SWISH, Op.QUANTIZE}
)


class PlanError(ValueError):
    """A request the planner cannot honour (a contiguity pair that is already an alias)."""


@dataclass(frozen=True, slots=True)
class Buffer:
    """One allocation of the arena and the tensors that live in it."""

    offset: int
    size: int
    first: int  # first node index at which some tensor in it is live
    last: int
    tensors: tuple[Tensor, ...]


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    offsets: Mapping[Tensor, int]  # absolute byte offset of every planned tensor
    sizes: Mapping[Tensor, int]
    lifetimes: Mapping[Tensor, tuple[int, int]]
    parents: Mapping[Tensor, tuple[Tensor, int]]  # alias -> (base, byte offset in base)
    buffers: tuple[Buffer, ...]
    inplace: tuple[tuple[Tensor, Tensor], ...] = field(default=())  # (input, output)
    peak: int = 0  # arena size
    naive: int = 0  # every tensor in its own buffer
    live_peak: int = 0  # the most bytes live at once: no plan can do better

    def root(self, t: Tensor) -> Tensor:
        while t in self.parents:
            t = self.parents[t][0]
        return t

    def format(self) -> str:
        views = sum(1 for t in self.parents if all(t is not o for _, o in self.inplace))
        return (
            f"arena {self.peak} bytes in {len(self.buffers)} buffers "
            f"(naive {self.naive}, live peak {self.live_peak}); "
            f"{views} aliases, {len(self.inplace)} in place"
        )


def _align(x: int, alignment: int) -> int:
    return -(-x // alignment) * alignment


def _lifetimes(graph: Graph, tensors: Sequence[Tensor]) -> dict[Tensor, tuple[int, int]]:
    end = len(graph.nodes)
    first: dict[Tensor, int] = {t: 0 for t in graph.inputs}
    last: dict[Tensor, int] = {}
    for i, node in enumerate(graph.nodes):
        for t in node.outputs:
            first.setdefault(t, i)
        for t in node.inputs:
            if t is not None and not t.is_constant:
                last[t] = i
    for t in graph.outputs:
        last[t] = end
    return {t: (first[t], max(last.get(t, first[t]), first[t])) for t in tensors}


def _view_parents(graph: Graph, spans: dict[Tensor, int]) -> dict[Tensor, tuple[Tensor, int]]:
    """Every view part's (base, offset); a strided part's span replaces its size.

    A concatenation part that is already a same-shape reshape view of a tensor (a byte
    reinterpretation) places that tensor in the concatenation instead.
    """
    parents: dict[Tensor, tuple[Tensor, int]] = {}
    whole: set[Tensor] = set()  # parts that alias their whole base at offset 0
    for node in graph:
        strided = getattr(node.params, "strided", False)
        for part, base, begin, offset in view_parts(node):
            while isinstance(node.params, ConcatView) and part in whole:
                part = parents[part][0]
            if part in parents:
                raise PlanError(f"{part!r} is a view of two tensors")
            parents[part] = (base, offset)
            if isinstance(node.params, ReshapeView) and part.shape == base.shape:
                whole.add(part)
            if strided:
                spans[part] = view_span(base, part, begin, strided=True)
    return parents


@dataclass(slots=True)
class _Groups:
    """Buffers under construction: every tensor's root and its offset in the root."""

    parents: dict[Tensor, tuple[Tensor, int]]
    sizes: dict[Tensor, int]
    lifetimes: dict[Tensor, tuple[int, int]]

    def resolve(self, t: Tensor) -> tuple[Tensor, int]:
        offset = 0
        seen = set()
        while t in self.parents:
            if id(t) in seen:
                raise PlanError(f"alias cycle through {t!r}")
            seen.add(id(t))
            t, off = self.parents[t]
            offset += off
        return t, offset

    def members(self) -> dict[Tensor, list[Tensor]]:
        groups: dict[Tensor, list[Tensor]] = {}
        for t in self.sizes:
            groups.setdefault(self.resolve(t)[0], []).append(t)
        return groups

    def span(self, members: Iterable[Tensor]) -> tuple[int, int]:
        spans = [self.lifetimes[t] for t in members]
        return min(a for a, _ in spans), max(b for _, b in spans)


def _plan_inplace(
    graph: Graph, groups: _Groups, inplace_ops: frozenset[Op], pinned: set[Tensor]
) -> list[tuple[Tensor, Tensor]]:
    pairs = []
    # A graph input is the caller's data; never write over it. (A graph output lives to the
    # end, so it never dies at a node and is never written over either.)
    graph_inputs = {id(t) for t in graph.inputs}
    members = groups.members()
    for i, node in enumerate(graph.nodes):
        if node.op not in inplace_ops or len(node.outputs) != 1:
            continue
        out = node.output
        if out in groups.parents or out in pinned:
            continue
        for x in node.inputs:
            if x is None or x.is_constant or id(x) in graph_inputs or x in pinned:
                continue
            root, _ = groups.resolve(x)
            others = [m for m in members.get(root, []) if m is not x]
            if any(groups.lifetimes[m][1] >= i for m in others):
                continue  # another tensor in this buffer is still read: do not clobber it
            if groups.lifetimes[x][1] != i or groups.sizes[x] != groups.sizes[out]:
                continue
            if x.shape != out.shape or x.layout != out.layout:
                continue
            groups.parents[out] = (x, 0)
            members[root].append(out)
            members.pop(out, None)
            pairs.append((x, out))
            break
    return pairs


def _place(extents: dict[Tensor, int], spans: dict[Tensor, tuple[int, int]], alignment: int):
    """Greedy placement: biggest first, lowest free aligned offset among overlapping buffers."""
    order = sorted(extents, key=lambda r: (-extents[r], spans[r][0]))
    placed: list[tuple[int, int, Tensor]] = []  # (offset, end, root)
    offsets: dict[Tensor, int] = {}
    for root in order:
        first, last = spans[root]
        busy = sorted(
            (o, e) for o, e, other in placed if spans[other][0] <= last and first <= spans[other][1]
        )
        offset = 0
        for o, e in busy:
            if offset + extents[root] <= o:
                break
            offset = max(offset, _align(e, alignment))
        offsets[root] = offset
        placed.append((offset, offset + extents[root], root))
    return offsets


def plan_memory(
    graph: Graph,
    *,
    alignment: int = 1,
    contiguous: Sequence[tuple[Tensor, Tensor]] = (),
    inplace_ops: frozenset[Op] = INPLACE_OPS,
) -> MemoryPlan:
    """Assign every non-constant tensor of ``graph`` a byte offset in one arena.

    ``contiguous`` pairs ``(a, b)`` place ``b`` right after ``a`` (at ``a`` 's size rounded up
    to ``alignment``); both must own their buffers (not be views). ``inplace_ops`` lists the
    ops allowed to write over a dying input (empty: never).
    """
    assert alignment >= 1
    tensors = [t for t in graph.tensors() if not t.is_constant]
    sizes = {t: nbytes(t) for t in tensors}
    spans_in_base = dict(sizes)  # bytes a tensor covers inside its buffer
    lifetimes = _lifetimes(graph, tensors)
    parents = _view_parents(graph, spans_in_base)
    pinned: set[Tensor] = set()
    for a, b in contiguous:
        for t in (a, b):
            if t not in sizes:
                raise PlanError(f"{t!r} is not a planned tensor")
            if t in parents:
                raise PlanError(f"{t!r} is already a view; it cannot be placed contiguously")
        parents[b] = (a, _align(sizes[a], alignment))
        pinned.update((a, b))
    groups = _Groups(parents, sizes, lifetimes)
    inplace = _plan_inplace(graph, groups, frozenset(inplace_ops), pinned)
    members = groups.members()
    extents, spans, within = {}, {}, {}
    for root, ts in members.items():
        for t in ts:
            within[t] = groups.resolve(t)[1]
        extents[root] = max(within[t] + spans_in_base[t] for t in ts)
        spans[root] = groups.span(ts)
    offsets = _place(extents, spans, alignment)
    buffers = tuple(
        Buffer(offsets[r], extents[r], spans[r][0], spans[r][1], tuple(members[r]))
        for r in sorted(members, key=lambda r: offsets[r])
    )
    steps = range(len(graph.nodes) + 1)
    live_peak = max(
        (sum(extents[r] for r in members if spans[r][0] <= k <= spans[r][1]) for k in steps),
        default=0,
    )
    return MemoryPlan(
        offsets=MappingProxyType({t: offsets[groups.resolve(t)[0]] + within[t] for t in tensors}),
        sizes=MappingProxyType(sizes),
        lifetimes=MappingProxyType(lifetimes),
        parents=MappingProxyType(dict(parents)),
        buffers=buffers,
        inplace=tuple(inplace),
        peak=max((b.offset + b.size for b in buffers), default=0),
        naive=sum(_align(s, alignment) for s in sizes.values()),
        live_peak=live_peak,
    )


__all__ = ["INPLACE_OPS", "Buffer", "MemoryPlan", "PlanError", "plan_memory"]
