"""lower_views: which concatenations, splits, slices and reshapes become views, and where."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.nir_tensor.equivalence import check_pass
from mesa_npu.nir_tensor.ir import NCHW, Layout, LayoutKind, Op
from mesa_npu.nir_tensor.params import ConcatView, ReshapeView, SliceView, SplitView
from mesa_npu.nir_tensor.passes import LayoutRule, lower_layouts, lower_views
from mesa_npu.nir_tensor.testing import GraphBuilder, require_kernels
from mesa_npu.nir_tensor.validate import ValidationError, validate

PROFILE = "nir_tensor.passes"


def relaid(graph, layout):
    table = {op: LayoutRule(layout, layout) for op in (Op.CONV, Op.CONCAT, Op.SPLIT)}
    after = graph.copy()
    lower_layouts(after, table=table)
    return after


def concat_graph(axis):
    b = GraphBuilder(0)
    x = b.input((1, 4, 5, 3))
    q = b.quant(0.05)
    if axis == 3:
        parts = [b.conv(x, 16, (1, 1), quant=q), b.conv(x, 8, (1, 1), quant=q)]
    else:
        parts = [b.conv(x, 3, (1, 1), quant=q), b.conv(b.input((1, 2, 5, 3)), 3, (1, 1), quant=q)]
    return b.build([b.concat(parts, axis)])


def test_channel_concat_is_a_view_when_planar():
    require_kernels(Op.CONV, Op.CONCAT)
    graph = concat_graph(3)
    check_pass(graph, lower_views, expect_progress=False)  # NHWC interleaves the parts
    planar = relaid(graph, NCHW)
    check_pass(planar, lower_views, expect_progress=True)
    after = planar.copy()
    lower_views(after)
    (concat,) = [n for n in after if n.op is Op.CONCAT]
    assert concat.params == ConcatView(3, (0, 16 * 4 * 5))
    grouped = relaid(graph, Layout(LayoutKind.NC1HWC2, 16))
    after = grouped.copy()
    assert lower_views(after)
    (concat,) = [n for n in after if n.op is Op.CONCAT]
    assert concat.params.offsets == (0, 16 * 4 * 5)  # one 16-channel group
    assert not lower_views(relaid(graph, Layout(LayoutKind.NC1HWC2, 32)))  # cut inside a group


def test_row_concat_is_a_view_in_nhwc():
    require_kernels(Op.CONV, Op.CONCAT)
    after = concat_graph(1)
    assert lower_views(after)
    (concat,) = [n for n in after if n.op is Op.CONCAT]
    assert concat.params.offsets == (0, 4 * 5 * 3)


def test_split_slice_reshape_views():
    b = GraphBuilder(1)
    x = b.input((1, 6, 4, 2))
    top, bottom = b.split(x, 1, (2, 4))
    sl = b.slice(bottom, (0, 1, 0, 0), (1, 3, 4, 2))
    strided = b.slice(x, (0, 0, 0, 0), (1, 6, 4, 2), (1, 2, 1, 1))
    flat = b.reshape(sl, (1, 1, 1, 16))
    graph = b.build([top, flat, strided])
    check_pass(graph, lower_views, expect_progress=True)
    after = graph.copy()
    lower_views(after)
    params = [n.params for n in after]
    assert params[0] == SplitView(1, (0, 2 * 4 * 2))
    assert isinstance(params[1], SliceView) and params[1].offsets == (4 * 2,)
    assert not isinstance(params[2], SliceView)  # stride 2 rows: not contiguous
    assert params[3] == ReshapeView()


def test_a_layout_change_after_views_is_caught_by_the_validator():
    require_kernels(Op.CONV, Op.CONCAT)
    after = relaid(concat_graph(3), NCHW)
    lower_views(after)
    concat = next(n for n in after if n.op is Op.CONCAT)
    validate(after)
    # Offsets that do not match the layouts (as after a layout change) fail validation.
    after.replace(concat, [concat.with_(params=ConcatView(3, (0, 16 * 4 * 4)))])
    with pytest.raises(ValidationError, match="does not match its layout"):
        validate(after)


def test_a_requantizing_concat_is_not_a_view():
    require_kernels(Op.CONV, Op.CONCAT)
    b = GraphBuilder(5)
    x = b.input((1, 4, 5, 3))
    graph = b.build([b.concat([b.conv(x, 3, (1, 1)), b.conv(x, 3, (1, 1))], 1)])
    check_pass(graph, lower_views, expect_progress=False)  # uint8 CONCAT rescales part 2


def test_a_part_can_live_in_one_base_only():
    b = GraphBuilder(2)
    x = b.input((1, 2, 3, 1))
    y = b.input((1, 2, 3, 1))
    r = b.reshape(x, (1, 3, 2, 1))
    c = b.concat([r, b.reshape(y, (1, 3, 2, 1))], axis=1)
    d = b.concat([r, r], axis=1)  # a part twice: not a view
    graph = b.build([c, d])
    after = graph.copy()
    lower_views(after)
    ops = {n.op: n.params for n in after}
    assert isinstance(after.nodes[0].params, ReshapeView)
    assert not isinstance(ops[Op.CONCAT], ConcatView)  # r is already a view of x


@settings(settings.get_profile(PROFILE))
@given(
    seed=st.integers(0, 2**16),
    layout=st.sampled_from([None, NCHW, Layout(LayoutKind.NC1HWC2, 4)]),
    axis=st.sampled_from([1, 2, 3]),
    sizes=st.lists(st.integers(1, 8), min_size=1, max_size=3),
)
def test_property_views_are_exact(seed, layout, axis, sizes):
    require_kernels(Op.CONV, Op.CONCAT)
    b = GraphBuilder(seed)
    x = b.input((1, 3, 3, 2))
    q = b.quant(0.05)
    parts = []
    for s in sizes:
        shape = [1, 3, 3, 4]
        shape[axis] = s
        src = b.input((*shape[:3], 2))
        parts.append(
            b.conv(src, shape[3], (1, 1), quant=q) if axis != 3 else b.conv(x, s, (1, 1), quant=q)
        )
    cat = b.concat(parts, axis)
    halves = (
        b.split(cat, axis, (cat.shape[axis] - sizes[-1], sizes[-1])) if len(sizes) > 1 else [cat]
    )
    graph = b.build(halves)
    if layout is not None:
        graph = relaid(graph, layout)
    check_pass(graph, lower_views)
