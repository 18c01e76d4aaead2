"""TFLite operators -> pipe operations: the frontend's gate ("can I express this?").

One table, :data:`READERS`, maps each builtin to a reader that returns a
:class:`PipeMlOperation` or a one-line reason. The standalone tools and the delegate both map
through :func:`map_operation`, so there is exactly one mapping (Mesa: ``tfl_device.c``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ...gallium.operation import (
    AxisParams,
    Clamp,
    ConvParams,
    ElementwiseParams,
    FullyConnectedParams,
    MeanParams,
    OpType,
    Padding,
    PadParams,
    PipeMlOperation,
    PoolParams,
    PoolType,
    ResizeParams,
    ResizeType,
    SoftmaxParams,
    StridedSliceParams,
    TransposeParams,
)
from ...gallium.tensor import ElementType, PipeTensor
from ...util.fixedpoint import round_half_away
from .tflite import TfliteModel, TfliteOp

QUANTIZED = (ElementType.UINT8, ElementType.INT8, ElementType.INT16)
Reader = Callable[[TfliteOp, TfliteModel], "PipeMlOperation | str"]


class Unexpressible(Exception):
    """Raised inside a reader; carries the one-line reason."""


# -- helpers ----------------------------------------------------------------------------------


def _tensor(model: TfliteModel, index: int, what: str) -> PipeTensor:
    if index < 0:
        raise Unexpressible(f"missing {what}")
    t = model.tensor(index)
    if t.pipe is None:
        raise Unexpressible(f"{what} tensor {index} has {t.problem}")
    return t.pipe


def _activation(model: TfliteModel, index: int, what: str) -> PipeTensor:
    t = _tensor(model, index, what)
    if t.type not in QUANTIZED:
        raise Unexpressible(f"{what} tensor {index} is {t.type.short}, not quantized")
    if t.quant.per_axis:
        raise Unexpressible(f"{what} tensor {index} has per-axis quantization")
    if t.quant.scale <= 0:
        raise Unexpressible(f"{what} tensor {index} has no quantization scale")
    if t.is_constant:
        raise Unexpressible(f"{what} tensor {index} is constant")
    return t


def _constant(model: TfliteModel, index: int, what: str) -> np.ndarray:
    t = _tensor(model, index, what)
    if t.data is None:
        raise Unexpressible(f"{what} tensor {index} is not constant")
    return t.data


def _quantize(value: float, t: PipeTensor) -> int:
    """TFLite's ``zero_point + TfLiteRound(value / scale)``: the quotient in float32, rounded
    half away from zero (np.round would round half to even: RELU6 at scale 0.48 differs)."""
    return t.quant.zero_point + round_half_away(
        float(np.float32(value) / np.float32(t.quant.scale))
    )


def activation_clamp(kind: int, out: PipeTensor) -> Clamp | None:
    """A fused activation as quantized bounds (``CalculateActivationRangeQuantized``)."""
    qmin, qmax = out.type.qmin, out.type.qmax
    act = schema.ActivationFunctionType
    if kind == act.NONE:
        return None
    bounds = {act.RELU: (0.0, None), act.RELU6: (0.0, 6.0), act.RELU_N1_TO_1: (-1.0, 1.0)}
    if kind not in bounds:
        names = {v: k for k, v in vars(act).items() if not k.startswith("_")}
        raise Unexpressible(f"fused activation {names.get(kind, kind)}")
    lo, hi = bounds[kind]
    top = qmax if hi is None else min(qmax, _quantize(hi, out))
    return Clamp(max(qmin, _quantize(lo, out)), top)


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise Unexpressible(f"axis {axis} out of range for rank {rank}")
    return (axis % max(rank, 1)) + 4 - rank


def same_padding(size: int, kernel: int, stride: int, dilation: int, same: bool) -> tuple[int, int]:
    """(before, after) as TFLite's ``ComputePaddingHeightWidth`` computes them."""
    effective = (kernel - 1) * dilation + 1
    out = (size + stride - 1) // stride if same else (size - effective + stride) // stride
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _padding(opts, inp: PipeTensor, kh: int, kw: int, dil: tuple[int, int]) -> Padding:
    same = opts.padding == schema.Padding.SAME
    _, h, w, _ = inp.dims
    top, bottom = same_padding(h, kh, opts.strideH, dil[0], same)
    left, right = same_padding(w, kw, opts.strideW, dil[1], same)
    return Padding(top, bottom, left, right)


def _op(kind: OpType, op: TfliteOp, inputs, outputs, params=None) -> PipeMlOperation:
    return PipeMlOperation(kind, tuple(inputs), tuple(outputs), params, op.index)


# -- readers ----------------------------------------------------------------------------------


def read_conv(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    depthwise = op.name == "DEPTHWISE_CONV_2D"
    opts = op.options
    inp = _activation(model, op.inputs[0], "input")
    out = _activation(model, op.outputs[0], "output")
    weight = _tensor(model, op.inputs[1], "weight")
    if weight.data is None:
        raise Unexpressible("weights are not constant")
    if weight.rank != 4:
        raise Unexpressible(f"weights have rank {weight.rank}")
    bias = (
        _tensor(model, op.inputs[2], "bias") if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    )
    if bias is not None and bias.data is None:
        raise Unexpressible("bias is not constant")
    dil = (opts.dilationHFactor or 1, opts.dilationWFactor or 1)
    _, kh, kw, _ = weight.dims
    if depthwise and weight.dims[3] != inp.dims[3] * max(opts.depthMultiplier or 1, 1):
        raise Unexpressible("depth multiplier does not match weight and input channels")
    params = ConvParams(
        stride=(opts.strideH, opts.strideW),
        padding=_padding(opts, inp, kh, kw, dil),
        dilation=dil,
        depthwise=depthwise,
        clamp=activation_clamp(opts.fusedActivationFunction, out),
    )
    return _op(OpType.CONVOLUTION, op, (inp, weight, bias), (out,), params)


def read_fully_connected(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    opts = op.options
    if opts is not None and opts.weightsFormat != schema.FullyConnectedOptionsWeightsFormat.DEFAULT:
        raise Unexpressible("shuffled weight format")
    inp = _activation(model, op.inputs[0], "input")
    out = _activation(model, op.outputs[0], "output")
    weight = _tensor(model, op.inputs[1], "weight")
    if weight.data is None or weight.rank != 2:
        raise Unexpressible("weights must be a constant 2-D tensor")
    if inp.size % weight.dims[3]:
        raise Unexpressible(f"input size {inp.size} is not a multiple of {weight.dims[3]}")
    bias = (
        _tensor(model, op.inputs[2], "bias") if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    )
    if bias is not None and bias.data is None:
        raise Unexpressible("bias is not constant")
    act = opts.fusedActivationFunction if opts is not None else 0
    params = FullyConnectedParams(clamp=activation_clamp(act, out))
    return _op(OpType.FULLY_CONNECTED, op, (inp, weight, bias), (out,), params)


def _operand(model: TfliteModel, index: int, what: str) -> PipeTensor:
    """An elementwise operand: an activation, or a quantized constant."""
    t = _tensor(model, index, what)
    if t.is_constant:
        if t.type not in QUANTIZED or t.quant.per_axis:
            raise Unexpressible(f"{what} is a constant of type {t.type.short}")
        return t
    return _activation(model, index, what)


def read_elementwise(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    kind = {"ADD": OpType.ADD, "SUB": OpType.SUBTRACT, "MUL": OpType.MUL}[op.name]
    a = _operand(model, op.inputs[0], "input 0")
    b = _operand(model, op.inputs[1], "input 1")
    out = _activation(model, op.outputs[0], "output")
    if a.type != out.type or b.type != out.type:
        raise Unexpressible("inputs and output differ in type")
    try:
        np.broadcast_shapes(a.dims, b.dims)
    except ValueError:
        raise Unexpressible(f"shapes {a.shape} and {b.shape} do not broadcast") from None
    act = op.options.fusedActivationFunction if op.options is not None else 0
    params = ElementwiseParams(clamp=activation_clamp(act, out))
    return _op(kind, op, (a, b), (out,), params)


def read_pool(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    opts = op.options
    inp = _activation(model, op.inputs[0], "input")
    out = _activation(model, op.outputs[0], "output")
    kind = PoolType.MAX if op.name == "MAX_POOL_2D" else PoolType.AVG
    params = PoolParams(
        type=kind,
        filter=(opts.filterHeight, opts.filterWidth),
        stride=(opts.strideH, opts.strideW),
        padding=_padding(opts, inp, opts.filterHeight, opts.filterWidth, (1, 1)),
        clamp=activation_clamp(opts.fusedActivationFunction, out),
    )
    return _op(OpType.POOLING, op, (inp,), (out,), params)


def read_concat(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    opts = op.options
    if opts.fusedActivationFunction:
        raise Unexpressible("fused activation on CONCATENATION")
    ins = [_operand(model, i, f"input {n}") for n, i in enumerate(op.inputs)]
    out = _activation(model, op.outputs[0], "output")
    axis = _axis(opts.axis, out.rank)
    return _op(OpType.CONCATENATION, op, ins, (out,), AxisParams(axis))


def read_split(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    if op.name == "SPLIT":
        axis_data, inp_index = _constant(model, op.inputs[0], "axis"), op.inputs[1]
    else:  # SPLIT_V: (input, size_splits, axis)
        axis_data, inp_index = _constant(model, op.inputs[2], "axis"), op.inputs[0]
    inp = _activation(model, inp_index, "input")
    outs = [_activation(model, o, f"output {n}") for n, o in enumerate(op.outputs)]
    axis = _axis(int(np.asarray(axis_data).reshape(-1)[0]), inp.rank)
    return _op(OpType.SPLIT, op, (inp,), outs, AxisParams(axis))


def read_pad(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    inp = _activation(model, op.inputs[0], "input")
    out = _activation(model, op.outputs[0], "output")
    pads = np.asarray(_constant(model, op.inputs[1], "paddings")).reshape(-1, 2)
    if len(pads) != inp.rank:
        raise Unexpressible(f"paddings have {len(pads)} rows for rank {inp.rank}")
    if (pads < 0).any():
        raise Unexpressible("negative padding")
    lead = [(0, 0)] * (4 - inp.rank)
    rows = lead + [tuple(int(x) for x in r) for r in pads]
    value = out.quant.zero_point
    if op.name == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = int(np.asarray(_constant(model, op.inputs[2], "pad value")).reshape(-1)[0])
    params = PadParams(tuple(r[0] for r in rows), tuple(r[1] for r in rows), value)
    return _op(OpType.PAD, op, (inp,), (out,), params)


def read_reshape(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    inp = _activation(model, op.inputs[0], "input")
    out = _activation(model, op.outputs[0], "output")
    if inp.size != out.size:
        raise Unexpressible(f"reshape changes the element count {inp.size} -> {out.size}")
    return _op(OpType.RESHAPE, op, (inp,), (out,))


def read_transpose(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    inp = _activation(model, op.inputs[0], "input")
    out = _activation(model, op.outputs[0], "output")
    perm = [int(p) for p in np.asarray(_constant(model, op.inputs[1], "perm")).reshape(-1)]
    if sorted(perm) != list(range(inp.rank)):
        raise Unexpressible(f"perm {perm} is not a permutation of rank {inp.rank}")
    lead = 4 - inp.rank
    params = TransposeParams(tuple(range(lead)) + tuple(p + lead for p in perm))
    return _op(OpType.TRANSPOSE, op, (inp,), (out,), params)


def read_strided_slice(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    opts = op.options
    if opts.ellipsisMask or opts.newAxisMask:
        raise Unexpressible("ellipsis or new-axis mask")
    inp = _activation(model, op.inputs[0], "input")
    out = _activation(model, op.outputs[0], "output")
    begin, end, strides = (
        [int(x) for x in np.asarray(_constant(model, op.inputs[i], what)).reshape(-1)]
        for i, what in ((1, "begin"), (2, "end"), (3, "strides"))
    )
    rank = inp.rank
    if not len(begin) == len(end) == len(strides) == rank:
        raise Unexpressible("begin/end/strides do not match the input rank")
    if 0 in strides:
        raise Unexpressible("zero stride")
    res_b, res_e = [], []
    for axis in range(rank):
        dim, stride = inp.shape[axis], strides[axis]
        lo, hi = (0, dim) if stride > 0 else (-1, dim - 1)
        if opts.beginMask >> axis & 1:
            start = 0 if stride > 0 else dim - 1
        else:
            start = begin[axis] + dim if begin[axis] < 0 else begin[axis]
            start = min(max(start, lo), hi)
        if opts.shrinkAxisMask >> axis & 1:
            stop = start + 1
        elif opts.endMask >> axis & 1:
            stop = dim if stride > 0 else -1
        else:
            stop = end[axis] + (begin[axis] if opts.offset else 0)
            stop = stop + dim if stop < 0 and not opts.offset else stop
            stop = min(max(stop, lo), hi)
        res_b.append(start)
        res_e.append(stop)
    lead = 4 - rank
    params = StridedSliceParams(
        tuple([0] * lead + res_b), tuple(list(inp.dims[:lead]) + res_e), tuple([1] * lead + strides)
    )
    return _op(OpType.STRIDED_SLICE, op, (inp,), (out,), params)


def read_resize(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    inp = _activation(model, op.inputs[0], "input")
    out = _activation(model, op.outputs[0], "output")
    _constant(model, op.inputs[1], "size")
    kind = ResizeType.BILINEAR if op.name == "RESIZE_BILINEAR" else ResizeType.NEAREST
    opts = op.options
    params = ResizeParams(
        kind, bool(opts and opts.alignCorners), bool(opts and opts.halfPixelCenters)
    )
    return _op(OpType.RESIZE, op, (inp,), (out,), params)


def read_relu(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    inp = _activation(model, op.inputs[0], "input")
    out = _activation(model, op.outputs[0], "output")
    act = schema.ActivationFunctionType
    kind = {"RELU": act.RELU, "RELU6": act.RELU6, "RELU_N1_TO_1": act.RELU_N1_TO_1}[op.name]
    return _op(OpType.CLAMP, op, (inp,), (out,), activation_clamp(kind, out))


def read_unary(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    kind = {
        "LOGISTIC": OpType.LOGISTIC,
        "TANH": OpType.TANH,
        "HARD_SWISH": OpType.HARD_SWISH,
        "ABS": OpType.ABSOLUTE,
    }[op.name]
    inp = _activation(model, op.inputs[0], "input")
    out = _activation(model, op.outputs[0], "output")
    return _op(kind, op, (inp,), (out,))


def read_softmax(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    inp = _activation(model, op.inputs[0], "input")
    out = _activation(model, op.outputs[0], "output")
    return _op(OpType.SOFTMAX, op, (inp,), (out,), SoftmaxParams(float(op.options.beta)))


def read_mean(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    inp = _activation(model, op.inputs[0], "input")
    out = _activation(model, op.outputs[0], "output")
    axes = sorted(
        {
            _axis(int(a), inp.rank)
            for a in np.asarray(_constant(model, op.inputs[1], "axes")).reshape(-1)
        }
    )
    return _op(OpType.MEAN, op, (inp,), (out,), MeanParams(tuple(axes)))


def read_quantize(op: TfliteOp, model: TfliteModel) -> PipeMlOperation:
    inp = _tensor(model, op.inputs[0], "input")
    if inp.type not in QUANTIZED:
        raise Unexpressible(f"quantizes from {inp.type.short} (float boundary stays on the CPU)")
    inp = _activation(model, op.inputs[0], "input")
    out = _activation(model, op.outputs[0], "output")
    return _op(OpType.QUANTIZE, op, (inp,), (out,))


READERS: dict[str, Reader] = {
    "CONV_2D": read_conv,
    "DEPTHWISE_CONV_2D": read_conv,
    "FULLY_CONNECTED": read_fully_connected,
    "ADD": read_elementwise,
    "SUB": read_elementwise,
    "MUL": read_elementwise,
    "AVERAGE_POOL_2D": read_pool,
    "MAX_POOL_2D": read_pool,
    "CONCATENATION": read_concat,
    "SPLIT": read_split,
    "SPLIT_V": read_split,
    "PAD": read_pad,
    "PADV2": read_pad,
    "RESHAPE": read_reshape,
    "SQUEEZE": read_reshape,
    "EXPAND_DIMS": read_reshape,
    "TRANSPOSE": read_transpose,
    "STRIDED_SLICE": read_strided_slice,
    "RESIZE_NEAREST_NEIGHBOR": read_resize,
    "RESIZE_BILINEAR": read_resize,
    "RELU": read_relu,
    "RELU6": read_relu,
    "RELU_N1_TO_1": read_relu,
    "LOGISTIC": read_unary,
    "TANH": read_unary,
    "HARD_SWISH": read_unary,
    "ABS": read_unary,
    "SOFTMAX": read_softmax,
    "MEAN": read_mean,
    "QUANTIZE": read_quantize,
}


def map_operation(op: TfliteOp, model: TfliteModel) -> PipeMlOperation | str:
    """The pipe operation for ``op``, or the reason the frontend cannot express it."""
    if op.is_custom:
        return f"custom op {op.name}"
    reader = READERS.get(op.name)
    if reader is None:
        return f"no mapping for {op.name}"
    try:
        return reader(op, model)
    except Unexpressible as e:
        return str(e)
