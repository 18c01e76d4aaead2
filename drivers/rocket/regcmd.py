"""Register command streams: a pure function from a job record to qwords (Mesa:
``rkt_regcmd.c``).

:func:`emit_task` writes one task's stream in Mesa's order (rocket-nvdla.md §2): a preamble
(CBUF split, decompression off, CONV_CON1 and the DPU/DPU_RDMA register-group pointers), then
every register of CNA, CORE, DPU and DPU_RDMA in register order, one ``emit_<block>()`` each,
then the four-entry tail (next task's address and fetch amount, the 0x0041 entry the TRM asks
for, and the op_en entry). Every value goes through the generated packers of
``rocket_regs``, which raise on overflow.

Addresses are not known when compiling: an address register is emitted with its offset inside
its buffer and a :class:`Reloc` records where it is, so the context can patch the stream once
the buffers exist (``relocate``). Task chaining is a relocation into the regcmd buffer itself.

Values that Mesa fits to test models are replaced by the formulas named below, each citing
where it comes from; the two registers Mesa writes raw (CORE 0x3030, DPU 0x40C4) are in the XML
as ``UNK_3030`` and ``UNK_40C4``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ...util.soc import RocketNpu
from . import rocket_regs as R
from .job import ConvOperation, DpuStage, FeatureMap
from .task import Task, entries_per_slice

# rocket-nvdla.md §3 (Mesa's DMA_CON0 and the DPU's FEATURE_MODE_CFG): bursts of 16, stored
# minus one.
BURST_LEN = 15
# rocket-nvdla.md §2: the tail is four entries, the stream's last.
TAIL_ENTRIES = 4
# rocket-nvdla.md §2 ("compile_operation"): every task's stream starts 64-byte aligned.
STREAM_ALIGN = 64
# The blocks a convolution task enables (rocket-nvdla.md §2, "The enable mask": Mesa's 0x1D).
CONV_BLOCKS = {"OP_EN": 1, "CORE_OP_EN": 1, "DPU_OP_EN": 1, "DPU_RDMA_OP_EN": 1}


@dataclass(frozen=True, slots=True)
class Reloc:
    """An address register of a stream: patch ``at`` (qword index) with ``buffer``'s address
    plus ``offset``, through ``register``'s field ``field``."""

    at: int
    buffer: int
    offset: int
    register: str  # "CNA.FEATURE_DATA_ADDR"
    field: str


@dataclass(frozen=True, slots=True)
class Stream:
    qwords: np.ndarray  # uint64
    relocs: tuple[Reloc, ...]


class _Emitter:
    """Collects one stream. ``cache`` maps (offset, fields) to the packed entry: a compile
    emits the same register values many times (the caller owns it, one per compilation)."""

    def __init__(self, cache: dict | None = None) -> None:
        self.words: list[int] = []
        self.relocs: list[Reloc] = []
        self.cache = {} if cache is None else cache

    def emit(self, reg, **fields: int) -> None:
        key = (reg.offset, *fields.items())
        word = self.cache.get(key)
        if word is None:
            word = self.cache[key] = R.REGCMD.ENTRY.pack(
                BLOCK=R.target_of(reg.offset),
                UNK48=True,
                OFFSET=reg.offset,
                VALUE=reg.pack(**fields),
            )
        self.words.append(word)

    def address(self, reg, field: str, buffer: int, offset: int) -> None:
        """An address register: its value is patched when the buffer has an address."""
        self.relocs.append(
            Reloc(len(self.words), buffer, offset, f"{reg.domain}.{reg.name}", field)
        )
        self.emit(reg, **{field: 0})

    def raw(self, word: int) -> None:
        self.words.append(word)


# -- field helpers ---------------------------------------------------------------------------


def field_max(reg, name: str) -> int:
    """The largest unsigned value a register field holds (its XML width)."""
    return (1 << reg.field(name).width) - 1


def as_unsigned(reg, name: str, value: int) -> int:
    """An int32 value for a 32-bit ``hex`` field (the ReLUX thresholds): two's complement."""
    return value % (field_max(reg, name) + 1)


# -- named formulas --------------------------------------------------------------------------


def output_channels_aligned(channels: int, depthwise: bool) -> int:
    """The channel count CORE and the DPU work in, and the WDMA writes (rocket-nvdla.md §3,
    CORE: align(max(OC, 32), 32); depthwise doubled when <= 32, then aligned to 64)."""
    aligned = -(-max(channels, 32) // 32) * 32
    if depthwise:
        if channels <= 32:
            aligned *= 2
        aligned = -(-aligned // 64) * 64
    return aligned


def _aligned(op: ConvOperation) -> int:
    return output_channels_aligned(op.output.channels, op.depthwise)


def feature_grains(op: ConvOperation) -> int:
    """CONV_CON2 FEATURE_GRAINS: the rows fetched ahead, ``y_stride + kernel_h + 1`` (the TRM
    transcription, rocket-nvdla.md §3; Mesa's ``50 + stride + 1`` is fitted)."""
    return op.stride[0] + op.kernel[0] + 1


def surface_add(op: ConvOperation, task: Task) -> int:
    """DPU SURFACE_ADD (rocket-nvdla.md §3: outW·outH·2, ·4 for depthwise; the TRM-doc names it
    "surfaces per row")."""
    return op.output.width * task.out_rows * (4 if op.depthwise else 2)


def fetch_amount(next_count: int) -> int:
    """PC_REGISTER_AMOUNTS in a stream's tail: the next task's length as the vendor driver
    counts it, ``align((n - 4) / 2, 2)`` (rocket-nvdla.md §2, ``compile_operation``)."""
    units = (next_count - TAIL_ENTRIES) // 2
    return -(-units // 2) * 2


# -- blocks ----------------------------------------------------------------------------------


def emit_preamble(e: _Emitter, op: ConvOperation, task: Task) -> None:
    cbuf = _cbuf_con0(task)
    e.emit(R.CNA.CBUF_CON0, **cbuf)
    e.emit(R.CNA.DCOMP_REGNUM)
    e.emit(R.CNA.DCOMP_CTRL)
    e.emit(R.CNA.CONV_CON1, **_conv_con1(op))
    pointer = {"POINTER_PP_MODE": 1, "EXECUTER_PP_EN": 1, "POINTER_PP_EN": 1}
    e.emit(R.DPU.S_POINTER, **pointer)
    e.emit(R.DPU_RDMA.S_POINTER, **pointer)


def _cbuf_con0(task: Task) -> dict[str, int]:
    return {
        "DATA_BANK": task.data_banks,
        "WEIGHT_BANK": task.weight_banks,
        "WEIGHT_REUSE": int(task.reuse_weights),
    }


def _conv_con1(op: ConvOperation) -> dict[str, int]:
    mode = R.ConvMode.DEPTHWISE if op.depthwise else R.ConvMode.DIRECT
    return {"CONV_MODE": mode, "IN_PRECISION": R.Precision.INT8, "PROC_PRECISION": R.Precision.INT8}


def cna_strides(fm: FeatureMap) -> tuple[int, int]:
    """DMA_CON1 LINE_STRIDE and DMA_CON2 SURF_STRIDE of an NC1HWC2 input: Mesa's values
    (``rkt_task.c``: ``W·16/4`` and ``LINE_STRIDE·(H/4 - 1)``) read as a line of
    ``4·LINE_STRIDE`` bytes and a surface of ``16·(SURF_STRIDE + LINE_STRIDE)`` bytes
    (docs/rocket-npu-model.md §4, ``cna_strides="mesa"``)."""
    line = fm.line_stride // 4
    return line, fm.surface_stride // 16 - line


def emit_cna(e: _Emitter, npu: RocketNpu, op: ConvOperation, task: Task) -> None:
    inp, kh, kw = op.input, *op.kernel
    e.emit(R.CNA.CONV_CON1, **_conv_con1(op))
    e.emit(R.CNA.CONV_CON2, FEATURE_GRAINS=feature_grains(op))
    e.emit(R.CNA.CONV_CON3, CONV_X_STRIDE=op.stride[1], CONV_Y_STRIDE=op.stride[0])
    e.emit(R.CNA.DATA_SIZE0, DATAIN_WIDTH=inp.width, DATAIN_HEIGHT=task.in_rows)
    e.emit(
        R.CNA.DATA_SIZE1,
        DATAIN_CHANNEL=op.weight_channels,
        DATAIN_CHANNEL_REAL=inp.channels - 1,
    )
    e.emit(R.CNA.DATA_SIZE2, DATAOUT_WIDTH=op.output.width)
    e.emit(R.CNA.DATA_SIZE3, DATAOUT_ATOMICS=op.output.width * task.out_rows)
    per_kernel = kh * kw * op.weight_channels
    e.emit(R.CNA.WEIGHT_SIZE0, WEIGHT_BYTES=per_kernel * op.weight_kernels)
    e.emit(R.CNA.WEIGHT_SIZE1, WEIGHT_BYTES_PER_KERNEL=per_kernel)
    e.emit(R.CNA.WEIGHT_SIZE2, WEIGHT_WIDTH=kw, WEIGHT_HEIGHT=kh, WEIGHT_KERNELS=op.weight_kernels)
    e.emit(R.CNA.CBUF_CON0, **_cbuf_con0(task))
    e.emit(R.CNA.CBUF_CON1, DATA_ENTRIES=entries_per_slice(npu, inp.width, inp.channels))
    # The input convertor is bypassed: the host already stored q - o (rocket-nvdla.md §3).
    e.emit(R.CNA.CVT_CON0, CVT_BYPASS=1, CVT_TYPE=R.CvtType.ADD_THEN_MUL, DATA_SIGN=1)
    e.emit(R.CNA.CVT_CON1, CVT_SCALE0=1)
    e.emit(R.CNA.CVT_CON2, CVT_SCALE1=1)
    e.emit(R.CNA.CVT_CON3, CVT_SCALE2=1)
    e.emit(R.CNA.CVT_CON4, CVT_SCALE3=1)
    e.emit(R.CNA.FC_CON0)
    e.emit(R.CNA.FC_CON1)
    e.emit(R.CNA.PAD_CON0, PAD_TOP=task.pad_top, PAD_LEFT=op.pad[2])
    e.address(
        R.CNA.FEATURE_DATA_ADDR,
        "FEATURE_BASE_ADDR",
        inp.ref.buffer,
        inp.ref.offset + task.in_top * inp.line_stride,
    )
    e.emit(R.CNA.FC_CON2)
    e.emit(R.CNA.DMA_CON0, DATA_BURST_LEN=BURST_LEN, WEIGHT_BURST_LEN=BURST_LEN)
    line, surface = cna_strides(inp)
    e.emit(R.CNA.DMA_CON1, LINE_STRIDE=line)
    e.emit(R.CNA.DMA_CON2, SURF_STRIDE=surface)
    e.emit(R.CNA.FC_DATA_SIZE0, DMA_WIDTH=inp.width, DMA_HEIGHT=task.in_rows)
    e.emit(R.CNA.FC_DATA_SIZE1, DMA_CHANNEL=op.weight_channels)
    e.emit(R.CNA.DCOMP_CTRL)
    e.emit(R.CNA.DCOMP_REGNUM)
    e.address(R.CNA.DCOMP_ADDR0, "DECOMPRESS_ADDR0", op.weights.ref.buffer, op.weights.ref.offset)
    for i in range(16):
        reg = getattr(R.CNA, f"DCOMP_AMOUNT{i}")
        e.emit(reg)
    e.emit(R.CNA.CVT_CON5)
    e.emit(R.CNA.PAD_CON1, PAD_VALUE=op.pad_value)


def emit_core(e: _Emitter, op: ConvOperation, task: Task) -> None:
    e.emit(R.CORE.MISC_CFG, QD_EN=1, DW_EN=int(op.depthwise))
    e.emit(
        R.CORE.DATAOUT_SIZE_0,
        DATAOUT_HEIGHT=task.out_rows - 1,
        DATAOUT_WIDTH=op.output.width - 1,
    )
    e.emit(R.CORE.DATAOUT_SIZE_1, DATAOUT_CHANNEL=_aligned(op) - 1)
    e.emit(R.CORE.CLIP_TRUNCATE, CLIP_TRUNCATE=op.dpu.clip_truncate)
    e.emit(R.CORE.UNK_3030)


def _stage_fields(prefix: str, s: DpuStage) -> dict[str, int]:
    """BS_CFG / BN_CFG fields of a stage (NVDLA SDP D_DP_BS_CFG bit meanings)."""
    alu_on = s.alu_memory or s.alu is not None
    mul_on = s.mul_memory or s.mul is not None
    return {
        f"{prefix}_BYPASS": int(s.bypass),
        f"{prefix}_ALU_BYPASS": int(not alu_on),
        f"{prefix}_ALU_ALGO": R.AluAlgo.ALU_ADD if alu_on else 0,
        f"{prefix}_ALU_SRC": R.AluSrc.SRC_MEMORY if s.alu_memory else R.AluSrc.SRC_REGISTER,
        f"{prefix}_MUL_BYPASS": int(not mul_on),
        f"{prefix}_RELU_BYPASS": int(not s.relu),
        f"{prefix}_RELUX_EN": int(s.relux is not None),
    }


def _stage_mul(prefix: str, s: DpuStage) -> dict[str, int]:
    src = R.AluSrc.SRC_MEMORY if s.mul_memory else R.AluSrc.SRC_REGISTER
    return {
        f"{prefix}_MUL_SRC": src,
        f"{prefix}_MUL_SHIFT_VALUE": s.mul_shift,
        f"{prefix}_MUL_OPERAND": s.mul or 0,
    }


def emit_dpu(e: _Emitter, op: ConvOperation, task: Task) -> None:
    out, dpu = op.output, op.dpu
    mode = R.ConvMode.DEPTHWISE if op.depthwise else R.ConvMode.DIRECT
    channels = _aligned(op)
    e.emit(
        R.DPU.FEATURE_MODE_CFG,
        BURST_LEN=BURST_LEN,
        OUTPUT_MODE=R.DpuOutput.OUTPUT_MEMORY,
        CONV_MODE=mode,
    )
    e.emit(R.DPU.DATA_FORMAT)
    e.emit(R.DPU.OFFSET_PEND)
    e.address(
        R.DPU.DST_BASE_ADDR,
        "DST_BASE_ADDR",
        out.ref.buffer,
        out.ref.offset + task.out_top * out.line_stride,
    )
    e.emit(R.DPU.DST_SURF_STRIDE, DST_SURF_STRIDE=out.surface_stride // 16)
    e.emit(R.DPU.DATA_CUBE_WIDTH, WIDTH=out.width - 1)
    e.emit(R.DPU.DATA_CUBE_HEIGHT, HEIGHT=task.out_rows - 1)
    e.emit(R.DPU.DATA_CUBE_NOTCH_ADDR)
    e.emit(R.DPU.DATA_CUBE_CHANNEL, CHANNEL=channels - 1, ORIG_CHANNEL=out.channels - 1)
    e.emit(R.DPU.BS_CFG, **_stage_fields("BS", dpu.bs))
    e.emit(R.DPU.BS_ALU_CFG, BS_ALU_OPERAND=dpu.bs.alu or 0)
    e.emit(R.DPU.BS_MUL_CFG, **_stage_mul("BS", dpu.bs))
    e.emit(
        R.DPU.BS_RELUX_CMP_VALUE, BS_RELUX_CMP_DAT=_relux(R.DPU.BS_RELUX_CMP_VALUE, dpu.bs.relux)
    )
    size_e = 3 if op.depthwise else 1
    e.emit(R.DPU.BS_OW_CFG, SIZE_E_0=size_e, SIZE_E_1=size_e, SIZE_E_2=size_e)
    e.emit(R.DPU.BS_OW_OP, OW_OP=dpu.ow_op)
    e.emit(R.DPU.WDMA_SIZE_0, CHANNEL_WDMA=channels - 1)
    e.emit(R.DPU.WDMA_SIZE_1, HEIGHT_WDMA=task.out_rows - 1, WIDTH_WDMA=out.width - 1)
    e.emit(R.DPU.BN_CFG, **_stage_fields("BN", dpu.bn))
    e.emit(R.DPU.BN_ALU_CFG, BN_ALU_OPERAND=dpu.bn.alu or 0)
    e.emit(R.DPU.BN_MUL_CFG, **_stage_mul("BN", dpu.bn))
    e.emit(
        R.DPU.BN_RELUX_CMP_VALUE, BN_RELUX_CMP_DAT=_relux(R.DPU.BN_RELUX_CMP_VALUE, dpu.bn.relux)
    )
    ew = dpu.ew
    if ew is None:
        e.emit(
            R.DPU.EW_CFG,
            EW_BYPASS=1,
            EW_OP_BYPASS=1,
            EW_LUT_BYPASS=1,
            EW_OP_CVT_BYPASS=1,
            EW_RELU_BYPASS=1,
        )
        e.emit(R.DPU.EW_CVT_OFFSET_VALUE)
        e.emit(R.DPU.EW_CVT_SCALE_VALUE, EW_OP_CVT_SCALE=1)
    else:
        cvt = R.CvtType.ADD_THEN_MUL if ew.add_first else R.CvtType.MUL_THEN_ADD
        e.emit(
            R.DPU.EW_CFG,
            EW_CVT_TYPE=cvt,
            EW_CVT_ROUND=R.CvtRound.ROUND_HALF_UP,
            EW_DATA_MODE=1,
            EDATA_SIZE=1,
            EW_ALU_ALGO=R.AluAlgo.ALU_ADD,
            EW_RELU_BYPASS=int(not ew.relu),
            EW_RELUX_EN=int(ew.relux is not None),
            EW_LUT_BYPASS=1,
            EW_OP_SRC=R.AluSrc.SRC_MEMORY,
        )
        e.emit(R.DPU.EW_CVT_OFFSET_VALUE, EW_OP_CVT_OFFSET=ew.offset)
        e.emit(R.DPU.EW_CVT_SCALE_VALUE, EW_OP_CVT_SCALE=ew.scale, EW_OP_CVT_SHIFT=ew.shift)
    relux = None if ew is None else ew.relux
    e.emit(R.DPU.EW_RELUX_CMP_VALUE, EW_RELUX_CMP_DAT=_relux(R.DPU.EW_RELUX_CMP_VALUE, relux))
    cvt = dpu.out
    e.emit(R.DPU.OUT_CVT_OFFSET, OUT_CVT_OFFSET=cvt.offset)
    e.emit(R.DPU.OUT_CVT_SCALE, OUT_CVT_SCALE=cvt.scale)
    e.emit(
        R.DPU.OUT_CVT_SHIFT,
        OUT_CVT_SHIFT=cvt.shift,
        CVT_ROUND=R.CvtRound.ROUND_HALF_UP if cvt.round_half_up else R.CvtRound.ROUND_HALF_EVEN,
        CVT_TYPE=R.CvtType.ADD_THEN_MUL if cvt.add_first else R.CvtType.MUL_THEN_ADD,
    )
    for i in range(8):
        e.emit(getattr(R.DPU, f"EW_OP_VALUE_{i}"))
    e.emit(R.DPU.SURFACE_ADD, SURF_ADD=surface_add(op, task))
    e.emit(R.DPU.UNK_40C4)
    for reg in _LUT_REGISTERS:
        e.emit(reg)


def _relux(reg, value: int | None) -> int:
    name = reg.fields[0].name
    return 0 if value is None else as_unsigned(reg, name, value)


_LUT_REGISTERS = (
    R.DPU.LUT_ACCESS_CFG,
    R.DPU.LUT_ACCESS_DATA,
    R.DPU.LUT_CFG,
    R.DPU.LUT_INFO,
    R.DPU.LUT_LE_START,
    R.DPU.LUT_LE_END,
    R.DPU.LUT_LO_START,
    R.DPU.LUT_LO_END,
    R.DPU.LUT_LE_SLOPE_SCALE,
    R.DPU.LUT_LE_SLOPE_SHIFT,
    R.DPU.LUT_LO_SLOPE_SCALE,
    R.DPU.LUT_LO_SLOPE_SHIFT,
)


def emit_dpu_rdma(e: _Emitter, op: ConvOperation, task: Task) -> None:
    out, dpu = op.output, op.dpu
    e.emit(R.DPU_RDMA.DATA_CUBE_WIDTH, WIDTH=out.width - 1)
    e.emit(R.DPU_RDMA.DATA_CUBE_HEIGHT, HEIGHT=task.out_rows - 1)
    e.emit(R.DPU_RDMA.DATA_CUBE_CHANNEL, CHANNEL=_aligned(op) - 1)
    ew = dpu.ew
    operand = None if ew is None else ew.operand
    if operand is None:
        e.emit(R.DPU_RDMA.SRC_BASE_ADDR)
    else:
        first = operand.ref.offset + task.out_top * operand.line_stride
        e.address(R.DPU_RDMA.SRC_BASE_ADDR, "SRC_BASE_ADDR", operand.ref.buffer, first)
    bs_mem = dpu.bs.memory
    e.emit(R.DPU_RDMA.BRDMA_CFG, BRDMA_DATA_USE=_data_use(dpu.bs))
    if bs_mem is None:
        e.emit(R.DPU_RDMA.BS_BASE_ADDR)
    else:
        e.address(R.DPU_RDMA.BS_BASE_ADDR, "BS_BASE_ADDR", bs_mem.ref.buffer, bs_mem.ref.offset)
    bn_mem = dpu.bn.memory
    e.emit(R.DPU_RDMA.NRDMA_CFG, NRDMA_DATA_USE=_data_use(dpu.bn))
    if bn_mem is None:
        e.emit(R.DPU_RDMA.BN_BASE_ADDR)
    else:
        e.address(R.DPU_RDMA.BN_BASE_ADDR, "BN_BASE_ADDR", bn_mem.ref.buffer, bn_mem.ref.offset)
    notch = 0
    if operand is None:
        e.emit(R.DPU_RDMA.ERDMA_CFG, ERDMA_DISABLE=1)
        e.emit(R.DPU_RDMA.EW_BASE_ADDR)
        e.emit(R.DPU_RDMA.EW_SURF_STRIDE)
    else:
        e.emit(R.DPU_RDMA.ERDMA_CFG, ERDMA_DATA_MODE=1, ERDMA_DATA_SIZE=1)
        second = operand.ref.offset + task.out_top * operand.line_stride + operand.surface_stride
        e.address(R.DPU_RDMA.EW_BASE_ADDR, "EW_BASE_ADDR", operand.ref.buffer, second)
        e.emit(R.DPU_RDMA.EW_SURF_STRIDE, EW_SURF_STRIDE=operand.surface_stride // 16)
        notch = ew_surface_notch(operand, task)
    mode = R.ConvMode.DEPTHWISE if op.depthwise else R.ConvMode.DIRECT
    e.emit(
        R.DPU_RDMA.FEATURE_MODE_CFG,
        BURST_LEN=BURST_LEN,
        CONV_MODE=mode,
        MRDMA_DISABLE=int(operand is None),
        COMB_USE=0 if operand is None else EW_COMB_USE,
    )
    e.emit(R.DPU_RDMA.SRC_DMA_CFG)
    e.emit(R.DPU_RDMA.SURF_NOTCH, SURF_NOTCH_ADDR=notch)
    e.emit(R.DPU_RDMA.PAD_CFG)
    e.emit(R.DPU_RDMA.WEIGHT, E_WEIGHT=1, N_WEIGHT=1, B_WEIGHT=1, M_WEIGHT=1)
    e.emit(R.DPU_RDMA.EW_SURF_NOTCH, EW_SURF_NOTCH=notch)


def ew_surface_notch(operand: FeatureMap, task: Task) -> int:
    """SURF_NOTCH and EW_SURF_NOTCH of a fused ADD's operand. Mesa's ADD programming
    (rocket-nvdla.md §3) interleaves two readers: SRC_BASE_ADDR reads the even surfaces,
    EW_BASE_ADDR (one surface further) the odd ones, and each steps ``W·H_task + notch`` atoms
    per surface it reads (docs/rocket-npu-model.md §4, ``ew_fetch="comb"``). Stepping two
    surfaces gives ``2·surface/16 - W·H_task``; Mesa's ``W·H + W·(H_total - H_task)`` is the
    same for its surface of ``W·H_total`` atoms."""
    return 2 * operand.surface_stride // 16 - operand.width * task.out_rows


# rocket-nvdla.md §3 ("ADD via the EW stage"): Mesa's DPU_RDMA COMB_USE with ERDMA on.
EW_COMB_USE = 5


def _data_use(s: DpuStage) -> int:
    """BRDMA/NRDMA DATA_USE: 1 = the ALU operand, 2 = the multiplier operand, 3 = both
    (rocket-nvdla.md §3: Mesa's bias is DATA_USE 1; NVDLA SDP's BS_DATA_USE codes)."""
    return (1 if s.alu_memory else 0) | (2 if s.mul_memory else 0)


def emit_tail(e: _Emitter, chained: bool) -> None:
    """The four-entry tail (rocket-nvdla.md §2); ``chained`` tasks get a PC_BASE_ADDRESS and a
    PC_REGISTER_AMOUNTS entry that :func:`chain` fills in."""
    if chained:
        e.emit(R.PC.BASE_ADDRESS)
    else:
        e.raw(0)
    e.emit(R.PC.REGISTER_AMOUNTS)
    e.raw(R.REGCMD.ENTRY.pack(UNK54=True, UNK48=True))
    e.raw(
        R.REGCMD.ENTRY.pack(
            UNK48=True,
            OP_EN=True,
            OFFSET=R.PC.OPERATION_ENABLE.offset,
            VALUE=R.PC.OPERATION_ENABLE.pack(**CONV_BLOCKS),
        )
    )


def emit_task(npu: RocketNpu, op: ConvOperation, task: Task, cache: dict | None = None) -> Stream:
    """One task's stream; its tail is chained when the operation has more than one task.
    ``cache`` (optional, the caller's) memoizes packed entries across calls."""
    e = _Emitter(cache)
    emit_preamble(e, op, task)
    emit_cna(e, npu, op, task)
    emit_core(e, op, task)
    emit_dpu(e, op, task)
    emit_dpu_rdma(e, op, task)
    emit_tail(e, chained=len(op.tasks) > 1)
    return Stream(np.array(e.words, dtype=np.uint64), tuple(e.relocs))


def chain(streams: list[Stream], offsets: Iterable[int], regcmd_buffer: int) -> list[Stream]:
    """Fill each stream's tail with the next one's address (a relocation into the regcmd
    buffer at ``offsets[i + 1]``) and fetch amount, as ``compile_operation()`` does."""
    offsets = list(offsets)
    out = []
    for i, s in enumerate(streams):
        if i + 1 == len(streams) or len(streams) == 1:
            out.append(s)
            continue
        words = s.qwords.copy()
        at = len(words) - TAIL_ENTRIES
        words[at + 1] = R.REGCMD.ENTRY.pack(
            BLOCK=R.Target.PC,
            UNK48=True,
            OFFSET=R.PC.REGISTER_AMOUNTS.offset,
            VALUE=R.PC.REGISTER_AMOUNTS.pack(
                PC_DATA_AMOUNT=fetch_amount(len(streams[i + 1].qwords))
            ),
        )
        reloc = Reloc(at, regcmd_buffer, offsets[i + 1], "PC.BASE_ADDRESS", "PC_SOURCE_ADDR")
        out.append(Stream(words, (*s.relocs, reloc)))
    return out


def patch(words: np.ndarray, at: int, register: str, field: str, value: int) -> None:
    """Rewrite the address register entry at qword ``at`` with ``value``."""
    domain, name = register.split(".")
    reg = getattr(getattr(R, domain), name)
    words[at] = R.REGCMD.ENTRY.pack(
        BLOCK=R.target_of(reg.offset),
        UNK48=True,
        OFFSET=reg.offset,
        VALUE=reg.pack(**{field: value}),
    )


def relocate(words: np.ndarray, relocs: Iterable[Reloc], addresses: list[int]) -> None:
    """Patch ``words`` in place: every relocation gets its buffer's address plus offset."""
    for r in relocs:
        patch(words, r.at, r.register, r.field, addresses[r.buffer] + r.offset)
