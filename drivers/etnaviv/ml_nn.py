"""NN jobs: convolutions (dense, depthwise, reshuffled, first-pixel pooled), the ADD/SUB pair
convolution and plane copies, as job records, and their 34-word configurations (Mesa:
``etnaviv_ml_nn.c``: ``etna_ml_lower_convolution``, ``etna_ml_lower_add``,
``create_nn_config``, ``etna_ml_emit_operation_nn``).

Lowering ends in an :class:`NnJob` (plain data) plus its coefficient buffer; :func:`emit_nn_config`
is a pure function from a job and the buffer addresses to the configuration bytes, through the
generated ``NN_CONFIG.pack_words`` (which raises on any overflow). The generation-specific parts
(tiling, SRAM caching, the weight codec) live in ``ml_nn_v7`` and ``ml_nn_v8``.

Facts (brief ``etnaviv-ml.md``): hardware x is TFLite W and y is TFLite H, everywhere here
(§0 notes Mesa mixes them for non-square shapes; we do not). The NN unit computes on uint8
data: signed tensors have their zero point + 128 and their bytes offset by 128 (§4). SAME-style
padding is a negative input offset with the input zero point as border constant (§1 step 5);
right and bottom padding is whatever the programmed output size reads past the input, which is
border too. The requantization scale comes from the float32 bits of ``s_in * s_w / s_out`` (§4).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

import numpy as np

from ...gallium.operation import Clamp
from ...gallium.tensor import ElementType
from ...nir_tensor.ir import Node, Op, Tensor
from ...util.fixedpoint import float32_parts, float32_rounded_parts, mantissa_top_bits
from . import etnaviv_regs as E
from .options import NpuTarget

# -- field limits, from the register XML ------------------------------------------------------


def field_bits(name: str, domain=E.NN_CONFIG) -> tuple[int, bool]:
    """(width, signed) of a field or joined value of a job configuration."""
    for join in domain.joins:
        if join.name == name:
            return join.width, join.signed
    for reg in domain.registers:
        for f in reg.fields:
            if f.name == name:
                return f.high - f.low + 1, f.signed
    raise KeyError(f"{domain.name} has no field {name}")


def field_max(name: str, domain=E.NN_CONFIG) -> int:
    width, signed = field_bits(name, domain)
    return (1 << (width - 1)) - 1 if signed else (1 << width) - 1


def field_min(name: str, domain=E.NN_CONFIG) -> int:
    width, signed = field_bits(name, domain)
    return -(1 << (width - 1)) if signed else 0


MAX_IMAGE_XY = field_max("IN_IMAGE_X_SIZE")  # 13 bits
MAX_IMAGE_Z = field_max("OUT_IMAGE_Z_SIZE")  # 14 bits
MAX_KERNEL_Z = field_max("KERNEL_Z_SIZE")  # 20 bits (joined)
MAX_KERNEL_XY = field_max("KERNEL_XY_SIZE")  # 4 bits
MAX_KERNEL_Y = field_max("KERNEL_Y_SIZE")
MAX_STRIDE = field_max("IN_IMAGE_X_STRIDE")  # 16 bits
MAX_PADDING = -field_min("IN_IMAGE_X_OFFSET")  # the 4-bit signed input offset reaches -8
MAX_KERNELS_PER_CORE = field_max("KERNELS_PER_CORE")  # 7 bits
MAX_POST_SHIFT = field_max("POST_SHIFT")

# brief §4: the multiplier keeps the top 15 mantissa bits on v7 and all 23 on v8, and the shift
# is 142 - e on v7 and 127 - e on v8 (Mesa's QNNPACK-derived formula: 126 - e + 16, 126 - e + 1).
MULTIPLIER_BITS = {7: 15, 8: 23}
POST_SHIFT_BASE = {7: 142, 8: 127}
ROUNDING_TO_NEAREST = 1  # ROUNDING_MODE: Mesa writes 1 (round to nearest, per the blob)
SIGNED_OFFSET = 128  # int8 data is offset to uint8 (brief §4)
UINT8_MAX = 255
ALIGNMENT = 64  # buffer alignment: KERNEL_ADDRESS stores VA >> 6


class Bo(enum.Enum):
    """The buffer objects of a compiled subgraph, in their order inside its VA window."""

    CONFIG = "config"  # NN and TP job configurations
    COEFF = "coeff"  # compressed weights
    LUT = "lut"  # TP PWL lookup tables
    ARENA = "arena"  # every tensor, placed by the memory planner


@dataclass(frozen=True, slots=True)
class Ref:
    """A byte offset inside one of the subgraph's buffer objects."""

    bo: Bo
    offset: int


Addresses = dict[Bo, int]  # GPU VA of each buffer object


def va(ref: Ref, addresses: Addresses) -> int:
    return addresses[ref.bo] + ref.offset


# -- job records ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConvShape:
    """The convolution as the NN unit sees it (x = width). ``out_x``/``out_y`` are the stored
    output; with ``pooling`` the unit computes twice that and keeps the first pixel of each 2x2."""

    in_x: int
    in_y: int
    in_z: int
    out_x: int
    out_y: int
    out_z: int
    kx: int
    ky: int
    offset_x: int = 0
    offset_y: int = 0
    pooling: bool = False
    depthwise: bool = False  # v8 hardware depthwise

    @property
    def computed_x(self) -> int:
        return 2 * self.out_x if self.pooling else self.out_x

    @property
    def computed_y(self) -> int:
        return 2 * self.out_y if self.pooling else self.out_y

    @property
    def macs(self) -> int:
        depth = 1 if self.depthwise else self.in_z
        return self.computed_x * self.computed_y * self.out_z * self.kx * self.ky * depth


@dataclass(frozen=True, slots=True)
class Requant:
    """Zero points (hardware domain, uint8) and the post multiplier/shift of one job."""

    in_zp: int
    weight_zp: int
    out_zp: int
    post_multiplier: int
    post_shift: int
    relu: bool = False


@dataclass(frozen=True, slots=True)
class Tiling:
    """Output tile and kernel grouping of one job (brief §5)."""

    tile_x: int
    tile_y: int
    interleave: int
    superblocks: int
    kernels_per_core: int  # the config field: kernels per core per superblock


@dataclass(frozen=True, slots=True)
class SramPlan:
    """The v7 SRAM caching fields of one job (brief §5); all NO_CACHE on v8 or with sram=off."""

    kernel_mode: E.SramCacheMode = E.SramCacheMode.NO_CACHE
    image_mode: E.SramCacheMode = E.SramCacheMode.NO_CACHE
    kernel_start: int = 0
    kernel_end: int = 0
    image_start: int = 0
    image_end: int = 0
    pattern_msb: int = 0
    pattern_low: int = 0
    pattern_high: int = 0


@dataclass(frozen=True, slots=True)
class NnJob:
    origin: int  # source-model operation
    name: str
    version: int
    shape: ConvShape
    quant: Requant
    tiling: Tiling
    sram: SramPlan
    input: Ref
    output: Ref
    coef: Ref
    coef_bytes: int
    nn_cores: int  # cores the job may use
    hang: bool = False  # ETNA_DEBUG=inject=hang: NN_LAYER_FLUSH 0, a layer that never completes


@dataclass(frozen=True, slots=True)
class Coefficients:
    """A coefficient buffer and what the tiling and SRAM plan need to know of it."""

    data: bytes
    cache_size: int  # Mesa's "coef cache size" (v7: largest stream x cores; v8: buffer size)
    detail: str  # codec choice, for ETNA_DEBUG=msgs


# -- requantization and the uint8 domain ------------------------------------------------------


def requant_fields(scale: float, version: int, nearest: bool = True) -> tuple[int, int]:
    """(post_multiplier, post_shift) of ``scale`` from its float32 bits (brief §4): the top
    ``MULTIPLIER_BITS`` mantissa bits and ``POST_SHIFT_BASE - exponent``. Mesa truncates the
    mantissa; ``nearest`` rounds it (ties to even, carrying into the exponent), which halves
    the multiplier's error (``EtnaOptions.requant``). Raises ValueError when the shift does not
    fit its 7 bits."""
    sign, exponent, mantissa = float32_parts(scale)
    bits = MULTIPLIER_BITS[version]
    if nearest and not sign and scale != 0.0:
        exponent, multiplier = float32_rounded_parts(scale, bits)
    else:
        multiplier = mantissa_top_bits(mantissa, bits)
    shift = POST_SHIFT_BASE[version] - exponent
    if sign or scale == 0.0 or not 0 <= shift <= MAX_POST_SHIFT:
        raise ValueError(f"requantization scale {scale:.6g} is outside the post shift range")
    return multiplier, shift


def representable_scale(scale: float, version: int) -> bool:
    try:
        requant_fields(scale, version)
    except ValueError:
        return False
    return True


def hw_zero_point(t: Tensor) -> int:
    """The zero point the hardware sees: + 128 for signed tensors (brief §4)."""
    return t.quant.zero_point + (SIGNED_OFFSET if t.dtype is ElementType.INT8 else 0)


def hw_bytes(data: np.ndarray) -> np.ndarray:
    """uint8 view of 8-bit data in the hardware domain (int8 bytes offset by 128)."""
    if data.dtype == np.int8:
        return (data.view(np.uint8) ^ 0x80).astype(np.uint8)
    return np.asarray(data, dtype=np.uint8)


def conv_scale(node: Node) -> float:
    """``s_in * s_w / s_out`` in double, rounded once to float32 by :func:`requant_fields`
    (channel 0's weight scale for per-axis weights)."""
    inp, weight, out = node.inputs[0], node.inputs[1], node.output
    s_w = weight.quant.scales[0] if weight.quant.scales else weight.quant.scale
    return inp.quant.scale * s_w / out.quant.scale


@dataclass(frozen=True, slots=True)
class ClampPlan:
    """How a fused clamp ``[lo, hi]`` is done (uint8 domain): the NN unit's ``relu`` bit clamps
    at the output zero point; an upper bound below 255 raises the output zero point by
    ``raise_by`` so saturation clamps there, and a TP job (``ml_tp.clamp_jobs``' second half)
    lowers it back and applies ``lo``. Exact."""

    relu: bool = False
    raise_by: int = 0
    lo: int = 0
    fixup: bool = False  # a TP job follows


def clamp_plan(clamp: Clamp | None, out: Tensor) -> ClampPlan | None:
    """The :class:`ClampPlan` of a clamp (output domain) on ``out``, None when it cannot be
    done (an upper bound below the output zero point)."""
    if clamp is None:
        return ClampPlan()
    shift = hw_zero_point(out) - out.quant.zero_point
    zp = hw_zero_point(out)
    lo, hi = max(clamp.lo + shift, 0), min(clamp.hi + shift, UINT8_MAX)
    if hi < zp or lo > hi:
        return None
    if lo == 0 and hi == UINT8_MAX:
        return ClampPlan()  # saturation to uint8 is the clamp
    raise_by = UINT8_MAX - hi
    relu = lo >= zp
    fixup = raise_by > 0 or lo > zp or (lo > 0 and not relu)
    return ClampPlan(relu, raise_by, lo, fixup)


# -- ADD/SUB as a convolution over two planes --------------------------------------------------


@dataclass(frozen=True, slots=True)
class PairSum:
    """A 1x1 convolution whose output channel c reads only input channels c and C + c, with the
    same two weights and bias for every c: what ``lower_add_to_conv`` makes of an ADD/SUB."""

    p_weight: int  # raw weight bytes (model domain)
    o_weight: int
    bias: int


def pair_sum(node: Node) -> PairSum | None:
    """The :class:`PairSum` form of a CONV node, or None (see there)."""
    if node.op is not Op.CONV or node.params.depthwise or node.params.stride != (1, 1):
        return None
    weight = node.inputs[1]
    if weight.quant.per_axis or weight.shape[1:3] != (1, 1):
        return None
    c = node.output.shape[3]
    if weight.shape[3] != 2 * c or node.input.shape[3] != 2 * c:
        return None
    w = weight.data.reshape(c, 2 * c).astype(np.int64)
    zp = weight.quant.zero_point
    diag = np.arange(c)
    p, o = w[diag, diag], w[diag, c + diag]
    rest = w.copy()
    rest[diag, diag] = zp
    rest[diag, c + diag] = zp
    bias = _bias(node, c)
    if (rest != zp).any() or (p != p[0]).any() or (o != o[0]).any() or (bias != bias[0]).any():
        return None
    return PairSum(int(p[0]), int(o[0]), int(bias[0]))


def plane_shape(elements: int) -> tuple[int, int] | None:
    """(x, y) of a plane holding ``elements`` bytes, each within the 13-bit image size: Mesa's
    widths for its v7 ADD (128, 64, 32, else the largest divisor below 64,
    ``etna_ml_calc_addition_sizes``) when they fit, else the widest x that does."""
    for x in (128, 64, 32, *range(63, 0, -1)):
        if elements % x == 0 and elements // x <= MAX_IMAGE_XY:
            return x, elements // x
    for x in range(min(elements, MAX_IMAGE_XY), 0, -1):
        if elements % x == 0 and elements // x <= MAX_IMAGE_XY:
            return x, elements // x
    return None


# -- lowering: what each job computes -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NnWork:
    """One NN job before tiling: its convolution, requantization and hardware-domain weights.

    ``weights`` are uint8 [OC, IC, KH, KW] (KW = x fastest, Mesa's ``transpose()`` order), or
    [OC, 1, KH, KW] for a depthwise convolution: run in hardware on v8, expanded to a dense one
    on v7 (``codec_v7.encode_v7_depthwise`` codes the expansion from the diagonal alone).
    """

    origin: int
    name: str
    shape: ConvShape
    quant: Requant
    weights: np.ndarray
    biases: np.ndarray  # int32 [OC]
    input: Ref
    output: Ref


def _bias(node: Node, count: int) -> np.ndarray:
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if bias is None:
        return np.zeros(count, dtype=np.int32)
    return bias.data.reshape(-1).astype(np.int32)


def _quant(node: Node, weight_zp: int, scale: float, target: NpuTarget) -> Requant:
    multiplier, shift = requant_fields(scale, target.version, target.options.nearest)
    plan = clamp_plan(node.params.clamp, node.output)
    assert plan is not None, f"{node!r}: fused clamp {node.params.clamp} cannot be done"
    out_zp = hw_zero_point(node.output) + plan.raise_by
    return Requant(hw_zero_point(node.input), weight_zp, out_zp, multiplier, shift, plan.relu)


def channel_groups(node: Node, target: NpuTarget) -> list[tuple[int, int, float]]:
    """(first, end, requantization scale) of the runs of output channels that share one post
    multiplier and shift: one run for per-tensor weights; with per-axis weights (``per_axis=
    split``) usually one per channel, since the hardware has one multiplier per job."""
    weight, out_c = node.inputs[1], node.output.shape[3]
    if not weight.quant.per_axis:
        return [(0, out_c, conv_scale(node))]
    scales = weight.quant.channel_scales(out_c) * node.input.quant.scale / node.output.quant.scale
    fields = [requant_fields(float(s), target.version, target.options.nearest) for s in scales]
    groups, first = [], 0
    for c in range(1, out_c + 1):
        if c == out_c or fields[c] != fields[first]:
            groups.append((first, c, float(scales[first])))
            first = c
    return groups


def conv_works(node: Node, target: NpuTarget, input: Ref, output: Ref) -> list[NnWork]:
    """A CONV node as NN jobs: one, or one per channel group (:func:`channel_groups`); a group
    writes its own output planes (and reads its own input planes when depthwise)."""
    whole = conv_work(node, target, input, output)
    groups = channel_groups(node, target)
    if len(groups) == 1:
        return [whole]
    s = whole.shape
    in_plane, out_plane = s.in_x * s.in_y, s.out_x * s.out_y
    depthwise = whole.weights.shape[1] == 1 and node.params.depthwise
    works = []
    for first, end, scale in groups:
        shape = replace(s, out_z=end - first, in_z=end - first if depthwise else s.in_z)
        quant = _quant(node, whole.quant.weight_zp, scale, target)
        src = Ref(input.bo, input.offset + (first * in_plane if depthwise else 0))
        dst = Ref(output.bo, output.offset + first * out_plane)
        works.append(
            NnWork(
                node.origin,
                f"conv#{node.origin}.{first}",
                shape,
                quant,
                whole.weights[first:end],
                whole.biases[first:end],
                src,
                dst,
            )
        )
    return works


def conv_work(node: Node, target: NpuTarget, input: Ref, output: Ref) -> NnWork:
    """A CONV node (after the pipeline: stride 1, or stride 2 left for first-pixel pooling;
    dense, or depthwise with multiplier 1) as one NN job (per-axis weights: the quantization
    of channel 0; :func:`conv_works` splits them)."""
    p = node.params
    inp, weight, out = node.input, node.inputs[1], node.output
    _, _, in_w, in_c = inp.shape
    in_h = inp.shape[1]
    _, out_h, out_w, out_c = out.shape
    pooling = p.stride != (1, 1)
    assert p.stride in ((1, 1), (2, 2)) and p.dilation == (1, 1), f"{node!r}: {p}"
    w = hw_bytes(weight.data)
    if p.depthwise:
        assert weight.shape[3] == in_c == out_c, f"{node!r}: depthwise multiplier > 1"
        oihw = np.ascontiguousarray(w[0].transpose(2, 0, 1)[:, None])
    else:
        oihw = np.ascontiguousarray(w.transpose(0, 3, 1, 2))
    shape = ConvShape(
        in_x=in_w,
        in_y=in_h,
        in_z=in_c,
        out_x=out_w,
        out_y=out_h,
        out_z=out_c,
        kx=oihw.shape[3],
        ky=oihw.shape[2],
        offset_x=-p.padding.left,
        offset_y=-p.padding.top,
        pooling=pooling,
        depthwise=p.depthwise and target.version >= 8,
    )
    quant = _quant(node, hw_zero_point(weight), conv_scale(node), target)
    return NnWork(
        node.origin, f"conv#{node.origin}", shape, quant, oihw, _bias(node, out_c), input, output
    )


def pair_work(node: Node, pair: PairSum, target: NpuTarget, input: Ref, output: Ref) -> NnWork:
    """The ADD/SUB pair convolution over two planes: both operands' bytes as one plane each
    (back to back in the concatenation's buffer), one output plane."""
    elements = math.prod(node.output.shape)
    x, y = plane_shape(elements)
    shape = ConvShape(in_x=x, in_y=y, in_z=2, out_x=x, out_y=y, out_z=1, kx=1, ky=1)
    weight = node.inputs[1]
    raw = np.array([pair.p_weight, pair.o_weight], dtype=weight.dtype.numpy)
    w = hw_bytes(raw).reshape(1, 2, 1, 1)
    quant = _quant(node, hw_zero_point(weight), conv_scale(node), target)
    bias = np.array([pair.bias], dtype=np.int32)
    return NnWork(node.origin, f"add#{node.origin}", shape, quant, w, bias, input, output)


def copy_work(
    origin: int,
    name: str,
    src: Tensor,
    dst: Tensor,
    elements: int,
    target: NpuTarget,
    input: Ref,
    output: Ref,
    clamp: ClampPlan = ClampPlan(),
) -> NnWork:
    """Copy (and requantize, when the quantizations differ) ``elements`` bytes of ``src`` to
    ``dst``: a 1x1 convolution of one plane with weight 1 (zero point 0) and scale
    ``s_src / s_dst``, with an optional clamp (:class:`ClampPlan`). Exact for equal scales
    (the multiplier is then exactly one)."""
    shape = plane_shape(elements)
    if shape is None:
        raise ValueError(f"{elements} bytes do not fit one NN plane")
    x, y = shape
    shape = ConvShape(in_x=x, in_y=y, in_z=1, out_x=x, out_y=y, out_z=1, kx=1, ky=1)
    weight = copy_weight(src.quant.scale / dst.quant.scale, target.version)
    scale = src.quant.scale / dst.quant.scale / weight
    multiplier, shift = requant_fields(scale, target.version, target.options.nearest)
    out_zp = hw_zero_point(dst) + clamp.raise_by
    quant = Requant(hw_zero_point(src), 0, out_zp, multiplier, shift, clamp.relu)
    w = np.full((1, 1, 1, 1), weight, dtype=np.uint8)
    return NnWork(origin, name, shape, quant, w, np.zeros(1, np.int32), input, output)


def copy_weight(scale: float, version: int) -> int:
    """The integer weight of a copy job: 1, or the smallest that brings the remaining scale
    into the post shift's range (v8's shift ``127 - e`` needs a scale below 2)."""
    for weight in range(1, UINT8_MAX + 1):
        if representable_scale(scale / weight, version):
            return weight
    raise ValueError(f"copy scale {scale:.6g} is outside the post shift range")


def copy_scale_ok(scale: float, version: int) -> bool:
    try:
        copy_weight(scale, version)
    except ValueError:
        return False
    return True


# -- emission -------------------------------------------------------------------------------------


def emit_nn_config(job: NnJob, addresses: Addresses) -> bytes:
    """The 136-byte NN configuration of ``job`` (brief §2; Mesa ``create_nn_config``)."""
    s, q, t, c = job.shape, job.quant, job.tiling, job.sram
    v8 = job.version >= 8
    offset = s.offset_x != 0 or s.offset_y != 0
    return E.NN_CONFIG.pack_words(
        LAYER_TYPE=E.NnLayerType.LAYER_CONV,
        NO_Z_OFFSET=int(v8),
        KERNEL_XY_SIZE=s.kx,
        KERNEL_Y_SIZE=s.ky,
        KERNEL_Z_SIZE=s.in_z,
        KERNELS_PER_CORE=t.kernels_per_core,
        POOLING=E.NnPooling.POOLING_FIRST_PIXEL if s.pooling else E.NnPooling.POOLING_NON,
        POOLING_XY_SIZE=0 if s.pooling else 1,
        NN_LAYER_FLUSH=0 if job.hang else 1,
        KERNEL_DATA_TYPE=E.NnDataType.INT8,
        IN_IMAGE_DATA_TYPE=E.NnDataType.INT8,
        OUT_IMAGE_DATA_TYPE=E.NnDataType.INT8,
        IN_IMAGE_X_SIZE=s.in_x,
        IN_IMAGE_Y_SIZE=s.in_y,
        IN_IMAGE_X_OFFSET=s.offset_x,
        IN_IMAGE_Y_OFFSET=s.offset_y,
        RELU=int(q.relu),
        POST_MULTIPLIER=q.post_multiplier,
        POST_SHIFT=q.post_shift,
        NO_FLUSH=int(v8),
        OUT_IMAGE_X_SIZE=s.computed_x,
        OUT_IMAGE_Y_SIZE=s.computed_y,
        OUT_IMAGE_Z_SIZE=s.out_z,
        ROUNDING_MODE=ROUNDING_TO_NEAREST,
        OUT_IMAGE_TILE_X_SIZE=t.tile_x,
        OUT_IMAGE_TILE_Y_SIZE=t.tile_y,
        KERNEL_ADDRESS=va(job.coef, addresses),
        IN_IMAGE_ADDRESS=va(job.input, addresses),
        OUT_IMAGE_ADDRESS=va(job.output, addresses),
        IMAGE_CACHING_MODE=c.image_mode,
        KERNEL_CACHING_MODE=c.kernel_mode,
        KERNEL_PATTERN_MSB=c.pattern_msb,
        KERNEL_PATTERN_LOW=c.pattern_low,
        KERNEL_PATTERN_HIGH=c.pattern_high,
        KERNEL_CACHE_START_ADDRESS=c.kernel_start,
        KERNEL_CACHE_END_ADDRESS=c.kernel_end,
        IMAGE_CACHE_START_ADDRESS=c.image_start,
        IMAGE_CACHE_END_ADDRESS=c.image_end,
        IN_IMAGE_BORDER_CONST=q.in_zp,
        IN_IMAGE_X_STRIDE=s.in_x,
        IN_IMAGE_Y_STRIDE=s.in_y,
        OUT_IMAGE_X_STRIDE=s.out_x,
        OUT_IMAGE_Y_STRIDE=s.out_y,
        UNUSED7_2=int(v8 and offset),
        UNUSED7_3=int(v8 and offset),
        COEF_ZERO_POINT=q.weight_zp,
        OUT_ZERO_POINT=q.out_zp,
        DEPTHWISE=int(s.depthwise),
    )


# Fields of an NN configuration that hold GPU addresses (relocated when a subgraph is placed).
NN_ADDRESS_FIELDS = ("KERNEL_ADDRESS", "IN_IMAGE_ADDRESS", "OUT_IMAGE_ADDRESS")
