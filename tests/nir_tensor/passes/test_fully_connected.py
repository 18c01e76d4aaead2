"""lower_fc_to_conv: 1x1 and etnaviv's factorised form, exact where the multipliers agree."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.gallium import ElementType
from mesa_npu.nir_tensor.equivalence import check_pass
from mesa_npu.nir_tensor.ir import Op
from mesa_npu.nir_tensor.passes import lower_fc_to_conv
from mesa_npu.nir_tensor.passes.fully_connected import factor_features
from mesa_npu.nir_tensor.testing import GraphBuilder, require_kernels

PROFILE = "nir_tensor.passes"


@pytest.mark.parametrize(
    ("features", "want"),
    [(1280, (10, 8, 16)), (1024, (8, 8, 16)), (17, (1, 1, 17)), (360, (15, 12, 2)), (7, (7, 1, 1))],
)
def test_factorisation_follows_etnaviv(features, want):
    x, y, z = factor_features(features, 15)
    assert (x, y, z) == want and x * y * z == features


@pytest.mark.parametrize("factorize", [False, True])
def test_fc_becomes_conv(factorize):
    require_kernels(Op.CONV, Op.FULLY_CONNECTED)
    b = GraphBuilder(seed=3)
    x = b.input((1, 2, 3, 20))
    y = b.fc(x, 10, features=120, clamp="relu")
    graph = b.build([y])
    result = check_pass(graph, lower_fc_to_conv, bound=1, expect_progress=True, factorize=factorize)
    assert result.differing <= result.elements // 50  # one LSB, and rarely
    after = graph.copy()
    lower_fc_to_conv(after, factorize=factorize)
    conv = next(n for n in after if n.op is Op.CONV)
    assert conv.inputs[1].shape == ((10, 8, 15, 1) if factorize else (10, 1, 1, 120))
    assert conv.params.clamp == graph.nodes[0].params.clamp


def test_batched_fc_is_one_pixel_per_row_and_not_factorised():
    require_kernels(Op.CONV, Op.FULLY_CONNECTED)
    b = GraphBuilder(seed=4)
    x = b.input((1, 1, 4, 12))
    graph = b.build([b.fc(x, 5)])
    check_pass(graph, lower_fc_to_conv, bound=1, expect_progress=True)
    check_pass(graph, lower_fc_to_conv, expect_progress=False, factorize=True)


@settings(settings.get_profile(PROFILE))
@given(
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([ElementType.UINT8, ElementType.INT8]),
    features=st.integers(1, 300),
    units=st.integers(1, 24),
    factorize=st.booleans(),
)
def test_property_fc_lowering_within_one_lsb(seed, dtype, features, units, factorize):
    require_kernels(Op.CONV, Op.FULLY_CONNECTED)
    b = GraphBuilder(seed, dtype)
    x = b.input((1, 1, 1, features))
    graph = b.build([b.fc(x, units)])
    check_pass(graph, lower_fc_to_conv, bound=1, expect_progress=True, factorize=factorize)
