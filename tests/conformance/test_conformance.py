"""Conformance sweeps per device, judged against the device's expectation files.

Mirrors Mesa CI running test_teflon under deqp-runner: the CI sample of every suite by default,
every case with ``--full-sweep``. A case fails when it differs from BUILTIN_REF by more than the
device's LSB bound and is not listed in ``expectations/<device>-fails.txt``, or when a listed
failure passes (``UnexpectedPass``: remove the line). Flakes never fail, skips never run, and a
case the device refuses is skipped as unsupported unless the device must support everything.

To add a device, append a row to :data:`DEVICES` (and expectation files when it has known
failures); a device the loader does not find is skipped with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from mesa_npu.frontends.teflon.conformance import SUITES, cache_from_env
from mesa_npu.frontends.teflon.expectations import Verdict, load_expectations, verdict
from mesa_npu.frontends.teflon.sweep import Status, run_case
from mesa_npu.gallium.loader import DeviceNotFound, open_device

EXPECTATIONS = Path(__file__).parent / "expectations"


@dataclass(frozen=True, slots=True)
class DeviceUnderTest:
    name: str  # loader name, e.g. "rocket" or "etnaviv:imx8mp"
    max_lsb: int  # largest difference from BUILTIN_REF that passes (Mesa's own bound is 8)
    must_support: bool = False  # an unsupported case fails instead of being skipped


DEVICES = (
    DeviceUnderTest("reference", max_lsb=0, must_support=True),
    # docs/rocket.md: bit-exact but for products closer to a rounding point than the DPU's
    # 30-bit multiplier resolves (a few elements in a few cases, 1 LSB).
    DeviceUnderTest("rocket", max_lsb=1),
    # docs/etnaviv.md "Exactness": the NN unit rounds its requantization once, TFLite's
    # reference twice (and v7 keeps a 15-bit multiplier): 1 LSB on some elements.
    DeviceUnderTest("etnaviv", max_lsb=1),
    DeviceUnderTest("etnaviv:imx8mp", max_lsb=1),
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    full = metafunc.config.getoption("--full-sweep")
    cases = [c for s in SUITES for c in (s.full() if full else s.sample())]
    metafunc.parametrize(
        ("dut", "case"),
        [(d, c) for d in DEVICES for c in cases],
        ids=[f"{d.name}:{c.id}" for d in DEVICES for c in cases],
    )


@pytest.fixture(scope="session")
def open_devices():
    """Opens each device once per session (or records why it is absent)."""
    opened: dict[str, object] = {}

    def get(name: str):
        if name not in opened:
            try:
                opened[name] = open_device(name)
            except DeviceNotFound as e:
                opened[name] = str(e)
        return opened[name]

    yield get
    for device in opened.values():
        if not isinstance(device, str):
            device.destroy()


@pytest.fixture(scope="session")
def expectations_of():
    loaded: dict = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = load_expectations(EXPECTATIONS, name)
        return loaded[name]

    return get


def test_case(dut: DeviceUnderTest, case, open_devices, expectations_of) -> None:
    expectations = expectations_of(dut.name)
    if expectations.skipped(case.id):
        pytest.skip(f"listed in {dut.name} skips")
    device = open_devices(dut.name)
    if isinstance(device, str):
        pytest.skip(f"{dut.name}: {device}")
    result = run_case(case, device, tolerance=dut.max_lsb, cache=cache_from_env())
    if result.status is Status.UNSUPPORTED and not dut.must_support:
        pytest.skip(f"unsupported: {result.detail}")
    outcome = verdict(case.id, result.passed, expectations)
    if outcome is Verdict.UNEXPECTED_PASS:
        pytest.fail(f"UnexpectedPass: {case.id} is listed in {dut.name}-fails.txt but passes")
    if outcome is Verdict.EXPECTED_FAIL:
        pytest.xfail(expectations.fails[case.id] or "listed in fails")
    if outcome is Verdict.FLAKE:
        pytest.skip(f"flake: {result.detail}")
    assert outcome is Verdict.PASS, (
        f"{result.status.value}: {result.detail} (bound {dut.max_lsb} LSB)"
    )


def test_expectation_files_name_real_cases() -> None:
    """Every fails/flakes entry names a case of the full sweep, so stale lines show up."""
    known = {c.id for s in SUITES for c in s.full()}
    for dut in DEVICES:
        exp = load_expectations(EXPECTATIONS, dut.name)
        stale = sorted((set(exp.fails) | exp.flakes) - known)
        assert not stale, f"{dut.name}: unknown case IDs {stale[:5]}"
