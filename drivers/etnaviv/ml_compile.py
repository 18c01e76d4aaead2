"""Compiling a lowered graph: each node to NN and TP jobs, the job configurations, the
coefficient and lookup-table buffers, the command stream with its relocations, and the
``ETNA_DEBUG`` dumps and fault injection (Mesa: the compile half of ``etnaviv_ml.c``:
``etna_ml_compile_operation`` per operation, the per-instruction emission and the tensor
resources).

Input: the graph after ``ml.PIPELINES`` and its memory plan. Every node that is not a view
becomes jobs through one ``_<op>`` method of :class:`_Lowering` (a table of ops by name); views
cost nothing (the planner placed them inside their base). Output: a :class:`Compiled` record with
window-relative addresses (``ml``'s docstring explains the window).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

import numpy as np

from ...gallium.device import CompileError
from ...gallium.tensor import ElementType
from ...nir_tensor.ir import NCHW, NHWC, Graph, LayoutKind, Node, Tensor
from ...nir_tensor.memory import MemoryPlan
from ...nir_tensor.params import VIEW_PARAMS
from . import etnaviv_regs as E
from . import ml_nn, ml_nn_v7, ml_nn_v8, ml_tp
from .cmdstream import Stream, StreamJob, job_stream
from .debug import DebugFlags, Inject, write_dump
from .ml_nn import (
    ALIGNMENT,
    Bo,
    ClampPlan,
    NnJob,
    NnWork,
    Ref,
    clamp_plan,
    conv_works,
    copy_work,
    hw_zero_point,
    pair_sum,
    pair_work,
    plane_shape,
)
from .ml_tp import LUT_BYTES, TpAlu, TpJob, TpKind, TpWalk
from .options import NpuTarget

# -- lowering the lowered graph to jobs ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IoTensor:
    """A subgraph input or output: where its NHWC bytes sit in the arena."""

    index: int
    dims: tuple[int, ...]  # the original (rank-length) shape
    dtype: str  # ElementType name
    offset: int
    nbytes: int

    @property
    def signed(self) -> bool:
        return ElementType[self.dtype] is ElementType.INT8


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as the context reports it (counters, dumps, fault messages)."""

    origin: int
    name: str
    unit: str  # "nn" or "tp"
    configs: tuple[int, ...]  # window offsets of its configurations (one per TP core)
    macs: int = 0


@dataclass(frozen=True, slots=True)
class ConfigReloc:
    """A configuration whose ``fields`` hold window-relative addresses."""

    offset: int
    unit: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Compiled:
    """Everything a context uploads: buffer contents, the stream template and relocations."""

    config: bytes
    coeff: bytes
    lut: bytes
    arena_size: int
    stream: Stream
    config_relocs: tuple[ConfigReloc, ...]
    jobs: tuple[JobInfo, ...]
    inputs: tuple[IoTensor, ...]
    outputs: tuple[IoTensor, ...]

    def bo_sizes(self) -> dict[Bo, int]:
        return {Bo.CONFIG: len(self.config), Bo.COEFF: len(self.coeff), Bo.LUT: len(self.lut),
                Bo.ARENA: self.arena_size}  # fmt: skip

    def window(self) -> dict[Bo, int]:
        return _window(self.bo_sizes())

    @property
    def window_size(self) -> int:
        return sum(_pages(size) for size in self.bo_sizes().values())


PAGE = 4096  # GEM objects and softpin addresses are page aligned (Linux etnaviv)


class _Lowering:
    """Walks the lowered graph in order and collects jobs, coefficients and tables."""

    def __init__(self, graph: Graph, plan: MemoryPlan, target: NpuTarget, debug: DebugFlags):
        self.graph, self.plan, self.target, self.debug = graph, plan, target, debug
        self.jobs: list[NnJob | TpJob] = []
        self.coeff = bytearray()
        self.lut = bytearray()
        self.coef_details: list[str] = []

    def ref(self, t: Tensor, offset: int = 0) -> Ref:
        return Ref(Bo.ARENA, self.plan.offsets[t] + offset)

    def _append(self, buf: bytearray, data: bytes) -> int:
        buf.extend(b"\0" * (-len(buf) % ALIGNMENT))
        offset = len(buf)
        buf.extend(data)
        return offset

    def run(self) -> None:
        for node in self.graph:
            if isinstance(node.params, VIEW_PARAMS):
                continue  # an alias: the planner placed it inside its base
            handler = getattr(self, f"_{node.op.name.lower()}", None)
            if handler is None:
                raise ValueError(f"{node!r}: no NN or TP job for {node.op.debug_name}")
            handler(node)

    # NN ----------------------------------------------------------------------------------------

    def _nn(self, work: NnWork, plan: ClampPlan) -> None:
        gen = ml_nn_v7 if self.target.version == 7 else ml_nn_v8
        p = gen.plan(work, self.target)
        offset = self._append(self.coeff, p.coefficients.data)
        job = NnJob(work.origin, work.name, self.target.version, work.shape, work.quant,
                    p.tiling, p.sram, work.input, work.output, Ref(Bo.COEFF, offset),
                    len(p.coefficients.data), self.target.nn_cores)  # fmt: skip
        self.jobs.append(job)
        self.coef_details.append(p.coefficients.detail)
        if plan.fixup:
            # The NN job wrote min(q, hi) + raise_by (its output zero point raised); a TP job
            # lowers it back in place and applies the lower bound (ClampPlan).
            elements = work.shape.out_x * work.shape.out_y * work.shape.out_z
            walk = ml_tp.flat_walk(work.output, work.output, elements)
            self.jobs.append(
                ml_tp.lower_bound_job(
                    work.origin,
                    f"clamp#{work.origin}",
                    walk,
                    plan.raise_by,
                    plan.lo,
                    self.target.tp_cores,
                )
            )

    def _conv(self, node: Node) -> None:
        plan = clamp_plan(node.params.clamp, node.output)
        assert plan is not None, f"{node!r}: fused clamp {node.params.clamp} cannot be done"
        pair = pair_sum(node)
        out = self.ref(node.output)
        if pair is not None and plane_shape(node.output.size) is not None:
            works = [pair_work(node, pair, self.target, self.ref(node.input), out)]
        else:
            works = conv_works(node, self.target, self.ref(node.input), out)
        for work in works:
            self._nn(work, plan)

    # TP ----------------------------------------------------------------------------------------

    def _tp(self, node: Node, kind: TpKind, walk: TpWalk, alu: TpAlu, out_plane: int,
            cores: int | None = None) -> None:  # fmt: skip
        cores = self.target.tp_cores if cores is None else cores
        walks = ml_tp.split_planes(walk, cores, out_plane)
        self.jobs.append(TpJob(node.origin, f"{kind.value}#{node.origin}", kind, walks, alu))

    def _layout(self, node: Node) -> None:
        t_in, t_out = node.input, node.output
        _, h, w, c = t_in.shape
        zp = hw_zero_point(t_in)
        alu = ml_tp.copy_alu(zp, zp)
        src, dst = self.ref(t_in), self.ref(t_out)
        if t_in.layout == NHWC and t_out.layout == NCHW:
            # Mesa runs it on one core; its planes are the input rows, so we split them.
            walk = ml_tp.transpose_walk(src, dst, h, w, c)
            self._tp(node, TpKind.TRANSPOSE, walk, alu, w)
        elif t_in.layout == NCHW and t_out.layout == NHWC:
            walk = ml_tp.detranspose_walk(src, dst, h, w, c)  # one plane: one core
            self._tp(node, TpKind.DETRANSPOSE, walk, alu, 0, cores=1)
        else:
            raise ValueError(f"{node!r}: layout {t_in.layout} -> {t_out.layout}")

    def _space_to_depth(self, node: Node) -> None:
        p = node.params
        _, h, w, c = node.input.shape
        _, oh, ow, _ = node.output.shape
        zp = hw_zero_point(node.input)
        assert p.block == 2 and p.pad_value == node.input.quant.zero_point, f"{node!r}: {p}"
        walk = ml_tp.reshuffle_walk(self.ref(node.input), self.ref(node.output), (h, w), c,
                                    (oh, ow), (p.pad_top, p.pad_left))  # fmt: skip
        self._tp(node, TpKind.RESHUFFLE, walk, ml_tp.copy_alu(zp, zp), oh * ow)

    def _pad(self, node: Node) -> None:
        p = node.params
        _, h, w, c = node.input.shape
        _, oh, ow, _ = node.output.shape
        zp_in, zp_out = hw_zero_point(node.input), hw_zero_point(node.output)
        border = p.value - node.input.quant.zero_point
        walk = ml_tp.pad_walk(self.ref(node.input), self.ref(node.output), (c, h, w),
                              (p.before[3], p.before[1], p.before[2]),
                              (p.after[3], p.after[1], p.after[2]))  # fmt: skip
        alu = TpAlu(zp_in, zp_out, border)
        self._tp(node, TpKind.PAD, walk, alu, oh * ow)

    def _clamp(self, node: Node) -> None:
        t_in, t_out = node.input, node.output
        scale = t_in.quant.scale / t_out.quant.scale
        if not ml_tp.tp_scale_ok(scale):  # an NN copy requantizes by any scale
            plan = clamp_plan(node.params, t_out)
            assert plan is not None, f"{node!r}: clamp {node.params} cannot be done"
            work = copy_work(node.origin, f"clamp#{node.origin}", t_in, t_out, t_in.size,
                             self.target, self.ref(t_in), self.ref(t_out), plan)  # fmt: skip
            self._nn(work, plan)
            return
        shift = hw_zero_point(t_out) - t_out.quant.zero_point
        walk = ml_tp.flat_walk(self.ref(t_in), self.ref(t_out), t_in.size)
        walk_b = ml_tp.flat_walk(self.ref(t_out), self.ref(t_out), t_in.size)
        self.jobs += ml_tp.clamp_jobs(node.origin, f"clamp#{node.origin}", walk, walk_b,
                                      hw_zero_point(t_in), hw_zero_point(t_out), scale,
                                      node.params.lo + shift, node.params.hi + shift,
                                      self.target.tp_cores)  # fmt: skip

    def _pwl(self, node: Node, kind: TpKind, table: bytes, scale: float = 1.0) -> None:
        offset = self._append(self.lut, table)
        t_in, t_out = node.input, node.output
        walk = ml_tp.flat_walk(self.ref(t_in), self.ref(t_out), t_in.size)
        alu = ml_tp.pwl_alu(hw_zero_point(t_in), hw_zero_point(t_out), Ref(Bo.LUT, offset), scale)
        self._tp(node, kind, walk, alu, walk.stride)

    def _abs(self, node: Node) -> None:
        scale = node.input.quant.scale / node.output.quant.scale
        if ml_tp.tp_scale_ok(scale):
            self._pwl(node, TpKind.ABS, ml_tp.abs_lut(), scale)
        else:
            table = ml_tp.function_lut(np.abs, node.input.quant.scale, node.output.quant.scale)
            self._pwl(node, TpKind.ABS, table)

    def _logistic(self, node: Node) -> None:
        table = ml_tp.function_lut(ml_tp.sigmoid, node.input.quant.scale,
                                   node.output.quant.scale)  # fmt: skip
        self._pwl(node, TpKind.LOGISTIC, table)

    def _box_copy(self, node: Node, part: Tensor, base: Tensor, at: int, gather: bool) -> None:
        """Copy ``part`` into (``gather``: out of) its box of ``base``, which starts at index
        ``at`` of the node's axis: a TP walk with ``base``'s strides (requantizing by the TP
        scale), or an NN plane copy when the scale needs it and the box is one byte range."""
        begin = [0, 0, 0, 0]
        begin[node.params.axis] = at
        planar = base.layout == NCHW
        dims = ml_tp.physical_dims(part.shape, planar)
        base_dims = ml_tp.physical_dims(base.shape, planar)
        start = ml_tp.physical_begin(tuple(begin), planar)
        src, dst = (base, part) if gather else (part, base)
        scale = src.quant.scale / dst.quant.scale
        if ml_tp.tp_scale_ok(scale):
            if gather:
                walk = ml_tp.gather_walk(self.ref(base), base_dims, start, self.ref(part), dims)
                out_plane = dims[0] * dims[1]
            else:
                walk = ml_tp.scatter_walk(self.ref(part), dims, self.ref(base), base_dims, start)
                out_plane = base_dims[0] * base_dims[1]
            alu = ml_tp.copy_alu(hw_zero_point(src), hw_zero_point(dst), scale)
            self._tp(node, TpKind.COPY, walk, alu, out_plane)
            return
        assert dims[:2] == base_dims[:2], f"{node!r}: a strided copy that needs an NN scale"
        offset = start[2] * dims[0] * dims[1]
        src_ref = self.ref(base, offset) if gather else self.ref(part)
        dst_ref = self.ref(part) if gather else self.ref(base, offset)
        work = copy_work(node.origin, f"copy#{node.origin}", src, dst, part.size, self.target,
                         src_ref, dst_ref)  # fmt: skip
        self._nn(work, ClampPlan())

    def _concat(self, node: Node) -> None:
        at = 0
        for part in node.inputs:
            self._box_copy(node, part, node.output, at, gather=False)
            at += part.shape[node.params.axis]

    def _split(self, node: Node) -> None:
        at = 0
        for part in node.outputs:
            self._box_copy(node, part, node.input, at, gather=True)
            at += part.shape[node.params.axis]

    def _transpose(self, node: Node) -> None:
        perm = node.params.perm
        _, h, w, c = node.input.shape
        out_shape = node.output.shape
        strides = [out_shape[2] * out_shape[3], out_shape[3], 1]  # of output axes 1, 2, 3
        # Input axis perm[k] becomes output axis k: its stride is that of output axis k.
        in_strides = [0, 0, 0]
        for k in (1, 2, 3):
            in_strides[perm[k] - 1] = strides[k - 1]
        zp = hw_zero_point(node.input)
        walk = ml_tp.permute_walk(self.ref(node.input), self.ref(node.output), (h, w, c),
                                  tuple(in_strides))  # fmt: skip
        self._tp(node, TpKind.PERMUTE, walk, ml_tp.copy_alu(zp, zp), in_strides[0])

    def _reshape(self, node: Node) -> None:
        raise ValueError(f"{node!r}: a RESHAPE that is not a view (layouts {node.input.layout})")


# -- configurations, stream, faults -------------------------------------------------------------

NN_CONFIG_BYTES = E.NN_CONFIG.size
TP_CONFIG_BYTES = E.TP_CONFIG.size


def _inject(jobs: list, coeff: bytearray, inject: Inject | None) -> list:
    """Plant the ``ETNA_DEBUG=inject`` fault (``debug``): the first job that can carry it."""
    if inject is None:
        return jobs
    for i, job in enumerate(jobs):
        if inject is Inject.OOB and isinstance(job, NnJob):
            # One byte past the arena's end: outside every buffer object of the submit.
            jobs[i] = replace(job, output=Ref(Bo.ARENA, INJECT_PAST_END))
            return jobs
        if inject is Inject.WEIGHTS and isinstance(job, NnJob):
            # Overwrite the first core stream's header (zrl_bits / the v8 flags and symbols):
            # a stream that cannot decode.
            start = job.coef.offset
            coeff[start : start + INJECT_CORRUPT_BYTES] = b"\xff" * INJECT_CORRUPT_BYTES
            return jobs
        if inject is Inject.HANG and isinstance(job, NnJob):
            jobs[i] = replace(job, hang=True)
            return jobs
    raise CompileError(f"etnaviv: ETNA_DEBUG=inject={inject.value}: no NN job to plant it in")


# Fault injection constants: an output address far past any arena (the window is smaller than
# 1 GiB), and enough header bytes to break either codec's first stream.
INJECT_PAST_END = 2**30
INJECT_CORRUPT_BYTES = 64


def compile_jobs(graph: Graph, plan: MemoryPlan, target: NpuTarget, debug: DebugFlags) -> Compiled:
    lowering = _Lowering(graph, plan, target, debug)
    lowering.run()
    jobs = _inject(lowering.jobs, lowering.coeff, debug.inject)
    # Configuration offsets first: every configuration's size is known before any address.
    config_at, at = [], 0
    for job in jobs:
        cores = 1 if isinstance(job, NnJob) else len(job.walks)
        size = NN_CONFIG_BYTES if isinstance(job, NnJob) else TP_CONFIG_BYTES
        offsets = []
        for _ in range(cores):
            offsets.append(at)
            at += -(-size // ALIGNMENT) * ALIGNMENT
        config_at.append(tuple(offsets))
    config = bytearray(at)
    sizes = {Bo.CONFIG: at, Bo.COEFF: len(lowering.coeff), Bo.LUT: len(lowering.lut),
             Bo.ARENA: plan.peak}  # fmt: skip
    window = _window(sizes)
    relocs, infos, stream_jobs = [], [], []
    number = 0  # configurations so far: the <job> of the dump names (Mesa's numbering)
    for index, (job, offsets) in enumerate(zip(jobs, config_at, strict=True)):
        if isinstance(job, NnJob):
            data = ml_nn.emit_nn_config(job, window)
            config[offsets[0] : offsets[0] + len(data)] = data
            relocs.append(ConfigReloc(offsets[0], "nn", ml_nn.NN_ADDRESS_FIELDS))
            core_count = 0 if job.nn_cores == target.npu.nn_cores else job.nn_cores
            stream_jobs.append(StreamJob("nn", offsets, core_count))
            infos.append(JobInfo(job.origin, job.name, "nn", offsets, job.shape.macs))
            coef = lowering.coeff[job.coef.offset : job.coef.offset + job.coef_bytes]
            _dump(debug, "nn", job.origin, number, data)
            _dump(debug, "compressed", job.origin, number, coef)
            number += 1
        else:
            fields = ml_tp.TP_ADDRESS_FIELDS + ((ml_tp.TP_LUT_FIELD,) if job.alu.lut else ())
            for core, offset in enumerate(offsets):
                data = ml_tp.emit_tp_config(job, core, window)
                config[offset : offset + len(data)] = data
                relocs.append(ConfigReloc(offset, "tp", fields))
                if core == 0 and job.alu.lut is not None:
                    table = lowering.lut[job.alu.lut.offset : job.alu.lut.offset + LUT_BYTES]
                    _dump(debug, "lut", job.origin, number, table)
                _dump(debug, "tp", job.origin, number, data)
                number += 1
            stream_jobs.append(StreamJob("tp", offsets, 0, job.kind.marks_split))
            infos.append(JobInfo(job.origin, job.name, "tp", offsets))
        if debug.msgs:
            print(f"etnaviv: job {index}: {job.name} {_describe(job)}", file=sys.stderr)
    stream = job_stream(stream_jobs)
    # The stream's addresses are window offsets of the configurations: window-relative too.
    stream.words[stream.relocs] += np.uint32(window[Bo.CONFIG])
    _dump(debug, "cmd", 0, 0, stream.words.tobytes())
    return Compiled(
        bytes(config), bytes(lowering.coeff), bytes(lowering.lut), plan.peak, stream,
        tuple(relocs), tuple(infos),
        tuple(io_tensor(t, plan) for t in graph.inputs),
        tuple(io_tensor(t, plan) for t in graph.outputs),
    )  # fmt: skip


def _window(sizes: dict[Bo, int]) -> dict[Bo, int]:
    """Window offset of each buffer object: back to back, page aligned, in :class:`Bo` order."""
    offsets, at = {}, 0
    for bo in Bo:
        offsets[bo] = at
        at += _pages(sizes[bo])
    return offsets


def _pages(size: int) -> int:
    """Bytes a buffer object of ``size`` takes in the window (at least one page)."""
    return -(-max(size, 1) // PAGE) * PAGE


def _describe(job) -> str:
    if isinstance(job, NnJob):
        s, t = job.shape, job.tiling
        return (f"in {s.in_x}x{s.in_y}x{s.in_z} out {s.out_x}x{s.out_y}x{s.out_z} "
                f"k {s.kx}x{s.ky} tile {t.tile_x}x{t.tile_y} sb {t.superblocks}")  # fmt: skip
    return f"{len(job.walks)} core(s) {job.elements} elements"


def _dump(debug: DebugFlags, what: str, op: int, job: int, data: bytes) -> None:
    write_dump(debug, what, max(op, 0), job, data)


def io_tensor(t: Tensor, plan: MemoryPlan) -> IoTensor:
    shape = t.shape[4 - t.rank :] if t.rank else ()
    assert t.layout.kind is LayoutKind.NHWC, f"{t!r}: graph I/O must be NHWC"
    return IoTensor(t.index, tuple(shape), t.dtype.name, plan.offsets[t], t.nbytes)
