"""Run conformance cases on a device and compare every output element with BUILTIN_REF.

Each case goes the frontend's own way: ``parse_model`` -> ``query_support`` (both gates) ->
``partition`` -> ``device.subgraph_create(...).serialize()`` -> a context deserializes, invokes
and reads the outputs (:func:`check.run_partition`). A node the device refuses makes the case
``unsupported`` (counted apart, never a failure); an exception from the device is a ``crash``
(deqp-runner's name) with its one-line message. Differences are in LSB of the output's integer
codes, as Mesa's test_teflon measures them.

Mirrors the execution half of Mesa's ``src/gallium/targets/teflon/test_teflon.cpp``; the
cases come from :mod:`.conformance`.
"""

from __future__ import annotations

import enum
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...gallium.device import MlDevice
from ...gallium.loader import open_device
from .check import compare, run_partition
from .conformance import Case, cached, expected
from .partition import partition, query_support
from .tflite import parse_model


class Status(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    UNSUPPORTED = "unsupported"
    CRASH = "crash"


@dataclass(frozen=True, slots=True)
class CaseResult:
    case_id: str
    suite: str
    status: Status
    elements: int = 0
    exact: int = 0
    max_lsb: int = 0
    detail: str = ""  # refusal reason, crash message or the differing output
    seconds: float = 0.0

    @property
    def ran(self) -> bool:
        return self.status in (Status.PASS, Status.FAIL)

    @property
    def passed(self) -> bool | None:
        """True or False when the case ran (a crash fails), None when unsupported."""
        return None if self.status is Status.UNSUPPORTED else self.status is Status.PASS

    def to_json(self) -> dict:
        return {
            "case": self.case_id,
            "suite": self.suite,
            "status": self.status.value,
            "elements": self.elements,
            "exact": self.exact,
            "max_lsb": self.max_lsb,
            "detail": self.detail,
            "seconds": round(self.seconds, 4),
        }


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]


def run_case(
    case: Case, device: MlDevice, *, tolerance: int = 0, cache: Path | None = None
) -> CaseResult:
    """Run one case on ``device``; pass when no element differs by more than ``tolerance``."""
    t0 = time.perf_counter()

    def result(status: Status, detail: str = "", **counts) -> CaseResult:
        elapsed = time.perf_counter() - t0
        return CaseResult(case.id, case.suite, status, detail=detail, seconds=elapsed, **counts)

    # A generator error raises here: it is a bug of the harness, not a device result.
    hit = cached(case, cache)
    raw = hit.model if hit is not None else case.build()
    model = parse_model(raw, f"{case.id}.tflite")
    support = query_support(model, device)
    refused = next((s for s in support if not s.supported), None)
    if refused is not None:
        return result(Status.UNSUPPORTED, f"{refused.op.label}: {refused.reason}")
    exp = hit or expected(case, cache, raw)  # BUILTIN_REF runs only for supported cases
    values: dict[int, np.ndarray] = dict(exp.inputs)
    try:
        for part in partition(model, support):
            outs, _, _ = run_partition(device, part, values)
            values.update(zip(part.outputs, outs, strict=True))
    except Exception as e:  # a device failure is a result of the case, as a crash
        return result(Status.CRASH, _one_line(e))
    elements = exact = max_lsb = 0
    worst = ""
    for index, want in exp.outputs.items():
        got = values.get(index)
        if got is None or got.size != want.size:
            shape = None if got is None else got.shape
            return result(Status.CRASH, f"output {index}: got shape {shape}, want {want.shape}")
        same, lsb = compare(got, want)
        if lsb > max_lsb:
            worst = f"output {index}: {want.size - same} of {want.size} differ, max {lsb} LSB"
        elements, exact, max_lsb = elements + want.size, exact + same, max(max_lsb, lsb)
    status = Status.PASS if max_lsb <= tolerance else Status.FAIL
    return result(status, worst, elements=elements, exact=exact, max_lsb=max_lsb)


def _run_chunk(
    device_name: str, cases: Sequence[Case], tolerance: int, cache: Path | None
) -> list[CaseResult]:
    device = open_device(device_name)
    try:
        return [run_case(c, device, tolerance=tolerance, cache=cache) for c in cases]
    finally:
        device.destroy()


def run_cases(
    cases: Sequence[Case],
    device_name: str,
    *,
    tolerance: int = 0,
    jobs: int = 1,
    cache: Path | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Results of ``cases`` in order; ``jobs > 1`` spreads chunks over worker processes."""
    if jobs <= 1 or len(cases) < 2:
        device = open_device(device_name)
        results = []
        try:
            for case in cases:
                results.append(run_case(case, device, tolerance=tolerance, cache=cache))
                if on_result is not None:
                    on_result(results[-1])
        finally:
            device.destroy()
        return results
    # Small chunks balance the load (case costs differ by 10^6); spawn avoids forking a process
    # whose BLAS or LiteRT threads may hold locks.
    size = max(1, min(16, len(cases) // (jobs * 8)))
    chunks = [cases[i : i + size] for i in range(0, len(cases), size)]
    results = []
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
        futures = [pool.submit(_run_chunk, device_name, c, tolerance, cache) for c in chunks]
        for future in futures:
            for r in future.result():
                results.append(r)
                if on_result is not None:
                    on_result(r)
    return results


@dataclass(frozen=True, slots=True)
class SuiteSummary:
    suite: str
    cases: int
    ran: int  # supported and run to the end (pass or fail)
    exact: int  # cases whose every element is bit-exact
    passed: int
    unsupported: int
    max_lsb: int
    failures: tuple[str, ...]  # fail or crash, by case ID
    seconds: float

    @property
    def exact_share(self) -> float:
        return self.exact / self.ran if self.ran else 0.0

    def to_json(self) -> dict:
        return {
            "suite": self.suite,
            "cases": self.cases,
            "ran": self.ran,
            "exact": self.exact,
            "exact_share": round(self.exact_share, 4),
            "passed": self.passed,
            "unsupported": self.unsupported,
            "max_lsb": self.max_lsb,
            "failures": list(self.failures),
            "seconds": round(self.seconds, 3),
        }


def summarize(results: Sequence[CaseResult]) -> list[SuiteSummary]:
    """One summary per suite, in the order the suites first appear."""
    by_suite: dict[str, list[CaseResult]] = {}
    for r in results:
        by_suite.setdefault(r.suite, []).append(r)
    return [
        SuiteSummary(
            suite=name,
            cases=len(rs),
            ran=sum(r.ran for r in rs),
            exact=sum(r.ran and r.max_lsb == 0 for r in rs),
            passed=sum(r.status is Status.PASS for r in rs),
            unsupported=sum(r.status is Status.UNSUPPORTED for r in rs),
            max_lsb=max((r.max_lsb for r in rs if r.ran), default=0),
            failures=tuple(r.case_id for r in rs if r.status in (Status.FAIL, Status.CRASH)),
            seconds=sum(r.seconds for r in rs),
        )
        for name, rs in by_suite.items()
    ]


def format_summary(device: str, summaries: Sequence[SuiteSummary], *, limit: int = 10) -> str:
    lines = [
        f"teflon sweep on {device}",
        f"{'suite':<12} {'cases':>6} {'ran':>6} {'exact':>7} {'max LSB':>7} {'unsupp':>6} "
        f"{'failed':>6} {'seconds':>8}",
    ]
    for s in summaries:
        lines.append(
            f"{s.suite:<12} {s.cases:>6} {s.ran:>6} {100 * s.exact_share:>6.1f}% "
            f"{s.max_lsb:>7} {s.unsupported:>6} {len(s.failures):>6} {s.seconds:>8.2f}"
        )
    total = [f for s in summaries for f in s.failures]
    for case_id in total[:limit]:
        lines.append(f"  failed: {case_id}")
    if limit and len(total) > limit:
        lines.append(f"  ... and {len(total) - limit} more (see --json)")
    return "\n".join(lines)
