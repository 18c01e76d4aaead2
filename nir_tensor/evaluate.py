"""The exact evaluator: the executable definition of every op's integer semantics.

Each op's kernel is bit-identical to LiteRT's reference kernels (``BUILTIN_REF``). A kernel is
built in two steps: ``prepare(node)`` does everything that depends only on the node (multipliers,
weights with zero points removed, gather indices) and returns ``run(values) -> outputs``, which
maps logical NHWC int arrays (constants included, None for an absent input) to the outputs.
:class:`Evaluator` prepares once per graph and runs many times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..util.blas import blas_threads, find_openblas
from .ir import Graph, Node, Op, Tensor
from .kernels import KERNELS

# LiteRT's reference kernels run on one thread; so do ours, whose matrices are small enough
# that extra BLAS threads only add contention (see util/blas.py).
BLAS_THREADS = 1

Run = Callable[[list[np.ndarray | None]], list[np.ndarray]]
Prepare = Callable[[Node], Run]


class EvaluationError(RuntimeError):
    pass


def kernel_problem(node: Node) -> str | None:
    """Why the evaluator cannot run ``node`` (None if it can)."""
    entry = KERNELS.get(node.op)
    if entry is None:
        return f"no reference kernel for {node.op.debug_name}"
    return entry.problem(node) if entry.problem is not None else None


class Evaluator:
    """Runs a graph. Inputs and results are logical NHWC arrays keyed like ``graph.inputs``."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.steps: list[tuple[Node, Run]] = []
        for node in graph.nodes:
            problem = kernel_problem(node)
            if problem:
                raise EvaluationError(f"{node!r}: {problem}")
            self.steps.append((node, KERNELS[node.op].prepare(node)))
        self.blas = find_openblas()

    def run(
        self, inputs: Sequence[np.ndarray] | Mapping[Tensor, np.ndarray], *, keep_all: bool = False
    ) -> dict[Tensor, np.ndarray]:
        """Values of the graph outputs (of every tensor with ``keep_all``)."""
        with blas_threads(BLAS_THREADS, self.blas):
            return self._run(inputs, keep_all=keep_all)

    def _run(
        self, inputs: Sequence[np.ndarray] | Mapping[Tensor, np.ndarray], *, keep_all: bool
    ) -> dict[Tensor, np.ndarray]:
        if not isinstance(inputs, Mapping):
            if len(inputs) != len(self.graph.inputs):
                raise EvaluationError(f"{len(inputs)} inputs for {len(self.graph.inputs)}")
            inputs = dict(zip(self.graph.inputs, inputs, strict=True))
        values: dict[int, np.ndarray] = {}
        for t, v in inputs.items():
            values[id(t)] = np.asarray(v, dtype=t.dtype.numpy).reshape(t.shape)
        keep = {id(t) for t in self.graph.outputs}
        last_use = {}
        for i, (node, _) in enumerate(self.steps):
            for t in node.inputs:
                if t is not None:
                    last_use[id(t)] = i
        for i, (node, run) in enumerate(self.steps):
            args = [
                None if t is None else (t.data if t.is_constant else values[id(t)])
                for t in node.inputs
            ]
            for t, v in zip(node.outputs, run(args), strict=True):
                values[id(t)] = v.reshape(t.shape)
            if not keep_all:  # free what no later node needs
                for t in node.inputs:
                    if t is not None and last_use.get(id(t)) == i and id(t) not in keep:
                        values.pop(id(t), None)
        tensors = self.graph.tensors() if keep_all else self.graph.outputs
        return {t: values[id(t)] for t in tensors if id(t) in values}


def evaluate(graph: Graph, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """One-shot evaluation: the graph outputs in order."""
    result = Evaluator(graph).run(inputs)
    return [result[t] for t in graph.outputs]


__all__ = ["EvaluationError", "Evaluator", "Op", "evaluate", "kernel_problem"]
