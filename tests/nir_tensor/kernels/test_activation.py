"""RELU/RELU6/RELU_N1_TO_1, LOGISTIC, TANH, HARD_SWISH, ABS and QUANTIZE against BUILTIN_REF."""

from __future__ import annotations

import numpy as np
import pytest

from mesa_npu.frontends.teflon.writer import options
from mesa_npu.gallium.tensor import ElementType as ET

DTYPES = {"u8": ET.UINT8, "i8": ET.INT8, "i16": ET.INT16}
OPTIONS = {"HARD_SWISH", "QUANTIZE", "ABS"}  # builtins whose writer needs an options table
VERSION_1 = {"HARD_SWISH", "RELU_N1_TO_1"}  # BUILTIN_REF registers only version 1


def unary_model(kit, rng, name, dt, out_dt=None, out_quant=None, same_quant=False):
    out_dt = out_dt or dt
    qi, qo = kit.quant(rng, dt), kit.quant(rng, out_dt)
    if same_quant:
        qo = qi
    if out_quant is not None:
        qo = out_quant
    shape = (1, int(rng.integers(1, 5)), int(rng.integers(1, 9)), int(rng.integers(1, 6)))
    return kit.single_op(
        name,
        [dict(shape=shape, dtype=dt, scale=qi[0], zero_point=qi[1])],
        [dict(shape=shape, dtype=out_dt, scale=kit.scale(qo[0]), zero_point=qo[1])],
        options(name) if name in OPTIONS else None,
        version=1 if name in VERSION_1 else 2,
    )


CASES = [
    ("RELU", "u8"),
    ("RELU", "i8"),
    ("RELU", "i16"),
    ("RELU6", "u8"),
    ("RELU6", "i8"),
    ("RELU6", "i16"),
    ("RELU_N1_TO_1", "u8"),
    ("RELU_N1_TO_1", "i8"),
    ("HARD_SWISH", "u8"),
    ("HARD_SWISH", "i8"),
    ("ABS", "i8"),
    ("ABS", "i16"),
]


@pytest.mark.parametrize("name,dtype", CASES)
def test_unary(oracle, kit, name, dtype):
    for trial in range(8):
        rng = np.random.default_rng(trial)
        model = unary_model(kit, rng, name, DTYPES[dtype], same_quant=trial % 3 == 0)
        oracle(model, trial, f"{name} {dtype} #{trial}")


def test_relu6_bound_rounds_half_away_from_zero(oracle, kit):
    """6 / 0.48 is exactly 12.5 in float32: TFLite's bound is zp + 13, not zp + 12."""
    model = kit.single_op(
        "RELU6",
        [dict(shape=(1, 4, 4, 8), dtype=ET.UINT8, scale=0.5, zero_point=10)],
        [dict(shape=(1, 4, 4, 8), dtype=ET.UINT8, scale=kit.scale(0.48), zero_point=3)],
    )
    oracle(model, 0)


@pytest.mark.parametrize("name", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize("dtype", ["u8", "i8"])
def test_float_table(oracle, kit, name, dtype):
    """Tables TFLite fills in float32 through libm (output scale 1/256 for LOGISTIC)."""
    dt = DTYPES[dtype]
    for trial in range(10):
        rng = np.random.default_rng(100 + trial)
        if name == "LOGISTIC":
            out = (1 / 256, dt.qmin)
        else:
            out = (1 / 128, 128 if dt is ET.UINT8 else 0) if trial % 2 else None
        oracle(unary_model(kit, rng, name, dt, out_quant=out), trial, f"{name} {dtype} #{trial}")


@pytest.mark.parametrize(
    "src,dst",
    [("u8", "u8"), ("u8", "i8"), ("i8", "u8"), ("i8", "i8"), ("i16", "i8"), ("i16", "i16")],
)
def test_quantize(oracle, kit, src, dst):
    for trial in range(8):
        rng = np.random.default_rng(200 + trial)
        model = unary_model(kit, rng, "QUANTIZE", DTYPES[src], out_dt=DTYPES[dst])
        oracle(model, trial, f"QUANTIZE {src}->{dst} #{trial}")
