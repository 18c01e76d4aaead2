"""Single-operation cases beyond Mesa's sweeps: pooling, data movement, activations, resize.

Each record lists its parameters; the module-level ``*_cases()`` functions give the full
sweep of each suite. Data-movement operations keep the input's quantization on the output (TFLite
requires it for pooling, pad, split, reshape, slice, transpose and resize); operations that
compute pick an output quantization that covers their real output range.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from ....gallium.tensor import ElementType
from ..writer import ModelBuilder, options
from .common import (
    UNWEIGHTED,
    Case,
    Q,
    Variant,
    activation_quant,
    quant_stats,
    range_quant,
    shape_id,
)
from .conv import out_size

ACT = schema.ActivationFunctionType


def _int32(b: ModelBuilder, values) -> int:
    arr = np.asarray(values, dtype=np.int32)
    return b.tensor(arr.shape, ElementType.INT32, data=arr)


def single_op(
    case: Case,
    builtin: str,
    in_shape: tuple[int, ...],
    in_q: Q,
    out_shape: tuple[int, ...],
    out_q: Q,
    opts=None,
    consts: tuple = (),
    out_variant: Variant | None = None,
) -> bytes:
    """A model of one operator: input, constant extra inputs (int32), output."""
    v = case.variant
    b = ModelBuilder(case.id)
    src = b.tensor(in_shape, v.dtype, **in_q.kwargs())
    out = b.tensor(out_shape, (out_variant or v).dtype, **out_q.kwargs())
    extra = [_int32(b, c) for c in consts]
    b.op(builtin, [src, *extra], [out], opts)
    return b.build([src], [out])


def span_quant(variant: Variant, lo: float, hi: float) -> Q:
    """Quantization whose integer range spans exactly [lo, hi]."""
    return range_quant(variant, (lo + hi) / 2, (hi - lo) / 6)


# -- pooling ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolCase(Case):
    suite = "pool"
    kind: str  # avg, max
    size: int
    channels: int
    filter: int
    stride: int
    same: bool
    variant: Variant

    @property
    def id(self) -> str:
        pad = "same" if self.same else "valid"
        return (
            f"pool-{self.kind}-in{self.size}x{self.size}-c{self.channels}-k{self.filter}"
            f"-s{self.stride}-{pad}-{self.variant.suffix}"
        )

    @property
    def cost(self) -> int:
        o = out_size(self.size, self.filter, self.stride, self.same)
        return o * o * self.channels * self.filter**2

    def build(self) -> bytes:
        q = activation_quant(self.variant, self.rng(1))
        o = out_size(self.size, self.filter, self.stride, self.same)
        builtin = "AVERAGE_POOL_2D" if self.kind == "avg" else "MAX_POOL_2D"
        opts = options(
            builtin,
            padding=schema.Padding.SAME if self.same else schema.Padding.VALID,
            strideH=self.stride,
            strideW=self.stride,
            filterHeight=self.filter,
            filterWidth=self.filter,
        )
        shape = (1, self.size, self.size, self.channels)
        return single_op(self, builtin, shape, q, (1, o, o, self.channels), q, opts)


def pool_cases() -> list[PoolCase]:
    return [
        PoolCase(kind, size, c, k, s, same, v)
        for v, kind, size, c, k, s, same in product(
            UNWEIGHTED, ("avg", "max"), (5, 8, 16), (1, 32), (2, 3, 5), (1, 2), (True, False)
        )
        if k <= size
    ]


# -- elementwise ------------------------------------------------------------------------------

ELEMENTWISE_SHAPES = (
    ((1, 8, 8, 16), (1, 8, 8, 16)),
    ((1, 8, 8, 16), (1, 1, 1, 16)),  # per-channel broadcast
    ((1, 5, 7, 3), (1, 5, 7, 1)),  # per-pixel broadcast
)


@dataclass(frozen=True, slots=True)
class ElementwiseCase(Case):
    """Plain ADD / SUB / MUL of two inputs (with broadcast), optionally with a fused relu."""

    suite = "elementwise"
    op: str  # add, sub, mul
    a: tuple[int, ...]
    b: tuple[int, ...]
    relu: bool
    variant: Variant

    @property
    def id(self) -> str:
        act = "-relu" if self.relu else ""
        return (
            f"{self.op}-a{shape_id(self.a[1:])}-b{shape_id(self.b[1:])}{act}-{self.variant.suffix}"
        )

    @property
    def cost(self) -> int:
        return int(np.prod(np.broadcast_shapes(self.a, self.b)))

    def build(self) -> bytes:
        v, rng = self.variant, self.rng(1)
        qa, qb = activation_quant(v, rng), activation_quant(v, rng)
        (ma, sa), (mb, sb) = quant_stats(v, qa), quant_stats(v, qb)
        if self.op == "mul":  # product of independent values
            mean = ma * mb
            std = ((sa * sa + ma * ma) * (sb * sb + mb * mb) - mean * mean) ** 0.5
        else:
            mean, std = (ma + mb if self.op == "add" else ma - mb), (sa * sa + sb * sb) ** 0.5
        out_q = range_quant(v, mean, std)
        builtin = self.op.upper()
        b = ModelBuilder(self.id)
        ta = b.tensor(self.a, v.dtype, **qa.kwargs())
        tb = b.tensor(self.b, v.dtype, **qb.kwargs())
        out = b.tensor(np.broadcast_shapes(self.a, self.b), v.dtype, **out_q.kwargs())
        act = ACT.RELU if self.relu else ACT.NONE
        b.op(builtin, [ta, tb], [out], options(builtin, fusedActivationFunction=act))
        return b.build([ta, tb], [out])


def elementwise_cases() -> list[ElementwiseCase]:
    return [
        ElementwiseCase(op, a, b, relu, v)
        for v, op, (a, b), relu in product(
            UNWEIGHTED, ("add", "sub", "mul"), ELEMENTWISE_SHAPES, (False, True)
        )
    ]


# -- concatenation and split ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConcatCase(Case):
    """CONCATENATION of ``n`` inputs; input ``i`` has ``base + 2·i`` along the axis. With
    ``mixed`` every input has its own quantization, which the op must requantize."""

    suite = "concat"
    shape: tuple[int, int, int]  # base H, W, C
    axis: int  # NHWC index 1..3
    n: int
    mixed: bool
    variant: Variant

    @property
    def id(self) -> str:
        q = "mixedq" if self.mixed else "sameq"
        return f"concat-in{shape_id(self.shape)}-ax{self.axis}-n{self.n}-{q}-{self.variant.suffix}"

    def _shapes(self) -> list[tuple[int, ...]]:
        shapes = []
        for i in range(self.n):
            s = [1, *self.shape]
            s[self.axis] += 2 * i
            shapes.append(tuple(s))
        return shapes

    @property
    def cost(self) -> int:
        return sum(int(np.prod(s)) for s in self._shapes())

    def build(self) -> bytes:
        v, rng = self.variant, self.rng(1)
        shapes = self._shapes()
        first = activation_quant(v, rng)
        qs = [activation_quant(v, rng) if self.mixed else first for _ in shapes]
        stats = [quant_stats(v, q) for q in qs]
        lo = min(m - 3**0.5 * s for m, s in stats)  # uniform: mean ± √3·σ is the range
        hi = max(m + 3**0.5 * s for m, s in stats)
        out_q = span_quant(v, lo, hi) if self.mixed else first
        out_shape = list(shapes[0])
        out_shape[self.axis] = sum(s[self.axis] for s in shapes)
        b = ModelBuilder(self.id)
        ins = [b.tensor(s, v.dtype, **q.kwargs()) for s, q in zip(shapes, qs, strict=True)]
        out = b.tensor(out_shape, v.dtype, **out_q.kwargs())
        b.op("CONCATENATION", ins, [out], options("CONCATENATION", axis=self.axis))
        return b.build(ins, [out])


def concat_cases() -> list[ConcatCase]:
    return [
        ConcatCase(shape, axis, n, mixed, v)
        for v, shape, axis, n, mixed in product(
            UNWEIGHTED, ((6, 6, 8), (5, 7, 3)), (1, 2, 3), (2, 3), (False, True)
        )
        if not (mixed and v is Variant.I8)  # int8 CONCATENATION requires one quantization
    ]


@dataclass(frozen=True, slots=True)
class SplitCase(Case):
    suite = "split"
    shape: tuple[int, int, int]
    axis: int
    n: int
    variant: Variant

    @property
    def id(self) -> str:
        return f"split-in{shape_id(self.shape)}-ax{self.axis}-n{self.n}-{self.variant.suffix}"

    @property
    def cost(self) -> int:
        return int(np.prod(self.shape))

    def build(self) -> bytes:
        v = self.variant
        q = activation_quant(v, self.rng(1))
        part = [1, *self.shape]
        part[self.axis] //= self.n
        b = ModelBuilder(self.id)
        axis = _int32(b, [self.axis])
        src = b.tensor((1, *self.shape), v.dtype, **q.kwargs())
        outs = [b.tensor(part, v.dtype, **q.kwargs()) for _ in range(self.n)]
        b.op("SPLIT", [axis, src], outs, options("SPLIT", numSplits=self.n))
        return b.build([src], outs)


def split_cases() -> list[SplitCase]:
    return [
        SplitCase(shape, axis, n, v)
        for v, shape, axis, n in product(UNWEIGHTED, ((8, 8, 16), (12, 6, 24)), (1, 2, 3), (2, 3))
        if shape[axis - 1] % n == 0
    ]


# -- pad, reshape, transpose, strided slice ---------------------------------------------------

PADDINGS = (
    ((1, 1), (1, 1), (0, 0)),
    ((0, 2), (3, 0), (0, 0)),
    ((2, 2), (0, 0), (1, 3)),
    ((0, 0), (0, 0), (4, 4)),
)


@dataclass(frozen=True, slots=True)
class PadCase(Case):
    suite = "pad"
    shape: tuple[int, int, int]
    pads: tuple[tuple[int, int], ...]  # (before, after) for H, W, C
    variant: Variant

    @property
    def id(self) -> str:
        p = "-".join(f"{axis}{a}.{z}" for axis, (a, z) in zip("hwc", self.pads, strict=True))
        return f"pad-in{shape_id(self.shape)}-{p}-{self.variant.suffix}"

    @property
    def cost(self) -> int:
        return int(np.prod([s + a + z for s, (a, z) in zip(self.shape, self.pads, strict=True)]))

    def build(self) -> bytes:
        q = activation_quant(self.variant, self.rng(1))
        out = (1, *(s + a + z for s, (a, z) in zip(self.shape, self.pads, strict=True)))
        rows = [(0, 0), *self.pads]
        return single_op(self, "PAD", (1, *self.shape), q, out, q, options("PAD"), (rows,))


def pad_cases() -> list[PadCase]:
    return [PadCase((8, 8, 16), p, v) for v, p in product(UNWEIGHTED, PADDINGS)] + [
        PadCase((5, 7, 3), p, v) for v, p in product(UNWEIGHTED, PADDINGS[:2])
    ]


RESHAPES = (
    ((1, 8, 8, 16), (1, 64, 16)),
    ((1, 8, 8, 16), (1, 1024)),
    ((1, 8, 8, 16), (1, 16, 8, 8)),
    ((1, 1, 1, 1001), (1, 1001)),
    ((1, 6, 20), (1, 2, 3, 20)),
)


@dataclass(frozen=True, slots=True)
class ReshapeCase(Case):
    suite = "reshape"
    src: tuple[int, ...]
    dst: tuple[int, ...]
    variant: Variant

    @property
    def id(self) -> str:
        return f"reshape-{shape_id(self.src)}-to-{shape_id(self.dst)}-{self.variant.suffix}"

    @property
    def cost(self) -> int:
        return int(np.prod(self.src))

    def build(self) -> bytes:
        q = activation_quant(self.variant, self.rng(1))
        opts = options("RESHAPE", newShape=list(self.dst))
        return single_op(self, "RESHAPE", self.src, q, self.dst, q, opts, (self.dst,))


def reshape_cases() -> list[ReshapeCase]:
    return [ReshapeCase(s, d, v) for v, (s, d) in product(UNWEIGHTED, RESHAPES)]


TRANSPOSES = (
    ((1, 8, 6, 4), (0, 2, 1, 3)),
    ((1, 8, 6, 4), (0, 3, 1, 2)),
    ((1, 8, 6, 4), (0, 2, 3, 1)),
    ((1, 8, 6, 4), (0, 1, 3, 2)),
    ((1, 8, 6, 4), (0, 3, 2, 1)),
    ((6, 4, 8), (2, 0, 1)),
    ((6, 4, 8), (1, 2, 0)),
)


@dataclass(frozen=True, slots=True)
class TransposeCase(Case):
    suite = "transpose"
    shape: tuple[int, ...]
    perm: tuple[int, ...]
    variant: Variant

    @property
    def id(self) -> str:
        perm = "".join(map(str, self.perm))
        return f"transpose-in{shape_id(self.shape)}-p{perm}-{self.variant.suffix}"

    @property
    def cost(self) -> int:
        return int(np.prod(self.shape))

    def build(self) -> bytes:
        q = activation_quant(self.variant, self.rng(1))
        out = tuple(self.shape[p] for p in self.perm)
        opts = options("TRANSPOSE")
        return single_op(self, "TRANSPOSE", self.shape, q, out, q, opts, (self.perm,))


def transpose_cases() -> list[TransposeCase]:
    return [TransposeCase(s, p, v) for v, (s, p) in product(UNWEIGHTED, TRANSPOSES)]


# (begin, end, strides, begin_mask, end_mask, shrink_axis_mask) on a 1x8x8x16 input.
SLICES = (
    ((0, 1, 2, 0), (1, 7, 8, 16), (1, 2, 1, 3), 0, 0, 0),
    ((0, 0, 0, 4), (1, 8, 8, 12), (1, 1, 1, 1), 0, 0, 0),
    ((0, -1, 0, 0), (1, -9, 8, 16), (1, -1, 1, 1), 0, 0, 0),  # reversed rows
    ((0, 2, 2, 0), (1, 0, 0, 0), (1, 2, 2, 2), 0, 0b1110, 0),  # end mask
    ((0, 5, 3, 1), (1, 6, 7, 9), (1, 1, 1, 1), 0b0110, 0, 0),  # begin mask
    ((0, 3, 0, 0), (1, 4, 8, 16), (1, 1, 1, 1), 0, 0, 0b0010),  # shrink H: rank 3 out
)


def _slice_shape(shape: tuple[int, ...], spec: tuple) -> tuple[int, ...]:
    """Output shape of a strided slice (Python slicing has TFLite's clamping for these)."""
    begin, end, strides, bmask, emask, smask = spec
    index = []
    for axis in range(len(shape)):
        if smask >> axis & 1:
            index.append(begin[axis])
            continue
        start = None if bmask >> axis & 1 else begin[axis]
        stop = None if emask >> axis & 1 else end[axis]
        index.append(slice(start, stop, strides[axis]))
    return np.empty(shape, np.int8)[tuple(index)].shape


@dataclass(frozen=True, slots=True)
class StridedSliceCase(Case):
    suite = "slice"
    shape: tuple[int, ...]
    spec: tuple  # one row of SLICES
    variant: Variant

    @property
    def id(self) -> str:
        begin, end, strides, bm, em, sm = self.spec

        def dots(xs):
            return ".".join(map(str, xs))

        return (
            f"slice-in{shape_id(self.shape[1:])}-b{dots(begin)}-e{dots(end)}-s{dots(strides)}"
            f"-m{bm}.{em}.{sm}-{self.variant.suffix}"
        )

    @property
    def cost(self) -> int:
        return int(np.prod(self.shape))

    def build(self) -> bytes:
        q = activation_quant(self.variant, self.rng(1))
        begin, end, strides, bm, em, sm = self.spec
        opts = options("STRIDED_SLICE", beginMask=bm, endMask=em, shrinkAxisMask=sm)
        out = _slice_shape(self.shape, self.spec)
        return single_op(self, "STRIDED_SLICE", self.shape, q, out, q, opts, (begin, end, strides))


def slice_cases() -> list[StridedSliceCase]:
    return [StridedSliceCase((1, 8, 8, 16), s, v) for v, s in product(UNWEIGHTED, SLICES)]


# -- resize -----------------------------------------------------------------------------------

RESIZE_SIZES = (((5, 5), (10, 10)), ((4, 6), (7, 9)), ((8, 8), (3, 5)), ((3, 3), (6, 6)))
# (align_corners, half_pixel_centers); TFLite refuses both at once.
RESIZE_MODES = ((False, False), (True, False), (False, True))


@dataclass(frozen=True, slots=True)
class ResizeCase(Case):
    suite = "resize"
    kind: str  # nearest, bilinear
    src: tuple[int, int]
    dst: tuple[int, int]
    channels: int
    align_corners: bool
    half_pixel: bool
    variant: Variant

    @property
    def id(self) -> str:
        return (
            f"resize-{self.kind}-in{shape_id(self.src)}-out{shape_id(self.dst)}"
            f"-c{self.channels}-ac{int(self.align_corners)}-hp{int(self.half_pixel)}"
            f"-{self.variant.suffix}"
        )

    @property
    def cost(self) -> int:
        return self.dst[0] * self.dst[1] * self.channels

    def build(self) -> bytes:
        q = activation_quant(self.variant, self.rng(1))
        builtin = "RESIZE_BILINEAR" if self.kind == "bilinear" else "RESIZE_NEAREST_NEIGHBOR"
        opts = options(builtin, alignCorners=self.align_corners, halfPixelCenters=self.half_pixel)
        src = (1, *self.src, self.channels)
        dst = (1, *self.dst, self.channels)
        return single_op(self, builtin, src, q, dst, q, opts, (self.dst,))


def resize_cases() -> list[ResizeCase]:
    return [
        ResizeCase(kind, s, d, 8, ac, hp, v)
        for v, kind, (s, d), (ac, hp) in product(
            UNWEIGHTED, ("nearest", "bilinear"), RESIZE_SIZES, RESIZE_MODES
        )
    ]
