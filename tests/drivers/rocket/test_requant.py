"""Requantization plans (drivers/rocket/requant.py) run through an independent transcription of
the DPU arithmetic (docs/rocket-npu-model.md §4: BS/BN multipliers round half away from zero,
EW/OUT round half up with CVT_ROUND = 1, every stage saturates to int32) and compared with
TFLite's reference output stages (util.fixedpoint), accumulator by accumulator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.drivers.rocket import requant
from mesa_npu.drivers.rocket.job import DpuStage, OutputConvert
from mesa_npu.gallium.operation import ElementwiseParams
from mesa_npu.gallium.tensor import ElementType, Quant
from mesa_npu.nir_tensor.ir import Node, Op, Tensor
from mesa_npu.nir_tensor.kernels.elementwise import add_sub_formula
from mesa_npu.util.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier

INT32 = (-(2**31), 2**31 - 1)
# Accumulators (of 65536 checked per channel) where a product closer to a rounding point than
# the DPU's 30-bit multiplier resolves may round the other way.
NEAR_TIES = 4


def rs(v: np.ndarray, n: int, mode: str) -> np.ndarray:
    if n <= 0:
        return v
    q, r = np.divmod(v, 2**n)  # floor division: exact on int64
    half = 2 ** (n - 1)
    if mode == "up":
        return q + (r >= half)
    # half away from zero
    up = (r > half) | ((r == half) & (v >= 0))
    return q + up


def sat32(v):
    return np.clip(v, *INT32)


def stage(v, s: DpuStage, words, c, alu_col=0, mul_col=None):
    if s.alu_memory:
        v = sat32(v + int(words[c, alu_col]))
    elif s.alu is not None:
        v = sat32(v + s.alu)
    m = int(words[c, mul_col]) if s.mul_memory else s.mul
    if m is not None:
        v = sat32(rs(v * m, s.mul_shift, "away"))
    if s.relu:
        v = np.maximum(v, 0)
        if s.relux is not None:
            v = np.minimum(v, s.relux)
    return v


def out_convert(v, o: OutputConvert):
    if o.add_first:
        y = rs((v + o.offset) * o.scale, o.shift, "up")
    else:
        y = rs(v * o.scale, o.shift, "up") + o.offset
    return np.clip(y, -128, 127)


def run_plan(plan: requant.Plan, v: np.ndarray, c: int) -> np.ndarray:
    """The stored int8 output for accumulators ``v`` (bias folded into ``v``) of channel c."""

    def dpu(p: requant.Plan, e=None):
        x = stage(v, p.bs, p.bs_words, c, 0, -1)
        x = stage(x, p.bn, p.bn_words, c, 0, -1)
        if e is not None:
            ew = p.ew
            if ew.add_first:
                e2 = rs((e + ew.offset) * ew.scale, ew.shift, "up")
            else:
                e2 = rs(e * ew.scale, ew.shift, "up") + ew.offset
            x = sat32(x + e2)
            if ew.relu:
                x = np.maximum(x, 0)
                if ew.relux is not None:
                    x = np.minimum(x, ew.relux)
        return out_convert(x, p.out)

    if plan.sign is None:
        return dpu(plan)
    return dpu(plan, dpu(plan.sign))


def tflite(scales: requant.Scales, v: np.ndarray, c: int) -> np.ndarray:
    return scales.reference(v, c)


@settings(max_examples=40, deadline=None)
@given(
    s_in=st.floats(0.002, 0.05),
    s_w=st.floats(0.0005, 0.05),
    s_out=st.floats(0.005, 0.3),
    z_out=st.integers(-128, 127),
    act=st.sampled_from(["none", "relu", "relu6"]),
    uint8=st.booleans(),
)
def test_per_tensor_plan_is_tflite_exactly(s_in, s_w, s_out, z_out, act, uint8):
    scales = requant.conv_scales(s_in, np.array([s_w] * 3), s_out, float_product=uint8)
    lo = hi = None
    if act != "none":
        lo = 0
        if act == "relu6":
            hi = min(127 - z_out, round(6 / s_out))
            if hi <= 0:
                return
        if z_out == 127:
            return
    bound = np.array([2**18, 2**19, 2**20])
    plan = requant.plan_conv(scales, np.zeros(3, np.int64), bound, zero_point=z_out, lo=lo, hi=hi)
    lo_q = -128 if lo is None else z_out
    hi_q = 127 if hi is None else min(127, z_out + hi)
    for c in range(3):
        v = np.arange(-(2**15), 2**15, dtype=np.int64) * 7 + c
        want = np.clip(tflite(scales, v, c) + z_out, lo_q, hi_q)
        got = run_plan(plan, v, c)
        # Exact unless TFLite's product lands closer to a rounding point than the 30-bit
        # multiplier can resolve (requant module doc): then 1 LSB, rarely.
        assert np.abs(got - want).max() <= 1
        assert np.count_nonzero(got != want) <= NEAR_TIES


@settings(max_examples=30, deadline=None)
@given(
    s_w=st.floats(0.0005, 0.05),
    s_out=st.floats(0.005, 0.3),
    z_out=st.integers(-100, 100),
    lo=st.integers(-60, 20),
    width=st.integers(2, 120),
)
def test_any_clamp_is_exact_with_per_tensor_weights(s_w, s_out, z_out, lo, width):
    """A minimum off the zero point (RELU_N1_TO_1) and a maximum without ReLU: BS clamps the
    accumulator at thresholds on its shift's grid."""
    if lo == 0:
        lo = None  # the type's minimum; a maximum alone
    hi = min((lo or 0) + width, 127 - z_out)
    if hi <= (lo or 0) or z_out + (lo or 0) < -128:
        return
    scales = requant.conv_scales(0.02, np.array([s_w] * 2), s_out, float_product=True)
    plan = requant.plan_conv(
        scales, np.zeros(2, np.int64), np.array([2**20, 2**20]), zero_point=z_out, lo=lo, hi=hi
    )
    assert plan.bs.relu and plan.bs.relux is not None and not plan.bn.relu
    lo_q = -128 if lo is None else z_out + lo
    for c in range(2):
        v = np.arange(-(2**15), 2**15, dtype=np.int64) * 9 + c
        want = np.clip(tflite(scales, v, c) + z_out, lo_q, z_out + hi)
        got = run_plan(plan, v, c)
        assert np.abs(got - want).max() <= 1
        assert np.count_nonzero(got != want) <= NEAR_TIES


def test_a_plan_without_visible_negatives_has_no_sign_pass():
    scales = requant.conv_scales(0.01, np.array([0.01]), 0.02, float_product=True)
    relu = requant.plan_conv(scales, np.zeros(1), np.array([2**20]), zero_point=-100, lo=0, hi=None)
    assert relu.sign is None
    floor = requant.plan_conv(
        scales, np.zeros(1), np.array([2**20]), zero_point=-128, lo=None, hi=None
    )
    assert floor.sign is None
    linear = requant.plan_conv(
        scales, np.zeros(1), np.array([2**20]), zero_point=3, lo=None, hi=None
    )
    assert linear.sign is not None and linear.ew is not None and linear.out.add_first


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**20), spread=st.integers(1, 6), z_out=st.integers(-128, 127))
def test_per_channel_plan_with_mixed_shifts_is_tflite_exactly(seed, spread, z_out):
    rng = np.random.default_rng(seed)
    s_w = 0.01 * 2.0 ** -rng.integers(0, spread + 1, size=6) * rng.uniform(0.5, 1.0, size=6)
    scales = requant.conv_scales(0.02, s_w, 0.05, float_product=False)
    bound = np.full(6, 2**20)
    plan = requant.plan_conv(
        scales, np.zeros(6, np.int64), bound, zero_point=z_out, lo=None, hi=None
    )
    assert plan.sign is not None or len(set(scales.right.tolist())) == 1
    for c in range(6):
        v = np.arange(-(2**16), 2**16, dtype=np.int64) * 3 + c
        want = np.clip(tflite(scales, v, c) + z_out, -128, 127)
        got = run_plan(plan, v, c)
        assert np.abs(got - want).max() <= 1
        assert np.count_nonzero(got != want) <= 2 * NEAR_TIES, f"channel {c}"


def test_fully_connected_rounds_once_in_double():
    scales = requant.fc_scales(0.013, np.array([0.0071, 0.0033]), 0.041)
    plan = requant.plan_conv(
        scales, np.zeros(2), np.array([2**20, 2**20]), zero_point=5, lo=None, hi=None
    )
    assert plan.sign is None and plan.out.shift == 0
    for c in range(2):
        v = np.arange(-(2**17), 2**17, dtype=np.int64)
        want = np.clip(np.round(v * scales.real[c] + 1e-12 * np.sign(v)) + 5, -128, 127)
        got = run_plan(plan, v, c)
        assert (got == want).mean() > 0.9999


def test_register_operands_fit_their_fields():
    scales = requant.conv_scales(0.5, np.array([0.9, 0.001]), 0.0001, float_product=False)
    plan = requant.plan_conv(
        scales, np.zeros(2), np.array([2**30, 2**10]), zero_point=0, lo=None, hi=None
    )
    for words in (plan.bs_words, plan.bn_words):
        if words is not None:
            assert words[:, -1].max() <= requant.INT16_MAX
    assert 0 <= plan.bn.mul_shift <= requant.MAX_MUL_SHIFT


def test_scales_reference_is_multiply_by_quantized_multiplier():
    rng = np.random.default_rng(3)
    for _ in range(50):
        m = rng.uniform(1e-4, 3.0)
        scales = requant.conv_scales(1.0, np.array([m]), 1.0, float_product=False)
        v = rng.integers(-(2**20), 2**20, 5000)
        m0, shift = quantize_multiplier(m)
        assert (scales.reference(v, 0) == multiply_by_quantized_multiplier(v, m0, shift)).all()


@pytest.mark.parametrize("dtype", [ElementType.UINT8, ElementType.INT8])
@pytest.mark.parametrize("seed", range(6))
def test_add_plan_matches_tflite_add_on_every_input_pair(dtype, seed):
    rng = np.random.default_rng(seed)
    qa = Quant(float(np.float32(rng.uniform(0.01, 0.5))), int(rng.integers(dtype.qmin, dtype.qmax)))
    qb = Quant(float(np.float32(rng.uniform(0.01, 0.5))), int(rng.integers(dtype.qmin, dtype.qmax)))
    qo = Quant(float(np.float32(rng.uniform(0.05, 0.6))), int(rng.integers(dtype.qmin, dtype.qmax)))
    shape = (1, 1, 1, 1)
    a, b, out = Tensor(shape, dtype, qa), Tensor(shape, dtype, qb), Tensor(shape, dtype, qo)
    formula = add_sub_formula(Node(Op.ADD, (a, b), (out,), ElementwiseParams(None)), 1)
    o = 0x80 if dtype is ElementType.UINT8 else 0
    # The identity convolution that carries input a (ml.lower_add_to_identity_conv).
    identity = requant.conv_scales(qa.scale, np.array([1.0]), qa.scale, float_product=False)
    plan = requant.plan_add(
        identity.multiplier,
        np.zeros(1, np.int64),
        conv_scale=qa.scale,
        conv_zero=qa.zero_point,
        conv_lo=dtype.qmin,
        conv_hi=dtype.qmax,
        other_scale=qb.scale,
        other_zero=qb.zero_point,
        out_scale=qo.scale,
        out_zero=qo.zero_point,
        offset=o,
        qmin=dtype.qmin,
        qmax=dtype.qmax,
        add_lo=dtype.qmin,
        add_hi=dtype.qmax,
        target=formula,
    )
    qa_all = np.arange(dtype.qmin, dtype.qmax + 1)[:, None]
    qb_all = np.arange(dtype.qmin, dtype.qmax + 1)[None, :]
    want = formula(qa_all, qb_all)
    # The identity conv's accumulator for input a is (q_a - z_a) with weight 1 and bias 0.
    v = np.broadcast_to(qa_all - qa.zero_point, want.shape).astype(np.int64)
    x = stage(v, plan.bs, plan.bs_words, 0, 0, -1)
    x = stage(x, plan.bn, plan.bn_words, 0, 0, -1)
    e = (qb_all - o).astype(np.int64)
    x = sat32(x + rs(e * plan.ew.scale, plan.ew.shift, "up") + plan.ew.offset)
    got = out_convert(x, plan.out) + o
    assert (got == want).mean() > 0.999
