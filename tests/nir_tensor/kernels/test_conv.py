"""CONV, DEPTHWISE_CONV and FULLY_CONNECTED against BUILTIN_REF, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.frontends.teflon.writer import options
from mesa_npu.gallium.tensor import ElementType as ET
from mesa_npu.nir_tensor.kernels.conv import matrix_dtype

PROFILE = settings.get_profile("nir_tensor.kernels")
ACTIVATIONS = (0, 1, 3, 2)  # NONE, RELU, RELU6, RELU_N1_TO_1 (schema ActivationFunctionType)


def weights(rng, dtype: ET, shape, channels: int, per_channel: bool, axis: int):
    """(data, scale, zero point) as TFLite quantizes them: uint8 per tensor with a zero point,
    int8 symmetric, per axis when asked."""
    if dtype is ET.UINT8:
        data = rng.integers(0, 256, shape)
        return data, float(np.float32(rng.uniform(0.002, 0.02))), int(rng.integers(100, 156))
    data = rng.integers(-127, 128, shape)
    if per_channel:
        return data, [float(np.float32(s)) for s in rng.uniform(0.002, 0.02, channels)], 0
    return data, float(np.float32(rng.uniform(0.002, 0.02))), 0


def conv_model(
    kit, rng, dt, *, h, w, cin, cout, k, stride, same, dil, depthwise, mult, pc, act, groups=1
):
    sx, zx = kit.quant(rng, dt)
    so, zo = kit.quant(rng, dt)
    wdt = ET.UINT8 if dt is ET.UINT8 else ET.INT8
    oc = cin * mult if depthwise else cout
    wshape = (1, k, k, oc) if depthwise else (cout, k, k, cin // groups)
    wdata, ws, wz = weights(rng, wdt, wshape, oc, pc, 3 if depthwise else 0)
    bias_scale = (sx * np.asarray(ws)).tolist() if pc else sx * ws
    eff = (k - 1) * dil + 1
    oh = -(-h // stride) if same else (h - eff + stride) // stride
    ow = -(-w // stride) if same else (w - eff + stride) // stride
    common = dict(
        padding=0 if same else 1,
        strideH=stride,
        strideW=stride,
        dilationHFactor=dil,
        dilationWFactor=dil,
        fusedActivationFunction=act,
    )
    name = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
    opts = options(name, depthMultiplier=mult, **common) if depthwise else options(name, **common)
    return kit.single_op(
        name,
        [
            dict(shape=(1, h, w, cin), dtype=dt, scale=sx, zero_point=zx),
            dict(
                shape=wshape,
                dtype=wdt,
                scale=ws,
                zero_point=wz,
                axis=3 if depthwise else 0,
                data=wdata,
            ),
            dict(
                shape=(oc,),
                dtype=ET.INT32,
                scale=bias_scale,
                zero_point=0,
                data=rng.integers(-3000, 3000, oc),
            ),
        ],
        [dict(shape=(1, oh, ow, oc), dtype=dt, scale=so, zero_point=zo)],
        opts,
        version=1 if dt is ET.UINT8 else 3,
    )


conv_params = st.fixed_dictionaries(
    {
        "h": st.integers(1, 10),
        "w": st.integers(1, 10),
        "cin": st.integers(1, 8),
        "cout": st.integers(1, 8),
        "k": st.sampled_from([1, 2, 3, 5]),
        "stride": st.sampled_from([1, 2, 3]),
        "same": st.booleans(),
        "dil": st.sampled_from([1, 1, 2]),
        "act": st.sampled_from(ACTIVATIONS),
    }
)


def fits(p) -> bool:
    eff = (p["k"] - 1) * p["dil"] + 1
    return p["same"] or (eff <= p["h"] and eff <= p["w"])


@pytest.mark.parametrize("variant", ["u8", "i8", "i8-per-channel"])
@settings(PROFILE)
@given(p=conv_params.filter(fits), seed=st.integers(0, 2**16))
def test_conv(oracle, kit, variant, p, seed):
    dt = ET.UINT8 if variant == "u8" else ET.INT8
    rng = np.random.default_rng(seed)
    model = conv_model(kit, rng, dt, depthwise=False, mult=1, pc=variant.endswith("channel"), **p)
    oracle(model, seed, f"conv {variant} {p}")


@pytest.mark.parametrize("variant", ["u8", "i8", "i8-per-channel"])
@settings(PROFILE)
@given(p=conv_params.filter(fits), mult=st.sampled_from([1, 1, 2, 3]), seed=st.integers(0, 2**16))
def test_depthwise(oracle, kit, variant, p, mult, seed):
    dt = ET.UINT8 if variant == "u8" else ET.INT8
    rng = np.random.default_rng(seed)
    model = conv_model(kit, rng, dt, depthwise=True, mult=mult, pc=variant.endswith("channel"), **p)
    oracle(model, seed, f"depthwise {variant} x{mult} {p}")


@pytest.mark.parametrize("variant", ["u8", "i8", "i8-per-channel"])
@pytest.mark.parametrize("depthwise", [False, True], ids=["conv", "dwconv"])
def test_layer_sized(oracle, kit, variant, depthwise):
    """A mobilenet-sized layer: several output-stage chunks, both depthwise layouts (32 and 96
    channels run planar and NHWC)."""
    dt = ET.UINT8 if variant == "u8" else ET.INT8
    for channels in (32, 96):
        rng = np.random.default_rng(channels)
        model = conv_model(
            kit,
            rng,
            dt,
            h=28,
            w=28,
            cin=channels,
            cout=48,
            k=3,
            stride=2,
            same=True,
            dil=1,
            depthwise=depthwise,
            mult=1,
            pc=variant.endswith("channel"),
            act=3,
        )
        assert oracle(model, channels) >= 14 * 14 * 32


def test_grouped_conv(oracle, kit):
    """Input channels a multiple of the weights' (TFLite runs grouped conv in its reference)."""
    rng = np.random.default_rng(5)
    model = conv_model(
        kit,
        rng,
        ET.INT8,
        h=6,
        w=7,
        cin=8,
        cout=6,
        k=3,
        stride=1,
        same=True,
        dil=1,
        depthwise=False,
        mult=1,
        pc=True,
        act=0,
        groups=2,
    )
    oracle(model, 5)


def test_float64_accumulation_is_exact(oracle, kit):
    """Weights whose sums exceed 2^24 push the matmul to float64; still exact."""
    rng = np.random.default_rng(9)
    model = conv_model(
        kit,
        rng,
        ET.UINT8,
        h=6,
        w=6,
        cin=256,
        cout=8,
        k=3,
        stride=1,
        same=True,
        dil=1,
        depthwise=False,
        mult=1,
        pc=False,
        act=0,
    )
    oracle(model, 9)
    wide = np.full((8, 2304), 127)
    assert matrix_dtype(255, wide, axis=1) == np.float64
    assert matrix_dtype(255, wide[:, :100], axis=1) == np.float32


def fc_model(kit, rng, dt, *, batch, depth, units, pc, act, bias, w_zp):
    sx, zx = kit.quant(rng, dt)
    so, zo = kit.quant(rng, dt)
    wdt = ET.UINT8 if dt is ET.UINT8 else ET.INT8
    wdata, ws, wz = weights(rng, wdt, (units, depth), units, pc, 0)
    if dt is ET.INT8 and w_zp and not pc:
        wz = int(rng.integers(-5, 6))  # per-tensor int8 FC applies a weight zero point
    bias_scale = (sx * np.asarray(ws)).tolist() if pc else sx * ws
    bias_spec = (
        dict(
            shape=(units,),
            dtype=ET.INT32,
            scale=bias_scale,
            zero_point=0,
            data=rng.integers(-3000, 3000, units),
        )
        if bias
        else None
    )
    return kit.single_op(
        "FULLY_CONNECTED",
        [
            dict(shape=(batch, depth), dtype=dt, scale=sx, zero_point=zx),
            dict(shape=(units, depth), dtype=wdt, scale=ws, zero_point=wz, axis=0, data=wdata),
            bias_spec,
        ],
        [dict(shape=(batch, units), dtype=dt, scale=so, zero_point=zo)],
        options("FULLY_CONNECTED", fusedActivationFunction=act),
        version=1 if dt is ET.UINT8 else 4,
    )


@pytest.mark.parametrize("variant", ["u8", "i8", "i8-per-channel"])
@settings(PROFILE)
@given(
    batch=st.integers(1, 4),
    depth=st.integers(1, 300),
    units=st.integers(1, 24),
    act=st.sampled_from(ACTIVATIONS),
    bias=st.booleans(),
    w_zp=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fully_connected(oracle, kit, variant, batch, depth, units, act, bias, w_zp, seed):
    dt = ET.UINT8 if variant == "u8" else ET.INT8
    rng = np.random.default_rng(seed)
    model = fc_model(
        kit,
        rng,
        dt,
        batch=batch,
        depth=depth,
        units=units,
        pc=variant.endswith("channel"),
        act=act,
        bias=bias,
        w_zp=w_zp,
    )
    oracle(model, seed, f"fc {variant} b{batch} d{depth} u{units}")


def int16_model(kit, rng, builtin, *, pc, mult=1):
    """int16 activations, int8 weights, int64 bias (the 16x8 scheme)."""
    sx, so = kit.scale(rng.uniform(1e-4, 1e-3)), kit.scale(rng.uniform(5e-4, 5e-3))
    cin, cout, depth, units = 16, 8, 40, 7
    if builtin == "FULLY_CONNECTED":
        wshape, oc, ishape, oshape = (units, depth), units, (2, depth), (2, units)
        opts = options(builtin)
    elif builtin == "DEPTHWISE_CONV_2D":
        oc = cin * mult
        wshape, ishape, oshape = (1, 3, 3, oc), (1, 6, 6, cin), (1, 6, 6, oc)
        opts = options(builtin, padding=0, strideH=1, strideW=1, depthMultiplier=mult)
    else:
        oc = cout
        wshape, ishape, oshape = (cout, 3, 3, cin), (1, 6, 6, cin), (1, 6, 6, cout)
        opts = options(builtin, padding=0, strideH=1, strideW=1)
    wdata, ws, _ = weights(rng, ET.INT8, wshape, oc, pc, 0)
    bias_scale = (sx * np.asarray(ws)).tolist() if pc else sx * ws
    axis = 3 if builtin == "DEPTHWISE_CONV_2D" else 0
    return kit.single_op(
        builtin,
        [
            dict(shape=ishape, dtype=ET.INT16, scale=sx, zero_point=0),
            dict(shape=wshape, dtype=ET.INT8, scale=ws, zero_point=0, axis=axis, data=wdata),
            dict(
                shape=(oc,),
                dtype=ET.INT64,
                scale=bias_scale,
                zero_point=0,
                data=rng.integers(-30000, 30000, oc),
            ),
        ],
        [dict(shape=oshape, dtype=ET.INT16, scale=so, zero_point=0)],
        opts,
        version=5 if builtin == "FULLY_CONNECTED" else 4,
    )


@pytest.mark.parametrize("builtin", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
@pytest.mark.parametrize("pc", [False, True], ids=["per-tensor", "per-channel"])
def test_int16x8(oracle, kit, builtin, pc):
    for trial in range(6):
        rng = np.random.default_rng(trial)
        model = int16_model(kit, rng, builtin, pc=pc, mult=1 + trial % 2)
        oracle(model, trial, f"{builtin} i16 #{trial}")
