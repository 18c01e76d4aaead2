"""Lowering: pipe operations -> nir_tensor pipeline -> one job record per convolution (Mesa:
``rkt_ml.c``, ``rkt_ml_subgraph_create`` and ``lower_convolution``).

The driver's whole pipeline is :data:`PIPELINE`, read top to bottom. After it the graph holds
only what the NPU runs: CONV and CONV_ADD in NC1HWC2, RESHAPE views (no byte moves), and
LAYOUT nodes at the graph's edges, which the host does while uploading inputs and reading
outputs (Mesa's invoke converts the same way, ``rkt_ml_subgraph_invoke``). :func:`lower`
turns every convolution into a :class:`job.ConvOperation` and returns them with the buffer
table and the host-side descriptors of the inputs and outputs.

Buffers: 0 holds the coefficients (weights and DPU operand tables, 64-byte aligned sections),
1 the register streams, then one buffer per feature map (a view shares its base's), sized for
the channels the NPU actually touches: the DPU writes and the EW reader reads whole
``C_out_al`` channel groups (``regcmd.output_channels_aligned``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from ...gallium.device import CompileError
from ...gallium.operation import ConvParams, ElementwiseParams
from ...gallium.tensor import ElementType, Quant
from ...nir_tensor.ir import NHWC, Graph, Layout, LayoutKind, Node, Op, Tensor
from ...nir_tensor.kernels.elementwise import add_sub_formula
from ...nir_tensor.params import VIEW_PARAMS, ConvAddParams, ReshapeView
from ...nir_tensor.passes import (
    LayoutRule,
    lower_add_into_conv,
    lower_depthwise_to_dense,
    lower_fc_to_conv,
    lower_layouts,
    lower_views,
    opt_constant_fold,
    opt_dce,
    opt_drop_implied_clamp,
    opt_fold_pad,
    opt_fuse_activation,
)
from ...nir_tensor.passes.common import constant
from ...nir_tensor.pipeline import Pipeline, loop, step
from ...nir_tensor.rewrite import rewrite_graph, rules
from ...util.soc import RocketNpu
from . import coefs, requant
from . import rocket_regs as R
from .job import Buffer, BufferKind, BufferRef, ConvOperation, Dpu, FeatureMap, Section
from .regcmd import field_max, output_channels_aligned
from .task import TaskError, split_tasks

# rocket-nvdla.md §4: feature maps are NC1HWC2 with C2 = 16 int8 channels.
NC1HWC2 = Layout(LayoutKind.NC1HWC2, 16)
# CNA PAD_CON0's PAD_TOP and PAD_LEFT (bottom and right padding are implicit).
MAX_PADDING = field_max(R.CNA.PAD_CON0, "PAD_TOP")
# CNA DATA_SIZE1 stores the real channel count minus one in 14 bits.
MAX_CHANNELS = field_max(R.CNA.DATA_SIZE1, "DATAIN_CHANNEL_REAL") + 1
# A wider FULLY_CONNECTED becomes a y x x convolution over x·y·z features, x and y at most
# this (the shared pass's factorisation, as etnaviv does it; 15 x 15 taps fit the CBUF rule).
FC_FACTOR_MAX = 15
# CNA DMA_CON2 (docs/rocket-npu-model.md §4, Mesa's strides): SURF_STRIDE = surface/16 -
# line/4 is unsigned, so a surface spans at least four rows.
MIN_SURFACE_ROWS = 4
# Sections of the coefficient buffer start 64-byte aligned (NVDLA DMA requests are 64-byte
# aligned, rocket-nvdla.md §8).
ALIGN = 64
COEFS_BUFFER, REGCMD_BUFFER = 0, 1

LAYOUTS = MappingProxyType(
    {
        Op.CONV: LayoutRule(NC1HWC2, NC1HWC2),
        Op.CONV_ADD: LayoutRule(NC1HWC2, NC1HWC2),
        Op.RESHAPE: LayoutRule(None, None),
    }
)


def _identity_add(graph: Graph, node: Node, ctx: None) -> list[Node] | None:
    """ADD(a, b) = CONV_ADD(identity(a), b): a 1x1 conv of weight 1 at scale 1 gives ``a``
    back exactly (M = 1), and the EW stage adds ``b``."""
    a, b = node.inputs
    c = a.shape[3]
    weights = np.ones((1, 1, 1, c), dtype=a.dtype.numpy)
    wt = constant(a, weights, "identity", quant=Quant(1.0, 0), rank=4)
    conv = ConvParams(depthwise=c > 1)
    params = ConvAddParams(conv, a.quant.scale, a.quant.zero_point, True, node.params.clamp)
    return [Node(Op.CONV_ADD, (a, wt, None, b), node.outputs, params)]


def lower_add_to_identity_conv(graph: Graph) -> bool:
    """Give every ADD that no convolution took (``lower_add_into_conv``) an identity
    convolution to fuse into. Preconditions: none. Exact: the identity reproduces its input."""
    return rewrite_graph(graph, rules((Op.ADD, _identity_add)))


def needs_dense(node: Node) -> bool:
    """Depthwise with one input channel or a channel multiplier: the CNA's depthwise mode maps
    channel c to channel c only (Mesa's ``rkt_is_depthwise``), so these run dense."""
    return node.input.shape[3] == 1 or node.inputs[1].shape[3] != node.input.shape[3]


CLEANUP = loop(
    step(opt_fold_pad, max_padding=MAX_PADDING),
    step(opt_fuse_activation),
    step(opt_drop_implied_clamp, note="after fusion: a fused ReLU6 may be implied"),
    step(opt_dce),
    note="a folded PAD or a fused clamp can expose another fusion",
)
TAIL = (
    step(lower_add_to_identity_conv, note="the ADDs no convolution took"),
    step(lower_layouts, table=LAYOUTS),
    step(lower_views, note="after lower_layouts: offsets depend on layouts"),
    step(opt_dce),
)

PIPELINE = Pipeline(
    "rocket",
    (
        step(opt_constant_fold),
        CLEANUP,
        step(
            lower_fc_to_conv,
            factorize_above=MAX_CHANNELS,
            max_kernel=FC_FACTOR_MAX,
            note="1x1: every batch row is an output pixel; past 16384 features a y x x kernel",
        ),
        step(lower_depthwise_to_dense, select=needs_dense),
        *TAIL,
    ),
)

# Mesa's fusion (rkt_ml.c): an ADD runs in the EW stage of the convolution producing one of its
# operands. One job fewer per ADD, but that convolution's rounding happens in one 15-bit
# multiplier stage (requant plan B), so it is not exact; PIPELINE gives the ADD an identity
# convolution instead and keeps every convolution exact (docs/rocket.md).
PIPELINE_FUSED = Pipeline(
    "rocket-fused",
    (
        *PIPELINE.steps[:4],
        step(
            lower_add_into_conv,
            operand="either",
            note="after the clamps are final: the conv's clamp is part of the fused result",
        ),
        *TAIL,
    ),
)


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostTensor:
    """A graph input or output as the host converts it: the pipe tensor ``index`` (NHWC, its
    dims) <-> the feature map ``fm``, whose logical shape is ``shape`` (a row-major reshape of
    the pipe dims when a view sits between them)."""

    index: int
    fm: FeatureMap | None  # None: an output that is a view of the input ``source``
    shape: tuple[int, int, int, int]
    offset: int  # coefs.hw_offset of the type
    source: int = -1  # the pipe index of that input (the host copies it)


@dataclass(frozen=True, slots=True, eq=False)
class Lowered:
    ops: tuple[ConvOperation, ...]
    buffers: tuple[Buffer, ...]  # the regcmd buffer's size is filled in by the compiler
    inputs: tuple[HostTensor, ...]
    outputs: tuple[HostTensor, ...]
    coefs: bytes


# -- compile context ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WeightConfig:
    """What a packed weight stream depends on (the cache key, like Vela's
    ``WeightCompressionConfig``): the data's digest and how it is laid out."""

    digest: bytes
    shape: tuple[int, ...]
    dtype: ElementType
    zero_point: int
    depthwise: bool


@dataclass(slots=True)
class CompileContext:
    """State shared by the compilations of one device: the packed-weight cache."""

    npu: RocketNpu
    weights: dict[WeightConfig, bytes] = field(default_factory=dict)

    def packed(self, data: np.ndarray, dtype: ElementType, zp: int, depthwise: bool) -> bytes:
        data = np.ascontiguousarray(data)
        digest = hashlib.blake2b(data.tobytes(), digest_size=16).digest()
        key = WeightConfig(digest, data.shape, dtype, zp, depthwise)
        hit = self.weights.get(key)
        if hit is None:
            packed = coefs.pack_weights(self.npu, data, dtype, zp, depthwise)
            hit = self.weights[key] = packed.tobytes()
        return hit


# -- lowering --------------------------------------------------------------------------------


class _Coefs:
    """The coefficient buffer being laid out."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> Section:
        start = self.size
        pad = -len(data) % ALIGN
        self.chunks.append(data + b"\0" * pad)
        self.size += len(data) + pad
        return Section(BufferRef(COEFS_BUFFER, start), len(data))


@dataclass(slots=True)
class _State:
    ctx: CompileContext
    fc_origins: frozenset[int]
    roots: dict[Tensor, Tensor] = field(default_factory=dict)  # view -> base
    order: dict[Tensor, int] = field(default_factory=dict)  # base -> buffer index
    surfaces: dict[Tensor, int] = field(default_factory=dict)  # base -> surfaces touched
    kinds: dict[Tensor, BufferKind] = field(default_factory=dict)
    coefs: _Coefs = field(default_factory=_Coefs)

    def root(self, t: Tensor) -> Tensor:
        while t in self.roots:
            t = self.roots[t]
        return t

    def feature(self, t: Tensor, channels: int | None = None) -> FeatureMap:
        """The feature map of ``t``; ``channels`` the NPU touches (default: its own)."""
        base = self.root(t)
        if base.shape != t.shape:
            raise CompileError(f"{t!r}: a view that is not a same-shape reshape")
        atom = self.ctx.npu.feature_atom_bytes
        touched = -(-max(channels or 0, t.shape[3]) // atom)
        self.surfaces[base] = max(self.surfaces.get(base, 0), touched)
        index = self.order.setdefault(base, len(self.order) + 2)
        _, h, w, c = base.shape
        line = w * atom
        surface = line * max(h, MIN_SURFACE_ROWS)
        return FeatureMap(BufferRef(index), h, w, c, line, surface, t.quant.zero_point)


def _clamp_relative(clamp, out: Tensor) -> tuple[int | None, int | None]:
    """A clamp as (lo - z, hi - z), None where it is the type's own saturation."""
    lo = hi = None
    if clamp is not None and clamp.lo > out.dtype.qmin:
        lo = clamp.lo - out.quant.zero_point
    if clamp is not None and clamp.hi < out.dtype.qmax:
        hi = clamp.hi - out.quant.zero_point
    if hi is not None and lo is None and out.quant.zero_point == out.dtype.qmin:
        lo = 0  # ReLU at a zero point that is the type's minimum changes nothing
    return lo, hi


def weight_zero_point(node: Node, fc: bool) -> int:
    """The weight zero point the reference kernel subtracts: uint8 always; int8 convolutions
    never (``ConvPerChannel`` runs with weights_offset = 0), int8 FC when per tensor."""
    w = node.inputs[1]
    if node.input.dtype is ElementType.UINT8 or (fc and not w.quant.per_axis):
        return w.quant.zero_point
    return 0


def _stored(fm: FeatureMap, o: int) -> FeatureMap:
    """A feature map's zero point in the stored domain (q - o)."""
    return replace(fm, zero_point=fm.zero_point - o)


def _lower_conv(st: _State, ops: list[ConvOperation], node: Node) -> None:
    """Append the job record(s) of one CONV or CONV_ADD node to ``ops``."""
    npu = st.ctx.npu
    fused = node.op is Op.CONV_ADD
    p: ConvParams = node.params.conv if fused else node.params
    inp, w, out = node.input, node.inputs[1], node.output
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if p.dilation != (1, 1):
        raise CompileError(f"{node!r}: dilation {p.dilation}")
    fc = node.origin in st.fc_origins
    zw = weight_zero_point(node, fc)
    o = coefs.hw_offset(inp.dtype)
    geo = coefs.geometry(npu, w.shape, p.depthwise)
    weights = st.coefs.add(st.ctx.packed(w.data, w.dtype, zw, p.depthwise))
    channels = out.shape[3]
    raw_bias = None if bias is None else bias.data.reshape(-1).astype(np.int64)
    corrected = coefs.biases(raw_bias, w.data, zw, inp.dtype, inp.quant.zero_point, p.depthwise)
    x_max = max(inp.dtype.qmax - inp.quant.zero_point, inp.quant.zero_point - inp.dtype.qmin)
    v_bound = x_max * np.abs(coefs.weight_sums(w.data, zw, p.depthwise, absolute=True))
    if raw_bias is not None:
        v_bound = v_bound + np.abs(raw_bias)
    s_w = w.quant.channel_scales(channels)
    s_conv = node.params.conv_scale if fused else out.quant.scale
    if fc:
        scales = requant.fc_scales(inp.quant.scale, s_w, s_conv)
    else:
        uint8 = inp.dtype is ElementType.UINT8
        scales = requant.conv_scales(inp.quant.scale, s_w, s_conv, float_product=uint8)
    try:
        if fused:
            plan = _plan_add(node, scales, corrected)
        else:
            lo, hi = _clamp_relative(p.clamp, out)
            plan = requant.plan_conv(
                scales, corrected, v_bound, zero_point=out.quant.zero_point - o, lo=lo, hi=hi
            )
    except requant.PlanError as e:
        raise CompileError(f"{node!r}: {e}") from None
    aligned = output_channels_aligned(channels, p.depthwise)
    bs = replace(plan.bs, memory=_words_section(st, plan.bs_words, aligned))
    bn = replace(plan.bn, memory=_words_section(st, plan.bn_words, aligned))
    kh, kw = w.shape[1], w.shape[2]
    pad = (p.padding.top, p.padding.bottom, p.padding.left, p.padding.right)
    try:
        split = split_tasks(
            npu,
            in_height=inp.shape[1],
            in_width=inp.shape[2],
            in_channels=inp.shape[3],
            out_height=out.shape[1],
            kernel_h=kh,
            stride_y=p.stride[0],
            pad_top=pad[0],
            weight_bytes=geo.bytes,
        )
    except TaskError as e:
        raise CompileError(f"{node!r}: {e}") from None
    op = ConvOperation(
        index=len(ops),
        origin=node.origin,
        depthwise=p.depthwise,
        input=_stored(st.feature(inp, geo.channels), o),
        output=_stored(st.feature(out, aligned), o),
        kernel=(kh, kw),
        stride=p.stride,
        pad=pad,
        pad_value=inp.quant.zero_point - o,
        weights=weights,
        weight_kernels=geo.kernels,
        weight_channels=geo.channels,
        dpu=Dpu(bs, bn, None, plan.out, ow_op=o - zw),
        tasks=split.tasks,
        resident=split.resident,
        kind="add" if fused else "fc" if fc else "depthwise" if p.depthwise else "conv",
    )
    if plan.sign is not None:  # the sign pass first, into a scratch map (requant plan A)
        scratch = Tensor(out.shape, ElementType.INT8, Quant(1.0, 0), layout=NC1HWC2,
                         name=f"{out.name or 'conv'}/sign")  # fmt: skip
        sign_map = st.feature(scratch, aligned)
        sp = plan.sign
        sign_dpu = Dpu(
            replace(sp.bs, memory=_words_section(st, sp.bs_words, aligned)),
            replace(sp.bn, memory=_words_section(st, sp.bn_words, aligned)),
            None,
            sp.out,
            ow_op=o - zw,
        )
        ops.append(replace(op, output=sign_map, dpu=sign_dpu))
        op = replace(op, index=len(ops))
    if plan.ew is not None:
        operand = sign_map if plan.sign is not None else None
        if fused:
            operand = _stored(st.feature(node.inputs[3], aligned), o)
        op = replace(op, dpu=replace(op.dpu, ew=plan.ew.stage(operand)))
    ops.append(op)


def _words_section(st: _State, words: np.ndarray | None, channels: int) -> Section | None:
    """A DPU operand table, padded with zero rows to the channels the RDMA reads."""
    if words is None:
        return None
    table = np.zeros((max(channels, len(words)), words.shape[1]), dtype="<i4")
    table[: len(words)] = words
    return st.coefs.add(table.tobytes())


def _plan_add(node: Node, scales: requant.Scales, corrected: np.ndarray) -> requant.Plan:
    p: ConvAddParams = node.params
    out, other = node.output, node.inputs[3]
    mid = Tensor(out.shape, out.dtype, Quant(p.conv_scale, p.conv_zero_point))
    operands = (mid, other) if p.conv_first else (other, mid)
    formula = add_sub_formula(Node(Op.ADD, operands, (out,), ElementwiseParams(p.clamp)), 1)
    target = formula if p.conv_first else (lambda qc, qb: formula(qb, qc))
    t = out.dtype
    conv_clamp, add_clamp = p.conv.clamp, p.clamp
    return requant.plan_add(
        scales.multiplier,
        corrected,
        conv_scale=p.conv_scale,
        conv_zero=p.conv_zero_point,
        conv_lo=t.qmin if conv_clamp is None else max(conv_clamp.lo, t.qmin),
        conv_hi=t.qmax if conv_clamp is None else min(conv_clamp.hi, t.qmax),
        other_scale=other.quant.scale,
        other_zero=other.quant.zero_point,
        out_scale=out.quant.scale,
        out_zero=out.quant.zero_point,
        offset=coefs.hw_offset(t),
        qmin=t.qmin,
        qmax=t.qmax,
        add_lo=t.qmin if add_clamp is None else max(add_clamp.lo, t.qmin),
        add_hi=t.qmax if add_clamp is None else min(add_clamp.hi, t.qmax),
        target=target,
    )


def _host_source(graph: Graph, st: _State, t: Tensor) -> Tensor:
    """The tensor an NHWC tensor is a row-major view of (through NHWC reshape views)."""
    while True:
        producer = graph.producer(t)
        if producer is None or not isinstance(producer.params, ReshapeView):
            return t
        t = producer.input


def lower(ctx: CompileContext, graph: Graph, fc_origins: frozenset[int]) -> Lowered:
    """Job records, buffers and host descriptors of a graph after :data:`PIPELINE`."""
    st = _State(ctx, fc_origins)
    ops: list[ConvOperation] = []
    inputs: list[HostTensor] = []
    graph_inputs = {id(t): t for t in graph.inputs}
    for node in graph:
        if node.op in (Op.CONV, Op.CONV_ADD):
            _lower_conv(st, ops, node)
        elif isinstance(node.params, VIEW_PARAMS):
            if not isinstance(node.params, ReshapeView):
                raise CompileError(f"{node!r}: only reshape views run on the NPU")
            st.roots[node.output] = node.input
        elif node.op is Op.LAYOUT and node.output.layout == NC1HWC2:
            src = _host_source(graph, st, node.input)
            if id(src) not in graph_inputs:
                raise CompileError(f"{node!r}: a layout change inside the subgraph")
            fm = st.feature(node.output)
            st.kinds[st.root(node.output)] = BufferKind.INPUT
            o = coefs.hw_offset(src.dtype)
            inputs.append(HostTensor(src.index, _stored(fm, o), node.input.shape, o))
        elif node.op is Op.LAYOUT and node.output.layout == NHWC:
            pass  # read back by the host (below)
        else:
            raise CompileError(f"{node!r}: {node.op.debug_name} does not run on the NPU")
    outputs = []
    for t in graph.outputs:
        src = _host_source(graph, st, t)
        if id(src) in graph_inputs:  # a view of an input (a RESHAPE alone): no NPU work
            outputs.append(HostTensor(t.index, None, src.shape, 0, src.index))
            continue
        producer = graph.producer(src)
        if producer is None or producer.op is not Op.LAYOUT:
            raise CompileError(f"{t!r}: a graph output the NPU does not write")
        fm = st.feature(producer.input)
        st.kinds.setdefault(st.root(producer.input), BufferKind.OUTPUT)
        o = coefs.hw_offset(t.dtype)
        outputs.append(HostTensor(t.index, _stored(fm, o), producer.input.shape, o))
    buffers = [
        Buffer(BufferKind.COEFS, st.coefs.size, "coefs"),
        Buffer(BufferKind.REGCMD, 0, "regcmd"),
    ]
    for base, index in sorted(st.order.items(), key=lambda kv: kv[1]):
        assert index == len(buffers)
        fm = st.feature(base)
        size = st.surfaces[base] * fm.surface_stride
        kind = st.kinds.get(base, BufferKind.INTERMEDIATE)
        buffers.append(Buffer(kind, size, base.name or f"t{base.index}"))
    return Lowered(
        tuple(ops), tuple(buffers), tuple(inputs), tuple(outputs), b"".join(st.coefs.chunks)
    )


def fc_origins(graph: Graph) -> frozenset[int]:
    """Source operations that are FULLY_CONNECTED: their convolutions round as FC does."""
    return frozenset(n.origin for n in graph if n.op is Op.FULLY_CONNECTED)
