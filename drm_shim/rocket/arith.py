"""Integer arithmetic of the NPU's convertors and truncations (rounding right shifts and
saturation), computed exactly on float64 arrays that hold integers.

Why float64: every value of the pipeline is an integer below 2^53 in magnitude (accumulators
below 2^38, int32 data times a 16-bit operand below 2^48), so float64 holds it exactly, and a
shift is a multiplication by a power of two, which is exact too. numpy's float rounding
functions then give each rounding mode in one pass (``rint`` rounds half to even), where int64
needs four or five passes per shift. The integers are the hardware's; only their container is
a float.

The rounding modes are the switches of :class:`NpuModelOptions`; what each register's rounding
field selects is documented in ``docs/rocket-npu-model.md`` §4.
"""

from __future__ import annotations

import numpy as np

from ...drivers.rocket import rocket_regs as R

INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# The largest magnitude of a value reaching a shift is below 2^48, so any shift of 60 or more
# gives 0 (or -1 for floor), the same as 60; the clamp keeps 2^-n a normal float.
MAX_SHIFT = 60


def rshift(
    v: np.ndarray,
    n: int,
    mode: str,
    scale: int | np.ndarray = 1,
    offset: int = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``round(v * scale / 2^n) + offset`` per ``mode`` (half_even, half_up, half_away, floor),
    as float64 integers in ``out`` (a float64 array, possibly ``v`` itself) or a new array.
    ``scale`` may be a per-channel array (broadcast along the last axis).

    One multiplication scales and shifts (``scale * 2^-n`` is exact, and so is the product while
    ``v * scale`` stays below 2^53); adding 0.5 or an integer offset to a value of at most n
    fraction bits and magnitude below 2^52 is exact too.
    """
    n = min(max(n, 0), MAX_SHIFT)
    factor = scale * 2.0**-n
    if np.isscalar(factor) and factor == 1.0 and out is v and v.dtype == np.float64:
        t = v
    else:
        t = np.multiply(v, factor, dtype=np.float64, out=out)
    if n == 0 or mode == "floor":
        if n:
            np.floor(t, out=t)
    elif mode == "half_even":
        np.rint(t, out=t)
    elif mode == "half_up":
        t += 0.5 + offset
        return np.floor(t, out=t)
    elif mode == "half_away":
        t += np.copysign(0.5, t)
        np.trunc(t, out=t)
    else:
        raise ValueError(f"unknown rounding mode {mode!r}")
    if offset:
        t += offset
    return t


def shifted_bound(bound: float, scale: float, n: int) -> float:
    """A bound on ``|rshift(v, n, mode, scale)|`` given ``|v| <= bound``."""
    return bound * abs(scale) * 2.0 ** -min(max(n, 0), MAX_SHIFT) + 1


def cvt_round_mode(field_value: int, forced: str) -> str:
    """The rounding of an OUT_CVT / EW_CVT shift: the register's CVT_ROUND field [TRM-doc]
    unless the ``round_mode`` switch forces one."""
    if forced != "register":
        return forced
    return "half_up" if field_value == R.CvtRound.ROUND_HALF_UP else "half_even"


def saturate(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Clamp in place (every caller owns ``v``)."""
    return np.clip(v, lo, hi, out=v)


def saturate_int8(v: np.ndarray) -> np.ndarray:
    """Clamp float integers to int8 and convert, in one pass."""
    out = np.empty(v.shape, dtype=np.int8)
    return np.clip(v, INT8_MIN, INT8_MAX, out=out, casting="unsafe")


def saturate_int32(v: np.ndarray, bound: float) -> tuple[np.ndarray, float]:
    """Saturate to int32 in place; returns the values and a bound on their magnitude. Skipped
    when ``bound`` (a bound on ``|v|``) or, failing that, the values' actual extremes (two
    read-only passes, cheaper than the clip's read and write) show no value is out of range."""
    if bound <= INT32_MAX:
        return v, bound
    if v.size:
        lo, hi = float(v.min()), float(v.max())
        if INT32_MIN <= lo and hi <= INT32_MAX:
            return v, max(-lo, hi)
    return np.clip(v, INT32_MIN, INT32_MAX, out=v), float(INT32_MAX + 1)
