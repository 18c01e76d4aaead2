"""The memory planner, checked by simulation over the schedule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.gallium import ElementType
from mesa_npu.nir_tensor.ir import NCHW, Graph, Layout, LayoutKind, Op, Tensor
from mesa_npu.nir_tensor.memory import MemoryPlan, PlanError, plan_memory
from mesa_npu.nir_tensor.passes import (
    LayoutRule,
    lower_layouts,
    lower_split_conv_rows,
    lower_views,
)
from mesa_npu.nir_tensor.physical import nbytes
from mesa_npu.nir_tensor.pipeline import run_pipeline
from mesa_npu.nir_tensor.pipelines import ALL_EXACT
from mesa_npu.nir_tensor.testing import GraphBuilder


def check_plan(graph: Graph, plan: MemoryPlan, alignment: int = 1) -> None:
    """No two live tensors in different buffers overlap; aliases sit inside their bases."""
    tensors = [t for t in graph.tensors() if not t.is_constant]
    assert set(plan.offsets) == set(tensors)

    def span(t: Tensor) -> tuple[int, int]:
        base = plan.root(t)
        buffer = next(b for b in plan.buffers if any(x is base for x in b.tensors))
        return plan.offsets[t], buffer.offset + buffer.size

    for step in range(len(graph.nodes) + 1):
        live = [t for t in tensors if plan.lifetimes[t][0] <= step <= plan.lifetimes[t][1]]
        for i, a in enumerate(live):
            for b in live[i + 1 :]:
                if plan.root(a) is plan.root(b):
                    continue
                a0, b0 = plan.offsets[a], plan.offsets[b]
                assert a0 + plan.sizes[a] <= b0 or b0 + plan.sizes[b] <= a0, (step, a, b)
    for part, (base, offset) in plan.parents.items():
        assert plan.offsets[part] == plan.offsets[base] + offset
        assert plan.offsets[part] >= plan.offsets[base]
        assert plan.offsets[part] < span(base)[1]
    for buffer in plan.buffers:
        assert buffer.offset % alignment == 0
        assert buffer.offset + buffer.size <= plan.peak
    assert plan.live_peak <= plan.peak <= plan.naive


def chain(length: int) -> Graph:
    b = GraphBuilder(0)
    x = b.input((1, 8, 8, 4))
    for _ in range(length):
        x = b.conv(x, 4, (1, 1))
    return b.build([x])


def test_a_chain_needs_two_buffers():
    graph = chain(6)
    plan = plan_memory(graph)
    check_plan(graph, plan)
    size = 8 * 8 * 4
    assert plan.naive == 7 * size and plan.peak == 2 * size == plan.live_peak


def test_elementwise_ops_work_in_place():
    b = GraphBuilder(1)
    x = b.input((1, 4, 4, 8))
    y = b.conv(x, 8, (1, 1))
    z = b.clamp(y, 0, 200)
    s = b.add(z, b.conv(x, 8, (1, 1)))
    graph = b.build([s])
    plan = plan_memory(graph)
    check_plan(graph, plan)
    assert [(a.name, o.name) for a, o in plan.inplace] == [(y.name, z.name), (z.name, s.name)]
    assert plan.offsets[z] == plan.offsets[y]
    none = plan_memory(graph, inplace_ops=frozenset())
    check_plan(graph, none)
    assert none.inplace == () and none.peak >= plan.peak


def test_concat_parts_are_written_into_their_base():
    b = GraphBuilder(2)
    x = b.input((1, 4, 4, 3))
    q = b.quant(0.05)
    parts = [b.conv(x, 8, (1, 1), quant=q), b.conv(x, 16, (1, 1), quant=q)]
    graph = b.build([b.concat(parts, 3)])
    lower_layouts(graph, table={Op.CONV: LayoutRule(NCHW, NCHW), Op.CONCAT: LayoutRule(NCHW, NCHW)})
    assert lower_views(graph)
    plan = plan_memory(graph, alignment=64)
    check_plan(graph, plan, 64)
    concat = next(n for n in graph if n.op is Op.CONCAT)
    a, c = concat.inputs
    assert plan.offsets[c] - plan.offsets[a] == 8 * 4 * 4  # channel planes back to back
    assert plan.root(a) is concat.output


def test_contiguous_request_places_b_after_a():
    b = GraphBuilder(3)
    x = b.input((1, 5, 5, 3))
    left, right = b.conv(x, 3, (1, 1)), b.conv(x, 3, (1, 1))
    graph = b.build([b.add(left, right)])
    plan = plan_memory(graph, alignment=16, contiguous=[(left, right)])
    check_plan(graph, plan, 16)
    assert plan.offsets[right] == plan.offsets[left] + 80  # 75 bytes rounded up to 16
    assert plan.inplace == ()  # the pair is pinned
    with pytest.raises(PlanError, match="not a planned tensor"):
        plan_memory(graph, contiguous=[(left, graph.nodes[0].inputs[1])])


def test_strided_row_views_in_nc1hwc2():
    b = GraphBuilder(4)
    x = b.input((1, 12, 6, 40))
    graph = b.build([b.conv(x, 40)])
    grouped = Layout(LayoutKind.NC1HWC2, 16)
    lower_split_conv_rows(graph, max_rows=4)
    lower_layouts(
        graph,
        table={op: LayoutRule(grouped, grouped) for op in (Op.CONV, Op.CONCAT, Op.STRIDED_SLICE)},
    )
    assert not lower_views(graph.copy())  # rows of 3 channel groups are not contiguous
    assert lower_views(graph, strided=True)
    plan = plan_memory(graph)
    check_plan(graph, plan)
    concat = next(n for n in graph if n.op is Op.CONCAT)
    # Each row tile starts 4 rows (4 * 6 pixels * 16 bytes) further into the first surface.
    assert [plan.offsets[t] - plan.offsets[concat.output] for t in concat.inputs] == [0, 384, 768]
    assert nbytes(concat.output) == 3 * 12 * 6 * 16


@settings(max_examples=10, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**16),
    depth=st.integers(1, 4),
    dtype=st.sampled_from(list(ElementType)[:2]),
)
def test_property_plans_of_lowered_graphs(seed, depth, dtype):
    b = GraphBuilder(seed, dtype)
    x = b.input((1, 9, 9, 8))
    skip = b.conv(x, 16, (1, 1))
    y = skip
    for _ in range(depth):
        y = b.conv(y, 16, stride=(1, 1), clamp="relu6")
    y = b.add(y, skip)
    z = b.conv(y, 24, stride=(2, 2))
    graph = b.build([b.concat([z, b.conv(z, 8, (1, 1), quant=z.quant)], 3)])
    lowered = run_pipeline(graph, ALL_EXACT).graph
    for g in (graph, lowered):
        plan = plan_memory(g, alignment=32)
        check_plan(g, plan, 32)


def test_add_as_conv_inputs_end_up_back_to_back():
    """etnaviv v7's ADD: the two operands in one buffer, through the planar concat view."""
    from mesa_npu.nir_tensor.passes import lower_add_to_conv

    b = GraphBuilder(5)
    x = b.input((1, 6, 6, 4))
    left, right = b.conv(x, 4, (1, 1)), b.conv(x, 4, (1, 1))
    graph = b.build([b.add(left, right)])
    lower_add_to_conv(graph)
    planar = LayoutRule(NCHW, NCHW)
    lower_layouts(graph, table={Op.CONV: planar, Op.CONCAT: planar, Op.RESHAPE: LayoutRule(None)})
    assert lower_views(graph)
    plan = plan_memory(graph)
    check_plan(graph, plan)
    concat = next(n for n in graph if n.op is Op.CONCAT)
    first = concat.inputs[0]
    second = graph.producer(concat.inputs[1]).input  # the operand behind the reinterpretation
    assert {plan.root(first), plan.root(second)} == {concat.output}
    assert plan.offsets[second] == plan.offsets[first] + nbytes(first)
