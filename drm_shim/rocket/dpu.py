"""DPU and DPU_RDMA: post-processing of the accumulators (NVDLA SDP + SDP_RDMA).

The accumulator stage (the OW term and CORE's CLIP_TRUNCATE), then BS -> BN -> EW -> output
convertor -> WDMA, each stage read from its registers only, with its per-channel or per-element
operands fetched by DPU_RDMA (BRDMA, NRDMA, ERDMA/MRDMA). ``docs/rocket-npu-model.md`` §4 gives
every rule and its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...drivers.rocket import rocket_regs as R
from .arith import (
    INT8_MIN,
    cvt_round_mode,
    rshift,
    saturate_int8,
    saturate_int32,
    shifted_bound,
)
from .core import MacResult, exact_dtype
from .faults import NpuFault, NpuHang
from .memory import AddressSpace
from .options import NpuModelOptions
from .regfile import TaskRegs
from .stats import TaskStats

# Mesa rkt_regcmd.c: COMB_USE=5 with MRDMA enabled when an ADD's operand is read (the combined
# MRDMA + ERDMA fetch of ew_fetch="comb").
COMB_USE_EW = 5
# BRDMA/NRDMA DATA_USE codes [inferred: bit 0 ALU operand, bit 1 MUL operand; Mesa writes 1 for
# its int32 bias].
USE_ALU, USE_MUL, USE_BOTH = 1, 2, 3
OPERAND_BYTES = 4  # one 32-bit word per channel and operand (Mesa's int32 bias)


def _owned(v: np.ndarray) -> np.ndarray | None:
    """``v`` as the output of an in-place step (the pipeline owns its arrays), when it is a
    float64 array; float32 MAC sums are converted into a new array instead."""
    return v if v.dtype == np.float64 else None


def _unit(reg: R.Register, field: str) -> int:
    """Bytes per unit of an address field that starts above bit 0 (the register value is the
    byte count: e.g. DST_SURF_STRIDE at bits 31:4 counts 16-byte units)."""
    return 1 << reg.field(field).low


def _unsupported(reg: R.Register, field: str, value: Any, why: str = "") -> NpuFault:
    return NpuFault("unsupported", f"unsupported setting {reg.path}.{field}={value}{why}")


@dataclass(frozen=True, slots=True)
class OwConfig:
    """The OW term (BS_OW_CFG / BS_OW_OP) and where it joins the accumulator."""

    operand: int
    placement: str  # "accumulator", "after_truncate" or "off"

    @property
    def active(self) -> bool:
        return self.placement != "off" and self.operand != 0


@dataclass(frozen=True, slots=True)
class OwPlan:
    """How the model computes the OW term: folded into the weights (``fold``), or from a window
    sum added before (``before``) or after (``after``) CLIP_TRUNCATE."""

    fold: int = 0
    before: int = 0
    after: int = 0

    @property
    def window_sum(self) -> bool:
        return bool(self.before or self.after)


def decode_ow(regs: TaskRegs, options: NpuModelOptions) -> OwConfig:
    cfg = regs(R.DPU.BS_OW_CFG)
    placement = "off" if cfg.OD_BYPASS else options.ow_term
    return OwConfig(regs(R.DPU.BS_OW_OP).OW_OP, placement)


def plan_ow(ow: OwConfig, taps: int, max_abs_w: int) -> OwPlan:
    """Fold the term into the weights unless that alone would push the sums out of float32's
    exact range (then a window-sum column keeps the product in float32)."""
    if not ow.active:
        return OwPlan()
    if ow.placement == "after_truncate":
        return OwPlan(after=ow.operand)
    folded = exact_dtype(taps, max_abs_w + abs(ow.operand))
    if folded == np.float32 or exact_dtype(taps, max_abs_w) != np.float32:
        return OwPlan(fold=ow.operand)
    return OwPlan(before=ow.operand)


def accumulate(
    regs: TaskRegs, mac: MacResult, plan: OwPlan, options: NpuModelOptions
) -> tuple[np.ndarray, float]:
    """CACC: the OW term, CLIP_TRUNCATE and saturation to int32 of the MAC sums; (values, a
    bound on their magnitude)."""
    clip = regs(R.CORE.CLIP_TRUNCATE).CLIP_TRUNCATE
    acc, bound = mac.acc, mac.bound
    if plan.before:
        acc = np.add(acc, plan.before * mac.window_sum, dtype=np.float64)
        bound += abs(plan.before) * mac.sum_bound
    if clip:
        acc = rshift(acc, clip, options.truncate_round, out=_owned(acc))
        bound = shifted_bound(bound, 1, clip)
    acc, bound = saturate_int32(acc, bound)
    if plan.after:
        acc = np.add(acc, plan.after * mac.window_sum, dtype=np.float64)
        acc, bound = saturate_int32(acc, bound + abs(plan.after) * mac.sum_bound)
    return acc, bound


@dataclass(frozen=True, slots=True)
class Cube:
    width: int
    height: int
    channels: int  # DATA_CUBE_CHANNEL.CHANNEL + 1


def decode_cube(regs: TaskRegs, ow: int, oh: int, oc: int, depthwise: bool) -> Cube:
    """Check the DPU and DPU_RDMA registers against the CORE's output cube."""
    fm = regs(R.DPU.FEATURE_MODE_CFG)
    if fm.FLYING_MODE:
        raise _unsupported(R.DPU.FEATURE_MODE_CFG, "FLYING_MODE", fm.FLYING_MODE)
    if fm.OUTPUT_MODE not in (R.DpuOutput.OUTPUT_MEMORY, R.DpuOutput.OUTPUT_BOTH):
        raise _unsupported(
            R.DPU.FEATURE_MODE_CFG,
            "OUTPUT_MODE",
            fm.OUTPUT_MODE,
            " (only writes to memory are modelled)",
        )
    for name in ("TP_EN", "NONALIGN"):
        if getattr(fm, name):
            raise _unsupported(R.DPU.FEATURE_MODE_CFG, name, getattr(fm, name))
    mode = R.ConvMode.DEPTHWISE if depthwise else R.ConvMode.DIRECT
    if fm.CONV_MODE != mode:
        raise NpuFault(
            "inconsistent",
            f"DPU.FEATURE_MODE_CFG.CONV_MODE={fm.CONV_MODE} but the CNA runs CONV_MODE={mode.name}",
        )
    fmt = regs(R.DPU.DATA_FORMAT)
    for name in ("PROC_PRECISION", "IN_PRECISION", "OUT_PRECISION"):
        if getattr(fmt, name) != R.Precision.INT8:
            raise _unsupported(R.DPU.DATA_FORMAT, name, getattr(fmt, name), " (only INT8)")
    for name in ("BS_MUL_SHIFT_VALUE_NEG", "BN_MUL_SHIFT_VALUE_NEG", "EW_TRUNCATE_NEG"):
        if getattr(fmt, name):
            raise _unsupported(R.DPU.DATA_FORMAT, name, getattr(fmt, name))
    if regs(R.DPU.OFFSET_PEND).OFFSET_PEND:
        raise _unsupported(R.DPU.OFFSET_PEND, "OFFSET_PEND", regs(R.DPU.OFFSET_PEND).OFFSET_PEND)
    cube = Cube(
        regs(R.DPU.DATA_CUBE_WIDTH).WIDTH + 1,
        regs(R.DPU.DATA_CUBE_HEIGHT).HEIGHT + 1,
        regs(R.DPU.DATA_CUBE_CHANNEL).CHANNEL + 1,
    )
    if (cube.width, cube.height, cube.channels) != (ow, oh, oc):
        raise NpuFault(
            "inconsistent",
            f"DPU.DATA_CUBE_WIDTH/HEIGHT/CHANNEL give {cube.width}x{cube.height}x{cube.channels} "
            f"but CORE.DATAOUT_SIZE_0/1 give {ow}x{oh}x{oc}",
        )
    orig = regs(R.DPU.DATA_CUBE_CHANNEL).ORIG_CHANNEL + 1
    if orig > cube.channels:
        raise NpuFault(
            "inconsistent",
            f"DPU.DATA_CUBE_CHANNEL: ORIG_CHANNEL+1={orig} > CHANNEL+1={cube.channels}",
        )
    wd0, wd1 = regs(R.DPU.WDMA_SIZE_0), regs(R.DPU.WDMA_SIZE_1)
    if (wd1.WIDTH_WDMA + 1, wd1.HEIGHT_WDMA + 1) != (ow, oh) or wd0.CHANNEL_WDMA + 1 > oc:
        raise NpuFault(
            "inconsistent",
            f"DPU.WDMA_SIZE_0/1 write {wd1.WIDTH_WDMA + 1}x{wd1.HEIGHT_WDMA + 1}x"
            f"{wd0.CHANNEL_WDMA + 1} of a {ow}x{oh}x{oc} cube",
        )
    return cube


# --------------------------------------------------------------------------------------------
# Per-channel operands (BRDMA, NRDMA)
# --------------------------------------------------------------------------------------------


def channel_operands(
    mem: AddressSpace, stats: TaskStats, role: str, what: str, base: int, channels: int, use: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(ALU operands, MUL operands) per channel, from a BRDMA/NRDMA buffer."""
    if use not in (USE_ALU, USE_MUL, USE_BOTH):
        raise NpuFault(
            "unsupported",
            f"unsupported setting {what}: DATA_USE={use} (modelled: "
            f"{USE_ALU} ALU, {USE_MUL} MUL, {USE_BOTH} both)",
        )
    words = 2 if use == USE_BOTH else 1
    bo, raw = mem.read(what, base, channels * words * OPERAND_BYTES)
    stats.read(role, bo, raw.size)
    values = raw.view("<i4").astype(np.float64).reshape(channels, words)
    alu = values[:, 0] if use & USE_ALU else None
    mul = values[:, -1] if use & USE_MUL else None
    if mul is not None and (
        mul.min() < np.iinfo(np.int16).min or mul.max() > np.iinfo(np.int16).max
    ):
        raise NpuFault("unsupported", f"{what}: a MUL operand does not fit 16 bits")
    return alu, mul


@dataclass(frozen=True, slots=True)
class StageRegs:
    """The registers of one BS/BN stage, by the stage's prefix."""

    prefix: str
    cfg: R.Register
    alu: R.Register
    mul: R.Register
    relux: R.Register
    base: R.Register
    use: R.Register


BS = StageRegs(
    "BS",
    R.DPU.BS_CFG,
    R.DPU.BS_ALU_CFG,
    R.DPU.BS_MUL_CFG,
    R.DPU.BS_RELUX_CMP_VALUE,
    R.DPU_RDMA.BS_BASE_ADDR,
    R.DPU_RDMA.BRDMA_CFG,
)
BN = StageRegs(
    "BN",
    R.DPU.BN_CFG,
    R.DPU.BN_ALU_CFG,
    R.DPU.BN_MUL_CFG,
    R.DPU.BN_RELUX_CMP_VALUE,
    R.DPU_RDMA.BN_BASE_ADDR,
    R.DPU_RDMA.NRDMA_CFG,
)


def stage(
    st: StageRegs,
    v: np.ndarray,
    bound: float,
    regs: TaskRegs,
    mem: AddressSpace,
    stats: TaskStats,
    rdma_enabled: bool,
    options: NpuModelOptions,
) -> tuple[np.ndarray, float]:
    """One BS or BN stage: ALU, MUL, ReLU (NVDLA SDP X1/X2), on values the caller owns."""
    p = st.prefix
    cfg = regs(st.cfg)
    if getattr(cfg, f"{p}_BYPASS"):
        return v, bound
    alu_on = not getattr(cfg, f"{p}_ALU_BYPASS")
    mul_on = not getattr(cfg, f"{p}_MUL_BYPASS")
    if getattr(cfg, f"{p}_MUL_PRELU"):
        raise _unsupported(st.cfg, f"{p}_MUL_PRELU", 1)
    mul_cfg = regs(st.mul)
    alu_mem = alu_on and getattr(cfg, f"{p}_ALU_SRC") == R.AluSrc.SRC_MEMORY
    mul_mem = mul_on and getattr(mul_cfg, f"{p}_MUL_SRC") == R.AluSrc.SRC_MEMORY
    alu = mul = None
    if alu_mem or mul_mem:
        reader = "BRDMA" if p == "BS" else "NRDMA"
        if not rdma_enabled:
            raise NpuHang(
                f"the DPU {p} stage waits for {reader} operands but DPU_RDMA is not "
                "enabled in op_en"
            )
        use = getattr(regs(st.use), f"{reader}_DATA_USE")
        base_field = st.base.fields[0].name
        alu, mul = channel_operands(
            mem,
            stats,
            "bias" if p == "BS" else "bn",
            f"{st.base.path} ({reader})",
            getattr(regs(st.base), base_field),
            v.shape[-1],
            use,
        )
        if (alu_mem and alu is None) or (mul_mem and mul is None):
            raise NpuFault(
                "inconsistent",
                f"{st.cfg.path} reads an operand from memory that "
                f"{st.use.path}.{reader}_DATA_USE={use} does not provide",
            )
    if alu_on:
        operand = alu if alu_mem else getattr(regs(st.alu), f"{p}_ALU_OPERAND")
        algo = getattr(cfg, f"{p}_ALU_ALGO")
        if algo == R.AluAlgo.ALU_ADD:
            v = np.add(v, operand, dtype=np.float64)
        elif algo == R.AluAlgo.ALU_MINUS:
            v = np.subtract(v, operand, dtype=np.float64)
        else:
            raise _unsupported(st.cfg, f"{p}_ALU_ALGO", algo)
        v, bound = saturate_int32(v, bound + float(np.max(np.abs(operand))))
    if mul_on:
        if mul_mem:
            operand = mul
        else:  # a signed 16-bit operand [inferred]
            operand = int(np.array(getattr(mul_cfg, f"{p}_MUL_OPERAND")).astype(np.int16))
        shift = getattr(mul_cfg, f"{p}_MUL_SHIFT_VALUE")
        v = rshift(v, shift, options.truncate_round, operand, out=_owned(v))
        v, bound = saturate_int32(v, shifted_bound(bound, float(np.max(np.abs(operand))), shift))
    if not getattr(cfg, f"{p}_RELU_BYPASS"):
        np.maximum(v, 0, out=v)
        if getattr(cfg, f"{p}_RELUX_EN"):
            cmp = getattr(regs(st.relux), f"{p}_RELUX_CMP_DAT")
            np.minimum(v, int(np.array(cmp, dtype=np.uint32).view(np.int32)), out=v)
    return v, bound


# --------------------------------------------------------------------------------------------
# Element-wise stage (ERDMA / MRDMA operand)
# --------------------------------------------------------------------------------------------


def ew_operand(
    regs: TaskRegs,
    mem: AddressSpace,
    stats: TaskStats,
    cube: Cube,
    atom: int,
    options: NpuModelOptions,
) -> np.ndarray:
    """The element-wise operand as int8 ``[H, W, C]``."""
    erdma = regs(R.DPU_RDMA.ERDMA_CFG)
    if erdma.ERDMA_DISABLE:
        raise NpuHang(
            "the DPU EW stage waits for its operand but DPU_RDMA.ERDMA_CFG.ERDMA_DISABLE=1"
        )
    if erdma.ERDMA_DATA_SIZE != 1 or erdma.ERDMA_NONALIGN:
        raise _unsupported(
            R.DPU_RDMA.ERDMA_CFG,
            "ERDMA_DATA_SIZE/ERDMA_NONALIGN",
            f"{erdma.ERDMA_DATA_SIZE}/{erdma.ERDMA_NONALIGN}",
            " (int8 operand)",
        )
    rw = regs(R.DPU_RDMA.DATA_CUBE_WIDTH).WIDTH + 1
    rh = regs(R.DPU_RDMA.DATA_CUBE_HEIGHT).HEIGHT + 1
    rc = regs(R.DPU_RDMA.DATA_CUBE_CHANNEL).CHANNEL + 1
    if (rw, rh, rc) != (cube.width, cube.height, cube.channels):
        raise NpuFault(
            "inconsistent",
            f"DPU_RDMA.DATA_CUBE_* give {rw}x{rh}x{rc} but the DPU "
            f"cube is {cube.width}x{cube.height}x{cube.channels}",
        )
    surfaces = -(-cube.channels // atom)
    line = cube.width * atom
    plane = cube.width * cube.height * atom
    fm = regs(R.DPU_RDMA.FEATURE_MODE_CFG)
    ew_base = regs(R.DPU_RDMA.EW_BASE_ADDR).EW_BASE_ADDR
    e = np.empty((surfaces, cube.height, cube.width, atom), dtype=np.uint8)
    if options.ew_fetch == "plain" or fm.MRDMA_DISABLE:
        stride = regs(R.DPU_RDMA.EW_SURF_STRIDE).EW_SURF_STRIDE
        stride *= _unit(R.DPU_RDMA.EW_SURF_STRIDE, "EW_SURF_STRIDE")
        bo, view = mem.view(
            "DPU_RDMA.EW_BASE_ADDR (ERDMA operand)", ew_base, e.shape, (stride, line, atom, 1)
        )
        stats.read("ew", bo, view.size)
        e[...] = view
    elif fm.COMB_USE == COMB_USE_EW:
        src = regs(R.DPU_RDMA.SRC_BASE_ADDR).SRC_BASE_ADDR
        notch_m = regs(R.DPU_RDMA.SURF_NOTCH).SURF_NOTCH_ADDR
        notch_m *= _unit(R.DPU_RDMA.SURF_NOTCH, "SURF_NOTCH_ADDR")
        notch_e = regs(R.DPU_RDMA.EW_SURF_NOTCH).EW_SURF_NOTCH
        notch_e *= _unit(R.DPU_RDMA.EW_SURF_NOTCH, "EW_SURF_NOTCH")
        for first, base, notch, reader in (
            (0, src, notch_m, "DPU_RDMA.SRC_BASE_ADDR (MRDMA)"),
            (1, ew_base, notch_e, "DPU_RDMA.EW_BASE_ADDR (ERDMA)"),
        ):
            count = len(range(first, surfaces, 2))
            bo, view = mem.view(
                f"{reader} EW operand", base, (count, *e.shape[1:]), (plane + notch, line, atom, 1)
            )
            stats.read("ew", bo, view.size)
            e[first::2] = view
    else:
        raise _unsupported(
            R.DPU_RDMA.FEATURE_MODE_CFG,
            "COMB_USE",
            fm.COMB_USE,
            f" with MRDMA enabled (modelled: {COMB_USE_EW}, the EW operand)",
        )
    return (
        e.view(np.int8)
        .transpose(1, 2, 0, 3)
        .reshape(cube.height, cube.width, -1)[:, :, : cube.channels]
    )


def ew_stage(
    v: np.ndarray,
    bound: float,
    regs: TaskRegs,
    mem: AddressSpace,
    stats: TaskStats,
    cube: Cube,
    atom: int,
    rdma_enabled: bool,
    options: NpuModelOptions,
) -> tuple[np.ndarray, float]:
    cfg = regs(R.DPU.EW_CFG)
    if cfg.EW_BYPASS:
        return v, bound
    for name in ("EW_BINARY_EN", "EW_EQUAL_EN", "EW_MUL_PRELU", "EW_OP_TYPE"):
        if getattr(cfg, name):
            raise _unsupported(R.DPU.EW_CFG, name, getattr(cfg, name))
    if not cfg.EW_LUT_BYPASS:
        raise _unsupported(R.DPU.EW_CFG, "EW_LUT_BYPASS", 0, " (the LUT is not modelled)")
    if not cfg.EW_OP_BYPASS:
        if cfg.EW_OP_SRC != R.AluSrc.SRC_MEMORY:
            raise _unsupported(
                R.DPU.EW_CFG,
                "EW_OP_SRC",
                cfg.EW_OP_SRC,
                " (only an operand from memory is modelled)",
            )
        if cfg.EDATA_SIZE != 1:
            raise _unsupported(R.DPU.EW_CFG, "EDATA_SIZE", cfg.EDATA_SIZE, " (int8 operand)")
        if not rdma_enabled:
            raise NpuHang(
                "the DPU EW stage waits for its operand but DPU_RDMA is not enabled in op_en"
            )
        e = ew_operand(regs, mem, stats, cube, atom, options).astype(np.float64)
        e_bound = float(-INT8_MIN)
        if not cfg.EW_OP_CVT_BYPASS:
            scale_cfg = regs(R.DPU.EW_CVT_SCALE_VALUE)
            if scale_cfg.EW_TRUNCATE:
                raise _unsupported(R.DPU.EW_CVT_SCALE_VALUE, "EW_TRUNCATE", scale_cfg.EW_TRUNCATE)
            offset = regs(R.DPU.EW_CVT_OFFSET_VALUE).EW_OP_CVT_OFFSET
            mode = cvt_round_mode(cfg.EW_CVT_ROUND, options.round_mode)
            scale, shift = scale_cfg.EW_OP_CVT_SCALE, scale_cfg.EW_OP_CVT_SHIFT
            if cfg.EW_CVT_TYPE == R.CvtType.ADD_THEN_MUL:
                e += offset
                e = rshift(e, shift, mode, scale, out=e)
                e_bound = shifted_bound(e_bound + abs(offset), scale, shift)
            else:
                e = rshift(e, shift, mode, scale, offset, out=e)
                e_bound = shifted_bound(e_bound, scale, shift) + abs(offset)
        if cfg.EW_ALU_ALGO == R.AluAlgo.ALU_ADD:
            v = np.add(v, e, dtype=np.float64)
        elif cfg.EW_ALU_ALGO == R.AluAlgo.ALU_MINUS:
            v = np.subtract(v, e, dtype=np.float64)
        else:
            raise _unsupported(R.DPU.EW_CFG, "EW_ALU_ALGO", cfg.EW_ALU_ALGO)
        v, bound = saturate_int32(v, bound + e_bound)
    if not cfg.EW_RELU_BYPASS:
        np.maximum(v, 0, out=v)
        if cfg.EW_RELUX_EN:
            cmp = regs(R.DPU.EW_RELUX_CMP_VALUE).EW_RELUX_CMP_DAT
            np.minimum(v, int(np.array(cmp, dtype=np.uint32).view(np.int32)), out=v)
    return v, bound


# --------------------------------------------------------------------------------------------
# Output convertor and write-back
# --------------------------------------------------------------------------------------------


def out_cvt(v: np.ndarray, regs: TaskRegs, options: NpuModelOptions) -> np.ndarray:
    """OUT_CVT: scale, shift and offset from the integer register values, saturated to int8."""
    scale_cfg = regs(R.DPU.OUT_CVT_SCALE)
    shift_cfg = regs(R.DPU.OUT_CVT_SHIFT)
    if scale_cfg.FP32TOFP16_EN:
        raise _unsupported(R.DPU.OUT_CVT_SCALE, "FP32TOFP16_EN", 1)
    if shift_cfg.MINUS_EXP:
        raise _unsupported(R.DPU.OUT_CVT_SHIFT, "MINUS_EXP", shift_cfg.MINUS_EXP)
    offset = regs(R.DPU.OUT_CVT_OFFSET).OUT_CVT_OFFSET
    scale, shift = scale_cfg.OUT_CVT_SCALE, shift_cfg.OUT_CVT_SHIFT
    mode = cvt_round_mode(shift_cfg.CVT_ROUND, options.round_mode)
    if shift_cfg.CVT_TYPE == R.CvtType.ADD_THEN_MUL:
        v = np.add(v, offset, dtype=np.float64, out=_owned(v))
        y = rshift(v, shift, mode, scale, out=v)
    else:
        y = rshift(v, shift, mode, scale, offset, out=_owned(v))
    return saturate_int8(y)


def write_back(
    y: np.ndarray, regs: TaskRegs, mem: AddressSpace, stats: TaskStats, cube: Cube, atom: int
) -> None:
    """WDMA: ``y`` int8 ``[H, W, C]`` to NC1HWC2 surfaces at DST_BASE_ADDR."""
    channels = regs(R.DPU.WDMA_SIZE_0).CHANNEL_WDMA + 1
    surfaces = -(-channels // atom)
    lanes = y
    if y.shape[2] != surfaces * atom:
        lanes = np.zeros((cube.height, cube.width, surfaces * atom), dtype=np.int8)
        lanes[:, :, :channels] = y[:, :, :channels]
    stride = regs(R.DPU.DST_SURF_STRIDE).DST_SURF_STRIDE
    stride *= _unit(R.DPU.DST_SURF_STRIDE, "DST_SURF_STRIDE")
    bo, view = mem.view(
        "DPU.DST_BASE_ADDR (output)",
        regs(R.DPU.DST_BASE_ADDR).DST_BASE_ADDR,
        (surfaces, cube.height, cube.width, atom),
        (stride, cube.width * atom, atom, 1),
        writeable=True,
    )
    view[...] = (
        lanes.view(np.uint8).reshape(cube.height, cube.width, surfaces, atom).transpose(2, 0, 1, 3)
    )
    stats.write("output", bo, view.size)
