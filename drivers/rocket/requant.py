"""Requantization: DPU register values that make the NPU's integers equal TFLite's.

Mesa computes one OUT_CVT scale and shift inline in ``rkt_regcmd.c`` (a Q1.14 mantissa of the
float32 multiplier plus one, rocket-nvdla.md §7). We plan the whole DPU pipeline here instead,
from the integer values the hardware uses, so that its result equals LiteRT's reference kernels
as often as the registers allow. The hardware, as the simulator reads the registers
(``docs/rocket-npu-model.md`` §4; ``rs`` is a rounding right shift)::

    v = sat32(A + OW) + bias_c                          CORE, then the BS stage's ALU
    BS, BN:  v = rs_away(v·m, s); v = max(v, 0); v = min(v, X)     multiplier, ReLU, ReLUX
    EW:      v = v + rs(e·scale, shift) + offset        the fused ADD's operand e
    OUT:     y = sat8(rs_up(v·S, sh) + offset)          CVT_ROUND = 1: half up

The multiplier shifts round half away from zero (NVDLA precision.rst); the output convertor
half up (the TRM's CVT_ROUND = 1). Operands ``m`` are signed 16-bit, ``S`` unsigned 16-bit.

The targets (LiteRT ``reference_ops``/``reference_integer_ops``, ``nir_tensor.kernels``):

* **CONV** (double rounding): ``y = RDBP(SRDHM(acc, M0), r) + z``: a round half up of
  ``acc·M0/2^31`` to ``h``, then a round half away of ``h/2^r``.
* **FULLY_CONNECTED** (single rounding): ``y = round_away(acc·M) + z``, ``M`` in double.
* **ADD**: a 256 x 256 table of the two 8-bit inputs (``add_sub_formula``).

**Plan A, a convolution** (:func:`plan_conv`). BS adds the bias and multiplies by ``m1``
exactly (shift 0; ``m1 <= (2^31 - 1) / max|v|`` keeps ``v·m1`` in int32, the bound coming from
the weights); BN multiplies by ``m2`` and shifts by ``S``: one rounding with the ~30-bit
multiplier ``m1·m2/2^S``. For CONV that produces ``h`` (SRDHM's value) and the output convertor
shifts by ``r`` (RDBP's); for FC it produces the result. A clamp ``lo = z`` is BN's ReLU, ``hi``
its ReLUX at ``(hi - z)·2^r``; both are exact because rounding is monotone and exact on
multiples. Differences left: RDBP rounds a negative tie away from zero, the convertor up (a
``2^-(r+1)`` share of negative outputs), and ``m1·m2`` is not exactly ``M0`` (an error of
``|acc|·2^-S`` in units of ``h``).

**Plan B, a convolution with a fused ADD** (:func:`plan_conv_add`). The ADD needs the
convolution's rounded and clamped result ``q_c``. BS multiplies by a 15-bit ``m`` and shifts
(one rounding, ``q_c - z_c``); BN adds ``z_c - lo_c``, multiplies by ``K`` exactly, ReLU and
ReLUX at ``(hi_c - lo_c)·K`` clamp it; EW adds ``(q_b - z_b)·K_b`` exactly (multiply-then-add,
shift 0); the output convertor scales by ``S/2^sh ≈ s_c/(K·s_out)``. ``(K, K_b, S, sh)`` are
chosen among candidates by counting, over every reachable ``(q_c, q_b)`` pair, the results that
differ from TFLite's ADD.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...util.fixedpoint import quantize_multiplier
from . import rocket_regs as R
from .job import DpuStage, EwStage, FeatureMap, OutputConvert
from .regcmd import field_max

# BS/BN multiplier operands are signed 16-bit (docs/rocket-npu-model.md §4): half the field.
INT16_MAX = field_max(R.DPU.BS_MUL_CFG, "BS_MUL_OPERAND") // 2
# OUT_CVT_SCALE and EW_OP_CVT_SCALE are unsigned (model doc §4).
UINT16_MAX = field_max(R.DPU.OUT_CVT_SCALE, "OUT_CVT_SCALE")
INT32_MAX = int(np.iinfo(np.int32).max)  # the DPU's data path between stages
MAX_MUL_SHIFT = field_max(R.DPU.BS_MUL_CFG, "BS_MUL_SHIFT_VALUE")
MAX_CVT_SHIFT = field_max(R.DPU.EW_CVT_SCALE_VALUE, "EW_OP_CVT_SHIFT")
# Plan A tries this many values of m1 (the largest allowed and below) per channel.
M1_CANDIDATES = 256
# Plan B tries this many values of K below the largest allowed.
K_CANDIDATES = 24


class Rounding(enum.Enum):
    """How the reference kernel rounds the accumulator."""

    DOUBLE = "RDBP(SRDHM(acc, M0), r)"  # conv and depthwise
    SINGLE = "round_away(acc * M)"  # fully connected


@dataclass(frozen=True, slots=True, eq=False)
class Scales:
    """TFLite's multipliers per output channel.

    DOUBLE: ``real`` is ``M0·2^ls/2^31`` (SRDHM's factor, ``ls`` the left shift when M > 1) and
    ``right`` is ``r``. SINGLE: ``real`` is ``M`` and ``right`` is 0.
    """

    rounding: Rounding
    real: np.ndarray  # float64 (C,)
    right: np.ndarray  # int64 (C,)


def conv_scales(s_in: float, s_w: np.ndarray, s_out: float, *, float_product: bool) -> Scales:
    """``GetQuantizedConvolutionMultipler`` (uint8: the scale product in float32) or
    ``PopulateConvolutionQuantizationParams`` (int8, per channel), then ``QuantizeMultiplier``."""
    real, right = [], []
    for s in np.asarray(s_w, dtype=np.float64):
        if float_product:
            m = float(np.float32(s_in) * np.float32(s)) / float(s_out)
        else:
            m = float(s_in) * float(s) / float(s_out)
        m0, shift = quantize_multiplier(m)
        real.append(m0 * 2.0 ** (max(shift, 0) - 31))
        right.append(max(-shift, 0))
    return Scales(Rounding.DOUBLE, np.array(real), np.array(right, dtype=np.int64))


def fc_scales(s_in: float, s_w: np.ndarray, s_out: float) -> Scales:
    """The reference FULLY_CONNECTED's double ``s_in·s_w/s_out`` (nir_tensor.kernels.conv)."""
    real = s_in * np.asarray(s_w, dtype=np.float64) / s_out
    return Scales(Rounding.SINGLE, real, np.zeros(len(real), dtype=np.int64))


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """The DPU stages of one convolution and the per-channel words their RDMAs read.

    ``bs_words``/``bn_words`` are int32 arrays (C, 1) or (C, 2): the ALU operand and/or the
    multiplier word of each channel, as BRDMA/NRDMA ``DATA_USE`` 1, 2 or 3 lay them out.
    """

    bs: DpuStage
    bn: DpuStage
    out: OutputConvert
    bs_words: np.ndarray | None
    bn_words: np.ndarray | None
    ew: EwPlan | None = None


@dataclass(frozen=True, slots=True)
class EwPlan:
    """The EW operand conversion (multiply-then-add, shift 0) and the ADD's clamp."""

    scale: int
    offset: int
    relu: bool
    relux: int | None

    def stage(self, operand: FeatureMap) -> EwStage:
        return EwStage(operand, self.offset, self.scale, 0, False, self.relu, self.relux)


def _words(columns: list[np.ndarray]) -> np.ndarray:
    return np.stack([c.astype(np.int64) for c in columns], axis=1).astype(np.int32)


def _common(values: np.ndarray) -> int | None:
    """The value when every channel has it (a register), else None (memory)."""
    return int(values[0]) if bool((values == values[0]).all()) else None


class PlanError(ValueError):
    """A requantization the DPU cannot express (one-line reason)."""


def _best_pairs(target: np.ndarray, m1_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, (m1 <= m1_max, m2 <= INT16_MAX) with m1·m2 closest to ``target``."""
    offsets = np.arange(M1_CANDIDATES)
    m1 = np.maximum(m1_max[:, None] - offsets[None, :], 1)
    m2 = np.clip(np.rint(target[:, None] / m1), 0, INT16_MAX)
    err = np.abs(m1 * m2 - target[:, None])
    pick = np.argmin(err, axis=1)
    rows = np.arange(len(target))
    return m1[rows, pick].astype(np.int64), m2[rows, pick].astype(np.int64)


def plan_conv(
    scales: Scales,
    bias: np.ndarray,
    v_bound: np.ndarray,
    *,
    zero_point: int,
    lo: int | None,
    hi: int | None,
) -> Plan:
    """Plan A (module doc). ``zero_point`` is the output's in the stored domain; ``lo``/``hi``
    the clamp relative to it (``q - z``), None where the type's saturation is the clamp.
    ``v_bound`` bounds |acc + bias| per channel."""
    real, right = scales.real, scales.right
    r = int(right.max(initial=0))
    # A common output shift r: channel c's h is computed 2^(r - r_c) finer (per-channel only).
    real = real * np.exp2(r - right)
    m1_max = np.clip(INT32_MAX // np.maximum(v_bound, 1), 1, INT16_MAX).astype(np.int64)
    live = real > 0
    if live.any():
        room = np.min(INT16_MAX * m1_max[live] / real[live])
        shift = min(MAX_MUL_SHIFT, math.floor(math.log2(room)))
    else:
        shift = 0
    if shift < 0:
        raise PlanError(f"requantization multiplier {real.max():.4g} too large for the DPU")
    m1, m2 = _best_pairs(real * 2.0**shift, m1_max)
    if lo is not None and lo != 0:
        raise PlanError(f"activation minimum {lo} LSB from the zero point (only ReLU's 0)")
    relux = None if hi is None else hi << r
    c1, c2 = _common(m1), _common(m2)
    bs = DpuStage(alu_memory=True, mul=c1, mul_memory=c1 is None)
    bn = DpuStage(mul=c2, mul_memory=c2 is None, mul_shift=shift, relu=lo is not None, relux=relux)
    bs_cols = [bias] + ([m1] if c1 is None else [])
    bn_words = _words([m2]) if c2 is None else None
    out = OutputConvert(offset=zero_point, scale=1, shift=r, round_half_up=True)
    return Plan(bs, bn, out, _words(bs_cols), bn_words)


def _rs(v: np.ndarray, n: int, mode: str) -> np.ndarray:
    """A rounding right shift as the DPU does it (model doc §4 ``rshift``)."""
    if n <= 0:
        return v
    half = 1 << (n - 1)
    if mode == "up":
        return (v + half) >> n
    mag = (np.abs(v) + half) >> n
    return np.where(v < 0, -mag, mag)


def plan_conv_add(
    conv_real: np.ndarray,
    bias: np.ndarray,
    *,
    conv_scale: float,
    conv_zero: int,
    conv_lo: int,
    conv_hi: int,
    other_scale: float,
    other_zero: int,
    out_scale: float,
    out_zero: int,
    offset: int,
    qmin: int,
    qmax: int,
    add_lo: int,
    add_hi: int,
    target: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> Plan:
    """Plan B (module doc). Quantized values are in the model's domain (``q``); ``offset`` is
    ``o`` (stored = q - o); ``conv_real`` is the convolution's multiplier per channel; ``target``
    gives TFLite's ADD output for (conv value, other value) arrays."""
    live = conv_real > 0
    s1 = MAX_MUL_SHIFT
    if live.any():
        s1 = min(MAX_MUL_SHIFT, math.floor(math.log2(INT16_MAX / conv_real[live].max())))
    if s1 < 0:
        raise PlanError(f"requantization multiplier {conv_real.max():.4g} too large for the DPU")
    m = np.rint(conv_real * 2.0**s1).astype(np.int64)
    cm = _common(m)
    bs = DpuStage(alu_memory=True, mul=cm, mul_memory=cm is None, mul_shift=s1)
    bs_words = _words([bias] + ([m] if cm is None else []))

    qc = np.arange(conv_lo, conv_hi + 1, dtype=np.int64)[:, None]
    qb = np.arange(qmin, qmax + 1, dtype=np.int64)[None, :]
    want = target(qc, qb)
    ratio = other_scale / conv_scale
    k_max = min(INT16_MAX, math.floor(UINT16_MAX / ratio)) if ratio > 0 else INT16_MAX
    if k_max < 1:
        raise PlanError(f"ADD operand scale ratio {ratio:.4g} too large for the DPU")
    relu = add_lo > qmin
    if relu and add_lo != out_zero:
        raise PlanError(f"ADD activation minimum {add_lo} is not the zero point {out_zero}")
    best: tuple[int, tuple] | None = None
    for k in range(k_max, max(k_max - K_CANDIDATES, 0), -1):
        kb = round(k * ratio)
        if kb > UINT16_MAX:
            continue
        real = conv_scale / (k * out_scale)
        sh = min(MAX_CVT_SHIFT, math.floor(math.log2(UINT16_MAX / real)))
        v = (qc - conv_zero) * k + (qb - other_zero) * kb
        if relu:
            v = np.maximum(v, 0)
        for scale in {round(real * 2.0**sh), math.floor(real * 2.0**sh)}:
            if not 0 < scale <= UINT16_MAX:
                continue
            y = np.clip(_rs(v * scale, sh, "up") + out_zero - offset, -128, 127) + offset
            y = np.minimum(y, add_hi)
            wrong = int(np.count_nonzero(y != want))
            if best is None or wrong < best[0]:
                best = (wrong, (k, kb, scale, sh))
        if best is not None and best[0] == 0:
            break
    if best is None:
        raise PlanError("no ADD scaling fits the DPU's operand widths")
    k, kb, scale, sh = best[1]
    bn = DpuStage(
        alu=conv_zero - conv_lo,
        mul=k,
        mul_shift=0,
        relu=True,
        relux=(conv_hi - conv_lo) * k,
    )
    relux = None
    if add_hi < qmax:  # the largest sum whose output is still <= add_hi
        relux = _largest_below(scale, sh, add_hi - out_zero)
    ew = EwPlan(kb, (offset - other_zero) * kb + (conv_lo - conv_zero) * k, relu, relux)
    out = OutputConvert(offset=out_zero - offset, scale=scale, shift=sh, round_half_up=True)
    return Plan(bs, bn, out, bs_words, None, ew)


def _largest_below(scale: int, sh: int, limit: int) -> int:
    """The largest v with rs_up(v·scale, sh) <= limit."""
    # rs_up(v·S, sh) = floor((v·S + 2^(sh-1)) / 2^sh) <= limit  <=>  v·S < (limit + 1)·2^sh - half
    half = (1 << (sh - 1)) if sh > 0 else 0
    bound = ((limit + 1) << sh) - half
    return -(-bound // scale) - 1
