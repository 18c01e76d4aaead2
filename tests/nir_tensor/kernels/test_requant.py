"""The folded output stage against the scalar gemmlowp formula it replaces."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.nir_tensor.kernels.requant import make_output_stage
from mesa_npu.util.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier

PROFILE = settings.get_profile("nir_tensor.kernels")


@settings(PROFILE)
@given(
    channels=st.integers(1, 8),
    log_scale=st.floats(-20.0, -0.01),
    spread=st.floats(0.0, 3.0),
    zero_point=st.integers(-32768, 32767),
    magnitude=st.integers(1, 30),
    declared_bound=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_output_stage_matches_scalar_reference(
    channels, log_scale, spread, zero_point, magnitude, declared_bound, seed
):
    rng = np.random.default_rng(seed)
    reals = np.exp(log_scale + rng.uniform(-spread, 0, channels))
    multipliers, shifts = (np.array(v) for v in zip(*map(quantize_multiplier, reals), strict=True))
    bias = rng.integers(-(2**20), 2**20, channels)
    lo, hi = sorted(rng.integers(-40000, 40000, 2))
    stage = make_output_stage(
        multipliers,
        shifts,
        bias=bias,
        zero_point=zero_point,
        lo=int(lo),
        hi=int(hi),
        dtype=np.int32,
        acc_bound=(1 << magnitude) if declared_bound else 1 << 31,
    )
    acc = rng.integers(-(1 << magnitude), 1 << magnitude, (257, channels))
    acc[:3] = 0
    want = multiply_by_quantized_multiplier(acc + bias, multipliers, shifts) + zero_point
    want = np.clip(want, lo, hi)
    assert np.array_equal(stage(acc.astype(np.float64)), want)
    planar = np.ascontiguousarray(acc.T.reshape(1, channels, 257, 1))
    assert np.array_equal(stage.planar(planar).reshape(channels, 257).T, want)


def test_exact_halves_round_like_gemmlowp():
    """Multiplier 0.5 puts every odd accumulator on a rounding boundary of both roundings."""
    acc = np.arange(-5000, 5000)
    for right in range(8):
        stage = make_output_stage(
            1 << 30,
            -right,
            bias=None,
            zero_point=3,
            lo=-(10**9),
            hi=10**9,
            dtype=np.int64,
            acc_bound=5000,
        )
        want = multiply_by_quantized_multiplier(acc, 1 << 30, -right) + 3
        assert np.array_equal(stage(acc), want), right
