"""Write ``.tflite`` models through the official schema object API (no converter).

:class:`ModelBuilder` adds tensors and operators and packs a flatbuffer with the ``TFL3``
identifier. The conformance generator and the embedded demo model are built with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ...gallium.tensor import ElementType

_TFLITE_TYPES = {
    ElementType.UINT8: schema.TensorType.UINT8,
    ElementType.INT8: schema.TensorType.INT8,
    ElementType.INT16: schema.TensorType.INT16,
    ElementType.INT32: schema.TensorType.INT32,
    ElementType.INT64: schema.TensorType.INT64,
    ElementType.FLOAT32: schema.TensorType.FLOAT32,
}

# Options table type per builtin (the union tag in the schema).
_OPTION_TYPES = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "ADD": "AddOptions",
    "SUB": "SubOptions",
    "MUL": "MulOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "CONCATENATION": "ConcatenationOptions",
    "SPLIT": "SplitOptions",
    "SPLIT_V": "SplitVOptions",
    "PAD": "PadOptions",
    "PADV2": "PadV2Options",
    "RESHAPE": "ReshapeOptions",
    "SQUEEZE": "SqueezeOptions",
    "TRANSPOSE": "TransposeOptions",
    "STRIDED_SLICE": "StridedSliceOptions",
    "RESIZE_BILINEAR": "ResizeBilinearOptions",
    "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions",
    "SOFTMAX": "SoftmaxOptions",
    "MEAN": "ReducerOptions",
    "HARD_SWISH": "HardSwishOptions",
    "QUANTIZE": "QuantizeOptions",
    "ABS": "AbsOptions",
}


def options(builtin: str, **fields: Any) -> Any:
    """A schema options object for ``builtin`` with the given fields (schema names)."""
    cls = getattr(schema, _OPTION_TYPES[builtin] + "T")
    obj = cls()
    for k, v in fields.items():
        if not hasattr(obj, k):
            raise AttributeError(f"{cls.__name__} has no field {k}")
        setattr(obj, k, v)
    return obj


class ModelBuilder:
    """Accumulates tensors and operators of one subgraph."""

    def __init__(self, description: str = "mesa_npu generated") -> None:
        self.model = schema.ModelT()
        self.model.version = 3
        self.model.description = description
        self.model.buffers = [schema.BufferT()]  # buffer 0 is the empty sentinel
        self.model.operatorCodes = []
        self.graph = schema.SubGraphT()
        self.graph.tensors, self.graph.operators = [], []
        self._codes: dict[tuple[str, int], int] = {}

    def tensor(
        self,
        shape: Sequence[int],
        dtype: ElementType,
        *,
        scale: float | Sequence[float] | None = None,
        zero_point: int | Sequence[int] = 0,
        axis: int = 0,
        data: np.ndarray | None = None,
        name: str = "",
    ) -> int:
        """Add a tensor (constant when ``data`` is given); returns its index."""
        t = schema.TensorT()
        t.shape = np.asarray(shape, dtype=np.int32)
        t.type = _TFLITE_TYPES[dtype]
        t.name = name or f"t{len(self.graph.tensors)}"
        t.buffer = 0
        if data is not None:
            buf = schema.BufferT()
            arr = np.ascontiguousarray(np.asarray(data, dtype=dtype.numpy).reshape(shape))
            buf.data = arr.view(np.uint8).reshape(-1)
            self.model.buffers.append(buf)
            t.buffer = len(self.model.buffers) - 1
        if scale is not None:
            q = schema.QuantizationParametersT()
            q.scale = np.atleast_1d(np.asarray(scale, dtype=np.float32))
            zp = np.atleast_1d(np.asarray(zero_point, dtype=np.int64))
            q.zeroPoint = np.broadcast_to(zp, q.scale.shape).copy() if zp.size == 1 else zp
            q.quantizedDimension = axis
            t.quantization = q
        self.graph.tensors.append(t)
        return len(self.graph.tensors) - 1

    def _opcode(self, builtin: str, version: int) -> int:
        key = (builtin, version)
        if key not in self._codes:
            code = schema.OperatorCodeT()
            value = getattr(schema.BuiltinOperator, builtin)
            code.builtinCode = value
            code.deprecatedBuiltinCode = min(value, 127)
            code.version = version
            self.model.operatorCodes.append(code)
            self._codes[key] = len(self.model.operatorCodes) - 1
        return self._codes[key]

    def op(
        self,
        builtin: str,
        inputs: Sequence[int],
        outputs: Sequence[int],
        opts: Any = None,
        version: int = 1,
    ) -> int:
        """Add an operator; ``opts`` comes from :func:`options`. Returns its index."""
        o = schema.OperatorT()
        o.opcodeIndex = self._opcode(builtin, version)
        o.inputs = np.asarray(inputs, dtype=np.int32)
        o.outputs = np.asarray(outputs, dtype=np.int32)
        if opts is not None:
            o.builtinOptionsType = getattr(schema.BuiltinOptions, _OPTION_TYPES[builtin])
            o.builtinOptions = opts
        self.graph.operators.append(o)
        return len(self.graph.operators) - 1

    def build(self, inputs: Sequence[int], outputs: Sequence[int]) -> bytes:
        self.graph.inputs = np.asarray(inputs, dtype=np.int32)
        self.graph.outputs = np.asarray(outputs, dtype=np.int32)
        self.model.subgraphs = [self.graph]
        fb = flatbuffers.Builder(1024)
        fb.Finish(self.model.Pack(fb), file_identifier=b"TFL3")
        return bytes(fb.Output())
