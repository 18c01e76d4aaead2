"""Requantization: DPU register values that make the NPU's integers equal TFLite's.

Mesa computes one OUT_CVT scale and shift inline in ``rkt_regcmd.c`` (a Q1.14 mantissa of the
float32 multiplier plus one, rocket-nvdla.md §7). We plan the whole DPU pipeline here instead,
from the integer values the hardware uses, so that its result equals LiteRT's reference kernels
as often as the registers allow. The hardware, as the simulator reads the registers
(``docs/rocket-npu-model.md`` §4; ``rs`` is a rounding right shift, every stage saturates to
int32)::

    v = sat32(A + OW) + bias_c                          CORE, then the BS stage's ALU
    BS, BN:  v = rs_away(v·m, s); v = max(v, 0); v = min(v, X)     multiplier, ReLU, ReLUX
    EW:      v = v + rs(e·scale, shift) + offset        (or (e + offset)·scale first)
    OUT:     y = sat8(rs(v·S, sh) + offset)             (or (v + offset)·S first)

The BS/BN shifts round half away from zero (NVDLA precision.rst); EW and OUT round half up with
CVT_ROUND = 1 (TRM). BS/BN multipliers are signed 16-bit, EW/OUT scales unsigned 16-bit. ReLUX
acts only together with ReLU.

**The targets** (LiteRT ``reference_ops``/``reference_integer_ops``, ``nir_tensor.kernels``):
CONV rounds twice, ``y = RDBP(h, r) + z`` with ``h = SRDHM(acc, M0)``: ``h`` rounds
``x = acc·M0/2^31`` half up, RDBP rounds ``h/2^r`` half away from zero. FULLY_CONNECTED rounds
once, ``y = round_away(acc·M) + z`` (``M`` in double). ADD is a table of its two 8-bit inputs.

**Plan A, a convolution** (:func:`plan_conv`). BS adds the bias and multiplies by ``m1`` with no
shift (exact); BN multiplies by ``m2`` and shifts by ``S``: one rounding of ``v·m1·m2/2^S``, a
multiplier of up to 30 bits, which is ``h`` (CONV) or the result (FC). Then the output convertor
shifts ``h`` by ``r``. That rounds ties half *up*, while RDBP rounds a negative tie down
(away from zero): ``RDBP(h, r) = rs_up(h - [h < 0], r)``. The DPU has no sign-dependent step
after BN, so when negative outputs are visible (the clamp's minimum is below the zero point) the
convolution runs twice:

1. the **sign pass** writes ``sat8(h·65535 + 32767)``: 127 where ``h >= 0``, -128 where
   ``h < 0``, to a scratch feature map;
2. the **main pass** reads it through the EW stage as ``rs_up((e + 128)·1, 8) = [h >= 0]`` and
   the output convertor adds first: ``rs_up(h + [h >= 0] - 1 + z·2^r, r) = RDBP(h, r) + z``.

Both passes compute the same ``h``, so the result is TFLite's exactly, up to ``m1·m2/2^S`` not
being ``M0/2^31`` (an error of ``|acc|·2^-S`` in units of ``h``, which moves ``h`` only when
``x`` is that close to a rounding point) and to per-channel layers whose channels have
different ``r`` (a common ``r`` is used, channel c's ``h`` is ``2^(r - r_c)`` finer, so its
first rounding is finer than TFLite's). A clamp ``lo = z`` is BN's ReLU, ``hi`` its ReLUX at
``(hi - z)·2^r``: both exact, rounding being monotone and exact on multiples of ``2^r``.

**Plan B, an ADD** (:func:`plan_add`): ``CONV_ADD`` nodes whose convolution is an identity (the
ADD on its own) or a real convolution (Mesa's fusion, ``fuse_add``). The ADD needs the
convolution's rounded and clamped ``q_c``: BS multiplies by a 15-bit ``m`` and shifts (one
rounding, exact for the identity), BN adds ``z_c - lo_c``, multiplies by ``K`` exactly and
clamps with ReLU/ReLUX at ``(hi_c - lo_c)·K``; EW adds ``(q_b - z_b)·K_b`` exactly
(multiply-then-add, shift 0); the output convertor scales by ``S/2^sh ≈ s_c/(K·s_out)``.
``(K, K_b, S, sh)`` are chosen among candidates by counting, over every reachable
``(q_c, q_b)`` pair, the results that differ from TFLite's ADD.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ...util.fixedpoint import quantize_multiplier, round_half_away_array
from . import rocket_regs as R
from .job import DpuStage, EwStage, FeatureMap, OutputConvert
from .regcmd import field_max

# BS/BN multiplier operands are signed 16-bit (docs/rocket-npu-model.md §4): half the field.
INT16_MAX = field_max(R.DPU.BS_MUL_CFG, "BS_MUL_OPERAND") // 2
# OUT_CVT_SCALE and EW_OP_CVT_SCALE are unsigned (model doc §4).
UINT16_MAX = field_max(R.DPU.OUT_CVT_SCALE, "OUT_CVT_SCALE")
INT32_MAX = int(np.iinfo(np.int32).max)  # the DPU's data path between stages
INT8_MIN, INT8_MAX = int(np.iinfo(np.int8).min), int(np.iinfo(np.int8).max)
MAX_MUL_SHIFT = field_max(R.DPU.BS_MUL_CFG, "BS_MUL_SHIFT_VALUE")
MAX_CVT_SHIFT = field_max(R.DPU.EW_CVT_SCALE_VALUE, "EW_OP_CVT_SHIFT")
# gemmlowp SaturatingRoundingDoublingHighMul: the product's high 31 bits, rounded half up.
SRDHM_BITS = 31
SRDHM_HALF = 2**30
# Output values span 256 codes: an h beyond 256·2^r saturates whatever its exact value.
OUTPUT_CODES = 256
# The sign pass: scale and offset that send h >= 0 to 127 and h < 0 to -128; the main pass
# reads (e - INT8_MIN) >> 8, which is 1 for 127 and 0 for -128.
SIGN_SCALE = UINT16_MAX
SIGN_OFFSET = UINT16_MAX // 2
SIGN_SHIFT = 8
# Per-channel layers whose channels have different TFLite shifts r_c: the output shift is this
# much finer than the coarsest live channel's (int32 holds 256·2^r for r up to 22), channels
# more than SIGN_SPREAD coarser than the finest are approximated, and the sign pass writes
# offsets of at most 2^SIGN_OFFSET_BITS (int8).
EXTRA_BITS = 8
MAX_OUTPUT_SHIFT = 22
SIGN_SPREAD = 6
SIGN_OFFSET_BITS = 6
# Plan A tries this many values of m1 (the largest allowed and below) per distinct channel,
# keeps the VERIFY_CANDIDATES best pairs and counts their wrong outputs over the accumulator
# range, while that costs at most VERIFY_BUDGET evaluations per layer.
M1_CANDIDATES = 4096
VERIFY_CANDIDATES = 32
VERIFY_PATIENCE = 8  # candidates tried without fewer differences before giving up
VERIFY_BUDGET = 2**20
# Accumulators checked on each side of a step of TFLite's output, for pairs that move the
# rounded value by less than MAX_DEVIATION units anywhere in the range.
STEP_WINDOW = 3
MAX_DEVIATION = 0.25
# Plan B counts exactly this many (K, K_b, S, sh), the best by their worst-case error.
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
    m0: np.ndarray  # int64 (C,): QuantizeMultiplier's multiplier (DOUBLE)
    shift: np.ndarray  # int64 (C,): and its exponent

    def reference(self, acc: np.ndarray, c: int) -> np.ndarray:
        """TFLite's rescaled accumulator of channel ``c`` (before the zero point), for
        accumulators small enough that no int32 step saturates or wraps: SRDHM is
        ``floor((a·M0 + 2^30) / 2^31)`` then (util.fixedpoint), RDBP a half-away shift."""
        if self.rounding is Rounding.SINGLE:
            return round_half_away_array(acc * float(self.real[c])).astype(np.int64)
        shift = int(self.shift[c])
        h = ((acc << max(shift, 0)) * int(self.m0[c]) + SRDHM_HALF) >> SRDHM_BITS
        return _rs_away(h, max(-shift, 0))

    def stage1(self, acc: np.ndarray, c: int) -> np.ndarray:
        """The value TFLite rounds first: SRDHM's ``h`` (DOUBLE) or the result (SINGLE)."""
        if self.rounding is Rounding.SINGLE:
            return round_half_away_array(acc * float(self.real[c])).astype(np.int64)
        shift = int(self.shift[c])
        return ((acc << max(shift, 0)) * int(self.m0[c]) + SRDHM_HALF) >> SRDHM_BITS

    def steps(self, c: int, y_lo: int, y_hi: int) -> np.ndarray:
        """The accumulators (reals) at which channel c's output steps, for outputs (before the
        zero point) from ``y_lo`` to ``y_hi``."""
        ys = np.arange(y_lo, y_hi + 1, dtype=np.float64)
        real = float(self.real[c])
        r = int(self.right[c])
        if real <= 0:
            return np.empty(0)
        if self.rounding is Rounding.SINGLE or r == 0:
            return (ys - 0.5) / real  # round(x) steps from y - 1 to y at y - 1/2
        # RDBP(h, r) steps to y > 0 at h = (y - 1/2)·2^r and to y <= 0 at (y - 1/2)·2^r + 1;
        # h = floor(x + 1/2) steps to h at x = h - 1/2.
        h = (ys - 0.5) * 2.0**r + (ys <= 0)
        return (h - 0.5) / real

    @property
    def multiplier(self) -> np.ndarray:
        """The whole real multiplier per channel."""
        return self.real * np.exp2(-self.right.astype(np.float64))


def conv_scales(s_in: float, s_w: np.ndarray, s_out: float, *, float_product: bool) -> Scales:
    """``GetQuantizedConvolutionMultipler`` (uint8: the scale product in float32) or
    ``PopulateConvolutionQuantizationParams`` (int8, per channel), then ``QuantizeMultiplier``."""
    real, right, m0s, shifts = [], [], [], []
    distinct, inverse = np.unique(np.asarray(s_w, dtype=np.float64), return_inverse=True)
    for s in distinct:
        if float_product:
            m = float(np.float32(s_in) * np.float32(s)) / float(s_out)
        else:
            m = float(s_in) * float(s) / float(s_out)
        m0, shift = quantize_multiplier(m)
        real.append(m0 * 2.0 ** (max(shift, 0) - 31))
        right.append(max(-shift, 0))
        m0s.append(m0)
        shifts.append(shift)
    inverse = inverse.reshape(-1)
    return Scales(
        Rounding.DOUBLE,
        np.array(real)[inverse],
        np.array(right, dtype=np.int64)[inverse],
        np.array(m0s, dtype=np.int64)[inverse],
        np.array(shifts, dtype=np.int64)[inverse],
    )


def fc_scales(s_in: float, s_w: np.ndarray, s_out: float) -> Scales:
    """The reference FULLY_CONNECTED's double ``s_in·s_w/s_out`` (nir_tensor.kernels.conv)."""
    real = s_in * np.asarray(s_w, dtype=np.float64) / s_out
    zeros = np.zeros(len(real), dtype=np.int64)
    return Scales(Rounding.SINGLE, real, zeros, zeros, zeros)


@dataclass(frozen=True, slots=True)
class EwPlan:
    """The EW operand conversion and the clamp after the addition."""

    scale: int
    shift: int
    offset: int
    add_first: bool
    relu: bool = False
    relux: int | None = None

    def stage(self, operand: FeatureMap) -> EwStage:
        return EwStage(
            operand, self.offset, self.scale, self.shift, self.add_first, self.relu, self.relux
        )


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """The DPU stages of one pass and the per-channel words their RDMAs read.

    ``bs_words``/``bn_words`` are int32 arrays (C, 1) or (C, 2): the ALU operand and/or the
    multiplier word of each channel, as BRDMA/NRDMA ``DATA_USE`` 1, 2 or 3 lay them out.
    ``ew`` converts the pass's EW operand (the other ADD input, or the sign map);
    ``sign`` is the output convertor of the sign pass that must run first, if any.
    """

    bs: DpuStage
    bn: DpuStage
    out: OutputConvert
    bs_words: np.ndarray | None
    bn_words: np.ndarray | None
    ew: EwPlan | None = None
    sign: Plan | None = None  # the sign pass that runs first (module doc), if any


class PlanError(ValueError):
    """A requantization the DPU cannot express (one-line reason)."""


def _words(columns: list[np.ndarray]) -> np.ndarray:
    """Per-channel int32 operand words (BRDMA/NRDMA read 32-bit words)."""
    table = np.stack([np.asarray(c).astype(np.int64) for c in columns], axis=1)
    if table.size and np.abs(table).max() > INT32_MAX:
        raise PlanError("a per-channel DPU operand does not fit 32 bits")
    return table.astype(np.int32)


def _common(values: np.ndarray) -> int | None:
    """The value when every channel has it (a register), else None (memory)."""
    return int(values[0]) if bool((values == values[0]).all()) else None


def _group_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first index, group of each row) of the distinct rows of ``columns`` side by side."""
    rows = np.ascontiguousarray(np.column_stack([np.asarray(c, np.float64) for c in columns]))
    flat = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
    _, first, group = np.unique(flat, return_index=True, return_inverse=True)
    return first, group.reshape(-1)


def _candidate_pairs(
    target: np.ndarray, m1_max: np.ndarray, keep: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct (target, m1_max): the ``keep`` pairs (m1 <= m1_max, m2 <= INT16_MAX) whose
    product is closest to ``target``, best first, from every m1 of the feasible range (up to
    M1_CANDIDATES of them, the largest). Returns (m1, m2, row of each channel)."""
    first, inverse = _group_rows(target, m1_max)
    t, hi = target[first], m1_max[first].astype(np.int64)
    lo = np.maximum(np.ceil(t / INT16_MAX).astype(np.int64), 1)
    lo = np.maximum(lo, hi - M1_CANDIDATES + 1)
    m1 = hi[:, None] - np.arange(M1_CANDIDATES)[None, :]
    m1 = np.where(m1 >= lo[:, None], m1, hi[:, None])
    m2 = np.clip(np.rint(t[:, None] / m1), 0, INT16_MAX)
    err = np.abs(m1 * m2 - t[:, None])
    keep = min(keep, err.shape[1])
    order = np.argpartition(err, keep - 1, axis=1)[:, :keep]
    at = np.arange(len(t))[:, None]
    order = order[at, np.argsort(err[at, order], axis=1, kind="stable")]
    return m1[at, order].astype(np.int64), m2[at, order].astype(np.int64), inverse


def _pair_options(
    real: np.ndarray, m1_max: np.ndarray, shift: int
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(S, m1, m2) for ``m1·m2/2^S ≈ real``, for the largest feasible shift and the two below
    (a smaller S leaves room for other factor pairs), the smallest relative error first; m1 and
    m2 hold VERIFY_CANDIDATES pairs per channel, best first."""
    options = []
    for s in range(shift, max(shift - 3, -1), -1):
        target = real * 2.0**s
        m1, m2, rows = _candidate_pairs(target, m1_max, VERIFY_CANDIDATES)
        m1, m2 = m1[rows], m2[rows]
        live = target > 0
        err = np.abs(m1[:, 0] * m2[:, 0] - target)[live] / target[live]
        options.append((float(np.max(err, initial=0.0)), s, m1, m2))
    options.sort(key=lambda o: o[0])
    return [o[1:] for o in options]


def _verified(
    scales: Scales,
    v_range: tuple[np.ndarray, np.ndarray],
    y_range: tuple[int, int],
    pairs: tuple[np.ndarray, np.ndarray],
    hardware: Callable[[np.ndarray, int, int, int, int], np.ndarray],
    out: Callable[[np.ndarray], np.ndarray],
    deviation: Callable[[int], np.ndarray],
    offsets: Callable[[np.ndarray, int, int, int], tuple[int, int]] | None,
    checkable: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per channel, the first candidate pair (best first) whose outputs equal TFLite's for every
    accumulator in ``v_range`` (lowest, highest), else the one with the fewest differences, and
    the BN ALU offset that goes with it. ``hardware(v, c, m1, m2, offset)`` is the plan's result
    before the zero point; ``deviation(c)`` is how far each candidate pair moves the rounded
    value per unit of accumulator; ``offsets(v, c, m1, m2)``, when given, the offsets (an interval)
    for which the hardware rounds like TFLite at the accumulators ``v``. Channels not
    ``checkable`` (outside the exact window of a mixed per-channel layer) keep their first pair.
    Returns the pairs, the offsets and the number of differing accumulators left.

    Both results are monotone step functions of the accumulator. With the pair's error below a
    quarter of a rounding unit over the range, the hardware's steps sit next to TFLite's, so
    they can differ only at the few accumulators around TFLite's steps (``Scales.steps``) inside
    the unsaturated output range ``y_range``; those are checked, and an offset can move the
    hardware's steps onto TFLite's where the pair alone is too coarse. A pair whose error could
    be larger is checked on the whole range while that costs at most VERIFY_BUDGET evaluations.
    """
    m1, m2 = pairs
    picked1, picked2 = m1[:, 0].copy(), m2[:, 0].copy()
    picked_offset = np.zeros(len(m1), dtype=np.int64)
    budget = VERIFY_BUDGET
    window = np.arange(-STEP_WINDOW, STEP_WINDOW + 1, dtype=np.int64)
    # Channels with the same multipliers and candidates are checked once, on their joint range.
    first, group = _group_rows(scales.real, scales.right, m1, m2)
    left = 0
    for g, c in enumerate(first):
        c = int(c)
        members = group == g
        low, high = int(v_range[0][members].min()), int(v_range[1][members].max())
        if high < low or not checkable[c]:
            continue
        steps = scales.steps(c, *y_range)
        steps = steps[np.isfinite(steps)]
        near = (np.floor(steps).astype(np.int64)[:, None] + window[None, :]).reshape(-1)
        near = near[(near >= low) & (near <= high)]  # repeats cost little, sorting more
        want_near = out(scales.reference(near, c))
        far = deviation(c) * max(abs(low), abs(high)) >= MAX_DEVIATION
        fewest, since = None, 0
        for i, (a, b) in enumerate(zip(m1[c], m2[c], strict=True)):
            v, want = near, want_near
            if far[i]:
                if high - low + 1 > budget:
                    continue
                budget -= high - low + 1
                v = np.arange(low, high + 1, dtype=np.int64)
                want = out(scales.reference(v, c))
            offset = 0
            if offsets is not None and len(near):
                lo_off, hi_off = offsets(near, c, a, b)
                if lo_off <= hi_off:
                    offset = min(max(0, lo_off), hi_off)
            wrong = int(np.count_nonzero(out(hardware(v, c, a, b, offset)) != want))
            since += 1
            if fewest is None or wrong < fewest:
                fewest, since = wrong, 0
                picked1[members], picked2[members], picked_offset[members] = a, b, offset
            if wrong == 0 or since >= VERIFY_PATIENCE:
                break
        # A group none of whose candidates could be checked counts as wrong everywhere.
        left += high - low + 1 if fewest is None else fewest
    return picked1, picked2, picked_offset, left


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
    right = scales.right
    live = scales.real > 0
    shifts = np.unique(right[live])
    mixed = scales.rounding is Rounding.DOUBLE and len(shifts) > 1
    # A minimum other than ReLU's, or a maximum without it, is clamped in BS on the
    # accumulator (module doc, "clamps in BS"): one multiplier for every channel.
    bs_clamp = (lo is not None and lo != 0) or (hi is not None and lo is None)
    if bs_clamp and (mixed or len(np.unique(scales.real)) > 1):
        raise PlanError("an activation minimum off the zero point with per-channel scales")
    if mixed:  # finer than every live channel's h, within int32 (plan A with offsets)
        top = int(shifts[shifts <= shifts[0] + SIGN_SPREAD].max())
        r = min(top + EXTRA_BITS, MAX_OUTPUT_SHIFT)
    else:
        r = int(shifts[0]) if len(shifts) else 0
    d = r - right  # channel c's h is 2^d finer than TFLite's
    real = scales.real * np.exp2(d)
    # Beyond OUTPUT_CODES·2^r, h saturates the output however BS saturates: only the range
    # below that must stay exact in int32.
    with np.errstate(divide="ignore", over="ignore"):
        useful = np.where(real > 0, np.ceil((OUTPUT_CODES << r) / real) + 1, np.inf)
    bound = np.minimum(v_bound, useful)
    # BS shifts its product right by s1 so that v·m1/2^s1 stays in int32 for a 15-bit m1
    # (the product itself is wide: 32 x 16 bits); BN shifts by the rest of the total. Channels
    # far outside the live shifts (almost dead weights) get a smaller m1 instead.
    window = right <= (int(shifts[0]) + SIGN_SPREAD if len(shifts) else 0)
    typical = float(bound[live & window].max()) if (live & window).any() else 1.0
    if bs_clamp:  # BS sees v less the low threshold: up to twice the range
        typical *= 2
    s1 = max(0, math.ceil(math.log2(max(typical, 1.0) * INT16_MAX / INT32_MAX)))
    m1_max = np.clip((INT32_MAX << s1) // np.maximum(bound, 1), 1, INT16_MAX).astype(np.int64)
    if bs_clamp:  # one m1 for all channels: ReLUX's threshold is a register
        m1_max[:] = m1_max.min()
    total = MAX_MUL_SHIFT
    if live.any():
        total = math.floor(math.log2(float(np.min(INT16_MAX * m1_max[live] / real[live]))))
    total = min(total, s1 + MAX_MUL_SHIFT)
    if total < s1:
        raise PlanError(f"requantization multiplier {real.max():.4g} too large for the DPU")
    options = _pair_options(real, m1_max, total)
    lo_out = INT8_MIN if lo is None else max(INT8_MIN, zero_point + lo)
    hi_out = INT8_MAX if hi is None else min(INT8_MAX, zero_point + hi)
    sign_pass = mixed or (r > 0 and lo_out < zero_point)
    low_v, high_v = 0, None
    if bs_clamp:
        low_v, high_v = _clamp_thresholds(
            scales, s1, lo_out - zero_point, hi, lo is None, int(bound.max())
        )
    offsets = np.zeros(len(d), dtype=np.int64)
    scale_q = 0
    if mixed:  # the sign pass writes ±2^(d_c - 1 - q); EW scales it by 2^q
        scale_q = max(int(d[live].max()) - 1 - SIGN_OFFSET_BITS, 0)
        offsets = np.where(d - 1 - scale_q >= 0, np.exp2(np.maximum(d - 1 - scale_q, 0)), 0)
        offsets = np.minimum(offsets, 1 << SIGN_OFFSET_BITS).astype(np.int64)

    def bs_out(v: np.ndarray, a: int) -> np.ndarray:
        """BS: bias (in v) less the clamp's low threshold, times m1, shifted; ReLU, ReLUX; and
        BN's ALU restoring the threshold (exact: low_v·m1 is a multiple of 2^s1)."""
        if not bs_clamp:
            return _rs_away(v * a, s1)
        u = np.maximum(_rs_away((v - low_v) * a, s1), 0)
        if high_v is not None:
            u = np.minimum(u, ((high_v - low_v) * a) >> s1)
        return u + ((low_v * a) >> s1)

    def hardware(v: np.ndarray, c: int, a: int, b: int, offset: int = 0) -> np.ndarray:
        # BS, then BN (its ALU adds the offset first), at the total shift of the option
        h = _rs_away((bs_out(v, a) + offset) * b, shift - s1)
        if mixed:
            h = h + (np.where(v >= 1, offsets[c], -offsets[c]) << scale_q)
            if lo is not None:
                h = np.maximum(h, 0)
            if hi is not None:
                h = np.minimum(h, hi << r)
            return _rs_up(h, r)
        if lo is not None and not bs_clamp:
            h = np.maximum(h, 0)
        if hi is not None and not bs_clamp:
            h = np.minimum(h, hi << r)
        return _rs_up(h - (h < 0), r) if sign_pass else _rs_up(h, r)

    def out_codes(y: np.ndarray) -> np.ndarray:
        return np.clip(y + zero_point, lo_out, hi_out)

    # The accumulators whose output is not the same saturated code either way (plus one).
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        low = np.floor((lo_out - zero_point - 1) * 2.0**r / real) - 1
        high = np.ceil((hi_out - zero_point + 1) * 2.0**r / real) + 1
    v_range = (np.maximum(low, -bound), np.minimum(high, bound))
    y_range = (lo_out - zero_point - 1, hi_out - zero_point + 1)

    def deviation(c: int) -> np.ndarray:
        """Per unit of accumulator; BS's rounding adds at most half a BS unit, b/2^(S - s1)."""
        a, b = m1s[c].astype(np.float64), m2s[c].astype(np.float64)
        product = np.abs(a * b * 2.0**-shift - real[c])
        return product + b * 2.0 ** -(shift - s1) / 2 / max(float(bound[c]), 1.0)

    def alu_offsets(v: np.ndarray, c: int, a: int, b: int) -> tuple[int, int]:
        """The BN ALU offsets (in BS output units) that make BN round ``v`` to TFLite's first
        rounding: H = rs_away(z, S2) with z = (u + offset)·b equals h for z in
        [(2h - 1)·2^(S2-1), (2h + 1)·2^(S2-1)), ends mirrored for h <= 0 (half away)."""
        s2 = shift - s1
        u = bs_out(v, a)
        h = scales.stage1(v, c) << (r - int(right[c]))  # channel c's h at the common r
        half = 1 << (s2 - 1) if s2 > 0 else 0
        z_lo = (2 * h - 1) * half + (h <= 0)
        z_hi = (2 * h + 1) * half - (h >= 0)
        if s2 == 0:
            z_lo, z_hi = h, h
        lo_off = -((-z_lo) // b) - u
        hi_off = z_hi // b - u
        return int(lo_off.max()), int(hi_off.min())

    best = None
    for shift, m1s, m2s in options:
        m1, m2, off, left = _verified(
            scales,
            v_range,
            y_range,
            (m1s, m2s),
            hardware,
            out_codes,
            deviation,
            None if mixed else alu_offsets,
            live & (window if mixed else True),
        )
        if best is None or left < best[0]:
            best = (left, shift, m1, m2, off)
        # Other shifts give other factor pairs; worth it where one multiplier serves all
        # channels (per-tensor weights), not for every channel of a per-channel layer.
        if left == 0 or len(np.unique(real)) > 1:
            break
    _, shift, m1, m2, off = best
    if bs_clamp:  # BN's ALU also restores the low threshold BS subtracted
        off = off + ((low_v * m1) >> s1)
        bias = bias - low_v
    c1, c2, co = _common(m1), _common(m2), _common(off)
    bs = DpuStage(alu_memory=True, mul=c1, mul_memory=c1 is None, mul_shift=s1)
    if bs_clamp:
        bs = replace(
            bs,
            relu=True,
            relux=None if high_v is None else ((high_v - low_v) * c1) >> s1,
        )
    bn = DpuStage(
        alu=co or None,
        alu_memory=co is None,
        mul=c2,
        mul_memory=c2 is None,
        mul_shift=shift - s1,
    )
    bs_words = _words([bias] + ([m1] if c1 is None else []))
    bn_columns = ([off] if co is None else []) + ([m2] if c2 is None else [])
    bn_words = _words(bn_columns) if bn_columns else None
    relux = None if hi is None or bs_clamp else hi << r
    if not sign_pass:
        bn = replace(bn, relu=lo is not None and not bs_clamp, relux=relux)
        out = OutputConvert(offset=zero_point, scale=1, shift=r, round_half_up=True)
        return Plan(bs, bn, out, bs_words, bn_words)
    if not mixed:
        sign = Plan(bs, bn, OutputConvert(SIGN_OFFSET, SIGN_SCALE, 0), bs_words, bn_words)
        ew = EwPlan(scale=1, shift=SIGN_SHIFT, offset=-INT8_MIN, add_first=True)
        out = OutputConvert((zero_point << r) - 1, 1, r, add_first=True, round_half_up=True)
        return Plan(bs, bn, out, bs_words, bn_words, ew, sign)
    # Sign pass: BS ReLU/ReLUX turn v into {0, 2} (v >= 1), BN subtracts 1 and scales by the
    # channel's offset: +-2^(d_c - 1 - q). The main pass adds it, times 2^q, before the shift.
    two = 2
    sign_bs = DpuStage(alu_memory=True, mul=two, relu=True, relux=two)
    c_off = _common(offsets)
    sign_bn = DpuStage(alu=-1, mul=c_off, mul_memory=c_off is None)
    sign_out = OutputConvert(offset=0, scale=1, shift=0)
    off_words = _words([offsets]) if c_off is None else None
    sign = Plan(sign_bs, sign_bn, sign_out, _words([bias]), off_words)
    ew = EwPlan(1 << scale_q, 0, 0, add_first=False, relu=lo is not None, relux=relux)
    out = OutputConvert(offset=zero_point, scale=1, shift=r, round_half_up=True)
    return Plan(bs, bn, out, bs_words, bn_words, ew, sign)


def _clamp_thresholds(
    scales: Scales, s1: int, lo: int, hi: int | None, saturating: bool, span: int
) -> tuple[int, int | None]:
    """The accumulators at which BS clamps (multiples of 2^s1, so that subtracting one before
    the multiplier and adding it back after is exact): the low one inside the range of
    accumulators TFLite maps to ``lo``, the high one inside ``hi``'s; no high one without a
    maximum. ``saturating``: ``lo`` is the type's minimum, where every lower accumulator gives
    the same output anyway. Thresholds beyond the accumulators' range (``span``) move to its
    edge, which keeps ``v`` minus the low one within int32 after BS's shift."""
    grid = 1 << s1

    def first(y: int) -> int:  # the smallest accumulator whose output is at least y
        guess = int(np.floor(scales.steps(0, y, y)[0]))
        v = np.arange(guess - STEP_WINDOW - 1, guess + STEP_WINDOW + 2, dtype=np.int64)
        return int(v[np.argmax(scales.reference(v, 0) >= y)])

    edge = (span // grid + 1) * grid
    start, end = first(lo), first(lo + 1) - 1
    low = (end // grid) * grid  # the highest: BS then sees the smallest values
    if low < -edge:
        low = -edge  # no accumulator in range reaches the minimum
    elif low < start and not saturating:
        raise PlanError(f"no accumulator on BS's grid of {grid} gives the minimum {lo}")
    if hi is None:
        return low, None
    start, end = first(hi), first(hi + 1) - 1
    high = (end // grid) * grid
    if high > edge:
        high = edge
    elif high < start:
        raise PlanError(f"no accumulator on BS's grid of {grid} gives the maximum {hi}")
    return low, high


def _rs_up(v: np.ndarray, n: int) -> np.ndarray:
    """The output convertor's rounding right shift (CVT_ROUND = 1: half up)."""
    return (v + (1 << (n - 1))) >> n if n > 0 else v


def _rs_away(v: np.ndarray, n: int) -> np.ndarray:
    """The BS/BN multipliers' rounding right shift (half away from zero)."""
    if n <= 0:
        return v
    half = 1 << (n - 1)
    # floor((v + half) / 2^n), less one where v < 0 sits exactly on a half (away from zero)
    up = (v + half) >> n
    return up - ((v < 0) & ((v & ((half << 1) - 1)) == half))


def plan_add(
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
    # ReLU clamps at the zero point; with the zero point at the type's minimum it is free, and
    # ReLUX (a maximum) needs it.
    relu = add_lo > qmin or (add_hi < qmax and out_zero == qmin)
    if add_lo > qmin and add_lo != out_zero:
        raise PlanError(f"ADD activation minimum {add_lo} is not the zero point {out_zero}")
    if add_hi < qmax and not relu:
        raise PlanError("an ADD activation maximum without ReLU (ReLUX acts only after ReLU)")
    best: tuple[int, tuple[int, int, int, int]] | None = None
    for k, kb, scale, sh in _add_candidates(conv_scale / out_scale, other_scale / out_scale, k_max):
        v = (qc - conv_zero) * k + (qb - other_zero) * kb
        if relu:
            v = np.maximum(v, 0)
        y = np.clip(_rs_up(v * scale, sh) + out_zero - offset, INT8_MIN, INT8_MAX) + offset
        wrong = int(np.count_nonzero(np.minimum(y, add_hi) != want))
        if best is None or wrong < best[0]:
            best = (wrong, (k, kb, scale, sh))
        if wrong == 0:
            break
    if best is None:
        raise PlanError("no ADD scaling fits the DPU's operand widths")
    k, kb, scale, sh = best[1]
    bn = DpuStage(
        alu=conv_zero - conv_lo, mul=k, mul_shift=0, relu=True, relux=(conv_hi - conv_lo) * k
    )
    relux = _largest_below(scale, sh, add_hi - out_zero) if add_hi < qmax else None
    ew_offset = (offset - other_zero) * kb + (conv_lo - conv_zero) * k
    ew = EwPlan(kb, 0, ew_offset, add_first=False, relu=relu, relux=relux)
    out = OutputConvert(offset=out_zero - offset, scale=scale, shift=sh, round_half_up=True)
    return Plan(bs, bn, out, bs_words, None, ew)


def _add_candidates(a: float, b: float, k_max: int) -> list[tuple[int, int, int, int]]:
    """(K, K_b, S, sh) with the smallest worst-case error over the input range,
    ``|K·S/2^sh - a| + |K_b·S/2^sh - b|`` (``a = s_c/s_out``, ``b = s_b/s_out``), best first:
    the K_CANDIDATES that plan B then counts exactly. Every K up to ``k_max`` is scored."""
    k = np.arange(1, k_max + 1, dtype=np.float64)
    sh = np.minimum(MAX_CVT_SHIFT, np.floor(np.log2(UINT16_MAX * k / a)))
    rows = []
    for s_round in (np.floor, np.ceil):
        scale = s_round(a / k * np.exp2(sh))
        for kb_round in (np.floor, np.ceil):
            kb = kb_round(k * b / a)
            unit = scale * np.exp2(-sh)
            err = np.abs(k * unit - a) + np.abs(kb * unit - b)
            ok = (scale >= 1) & (scale <= UINT16_MAX) & (kb <= UINT16_MAX) & (kb >= 0)
            rows.append((np.where(ok, err, np.inf), kb, scale))
    errs = np.stack([r[0] for r in rows])
    flat = errs.reshape(-1)
    keep = min(K_CANDIDATES, flat.size)
    pick = np.argpartition(flat, keep - 1)[:keep]
    pick = pick[np.argsort(flat[pick], kind="stable")]
    out = []
    for flat in pick:
        which, i = divmod(int(flat), len(k))
        if not np.isfinite(errs[which, i]):
            break
        out.append((i + 1, int(rows[which][1][i]), int(rows[which][2][i]), int(sh[i])))
    return out


def _largest_below(scale: int, sh: int, limit: int) -> int:
    """The largest v with rs_up(v·scale, sh) <= limit."""
    # rs_up(v·S, sh) = floor((v·S + half) / 2^sh) <= limit  <=>  v·S < (limit + 1)·2^sh - half
    half = (1 << (sh - 1)) if sh > 0 else 0
    bound = ((limit + 1) << sh) - half
    return -(-bound // scale) - 1
