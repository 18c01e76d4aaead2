"""The conformance generator: IDs, sweep sizes, determinism, sample coverage, realistic
quantization, the expected-output cache and the expectation files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mesa_npu.frontends.teflon.conformance import SUITES, Variant, cached, expected, find_suite
from mesa_npu.frontends.teflon.conformance.conv import (
    AddCase,
    ConvCase,
    DepthwiseCase,
    FullyConnectedCase,
)
from mesa_npu.frontends.teflon.expectations import (
    ExpectationError,
    Verdict,
    load_expectations,
    verdict,
)
from mesa_npu.frontends.teflon.mapping import map_operation
from mesa_npu.frontends.teflon.tflite import parse_model

FULL = {s.name: s.full() for s in SUITES}
SAMPLE = {s.name: s.sample() for s in SUITES}


def test_ids_spell_out_parameters() -> None:
    assert ConvCase(8, 3, 32, 16, 2, True, Variant.U8).id == "conv-in8x8-k3-ic32-oc16-s2-same-u8"
    assert (
        DepthwiseCase(5, 5, 120, 1, False, Variant.I8PC).id == "dwconv-in5x5-k5-c120-s1-valid-i8pc"
    )
    assert AddCase(8, 1, 32, 1, 1, False, Variant.U8).id == "add-in8x8-k1-ic32-oc1-s1-valid-u8"
    assert FullyConnectedCase(1280, 32, Variant.I8PC).id == "fc-in1280-oc32-i8pc"


def test_ids_are_unique_and_name_their_suite() -> None:
    ids = [c.id for cases in FULL.values() for c in cases]
    assert len(ids) == len(set(ids))
    for name, cases in FULL.items():
        assert all(c.suite == name for c in cases), name


def test_mesa_sweep_sizes() -> None:
    """Mesa's lists (brief teflon-gallium.md §3): 1800 Conv2D cases less the 120 whose 5x5
    kernel exceeds a 3x3 input, 200 depthwise less 20, 24 FC, 100 AddQuant seeds; we run each
    in two variants."""
    assert len(FULL["conv"]) == len(FULL["add"]) == 2 * (2 * 2 * 6 * 5 * 3 * 5 - 2 * 2 * 6 * 5)
    assert len(FULL["dwconv"]) == 2 * (2 * 2 * 5 * 2 * 5 - 2 * 2 * 5)
    assert len(FULL["fc"]) == 2 * 6 * 4
    assert len(FULL["addquant"]) == 2 * 100
    assert {c.variant for c in FULL["conv"]} == {Variant.U8, Variant.I8PC}
    assert {c.variant for c in FULL["pool"]} == {Variant.U8, Variant.I8}


@pytest.mark.parametrize("suite", [s.name for s in SUITES])
def test_sample_is_a_covering_subset(suite: str) -> None:
    full, sample = FULL[suite], SAMPLE[suite]
    ids = {c.id for c in full}
    assert sample and {c.id for c in sample} <= ids
    assert [c.id for c in sample] == sorted(c.id for c in sample)
    assert [c.id for c in find_suite(suite).sample()] == [c.id for c in sample]  # deterministic
    skip = set(find_suite(suite).uncovered)
    for f in dataclasses.fields(full[0]):
        if f.name in skip:
            continue
        values = {getattr(c, f.name) for c in full}
        assert values == {getattr(c, f.name) for c in sample}, f"{suite}: {f.name}"


def test_cases_build_deterministically() -> None:
    a, b = FULL["conv"][0], FULL["conv"][1]
    assert a.build() == a.build()
    assert a.build() != b.build()


def _saturation(out: np.ndarray) -> float:
    info = np.iinfo(out.dtype)
    return float(np.mean((out == info.min) | (out == info.max)))


@pytest.mark.parametrize("suite", [s.name for s in SUITES])
def test_sample_cases_are_expressible_and_not_saturated(suite: str) -> None:
    """Every op maps through the frontend, and BUILTIN_REF's outputs are realistic: no output
    of 16 or more elements is a constant or more than 90% saturated."""
    for case in SAMPLE[suite]:
        exp = expected(case)
        model = parse_model(exp.model, case.id)
        for op in model.ops:
            assert not isinstance(map_operation(op, model), str), (case.id, op.label)
        for out in exp.outputs.values():
            if out.size >= 16:
                assert len(np.unique(out)) > 1, f"{case.id}: constant output"
                assert _saturation(out) <= 0.9, f"{case.id}: {_saturation(out):.0%} saturated"


def test_cache_round_trip(tmp_path) -> None:
    case = SAMPLE["pad"][0]
    assert cached(case, tmp_path) is None
    first = expected(case, tmp_path)
    hit = cached(case, tmp_path)
    assert hit is not None and hit.model == first.model
    for k, v in first.outputs.items():
        np.testing.assert_array_equal(hit.outputs[k], v)
    for k, v in first.inputs.items():
        np.testing.assert_array_equal(hit.inputs[k], v)
    # A damaged entry is recomputed, not trusted.
    (path,) = tmp_path.rglob("*.npz")
    path.write_bytes(b"junk")
    assert cached(case, tmp_path) is None
    assert expected(case, tmp_path).model == first.model


def test_expectation_files(tmp_path) -> None:
    (tmp_path / "etnaviv-imx8mp-fails.txt").write_text(
        "# rounding of the last stage\nconv-a,Fail\nconv-b,Fail  # own cause\n"
    )
    (tmp_path / "etnaviv-imx8mp-flakes.txt").write_text("# timing\nadd-c\n")
    (tmp_path / "etnaviv-imx8mp-skips.txt").write_text("# too slow\n^fc-in62720-\n")
    exp = load_expectations(tmp_path, "etnaviv:imx8mp")
    assert exp.fails == {"conv-a": "rounding of the last stage", "conv-b": "own cause"}
    assert exp.skipped("fc-in62720-oc1-u8") and not exp.skipped("fc-in128-oc1-u8")
    assert verdict("conv-a", False, exp) is Verdict.EXPECTED_FAIL
    assert verdict("conv-a", True, exp) is Verdict.UNEXPECTED_PASS
    assert verdict("conv-x", False, exp) is Verdict.UNEXPECTED_FAIL
    assert verdict("add-c", False, exp) is Verdict.FLAKE
    assert verdict("conv-x", None, exp) is Verdict.UNSUPPORTED
    assert verdict("fc-in62720-oc1-u8", False, exp) is Verdict.SKIP
    assert load_expectations(tmp_path, "rocket").fails == {}
    (tmp_path / "rocket-fails.txt").write_text("conv-a Fail\n")
    with pytest.raises(ExpectationError, match=r"rocket-fails.txt:1"):
        load_expectations(tmp_path, "rocket")
