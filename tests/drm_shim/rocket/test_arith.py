"""The model's rounding shifts on float64 integers against exact rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.drm_shim.rocket.arith import rshift

MODES = ("half_even", "half_up", "half_away", "floor")


def exact(v: int, n: int, scale: int, offset: int, mode: str) -> int:
    q = Fraction(v * scale, 2**n)
    lo = q.numerator // q.denominator
    frac = q - lo
    if frac == 0 or mode == "floor":
        r = lo
    elif frac != Fraction(1, 2):
        r = lo + (frac > Fraction(1, 2))
    elif mode == "half_up":
        r = lo + 1
    elif mode == "half_away":
        r = lo + 1 if q > 0 else lo
    else:
        r = lo + lo % 2
    return r + offset


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=8),
    n=st.integers(0, 62),
    scale=st.integers(1, 2**16 - 1),
    offset=st.integers(-(2**31), 2**31 - 1),
    mode=st.sampled_from(MODES),
    in_place=st.booleans(),
)
def test_rshift_is_exact(values, n, scale, offset, mode, in_place):
    v = np.array(values, dtype=np.float64)
    got = rshift(v, n, mode, scale, offset, out=v if in_place else None)
    want = [exact(x, min(n, 60), scale, offset, mode) for x in values]
    assert got.tolist() == want
    assert (got is v) == in_place or (n == 0 and scale == 1 and got is v)


def test_rshift_halves():
    v = np.arange(-8, 8, dtype=np.float64)
    assert rshift(v, 1, "half_even").tolist() == [
        -4,
        -4,
        -3,
        -2,
        -2,
        -2,
        -1,
        0,
        0,
        0,
        1,
        2,
        2,
        2,
        3,
        4,
    ]
    assert rshift(v, 1, "half_away").tolist()[:4] == [-4, -4, -3, -3]
    assert rshift(v, 1, "half_up", offset=10).tolist()[:4] == [6, 7, 7, 8]
