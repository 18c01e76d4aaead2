"""The TP unit's piecewise-linear lookup: fp21 numbers and the 1024-entry table (brief §6).

fp21 = 1 sign bit, 5 exponent bits (bias 15), 15 mantissa bits. The table index is the top 10
bits of an input's fp21 code (sign, exponent, 4 mantissa bits); each entry is an fp21 output
code. Between entries the model interpolates linearly on the 11 dropped bits (switch
``pwl_interpolation``; ``docs/etnaviv-npu-model.md`` §4).
"""

from __future__ import annotations

import numpy as np

from .switches import PwlLookup

MANTISSA_BITS = 15
EXPONENT_BITS = 5
EXPONENT_BIAS = 15
SIGN_BIT = MANTISSA_BITS + EXPONENT_BITS  # bit 20
LUT_ENTRIES = 1024
LUT_BYTES = LUT_ENTRIES * 4
INDEX_BITS = 10  # log2(LUT_ENTRIES)
INDEX_SHIFT = SIGN_BIT + 1 - INDEX_BITS  # 21-bit code, 10-bit index: 11 dropped bits
HALF = LUT_ENTRIES // 2  # entries per sign
MAX_EXPONENT = (1 << EXPONENT_BITS) - 1  # 31: decoded as the largest finite value


def to_fp21(values: np.ndarray) -> np.ndarray:
    """fp21 codes of integer ``values`` (|v| < 2**16, exact), int64."""
    v = np.asarray(values, dtype=np.float64)
    sign = (v < 0).astype(np.int64)
    mag = np.abs(v)
    frac, exp = np.frexp(mag)  # mag = frac * 2**exp, frac in [0.5, 1)
    biased = np.where(mag > 0, exp - 1 + EXPONENT_BIAS, 0).astype(np.int64)
    mant = np.where(mag > 0, (frac * 2 - 1) * (1 << MANTISSA_BITS), 0).astype(np.int64)
    return (sign << SIGN_BIT) + (biased << MANTISSA_BITS) + mant


def from_fp21(codes: np.ndarray) -> np.ndarray:
    """Real values of fp21 codes; exponent 0 is zero, exponent 31 the largest finite value."""
    codes = np.asarray(codes, dtype=np.int64)
    sign = (codes >> SIGN_BIT) % 2
    biased = (codes >> MANTISSA_BITS) % (1 << EXPONENT_BITS)
    mant = codes % (1 << MANTISSA_BITS)
    top = biased == MAX_EXPONENT
    biased = np.where(top, MAX_EXPONENT - 1, biased)
    mant = np.where(top, (1 << MANTISSA_BITS) - 1, mant)
    mag = (1 + mant / (1 << MANTISSA_BITS)) * np.exp2(biased - EXPONENT_BIAS)
    mag = np.where(biased == 0, 0.0, mag)
    return np.where(sign == 1, -mag, mag)


def lookup(table: np.ndarray, values: np.ndarray, mode: PwlLookup) -> np.ndarray:
    """Pass integer ``values`` through the table; returns real values."""
    code = to_fp21(values)
    index = code >> INDEX_SHIFT
    lut = table.astype(np.int64)
    out = lut[index]
    if mode is PwlLookup.LINEAR:
        frac = code % (1 << INDEX_SHIFT)
        nxt = np.where(index % HALF == HALF - 1, index, index + 1)
        step = (lut[nxt] - out) * frac
        out = out + np.floor_divide(step + (1 << (INDEX_SHIFT - 1)), 1 << INDEX_SHIFT)
    return from_fp21(out)
