"""lower_layouts: LAYOUT nodes only where a consumer needs another layout; exact."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.nir_tensor.equivalence import check_pass
from mesa_npu.nir_tensor.ir import NCHW, NHWC, Layout, LayoutKind, Op
from mesa_npu.nir_tensor.passes import LayoutRule, lower_layouts
from mesa_npu.nir_tensor.passes.common import activation_inputs
from mesa_npu.nir_tensor.testing import GraphBuilder, require_kernels

PROFILE = "nir_tensor.passes"
NC1HWC2 = Layout(LayoutKind.NC1HWC2, 16)
ANY = LayoutRule(None, None)
ETNAVIV_LIKE = {Op.CONV: LayoutRule(NCHW, NCHW), Op.CONCAT: LayoutRule(NCHW, NCHW), Op.ADD: ANY}


def residual_block(seed=0):
    b = GraphBuilder(seed)
    x = b.input((1, 6, 6, 8))
    a = b.conv(x, 8, (1, 1))
    c = b.conv(a, 8)
    return b.build([b.add(c, a)])


def check_consistent(graph, table):
    """Every node reads the layout its rule asks for; graph I/O stays NHWC."""
    for node in graph:
        if node.op is Op.LAYOUT:
            assert node.input.layout != node.output.layout
            continue
        rule = table.get(node.op, LayoutRule())
        ins = [node.inputs[i].layout for i in activation_inputs(node)]
        want = ins[0] if rule.consumes is None else rule.consumes
        assert all(layout == want for layout in ins), node
    assert all(t.layout == NHWC for t in (*graph.inputs, *graph.outputs))


def test_a_residual_block_needs_one_conversion_each_way():
    require_kernels(Op.CONV, Op.ADD)
    graph = residual_block()
    check_pass(graph, lower_layouts, expect_progress=True, table=ETNAVIV_LIKE)
    after = graph.copy()
    lower_layouts(after, table=ETNAVIV_LIKE)
    check_consistent(after, ETNAVIV_LIKE)
    assert [n.op for n in after] == [Op.LAYOUT, Op.CONV, Op.CONV, Op.ADD, Op.LAYOUT]
    assert after.nodes[3].output.layout == NCHW  # the ADD propagated its inputs' layout
    assert not lower_layouts(after, table=ETNAVIV_LIKE)  # idempotent


def test_two_readers_share_one_conversion():
    require_kernels(Op.CONV)
    b = GraphBuilder(1)
    x = b.input((1, 4, 4, 3))
    graph = b.build([b.conv(x, 4), b.conv(x, 4, (1, 1))])
    after = graph.copy()
    lower_layouts(after, table={Op.CONV: LayoutRule(NC1HWC2, NC1HWC2)})
    assert [n.op for n in after].count(Op.LAYOUT) == 3  # one in, one per output


LAYOUTS = [NHWC, NCHW, NC1HWC2, Layout(LayoutKind.NC1HWC2, 8)]
RULES = st.sampled_from([LayoutRule(a, b) for a in LAYOUTS for b in LAYOUTS] + [ANY])


@settings(settings.get_profile(PROFILE))
@given(
    seed=st.integers(0, 2**16),
    conv=RULES,
    add=RULES,
    concat=RULES,
    clamp=RULES,
)
def test_property_layouts(seed, conv, add, concat, clamp):
    require_kernels(Op.CONV, Op.ADD, Op.CLAMP, Op.CONCAT)
    if conv.consumes is None:
        return  # a conv reads its one feature input: "any" is meaningless there
    table = {Op.CONV: conv, Op.ADD: add, Op.CONCAT: concat, Op.CLAMP: clamp}
    b = GraphBuilder(seed)
    x = b.input((1, 5, 5, 8))
    a = b.conv(x, 8, (1, 1))
    r = b.clamp(a, a.quant.zero_point, 250)
    c = b.conv(r, 8)
    s = b.add(c, a)
    y = b.concat([s, b.conv(s, 8, (1, 1))], axis=3)
    graph = b.build([y, r])
    result = check_pass(graph, lower_layouts, table=table)
    after = graph.copy()
    lower_layouts(after, table=table)
    check_consistent(after, table)
    # Never more conversions than (tensor, wanted layout) pairs that differ from the producer's.
    needed = set()
    for node in after:
        if node.op is Op.LAYOUT:
            needed.add((id(node.input), node.output.layout))
    assert [n.op for n in after].count(Op.LAYOUT) == len(needed)
    assert result.exact
