"""CONV (regular, grouped, depthwise, dilated) and FULLY_CONNECTED, exact and BLAS-fast.

Semantics are LiteRT's reference kernels as ``BUILTIN_REF`` runs them:
``reference_ops::Conv`` and ``DepthwiseConv`` for uint8, ``reference_integer_ops::ConvPerChannel``
and ``DepthwiseConvPerChannel`` for int8/int16, ``FullyConnected`` / ``FullyConnectedPerChannel``
(LiteRT ``tflite/kernels/{conv,depthwise_conv,fully_connected}.cc``, ``internal/reference``):

    acc = sum (x - x_zp) * (w - w_zp) + bias;  out = clamp(MBQM(acc, M_c, s_c) + y_zp)

Where the multiplier comes from differs (and matters for exactness):

* uint8 conv and depthwise use ``GetQuantizedConvolutionMultipler``:
  ``double(float(s_in * s_w)) / s_out`` (the scale product in float32);
* int8/int16 conv and depthwise use ``double(s_in) * double(s_w[c]) / double(s_out)`` per
  output channel;
* FULLY_CONNECTED (the reference kernels in ai-edge-litert 2.3.0, checked against it) skips
  the fixed-point multiplier: ``round(double(acc) * (s_in * s_w[c] / s_out))`` in double.

int8/int16 depthwise ignores the weight zero point (``weights_offset = 0``), as the kernel does.
int16x8 conv and depthwise accumulate in int64 and use the int64 ``MultiplyByQuantizedMultiplier``
(the multiplier reduced to 16 bits); they read int64 biases.

Speed: ``prepare`` removes the zero points once (weights as float matrices, K x O), and the sums
run as one BLAS matmul over an im2col view. float32 is used when a static bound proves every
partial sum exact (below 2^24), float64 otherwise (exact below 2^53). Depthwise is a sum of
kh*kw shifted multiply-adds over whole planes.
"""

from __future__ import annotations

import numpy as np

from ...gallium.tensor import ElementType
from ...util.fixedpoint import quantize_multiplier
from ..ir import Node, Op, Tensor
from .base import Kernel, Run
from .requant import OutputStage, Rescale, make_output_stage

FLOAT32_EXACT = 1 << 24  # integers below 2^24 are exact in float32, and so are sums below it
FLOAT64_EXACT = 1 << 53
PLANAR_BELOW_CHANNELS = 64  # depthwise layout switch, see prepare_depthwise


# -- quantization parameters -------------------------------------------------------------------


def float_product_multiplier(s_in: float, s_w: float, s_out: float) -> tuple[int, int]:
    """``GetQuantizedConvolutionMultipler``: the scale product is taken in float32."""
    product = float(np.float32(s_in) * np.float32(s_w))
    return quantize_multiplier(product / float(s_out))


def per_channel_multipliers(
    s_in: float, s_w: np.ndarray, s_out: float
) -> tuple[np.ndarray, np.ndarray]:
    """``PopulateConvolutionQuantizationParams``: one (multiplier, shift) per output channel."""
    pairs = [quantize_multiplier(s_in * float(s) / s_out) for s in s_w]
    return np.array([m for m, _ in pairs]), np.array([s for _, s in pairs])


def activation_bounds(node: Node) -> tuple[int, int]:
    out = node.output
    clamp = getattr(node.params, "clamp", None)
    if clamp is None:
        return out.dtype.qmin, out.dtype.qmax
    return clamp.lo, clamp.hi


def input_magnitude(t: Tensor) -> int:
    """The largest |x - zero_point| an activation of ``t`` can hold."""
    zp = t.quant.zero_point
    return max(abs(t.dtype.qmin - zp), abs(t.dtype.qmax - zp))


def matrix_dtype(x_magnitude: int, weights: np.ndarray, axis: int) -> np.dtype:
    """float32 when every partial sum is provably below 2^24, else float64.

    A partial sum of ``x*w`` terms is bounded by ``max|x| * sum |w|`` over the reduced axis,
    whatever order BLAS adds in (FMA included: each product is exact).
    """
    bound = x_magnitude * float(np.abs(weights).sum(axis=axis).max(initial=0))
    if bound < FLOAT32_EXACT:
        return np.dtype(np.float32)
    if bound >= FLOAT64_EXACT:
        raise ValueError("accumulator bound beyond float64 exactness")
    return np.dtype(np.float64)


def bias_of(node: Node, channels: int) -> np.ndarray | None:
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if bias is None:
        return None
    return np.asarray(bias.data, dtype=np.int64).reshape(-1)[:channels]


def conv_output_stage(
    node: Node, weight: Tensor, channels: int, *, float_product: bool, acc_bound: int
) -> OutputStage:
    inp, out = node.input, node.output
    lo, hi = activation_bounds(node)
    if float_product:
        m, s = float_product_multiplier(inp.quant.scale, weight.quant.scale, out.quant.scale)
        mult, shift = np.int64(m), np.int64(s)
    else:
        mult, shift = per_channel_multipliers(
            inp.quant.scale, weight.quant.channel_scales(channels), out.quant.scale
        )
    rescale = Rescale.DOUBLE_ROUNDING
    if inp.dtype is ElementType.INT16:
        rescale = Rescale.INT64_ACCUMULATOR
    return make_output_stage(
        mult,
        shift,
        bias=bias_of(node, channels),
        zero_point=out.quant.zero_point,
        lo=lo,
        hi=hi,
        dtype=out.dtype.numpy,
        rescale=rescale,
        acc_bound=acc_bound,
    )


# -- CONV ---------------------------------------------------------------------------------------


def centered(x: np.ndarray, zero_point: int, dtype: np.dtype) -> np.ndarray:
    return np.subtract(x, dtype.type(zero_point), dtype=dtype)


def padded_input(node: Node, xc: np.ndarray, kernel: tuple[int, int], planar: bool = False):
    """Zero-pad (centered values, so zero is the zero point) to exactly what the windows read.

    ``xc`` is NHWC, or NCHW with ``planar``.
    """
    p = node.params
    _, oh, ow, _ = node.output.shape
    h, w = xc.shape[2:4] if planar else xc.shape[1:3]
    need_h = (oh - 1) * p.stride[0] + (kernel[0] - 1) * p.dilation[0] + 1
    need_w = (ow - 1) * p.stride[1] + (kernel[1] - 1) * p.dilation[1] + 1
    top, left = p.padding.top, p.padding.left
    rows = (top, max(0, need_h - h - top))
    cols = (left, max(0, need_w - w - left))
    if planar:
        xp = np.pad(xc, ((0, 0), (0, 0), rows, cols)) if any(rows + cols) else xc
        return xp[:, :, :need_h, :need_w]
    xp = np.pad(xc, ((0, 0), rows, cols, (0, 0))) if any(rows + cols) else xc
    return xp[:, :need_h, :need_w, :]


def tap(xp: np.ndarray, node: Node, i: int, j: int, planar: bool = False) -> np.ndarray:
    """The input plane that kernel tap (i, j) multiplies, for every output pixel."""
    p = node.params
    _, oh, ow, _ = node.output.shape
    y0, x0 = i * p.dilation[0], j * p.dilation[1]
    ys = slice(y0, y0 + (oh - 1) * p.stride[0] + 1, p.stride[0])
    xs = slice(x0, x0 + (ow - 1) * p.stride[1] + 1, p.stride[1])
    return xp[:, :, ys, xs] if planar else xp[:, ys, xs, :]


def im2col(xp: np.ndarray, node: Node, kh: int, kw: int) -> np.ndarray:
    """(N, OH, OW, kh, kw, C): every tap's plane, in the weights' (kh, kw, C) order."""
    n, oh, ow, _ = node.output.shape
    c = xp.shape[3]
    cols = np.empty((n, oh, ow, kh, kw, c), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = tap(xp, node, i, j)
    return cols


def prepare_conv(node: Node) -> Run:
    if node.params.depthwise:
        return prepare_depthwise(node)
    inp, weight = node.input, node.inputs[1]
    out_c, kh, kw, cg = weight.shape
    groups = inp.shape[3] // cg
    w_zp = weight.quant.zero_point if inp.dtype is ElementType.UINT8 else 0
    wc = weight.data.astype(np.int64) - w_zp  # (O, kh, kw, Cg)
    x_mag = input_magnitude(inp)
    dtype = matrix_dtype(x_mag, wc.reshape(out_c, -1), axis=1)
    per_group = out_c // groups
    mats = [
        wc[g * per_group : (g + 1) * per_group].reshape(per_group, -1).T.astype(dtype)
        for g in range(groups)
    ]
    stage = conv_output_stage(
        node,
        weight,
        out_c,
        float_product=inp.dtype is ElementType.UINT8,
        acc_bound=x_mag * int(np.abs(wc).reshape(out_c, -1).sum(axis=1).max(initial=0)),
    )
    x_zp = inp.quant.zero_point
    p = node.params
    pointwise = (kh, kw) == (1, 1) and p.stride == (1, 1) and p.padding.is_zero
    out_shape = node.output.shape

    def run(values: list[np.ndarray | None]) -> list[np.ndarray]:
        xc = centered(values[0], x_zp, dtype)
        if pointwise and groups == 1:
            acc = xc.reshape(-1, xc.shape[3]) @ mats[0]
            return [stage(acc).reshape(out_shape)]
        cols = im2col(padded_input(node, xc, (kh, kw)), node, kh, kw)
        rows = cols.shape[0] * cols.shape[1] * cols.shape[2]
        if groups == 1:
            acc = cols.reshape(rows, -1) @ mats[0]
        else:
            acc = np.concatenate(
                [
                    cols[..., g * cg : (g + 1) * cg].reshape(rows, -1) @ mats[g]
                    for g in range(groups)
                ],
                axis=1,
            )
        return [stage(acc).reshape(out_shape)]

    return run


def prepare_depthwise(node: Node) -> Run:
    """Depthwise as kh*kw multiply-adds of whole planes.

    With few channels the NHWC inner loop (over channels) is too short to vectorise well, so
    those layers run in NCHW, where rows are contiguous; the switch sits at
    ``PLANAR_BELOW_CHANNELS`` (measured: 32 channels run 2.5x faster planar, 96 and more run
    faster in NHWC, where no transposes are needed).
    """
    inp, weight = node.input, node.inputs[1]
    _, kh, kw, out_c = weight.shape
    multiplier = out_c // inp.shape[3]
    # reference_integer_ops::DepthwiseConvPerChannel runs with weights_offset = 0.
    w_zp = weight.quant.zero_point if inp.dtype is ElementType.UINT8 else 0
    wc = weight.data.astype(np.int64).reshape(kh, kw, out_c) - w_zp
    x_mag = input_magnitude(inp)
    dtype = matrix_dtype(x_mag, wc.reshape(-1, out_c), axis=0)
    planar = out_c < PLANAR_BELOW_CHANNELS
    shape = (lambda w: w[:, None, None]) if planar else (lambda w: w)
    taps = [(i, j, shape(wc[i, j].astype(dtype))) for i in range(kh) for j in range(kw)]
    stage = conv_output_stage(
        node,
        weight,
        out_c,
        float_product=inp.dtype is ElementType.UINT8,
        acc_bound=x_mag * int(np.abs(wc).reshape(-1, out_c).sum(axis=0).max(initial=0)),
    )
    x_zp = inp.quant.zero_point
    n, oh, ow, _ = node.output.shape
    acc_shape = (n, out_c, oh, ow) if planar else (n, oh, ow, out_c)
    channel_axis = 1 if planar else 3

    def run(values: list[np.ndarray | None]) -> list[np.ndarray]:
        x = values[0].transpose(0, 3, 1, 2) if planar else values[0]
        xc = np.subtract(x, dtype.type(x_zp), dtype=dtype, order="C")
        if multiplier > 1:  # output channel ic*M + m reads input channel ic
            xc = np.repeat(xc, multiplier, axis=channel_axis)
        xp = padded_input(node, xc, (kh, kw), planar=planar)
        acc = np.empty(acc_shape, dtype=dtype)
        scratch = np.empty_like(acc)
        i, j, w = taps[0]
        np.multiply(tap(xp, node, i, j, planar=planar), w, out=acc)
        for i, j, w in taps[1:]:
            np.multiply(tap(xp, node, i, j, planar=planar), w, out=scratch)
            acc += scratch
        if planar:
            return [np.ascontiguousarray(stage.planar(acc).transpose(0, 2, 3, 1))]
        return [stage(acc)]

    return run


def conv_problem(node: Node) -> str | None:
    """CONV runs uint8 (per-tensor weights), int8 and int16x8 (per-axis weights)."""
    inp, weight, out = node.input, node.inputs[1], node.output
    if inp.dtype != out.dtype:
        return f"{inp.dtype.short} input with {out.dtype.short} output"
    if inp.dtype is ElementType.UINT8:
        if weight.dtype is not ElementType.UINT8:
            return f"uint8 CONV with {weight.dtype.short} weights"
        if weight.quant.per_axis:
            return "uint8 CONV with per-axis weights (TFLite rejects it)"
    elif weight.dtype is not ElementType.INT8:
        return f"{inp.dtype.short} CONV with {weight.dtype.short} weights"
    if not node.params.depthwise and inp.shape[3] % weight.shape[3]:
        return "input channels are not a multiple of the weight channels"
    if inp.dtype is ElementType.INT16:
        return int16_problem(node)
    return None


def int16_problem(node: Node) -> str | None:
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if node.input.quant.zero_point or node.output.quant.zero_point:
        return "int16 with a non-zero zero point"
    if bias is not None and bias.dtype is not ElementType.INT64:
        return "int16x8 with an int32 bias (BUILTIN_REF reads int64 biases)"
    return None


# -- FULLY_CONNECTED ----------------------------------------------------------------------------


def prepare_fully_connected(node: Node) -> Run:
    inp, weight, out = node.input, node.inputs[1], node.output
    units, depth = weight.shape[2], weight.shape[3]
    per_channel = weight.quant.per_axis
    # Per-channel weights are symmetric by spec: FullyConnectedPerChannel ignores the zero point.
    w_zp = 0 if per_channel else weight.quant.zero_point
    wc = weight.data.astype(np.int64).reshape(units, depth) - w_zp
    dtype = matrix_dtype(input_magnitude(inp), wc, axis=1)
    mat = wc.T.astype(dtype)
    # reference_integer_ops::FullyConnected(PerChannel) and the uint8 reference_ops version
    # take the scales and round in double: round(acc * (s_in * s_w / s_out)).
    lo, hi = activation_bounds(node)
    real = inp.quant.scale * weight.quant.channel_scales(units) / out.quant.scale
    stage = make_output_stage(
        0,
        0,
        bias=bias_of(node, units),
        zero_point=out.quant.zero_point,
        lo=lo,
        hi=hi,
        dtype=out.dtype.numpy,
        rescale=Rescale.DOUBLE_PRODUCT,
        real_scale=real,
    )
    x_zp = inp.quant.zero_point
    out_shape = out.shape

    def run(values: list[np.ndarray | None]) -> list[np.ndarray]:
        xc = centered(values[0], x_zp, dtype).reshape(-1, depth)
        return [stage(xc @ mat).reshape(out_shape)]

    return run


def fully_connected_problem(node: Node) -> str | None:
    """FULLY_CONNECTED runs uint8/int8 (per-tensor or per-axis int8 weights) and int16x8."""
    inp, weight, out = node.input, node.inputs[1], node.output
    if inp.dtype != out.dtype:
        return f"{inp.dtype.short} input with {out.dtype.short} output"
    if inp.dtype is ElementType.UINT8 and weight.dtype is not ElementType.UINT8:
        return f"uint8 FULLY_CONNECTED with {weight.dtype.short} weights"
    if inp.dtype in (ElementType.INT8, ElementType.INT16) and weight.dtype is not ElementType.INT8:
        return f"{inp.dtype.short} FULLY_CONNECTED with {weight.dtype.short} weights"
    if weight.quant.per_axis and inp.dtype is ElementType.UINT8:
        return "uint8 FULLY_CONNECTED with per-axis weights (TFLite rejects it)"
    if inp.dtype is ElementType.INT16:
        return int16_problem(node)
    return None


KERNELS = {
    Op.CONV: Kernel(prepare_conv, conv_problem),
    Op.FULLY_CONNECTED: Kernel(prepare_fully_connected, fully_connected_problem),
}

__all__ = ["KERNELS", "OutputStage"]
