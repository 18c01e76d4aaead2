"""Strided convolutions: space-to-depth reshuffle and first-pixel subsample, both exact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.gallium import ElementType
from mesa_npu.nir_tensor.equivalence import check_pass, compare_graphs
from mesa_npu.nir_tensor.evaluate import evaluate
from mesa_npu.nir_tensor.ir import Graph, Node, Op
from mesa_npu.nir_tensor.params import SpaceToDepthParams
from mesa_npu.nir_tensor.passes import lower_conv_stride_reshuffle, lower_conv_stride_subsample
from mesa_npu.nir_tensor.passes.stride import reshuffle_weights
from mesa_npu.nir_tensor.testing import GraphBuilder, require_kernels

PROFILE = "nir_tensor.passes"


def test_space_to_depth_kernel_follows_its_definition():
    b = GraphBuilder(seed=0)
    x = b.input((1, 5, 4, 2))
    out = b.tensor((1, 4, 3, 8), x.quant)
    p = SpaceToDepthParams(block=2, pad_top=1, pad_left=1, pad_value=7)
    graph = Graph.build([Node(Op.SPACE_TO_DEPTH, (x,), (out,), p, 0)], [x], [out])
    data = np.arange(40, dtype=np.uint8).reshape(x.shape)
    (got,) = evaluate(graph, [data])
    for y in range(4):
        for xx in range(3):
            for dy in range(2):
                for dx in range(2):
                    for c in range(2):
                        iy, ix = 2 * y + dy - 1, 2 * xx + dx - 1
                        inside = 0 <= iy < 5 and 0 <= ix < 4
                        want = data[0, iy, ix, c] if inside else 7
                        assert got[0, y, xx, (dy * 2 + dx) * 2 + c] == want


def test_reshuffled_weights_hold_the_zero_point_outside_the_kernel():
    w = np.arange(1 * 3 * 3 * 1, dtype=np.uint8).reshape(1, 3, 3, 1) + 1
    r = reshuffle_weights(w, np.array([200]), 2)
    assert r.shape == (1, 2, 2, 4)
    # Tap (ky, kx) = (2*qy + dy, 2*qx + dx) sits at [qy, qx, dy*2 + dx].
    assert r[0, 0, 0, 0] == w[0, 0, 0, 0] and r[0, 0, 0, 3] == w[0, 1, 1, 0]
    assert r[0, 1, 1, 0] == w[0, 2, 2, 0] and r[0, 1, 1, 1] == 200 and r[0, 1, 0, 2] == 200


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_stride2_3x3_both_ways(padding):
    require_kernels(Op.CONV)
    b = GraphBuilder(seed=1)
    x = b.input((1, 9, 8, 3))
    graph = b.build([b.conv(x, 5, stride=(2, 2), padding=padding, clamp="relu6")])
    check_pass(graph, lower_conv_stride_reshuffle, expect_progress=True)
    check_pass(graph, lower_conv_stride_subsample, expect_progress=True)
    after = graph.copy()
    lower_conv_stride_reshuffle(after)
    s2d, conv = after.nodes
    assert s2d.op is Op.SPACE_TO_DEPTH and conv.params.stride == (1, 1)
    assert conv.inputs[1].shape == (5, 2, 2, 12) and conv.params.padding.is_zero


def test_depthwise_is_left_to_the_subsample():
    require_kernels(Op.CONV)
    b = GraphBuilder(seed=2)
    x = b.input((1, 8, 8, 4))
    graph = b.build([b.conv(x, 4, stride=(2, 2), depthwise=True)])
    check_pass(graph, lower_conv_stride_reshuffle, expect_progress=False)
    check_pass(graph, lower_conv_stride_subsample, expect_progress=True)
    pick_none = check_pass(graph, lower_conv_stride_subsample, select=lambda n: False)
    assert not pick_none.progress


@settings(settings.get_profile(PROFILE))
@given(
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([ElementType.UINT8, ElementType.INT8]),
    size=st.tuples(st.integers(3, 11), st.integers(3, 11)),
    kernel=st.sampled_from([(1, 1), (2, 2), (3, 3), (5, 5), (3, 1), (4, 4)]),
    stride=st.sampled_from([2, 3]),
    same=st.booleans(),
    per_axis=st.booleans(),
    depthwise=st.booleans(),
)
def test_property_strided_lowerings_are_exact(
    seed, dtype, size, kernel, stride, same, per_axis, depthwise
):
    require_kernels(Op.CONV)
    if not same and (size[0] < kernel[0] or size[1] < kernel[1]):
        return
    b = GraphBuilder(seed, dtype)
    x = b.input((1, *size, 3))
    y = b.conv(
        x,
        3 if depthwise else 4,
        kernel,
        stride=(stride, stride),
        padding="same" if same else "valid",
        per_axis=per_axis and dtype is ElementType.INT8,
        depthwise=depthwise,
    )
    graph = b.build([y])
    strides = frozenset({2, 3})
    check_pass(graph, lower_conv_stride_reshuffle, strides=strides, expect_progress=not depthwise)
    check_pass(graph, lower_conv_stride_subsample, strides=strides, expect_progress=True)
    # The two lowerings agree with each other, too.
    a, c = graph.copy(), graph.copy()
    lower_conv_stride_reshuffle(a, strides=strides)
    lower_conv_stride_subsample(c, strides=strides)
    assert compare_graphs(a, c).exact
