"""AVERAGE_POOL_2D, MAX_POOL_2D and MEAN against BUILTIN_REF."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.frontends.teflon.writer import options
from mesa_npu.gallium.tensor import ElementType as ET

PROFILE = settings.get_profile("nir_tensor.kernels")
DTYPES = {"u8": ET.UINT8, "i8": ET.INT8, "i16": ET.INT16}


@pytest.mark.parametrize("kind", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("dtype", DTYPES)
@settings(PROFILE)
@given(
    n=st.integers(1, 2),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    c=st.integers(1, 6),
    f=st.integers(1, 4),
    stride=st.integers(1, 3),
    same=st.booleans(),
    act=st.sampled_from([0, 1, 3]),
    seed=st.integers(0, 2**16),
)
def test_pool(oracle, kit, kind, dtype, n, h, w, c, f, stride, same, act, seed):
    if not same and (f > h or f > w):
        return
    dt = DTYPES[dtype]
    rng = np.random.default_rng(seed)
    scale, zp = kit.quant(rng, dt)
    oh = -(-h // stride) if same else (h - f + stride) // stride
    ow = -(-w // stride) if same else (w - f + stride) // stride
    model = kit.single_op(
        kind,
        [dict(shape=(n, h, w, c), dtype=dt, scale=scale, zero_point=zp)],
        [dict(shape=(n, oh, ow, c), dtype=dt, scale=scale, zero_point=zp)],
        options(
            kind,
            padding=0 if same else 1,
            strideH=stride,
            strideW=stride,
            filterHeight=f,
            filterWidth=f,
            fusedActivationFunction=act,
        ),
        version=2,
    )
    oracle(model, seed, f"{kind} {dtype} {h}x{w} f{f} s{stride} same={same}")


MEANS = [
    ((1, 7, 7, 16), (1, 2)),
    ((2, 5, 6, 3), (1, 2)),
    ((2, 5, 6, 3), (3,)),
    ((2, 5, 6, 3), (1,)),
    ((2, 5, 6, 3), (0, 1, 2, 3)),
    ((4, 9), (1,)),
    ((3, 4, 5), (0, 2)),
    ((1, 13, 13, 40), (2, 1)),
    ((2, 5, 6, 3), (-1, -3)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keep_dims", [True, False])
@pytest.mark.parametrize("shape,axes", MEANS, ids=lambda v: str(v).replace(" ", ""))
def test_mean(oracle, kit, dtype, keep_dims, shape, axes):
    dt = DTYPES[dtype]
    rng = np.random.default_rng(len(shape) * 31 + sum(axes))
    qi, qo = kit.quant(rng, dt), kit.quant(rng, dt)
    rank = len(shape)
    reduced = {a % rank for a in axes}
    out = [1 if i in reduced else d for i, d in enumerate(shape)]
    if not keep_dims:
        out = [d for i, d in enumerate(shape) if i not in reduced]
    for same_quant in (False, True):
        q = qi if same_quant else qo
        model = kit.single_op(
            "MEAN",
            [
                dict(shape=shape, dtype=dt, scale=qi[0], zero_point=qi[1]),
                dict(shape=(len(axes),), dtype=ET.INT32, data=np.array(axes)),
            ],
            [dict(shape=tuple(out), dtype=dt, scale=q[0], zero_point=q[1])],
            options("MEAN", keepDims=keep_dims),
            version=2,
        )
        oracle(model, int(same_quant), f"MEAN {dtype} {shape} {axes} keep={keep_dims}")
