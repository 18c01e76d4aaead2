"""ADD and SUB for convolution hardware, in the two ways our drivers do it.

**lower_add_to_conv** (etnaviv, etnaviv-ml.md §1 "ADD / SUB"): the two operands are
concatenated along channels (etnaviv places the two buffers back to back) and one 1x1
convolution with ``2C`` input and ``C`` output channels adds them. The concatenated tensor
holds the operands' raw bytes: the *reference* operand ``p`` (the one with the larger scale)
as it is, the other, ``o``, through a same-shape RESHAPE that reinterprets its bytes with
``p``'s quantization (a CONCATENATION of differently quantized inputs would requantize them,
as TFLite's does). ``r = s_o / s_p <= 1``, and ``c_p, c_o = ±1`` are the signs of the
operation (SUB negates the second operand).

What the convolution computes, exactly, with integer weights ``P`` (on ``p``'s channel) and
``O`` (on ``o``'s channel) relative to the weight zero point, weight scale ``ws = fl32(1/A)``
and an int32 bias ``B``::

    real = s_p · ws · ( P·(q_p − z_p) + O·(q_o − z_p) + B )

TFLite's ADD computes ``c_p·s_p·(q_p − z_p) + c_o·s_o·(q_o − z_o)``, which is the above when
``P·ws = c_p``, ``O·ws = c_o·r`` and ``B·ws = c_o·r·(z_p − z_o)``. We take ``P = c_p·A``,
``O = c_o·round(r·A)``, ``B = round(c_o·r·(z_p − z_o)/ws)`` and pick the ``A`` (within the
weight type's range) that minimises the error bound. Mesa quantizes the weight pair over
[min, max] with ``calc_quant_params`` instead; the best rational approximation here is never
worse. The bound, in output LSB (``add_as_conv`` computes it per node)::

    δ = s_p/s_out · ( |P·ws − c_p|·X_p + |O·ws − c_o·r|·X_o + |B·ws − c_o·r·(z_p − z_o)| )
    |q_conv − q_add| <= floor(δ + ε) + 1

where ``X_p = max|q − z_p|`` over the input type, ``X_o`` the same for ``o``'s values read
with ``p``'s zero point, and ``ε = 3·max(s_a, s_b)/(2^20·s_out) + 10^-4`` covers TFLite ADD's
20-bit input scaling and the 31-bit requantization multipliers. Two values within ``δ + ε``
of each other round at most ``floor(δ + ε) + 1`` apart. For mobilenet's ADDs ``δ < 1``.

**lower_add_into_conv** (rocket, rocket-nvdla.md §3 "ADD via the EW stage"): an ADD whose
operand is produced by a CONV with no other user becomes one CONV_ADD node. Its definition
(``ConvAddParams``) is the two operations in sequence, so it is exact by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...gallium.operation import AxisParams, ConvParams, ElementwiseParams
from ...gallium.tensor import ElementType, Quant
from ...util.fixedpoint import round_half_away
from ..ir import Graph, Node, Op
from ..params import ConvAddParams
from ..rewrite import rewrite_graph, rules
from .common import constant, derived, sole_consumer

# TFLite ADD scales inputs by 2^20 before adding (``left_shift = 20`` in add.cc Prepare).
TFLITE_ADD_LEFT_SHIFT = 20
# TFLite's int8 weights are symmetric in [-127, 127] (quantization spec, "int8 weights").
INT8_WEIGHT_MIN = -127


@dataclass(frozen=True, slots=True)
class AddAsConv:
    """The numbers of one ADD/SUB lowered to a convolution, and its error bound."""

    reference: int  # which operand (0 or 1) is p, the one with the larger scale
    p_weight: int  # P, relative to the weight zero point
    o_weight: int  # O
    weight_zero_point: int
    weight_scale: float  # fl32(1/A)
    bias: int
    delta: float  # δ in output LSB
    bound: int  # floor(δ + ε) + 1


def _weight_range(dtype: ElementType, zero_point: int) -> tuple[int, int]:
    lo = INT8_WEIGHT_MIN if dtype is ElementType.INT8 else dtype.qmin
    return lo - zero_point, dtype.qmax - zero_point


def add_as_conv(node: Node) -> AddAsConv:
    """The convolution that computes ``node`` (an ADD or SUB) and its bound (see module doc)."""
    a, b = node.inputs
    signs = (1, -1) if node.op is Op.SUB else (1, 1)
    p = 0 if a.quant.scale >= b.quant.scale else 1
    o = 1 - p
    tp, to = node.inputs[p], node.inputs[o]
    sp, so, sout = (float(np.float32(t.quant.scale)) for t in (tp, to, node.output))
    zp, zo = tp.quant.zero_point, to.quant.zero_point
    cp, co = signs[p], signs[o]
    r = so / sp
    dtype = tp.dtype
    wzp = 0 if dtype is ElementType.INT8 or (cp > 0 and co > 0) else 128
    lo, hi = _weight_range(dtype, wzp)
    x_ref = max(dtype.qmax - zp, zp - dtype.qmin)
    eps = 3 * max(sp, so) / ((1 << TFLITE_ADD_LEFT_SHIFT) * sout) + 1e-4
    best: AddAsConv | None = None
    for big in range(1, max(hi, -lo) + 1):
        pw, ow = cp * big, co * round_half_away(r * big)
        if not (lo <= pw <= hi and lo <= ow <= hi):
            continue
        ws = float(np.float32(1.0 / big))
        bias = round_half_away(co * r * (zp - zo) / ws)
        delta = (sp / sout) * (
            abs(pw * ws - cp) * x_ref
            + abs(ow * ws - co * r) * x_ref
            + abs(bias * ws - co * r * (zp - zo))
        )
        if best is None or delta < best.delta:
            bound = int(np.floor(delta + eps)) + 1
            best = AddAsConv(p, pw, ow, wzp, ws, bias, delta, bound)
    assert best is not None, "no weight pair fits the weight type"
    return best


def _add_to_conv(graph: Graph, node: Node, ctx: None) -> list[Node] | None:
    a, b = node.inputs
    out = node.output
    if a.shape != out.shape or b.shape != out.shape or a.is_constant or b.is_constant:
        return None
    if out.dtype not in (ElementType.UINT8, ElementType.INT8) or a.dtype is not b.dtype:
        return None
    if a.quant.per_axis or b.quant.per_axis:
        return None
    plan = add_as_conv(node)
    tp, to = node.inputs[plan.reference], node.inputs[1 - plan.reference]
    n, h, w, c = out.shape
    raw, reinterpret = to, []
    if to.quant != tp.quant:  # same bytes, read with p's quantization (no requantization)
        raw = derived(to, "raw", quant=tp.quant)
        reinterpret = [Node(Op.RESHAPE, (to,), (raw,))]
    joined = derived(tp, "add_in", shape=(n, h, w, 2 * c), rank=4)
    concat = Node(Op.CONCAT, (tp, raw), (joined,), AxisParams(3))
    weights = np.full((c, 1, 1, 2 * c), plan.weight_zero_point, dtype=np.int64)
    channels = np.arange(c)
    weights[channels, 0, 0, channels] += plan.p_weight
    weights[channels, 0, 0, c + channels] += plan.o_weight
    w_quant = Quant(plan.weight_scale, plan.weight_zero_point)
    wt = constant(tp, weights.astype(tp.dtype.numpy), "add_w", quant=w_quant, rank=4)
    b_quant = Quant(tp.quant.scale * plan.weight_scale, 0)
    bias = np.full((1, 1, 1, c), plan.bias, dtype=np.int32)
    bt = constant(tp, bias, "add_b", dtype=ElementType.INT32, quant=b_quant, rank=1)
    conv = Node(Op.CONV, (joined, wt, bt), (out,), ConvParams(clamp=node.params.clamp))
    return [*reinterpret, concat, conv]


def lower_add_to_conv(graph: Graph) -> bool:
    """Lower each same-shape, two-activation uint8/int8 ADD and SUB to RESHAPE (a byte
    reinterpretation) + CONCAT + 1x1 CONV.

    Preconditions: ADD/SUB params are ``ElementwiseParams`` (asserted). Not exact: within
    ``add_as_conv(node).bound`` LSB of TFLite's ADD (1 LSB for mobilenet's ADDs).
    """
    assert all(isinstance(n.params, ElementwiseParams) for n in graph if n.op in (Op.ADD, Op.SUB))
    return rewrite_graph(graph, ADD_TO_CONV_RULES)


ADD_TO_CONV_RULES = rules((frozenset({Op.ADD, Op.SUB}), _add_to_conv))


@dataclass(frozen=True, slots=True)
class _FuseCtx:
    operands: tuple[int, ...]


def _fuse_add(graph: Graph, node: Node, ctx: _FuseCtx) -> list[Node] | None:
    out = node.output
    for k in ctx.operands:
        mid, other = node.inputs[k], node.inputs[1 - k]
        conv = graph.producer(mid)
        if conv is None or conv.op is not Op.CONV or sole_consumer(graph, mid) is not node:
            continue
        if mid.shape != out.shape or other.shape != out.shape or mid.dtype is not out.dtype:
            continue
        if mid.quant.per_axis or other is mid:
            continue
        params = ConvAddParams(
            conv=conv.params,
            conv_scale=mid.quant.scale,
            conv_zero_point=mid.quant.zero_point,
            conv_first=k == 0,
            clamp=node.params.clamp,
        )
        weight, bias = conv.inputs[1], (*conv.inputs, None)[2]
        return [Node(Op.CONV_ADD, (conv.input, weight, bias, other), (out,), params)]
    return None


FUSE_RULES = rules((Op.ADD, _fuse_add))


def lower_add_into_conv(graph: Graph, *, operand: str = "first") -> bool:
    """Fuse each ADD into the CONV producing one of its operands, giving a CONV_ADD.

    Options: ``operand`` is ``"first"`` (rocket fuses into the producer of the first input
    only) or ``"either"``. The conv must have no other reader and the shapes must not
    broadcast. Preconditions: ADD params are ``ElementwiseParams`` (asserted). Exact: CONV_ADD
    is defined as the conv (requantized to its old output) followed by the ADD.
    """
    assert operand in ("first", "either"), f"operand must be first or either, not {operand}"
    assert all(isinstance(n.params, ElementwiseParams) for n in graph if n.op is Op.ADD)
    return rewrite_graph(graph, FUSE_RULES, _FuseCtx((0,) if operand == "first" else (0, 1)))
