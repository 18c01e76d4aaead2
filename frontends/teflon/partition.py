"""The two-gate support query and the partitioner.

Gate one is the frontend (:func:`mapping.map_operation`: can we express the node?), gate two
the device (``operation_supported``: does it run it?). A node is claimed only when both say yes;
the answer, or the first reason for no, is what the support table prints.

Partitions follow TFLite's own delegate partitioning (``PartitionGraphIntoIndependentNodeSubsets``
in ``graph_info.cc``): walk the graph in phases, each taking every ready node of one kind
(claimed or not), so the partitions can run in order without cycles. Each claimed phase is then
cut into connected components. Constants never become partition inputs, and every tensor a
partition produces that is used outside it (or is a model output) becomes a partition output.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ...gallium.device import MlDevice
from ...gallium.operation import PipeMlOperation
from .mapping import map_operation
from .tflite import ModelError, TfliteModel, TfliteOp


@dataclass(frozen=True, slots=True)
class NodeSupport:
    op: TfliteOp
    pipe: PipeMlOperation | None  # the mapped operation (None when gate one said no)
    reason: str | None  # None when both gates accept the node

    @property
    def supported(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class Partition:
    """A connected, acyclic group of claimed nodes, ready for ``subgraph_create``."""

    ops: tuple[PipeMlOperation, ...]
    inputs: tuple[int, ...]  # tensor indices, constants excluded
    outputs: tuple[int, ...]

    @property
    def op_indices(self) -> tuple[int, ...]:
        return tuple(op.index for op in self.ops)


def check_quantized(model: TfliteModel) -> None:
    """Refuse a model with no quantized operation at all (a float model)."""
    for op in model.ops:
        for i in op.inputs[:1]:
            t = model.tensor(i).pipe if i >= 0 else None
            if t is not None and t.type.is_integer and t.quant.scale > 0:
                return
    first = next((op for op in model.ops if not op.is_custom), None)
    where = (
        f": {first.label} takes {model.tensor(first.inputs[0]).type_name.lower()}"
        if first and first.inputs
        else ""
    )
    raise ModelError(
        f"{model.name}: float model, no quantized operation{where}; "
        "teflon runs quantized (uint8/int8) models"
    )


def query_support(model: TfliteModel, device: MlDevice | None) -> list[NodeSupport]:
    """Both gates for every node (no side effects on the device)."""
    result = []
    for op in model.ops:
        pipe = map_operation(op, model)
        if isinstance(pipe, str):
            result.append(NodeSupport(op, None, pipe))
            continue
        reason = device.operation_supported(pipe) if device is not None else None
        result.append(NodeSupport(op, pipe, reason))
    return result


def _producers(model: TfliteModel) -> dict[int, int]:
    return {t: op.index for op in model.ops for t in op.outputs}


def _phases(model: TfliteModel, claimed: set[int]) -> list[list[int]]:
    """Alternating phases of claimed / unclaimed nodes, each node once, in a runnable order."""
    producers = _producers(model)
    pending = [op.index for op in model.ops]
    done: set[int] = set()
    phases: list[list[int]] = []
    want_claimed = bool(pending) and pending[0] in claimed
    while pending:
        phase: list[int] = []
        progress = True
        while progress:
            progress = False
            for idx in list(pending):
                op = model.ops[idx]
                ready = all(
                    producers.get(t, -1) in done or t not in producers for t in op.inputs if t >= 0
                )
                if ready and (idx in claimed) == want_claimed:
                    phase.append(idx)
                    done.add(idx)
                    pending.remove(idx)
                    progress = True
        if phase:
            phases.append(phase)
        want_claimed = not want_claimed
    return phases


def _components(model: TfliteModel, nodes: Sequence[int]) -> list[list[int]]:
    """Connected components (through non-constant tensors) of ``nodes``, in node order."""
    parent = {n: n for n in nodes}

    def find(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    owner: dict[int, int] = {}
    for n in nodes:
        op = model.ops[n]
        for t in (*op.inputs, *op.outputs):
            pipe = model.pipe(t)
            if t < 0 or (pipe is not None and pipe.is_constant):
                continue
            if t in owner:
                parent[find(n)] = find(owner[t])
            else:
                owner[t] = n
    groups: dict[int, list[int]] = {}
    for n in nodes:
        groups.setdefault(find(n), []).append(n)
    return sorted(groups.values(), key=lambda g: g[0])


def make_partition(
    model: TfliteModel,
    support: Sequence[NodeSupport],
    nodes: Iterable[int],
    outputs: Iterable[int] | None = None,
) -> Partition:
    """The partition of ``nodes``. Outputs are the given tensor indices (the delegate gets them
    from TFLite) or, by default, tensors used outside the partition or by the model."""
    nodes = sorted(nodes)
    inside = set(nodes)
    produced = {t for n in nodes for t in model.ops[n].outputs}
    consumed = [t for n in nodes for t in model.ops[n].inputs if t >= 0]
    if outputs is None:
        used_outside = {t for op in model.ops if op.index not in inside for t in op.inputs}
        outputs = [
            t
            for n in nodes
            for t in model.ops[n].outputs
            if t in used_outside or t in model.outputs
        ]
    outputs = tuple(dict.fromkeys(outputs))
    external = set(outputs)
    ops = []
    for n in nodes:
        pipe = support[n].pipe
        assert pipe is not None and support[n].supported, f"node {n} is not claimed"
        outs = tuple(
            dataclasses.replace(t, is_external_output=t.index in external) for t in pipe.outputs
        )
        ops.append(dataclasses.replace(pipe, outputs=outs))
    # Consumers inside must see the same tensor objects as the producers' outputs.
    by_index = {t.index: t for op in ops for t in op.outputs}
    ops = [
        dataclasses.replace(
            op, inputs=tuple(by_index.get(t.index, t) if t is not None else None for t in op.inputs)
        )
        for op in ops
    ]
    inputs = tuple(
        dict.fromkeys(
            t for t in consumed if t not in produced and not model.tensor(t).pipe.is_constant
        )
    )
    return Partition(tuple(ops), inputs, outputs)


def execution_phases(
    model: TfliteModel, support: Sequence[NodeSupport]
) -> list[tuple[bool, list[list[int]]]]:
    """The order TFLite runs the model in once delegated: phases of claimed or unclaimed nodes,
    each ``(claimed, groups)`` where a claimed phase's groups are its partitions (in the order
    :func:`partition` returns them) and an unclaimed phase has one group of CPU nodes."""
    claimed = {s.op.index for s in support if s.supported}
    phases = []
    for phase in _phases(model, claimed):
        if phase[0] in claimed:
            phases.append((True, _components(model, phase)))
        else:
            phases.append((False, [phase]))
    return phases


def partition(model: TfliteModel, support: Sequence[NodeSupport]) -> list[Partition]:
    claimed = {s.op.index for s in support if s.supported}
    parts = []
    for phase in _phases(model, claimed):
        if phase[0] in claimed:
            parts += [make_partition(model, support, c) for c in _components(model, phase)]
    return parts
