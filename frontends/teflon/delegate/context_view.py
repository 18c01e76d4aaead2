"""A ``TfLiteContext`` seen as a :class:`TfliteModel`, so the delegate maps nodes with the very
code the standalone tools use (``mapping.map_operation``, ``partition.query_support``,
``partition.make_partition``). Mesa counterpart: ``fill_tensor`` and the parameter reading of
``fill_operation`` in ``src/gallium/frontends/teflon/tfl_device.c``.

* Tensors: type, dims, name, affine quantization (per axis from ``TfLiteAffineQuantization``)
  and constant data, which only ``kTfLiteMmapRo`` tensors have when Prepare runs (copied: the
  view outlives nothing, but compiled subgraphs keep their constants).
* Nodes: the execution plan in order; each becomes a :class:`TfliteOp` whose ``index`` is its
  position in the plan (equal to the TFLite node index unless an earlier delegate replaced
  nodes), with the builtin name, version and a schema options object filled from the node's
  ``builtin_data`` struct, so the mapping reads the same fields it reads from a file.
* Graph inputs and outputs are not in a ``TfLiteContext``; TFLite hands each partition its
  outputs at init, which is all ``make_partition`` needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ..tflite import (
    BUILTIN_NAMES,
    TfliteModel,
    TfliteOp,
    TfliteTensor,
    element_type,
    quant_from_lists,
    tensor_record,
)
from ..writer import options
from .abi import type_names

CONTEXT_PATH = "<TfLiteContext>"


class ContextError(RuntimeError):
    """The context holds something the view cannot represent (one line)."""


@dataclass(frozen=True, slots=True)
class ContextView:
    model: TfliteModel
    node_ids: tuple[int, ...]  # TFLite node index of model.ops[i]

    def position(self, node_id: int) -> int:
        try:
            return self.node_ids.index(node_id)
        except ValueError:
            raise ContextError(f"node {node_id} is not in the execution plan") from None


def int_array(ffi: Any, array: Any) -> tuple[int, ...]:
    """A ``TfLiteIntArray*`` as a tuple (empty for NULL)."""
    if array == ffi.NULL:
        return ()
    return tuple(array.data[0 : array.size])


def execution_plan(ffi: Any, ctx: Any) -> tuple[int, ...]:
    plan_p = ffi.new("TfLiteIntArray **")
    if ctx.GetExecutionPlan(ctx, plan_p) != 0:
        raise ContextError("GetExecutionPlan failed")
    return int_array(ffi, plan_p[0])


# -- tensors ----------------------------------------------------------------------------------


def _quant(ffi: Any, lib: Any, t: Any, rank: int):
    q = t.quantization
    if q.type == lib.kTfLiteAffineQuantization and q.params != ffi.NULL:
        affine = ffi.cast("TfLiteAffineQuantization *", q.params)
        scales = [float(s) for s in affine.scale.data[0 : affine.scale.size]]
        zps = [int(z) for z in affine.zero_point.data[0 : affine.zero_point.size]]
        return quant_from_lists(scales, zps, affine.quantized_dimension, rank)
    if t.params.scale:
        return quant_from_lists([float(t.params.scale)], [int(t.params.zero_point)], 0, rank)
    return quant_from_lists([], [], 0, rank)


def read_tensor(ffi: Any, lib: Any, ctx: Any, index: int, names: dict[int, str]) -> TfliteTensor:
    t = ctx.tensors[index]
    name = ffi.string(t.name).decode(errors="replace") if t.name != ffi.NULL else ""
    shape = int_array(ffi, t.dims)
    type_name = names.get(t.type, f"TYPE{t.type}")
    quant = _quant(ffi, lib, t, len(shape))
    data = None
    etype = element_type(type_name)
    if etype is not None and t.allocation_type == lib.kTfLiteMmapRo and t.data.raw != ffi.NULL:
        need = int(np.prod(shape, dtype=np.int64)) * etype.size
        if t.bytes != need:
            raise ContextError(f"tensor {index}: {t.bytes} bytes, shape {list(shape)} needs {need}")
        raw = np.frombuffer(ffi.buffer(t.data.raw, t.bytes), dtype=etype.numpy)
        data = raw.reshape(shape).copy()
        data.setflags(write=False)
    return tensor_record(index, name, shape, type_name, quant, data)


# -- builtin options --------------------------------------------------------------------------

_ACT = schema.ActivationFunctionType


def _padding(lib: Any, value: int) -> int:
    if value == lib.kTfLitePaddingSame:
        return schema.Padding.SAME
    if value == lib.kTfLitePaddingValid:
        return schema.Padding.VALID
    raise ContextError(f"padding {value} is neither SAME nor VALID")


def _activation(lib: Any, value: int) -> int:
    """TfLiteFusedActivation -> schema ActivationFunctionType (an unknown value passes through
    and the mapping names it as an unsupported activation)."""
    known = {
        lib.kTfLiteActNone: _ACT.NONE,
        lib.kTfLiteActRelu: _ACT.RELU,
        lib.kTfLiteActReluN1To1: _ACT.RELU_N1_TO_1,
        lib.kTfLiteActRelu6: _ACT.RELU6,
        lib.kTfLiteActTanh: _ACT.TANH,
        lib.kTfLiteActSignBit: _ACT.SIGN_BIT,
    }
    return known.get(value, value)


def _conv(lib, p, name):
    # Dilation is read for every version, as TFLite's own kernels do (Mesa reads it only from
    # version 2 on; a version-1 model has the schema default 1 there anyway).
    fields = dict(
        padding=_padding(lib, p.padding),
        strideW=p.stride_width,
        strideH=p.stride_height,
        fusedActivationFunction=_activation(lib, p.activation),
        dilationWFactor=p.dilation_width_factor,
        dilationHFactor=p.dilation_height_factor,
    )
    if name == "DEPTHWISE_CONV_2D":
        fields["depthMultiplier"] = p.depth_multiplier
    return options(name, **fields)


def _pool(lib, p, name):
    return options(
        name,
        padding=_padding(lib, p.padding),
        strideW=p.stride_width,
        strideH=p.stride_height,
        filterWidth=p.filter_width,
        filterHeight=p.filter_height,
        fusedActivationFunction=_activation(lib, p.activation),
    )


def _fully_connected(lib, p, name):
    return options(
        name,
        fusedActivationFunction=_activation(lib, p.activation),
        weightsFormat=p.weights_format,  # same codes as the schema enum
        keepNumDims=bool(p.keep_num_dims),
    )


def _elementwise(lib, p, name):
    return options(name, fusedActivationFunction=_activation(lib, p.activation))


def _concat(lib, p, name):
    return options(name, axis=p.axis, fusedActivationFunction=_activation(lib, p.activation))


def _softmax(lib, p, name):
    return options(name, beta=float(p.beta))


def _strided_slice(lib, p, name):
    return options(
        name,
        beginMask=p.begin_mask,
        endMask=p.end_mask,
        ellipsisMask=p.ellipsis_mask,
        newAxisMask=p.new_axis_mask,
        shrinkAxisMask=p.shrink_axis_mask,
        offset=bool(p.offset),
    )


def _resize(lib, p, name):
    return options(
        name, alignCorners=bool(p.align_corners), halfPixelCenters=bool(p.half_pixel_centers)
    )


OptionReader = Callable[[Any, Any, str], Any]

# builtin -> (builtin_data struct in tflite_abi.h, reader returning the schema options object).
OPTION_READERS: dict[str, tuple[str, OptionReader]] = {
    "CONV_2D": ("TfLiteConvParams", _conv),
    "DEPTHWISE_CONV_2D": ("TfLiteDepthwiseConvParams", _conv),
    "AVERAGE_POOL_2D": ("TfLitePoolParams", _pool),
    "MAX_POOL_2D": ("TfLitePoolParams", _pool),
    "FULLY_CONNECTED": ("TfLiteFullyConnectedParams", _fully_connected),
    "ADD": ("TfLiteAddParams", _elementwise),
    "SUB": ("TfLiteSubParams", _elementwise),
    "MUL": ("TfLiteMulParams", _elementwise),
    "CONCATENATION": ("TfLiteConcatenationParams", _concat),
    "SOFTMAX": ("TfLiteSoftmaxParams", _softmax),
    "STRIDED_SLICE": ("TfLiteStridedSliceParams", _strided_slice),
    "RESIZE_BILINEAR": ("TfLiteResizeParams", _resize),
    "RESIZE_NEAREST_NEIGHBOR": ("TfLiteResizeParams", _resize),
}

# Builtins the mapping reads no options of (their data comes from constant input tensors).
NO_OPTIONS = frozenset(
    {
        "SPLIT",
        "SPLIT_V",
        "PAD",
        "PADV2",
        "RESHAPE",
        "SQUEEZE",
        "EXPAND_DIMS",
        "TRANSPOSE",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "LOGISTIC",
        "TANH",
        "HARD_SWISH",
        "ABS",
        "MEAN",
        "QUANTIZE",
    }
)


def read_options(ffi: Any, lib: Any, name: str, builtin_data: Any) -> Any:
    entry = OPTION_READERS.get(name)
    if entry is None or builtin_data == ffi.NULL:
        return None
    struct, reader = entry
    return reader(lib, ffi.cast(struct + " *", builtin_data), name)


# -- the view ---------------------------------------------------------------------------------


def read_context(ffi: Any, lib: Any, ctx: Any, plan: tuple[int, ...]) -> ContextView:
    """The model view of ``ctx`` over the nodes of ``plan`` (the execution plan)."""
    names = type_names(ffi)
    tensors = tuple(read_tensor(ffi, lib, ctx, i, names) for i in range(ctx.tensors_size))
    node_p = ffi.new("TfLiteNode **")
    reg_p = ffi.new("TfLiteRegistration **")
    ops = []
    for position, node_id in enumerate(plan):
        if ctx.GetNodeAndRegistration(ctx, node_id, node_p, reg_p) != 0:
            raise ContextError(f"GetNodeAndRegistration failed for node {node_id}")
        node, reg = node_p[0], reg_p[0]
        custom = reg.builtin_code == lib.kTfLiteBuiltinCustom
        if custom:
            name = ffi.string(reg.custom_name).decode() if reg.custom_name != ffi.NULL else "?"
        else:
            name = BUILTIN_NAMES.get(reg.builtin_code, f"BUILTIN_{reg.builtin_code}")
        opts = None if custom else read_options(ffi, lib, name, node.builtin_data)
        ops.append(
            TfliteOp(
                position,
                name,
                reg.version,
                int_array(ffi, node.inputs),
                int_array(ffi, node.outputs),
                opts,
                custom,
            )
        )
    model = TfliteModel(CONTEXT_PATH, tensors, tuple(ops), (), ())
    return ContextView(model, tuple(plan))
