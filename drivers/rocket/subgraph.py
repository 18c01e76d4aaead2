"""The compiled subgraph: register streams placed in one buffer, tasks chained, jobs, and the
serialized blob (Mesa: ``compile_operation()`` and the job building of
``rkt_ml_subgraph_invoke`` in ``rkt_ml.c``).

:func:`assemble` emits every task's stream (``regcmd.emit_task``), gives each a 64-byte aligned
slot in the regcmd buffer, chains the tasks of an operation (``regcmd.chain``) and turns the
operations into jobs: an operation whose weights stay in the CBUF is one job (its tasks run in
order on one core and reuse the weights); otherwise each task is its own job, so the kernel may
spread them over the cores (rocket-nvdla.md §5). Every job lists the feature buffers it reads
and writes: the kernel orders jobs by those implicit dependencies.

The :class:`Program` needs no device: addresses are relocation records, patched when the
buffers exist. It serializes through ``util.blob`` (streams, relocations, coefficient bytes, the
buffer plan, jobs and the I/O descriptors).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ...gallium.tensor import ElementType, PipeTensor, Quant
from ...util import blob
from ...util.soc import RocketNpu
from . import regcmd
from .job import Buffer, BufferKind, BufferRef, FeatureMap
from .ml import COEFS_BUFFER, REGCMD_BUFFER, HostTensor, Lowered

DRIVER = "rocket"
# A relocation row: (qword position in the regcmd buffer, buffer, byte offset, register index).
RELOC_COLUMNS = 4


@dataclass(frozen=True, slots=True)
class TaskSlot:
    """One task's stream in the regcmd buffer."""

    op: int
    task: int
    offset: int  # bytes into the regcmd buffer
    count: int  # qwords, the tail included (what drm_rocket_task.regcmd_count holds)


@dataclass(frozen=True, slots=True)
class JobPlan:
    op: int  # the operation (index into Program.ops_origin)
    tasks: tuple[int, ...]  # indices into Program.slots
    reads: tuple[int, ...]  # buffer indices
    writes: tuple[int, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Program:
    buffers: tuple[Buffer, ...]
    coefs: bytes
    regcmd: np.ndarray  # uint64, the whole regcmd buffer before relocation
    relocs: np.ndarray  # int64 (N, RELOC_COLUMNS)
    registers: tuple[str, ...]  # "DOMAIN.REGISTER:FIELD" of each relocation's register index
    slots: tuple[TaskSlot, ...]
    jobs: tuple[JobPlan, ...]
    origins: tuple[int, ...]  # per operation: the source-model operation
    inputs: tuple[HostTensor, ...]
    outputs: tuple[HostTensor, ...]
    pipe_inputs: tuple[PipeTensor, ...]
    pipe_outputs: tuple[PipeTensor, ...]
    macs: tuple[int, ...]  # per operation, what its registers program
    sections: tuple[tuple[tuple[int, int], ...], ...]  # per operation: weights, bias (for dumps)
    kinds: tuple[str, ...]  # per operation: the job kind the cost model reads


def assemble(
    npu: RocketNpu,
    lowered: Lowered,
    pipe_inputs: tuple[PipeTensor, ...],
    pipe_outputs: tuple[PipeTensor, ...],
) -> Program:
    words: list[np.ndarray] = []
    relocs: list[tuple[int, int, int, int]] = []
    names: dict[str, int] = {}
    slots: list[TaskSlot] = []
    jobs: list[JobPlan] = []
    offset = 0
    packed: dict = {}  # this compilation's memo of packed register entries
    for op in lowered.ops:
        streams = [regcmd.emit_task(npu, op, task, packed) for task in op.tasks]
        offsets = []
        for s in streams:
            offsets.append(offset)
            offset += -(-s.qwords.nbytes // regcmd.STREAM_ALIGN) * regcmd.STREAM_ALIGN
        streams = regcmd.chain(streams, offsets, REGCMD_BUFFER)
        first = len(slots)
        for t, (s, at) in enumerate(zip(streams, offsets, strict=True)):
            padded = np.zeros(-(-s.qwords.nbytes // regcmd.STREAM_ALIGN) * 8, dtype=np.uint64)
            padded[: len(s.qwords)] = s.qwords
            words.append(padded)
            for r in s.relocs:
                key = f"{r.register}:{r.field}"
                reg = names.setdefault(key, len(names))
                relocs.append((at // 8 + r.at, r.buffer, r.offset, reg))
            slots.append(TaskSlot(op.index, t, at, len(s.qwords)))
        reads = op.reads
        writes = (op.output.ref.buffer,)
        indices = tuple(range(first, len(slots)))
        if op.resident or len(indices) == 1:
            jobs.append(JobPlan(op.index, indices, reads, writes))
        else:
            jobs.extend(JobPlan(op.index, (i,), reads, writes) for i in indices)
    # The PC fetches whole 128-bit units (docs/rocket-npu-model.md §3): keep one spare slot.
    words.append(np.zeros(regcmd.STREAM_ALIGN // 8, dtype=np.uint64))
    stream = np.concatenate(words)
    buffers = list(lowered.buffers)
    buffers[REGCMD_BUFFER] = dataclasses.replace(buffers[REGCMD_BUFFER], size=stream.nbytes)
    return Program(
        buffers=tuple(buffers),
        coefs=lowered.coefs,
        regcmd=stream,
        relocs=np.array(relocs, dtype=np.int64).reshape(-1, RELOC_COLUMNS),
        registers=tuple(names),
        slots=tuple(slots),
        jobs=tuple(jobs),
        origins=tuple(op.origin for op in lowered.ops),
        inputs=lowered.inputs,
        outputs=lowered.outputs,
        pipe_inputs=pipe_inputs,
        pipe_outputs=pipe_outputs,
        macs=tuple(_macs(op) for op in lowered.ops),
        sections=tuple(_sections(op) for op in lowered.ops),
        kinds=tuple(op.kind for op in lowered.ops),
    )


def _sections(op) -> tuple[tuple[int, int], ...]:
    """(offset, size) in the coefficient buffer of an operation's weights and bias table."""
    found = [(op.weights.ref.offset, op.weights.size)]
    if op.dpu.bs.memory is not None:
        found.append((op.dpu.bs.memory.ref.offset, op.dpu.bs.memory.size))
    return tuple(found)


def _macs(op) -> int:
    """MACs the registers program (docs/rocket-npu-model.md §2)."""
    kh, kw = op.kernel
    per = op.output.width * op.output.height * kh * kw * op.weight_channels
    return per if op.depthwise else per * op.weight_kernels


def relocated(program: Program, addresses: list[int]) -> np.ndarray:
    """The regcmd buffer with every relocation patched (``addresses`` per buffer)."""
    words = program.regcmd.copy()
    records = []
    for at, buffer, offset, reg in program.relocs.tolist():
        register, _, field = program.registers[reg].partition(":")
        records.append(regcmd.Reloc(at, buffer, offset, register, field))
    regcmd.relocate(words, records, addresses)
    return words


# -- serialization ---------------------------------------------------------------------------


def _quant_json(q: Quant) -> dict:
    return dataclasses.asdict(q)


def _pipe_json(t: PipeTensor) -> dict:
    return {
        "index": t.index,
        "dims": list(t.dims),
        "rank": t.rank,
        "type": t.type.name,
        "quant": _quant_json(t.quant),
        "name": t.name,
    }


def _pipe_from(d: dict) -> PipeTensor:
    q = d["quant"]
    quant = Quant(
        q["scale"],
        q["zero_point"],
        None if q["scales"] is None else tuple(q["scales"]),
        None if q["zero_points"] is None else tuple(q["zero_points"]),
        q["axis"],
    )
    return PipeTensor(d["index"], tuple(d["dims"]), d["rank"], ElementType[d["type"]], quant,
                      name=d["name"])  # fmt: skip


def _host_json(h: HostTensor) -> dict:
    fm = None if h.fm is None else dataclasses.asdict(h.fm)
    return {
        "index": h.index,
        "fm": fm,
        "shape": list(h.shape),
        "offset": h.offset,
        "source": h.source,
    }


def _host_from(d: dict) -> HostTensor:
    fm = None
    if d["fm"] is not None:
        fields = dict(d["fm"])
        fields["ref"] = BufferRef(**fields["ref"])
        fm = FeatureMap(**fields)
    return HostTensor(d["index"], fm, tuple(d["shape"]), d["offset"], d["source"])


def serialize(program: Program) -> bytes:
    meta = {
        "buffers": [[b.kind.value, b.size, b.name] for b in program.buffers],
        "registers": list(program.registers),
        "slots": [[s.op, s.task, s.offset, s.count] for s in program.slots],
        "jobs": [[j.op, list(j.tasks), list(j.reads), list(j.writes)] for j in program.jobs],
        "origins": list(program.origins),
        "macs": list(program.macs),
        "sections": [[list(x) for x in s] for s in program.sections],
        "kinds": list(program.kinds),
        "inputs": [_host_json(h) for h in program.inputs],
        "outputs": [_host_json(h) for h in program.outputs],
        "pipe_inputs": [_pipe_json(t) for t in program.pipe_inputs],
        "pipe_outputs": [_pipe_json(t) for t in program.pipe_outputs],
    }
    sections = {
        "coefs": program.coefs,
        "regcmd": program.regcmd,
        "relocs": program.relocs,
    }
    return blob.pack(DRIVER, meta, sections)


def deserialize(data: bytes) -> Program:
    meta, sections = blob.unpack(data, DRIVER)
    return Program(
        buffers=tuple(Buffer(BufferKind(k), size, name) for k, size, name in meta["buffers"]),
        coefs=bytes(sections["coefs"]),
        regcmd=np.asarray(sections["regcmd"], dtype=np.uint64),
        relocs=np.asarray(sections["relocs"], dtype=np.int64).reshape(-1, RELOC_COLUMNS),
        registers=tuple(meta["registers"]),
        slots=tuple(TaskSlot(*s) for s in meta["slots"]),
        jobs=tuple(JobPlan(j[0], tuple(j[1]), tuple(j[2]), tuple(j[3])) for j in meta["jobs"]),
        origins=tuple(meta["origins"]),
        inputs=tuple(_host_from(h) for h in meta["inputs"]),
        outputs=tuple(_host_from(h) for h in meta["outputs"]),
        pipe_inputs=tuple(_pipe_from(t) for t in meta["pipe_inputs"]),
        pipe_outputs=tuple(_pipe_from(t) for t in meta["pipe_outputs"]),
        macs=tuple(meta["macs"]),
        sections=tuple(tuple(tuple(x) for x in s) for s in meta["sections"]),
        kinds=tuple(meta["kinds"]),
    )


__all__ = ["COEFS_BUFFER", "REGCMD_BUFFER", "Program", "assemble", "deserialize", "serialize"]
