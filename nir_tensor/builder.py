"""Build a nir_tensor graph from a list of pipe operations (one node per operation)."""

from __future__ import annotations

from collections.abc import Sequence

from ..gallium.device import subgraph_io
from ..gallium.operation import OpType, PipeMlOperation
from ..gallium.tensor import PipeTensor
from .ir import Graph, Node, Op, Tensor

PIPE_TO_OP = {
    OpType.CONVOLUTION: Op.CONV,
    OpType.FULLY_CONNECTED: Op.FULLY_CONNECTED,
    OpType.ADD: Op.ADD,
    OpType.SUBTRACT: Op.SUB,
    OpType.MUL: Op.MUL,
    OpType.POOLING: Op.POOL,
    OpType.MEAN: Op.MEAN,
    OpType.SOFTMAX: Op.SOFTMAX,
    OpType.CLAMP: Op.CLAMP,
    OpType.ABSOLUTE: Op.ABS,
    OpType.LOGISTIC: Op.LOGISTIC,
    OpType.TANH: Op.TANH,
    OpType.HARD_SWISH: Op.HARD_SWISH,
    OpType.QUANTIZE: Op.QUANTIZE,
    OpType.CONCATENATION: Op.CONCAT,
    OpType.SPLIT: Op.SPLIT,
    OpType.PAD: Op.PAD,
    OpType.RESHAPE: Op.RESHAPE,
    OpType.TRANSPOSE: Op.TRANSPOSE,
    OpType.STRIDED_SLICE: Op.STRIDED_SLICE,
    OpType.RESIZE: Op.RESIZE,
}


def tensor_from_pipe(p: PipeTensor) -> Tensor:
    data = None if p.data is None else p.data.reshape(p.dims)
    return Tensor(
        shape=p.dims,
        dtype=p.type,
        quant=p.quant,
        data=data,
        rank=p.rank,
        index=p.index,
        name=p.name,
    )


def build_graph(ops: Sequence[PipeMlOperation]) -> Graph:
    """The graph of ``ops``; its inputs and outputs follow :func:`gallium.subgraph_io`."""
    tensors: dict[int, Tensor] = {}

    def get(p: PipeTensor | None) -> Tensor | None:
        if p is None:
            return None
        if p.index not in tensors:
            tensors[p.index] = tensor_from_pipe(p)
        return tensors[p.index]

    nodes = [
        Node(
            op=PIPE_TO_OP[op.type],
            inputs=tuple(get(t) for t in op.inputs),
            outputs=tuple(get(t) for t in op.outputs),
            params=op.params,
            origin=op.index,
        )
        for op in ops
    ]
    inputs, outputs = subgraph_io(ops)
    return Graph.build(nodes, [get(t) for t in inputs], [get(t) for t in outputs])


def pipe_from_tensor(t: Tensor) -> PipeTensor:
    """The pipe descriptor (without data) of a graph input or output."""
    from ..gallium.tensor import to_dims

    shape = t.shape[4 - t.rank :] if t.rank else ()
    return PipeTensor(
        index=t.index, dims=to_dims(shape), rank=t.rank, type=t.dtype, quant=t.quant, name=t.name
    )
