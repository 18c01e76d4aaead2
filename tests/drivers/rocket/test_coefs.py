"""Weight and bias packing (drivers/rocket/coefs.py) against references written independently:
explicit loops over the rocket-nvdla.md §4 layout, and the zero-point algebra of §7 checked on
random data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.drivers.rocket import coefs
from mesa_npu.gallium.tensor import ElementType
from mesa_npu.util.soc import soc

NPU = soc("rk3588").npu
ATOM, GROUP = 16, 32  # §4: 16-byte feature atoms, 32-kernel weight groups


def align(x: int, a: int) -> int:
    return -(-x // a) * a


def loop_pack_direct(w: np.ndarray, o: int, zp: int) -> list[int]:
    """§4, one value at a time: [oc1][ic1][kh][kw][oc2][ic2]; even kernel count, the last kernel
    group and the last channel group hold only what is left."""
    oc, kh, kw, ic = w.shape
    kernels, channels = align(oc, 2), align(ic, ATOM)
    out = []
    for g in range(0, kernels, GROUP):
        for c0 in range(0, channels, GROUP):
            for y in range(kh):
                for x in range(kw):
                    for k in range(g, min(g + GROUP, kernels)):
                        for c in range(c0, min(c0 + GROUP, channels)):
                            if k >= oc:
                                out.append(0)
                            elif c >= ic:
                                out.append(zp - o)
                            else:
                                out.append(int(w[k, y, x, c]) - o)
    return out


def loop_pack_depthwise(w: np.ndarray, o: int, zp: int) -> list[int]:
    """§4 depthwise: [C/64][kh][kw][c <= 64]."""
    _, kh, kw, c_real = w.shape
    channels = align(c_real, ATOM)
    out = []
    for c0 in range(0, channels, 2 * GROUP):
        for y in range(kh):
            for x in range(kw):
                for c in range(c0, min(c0 + 2 * GROUP, channels)):
                    out.append(int(w[0, y, x, c]) - o if c < c_real else zp - o)
    return out


@pytest.mark.parametrize("dtype", [ElementType.UINT8, ElementType.INT8])
@pytest.mark.parametrize(
    "shape", [(1, 1, 1, 1), (3, 3, 3, 3), (33, 1, 1, 20), (64, 3, 3, 48), (2, 5, 5, 40)]
)
def test_direct_weights_follow_the_documented_loop_order(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    w = rng.integers(dtype.qmin, dtype.qmax, size=shape, endpoint=True).astype(dtype.numpy)
    zp = 131 if dtype is ElementType.UINT8 else 0
    o = coefs.hw_offset(dtype)
    packed = coefs.pack_weights(NPU, w, dtype, zp, depthwise=False)
    assert packed.dtype == np.int8
    assert packed.tolist() == loop_pack_direct(w, o, zp)
    geo = coefs.geometry(NPU, shape, depthwise=False)
    assert geo.bytes == packed.size == geo.kernels * geo.bytes_per_kernel


@pytest.mark.parametrize("channels", [1, 16, 40, 70, 128])
def test_depthwise_weights_follow_the_documented_loop_order(channels):
    rng = np.random.default_rng(channels)
    w = rng.integers(0, 255, size=(1, 3, 3, channels), endpoint=True).astype(np.uint8)
    packed = coefs.pack_weights(NPU, w, ElementType.UINT8, 120, depthwise=True)
    assert packed.tolist() == loop_pack_depthwise(w, 0x80, 120)
    assert coefs.geometry(NPU, w.shape, depthwise=True).bytes == packed.size


def test_hardware_offsets():
    assert coefs.hw_offset(ElementType.UINT8) == 0x80
    assert coefs.hw_offset(ElementType.INT8) == 0


@settings(max_examples=60, deadline=None)
@given(
    signed=st.booleans(),
    zi=st.integers(-128, 255),
    zw=st.integers(-128, 255),
    seed=st.integers(0, 2**16),
    depthwise=st.booleans(),
)
def test_hardware_sum_equals_the_zero_point_corrected_sum(signed, zi, zw, seed, depthwise):
    """Σ x·w + OW·Σ x + bias' (what the MAC array, the OW stage and BS compute on the stored
    values, padding channels included) is Σ (q_in - z_in)(q_w - z_w) + bias."""
    dtype = ElementType.INT8 if signed else ElementType.UINT8
    zi = int(np.clip(zi, dtype.qmin, dtype.qmax))
    zw = int(np.clip(zw, dtype.qmin, dtype.qmax))
    rng = np.random.default_rng(seed)
    c, oc, taps = 5, 3, 4
    shape = (1, 1, taps, c) if depthwise else (oc, 1, taps, c)
    w = rng.integers(dtype.qmin, dtype.qmax, size=shape, endpoint=True)
    q = rng.integers(dtype.qmin, dtype.qmax, size=(taps, c), endpoint=True)
    bias = rng.integers(-5000, 5000, size=c if depthwise else oc)
    o = coefs.hw_offset(dtype)
    corrected = coefs.biases(bias, w, zw, dtype, zi, depthwise)
    x = q - o  # stored inputs
    ow = o - zw
    if depthwise:
        hw = (x * (w[0, 0] - o)).sum(axis=0) + ow * x.sum(axis=0) + corrected
        want = ((q - zi) * (w[0, 0] - zw)).sum(axis=0) + bias
    else:
        hw = np.einsum("tc,ktc->k", x, w[:, 0] - o) + ow * x.sum() + corrected
        want = np.einsum("tc,ktc->k", q - zi, w[:, 0] - zw) + bias
    assert hw.tolist() == want.tolist()
