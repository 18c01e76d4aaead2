"""The support table and partition summary, printed like Teflon's ``TEFLON_DEBUG=verbose``."""

from __future__ import annotations

from collections.abc import Sequence

from ai_edge_litert import schema_py_generated as schema

from .partition import NodeSupport, Partition
from .tflite import TfliteModel

_ACTIVATIONS = {
    v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")
}


def _extras(node: NodeSupport) -> str:
    opts = node.op.options
    parts = []
    act = getattr(opts, "fusedActivationFunction", 0)
    if act:
        parts.append(f"act: {_ACTIVATIONS.get(act, act).lower()}")
    dil = (getattr(opts, "dilationHFactor", 1) or 1, getattr(opts, "dilationWFactor", 1) or 1)
    if dil != (1, 1):
        parts.append(f"dilation: {dil[0]}x{dil[1]}")
    return (" " + " ".join(parts)) if parts else ""


def format_support_table(model: TfliteModel, support: Sequence[NodeSupport]) -> str:
    lines = [f"{'idx':>4} {'type':<24} {'ver':<4} {'support':<44} tensors"]
    for node in support:
        op = node.op
        ins = " ".join(model.tensor(t).describe() for t in op.inputs if t >= 0)
        outs = " ".join(model.tensor(t).describe() for t in op.outputs)
        status = "supported" if node.supported else node.reason
        lines.append(
            f"{op.index:>4} {op.name[:24]:<24} v{op.version:<3} {status:<44} "
            f"in: {ins} out: {outs}{_extras(node)}"
        )
    return "\n".join(lines)


def format_partitions(partitions: Sequence[Partition], total_ops: int) -> str:
    claimed = sum(len(p.ops) for p in partitions)
    lines = [f"partitions: {len(partitions)}, claimed {claimed} of {total_ops} operations"]
    for i, p in enumerate(partitions):
        span = ",".join(map(str, p.op_indices))
        lines.append(f"  {i}: ops [{span}] in: {list(p.inputs)} out: {list(p.outputs)}")
    return "\n".join(lines)
