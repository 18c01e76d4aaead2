"""Integer arithmetic of the NPU's convertors and truncations: rounding right shifts and
saturation, vectorised over int64 numpy arrays and exact.

The rounding modes are the switches of :class:`NpuModelOptions`; what each register's rounding
field selects is documented in ``docs/rocket-npu-model.md`` §4.
"""

from __future__ import annotations

import numpy as np

from ...drivers.rocket import rocket_regs as R

INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# Values reaching a shift stay below 2^61 in magnitude (int32 data times a 16-bit operand), so
# every shift of 62 or more gives the same result as 62.
MAX_SHIFT = 62


def rshift(v: np.ndarray, n: int, mode: str) -> np.ndarray:
    """``v / 2^n`` rounded per ``mode`` (half_even, half_up, half_away, floor); int64."""
    if n <= 0:
        return v
    n = min(n, MAX_SHIFT)
    if mode == "floor":
        return v >> n
    half = 1 << (n - 1)
    if mode == "half_up":
        return (v + half) >> n
    if mode == "half_away":
        mag = (np.abs(v) + half) >> n
        return np.where(v < 0, -mag, mag)
    if mode == "half_even":
        q = v >> n
        r = v - (q << n)
        return q + (r > half) + ((r == half) & (q % 2 == 1))
    raise ValueError(f"unknown rounding mode {mode!r}")


def cvt_round_mode(field_value: int, forced: str) -> str:
    """The rounding of an OUT_CVT / EW_CVT shift: the register's CVT_ROUND field [TRM-doc]
    unless the ``round_mode`` switch forces one."""
    if forced != "register":
        return forced
    return "half_up" if field_value == R.CvtRound.ROUND_HALF_UP else "half_even"


def saturate(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return np.clip(v, lo, hi)
