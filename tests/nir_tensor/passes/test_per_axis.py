"""lower_per_axis_weights: one weight scale per layer; the cost, derived and measured.

The worst-case bound (``per_axis_bound``) assumes every input at its extreme and every
rounding error of the same sign; on random inputs the measured error is a small fraction of
it. ``test_measured_cost_on_conformance_like_layers`` records both for the report.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.gallium import ElementType, Quant
from mesa_npu.nir_tensor.equivalence import check_pass
from mesa_npu.nir_tensor.ir import Op
from mesa_npu.nir_tensor.passes import lower_per_axis_weights
from mesa_npu.nir_tensor.passes.per_axis import per_axis_bound
from mesa_npu.nir_tensor.testing import GraphBuilder, require_kernels

PROFILE = "nir_tensor.passes"


def per_axis_conv(seed, channels=8, kernel=(3, 3), depthwise=False, size=(6, 6)):
    b = GraphBuilder(seed, ElementType.INT8)
    x = b.input((1, *size, channels))
    y = b.conv(x, channels, kernel, per_axis=True, depthwise=depthwise)
    return b.build([y])


def test_power_of_two_scales_requantize_without_error():
    graph = per_axis_conv(1, channels=4)
    node = graph.nodes[0]
    w = node.inputs[1]
    scales = tuple(float(np.float32(0.01 / 2**k)) for k in (0, 1, 2, 0))
    # Weights divisible by 4 so that q * s_c / s is an integer for every channel.
    data = (w.data.astype(np.int64) // 4 * 4).astype(np.int8)
    new_w = w.with_(data=data, quant=Quant(scales[0], 0, scales, None, 0))
    graph.replace(node, [node.with_(inputs=(node.input, new_w, None))])
    delta, bound = per_axis_bound(graph.nodes[0])
    assert delta == 0 and bound == 1  # only the requantization multiplier may round apart
    require_kernels(Op.CONV)
    result = check_pass(graph, lower_per_axis_weights, bound=bound, expect_progress=True)
    after = graph.copy()
    lower_per_axis_weights(after)
    assert not after.nodes[0].inputs[1].quant.per_axis
    assert result.max_lsb <= 1


@pytest.mark.parametrize(
    ("channels", "kernel", "depthwise"),
    [(8, (3, 3), False), (16, (1, 1), False), (16, (3, 3), True), (32, (3, 3), False)],
    ids=["conv-k3-ic8", "conv-k1-ic16", "dwconv-k3-c16", "conv-k3-ic32"],
)
def test_measured_cost_on_conformance_like_layers(channels, kernel, depthwise, record_property):
    require_kernels(Op.CONV)
    graph = per_axis_conv(7, channels, kernel, depthwise, size=(8, 8))
    _, bound = per_axis_bound(graph.nodes[0])
    result = check_pass(graph, lower_per_axis_weights, bound=bound, trials=4)
    record_property("worst_case_bound_lsb", bound)
    record_property("measured_lsb", result.max_lsb)
    record_property("differing", f"{result.differing}/{result.elements}")
    # Not exact, and the bound is loose: the measured cost is well inside it.
    assert result.max_lsb <= bound


@settings(settings.get_profile(PROFILE))
@given(
    seed=st.integers(0, 2**16),
    channels=st.integers(1, 12),
    kernel=st.sampled_from([(1, 1), (3, 3), (2, 3)]),
    depthwise=st.booleans(),
)
def test_property_per_axis_within_bound(seed, channels, kernel, depthwise):
    require_kernels(Op.CONV)
    graph = per_axis_conv(seed, channels, kernel, depthwise)
    _, bound = per_axis_bound(graph.nodes[0])
    check_pass(graph, lower_per_axis_weights, bound=bound, trials=2)
