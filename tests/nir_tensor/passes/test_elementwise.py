"""lower_add_to_conv (bounded, bound derived per node) and lower_add_into_conv (exact)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.gallium import ElementType, Quant
from mesa_npu.nir_tensor.equivalence import check_pass
from mesa_npu.nir_tensor.ir import Op
from mesa_npu.nir_tensor.params import ConvAddParams
from mesa_npu.nir_tensor.passes import lower_add_into_conv, lower_add_to_conv
from mesa_npu.nir_tensor.passes.elementwise import add_as_conv
from mesa_npu.nir_tensor.testing import GraphBuilder, require_kernels

PROFILE = "nir_tensor.passes"


def add_graph(seed, dtype, s0, s1, s_out, op=Op.ADD, clamp=None):
    b = GraphBuilder(seed, dtype)
    a = b.input((1, 5, 6, 7), b.quant(s0))
    c = b.input((1, 5, 6, 7), b.quant(s1))
    y = b.add(a, c, op=op, clamp=clamp)
    graph = b.build([y])
    out = graph.outputs[0]
    node = graph.nodes[0]
    pinned = out.with_(quant=Quant(float(np.float32(s_out)), out.quant.zero_point))
    graph.replace(node, [node.with_(outputs=(pinned,))])
    graph.outputs = [pinned]
    return graph


def test_add_as_conv_numbers_for_a_mobilenet_like_add():
    # mobilenet_v2's ADDs: two uint8 inputs of similar scale, output about their sum.
    graph = add_graph(0, ElementType.UINT8, 0.3, 0.25, 0.4)
    plan = add_as_conv(graph.nodes[0])
    assert plan.reference == 0  # the larger scale
    assert plan.weight_zero_point == 0 and 0 < plan.o_weight <= plan.p_weight <= 255
    assert abs(plan.o_weight / plan.p_weight - 0.25 / 0.3) < 1 / 255
    assert plan.delta < 1 and plan.bound == 1


def test_sub_uses_signed_weights_around_128():
    graph = add_graph(0, ElementType.UINT8, 0.1, 0.2, 0.2, op=Op.SUB)
    plan = add_as_conv(graph.nodes[0])
    assert plan.reference == 1 and plan.weight_zero_point == 128
    assert plan.p_weight < 0 < plan.o_weight  # b is subtracted, a added


def test_add_to_conv_measured_within_derived_bound():
    require_kernels(Op.CONV, Op.ADD, Op.CONCAT)
    graph = add_graph(1, ElementType.UINT8, 0.3, 0.25, 0.4)
    plan = add_as_conv(graph.nodes[0])
    result = check_pass(graph, lower_add_to_conv, bound=plan.bound, trials=4, expect_progress=True)
    after = graph.copy()
    lower_add_to_conv(after)
    assert [n.op for n in after] == [Op.RESHAPE, Op.CONCAT, Op.CONV]  # RESHAPE: raw bytes
    assert result.max_lsb <= 1
    # Not exact by design, but close: most elements agree.
    assert result.differing < result.elements // 4


@settings(settings.get_profile(PROFILE))
@given(
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([ElementType.UINT8, ElementType.INT8]),
    s0=st.floats(0.002, 0.2),
    ratio=st.floats(0.05, 20),
    gain=st.floats(0.3, 3),
    op=st.sampled_from([Op.ADD, Op.SUB]),
    relu=st.booleans(),
)
def test_property_add_to_conv_within_bound(seed, dtype, s0, ratio, gain, op, relu):
    require_kernels(Op.CONV, Op.ADD, Op.SUB, Op.CONCAT)
    s1 = s0 * ratio
    graph = add_graph(seed, dtype, s0, s1, max(s0, s1) * gain, op=op)
    plan = add_as_conv(graph.nodes[0])
    check_pass(graph, lower_add_to_conv, bound=plan.bound, trials=2, expect_progress=True)


def conv_add_graph(seed, dtype, first=True):
    b = GraphBuilder(seed, dtype)
    x = b.input((1, 6, 6, 4))
    skip = b.conv(x, 8, (1, 1))
    y = b.conv(skip, 8, stride=(1, 1), clamp="relu6")
    out = b.add(y, skip) if first else b.add(skip, y)
    return b.build([out])


def test_add_fuses_into_the_conv_producing_its_first_operand():
    require_kernels(Op.CONV, Op.ADD)
    graph = conv_add_graph(2, ElementType.UINT8)
    check_pass(graph, lower_add_into_conv, expect_progress=True)
    after = graph.copy()
    lower_add_into_conv(after)
    assert [n.op for n in after] == [Op.CONV, Op.CONV_ADD]
    node = after.nodes[1]
    assert isinstance(node.params, ConvAddParams) and node.params.conv_first
    assert node.origin == graph.nodes[2].origin  # the ADD's: it writes the ADD's tensor


def test_second_operand_fuses_only_when_asked():
    require_kernels(Op.CONV, Op.ADD)
    graph = conv_add_graph(3, ElementType.INT8, first=False)
    # The first operand's conv (skip) has two readers: nothing to fuse with "first".
    check_pass(graph, lower_add_into_conv, expect_progress=False)
    check_pass(graph, lower_add_into_conv, expect_progress=True, operand="either")


@settings(settings.get_profile(PROFILE))
@given(
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([ElementType.UINT8, ElementType.INT8]),
    first=st.booleans(),
    operand=st.sampled_from(["first", "either"]),
)
def test_property_conv_add_is_exact(seed, dtype, first, operand):
    require_kernels(Op.CONV, Op.ADD)
    graph = conv_add_graph(seed, dtype, first)
    check_pass(
        graph, lower_add_into_conv, operand=operand, expect_progress=first or operand == "either"
    )
