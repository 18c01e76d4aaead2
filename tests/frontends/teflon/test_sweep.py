"""The sweep runner and ``teflon sweep``: statuses, LSB measurement, summaries, exit codes.

Devices that misbehave on purpose are small real subclasses of the reference device.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mesa_npu.drivers.reference.device import ReferenceContext, ReferenceDevice
from mesa_npu.frontends.teflon import cli
from mesa_npu.frontends.teflon.conformance import find_suite
from mesa_npu.frontends.teflon.sweep import Status, run_case, run_cases, summarize
from mesa_npu.gallium.device import CompileError

CASE = find_suite("pad").sample()[0]


class OffByContext(ReferenceContext):
    def __init__(self, delta: int) -> None:
        super().__init__()
        self.delta = delta

    def subgraph_read_outputs(self, subgraph):
        outs = super().subgraph_read_outputs(subgraph)
        return [
            np.clip(
                o.astype(np.int64) + self.delta, np.iinfo(o.dtype).min, np.iinfo(o.dtype).max
            ).astype(o.dtype)
            for o in outs
        ]


class OffByDevice(ReferenceDevice):
    """Adds ``delta`` to every output code (clipped), like a rounding bug."""

    def __init__(self, delta: int) -> None:
        super().__init__()
        self.delta = delta

    def create_context(self) -> OffByContext:
        return OffByContext(self.delta)


class RefusingDevice(ReferenceDevice):
    def operation_supported(self, op):
        return "refused by the test"


class CrashingDevice(ReferenceDevice):
    def subgraph_create(self, ops):
        raise CompileError("no registers left")


def test_exact_on_reference() -> None:
    r = run_case(CASE, ReferenceDevice())
    assert r.status is Status.PASS and r.max_lsb == 0 and r.exact == r.elements > 0


@pytest.mark.parametrize("delta", [1, 3])
def test_measures_lsb_and_applies_tolerance(delta: int) -> None:
    r = run_case(CASE, OffByDevice(delta))
    assert r.status is Status.FAIL and r.max_lsb == delta and r.exact < r.elements
    assert "differ" in r.detail
    assert run_case(CASE, OffByDevice(delta), tolerance=delta).status is Status.PASS


def test_unsupported_and_crash_are_not_mixed_up() -> None:
    r = run_case(CASE, RefusingDevice())
    assert r.status is Status.UNSUPPORTED and "refused by the test" in r.detail
    assert r.passed is None
    r = run_case(CASE, CrashingDevice())
    assert r.status is Status.CRASH and "no registers left" in r.detail and r.passed is False


def test_summary_counts() -> None:
    cases = find_suite("split").sample() + find_suite("reshape").sample()
    results = run_cases(cases, "reference")
    assert [r.case_id for r in results] == [c.id for c in cases]
    split, reshape = summarize(results)
    assert (split.suite, split.cases, split.ran, split.exact) == ("split", 10, 10, 10)
    assert reshape.exact_share == 1.0 and reshape.failures == ()


def test_parallel_matches_serial() -> None:
    cases = find_suite("transpose").sample()
    serial = run_cases(cases, "reference")
    parallel = run_cases(cases, "reference", jobs=2)
    assert [(r.case_id, r.status, r.max_lsb) for r in parallel] == [
        (r.case_id, r.status, r.max_lsb) for r in serial
    ]


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def test_cli_json(capsys) -> None:
    code, out = run_cli(capsys, "sweep", "-d", "reference", "-s", "split", "-s", "pad", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["device"] == "reference"
    assert [s["suite"] for s in doc["suites"]] == ["split", "pad"]
    assert all(s["exact_share"] == 1.0 and s["max_lsb"] == 0 for s in doc["suites"])
    assert len(doc["cases"]) == sum(s["cases"] for s in doc["suites"])


def test_cli_list_and_save(capsys, tmp_path) -> None:
    code, out = run_cli(capsys, "sweep", "-s", "fc", "--list", "--full")
    assert code == 0 and out.split() == [c.id for c in find_suite("fc").full()]
    code, _ = run_cli(capsys, "sweep", "-s", "tanh", "--save", str(tmp_path))
    assert code == 0 and len(list(tmp_path.glob("tanh-*.tflite"))) == 4


def test_cli_expectations_flag_unexpected_pass(capsys, tmp_path) -> None:
    (tmp_path / "reference-fails.txt").write_text(f"# test\n{CASE.id},Fail\n")
    code, out = run_cli(
        capsys, "sweep", "-d", "reference", "-s", "pad", "--expectations", str(tmp_path)
    )
    assert code == 1 and f"UnexpectedPass: {CASE.id}" in out
