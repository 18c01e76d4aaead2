"""Read ``.tflite`` files with the official schema bindings into pipe tensors and raw operators.

No hand-written flatbuffer parsing: ``ai_edge_litert.schema_py_generated`` (the schema's object
API) unpacks the model; this module validates what it got and turns every problem into a
:class:`ModelError` with one line naming the file and the place (tensor or op index and name).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ...gallium.tensor import ElementType, PipeTensor, Quant, to_dims

# TFLite TensorType code -> (name, element type or None when not representable).
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_ELEMENT_TYPES = {
    schema.TensorType.UINT8: ElementType.UINT8,
    schema.TensorType.INT8: ElementType.INT8,
    schema.TensorType.INT16: ElementType.INT16,
    schema.TensorType.INT32: ElementType.INT32,
    schema.TensorType.INT64: ElementType.INT64,
    schema.TensorType.FLOAT32: ElementType.FLOAT32,
}
_SHORT = {"FLOAT16": "f16", "BOOL": "b", "STRING": "str", "FLOAT64": "f64"}
BUILTIN_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


class ModelError(ValueError):
    """A model that cannot be read; the message is one line naming the problem and where."""


@dataclass(frozen=True, slots=True)
class TfliteTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    type_name: str
    pipe: PipeTensor | None  # None when the tensor cannot be a pipe tensor
    problem: str | None = None  # why it cannot

    @property
    def short_type(self) -> str:
        if self.pipe is not None:
            return self.pipe.type.short
        return _SHORT.get(self.type_name, self.type_name.lower())

    def describe(self) -> str:
        return f"{self.index}({self.short_type})"


@dataclass(frozen=True, slots=True)
class TfliteOp:
    index: int
    name: str  # builtin name (CONV_2D) or the custom code
    version: int
    inputs: tuple[int, ...]  # -1 for an absent optional input
    outputs: tuple[int, ...]
    options: Any  # the schema's options object, or None
    is_custom: bool = False

    @property
    def label(self) -> str:
        return f"op {self.index} ({self.name})"


@dataclass(frozen=True, slots=True)
class TfliteModel:
    path: str
    tensors: tuple[TfliteTensor, ...]
    ops: tuple[TfliteOp, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str = ""

    def tensor(self, index: int) -> TfliteTensor:
        return self.tensors[index]

    def pipe(self, index: int) -> PipeTensor | None:
        return None if index < 0 else self.tensors[index].pipe

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def quant_from_lists(
    scales: list[float], zero_points: list[int], quantized_dimension: int, rank: int
) -> Quant:
    """A :class:`Quant` from TFLite's affine quantization lists (shared with the delegate, which
    reads them from ``TfLiteAffineQuantization``)."""
    if not scales:
        return Quant()
    zps = list(zero_points) or [0] * len(scales)
    if len(zps) == 1 and len(scales) > 1:
        zps = zps * len(scales)
    axis = int(quantized_dimension) + 4 - rank
    per_scale = tuple(scales) if len(set(scales)) > 1 else None
    per_zp = tuple(zps) if len(set(zps)) > 1 else None
    return Quant(scales[0], zps[0], per_scale, per_zp, axis)


def _quant(q: Any, rank: int) -> Quant:
    if q is None or q.scale is None or len(q.scale) == 0:
        return Quant()
    scales = [float(s) for s in q.scale]
    zps = [int(z) for z in q.zeroPoint] if q.zeroPoint is not None else []
    return quant_from_lists(scales, zps, int(q.quantizedDimension or 0), rank)


def element_type(type_name: str) -> ElementType | None:
    """The element type of a TFLite type name (``UINT8``...), None when not representable."""
    return _ELEMENT_TYPES.get(getattr(schema.TensorType, type_name, -1))


def tensor_record(
    index: int,
    name: str,
    shape: tuple[int, ...],
    type_name: str,
    quant: Quant,
    data: np.ndarray | None,
) -> TfliteTensor:
    """The record of one tensor whose fields are already read (``data`` typed and shaped, or
    None). Shared by the file reader and the delegate's view of a ``TfLiteContext``."""
    etype = element_type(type_name)
    if etype is None:
        return TfliteTensor(index, name, shape, type_name, None, f"type {type_name}")
    if len(shape) > 4:
        return TfliteTensor(index, name, shape, type_name, None, f"rank {len(shape)} > 4")
    pipe = PipeTensor(
        index=index,
        dims=to_dims(shape),
        rank=len(shape),
        type=etype,
        quant=quant,
        data=data,
        name=name,
    )
    return TfliteTensor(index, name, shape, type_name, pipe)


def _tensor(model: Any, raw: bytes, index: int, t: Any, where: str, user: str) -> TfliteTensor:
    name = t.name.decode(errors="replace") if isinstance(t.name, bytes) else (t.name or "")
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    type_name = _TYPE_NAMES.get(t.type, f"type{t.type}")
    label = f"{where}: {user}tensor {index} '{name}'"
    signature = [int(d) for d in t.shapeSignature] if t.shapeSignature is not None else []
    # A dynamic batch (signature -1, static size 1) is how Keras exports every model; LiteRT runs
    # it at batch 1 unless resized, and so do we. Any other dynamic dimension is refused.
    dynamic = [i for i, d in enumerate(signature) if d < 0]
    if dynamic and (dynamic != [0] or not shape or shape[0] != 1):
        raise ModelError(f"{label} has a dynamic shape {signature}")
    if any(d < 0 for d in shape):
        raise ModelError(f"{label} has a negative dimension {list(shape)}")
    if t.buffer < 0 or t.buffer >= len(model.buffers or ()):
        raise ModelError(f"{label} refers to buffer {t.buffer} of {len(model.buffers or ())}")
    etype = _ELEMENT_TYPES.get(t.type)
    if etype is None:
        return TfliteTensor(index, name, shape, type_name, None, f"type {type_name}")
    if len(shape) > 4:
        return TfliteTensor(index, name, shape, type_name, None, f"rank {len(shape)} > 4")
    buf = model.buffers[t.buffer]
    data = None
    if buf.offset and buf.offset > 1:  # large models keep data outside the flatbuffer
        if buf.offset + buf.size > len(raw):
            raise ModelError(f"{label}: buffer {t.buffer} lies past the end of the file")
        data = np.frombuffer(raw, np.uint8, buf.size, buf.offset)
    elif buf.data is not None and len(buf.data):
        data = np.asarray(buf.data, dtype=np.uint8)
    if data is not None:
        need = int(np.prod(shape, dtype=np.int64)) * etype.size
        if data.size != need:
            raise ModelError(
                f"{label}: buffer holds {data.size} bytes, shape {list(shape)} needs {need}"
            )
        data = data.view(etype.numpy).reshape(shape).copy()
        data.setflags(write=False)
    return tensor_record(index, name, shape, type_name, _quant(t.quantization, len(shape)), data)


def _op_name(model: Any, op: Any, index: int) -> tuple[str, int, bool]:
    codes = model.operatorCodes or []
    if not 0 <= op.opcodeIndex < len(codes):
        raise ModelError(
            f"op {index}: opcode index {op.opcodeIndex} out of range ({len(codes)} operator codes)"
        )
    code = codes[op.opcodeIndex]
    builtin = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
    version = int(code.version or 1)
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode
        custom = custom.decode(errors="replace") if isinstance(custom, bytes) else str(custom)
        return custom, version, True
    if builtin not in BUILTIN_NAMES:
        raise ModelError(f"op {index}: unknown builtin operator code {builtin}")
    return BUILTIN_NAMES[builtin], version, False


def parse_model(raw: bytes, path: str = "<memory>") -> TfliteModel:
    """Parse and validate a TFLite flatbuffer."""
    where = os.path.basename(path)
    if len(raw) < 8:
        raise ModelError(f"{where}: not a TFLite model ({len(raw)} bytes)")
    if raw[4:8] != b"TFL3":
        raise ModelError(
            f"{where}: not a TFLite model (file identifier {raw[4:8]!r}, expected b'TFL3')"
        )
    try:
        model = schema.ModelT.InitFromPackedBuf(raw, 0)
    except Exception as e:  # the generated code raises struct.error, IndexError, ...
        raise ModelError(
            f"{where}: corrupt or truncated flatbuffer ({type(e).__name__}: {e})"
        ) from None
    if not model.subgraphs:
        raise ModelError(f"{where}: the model has no subgraphs")
    sg = model.subgraphs[0]
    raw_tensors = sg.tensors or []
    ops, first_user = [], {}
    for i, op in enumerate(sg.operators or []):
        name, version, custom = _op_name(model, op, i)
        ins = tuple(int(x) for x in (op.inputs if op.inputs is not None else ()))
        outs = tuple(int(x) for x in (op.outputs if op.outputs is not None else ()))
        for t in (*ins, *outs):
            if not -1 <= t < len(raw_tensors):
                raise ModelError(
                    f"{where}: op {i} ({name}) refers to tensor {t} of {len(raw_tensors)}"
                )
            first_user.setdefault(t, f"op {i} ({name}): ")
        ops.append(TfliteOp(i, name, version, ins, outs, op.builtinOptions, custom))
    tensors = tuple(
        _tensor(model, raw, i, t, where, first_user.get(i, "")) for i, t in enumerate(raw_tensors)
    )
    graph_ins = tuple(int(x) for x in (sg.inputs if sg.inputs is not None else ()))
    graph_outs = tuple(int(x) for x in (sg.outputs if sg.outputs is not None else ()))
    for t in (*graph_ins, *graph_outs):
        if not 0 <= t < len(tensors):
            raise ModelError(f"{where}: graph input/output {t} out of range")
    desc = (
        model.description.decode(errors="replace")
        if isinstance(model.description, bytes)
        else (model.description or "")
    )
    return TfliteModel(path, tensors, tuple(ops), graph_ins, graph_outs, desc)


def load_model(path: str | os.PathLike) -> TfliteModel:
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror}") from None
    return parse_model(raw, path)
