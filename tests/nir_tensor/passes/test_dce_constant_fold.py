"""opt_dce and opt_constant_fold."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.gallium import ElementType
from mesa_npu.gallium.operation import AxisParams, PadParams
from mesa_npu.nir_tensor.equivalence import check_pass
from mesa_npu.nir_tensor.ir import Op, Tensor
from mesa_npu.nir_tensor.passes import opt_constant_fold, opt_dce
from mesa_npu.nir_tensor.testing import GraphBuilder

PROFILE = "nir_tensor.passes"


def test_dce_removes_dead_chains_only():
    b = GraphBuilder(seed=1)
    x = b.input((1, 4, 4, 2))
    keep = b.reshape(x, (1, 2, 8, 2))
    dead = b.concat([b.reshape(x, (1, 8, 2, 2)), b.reshape(x, (1, 8, 2, 2))], axis=3)
    b.pad(dead, (0, 1, 0, 0), (0, 0, 0, 0))
    graph = b.build([keep])
    result = check_pass(graph, opt_dce, expect_progress=True)
    assert result.exact
    after = graph.copy()
    opt_dce(after)
    assert [n.op for n in after] == [Op.RESHAPE]
    check_pass(after, opt_dce, expect_progress=False)


def test_constant_fold_uses_the_kernels():
    b = GraphBuilder(seed=2)
    x = b.input((1, 2, 2, 3))
    data = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    c = Tensor((1, 2, 2, 3), ElementType.UINT8, x.quant, data, name="c")
    padded = b.op(Op.PAD, [c], (1, 2, 4, 3), PadParams((0, 0, 1, 0), (0, 0, 1, 0), 9))
    shaped = b.reshape(padded, (1, 4, 2, 3))
    y = b.op(Op.CONCAT, [b.reshape(x, (1, 4, 1, 3)), shaped], (1, 4, 3, 3), AxisParams(2))
    graph = b.build([y])
    check_pass(graph, opt_constant_fold, expect_progress=True)
    after = graph.copy()
    opt_constant_fold(after)
    assert [n.op for n in after] == [Op.RESHAPE, Op.CONCAT]
    folded = after.nodes[1].inputs[1]
    want = np.pad(data, ((0, 0), (0, 0), (1, 1), (0, 0)), constant_values=9).reshape(1, 4, 2, 3)
    np.testing.assert_array_equal(folded.data, want)


@settings(settings.get_profile(PROFILE))
@given(seed=st.integers(0, 2**16), dead=st.integers(0, 4), const=st.booleans())
def test_property_dce_and_fold_are_exact(seed, dead, const):
    b = GraphBuilder(seed)
    x = b.input((1, 3, 4, 2))
    live = b.reshape(x, (1, 4, 3, 2))
    for i in range(dead):
        b.reshape(x if i % 2 else live, (1, 12, 1, 2))
    if const:
        data = b.rng.integers(0, 255, size=(1, 4, 3, 2)).astype(np.uint8)
        c = Tensor((1, 4, 3, 2), ElementType.UINT8, x.quant, data)
        live = b.concat([live, b.reshape(c, (1, 4, 3, 2))], axis=3)
    graph = b.build([live])
    check_pass(graph, opt_dce, expect_progress=dead > 0)
    check_pass(graph, opt_constant_fold, expect_progress=const)
