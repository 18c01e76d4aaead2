"""opt_fuse_activation and opt_drop_implied_clamp: exact, and they fuse what they should."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.gallium import ElementType
from mesa_npu.gallium.operation import Clamp, PoolType
from mesa_npu.nir_tensor.equivalence import check_pass
from mesa_npu.nir_tensor.ir import Op
from mesa_npu.nir_tensor.passes import opt_drop_implied_clamp, opt_fuse_activation
from mesa_npu.nir_tensor.passes.activation import clamp_of, intersect
from mesa_npu.nir_tensor.testing import GraphBuilder, require_kernels

PROFILE = "nir_tensor.passes"


def ops(graph) -> list[Op]:
    return [n.op for n in graph]


def test_relu6_fuses_into_conv_and_add():
    require_kernels(Op.CONV, Op.ADD, Op.CLAMP)
    b = GraphBuilder(seed=1)
    x = b.input((1, 6, 6, 4))
    c = b.conv(x, 8)
    r = b.clamp(c, c.quant.zero_point, 200)
    y = b.conv(x, 8)
    s = b.add(r, y)
    out = b.clamp(s, s.quant.zero_point, 255)
    graph = b.build([out])
    result = check_pass(graph, opt_fuse_activation, expect_progress=True)
    assert result.exact
    after = graph.copy()
    opt_fuse_activation(after)
    assert ops(after) == [Op.CONV, Op.CONV, Op.ADD]
    conv = after.nodes[0] if after.nodes[0].output is not y else after.nodes[1]
    assert conv.params.clamp == Clamp(c.quant.zero_point, 200)
    assert after.nodes[-1].params.clamp == Clamp(s.quant.zero_point, 255)
    assert after.outputs[0] is out


def test_requantizing_relu_and_shared_producer_stay():
    require_kernels(Op.CONV, Op.CLAMP)
    b = GraphBuilder(seed=2)
    x = b.input((1, 4, 4, 3))
    c = b.conv(x, 4)
    r1 = b.clamp(c, c.quant.zero_point, 255, requantize=True)  # changes quantization
    c2 = b.conv(x, 4)
    r2 = b.clamp(c2, 0, 200)
    graph = b.build([r1, r2, c2])  # c2 is also a graph output: its producer is shared
    check_pass(graph, opt_fuse_activation, expect_progress=False)


def test_two_clamps_merge_and_disjoint_clamps_stay():
    require_kernels(Op.CONV, Op.CLAMP)
    b = GraphBuilder(seed=3)
    x = b.input((1, 4, 4, 3))
    c = b.conv(x, 4, clamp=Clamp(10, 100))
    out = b.clamp(c, 50, 200)
    graph = b.build([out])
    after = graph.copy()
    assert opt_fuse_activation(after)
    assert after.nodes[0].params.clamp == Clamp(50, 100)
    check_pass(graph, opt_fuse_activation)
    b = GraphBuilder(seed=3)
    x = b.input((1, 4, 4, 3))
    c = b.conv(x, 4, clamp=Clamp(10, 40))
    graph = b.build([b.clamp(c, 50, 200)])
    check_pass(graph, opt_fuse_activation, expect_progress=False)


def test_implied_clamps_are_dropped():
    require_kernels(Op.CONV, Op.CLAMP, Op.POOL)
    b = GraphBuilder(seed=4)
    x = b.input((1, 4, 4, 3))
    c = b.conv(x, 4, clamp=Clamp(0, 255))  # ReLU6 over an output quantized to [0, 6]
    d = b.clamp(c, -5, 300)  # a CLAMP node that does nothing
    p = b.pool(d, PoolType.MAX, clamp=Clamp(0, 255))
    e = b.clamp(p, 0, 255)  # graph output: stays, produced by its node
    graph = b.build([e])
    check_pass(graph, opt_drop_implied_clamp, expect_progress=True)
    after = graph.copy()
    opt_drop_implied_clamp(after)
    assert ops(after) == [Op.CONV, Op.POOL, Op.CLAMP]
    assert after.nodes[0].params.clamp is None and after.nodes[1].params.clamp is None


@settings(settings.get_profile(PROFILE))
@given(
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([ElementType.UINT8, ElementType.INT8]),
    producer=st.sampled_from(["conv", "add", "pool", "fc"]),
    lo=st.integers(-20, 200),
    width=st.integers(0, 300),
    fused=st.sampled_from([None, "relu", "relu6"]),
    requantize=st.booleans(),
)
def test_property_fuse_then_drop_is_exact(seed, dtype, producer, lo, width, fused, requantize):
    require_kernels(Op.CONV, Op.ADD, Op.CLAMP, Op.POOL, Op.FULLY_CONNECTED)
    b = GraphBuilder(seed, dtype)
    x = b.input((1, 5, 5, 4))
    if producer == "conv":
        y = b.conv(x, 4, clamp=fused)
    elif producer == "add":
        y = b.add(x, b.conv(x, 4), clamp=fused)
    elif producer == "fc":
        y = b.fc(x, 6, features=4, clamp=fused)
    else:
        y = b.pool(x, PoolType.AVG)
    shift = dtype.qmin
    out = b.clamp(y, lo + shift, lo + shift + width, requantize=requantize)
    graph = b.build([out])
    check_pass(graph, opt_fuse_activation)
    check_pass(graph, opt_drop_implied_clamp)
    fused_graph = graph.copy()
    opt_fuse_activation(fused_graph)
    check_pass(fused_graph, opt_drop_implied_clamp)
    # A pure clamp after a single-use producer always fuses, unless the bounds are disjoint.
    before = clamp_of(graph.nodes[-2])
    disjoint = before is not None and intersect(before, graph.nodes[-1].params) is None
    assert (Op.CLAMP in ops(fused_graph)) == (requantize or disjoint)


@pytest.mark.parametrize("into", [frozenset({Op.CONV}), frozenset()])
def test_into_limits_the_producers(into):
    require_kernels(Op.CONV, Op.ADD, Op.CLAMP)
    b = GraphBuilder(seed=5)
    x = b.input((1, 4, 4, 3))
    graph = b.build([b.clamp(b.conv(x, 4), 0, 100), b.clamp(b.add(x, x), 0, 100)])
    after = graph.copy()
    opt_fuse_activation(after, into=into)
    assert ops(after).count(Op.CLAMP) == (1 if into else 2)
