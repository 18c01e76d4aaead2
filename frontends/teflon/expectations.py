"""Per-device expectation files, as Mesa's CI keeps them for deqp-runner.

``<device>-fails.txt`` lists known failures as ``CaseID,Fail`` (a ``# cause`` comment on the line
or the comment lines above it says why), ``<device>-flakes.txt`` bare case IDs whose result may
go either way, ``<device>-skips.txt`` regular expressions (with comments) of cases not to run. A
device name's ``:`` becomes ``-`` in the file name (``etnaviv:imx8mp`` ->
``etnaviv-imx8mp-fails.txt``), as Mesa names ``rocket-rk3588-fails.txt``.

:func:`verdict` compares a result with the expectations: a failure not listed is an
``UnexpectedFail``, a listed failure that passes an ``UnexpectedPass`` (remove the line).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class Verdict(enum.Enum):
    """The outcome against expectations; the value is deqp-runner's name."""

    PASS = "Pass"
    EXPECTED_FAIL = "ExpectedFail"
    UNEXPECTED_FAIL = "UnexpectedFail"
    UNEXPECTED_PASS = "UnexpectedPass"
    FLAKE = "Flake"
    SKIP = "Skip"
    UNSUPPORTED = "Unsupported"

    @property
    def is_problem(self) -> bool:
        return self in (Verdict.UNEXPECTED_FAIL, Verdict.UNEXPECTED_PASS)


class ExpectationError(ValueError):
    """A malformed line in an expectation file (the message names the file and line)."""


@dataclass(frozen=True, slots=True)
class Expectations:
    fails: Mapping[str, str] = field(default_factory=dict)  # case ID -> cause
    flakes: frozenset[str] = frozenset()
    skips: tuple[re.Pattern, ...] = ()

    def skipped(self, case_id: str) -> bool:
        return any(p.search(case_id) for p in self.skips)


def file_stem(device: str) -> str:
    return device.replace(":", "-")


def _lines(path: Path):
    """(line number, content, comment) of every non-blank line; a missing file has none."""
    if not path.exists():
        return
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        content, _, comment = raw.partition("#")
        if content.strip() or comment.strip():
            yield number, content.strip(), comment.strip()


def load_expectations(directory: str | Path, device: str) -> Expectations:
    """The expectations of ``device`` in ``directory`` (empty when there are no files)."""
    base = Path(directory)
    stem = file_stem(device)
    fails: dict[str, str] = {}
    cause = ""
    path = base / f"{stem}-fails.txt"
    for number, content, comment in _lines(path):
        if not content:  # a comment line names the cause of the lines below it
            cause = comment
            continue
        name, sep, status = content.partition(",")
        if not sep or status.strip() != "Fail":
            raise ExpectationError(f"{path.name}:{number}: expected 'CaseID,Fail', got {content!r}")
        fails[name.strip()] = comment or cause
    flakes = frozenset(c for _, c, _ in _lines(base / f"{stem}-flakes.txt") if c)
    skips = []
    path = base / f"{stem}-skips.txt"
    for number, content, _ in _lines(path):
        if content:
            try:
                skips.append(re.compile(content))
            except re.error as e:
                raise ExpectationError(f"{path.name}:{number}: bad regex: {e}") from None
    return Expectations(fails, flakes, tuple(skips))


def verdict(case_id: str, passed: bool | None, exp: Expectations) -> Verdict:
    """``passed`` is None for an unsupported case (not run, never a failure)."""
    if exp.skipped(case_id):
        return Verdict.SKIP
    if passed is None:
        return Verdict.UNSUPPORTED
    if case_id in exp.flakes:
        return Verdict.PASS if passed else Verdict.FLAKE
    if case_id in exp.fails:
        return Verdict.UNEXPECTED_PASS if passed else Verdict.EXPECTED_FAIL
    return Verdict.PASS if passed else Verdict.UNEXPECTED_FAIL
