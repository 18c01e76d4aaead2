"""The NN output stage has an exact integer path and a float64 fast path used when
``max|acc| * multiplier < 2**53``; both must give the same bytes."""

from __future__ import annotations

import numpy as np
import pytest

from mesa_npu.drm_shim.etnaviv import nn_compute as C
from mesa_npu.drm_shim.etnaviv.switches import Rounding


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("multiplier,shift", [(1 << 15, 16), (40503, 27), ((1 << 23) + 12345, 34)])
@pytest.mark.parametrize("relu", [False, True])
def test_float_path_equals_integer_path(rounding, multiplier, shift, relu):
    rng = np.random.default_rng(multiplier % 97 + shift)
    limit = C.EXACT_FLOAT // multiplier
    acc = rng.integers(-limit // 2, limit // 2, size=(3, 40, 41))
    acc[0, 0, :20] = np.arange(-10, 10) * 2 + 1  # odd: exact ties for (2**15, 16)
    bias = rng.integers(-(1 << 20), 1 << 20, size=3)
    bias[0] = 0
    want = C.requantize(acc + bias[:, None, None], multiplier, shift, rounding, relu, 37)
    got = C.requantize_float(acc.astype(np.float64), bias.astype(np.float64), multiplier,
                             shift, rounding, relu, 37)  # fmt: skip
    np.testing.assert_array_equal(got, want)


def test_integer_path_shift_edges():
    acc = np.array([-5, -4, -3, -1, 0, 1, 3, 4, 5], dtype=np.int64)
    np.testing.assert_array_equal(C.shift_round(acc.copy(), 1, Rounding.HALF_AWAY_FROM_ZERO),
                                  [-3, -2, -2, -1, 0, 1, 2, 2, 3])  # fmt: skip
    np.testing.assert_array_equal(C.shift_round(acc.copy(), 1, Rounding.HALF_EVEN),
                                  [-2, -2, -2, 0, 0, 0, 2, 2, 2])  # fmt: skip
    assert not C.shift_round(acc.copy(), 70, Rounding.HALF_UP).any()
