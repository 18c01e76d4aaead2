"""lower_depthwise_to_dense: exact, including depth multipliers and per-channel scales."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.gallium import ElementType
from mesa_npu.nir_tensor.equivalence import check_pass
from mesa_npu.nir_tensor.ir import Op
from mesa_npu.nir_tensor.passes import lower_depthwise_to_dense
from mesa_npu.nir_tensor.passes.depthwise import dense_weights
from mesa_npu.nir_tensor.testing import GraphBuilder, require_kernels

PROFILE = "nir_tensor.passes"


def test_dense_weights_put_each_kernel_in_its_own_channel():
    w = np.arange(1, 1 + 2 * 2 * 6, dtype=np.uint8).reshape(1, 2, 2, 6)  # C=3, M=2
    d = dense_weights(w, np.full(6, 9), channels=3)
    assert d.shape == (6, 2, 2, 3)
    for o in range(6):
        np.testing.assert_array_equal(d[o, :, :, o // 2], w[0, :, :, o])
        others = [c for c in range(3) if c != o // 2]
        assert (d[o][..., others] == 9).all()


def test_select_and_max_channels():
    require_kernels(Op.CONV)
    b = GraphBuilder(seed=1)
    x = b.input((1, 5, 5, 8))
    graph = b.build([b.conv(x, 8, depthwise=True, clamp="relu6")])
    check_pass(graph, lower_depthwise_to_dense, expect_progress=True)
    check_pass(graph, lower_depthwise_to_dense, expect_progress=False, max_channels=4)
    check_pass(graph, lower_depthwise_to_dense, expect_progress=False, select=lambda n: False)


@settings(settings.get_profile(PROFILE))
@given(
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([ElementType.UINT8, ElementType.INT8]),
    channels=st.integers(1, 6),
    multiplier=st.integers(1, 3),
    kernel=st.sampled_from([(1, 1), (3, 3), (5, 5), (3, 2)]),
    stride=st.sampled_from([(1, 1), (2, 2)]),
    per_axis=st.booleans(),
)
def test_property_depthwise_to_dense_is_exact(
    seed, dtype, channels, multiplier, kernel, stride, per_axis
):
    require_kernels(Op.CONV)
    b = GraphBuilder(seed, dtype)
    x = b.input((1, 6, 7, channels))
    y = b.conv(
        x,
        channels * multiplier,
        kernel,
        stride=stride,
        depthwise=True,
        per_axis=per_axis and dtype is ElementType.INT8,
    )
    check_pass(b.build([y]), lower_depthwise_to_dense, expect_progress=True)
