"""CONCATENATION against BUILTIN_REF: uint8 inputs are requantized to the output's scale."""

from __future__ import annotations

import numpy as np
import pytest

from mesa_npu.frontends.teflon.mapping import map_operation
from mesa_npu.frontends.teflon.tflite import parse_model
from mesa_npu.frontends.teflon.writer import options
from mesa_npu.gallium.tensor import ElementType as ET
from mesa_npu.nir_tensor.builder import build_graph
from mesa_npu.nir_tensor.evaluate import kernel_problem

DTYPES = {"u8": ET.UINT8, "i8": ET.INT8, "i16": ET.INT16}
LAYOUTS = [
    ([(1, 4, 4, 3), (1, 4, 4, 5)], 3),
    ([(1, 2, 4, 3), (1, 3, 4, 3), (1, 1, 4, 3)], 1),
    ([(2, 7), (2, 1)], 1),
    ([(3, 5), (2, 5)], 0),
]


def concat_model(kit, rng, dt, shapes, axis, mixed):
    qo = kit.quant(rng, dt)
    inputs = []
    for i, shape in enumerate(shapes):
        q = kit.quant(rng, dt) if mixed and i != 1 else qo
        inputs.append(dict(shape=shape, dtype=dt, scale=q[0], zero_point=q[1]))
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return kit.single_op(
        "CONCATENATION",
        inputs,
        [dict(shape=tuple(out), dtype=dt, scale=qo[0], zero_point=qo[1])],
        options("CONCATENATION", axis=axis),
        version=2,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes,axis", LAYOUTS, ids=lambda v: str(v).replace(" ", ""))
def test_concat(oracle, kit, dtype, shapes, axis):
    for trial in range(4):
        rng = np.random.default_rng(trial)
        # Only uint8 may mix quantizations: TFLite rejects mixed int8, copies int16 as is.
        model = concat_model(kit, rng, DTYPES[dtype], shapes, axis, mixed=dtype == "u8")
        oracle(model, trial, f"CONCAT {dtype} {shapes}")


def test_int8_concat_with_mixed_quantization_is_declined(kit):
    model = concat_model(kit, np.random.default_rng(1), ET.INT8, LAYOUTS[0][0], 3, mixed=True)
    parsed = parse_model(model)
    node = build_graph([map_operation(parsed.ops[0], parsed)]).nodes[0]
    assert "int8 CONCATENATION with differing quantization" in kernel_problem(node)
