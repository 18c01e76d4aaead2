"""SOFTMAX (gemmlowp fixed point) and RESIZE (nearest, bilinear) against BUILTIN_REF."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.frontends.teflon.writer import options
from mesa_npu.gallium.tensor import ElementType as ET

PROFILE = settings.get_profile("nir_tensor.kernels")
DTYPES = {"u8": ET.UINT8, "i8": ET.INT8, "i16": ET.INT16}


@pytest.mark.parametrize("dtype", ["u8", "i8"])
@pytest.mark.parametrize("shape", [(1, 10), (2, 5), (1, 1001), (3, 4, 17), (1, 2, 3, 40)])
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0, 50.0])
def test_softmax(oracle, kit, dtype, shape, beta):
    dt = DTYPES[dtype]
    rng = np.random.default_rng(int(beta * 10) + len(shape))
    # Input scales from 0.05 up: with 1001 classes and tiny beta*scale, BUILTIN_REF itself
    # aborts (TFLITE_CHECK on the reciprocal's exponent).
    scale = kit.scale(rng.uniform(0.05, 0.2))
    zp = kit.quant(rng, dt)[1]
    model = kit.single_op(
        "SOFTMAX",
        [dict(shape=shape, dtype=dt, scale=scale, zero_point=zp)],
        [dict(shape=shape, dtype=dt, scale=1 / 256, zero_point=dt.qmin)],
        options("SOFTMAX", beta=beta),
        version=2,
    )
    oracle(model, len(shape), f"SOFTMAX {dtype} {shape} beta={beta}")


@pytest.mark.parametrize("shape", [(1, 10), (2, 5), (1, 1001), (3, 4, 17), (1, 2, 3, 40)])
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0, 0.1])
def test_softmax_int16(oracle, kit, shape, beta):
    """Symmetric int16: the interpolated exp and reciprocal tables of SoftmaxInt16."""
    for trial in range(2):
        rng = np.random.default_rng(trial)
        model = kit.single_op(
            "SOFTMAX",
            [
                dict(
                    shape=shape,
                    dtype=ET.INT16,
                    scale=kit.scale(rng.uniform(1e-4, 2e-3)),
                    zero_point=0,
                )
            ],
            [dict(shape=shape, dtype=ET.INT16, scale=1 / 32768, zero_point=0)],
            options("SOFTMAX", beta=beta),
            version=3,
        )
        oracle(model, trial, f"SOFTMAX i16 {shape} beta={beta}")


@pytest.mark.parametrize("kind", ["RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"])
@pytest.mark.parametrize("dtype", DTYPES)
@settings(PROFILE)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    oh=st.integers(1, 20),
    ow=st.integers(1, 20),
    c=st.integers(1, 3),
    mode=st.sampled_from(["plain", "align_corners", "half_pixel_centers"]),
    seed=st.integers(0, 2**16),
)
def test_resize(oracle, kit, kind, dtype, h, w, oh, ow, c, mode, seed):
    dt = DTYPES[dtype]
    rng = np.random.default_rng(seed)
    scale, zp = kit.quant(rng, dt)
    model = kit.single_op(
        kind,
        [
            dict(shape=(1, h, w, c), dtype=dt, scale=scale, zero_point=zp),
            dict(shape=(2,), dtype=ET.INT32, data=np.array([oh, ow])),
        ],
        [dict(shape=(1, oh, ow, c), dtype=dt, scale=scale, zero_point=zp)],
        options(
            kind,
            alignCorners=mode == "align_corners",
            halfPixelCenters=mode == "half_pixel_centers",
        ),
        version=3,
    )
    oracle(model, seed, f"{kind} {dtype} {h}x{w}->{oh}x{ow} {mode}")
