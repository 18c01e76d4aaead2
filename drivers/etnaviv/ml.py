"""Subgraph compile: the nir_tensor pipelines of both NN generations, lowering of the lowered
graph to NN and TP jobs, the buffer plan and the serialized subgraph (Mesa: ``etnaviv_ml.c``:
``etna_ml_subgraph_create``, ``lower_operations``, the tensor/resource bookkeeping, and the
layout inference of its header comment).

Compile needs no device. Every address is chosen at compile time inside the subgraph's own
*VA window*: the buffer objects (configurations, coefficients, lookup tables, the tensor arena,
:class:`~mesa_npu.drivers.etnaviv.ml_nn.Bo`) sit back to back from window offset 0, so a job
configuration holds window offsets. The blob records which configuration fields and command
stream words are addresses; a context picks a window base inside the device's softpin range on
the first invoke and adds it to those (relocation at first invoke, ``ml_context``). Two
subgraphs in one context then never collide, and a blob runs on any device of its SoC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from types import MappingProxyType

import numpy as np

from ...gallium.device import CompileError, MlSubgraph
from ...gallium.operation import ConvParams, PipeMlOperation
from ...gallium.tensor import ElementType, PipeTensor, Quant
from ...nir_tensor.builder import build_graph, pipe_from_tensor
from ...nir_tensor.ir import NCHW, NHWC, Graph, Node, Op, Tensor
from ...nir_tensor.memory import plan_memory
from ...nir_tensor.params import VIEW_PARAMS, ReshapeView
from ...nir_tensor.passes import (
    LayoutRule,
    lower_add_to_conv,
    lower_conv_stride_reshuffle,
    lower_depthwise_to_dense,
    lower_fc_to_conv,
    lower_layouts,
    lower_per_axis_weights,
    lower_views,
    opt_constant_fold,
    opt_dce,
    opt_drop_implied_clamp,
    opt_fold_pad,
    opt_fuse_activation,
)
from ...nir_tensor.passes.common import constant, derived, weight_fill
from ...nir_tensor.pipeline import Pipeline, loop, run_pipeline, step
from ...nir_tensor.rewrite import rewrite_graph, rules
from ...util import blob
from .cmdstream import Stream
from .debug import DEBUG, DebugFlags
from .ml_compile import Compiled, ConfigReloc, IoTensor, JobInfo, compile_jobs
from .ml_nn import (
    ALIGNMENT,
    MAX_PADDING,
)
from .options import EtnaOptions, NpuTarget, PerAxis

# -- the pipelines ------------------------------------------------------------------------------

ANY = LayoutRule(None, None)
PLANAR = LayoutRule(NCHW, NCHW)

# etnaviv-ml.md §1 "Layout inference": the NN unit reads and writes planar NCHW, so do the
# convolution, concatenation and split (whose channel ranges are then contiguous), and the TP
# reshuffle and pad we feed them; element-wise TP jobs take any layout. RESHAPE follows its
# input (a same-shape reinterpretation is a view in any layout; ``lower_planar_reshape`` routes
# the others through NHWC). TRANSPOSE works on NHWC, as the model states it.
ETNA_LAYOUTS = MappingProxyType(
    {
        Op.CONV: PLANAR,
        Op.CONCAT: PLANAR,
        Op.SPLIT: PLANAR,
        Op.SPACE_TO_DEPTH: PLANAR,
        Op.PAD: PLANAR,
        Op.CLAMP: ANY,
        Op.ABS: ANY,
        Op.LOGISTIC: ANY,
        Op.RESHAPE: ANY,
    }
)

# Ops whose fused clamp an NN job programs (relu bit, plus a TP fix-up for other bounds).
CLAMPED = frozenset({Op.CONV, Op.FULLY_CONNECTED, Op.ADD, Op.SUB})


def is_pointwise(node: Node) -> bool:
    return node.inputs[1].shape[1:3] == (1, 1) if not node.params.depthwise else False


def needs_reshuffle(node: Node) -> bool:
    """A stride-2 dense convolution with a kernel larger than 1x1 runs as SPACE_TO_DEPTH (a TP
    reshuffle) and a stride-1 convolution; depthwise and 1x1 convolutions keep their stride and
    use the NN unit's first-pixel pooling instead (brief §1 step 3, our rule for both
    generations: the reshuffle saves 4/9 of the MACs only where the kernel has taps to fold)."""
    p: ConvParams = node.params
    return p.stride == (2, 2) and not p.depthwise and not is_pointwise(node)


def has_multiplier(node: Node) -> bool:
    """A depthwise convolution with channel multiplier > 1: no hardware or codec form, so it
    becomes a dense convolution first."""
    return node.params.depthwise and node.output.shape[3] != node.input.shape[3]


def same_bytes(t: Tensor) -> bool:
    """NHWC and planar NCHW store ``t`` identically (batch 1, and one channel or one pixel)."""
    n, h, w, c = t.shape
    return n == 1 and (c == 1 or h * w == 1)


def _planar_reshape(graph: Graph, node: Node, ctx: None) -> list[Node] | None:
    a, b = node.input, node.output
    if a.layout == NHWC or a.shape == b.shape or (same_bytes(a) and same_bytes(b)):
        return None
    if isinstance(node.params, VIEW_PARAMS):
        return None
    a_nhwc = derived(a, "nhwc", layout=NHWC)
    b_nhwc = derived(b, "nhwc", layout=NHWC)
    return [
        Node(Op.LAYOUT, (a,), (a_nhwc,)),
        node.with_(inputs=(a_nhwc,), outputs=(b_nhwc,)),
        Node(Op.LAYOUT, (b_nhwc,), (b,)),
    ]


def lower_planar_reshape(graph: Graph) -> bool:
    """Route each RESHAPE of a planar tensor that changes its bytes' order through NHWC (a
    row-major reshape is only a byte reinterpretation in NHWC). Exact: LAYOUT is a logical
    identity. Run ``lower_layouts`` again afterwards to merge the new LAYOUTs."""
    return rewrite_graph(graph, rules((Op.RESHAPE, _planar_reshape)))


def _trivial_layout(graph: Graph, node: Node, ctx: None) -> list[Node] | None:
    same = same_bytes(node.input) or node.input.layout == node.output.layout
    if not same or node.input.dtype is not node.output.dtype:
        return None
    return [Node(Op.RESHAPE, node.inputs, node.outputs, ReshapeView(), node.origin)]


def opt_trivial_layouts(graph: Graph) -> bool:
    """A LAYOUT between NHWC and NCHW of a tensor both store alike (:func:`same_bytes`), or one
    that converts to the layout its input has (left in front of a graph output), becomes a
    reshape view: no TP job, the two tensors share their buffer. Exact."""
    return rewrite_graph(graph, rules((Op.LAYOUT, _trivial_layout)))


def _undilate(graph: Graph, node: Node, ctx: None) -> list[Node] | None:
    p: ConvParams = node.params
    if p.dilation == (1, 1):
        return None
    dy, dx = p.dilation
    weight = node.inputs[1]
    o, kh, kw, c = weight.shape
    count = c if p.depthwise else o
    fill = weight_fill(node, count).astype(weight.dtype.numpy)
    data = np.empty((o, (kh - 1) * dy + 1, (kw - 1) * dx + 1, c), dtype=weight.dtype.numpy)
    data[...] = fill.reshape(1, 1, 1, c) if p.depthwise else fill.reshape(o, 1, 1, 1)
    data[:, ::dy, ::dx, :] = weight.data
    wt = constant(weight, data, "undilated")
    return [
        node.with_(inputs=(node.input, wt, *node.inputs[2:]), params=replace(p, dilation=(1, 1)))
    ]


def lower_conv_dilation(graph: Graph) -> bool:
    """A dilated convolution as a dense one with the neutral weight (``weight_fill``: the zero
    point the kernel subtracts) between the taps: the NN unit has no dilation. Exact (the new
    taps add ``(x - z_in) · 0``); costs the dilated kernel's MACs."""
    assert all(isinstance(n.params, ConvParams) for n in graph if n.op is Op.CONV)
    return rewrite_graph(graph, rules((Op.CONV, _undilate)))


def _pipeline(version: int, split_per_axis: bool = False) -> Pipeline:
    name = "etnaviv" if version == 7 else f"etnaviv-v{version}"
    per_axis = () if split_per_axis else (
        step(lower_per_axis_weights, note="first: later lowerings copy weight quantization"),
    )  # fmt: skip
    return Pipeline(
        name + ("-split" if split_per_axis else ""),
        (
            step(opt_constant_fold),
            loop(
                step(opt_fold_pad, max_padding=MAX_PADDING),
                step(opt_fuse_activation, into=CLAMPED),
                step(opt_drop_implied_clamp, note="after fusion: a fused ReLU6 may be implied"),
                step(opt_dce),
                note="a folded PAD or a fused clamp can expose another fusion",
            ),
            *per_axis,
            step(lower_conv_dilation, note="before the stride and depthwise lowerings"),
            step(lower_fc_to_conv, note="1x1 form: F input channels, no input transpose"),
            step(lower_add_to_conv, note="before layouts: its CONCAT must be planar to be a view"),
            step(lower_depthwise_to_dense, select=has_multiplier),
            step(lower_conv_stride_reshuffle, select=needs_reshuffle),
            step(lower_layouts, table=ETNA_LAYOUTS),
            step(lower_planar_reshape),
            step(lower_layouts, table=ETNA_LAYOUTS, note="merges the LAYOUTs just added"),
            step(opt_trivial_layouts, note="after the last lower_layouts, before views"),
            step(lower_views, note="after lower_layouts: offsets depend on layouts"),
            step(opt_dce),
        ),
    )


# Per generation, and whether per-axis weights are requantized (the default) or split into
# per-channel jobs (``per_axis=split``, ``ml_nn.channel_groups``).
PIPELINES = MappingProxyType(
    {(v, split): _pipeline(v, split) for v in (7, 8) for split in (False, True)}
)
# reference:etnaviv and reference:etnaviv-v8: the default (per_axis=split) pipelines; the
# per-channel jobs are a job-level split, so these evaluate exactly what the jobs compute.
PIPELINE = PIPELINES[7, True]
PIPELINE_V8 = PIPELINES[8, True]


def pipeline(target: NpuTarget) -> Pipeline:
    return PIPELINES[target.version, target.options.per_axis is PerAxis.SPLIT]


# -- the subgraph -------------------------------------------------------------------------------


def lower_graph(ops: Sequence[PipeMlOperation], target: NpuTarget) -> Graph:
    """The pipe operations as the driver's lowered nir_tensor graph."""
    return run_pipeline(build_graph(ops), pipeline(target)).graph


def compile_subgraph(
    ops: Sequence[PipeMlOperation], target: NpuTarget, debug: DebugFlags = DEBUG
) -> EtnaSubgraph:
    """Lower, plan and compile ``ops`` for ``target`` (module docstring)."""
    graph = lower_graph(ops, target)
    plan = plan_memory(graph, alignment=ALIGNMENT)
    try:
        compiled = compile_jobs(graph, plan, target, debug)
    except (ValueError, AssertionError) as e:
        raise CompileError(f"etnaviv: {e}") from e
    pipes_in = tuple(pipe_from_tensor(t) for t in graph.inputs)
    pipes_out = tuple(pipe_from_tensor(t) for t in graph.outputs)
    return EtnaSubgraph(target.soc.name, target.options, compiled, pipes_in, pipes_out)


class EtnaSubgraph(MlSubgraph):
    """A compiled subgraph (see :class:`Compiled`), for the SoC it was compiled for."""

    driver = "etnaviv"

    def __init__(self, soc: str, options: EtnaOptions, compiled: Compiled, inputs, outputs):
        self.soc = soc
        self.options = options
        self.compiled = compiled
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)

    def serialize(self) -> bytes:
        c = self.compiled
        meta = {
            "soc": self.soc,
            "options": self.options.describe(),
            "arena_size": c.arena_size,
            "relocs": [[r.offset, r.unit, list(r.fields)] for r in c.config_relocs],
            "jobs": [[j.origin, j.name, j.unit, list(j.configs), j.macs] for j in c.jobs],
            "inputs": [_io_json(t) for t in c.inputs],
            "outputs": [_io_json(t) for t in c.outputs],
            "pipes": [[_pipe_json(p) for p in self.inputs], [_pipe_json(p) for p in self.outputs]],
        }
        sections = {
            "config": c.config,
            "coeff": c.coeff,
            "lut": c.lut,
            "stream": c.stream.words,
            "stream_relocs": c.stream.relocs,
        }
        return blob.pack(self.driver, meta, sections)

    @classmethod
    def deserialize(cls, data: bytes) -> EtnaSubgraph:
        meta, sections = blob.unpack(data, cls.driver)
        try:
            compiled = Compiled(
                bytes(sections["config"]),
                bytes(sections["coeff"]),
                bytes(sections["lut"]),
                int(meta["arena_size"]),
                Stream(sections["stream"].astype(np.uint32), sections["stream_relocs"]),
                tuple(ConfigReloc(o, u, tuple(f)) for o, u, f in meta["relocs"]),
                tuple(JobInfo(o, n, u, tuple(c), m) for o, n, u, c, m in meta["jobs"]),
                tuple(IoTensor(i, tuple(d), t, o, b) for i, d, t, o, b in meta["inputs"]),
                tuple(IoTensor(i, tuple(d), t, o, b) for i, d, t, o, b in meta["outputs"]),
            )
            pipes_in, pipes_out = ([_pipe(p) for p in side] for side in meta["pipes"])
            options = EtnaOptions.parse(meta["options"])
        except (KeyError, TypeError, ValueError) as e:
            raise blob.BlobError(f"etnaviv: malformed subgraph blob ({e})") from None
        return cls(meta["soc"], options, compiled, pipes_in, pipes_out)


def _io_json(t: IoTensor) -> list:
    return [t.index, list(t.dims), t.dtype, t.offset, t.nbytes]


def _pipe_json(p: PipeTensor) -> dict:
    q = p.quant
    return {"index": p.index, "dims": list(p.dims), "rank": p.rank, "type": p.type.name,
            "scale": q.scale, "zp": q.zero_point, "name": p.name}  # fmt: skip


def _pipe(d: dict) -> PipeTensor:
    return PipeTensor(d["index"], tuple(d["dims"]), d["rank"], ElementType[d["type"]],
                      Quant(d["scale"], d["zp"]), name=d["name"])  # fmt: skip
