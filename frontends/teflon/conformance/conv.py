"""Mesa's test_teflon sweeps: Conv2D, DepthwiseConv2D, Add (two convs), AddQuant, FullyConnected.

The parameter lists are Mesa's (``test_teflon.cpp``, brief ``teflon-gallium.md`` §3), with a
kernel larger than the input skipped as Mesa's ``GTEST_SKIP`` does. Each sweep runs in the uint8
per-tensor variant Mesa uses and in int8 with per-channel weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from ai_edge_litert import schema_py_generated as schema

from ..writer import ModelBuilder, options
from .common import (
    UNWEIGHTED,
    WEIGHTED,
    Case,
    Q,
    Variant,
    accumulator_quant,
    activation_quant,
    add_weights,
    make_weights,
    quant_stats,
    range_quant,
)

PADDINGS = (True, False)  # SAME, VALID
STRIDES = (1, 2)
OUT_CHANNELS = (1, 32, 120, 128, 160, 256)
IN_CHANNELS = (1, 32, 120, 128, 256)
KERNELS = (1, 3, 5)
INPUT_SIZES = (3, 5, 8, 80, 112)
DW_CHANNELS = (1, 32, 120, 128, 256)
DW_KERNELS = (3, 5)
FC_INPUT_SIZES = (128, 1280, 25088, 62720)
ADDQUANT_SHAPE = (1, 40, 40, 1)
ADDQUANT_SEEDS = 100
# AddQuant's input scale range (Mesa test_teflon, brief §3).
ADDQUANT_SCALES = (0.0078, 0.4386)


def out_size(size: int, kernel: int, stride: int, same: bool) -> int:
    """SAME: ceil(in / stride); VALID: (in + stride - k) / stride (brief §3)."""
    return -(-size // stride) if same else (size + stride - kernel) // stride


def _pad_name(same: bool) -> str:
    return "same" if same else "valid"


def _conv(
    b: ModelBuilder,
    variant: Variant,
    case: ConvCase | DepthwiseCase,
    src: int,
    in_q: Q,
    stream: int,
    depthwise: bool,
) -> tuple[int, Q]:
    """One CONV_2D / DEPTHWISE_CONV_2D from ``src``; returns its output tensor and quant."""
    rng = case.rng(stream)
    k = case.kernel
    if depthwise:
        shape, axis, oc = (1, k, k, case.channels), 3, case.channels
    else:
        shape, axis, oc = (case.oc, k, k, case.ic), 0, case.oc
    w = make_weights(variant, rng, shape, axis)
    out_q = accumulator_quant(variant, in_q, w, axis)
    o = out_size(case.size, k, case.stride, case.same)
    out = b.tensor((1, o, o, oc), variant.dtype, **out_q.kwargs())
    wt, bt = add_weights(b, variant, w, in_q, axis)
    name = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
    fields = dict(
        padding=schema.Padding.SAME if case.same else schema.Padding.VALID,
        strideH=case.stride,
        strideW=case.stride,
    )
    if depthwise:
        fields["depthMultiplier"] = 1
    b.op(name, [src, wt, bt], [out], options(name, **fields))
    return out, out_q


@dataclass(frozen=True, slots=True)
class ConvCase(Case):
    suite = "conv"
    size: int
    kernel: int
    ic: int
    oc: int
    stride: int
    same: bool
    variant: Variant

    @property
    def id(self) -> str:
        return (
            f"{self.suite}-in{self.size}x{self.size}-k{self.kernel}-ic{self.ic}-oc{self.oc}"
            f"-s{self.stride}-{_pad_name(self.same)}-{self.variant.suffix}"
        )

    @property
    def cost(self) -> int:
        o = out_size(self.size, self.kernel, self.stride, self.same)
        return o * o * self.oc * self.kernel**2 * self.ic

    def build(self) -> bytes:
        b = ModelBuilder(self.id)
        in_q = activation_quant(self.variant, self.rng(1))
        src = b.tensor((1, self.size, self.size, self.ic), self.variant.dtype, **in_q.kwargs())
        out, _ = _conv(b, self.variant, self, src, in_q, 2, depthwise=False)
        return b.build([src], [out])


@dataclass(frozen=True, slots=True)
class AddCase(ConvCase):
    """Mesa's Add: the input feeds two convolutions whose outputs an ADD sums."""

    suite = "add"

    @property
    def cost(self) -> int:
        return 2 * ConvCase.cost.fget(self)

    def build(self) -> bytes:
        b = ModelBuilder(self.id)
        in_q = activation_quant(self.variant, self.rng(1))
        src = b.tensor((1, self.size, self.size, self.ic), self.variant.dtype, **in_q.kwargs())
        a, a_q = _conv(b, self.variant, self, src, in_q, 2, depthwise=False)
        c, c_q = _conv(b, self.variant, self, src, in_q, 3, depthwise=False)
        (ma, sa), (mc, sc) = quant_stats(self.variant, a_q), quant_stats(self.variant, c_q)
        out_q = range_quant(self.variant, ma + mc, (sa * sa + sc * sc) ** 0.5)
        o = out_size(self.size, self.kernel, self.stride, self.same)
        out = b.tensor((1, o, o, self.oc), self.variant.dtype, **out_q.kwargs())
        b.op("ADD", [a, c], [out], options("ADD"))
        return b.build([src], [out])


@dataclass(frozen=True, slots=True)
class DepthwiseCase(Case):
    suite = "dwconv"
    size: int
    kernel: int
    channels: int
    stride: int
    same: bool
    variant: Variant

    @property
    def id(self) -> str:
        return (
            f"{self.suite}-in{self.size}x{self.size}-k{self.kernel}-c{self.channels}"
            f"-s{self.stride}-{_pad_name(self.same)}-{self.variant.suffix}"
        )

    @property
    def cost(self) -> int:
        o = out_size(self.size, self.kernel, self.stride, self.same)
        return o * o * self.channels * self.kernel**2

    def build(self) -> bytes:
        b = ModelBuilder(self.id)
        in_q = activation_quant(self.variant, self.rng(1))
        shape = (1, self.size, self.size, self.channels)
        src = b.tensor(shape, self.variant.dtype, **in_q.kwargs())
        out, _ = _conv(b, self.variant, self, src, in_q, 2, depthwise=True)
        return b.build([src], [out])


@dataclass(frozen=True, slots=True)
class FullyConnectedCase(Case):
    suite = "fc"
    features: int
    units: int
    variant: Variant

    @property
    def id(self) -> str:
        return f"{self.suite}-in{self.features}-oc{self.units}-{self.variant.suffix}"

    @property
    def cost(self) -> int:
        return self.features * self.units

    def build(self) -> bytes:
        b = ModelBuilder(self.id)
        in_q = activation_quant(self.variant, self.rng(1))
        src = b.tensor((1, self.features), self.variant.dtype, **in_q.kwargs())
        w = make_weights(self.variant, self.rng(2), (self.units, self.features), 0)
        out_q = accumulator_quant(self.variant, in_q, w, 0)
        out = b.tensor((1, self.units), self.variant.dtype, **out_q.kwargs())
        wt, bt = add_weights(b, self.variant, w, in_q, 0)
        b.op("FULLY_CONNECTED", [src, wt, bt], [out], options("FULLY_CONNECTED"))
        return b.build([src], [out])


@dataclass(frozen=True, slots=True)
class AddQuantCase(Case):
    """Mesa's AddQuant: a 40x40x1 ADD whose inputs have random, differing scales and zero
    points (scales in [0.0078, 0.4386]); the seed is the parameter."""

    suite = "addquant"
    seed: int
    variant: Variant

    @property
    def id(self) -> str:
        return f"{self.suite}-in40x40x1-seed{self.seed}-{self.variant.suffix}"

    @property
    def cost(self) -> int:
        return ADDQUANT_SHAPE[1] * ADDQUANT_SHAPE[2]

    def build(self) -> bytes:
        rng = self.rng(1)
        v = self.variant
        qs = [
            Q(float(rng.uniform(*ADDQUANT_SCALES)), int(rng.integers(v.qmin, v.qmax)))
            for _ in range(2)
        ]
        (ma, sa), (mc, sc) = (quant_stats(v, q) for q in qs)
        out_q = range_quant(v, ma + mc, (sa * sa + sc * sc) ** 0.5)
        b = ModelBuilder(self.id)
        a, c = (b.tensor(ADDQUANT_SHAPE, v.dtype, **q.kwargs()) for q in qs)
        out = b.tensor(ADDQUANT_SHAPE, v.dtype, **out_q.kwargs())
        b.op("ADD", [a, c], [out], options("ADD"))
        return b.build([a, c], [out])


# Fused activations as TFLite names them, for the ``convx`` suite.
ACTIVATIONS = {
    "none": schema.ActivationFunctionType.NONE,
    "relu": schema.ActivationFunctionType.RELU,
    "relu6": schema.ActivationFunctionType.RELU6,
    "relun1": schema.ActivationFunctionType.RELU_N1_TO_1,
}


@dataclass(frozen=True, slots=True)
class ConvExtraCase(Case):
    """What Mesa's sweeps leave out: non-square inputs and kernels, unequal strides, dilation,
    fused activations and (depthwise) a depth multiplier."""

    suite = "convx"
    depthwise: bool
    size: tuple[int, int]
    kernel: tuple[int, int]
    ic: int
    oc: int  # for depthwise: ic times the depth multiplier
    stride: tuple[int, int]
    dilation: int
    same: bool
    act: str  # a key of ACTIVATIONS
    variant: Variant

    @property
    def id(self) -> str:
        kind = "dwconv" if self.depthwise else "conv"
        return (
            f"convx-{kind}-in{self.size[0]}x{self.size[1]}-k{self.kernel[0]}x{self.kernel[1]}"
            f"-ic{self.ic}-oc{self.oc}-s{self.stride[0]}x{self.stride[1]}-d{self.dilation}"
            f"-{_pad_name(self.same)}-{self.act}-{self.variant.suffix}"
        )

    def _out(self) -> tuple[int, int]:
        return tuple(
            out_size(n, (k - 1) * self.dilation + 1, s, self.same)
            for n, k, s in zip(self.size, self.kernel, self.stride, strict=True)
        )

    @property
    def cost(self) -> int:
        oh, ow = self._out()
        per_output = self.kernel[0] * self.kernel[1] * (1 if self.depthwise else self.ic)
        return oh * ow * self.oc * per_output

    def build(self) -> bytes:
        v = self.variant
        b = ModelBuilder(self.id)
        in_q = activation_quant(v, self.rng(1))
        src = b.tensor((1, *self.size, self.ic), v.dtype, **in_q.kwargs())
        kh, kw = self.kernel
        shape, axis = (
            ((1, kh, kw, self.oc), 3) if self.depthwise else ((self.oc, kh, kw, self.ic), 0)
        )
        w = make_weights(v, self.rng(2), shape, axis)
        out_q = accumulator_quant(v, in_q, w, axis)
        out = b.tensor((1, *self._out(), self.oc), v.dtype, **out_q.kwargs())
        wt, bt = add_weights(b, v, w, in_q, axis)
        name = "DEPTHWISE_CONV_2D" if self.depthwise else "CONV_2D"
        fields = dict(
            padding=schema.Padding.SAME if self.same else schema.Padding.VALID,
            strideH=self.stride[0],
            strideW=self.stride[1],
            dilationHFactor=self.dilation,
            dilationWFactor=self.dilation,
            fusedActivationFunction=ACTIVATIONS[self.act],
        )
        if self.depthwise:
            fields["depthMultiplier"] = self.oc // self.ic
        b.op(name, [src, wt, bt], [out], options(name, **fields))
        return b.build([src], [out])


def convx_cases() -> list[ConvExtraCase]:
    return [
        ConvExtraCase(dw, size, k, 8, 16, s, d, same, act, v)
        for v, dw, size, k, s, d, same, act in product(
            WEIGHTED,
            (False, True),
            ((7, 5), (9, 9)),
            ((1, 3), (3, 3), (3, 2)),
            ((1, 1), (2, 1), (2, 2)),
            (1, 2),
            PADDINGS,
            tuple(ACTIVATIONS),
        )
    ]


def conv_cases(cls: type[ConvCase] = ConvCase) -> list[ConvCase]:
    return [
        cls(size, k, ic, oc, stride, same, v)
        for v, same, stride, oc, ic, k, size in product(
            WEIGHTED, PADDINGS, STRIDES, OUT_CHANNELS, IN_CHANNELS, KERNELS, INPUT_SIZES
        )
        if k <= size
    ]


def add_cases() -> list[ConvCase]:
    return conv_cases(AddCase)


def dwconv_cases() -> list[DepthwiseCase]:
    return [
        DepthwiseCase(size, k, c, stride, same, v)
        for v, same, stride, c, k, size in product(
            WEIGHTED, PADDINGS, STRIDES, DW_CHANNELS, DW_KERNELS, INPUT_SIZES
        )
        if k <= size
    ]


def fc_cases() -> list[FullyConnectedCase]:
    return [
        FullyConnectedCase(f, u, v) for v, u, f in product(WEIGHTED, OUT_CHANNELS, FC_INPUT_SIZES)
    ]


def addquant_cases() -> list[AddQuantCase]:
    return [AddQuantCase(s, v) for v, s in product(UNWEIGHTED, range(ADDQUANT_SEEDS))]
