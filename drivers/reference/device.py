"""The reference device: the exact evaluator behind the Gallium interface (Mesa: softpipe).

It compiles a subgraph to its nir_tensor graph (serialized through ``nir_tensor.serialize``),
and invoking runs :class:`nir_tensor.evaluate.Evaluator`. Every driver is compared against it.
With a lowering pipeline (``reference:<pipeline>``) the graph is lowered before it is stored,
so the evaluator runs the lowered graph; the pass timings are kept on the subgraph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ...gallium.device import DeviceError, MlContext, MlDevice, MlSubgraph
from ...gallium.operation import PipeMlOperation
from ...gallium.tensor import ElementType
from ...nir_tensor import serialize
from ...nir_tensor.builder import build_graph, pipe_from_tensor
from ...nir_tensor.evaluate import Evaluator, kernel_problem
from ...nir_tensor.ir import Graph
from ...nir_tensor.pipeline import Pipeline, PipelineResult, run_pipeline

DRIVER = "reference"
ACTIVATION_TYPES = (ElementType.UINT8, ElementType.INT8, ElementType.INT16)


def rule_activation_types(op: PipeMlOperation) -> str | None:
    """Activations are uint8, int8 or int16."""
    for t in (op.inputs[0], *op.outputs):
        if t is not None and not t.is_constant and t.type not in ACTIVATION_TYPES:
            return f"{t.type.short} activations"
    return None


def rule_has_kernel(op: PipeMlOperation) -> str | None:
    """The evaluator has an exact kernel for the operation and its parameters."""
    graph = build_graph([op])
    return kernel_problem(graph.nodes[0])


RULES = (rule_activation_types, rule_has_kernel)


class ReferenceSubgraph(MlSubgraph):
    driver = DRIVER

    def __init__(self, graph: Graph, lowering: PipelineResult | None = None) -> None:
        self.graph = graph
        self.lowering = lowering  # the pipeline run that produced ``graph``, if any
        self.inputs = tuple(pipe_from_tensor(t) for t in graph.inputs)
        self.outputs = tuple(pipe_from_tensor(t) for t in graph.outputs)

    def serialize(self) -> bytes:
        return serialize.dumps(self.graph, DRIVER)

    @classmethod
    def deserialize(cls, blob: bytes) -> ReferenceSubgraph:
        graph, _ = serialize.loads(blob, DRIVER)
        return cls(graph)


class ReferenceContext(MlContext):
    def __init__(self) -> None:
        self._evaluators: dict[int, Evaluator] = {}
        self._results: dict[int, list[np.ndarray]] = {}

    def subgraph_deserialize(self, blob: bytes) -> ReferenceSubgraph:
        return ReferenceSubgraph.deserialize(blob)

    def subgraph_invoke(self, subgraph: MlSubgraph, inputs: Mapping[int, np.ndarray]) -> None:
        assert isinstance(subgraph, ReferenceSubgraph)
        evaluator = self._evaluators.get(id(subgraph))
        if evaluator is None:  # prepared lazily on the first invoke, like hardware buffers
            evaluator = self._evaluators[id(subgraph)] = Evaluator(subgraph.graph)
        graph = subgraph.graph
        missing = [t.index for t in graph.inputs if t.index not in inputs]
        if missing:
            raise DeviceError(f"reference: no data for input tensor(s) {missing}")
        values = evaluator.run([inputs[t.index] for t in graph.inputs])
        self._results[id(subgraph)] = [values[t] for t in graph.outputs]

    def subgraph_read_outputs(self, subgraph: MlSubgraph) -> list[np.ndarray]:
        if id(subgraph) not in self._results:
            raise DeviceError("reference: read_outputs before invoke")
        return [
            v.reshape(p.shape)
            for v, p in zip(self._results[id(subgraph)], subgraph.outputs, strict=True)
        ]

    def destroy(self) -> None:
        self._evaluators.clear()
        self._results.clear()


class ReferenceDevice(MlDevice):
    name = DRIVER

    def __init__(self, pipeline: Pipeline | None = None) -> None:
        self.pipeline = pipeline
        if pipeline is not None:
            self.name = f"{DRIVER}:{pipeline.name}"

    def operation_supported(self, op: PipeMlOperation) -> str | None:
        for rule in RULES:
            reason = rule(op)
            if reason:
                return reason
        return None

    def subgraph_create(self, ops: Sequence[PipeMlOperation]) -> ReferenceSubgraph:
        graph = build_graph(ops)
        if self.pipeline is None:
            return ReferenceSubgraph(graph)
        lowered = run_pipeline(graph, self.pipeline)
        return ReferenceSubgraph(lowered.graph, lowered)

    def create_context(self) -> ReferenceContext:
        return ReferenceContext()
