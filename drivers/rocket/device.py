"""The rocket ML device: support rules, compile, and the context that runs subgraphs (Mesa:
``rkt_device.c`` plus the support query and invoke of ``rkt_ml.c``).

**Support.** Each rule is one small predicate whose docstring is the rule (``docs/rocket.md``
prints them); it returns None or a one-line reason. An operation is supported when every rule
that applies to its type passes.

**Compile** needs no device: ``subgraph_create`` runs ``ml.PIPELINE``, lowers to job records
and assembles a :class:`subgraph.Program` that serializes to bytes.

**Context.** One open accel/rocket file (the kernel's node or the simulated device) per
context. The first invoke of a subgraph creates its BOs, uploads the coefficients and the
register streams with their relocations patched; every invoke converts the inputs into their
BOs (``q - o`` in NC1HWC2), submits all jobs in one SUBMIT, and waits for the outputs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ...gallium.device import DeviceError, JobCounters, MlContext, MlDevice, MlSubgraph, subgraph_io
from ...gallium.operation import Clamp, ConvParams, OpType, PipeMlOperation
from ...gallium.tensor import ElementType, PipeTensor
from ...nir_tensor.builder import build_graph
from ...nir_tensor.passes.fully_connected import factor_features
from ...nir_tensor.pipeline import run_pipeline
from ...util.soc import RocketNpu
from . import debug, ml, regcmd, subgraph
from . import rocket_regs as R
from .job import BufferKind, FeatureMap
from .task import CBUF_ENTRY_BYTES, STREAMED_DATA_BANKS, entries_per_slice
from .winsys import Bo, Job, Task, Winsys

DRIVER = "rocket"
ACTIVATION_TYPES = (ElementType.UINT8, ElementType.INT8)
# The widths of the register fields the sizes go to (registers.xml).
MAX_SIDE = regcmd.field_max(R.CNA.DATA_SIZE0, "DATAIN_WIDTH")
MAX_CHANNELS = ml.MAX_CHANNELS
MAX_STRIDE = regcmd.field_max(R.CNA.CONV_CON3, "CONV_X_STRIDE")
MAX_KERNEL = regcmd.field_max(R.CNA.WEIGHT_SIZE2, "WEIGHT_WIDTH")
# inject=oob: how far past the subgraph's last buffer the corrupted address points (1 MiB).
OOB_GAP = 0x100000


# -- support rules ---------------------------------------------------------------------------


def rule_type(op: PipeMlOperation) -> str | None:
    """Convolution (direct and depthwise), fully connected, ADD and RESHAPE run on the NPU;
    everything else stays on the CPU."""
    if op.type not in RULES_BY_TYPE:
        return f"{op.type.value} does not run on the NPU"
    return None


def rule_activations(op: PipeMlOperation) -> str | None:
    """Activations are uint8 or int8, the same type in and out, with one scale and zero point."""
    t = op.outputs[0].type
    for x in (*op.inputs[:1], *op.outputs, *(op.inputs[1:2] if op.type is OpType.ADD else ())):
        if x.type not in ACTIVATION_TYPES:
            return f"{x.type.short} activations"
        if x.type is not t:
            return f"{x.type.short} input with {t.short} output"
        if x.quant.per_axis:
            return "per-axis quantized activations"
    return None


def rule_batch(op: PipeMlOperation) -> str | None:
    """Convolutions take one image (batch 1)."""
    if op.inputs[0].dims[0] != 1:
        return f"batch {op.inputs[0].dims[0]}"
    return None


def rule_constant_weights(op: PipeMlOperation) -> str | None:
    """Weights and biases are constant (they are packed at compile time)."""
    for t in op.inputs[1:3]:
        if t is not None and not t.is_constant:
            return f"tensor {t.index} (weights or bias) is not constant"
    return None


def rule_weight_quantization(op: PipeMlOperation) -> str | None:
    """Weights are uint8 per tensor with uint8 activations, int8 with int8 activations; int8
    weights may be per-axis on the output channels with zero points 0 (TFLite's spec)."""
    w, act = op.inputs[1], op.inputs[0].type
    if w.type is not act:
        return f"{w.type.short} weights with {act.short} activations"
    q = w.quant
    if q.per_axis:
        if act is not ElementType.INT8:
            return "per-axis uint8 weights"
        if q.zero_points is not None and any(q.zero_points):
            return "per-axis weights with non-zero zero points"
        depthwise = isinstance(op.params, ConvParams) and op.params.depthwise
        axis = 3 if depthwise else (2 if op.type is OpType.FULLY_CONNECTED else 0)
        if q.axis != axis:
            return f"per-axis weights along axis {q.axis}, not the output channels"
    return None


def rule_conv_geometry(op: PipeMlOperation) -> str | None:
    """No dilation; strides up to 7, kernels up to 31, top/left padding up to 15 (the register
    fields' widths)."""
    p: ConvParams = op.params
    if p.dilation != (1, 1):
        return f"dilation {p.dilation[0]}x{p.dilation[1]}"
    if max(p.stride) > MAX_STRIDE:
        return f"stride {max(p.stride)} > {MAX_STRIDE}"
    kh, kw = op.inputs[1].dims[1:3]
    if max(kh, kw) > MAX_KERNEL:
        return f"kernel {kh}x{kw} larger than {MAX_KERNEL}"
    if max(p.padding.top, p.padding.left) > ml.MAX_PADDING:
        return f"padding above {ml.MAX_PADDING}"
    return None


def rule_sizes(op: PipeMlOperation) -> str | None:
    """Feature maps are at most 2047 pixels wide and high and 16384 channels deep (a fully
    connected layer with more input features runs as a convolution over a factorised block)."""
    for t in (op.inputs[0], op.outputs[0]):
        _, h, w, c = _feature_dims(op, t)
        if max(h, w) > MAX_SIDE:
            return f"tensor {t.index} is {h}x{w}, more than {MAX_SIDE}"
        if c > MAX_CHANNELS:
            return f"tensor {t.index} has {c} channels, more than {MAX_CHANNELS}"
    return None


def rule_cbuf(op: PipeMlOperation) -> str | None:
    """The input rows one output row needs fit the convolution buffer's data banks."""
    npu = _npu()
    _, _, w, c = _feature_dims(op, op.inputs[0])
    kh = (
        op.inputs[1].dims[1]
        if op.type is OpType.CONVOLUTION
        else _feature_dims(op, op.inputs[0])[1]
    )
    entries = kh * entries_per_slice(npu, w, c)
    capacity = STREAMED_DATA_BANKS * npu.cbuf_bank_bytes // CBUF_ENTRY_BYTES
    if entries > capacity:
        return f"{kh} input rows of {w}x{c} do not fit the convolution buffer"
    return None


def rule_clamp(op: PipeMlOperation) -> str | None:
    """A fused activation is any clamp when the weights are per tensor (BS clamps the
    accumulator); with per-axis weights, and for ADD, its minimum is the type's minimum or the
    zero point (ReLU, ReLU6) and a maximum below the type's needs that minimum too (the DPU's
    ReLUX acts after ReLU)."""
    clamp: Clamp | None = getattr(op.params, "clamp", None)
    out = op.outputs[0]
    if clamp is None:
        return None
    if op.type is not OpType.ADD and not op.inputs[1].quant.per_axis:
        return None
    qmin, zp = out.type.qmin, out.quant.zero_point
    if qmin < clamp.lo != zp:
        return f"activation minimum {clamp.lo} is neither {qmin} nor the zero point"
    if clamp.hi < out.type.qmax and clamp.lo < zp and zp > qmin:
        return f"activation maximum {clamp.hi} without a minimum at the zero point {zp}"
    return None


def rule_add(op: PipeMlOperation) -> str | None:
    """ADD takes two non-constant inputs of the output's shape (no broadcast)."""
    a, b = op.inputs[:2]
    for t in (a, b):
        if t.is_constant:
            return f"ADD of constant tensor {t.index}"
        if t.dims != op.outputs[0].dims:
            return f"ADD broadcasts {a.dims} and {b.dims}"
    if op.outputs[0].dims[0] != 1:
        return f"batch {op.outputs[0].dims[0]}"
    return None


def rule_reshape(op: PipeMlOperation) -> str | None:
    """RESHAPE only changes the rank (the same 4-D dims), so no byte moves."""
    if op.inputs[0].dims != op.outputs[0].dims:
        return f"reshape {op.inputs[0].dims} -> {op.outputs[0].dims} moves data"
    return None


_CONV_RULES = (
    rule_activations,
    rule_batch,
    rule_constant_weights,
    rule_weight_quantization,
    rule_sizes,
    rule_cbuf,
    rule_clamp,
)
RULES_BY_TYPE: Mapping[OpType, tuple[Callable[[PipeMlOperation], str | None], ...]] = {
    OpType.CONVOLUTION: (*_CONV_RULES, rule_conv_geometry),
    OpType.FULLY_CONNECTED: _CONV_RULES,
    OpType.ADD: (rule_activations, rule_add, rule_clamp),
    OpType.RESHAPE: (rule_activations, rule_reshape),
}
RULES = (rule_type, *dict.fromkeys(r for rules in RULES_BY_TYPE.values() for r in rules))


def support_markdown() -> str:
    """The support table of docs/rocket.md, generated from the rules' docstrings."""
    lines = ["| rule | applies to | the rule |", "|---|---|---|"]
    for rule in RULES:
        types = [t.value for t, rules in RULES_BY_TYPE.items() if rule in rules]
        applies = ", ".join(types) if types else "every operation"
        doc = " ".join((rule.__doc__ or "").split())
        lines.append(f"| `{rule.__name__}` | {applies} | {doc} |")
    return "\n".join(lines)


def _feature_dims(op: PipeMlOperation, t: PipeTensor) -> tuple[int, int, int, int]:
    """The NHWC dims the NPU sees: an FC's input is one row of ``batch`` pixels (1x1 form), or
    past MAX_CHANNELS features (batch 1) the factorised y x x x z block (``ml.PIPELINE``)."""
    if op.type is not OpType.FULLY_CONNECTED:
        return t.dims
    features = op.inputs[1].dims[3]
    if t is not op.inputs[0]:
        return (1, 1, t.size // t.dims[3], t.dims[3])
    batch = t.size // features
    if features > MAX_CHANNELS and batch == 1:
        x, y, z = factor_features(features, ml.FC_FACTOR_MAX)
        return (1, y, x, z)
    return (1, 1, batch, features)


def _npu() -> RocketNpu:
    from ...util.soc import soc

    return soc("rk3588").npu


def operation_supported(op: PipeMlOperation) -> str | None:
    """The first failing rule's reason, or None."""
    reason = rule_type(op)
    if reason:
        return reason
    for rule in RULES_BY_TYPE[op.type]:
        reason = rule(op)
        if reason:
            return reason
    return None


# -- subgraph and context --------------------------------------------------------------------


class RocketSubgraph(MlSubgraph):
    driver = DRIVER

    def __init__(self, program: subgraph.Program) -> None:
        self.program = program
        self.inputs = program.pipe_inputs
        self.outputs = program.pipe_outputs

    def serialize(self) -> bytes:
        return subgraph.serialize(self.program)


def write_feature(mem: np.ndarray, fm: FeatureMap, x: np.ndarray, offset: int) -> None:
    """Store NHWC ``x`` (batch 1, the model's values) as ``x - offset`` in NC1HWC2 at ``fm``;
    padding channels get the zero point (their weights cancel them, coefs module doc)."""
    _, h, w, c = x.shape
    atom = fm.line_stride // fm.width
    groups = -(-c // atom)
    planes = np.full((h, w, groups * atom), fm.zero_point, dtype=np.int8)
    planes[..., :c] = (x[0].astype(np.int16) - offset).astype(np.int8)
    dst = np.lib.stride_tricks.as_strided(
        mem[fm.ref.offset :],
        shape=(groups, h, w, atom),
        strides=(fm.surface_stride, fm.line_stride, atom, 1),
        writeable=True,
    )
    dst[...] = planes.reshape(h, w, groups, atom).transpose(2, 0, 1, 3)


def read_feature(mem: np.ndarray, fm: FeatureMap, offset: int, dtype: np.dtype) -> np.ndarray:
    """The NHWC tensor (batch 1) a feature map holds, back in the model's values."""
    atom = fm.line_stride // fm.width
    groups = -(-fm.channels // atom)
    src = np.lib.stride_tricks.as_strided(
        mem[fm.ref.offset :],
        shape=(groups, fm.height, fm.width, atom),
        strides=(fm.surface_stride, fm.line_stride, atom, 1),
        writeable=False,
    )
    nhwc = src.transpose(1, 2, 0, 3).reshape(fm.height, fm.width, groups * atom)
    values = nhwc[..., : fm.channels].astype(np.int16) + offset
    return values.astype(dtype)[None]


@dataclasses.dataclass(slots=True)
class _Bound:
    """A subgraph's BOs in one context (made on its first invoke)."""

    bos: list[Bo]
    mems: list[np.ndarray]
    jobs: list[Job]
    ready: bool = False
    copies: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)


class RocketContext(MlContext):
    def __init__(self, device: RocketDevice) -> None:
        self.device = device
        self.debug = device.debug
        self.winsys = Winsys(device.open_file(), DRIVER)
        self._bound: dict[int, _Bound] = {}
        self._counters: list[JobCounters] = []
        self._job_base = 0

    def subgraph_deserialize(self, blob: bytes) -> RocketSubgraph:
        return RocketSubgraph(subgraph.deserialize(blob))

    def _bind(self, sg: RocketSubgraph) -> _Bound:
        bound = self._bound.get(id(sg))
        if bound is not None:
            return bound
        program = sg.program
        bos = [self.winsys.create_bo(max(b.size, 1)) for b in program.buffers]
        mems = [np.frombuffer(bo.map, dtype=np.int8) for bo in bos]
        addresses = [bo.dma_address for bo in bos]
        coefs = np.frombuffer(program.coefs, dtype=np.int8)
        mems[subgraph.COEFS_BUFFER][: len(coefs)] = coefs
        words = subgraph.relocated(program, addresses)
        tasks = [Task(addresses[subgraph.REGCMD_BUFFER] + s.offset, s.count) for s in program.slots]
        tasks = self._inject(program, words, tasks, addresses)
        mems[subgraph.REGCMD_BUFFER][: words.nbytes] = words.view(np.int8)
        for i in (subgraph.COEFS_BUFFER, subgraph.REGCMD_BUFFER):
            self.winsys.fini_bo(bos[i])
        jobs = [
            Job(
                tuple(tasks[t] for t in j.tasks),
                tuple(bos[b].handle for b in j.reads),
                tuple(bos[b].handle for b in j.writes),
            )
            for j in program.jobs
        ]
        bound = self._bound[id(sg)] = _Bound(bos, mems, jobs)
        self._dump_program(program, mems)
        return bound

    def _inject(self, program, words: np.ndarray, tasks: list[Task], addresses) -> list[Task]:
        """ROCKET_DEBUG=inject=...: break the first task the way the flag says (debug.py)."""
        inject = self.debug.inject
        if inject is None or not program.slots:
            return tasks
        slot = program.slots[0]
        if inject is debug.Inject.OOB:
            at = next(
                at
                for at, _, _, reg in program.relocs.tolist()
                if program.registers[reg].startswith("CNA.FEATURE_DATA_ADDR")
            )
            end = max(a + b.size for a, b in zip(addresses, program.buffers, strict=True))
            regcmd.patch(words, at, "CNA.FEATURE_DATA_ADDR", "FEATURE_BASE_ADDR", end + OOB_GAP)
        elif inject is debug.Inject.TRUNCATE:
            tasks[0] = dataclasses.replace(tasks[0], regcmd_count=slot.count // 2)
        elif inject is debug.Inject.HANG:
            words[slot.offset // 8 + slot.count - 1] = 0  # the op_en entry becomes a no-op
        return tasks

    def _dump_program(self, program: subgraph.Program, mems: list[np.ndarray]) -> None:
        flags = self.debug
        if flags.dump_dir is None:
            return
        regs = mems[subgraph.REGCMD_BUFFER]
        for s in program.slots:
            debug.dump(flags, "regcmd", s.op, s.task, regs[s.offset : s.offset + s.count * 8])
        coefs = mems[subgraph.COEFS_BUFFER]
        for op, sections in enumerate(program.sections):
            for what, (start, size) in zip(("weights", "bias"), sections, strict=False):
                debug.dump(flags, what, op, 0, coefs[start : start + size])

    def subgraph_invoke(self, subgraph_: MlSubgraph, inputs: Mapping[int, np.ndarray]) -> None:
        assert isinstance(subgraph_, RocketSubgraph)
        program = subgraph_.program
        missing = [h.index for h in program.inputs if h.index not in inputs]
        if missing:
            raise DeviceError(f"{DRIVER}: no data for input tensor(s) {missing}")
        bound = self._bind(subgraph_)
        for n, h in enumerate(program.inputs):
            x = np.asarray(inputs[h.index]).reshape(h.shape)
            write_feature(bound.mems[h.fm.ref.buffer], h.fm, x, h.offset)
            debug.dump(self.debug, "input", 0, n, bound.mems[h.fm.ref.buffer])
        for b, buf in enumerate(program.buffers):
            if buf.kind is BufferKind.INPUT:
                self.winsys.fini_bo(bound.bos[b])
        drm = self.winsys.drm
        before = len(drm.job_counters()) if hasattr(drm, "job_counters") else 0
        bound.copies = {
            h.index: np.asarray(inputs[h.source]) for h in program.outputs if h.fm is None
        }
        written = dict.fromkeys(h.fm.ref.buffer for h in program.outputs if h.fm is not None)
        try:
            if bound.jobs:
                self.winsys.submit(bound.jobs)
            for b in written:
                self.winsys.prep_bo(bound.bos[b])
        except DeviceError as e:
            raise DeviceError(self._explain(e)) from None
        finally:
            self._collect(program, before)
        for n, h in enumerate(program.outputs):
            if h.fm is not None:
                debug.dump(self.debug, "output", 0, n, bound.mems[h.fm.ref.buffer])
        bound.ready = True

    def _explain(self, e: DeviceError) -> str:
        """The kernel's errno, plus the simulated device's log line when it keeps one."""
        last = getattr(self.winsys.drm, "last_fault", None)
        detail = last() if last is not None else None
        message = str(e)
        return f"{message}: {detail}" if detail and detail not in message else message

    def _collect(self, program: subgraph.Program, before: int) -> None:
        drm = self.winsys.drm
        if not hasattr(drm, "job_counters"):
            self._counters = []
            return
        records = drm.job_counters()[before:]
        counters = []
        for plan, rec in zip(program.jobs, records, strict=False):
            counters.append(
                JobCounters(
                    op_index=program.origins[plan.op],
                    name=f"op{plan.op:03d}",
                    macs=rec.macs,
                    bytes_read=dict(rec.bytes_read),
                    bytes_written=dict(rec.bytes_written),
                    tasks=rec.tasks,
                    cores=(rec.core,),
                    extra={"start_ns": rec.start_ns, "end_ns": rec.end_ns},
                    kind=program.kinds[plan.op],
                    reads=plan.reads,
                    writes=plan.writes,
                )
            )
        self._counters = counters

    def subgraph_read_outputs(self, subgraph_: MlSubgraph) -> list[np.ndarray]:
        assert isinstance(subgraph_, RocketSubgraph)
        bound = self._bound.get(id(subgraph_))
        if bound is None or not bound.ready:
            raise DeviceError(f"{DRIVER}: read_outputs before a successful invoke")
        program = subgraph_.program
        outs = []
        for h, pipe in zip(program.outputs, program.pipe_outputs, strict=True):
            if h.fm is None:
                outs.append(bound.copies[h.index].reshape(pipe.shape).astype(pipe.type.numpy))
                continue
            values = read_feature(bound.mems[h.fm.ref.buffer], h.fm, h.offset, pipe.type.numpy)
            outs.append(values.reshape(pipe.shape))
        return outs

    def last_counters(self) -> list[JobCounters]:
        return list(self._counters)

    def destroy(self) -> None:
        self._bound.clear()
        self.winsys.close()


class RocketDevice(MlDevice):
    name = DRIVER

    def __init__(
        self,
        npu: RocketNpu,
        open_file: Callable[[], object],
        *,
        name: str = DRIVER,
        flags: debug.DebugFlags = debug.DEBUG,
        fuse_add: bool = False,
    ) -> None:
        self.npu = npu
        self.pipeline = ml.PIPELINE_FUSED if fuse_add else ml.PIPELINE
        self.name = name
        self.open_file = open_file
        self.debug = flags
        self.compile_context = ml.CompileContext(npu)
        self.last_compile_s = 0.0

    def operation_supported(self, op: PipeMlOperation) -> str | None:
        return operation_supported(op)

    def subgraph_create(self, ops: Sequence[PipeMlOperation]) -> RocketSubgraph:
        t0 = time.perf_counter()
        graph = build_graph(ops)
        fc = ml.fc_origins(graph)
        graph = run_pipeline(graph, self.pipeline).graph
        lowered = ml.lower(self.compile_context, graph, fc)
        pipe_in, pipe_out = subgraph_io(ops)
        program = subgraph.assemble(self.npu, lowered, tuple(pipe_in), tuple(pipe_out))
        self.last_compile_s = time.perf_counter() - t0
        return RocketSubgraph(program)

    def create_context(self) -> RocketContext:
        return RocketContext(self)


__all__ = ["RULES", "RocketContext", "RocketDevice", "RocketSubgraph", "operation_supported"]
