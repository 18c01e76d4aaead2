"""Tiling by output channels and by output rows: exact, pieces within the limits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.gallium import ElementType
from mesa_npu.nir_tensor.equivalence import check_pass
from mesa_npu.nir_tensor.ir import Op
from mesa_npu.nir_tensor.passes import lower_split_conv_channels, lower_split_conv_rows
from mesa_npu.nir_tensor.testing import GraphBuilder, require_kernels

PROFILE = "nir_tensor.passes"


def test_rows_overlap_by_kernel_minus_stride():
    require_kernels(Op.CONV, Op.CONCAT, Op.STRIDED_SLICE)
    b = GraphBuilder(seed=1)
    x = b.input((1, 12, 5, 3))
    graph = b.build([b.conv(x, 4, stride=(1, 1))])
    check_pass(graph, lower_split_conv_rows, expect_progress=True, max_rows=5)
    after = graph.copy()
    lower_split_conv_rows(after, max_rows=5)
    slices = [n for n in after if n.op is Op.STRIDED_SLICE]
    convs = [n for n in after if n.op is Op.CONV]
    assert [n.output.shape[1] for n in convs] == [5, 5, 2]
    # Output rows 0-4 read input rows 0-5 (top padding 1), rows 5-9 read 4-10, rows 10-11 read 9-11.
    assert [(s.params.begin[1], s.params.end[1]) for s in slices] == [(0, 6), (4, 11), (9, 12)]
    assert [(c.params.padding.top, c.params.padding.bottom) for c in convs] == [
        (1, 0),
        (0, 0),
        (0, 1),
    ]


def test_channels_respect_alignment_and_depthwise_multiplier():
    require_kernels(Op.CONV, Op.CONCAT, Op.STRIDED_SLICE)
    b = GraphBuilder(seed=2)
    x = b.input((1, 4, 4, 6))
    dense = b.conv(x, 40, (1, 1))
    dw = b.conv(x, 12, depthwise=True)
    graph = b.build([dense, dw])
    check_pass(graph, lower_split_conv_channels, expect_progress=True, max_channels=20, align=16)
    after = graph.copy()
    lower_split_conv_channels(after, max_channels=20, align=16)
    widths = [n.output.shape[3] for n in after if n.op is Op.CONV]
    assert widths == [16, 16, 8, 12]  # pieces of 16 (20 rounded down to the alignment)
    after = graph.copy()
    lower_split_conv_channels(after, max_channels=5)
    # Depthwise pieces are whole multiples of its multiplier (2): 4, 4, 4 input-channel pairs.
    widths = [n.output.shape[3] for n in after if n.op is Op.CONV]
    assert widths == [5] * 8 + [4, 4, 4]
    check_pass(graph, lower_split_conv_channels, max_channels=5)


@settings(settings.get_profile(PROFILE))
@given(
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([ElementType.UINT8, ElementType.INT8]),
    rows=st.integers(1, 6),
    channels=st.integers(1, 9),
    kernel=st.sampled_from([(1, 1), (3, 3), (5, 3)]),
    stride=st.sampled_from([(1, 1), (2, 2)]),
    dilation=st.sampled_from([(1, 1), (2, 1)]),
    depthwise=st.booleans(),
    per_axis=st.booleans(),
)
def test_property_splits_are_exact(
    seed, dtype, rows, channels, kernel, stride, dilation, depthwise, per_axis
):
    require_kernels(Op.CONV, Op.CONCAT, Op.STRIDED_SLICE)
    b = GraphBuilder(seed, dtype)
    x = b.input((1, 11, 6, 4))
    y = b.conv(
        x,
        8 if depthwise else 10,
        kernel,
        stride=stride,
        dilation=dilation,
        depthwise=depthwise,
        per_axis=per_axis and dtype is ElementType.INT8,
    )
    graph = b.build([y])
    check_pass(graph, lower_split_conv_rows, max_rows=rows, expect_progress=y.shape[1] > rows)
    check_pass(graph, lower_split_conv_channels, max_channels=channels)
    after = graph.copy()
    lower_split_conv_rows(after, max_rows=rows)
    lower_split_conv_channels(after, max_channels=channels)
    assert all(n.output.shape[1] <= rows for n in after if n.op is Op.CONV)
    whole = y.shape[3]
    assert all(
        n.output.shape[3] in range(1, channels + 1) or n.output.shape[3] == whole
        for n in after
        if n.op is Op.CONV
    )
