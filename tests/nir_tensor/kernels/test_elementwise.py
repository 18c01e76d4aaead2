"""ADD, SUB and MUL (with broadcasting and fused activations) against BUILTIN_REF."""

from __future__ import annotations

import numpy as np
import pytest

from mesa_npu.frontends.teflon.writer import options
from mesa_npu.gallium.tensor import ElementType as ET

SHAPES = [
    ((1, 4, 4, 3), (1, 4, 4, 3)),
    ((1, 4, 4, 3), (1, 1, 1, 3)),
    ((2, 3, 5), (5,)),
    ((1, 4, 1, 3), (1, 1, 6, 1)),
    ((7,), (7,)),
    ((1, 3, 3, 8), (1, 3, 3, 1)),
]
DTYPES = {"u8": ET.UINT8, "i8": ET.INT8, "i16": ET.INT16}


def binary_model(kit, rng, op, dt, shape_a, shape_b, act, constant_b):
    qa, qb, qo = kit.quant(rng, dt), kit.quant(rng, dt), kit.quant(rng, dt)
    if op == "SUB" and dt is not ET.INT16:  # keep the output multiplier below 1
        qo = (kit.scale(max(qa[0], qb[0]) * rng.uniform(0.5, 3)), qo[1])
    b = dict(shape=shape_b, dtype=dt, scale=qb[0], zero_point=qb[1])
    if constant_b:
        b["data"] = rng.integers(dt.qmin, dt.qmax + 1, shape_b)
    out = tuple(np.broadcast_shapes(shape_a, shape_b))
    return kit.single_op(
        op,
        [dict(shape=shape_a, dtype=dt, scale=qa[0], zero_point=qa[1]), b],
        [dict(shape=out, dtype=dt, scale=qo[0], zero_point=qo[1])],
        options(op, fusedActivationFunction=act),
        version=2,
    )


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}".replace(" ", ""))
def test_binary(oracle, kit, op, dtype, shapes):
    for act in (0, 1, 3):  # NONE, RELU, RELU6
        seed = hash((op, dtype, shapes, act)) % 2**16
        rng = np.random.default_rng(seed)
        model = binary_model(kit, rng, op, DTYPES[dtype], *shapes, act, constant_b=act == 1)
        oracle(model, seed, f"{op} {dtype} {shapes} act{act}")


@pytest.mark.parametrize("dtype", ["u8", "i8"])
def test_add_differing_scales(oracle, kit, dtype):
    """Input scales a factor 50 apart (the multiplier for the smaller one is tiny)."""
    dt = DTYPES[dtype]
    rng = np.random.default_rng(3)
    model = kit.single_op(
        "ADD",
        [
            dict(shape=(1, 8, 8, 4), dtype=dt, scale=kit.scale(0.5), zero_point=3),
            dict(shape=(1, 8, 8, 4), dtype=dt, scale=kit.scale(0.01), zero_point=-7),
        ],
        [dict(shape=(1, 8, 8, 4), dtype=dt, scale=kit.scale(0.4), zero_point=1)],
        options("ADD"),
    )
    oracle(model, int(rng.integers(100)))
