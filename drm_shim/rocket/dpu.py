"""DPU: post-processing of the accumulators (NVDLA SDP).

The accumulator stage (the OW term and CORE's CLIP_TRUNCATE), then BS -> BN -> EW -> output
convertor -> WDMA, each stage read from its registers only, with its operands fetched by
DPU_RDMA (``dpu_rdma.py``). ``docs/rocket-npu-model.md`` §4 gives every rule and its source.

:func:`plan` decodes and checks every register of the task once and fetches the operands,
giving a :class:`DpuPlan`; :meth:`DpuPlan.apply` then runs the stages on blocks of output rows,
so that the ten-odd elementwise passes of the pipeline stay in the CPU's cache.
"""

from __future__ import annotations

from dataclasses import dataclass

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
from .dpu_rdma import channel_operands, ew_operand, unit, unsupported
from .faults import NpuFault, NpuHang
from .memory import AddressSpace
from .options import NpuModelOptions
from .regfile import TaskRegs
from .stats import TaskStats

# Output rows per block of the pipeline: about this many values (2 MiB of float64).
BLOCK_VALUES = 2**18


def _owned(v: np.ndarray) -> np.ndarray | None:
    """``v`` as the output of an in-place step (the pipeline owns its arrays), when it is a
    float64 array; float32 MAC sums are converted into a new array instead."""
    return v if v.dtype == np.float64 else None


def _int32(value: int) -> int:
    """A 32-bit register value as int32."""
    return int(np.array(value, dtype=np.uint32).view(np.int32))


# --------------------------------------------------------------------------------------------
# The OW term and the accumulator
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The cube
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cube:
    width: int
    height: int
    channels: int  # DATA_CUBE_CHANNEL.CHANNEL + 1


def decode_cube(regs: TaskRegs, ow: int, oh: int, oc: int, depthwise: bool) -> Cube:
    """Check the DPU registers against the CORE's output cube."""
    fm = regs(R.DPU.FEATURE_MODE_CFG)
    if fm.FLYING_MODE:
        raise unsupported(R.DPU.FEATURE_MODE_CFG, "FLYING_MODE", fm.FLYING_MODE)
    if fm.OUTPUT_MODE not in (R.DpuOutput.OUTPUT_MEMORY, R.DpuOutput.OUTPUT_BOTH):
        raise unsupported(
            R.DPU.FEATURE_MODE_CFG,
            "OUTPUT_MODE",
            fm.OUTPUT_MODE,
            " (only writes to memory are modelled)",
        )
    for name in ("TP_EN", "NONALIGN"):
        if getattr(fm, name):
            raise unsupported(R.DPU.FEATURE_MODE_CFG, name, getattr(fm, name))
    mode = R.ConvMode.DEPTHWISE if depthwise else R.ConvMode.DIRECT
    if fm.CONV_MODE != mode:
        raise NpuFault(
            "inconsistent",
            f"DPU.FEATURE_MODE_CFG.CONV_MODE={fm.CONV_MODE} but the CNA runs CONV_MODE={mode.name}",
        )
    fmt = regs(R.DPU.DATA_FORMAT)
    for name in ("PROC_PRECISION", "IN_PRECISION", "OUT_PRECISION"):
        if getattr(fmt, name) != R.Precision.INT8:
            raise unsupported(R.DPU.DATA_FORMAT, name, getattr(fmt, name), " (only INT8)")
    for name in ("BS_MUL_SHIFT_VALUE_NEG", "BN_MUL_SHIFT_VALUE_NEG", "EW_TRUNCATE_NEG"):
        if getattr(fmt, name):
            raise unsupported(R.DPU.DATA_FORMAT, name, getattr(fmt, name))
    if regs(R.DPU.OFFSET_PEND).OFFSET_PEND:
        raise unsupported(R.DPU.OFFSET_PEND, "OFFSET_PEND", regs(R.DPU.OFFSET_PEND).OFFSET_PEND)
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
# BS and BN stages
# --------------------------------------------------------------------------------------------


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
    reader: str
    role: str


BS = StageRegs(
    "BS",
    R.DPU.BS_CFG,
    R.DPU.BS_ALU_CFG,
    R.DPU.BS_MUL_CFG,
    R.DPU.BS_RELUX_CMP_VALUE,
    R.DPU_RDMA.BS_BASE_ADDR,
    R.DPU_RDMA.BRDMA_CFG,
    "BRDMA",
    "bias",
)
BN = StageRegs(
    "BN",
    R.DPU.BN_CFG,
    R.DPU.BN_ALU_CFG,
    R.DPU.BN_MUL_CFG,
    R.DPU.BN_RELUX_CMP_VALUE,
    R.DPU_RDMA.BN_BASE_ADDR,
    R.DPU_RDMA.NRDMA_CFG,
    "NRDMA",
    "bn",
)


@dataclass(frozen=True, slots=True)
class StagePlan:
    """One BS or BN stage (NVDLA SDP X1/X2): ALU, MUL with a rounding shift, ReLU/ReLUX."""

    alu: float | np.ndarray | None  # operand added (ALU_MINUS: negated), per channel or scalar
    mul: float | np.ndarray | None
    shift: int
    relu: bool
    relux: int | None
    mode: str

    def apply(self, v: np.ndarray, bound: float) -> tuple[np.ndarray, float]:
        if self.alu is not None:
            v = np.add(v, self.alu, dtype=np.float64)
            v, bound = saturate_int32(v, bound + float(np.max(np.abs(self.alu))))
        if self.mul is not None:
            v = rshift(v, self.shift, self.mode, self.mul, out=_owned(v))
            m = float(np.max(np.abs(self.mul)))
            v, bound = saturate_int32(v, shifted_bound(bound, m, self.shift))
        if self.relu:
            if self.relux is not None:
                np.clip(v, 0, self.relux, out=v)
            else:
                np.maximum(v, 0, out=v)
        return v, bound


def plan_stage(
    st: StageRegs,
    regs: TaskRegs,
    mem: AddressSpace,
    stats: TaskStats,
    channels: int,
    rdma_enabled: bool,
    options: NpuModelOptions,
) -> StagePlan | None:
    p = st.prefix
    cfg = regs(st.cfg)
    if getattr(cfg, f"{p}_BYPASS"):
        return None
    alu_on = not getattr(cfg, f"{p}_ALU_BYPASS")
    mul_on = not getattr(cfg, f"{p}_MUL_BYPASS")
    if getattr(cfg, f"{p}_MUL_PRELU"):
        raise unsupported(st.cfg, f"{p}_MUL_PRELU", 1)
    mul_cfg = regs(st.mul)
    alu_mem = alu_on and getattr(cfg, f"{p}_ALU_SRC") == R.AluSrc.SRC_MEMORY
    mul_mem = mul_on and getattr(mul_cfg, f"{p}_MUL_SRC") == R.AluSrc.SRC_MEMORY
    alu = mul = None
    if alu_mem or mul_mem:
        if not rdma_enabled:
            raise NpuHang(
                f"the DPU {p} stage waits for {st.reader} operands but DPU_RDMA is not "
                "enabled in op_en"
            )
        use = getattr(regs(st.use), f"{st.reader}_DATA_USE")
        base = getattr(regs(st.base), st.base.fields[0].name)
        what = f"{st.base.path} ({st.reader})"
        alu, mul = channel_operands(mem, stats, st.role, what, base, channels, use)
        if (alu_mem and alu is None) or (mul_mem and mul is None):
            raise NpuFault(
                "inconsistent",
                f"{st.cfg.path} reads an operand from memory that "
                f"{st.use.path}.{st.reader}_DATA_USE={use} does not provide",
            )
    if alu_on:
        if not alu_mem:
            alu = float(getattr(regs(st.alu), f"{p}_ALU_OPERAND"))
        algo = getattr(cfg, f"{p}_ALU_ALGO")
        if algo == R.AluAlgo.ALU_MINUS:
            alu = -alu
        elif algo != R.AluAlgo.ALU_ADD:
            raise unsupported(st.cfg, f"{p}_ALU_ALGO", algo)
    else:
        alu = None
    if mul_on:
        if not mul_mem:  # a signed 16-bit operand [inferred]
            mul = float(np.array(getattr(mul_cfg, f"{p}_MUL_OPERAND")).astype(np.int16))
    else:
        mul = None
    relux = None
    if getattr(cfg, f"{p}_RELUX_EN"):
        relux = _int32(getattr(regs(st.relux), f"{p}_RELUX_CMP_DAT"))
    return StagePlan(
        alu,
        mul,
        getattr(mul_cfg, f"{p}_MUL_SHIFT_VALUE"),
        not getattr(cfg, f"{p}_RELU_BYPASS"),
        relux,
        options.truncate_round,
    )


# --------------------------------------------------------------------------------------------
# EW stage and the output convertor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EwPlan:
    """The element-wise stage: the operand (int8 ``[H, W, C]``) through its convertor, added
    or subtracted, then ReLU/ReLUX."""

    operand: np.ndarray | None
    add_then_mul: bool
    offset: int
    scale: int
    shift: int
    mode: str
    sign: int
    relu: bool
    relux: int | None

    def apply(self, v: np.ndarray, bound: float, rows: slice) -> tuple[np.ndarray, float]:
        if self.operand is not None:
            e = self.operand[rows].astype(np.float64)
            e_bound = float(-INT8_MIN)
            if self.scale is not None:
                if self.add_then_mul:
                    e += self.offset
                    e = rshift(e, self.shift, self.mode, self.scale, out=e)
                    e_bound = shifted_bound(e_bound + abs(self.offset), self.scale, self.shift)
                else:
                    e = rshift(e, self.shift, self.mode, self.scale, self.offset, out=e)
                    e_bound = shifted_bound(e_bound, self.scale, self.shift) + abs(self.offset)
            if self.sign < 0:
                np.negative(e, out=e)
            v = np.add(v, e, dtype=np.float64)
            v, bound = saturate_int32(v, bound + e_bound)
        if self.relu:
            if self.relux is not None:
                np.clip(v, 0, self.relux, out=v)
            else:
                np.maximum(v, 0, out=v)
        return v, bound


def plan_ew(
    regs: TaskRegs,
    mem: AddressSpace,
    stats: TaskStats,
    cube: Cube,
    atom: int,
    rdma_enabled: bool,
    options: NpuModelOptions,
) -> EwPlan | None:
    cfg = regs(R.DPU.EW_CFG)
    if cfg.EW_BYPASS:
        return None
    for name in ("EW_BINARY_EN", "EW_EQUAL_EN", "EW_MUL_PRELU", "EW_OP_TYPE"):
        if getattr(cfg, name):
            raise unsupported(R.DPU.EW_CFG, name, getattr(cfg, name))
    if not cfg.EW_LUT_BYPASS:
        raise unsupported(R.DPU.EW_CFG, "EW_LUT_BYPASS", 0, " (the LUT is not modelled)")
    relux = _int32(regs(R.DPU.EW_RELUX_CMP_VALUE).EW_RELUX_CMP_DAT) if cfg.EW_RELUX_EN else None
    relu = not cfg.EW_RELU_BYPASS
    if cfg.EW_OP_BYPASS:
        return EwPlan(None, False, 0, None, 0, "", 1, relu, relux)
    if cfg.EW_OP_SRC != R.AluSrc.SRC_MEMORY:
        raise unsupported(
            R.DPU.EW_CFG, "EW_OP_SRC", cfg.EW_OP_SRC, " (only an operand from memory is modelled)"
        )
    if cfg.EDATA_SIZE != 1:
        raise unsupported(R.DPU.EW_CFG, "EDATA_SIZE", cfg.EDATA_SIZE, " (int8 operand)")
    if cfg.EW_ALU_ALGO not in (R.AluAlgo.ALU_ADD, R.AluAlgo.ALU_MINUS):
        raise unsupported(R.DPU.EW_CFG, "EW_ALU_ALGO", cfg.EW_ALU_ALGO)
    if not rdma_enabled:
        raise NpuHang("the DPU EW stage waits for its operand but DPU_RDMA is not enabled in op_en")
    e = ew_operand(regs, mem, stats, cube.width, cube.height, cube.channels, atom, options)
    scale = shift = offset = None
    if not cfg.EW_OP_CVT_BYPASS:
        scale_cfg = regs(R.DPU.EW_CVT_SCALE_VALUE)
        if scale_cfg.EW_TRUNCATE:
            raise unsupported(R.DPU.EW_CVT_SCALE_VALUE, "EW_TRUNCATE", scale_cfg.EW_TRUNCATE)
        offset = regs(R.DPU.EW_CVT_OFFSET_VALUE).EW_OP_CVT_OFFSET
        scale, shift = scale_cfg.EW_OP_CVT_SCALE, scale_cfg.EW_OP_CVT_SHIFT
    mode = cvt_round_mode(cfg.EW_CVT_ROUND, options.round_mode)
    sign = -1 if cfg.EW_ALU_ALGO == R.AluAlgo.ALU_MINUS else 1
    return EwPlan(
        e,
        cfg.EW_CVT_TYPE == R.CvtType.ADD_THEN_MUL,
        offset or 0,
        scale,
        shift or 0,
        mode,
        sign,
        relu,
        relux,
    )


@dataclass(frozen=True, slots=True)
class OutPlan:
    """OUT_CVT: scale, shift and offset from the integer register values, saturated to int8."""

    add_then_mul: bool
    offset: int
    scale: int
    shift: int
    mode: str

    def apply(self, v: np.ndarray) -> np.ndarray:
        if self.add_then_mul:
            v = np.add(v, self.offset, dtype=np.float64, out=_owned(v))
            y = rshift(v, self.shift, self.mode, self.scale, out=v)
        else:
            y = rshift(v, self.shift, self.mode, self.scale, self.offset, out=_owned(v))
        return saturate_int8(y)


def plan_out(regs: TaskRegs, options: NpuModelOptions) -> OutPlan:
    scale_cfg = regs(R.DPU.OUT_CVT_SCALE)
    shift_cfg = regs(R.DPU.OUT_CVT_SHIFT)
    if scale_cfg.FP32TOFP16_EN:
        raise unsupported(R.DPU.OUT_CVT_SCALE, "FP32TOFP16_EN", 1)
    if shift_cfg.MINUS_EXP:
        raise unsupported(R.DPU.OUT_CVT_SHIFT, "MINUS_EXP", shift_cfg.MINUS_EXP)
    return OutPlan(
        shift_cfg.CVT_TYPE == R.CvtType.ADD_THEN_MUL,
        regs(R.DPU.OUT_CVT_OFFSET).OUT_CVT_OFFSET,
        scale_cfg.OUT_CVT_SCALE,
        shift_cfg.OUT_CVT_SHIFT,
        cvt_round_mode(shift_cfg.CVT_ROUND, options.round_mode),
    )


# --------------------------------------------------------------------------------------------
# The whole pipeline
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DpuPlan:
    ow: OwPlan
    clip: int
    clip_mode: str
    bs: StagePlan | None
    bn: StagePlan | None
    ew: EwPlan | None
    out: OutPlan

    def apply(self, mac: MacResult) -> np.ndarray:
        """int8 ``[H, W, C]`` from the MAC sums, block of rows by block of rows."""
        h, w, c = mac.acc.shape
        y = np.empty((h, w, c), dtype=np.int8)
        step = max(1, BLOCK_VALUES // max(1, w * c))
        for r0 in range(0, h, step):
            rows = slice(r0, min(h, r0 + step))
            y[rows] = self._rows(mac, rows)
        return y

    def _rows(self, mac: MacResult, rows: slice) -> np.ndarray:
        acc, bound = mac.acc[rows], mac.bound
        ws = mac.window_sum[rows] if mac.window_sum is not None else None
        if self.ow.before:
            acc = np.add(acc, self.ow.before * ws, dtype=np.float64)
            bound += abs(self.ow.before) * mac.sum_bound
        if self.clip:
            acc = rshift(acc, self.clip, self.clip_mode, out=_owned(acc))
            bound = shifted_bound(bound, 1, self.clip)
        v, bound = saturate_int32(acc, bound)
        if self.ow.after:
            v = np.add(v, self.ow.after * ws, dtype=np.float64)
            v, bound = saturate_int32(v, bound + abs(self.ow.after) * mac.sum_bound)
        for stage in (self.bs, self.bn):
            if stage is not None:
                v, bound = stage.apply(v, bound)
        if self.ew is not None:
            v, bound = self.ew.apply(v, bound, rows)
        return self.out.apply(v)


def plan(
    regs: TaskRegs,
    mem: AddressSpace,
    stats: TaskStats,
    cube: Cube,
    atom: int,
    rdma_enabled: bool,
    ow: OwPlan,
    options: NpuModelOptions,
) -> DpuPlan:
    """Every DPU register of the task decoded and checked, operands fetched, in stage order."""
    bs = plan_stage(BS, regs, mem, stats, cube.channels, rdma_enabled, options)
    bn = plan_stage(BN, regs, mem, stats, cube.channels, rdma_enabled, options)
    ew = plan_ew(regs, mem, stats, cube, atom, rdma_enabled, options)
    out = plan_out(regs, options)
    clip = regs(R.CORE.CLIP_TRUNCATE).CLIP_TRUNCATE
    return DpuPlan(ow, clip, options.truncate_round, bs, bn, ew, out)


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
    stride *= unit(R.DPU.DST_SURF_STRIDE, "DST_SURF_STRIDE")
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
