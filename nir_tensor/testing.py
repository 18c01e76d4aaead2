"""Test support: a small builder of real graphs with plausible quantization.

Pass and driver tests build their graphs here (real ``Graph``/``Node``/``Tensor`` objects,
never mocks). Output scales are chosen from the accumulation's expected spread, so results
use the output range instead of saturating, which would hide rounding differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..gallium.operation import (
    AxisParams,
    Clamp,
    ConvParams,
    ElementwiseParams,
    FullyConnectedParams,
    Padding,
    PadParams,
    PoolParams,
    PoolType,
    StridedSliceParams,
)
from ..gallium.tensor import ElementType, Quant
from .ir import Graph, Node, Op, Tensor
from .shapes import conv_output_size

# Standard deviation of a uniform integer over n values is n/sqrt(12); we aim the output's
# spread at about a sixth of its range so that few values saturate.
_OUTPUT_SPREAD = 256 / 6


class GraphBuilder:
    """Append nodes one call at a time; ``build(outputs)`` returns the graph."""

    def __init__(self, seed: int = 0, dtype: ElementType = ElementType.UINT8) -> None:
        self.rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.nodes: list[Node] = []
        self.inputs: list[Tensor] = []
        self._count = 0

    # -- tensors ------------------------------------------------------------------------------

    def quant(self, scale: float | None = None) -> Quant:
        scale = float(np.float32(scale or self.rng.uniform(0.005, 0.05)))
        lo, hi = self.dtype.qmin, self.dtype.qmax
        return Quant(scale, int(self.rng.integers(lo + 32, hi - 32, endpoint=True)))

    def tensor(self, shape: Sequence[int], quant: Quant | None = None, **kw) -> Tensor:
        self._count += 1
        return Tensor(tuple(shape), self.dtype, quant or self.quant(), name=f"v{self._count}", **kw)

    def input(self, shape: Sequence[int], quant: Quant | None = None) -> Tensor:
        t = self.tensor(shape, quant, index=len(self.inputs))
        self.inputs.append(t)
        return t

    def _add(self, op: Op, inputs, outputs, params) -> None:
        self.nodes.append(Node(op, tuple(inputs), tuple(outputs), params, len(self.nodes)))

    def _out_quant(self, x: Tensor, gain: float) -> Quant:
        """An output quant whose range fits ``x`` 's spread times ``gain``."""
        spread = x.quant.scale * 74 * gain  # 74: std of a uniform 8-bit value around its zp
        return self.quant(spread / _OUTPUT_SPREAD * self.rng.uniform(0.7, 1.4))

    # -- weighted ops -------------------------------------------------------------------------

    def _weights(self, shape, channels: int, axis: int, per_axis: bool):
        wt = self.dtype
        if wt is ElementType.INT8:
            data = self.rng.integers(-127, 127, size=shape, endpoint=True).astype(np.int8)
            base = self.rng.uniform(0.002, 0.02)
            if per_axis:
                scales = tuple(
                    float(np.float32(base * f)) for f in self.rng.uniform(0.2, 1.0, channels)
                )
                quant = Quant(scales[0], 0, scales, None, axis)
            else:
                quant = Quant(float(np.float32(base)), 0)
            return data, quant
        data = self.rng.integers(0, 255, size=shape, endpoint=True).astype(np.uint8)
        return data, Quant(
            float(np.float32(self.rng.uniform(0.002, 0.02))), int(self.rng.integers(90, 166))
        )

    def _bias(self, x: Tensor, wq: Quant, channels: int) -> Tensor:
        scales = wq.channel_scales(channels) * x.quant.scale
        data = self.rng.integers(-3000, 3000, size=(1, 1, 1, channels)).astype(np.int32)
        if wq.per_axis:
            quant = Quant(float(scales[0]), 0, tuple(float(s) for s in scales), None, 3)
        else:
            quant = Quant(float(scales[0]), 0)
        return Tensor((1, 1, 1, channels), ElementType.INT32, quant, data, rank=1)

    def conv(
        self,
        x: Tensor,
        out_channels: int,
        kernel: tuple[int, int] = (3, 3),
        *,
        stride: tuple[int, int] = (1, 1),
        padding: str | Padding = "same",
        dilation: tuple[int, int] = (1, 1),
        depthwise: bool = False,
        clamp: Clamp | str | None = None,
        per_axis: bool = False,
        bias: bool = True,
        quant: Quant | None = None,
    ) -> Tensor:
        """A convolution; ``quant`` pins the output quantization (concatenation parts share
        one, as converters make them)."""
        n, h, w, c = x.shape
        kh, kw = kernel
        if isinstance(padding, str):
            padding = (
                same_padding(h, w, kernel, stride, dilation) if padding == "same" else Padding()
            )
        if depthwise:
            wshape, axis, depth = (1, kh, kw, out_channels), 3, 1
        else:
            wshape, axis, depth = (out_channels, kh, kw, c), 0, c
        data, wq = self._weights(wshape, out_channels, axis, per_axis)
        weight = Tensor(wshape, self.dtype, wq, data)
        oh = conv_output_size(h, kh, stride[0], dilation[0], padding.top, padding.bottom)
        ow = conv_output_size(w, kw, stride[1], dilation[1], padding.left, padding.right)
        gain = float(np.mean(wq.channel_scales(out_channels))) * 58 * math.sqrt(kh * kw * depth)
        out = self.tensor((n, oh, ow, out_channels), quant or self._out_quant(x, gain))
        b = self._bias(x, wq, out_channels) if bias else None
        params = ConvParams(stride, padding, dilation, depthwise, activation(clamp, out))
        self._add(Op.CONV, (x, weight, b), (out,), params)
        return out

    def fc(self, x: Tensor, units: int, *, features: int | None = None, clamp=None) -> Tensor:
        features = features or x.shape[3]
        data, wq = self._weights((1, 1, units, features), units, 2, False)
        weight = Tensor((1, 1, units, features), self.dtype, wq, data, rank=2)
        batch = x.size // features
        gain = wq.scale * 58 * math.sqrt(features)
        out = self.tensor((1, 1, batch, units), self._out_quant(x, gain), rank=2)
        b = self._bias(x, wq, units)
        params = FullyConnectedParams(activation(clamp, out))
        self._add(Op.FULLY_CONNECTED, (x, weight, b), (out,), params)
        return out

    # -- other ops ----------------------------------------------------------------------------

    def add(
        self, a: Tensor, b: Tensor, *, op: Op = Op.ADD, clamp: Clamp | str | None = None
    ) -> Tensor:
        gain = max(a.quant.scale, b.quant.scale) / a.quant.scale * 1.4
        out = self.tensor(np.broadcast_shapes(a.shape, b.shape), self._out_quant(a, gain))
        self._add(op, (a, b), (out,), ElementwiseParams(activation(clamp, out)))
        return out

    def clamp(self, x: Tensor, lo: int, hi: int, *, requantize: bool = False) -> Tensor:
        out = self.tensor(x.shape, self.quant() if requantize else x.quant)
        self._add(Op.CLAMP, (x,), (out,), Clamp(lo, hi))
        return out

    def pad(self, x: Tensor, before, after, value: int | None = None) -> Tensor:
        shape = tuple(d + b + a for d, b, a in zip(x.shape, before, after, strict=True))
        out = self.tensor(shape, x.quant)
        value = x.quant.zero_point if value is None else value
        self._add(Op.PAD, (x,), (out,), PadParams(tuple(before), tuple(after), value))
        return out

    def pool(self, x: Tensor, kind: PoolType, size=(2, 2), stride=(2, 2), clamp=None) -> Tensor:
        n, h, w, c = x.shape
        oh = conv_output_size(h, size[0], stride[0], 1, 0, 0)
        ow = conv_output_size(w, size[1], stride[1], 1, 0, 0)
        out = self.tensor((n, oh, ow, c), x.quant)
        self._add(Op.POOL, (x,), (out,), PoolParams(kind, size, stride, Padding(), clamp))
        return out

    def concat(self, parts: Sequence[Tensor], axis: int) -> Tensor:
        shape = list(parts[0].shape)
        shape[axis] = sum(t.shape[axis] for t in parts)
        out = self.tensor(shape, parts[0].quant)
        self._add(Op.CONCAT, parts, (out,), AxisParams(axis))
        return out

    def split(self, x: Tensor, axis: int, sizes: Sequence[int]) -> list[Tensor]:
        outs = []
        for s in sizes:
            shape = list(x.shape)
            shape[axis] = s
            outs.append(self.tensor(shape, x.quant))
        self._add(Op.SPLIT, (x,), outs, AxisParams(axis))
        return outs

    def reshape(self, x: Tensor, shape: Sequence[int]) -> Tensor:
        out = self.tensor(shape, x.quant)
        self._add(Op.RESHAPE, (x,), (out,), None)
        return out

    def slice(self, x: Tensor, begin, end, strides=(1, 1, 1, 1)) -> Tensor:
        shape = [len(range(b, e, s)) for b, e, s in zip(begin, end, strides, strict=True)]
        out = self.tensor(shape, x.quant)
        self._add(
            Op.STRIDED_SLICE,
            (x,),
            (out,),
            StridedSliceParams(tuple(begin), tuple(end), tuple(strides)),
        )
        return out

    def op(self, op: Op, inputs: Sequence[Tensor], out_shape, params=None, quant=None) -> Tensor:
        out = self.tensor(out_shape, quant or inputs[0].quant)
        self._add(op, inputs, (out,), params)
        return out

    def build(self, outputs: Sequence[Tensor]) -> Graph:
        return Graph.build(self.nodes, self.inputs, outputs)


def require_kernels(*ops: Op) -> None:
    """Skip the calling test when the evaluator has no kernel for one of ``ops``."""
    from .kernels import KERNELS

    missing = [op.debug_name for op in ops if op not in KERNELS]
    if missing:
        import pytest

        pytest.skip(f"no reference kernel yet for {', '.join(missing)}")


def same_padding(h: int, w: int, kernel, stride, dilation=(1, 1)) -> Padding:
    """TFLite's SAME padding (``ComputePaddingHeightWidth``)."""

    def one(size: int, k: int, s: int, d: int) -> tuple[int, int]:
        eff = (k - 1) * d + 1
        out = (size + s - 1) // s
        total = max((out - 1) * s + eff - size, 0)
        return total // 2, total - total // 2

    top, bottom = one(h, kernel[0], stride[0], dilation[0])
    left, right = one(w, kernel[1], stride[1], dilation[1])
    return Padding(top, bottom, left, right)


def activation(kind: Clamp | str | None, out: Tensor) -> Clamp | None:
    """``"relu"``/``"relu6"`` as quantized bounds on ``out`` (as the frontend maps them)."""
    if kind is None or isinstance(kind, Clamp):
        return kind
    zp, s = out.quant.zero_point, out.quant.scale
    lo = max(out.dtype.qmin, zp)
    if kind == "relu":
        return Clamp(lo, out.dtype.qmax)
    assert kind == "relu6", kind
    hi = min(out.dtype.qmax, zp + int(np.round(np.float32(6.0) / np.float32(s))))
    return Clamp(lo, hi)
