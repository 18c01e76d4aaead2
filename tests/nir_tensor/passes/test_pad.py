"""opt_fold_pad: a zero-point PAD folds into the following convolution's padding, exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.gallium import ElementType
from mesa_npu.gallium.operation import Padding
from mesa_npu.nir_tensor.equivalence import check_pass
from mesa_npu.nir_tensor.ir import Op
from mesa_npu.nir_tensor.passes import opt_fold_pad
from mesa_npu.nir_tensor.testing import GraphBuilder, require_kernels

PROFILE = "nir_tensor.passes"


def pad_conv(seed=0, before=(0, 1, 1, 0), after=(0, 1, 2, 0), value=None, **conv):
    b = GraphBuilder(seed)
    x = b.input((1, 6, 7, 3))
    p = b.pad(x, before, after, value)
    return b, x, p, b.conv(p, 4, padding="valid", **conv)


def test_pad_folds_into_conv_padding():
    require_kernels(Op.CONV)
    b, x, _, y = pad_conv(stride=(2, 2))
    graph = b.build([y])
    check_pass(graph, opt_fold_pad, expect_progress=True)
    after = graph.copy()
    opt_fold_pad(after)
    (conv,) = after.nodes
    assert conv.input is x and conv.params.padding == Padding(1, 1, 1, 2)


def test_what_must_not_fold():
    require_kernels(Op.CONV)
    # Pad value other than the zero point; channel padding; a limit the padding would pass.
    b, x, _, y = pad_conv(value=7)
    check_pass(b.build([y]), opt_fold_pad, expect_progress=x.quant.zero_point == 7)
    b, _, _, y = pad_conv(before=(0, 1, 1, 1), after=(0, 0, 0, 0))
    check_pass(b.build([y]), opt_fold_pad, expect_progress=False)
    b, _, _, y = pad_conv(before=(0, 3, 0, 0), after=(0, 0, 0, 0))
    check_pass(b.build([y]), opt_fold_pad, expect_progress=False, max_padding=2)


def test_pad_shared_with_another_reader_stays_for_it():
    require_kernels(Op.CONV)
    b, _, p, y = pad_conv()
    graph = b.build([y, p])
    after = graph.copy()
    assert opt_fold_pad(after)
    assert [n.op for n in after] == [Op.PAD, Op.CONV]
    assert after.nodes[1].input is not p
    check_pass(graph, opt_fold_pad)


@settings(settings.get_profile(PROFILE))
@given(
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([ElementType.UINT8, ElementType.INT8]),
    pads=st.tuples(*[st.integers(0, 3)] * 4),
    kernel=st.sampled_from([(1, 1), (3, 3), (2, 3), (5, 5)]),
    stride=st.sampled_from([(1, 1), (2, 2), (1, 2)]),
    depthwise=st.booleans(),
    same=st.booleans(),
)
def test_property_fold_pad_is_exact(seed, dtype, pads, kernel, stride, depthwise, same):
    require_kernels(Op.CONV)
    b = GraphBuilder(seed, dtype)
    x = b.input((1, 7, 6, 4))
    p = b.pad(x, (0, pads[0], pads[1], 0), (0, pads[2], pads[3], 0))
    y = b.conv(
        p, 4, kernel, stride=stride, depthwise=depthwise, padding="same" if same else "valid"
    )
    graph = b.build([y])
    check_pass(graph, opt_fold_pad, expect_progress=True)
