"""Combinations the reference kernels decline say why, through the device's support query."""

from __future__ import annotations

import pytest

from mesa_npu.frontends.teflon.mapping import map_operation
from mesa_npu.frontends.teflon.tflite import parse_model
from mesa_npu.frontends.teflon.writer import options
from mesa_npu.gallium.loader import open_device
from mesa_npu.gallium.operation import PipeMlOperation
from mesa_npu.gallium.tensor import ElementType as ET


def reason(kit, builtin, dtype, out_dtype=None, opts=None, version=1, out_scale=0.05):
    shape = (1, 2, 3, 4)
    model = kit.single_op(
        builtin,
        [dict(shape=shape, dtype=dtype, scale=0.05, zero_point=0)],
        [dict(shape=shape, dtype=out_dtype or dtype, scale=out_scale, zero_point=0)],
        opts,
        version,
    )
    parsed = parse_model(model)
    op = map_operation(parsed.ops[0], parsed)
    assert isinstance(op, PipeMlOperation), op
    return open_device("reference").operation_supported(op)


@pytest.mark.parametrize(
    "builtin,dtype,out_dtype,expected",
    [
        ("ABS", ET.UINT8, None, "uint8 ABS"),
        ("LOGISTIC", ET.INT16, None, "i16 LOGISTIC"),
        ("TANH", ET.INT16, None, "i16 TANH"),
        ("HARD_SWISH", ET.INT16, None, "HARD_SWISH"),
        ("QUANTIZE", ET.UINT8, ET.INT16, "QUANTIZE"),
    ],
)
def test_declined_with_reason(kit, builtin, dtype, out_dtype, expected):
    opts = {"ABS": options("ABS"), "SOFTMAX": options("SOFTMAX", beta=1.0)}.get(builtin)
    if builtin in ("HARD_SWISH", "QUANTIZE"):
        opts = options(builtin)
    got = reason(kit, builtin, dtype, out_dtype, opts)
    assert got is not None and expected in got, got


def test_supported_combination_has_no_reason(kit):
    assert reason(kit, "RELU", ET.INT8) is None
