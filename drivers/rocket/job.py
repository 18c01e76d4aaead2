"""The job records lowering produces and emission consumes (Mesa: ``struct rkt_operation`` and
``struct split_task`` in ``rkt_ml.h``).

Plain frozen data, no graph objects: a :class:`ConvOperation` says everything the register
stream of one convolution needs, in hardware terms (stored int8 values, bytes, register-level
requantization integers). ``regcmd`` turns it into qwords; ``ml`` builds it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .task import Task


class BufferKind(enum.Enum):
    """What a buffer of the subgraph holds; the host touches inputs and outputs only."""

    INPUT = "input"  # a graph input: the host converts and uploads it
    OUTPUT = "output"  # a graph output: the host reads it back
    INTERMEDIATE = "intermediate"  # written and read by the NPU only
    COEFS = "coefs"  # weights, biases and per-channel scales, uploaded once
    REGCMD = "regcmd"  # every task's register stream, uploaded once (after relocation)


@dataclass(frozen=True, slots=True)
class Buffer:
    """One BO of the subgraph (``size`` bytes; created on the first invoke)."""

    kind: BufferKind
    size: int
    name: str


@dataclass(frozen=True, slots=True)
class BufferRef:
    buffer: int  # index into the subgraph's buffer table
    offset: int = 0  # bytes


@dataclass(frozen=True, slots=True)
class FeatureMap:
    """A feature map as the NPU stores it: NC1HWC2 with C2 = 16 int8 channels (the stored
    value is ``q - o``, coefs.hw_offset), at ``ref``, with its base's strides in bytes."""

    ref: BufferRef
    height: int
    width: int
    channels: int
    line_stride: int  # bytes from one row to the next
    surface_stride: int  # bytes from one 16-channel surface to the next
    zero_point: int  # in the stored domain: z - o

    def surfaces(self, atom: int) -> int:
        return -(-self.channels // atom)


@dataclass(frozen=True, slots=True)
class Section:
    """A byte range of the coefficient buffer."""

    ref: BufferRef
    size: int


@dataclass(frozen=True, slots=True)
class DpuStage:
    """One of the DPU's BS and BN stages (NVDLA SDP X1/X2): ALU, then multiplier, then ReLU.

    ``None`` bypasses a part. Operands from memory are per channel, read by DPU_RDMA (BRDMA for
    BS, NRDMA for BN) from ``memory``.
    """

    alu_memory: bool = False  # add the per-channel int32 operand from memory
    alu: int | None = None  # else add this register operand
    mul: int | None = None  # multiply by this register operand
    mul_memory: bool = False  # multiply by the per-channel operand from memory
    mul_shift: int = 0  # then shift right by this, rounding
    relu: bool = False  # max(x, 0)
    relux: int | None = None  # then min(x, relux)
    memory: Section | None = None

    @property
    def bypass(self) -> bool:
        return (
            not self.alu_memory
            and self.alu is None
            and self.mul is None
            and not self.mul_memory
            and not self.relu
            and self.relux is None
        )


@dataclass(frozen=True, slots=True)
class EwStage:
    """The element-wise stage fusing an ADD: the operand (read by ERDMA) is converted,
    ``((e + offset)·scale) >> shift`` or ``((e·scale) >> shift) + offset``, then added."""

    operand: FeatureMap
    offset: int
    scale: int
    shift: int
    add_first: bool  # EW_CVT_TYPE: add-then-multiply (True) or multiply-then-add
    relu: bool = False  # after the addition: max(v, 0)
    relux: int | None = None  # then min(v, relux)


@dataclass(frozen=True, slots=True)
class OutputConvert:
    """The DPU output convertor: ``sat(((x·scale) >> shift) + offset)`` (or add first)."""

    offset: int
    scale: int
    shift: int
    add_first: bool = False
    round_half_up: bool = False  # CVT_ROUND (rocket-nvdla.md §7: 0 = the TRM's "odd rounds")


@dataclass(frozen=True, slots=True)
class Dpu:
    """Everything the DPU is programmed with for one convolution."""

    bs: DpuStage
    bn: DpuStage
    ew: EwStage | None
    out: OutputConvert
    ow_op: int  # BS_OW_OP: o - z_w, the weight zero-point term (coefs module doc)
    clip_truncate: int = 0  # CORE CLIP_TRUNCATE: accumulator right shift before the DPU


@dataclass(frozen=True, slots=True)
class ConvOperation:
    """One convolution (direct or depthwise), as Mesa's ``rkt_operation``."""

    index: int  # position in the subgraph (dump names)
    origin: int  # source-model operation
    depthwise: bool
    input: FeatureMap
    output: FeatureMap
    kernel: tuple[int, int]  # (kh, kw)
    stride: tuple[int, int]  # (y, x)
    pad: tuple[int, int, int, int]  # top, bottom, left, right
    pad_value: int  # border value in the stored domain: z_in - o
    weights: Section
    weight_kernels: int  # WEIGHT_KERNELS
    weight_channels: int  # C_al per kernel
    dpu: Dpu
    tasks: tuple[Task, ...]
    resident: bool  # weights stay in the CBUF: all tasks in one job on one core
    kind: str = "conv"  # the job kind reported to the cost model (util.performance.JobKind)

    @property
    def reads(self) -> tuple[int, ...]:
        """Feature buffers the NPU reads (the job's in-BOs)."""
        bufs = [self.input.ref.buffer]
        if self.dpu.ew is not None:
            bufs.append(self.dpu.ew.operand.ref.buffer)
        return tuple(dict.fromkeys(bufs))
