"""The pass manager: pipelines as data, run the way ``NIR_PASS`` runs a pass.

A pass is ``def name(graph: Graph, *, options...) -> bool`` (progress). A :class:`Pipeline` is a
list of :func:`step` s (a pass plus keyword options, with an ordering note where the order
matters) and :func:`loop` s of steps run to a fixed point, like the ``do { progress = false;
NIR_PASS(progress, ...) } while (progress)`` loops of Mesa's drivers. A driver declares its
pipeline once, as data::

    PIPELINE = Pipeline("rocket", (
        step(opt_dce),
        loop(step(opt_fold_pad), step(opt_fuse_activation),
             note="a folded PAD can expose a conv whose clamp fuses, and back"),
        step(lower_add_into_conv, operand="first",
             note="after activation fusion: the ADD must see its producer's final clamp"),
    ))

:func:`run_pipeline` names each step, times it, and under ``NIR_TENSOR_DEBUG`` (read once, at
import, into the frozen :data:`DEBUG`) validates after every pass (``validate``), prints the
graph after named passes (``print_after=<pass>``, repeatable, or ``print_after=all``), prints a
per-pass timing summary (``timing``) and round-trips the graph through serialization after
every pass (``serialize``), continuing with the copy, which catches a pass that keeps state
between runs or writes params the serializer cannot carry. Flags are comma separated:
``NIR_TENSOR_DEBUG=validate,timing,print_after=lower_layouts``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from . import serialize
from .ir import Graph
from .printer import format_graph
from .validate import ValidationError, validate

PassFn = Callable[..., bool]
DEBUG_ENV = "NIR_TENSOR_DEBUG"


class PipelineError(RuntimeError):
    """A pass left an invalid graph, or a debug round trip changed it."""


@dataclass(frozen=True, slots=True)
class Step:
    """One pass with its keyword options; ``note`` says why it sits where it does."""

    fn: PassFn
    options: tuple[tuple[str, Any], ...] = ()
    note: str = ""

    @property
    def name(self) -> str:
        return self.fn.__name__

    def run(self, graph: Graph) -> bool:
        return bool(self.fn(graph, **dict(self.options)))


@dataclass(frozen=True, slots=True)
class Loop:
    """Steps repeated until none makes progress (at most ``max_iterations`` rounds)."""

    steps: tuple[Step, ...]
    note: str = ""
    max_iterations: int = 16


@dataclass(frozen=True, slots=True)
class Pipeline:
    name: str
    steps: tuple[Step | Loop, ...]

    def step_names(self) -> list[str]:
        """Every pass name in order (a pass in a loop once)."""
        names: list[str] = []
        for s in self.steps:
            names += [x.name for x in s.steps] if isinstance(s, Loop) else [s.name]
        return names

    def describe(self) -> str:
        """The pipeline read top to bottom, with options and notes."""
        lines = [f"pipeline {self.name}:"]

        def line(s: Step, indent: str) -> str:
            opts = ", ".join(f"{k}={v!r}" for k, v in s.options)
            text = f"{indent}{s.name}({opts})"
            return text + (f"  # {s.note}" if s.note else "")

        for s in self.steps:
            if isinstance(s, Loop):
                lines.append("  loop:" + (f"  # {s.note}" if s.note else ""))
                lines += [line(x, "    ") for x in s.steps]
            else:
                lines.append(line(s, "  "))
        return "\n".join(lines)


def step(fn: PassFn, /, note: str = "", **options: Any) -> Step:
    """A pipeline step: ``step(lower_fc_to_conv, factorize=True, note="...")``."""
    return Step(fn, tuple(sorted(options.items())), note)


def loop(*steps: Step, note: str = "", max_iterations: int = 16) -> Loop:
    return Loop(tuple(steps), note, max_iterations)


@dataclass(frozen=True, slots=True)
class DebugFlags:
    validate: bool = False
    print_after: frozenset[str] = frozenset()
    timing: bool = False
    serialize: bool = False

    @classmethod
    def parse(cls, text: str) -> DebugFlags:
        """Flags from ``NIR_TENSOR_DEBUG`` text; unknown flags warn and are ignored."""
        values: dict[str, Any] = {"print_after": set()}
        for item in filter(None, (x.strip() for x in text.split(","))):
            key, _, arg = item.partition("=")
            if key == "print_after" and arg:
                values["print_after"].add(arg)
            elif key in ("validate", "timing", "serialize") and not arg:
                values[key] = True
            else:
                warnings.warn(f"{DEBUG_ENV}: unknown flag '{item}'", stacklevel=2)
        values["print_after"] = frozenset(values["print_after"])
        return cls(**values)

    def prints_after(self, name: str) -> bool:
        return name in self.print_after or "all" in self.print_after


# Read once, at import: the only place the variable is read.
DEBUG = DebugFlags.parse(os.environ.get(DEBUG_ENV, ""))


@dataclass(frozen=True, slots=True)
class PassRun:
    """One run of one step."""

    name: str
    seconds: float
    progress: bool


@dataclass(frozen=True, slots=True)
class PassTiming:
    name: str
    runs: int
    progress_runs: int
    seconds: float


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """The graph after the pipeline (use it: ``serialize`` replaces the graph) and every run."""

    graph: Graph
    runs: tuple[PassRun, ...] = field(default=())
    stopped_after: str | None = None

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.runs)

    @property
    def progress(self) -> bool:
        return any(r.progress for r in self.runs)

    def timings(self) -> list[PassTiming]:
        """Per pass name, in first-run order: run count, runs with progress, total time."""
        order: dict[str, list[PassRun]] = {}
        for r in self.runs:
            order.setdefault(r.name, []).append(r)
        return [
            PassTiming(name, len(rs), sum(r.progress for r in rs), sum(r.seconds for r in rs))
            for name, rs in order.items()
        ]

    def format_timing(self) -> str:
        lines = [f"{'pass':<32} {'runs':>4} {'progress':>8} {'ms':>9}"]
        for t in self.timings():
            lines.append(f"{t.name:<32} {t.runs:>4} {t.progress_runs:>8} {t.seconds * 1e3:>9.2f}")
        lines.append(f"{'total':<32} {len(self.runs):>4} {'':>8} {self.seconds * 1e3:>9.2f}")
        return "\n".join(lines)


class _Stop(Exception):
    pass


@dataclass(slots=True)
class _Runner:
    graph: Graph
    debug: DebugFlags
    out: TextIO
    stop_after: str | None
    runs: list[PassRun] = field(default_factory=list)

    def run_step(self, s: Step) -> bool:
        t0 = time.perf_counter()
        try:
            progress = s.run(self.graph)
        except (AssertionError, ValidationError) as e:
            raise PipelineError(f"pass {s.name}: {e}") from e
        self.runs.append(PassRun(s.name, time.perf_counter() - t0, progress))
        if self.debug.validate:
            try:
                validate(self.graph)
            except ValidationError as e:
                raise PipelineError(f"after pass {s.name}: {e}") from e
        if self.debug.serialize:
            self.graph = _round_trip(self.graph, s.name)
        if self.debug.prints_after(s.name):
            state = "progress" if progress else "no progress"
            print(f"nir_tensor: after {s.name} ({state})", file=self.out)
            print(format_graph(self.graph), file=self.out)
        if s.name == self.stop_after:
            raise _Stop
        return progress

    def run_loop(self, group: Loop) -> bool:
        any_progress = False
        for _ in range(group.max_iterations):
            progress = False
            for s in group.steps:
                progress |= self.run_step(s)
            any_progress |= progress
            if not progress:
                return any_progress
        names = ", ".join(s.name for s in group.steps)
        raise PipelineError(f"loop ({names}) still makes progress after {group.max_iterations}")


def _round_trip(graph: Graph, name: str) -> Graph:
    before = format_graph(graph)
    copy, _ = serialize.loads(serialize.dumps(graph))
    if format_graph(copy) != before:
        raise PipelineError(f"after pass {name}: the graph does not survive serialization")
    return copy


def run_pipeline(
    graph: Graph,
    pipeline: Pipeline | Sequence[Step | Loop],
    *,
    debug: DebugFlags | None = None,
    stop_after: str | None = None,
    out: TextIO | None = None,
) -> PipelineResult:
    """Run ``pipeline`` on ``graph`` (changed in place) and return the result and timings.

    ``stop_after`` ends the run after the first run of the named pass (what ``teflon graph
    --after`` draws). Debug output goes to ``out`` (stderr by default).
    """
    if not isinstance(pipeline, Pipeline):
        pipeline = Pipeline("anonymous", tuple(pipeline))
    if stop_after is not None and stop_after not in pipeline.step_names():
        known = ", ".join(dict.fromkeys(pipeline.step_names()))
        raise ValueError(f"pipeline {pipeline.name} has no pass '{stop_after}' (passes: {known})")
    debug = DEBUG if debug is None else debug
    runner = _Runner(graph, debug, out or sys.stderr, stop_after)
    if debug.validate:
        try:
            validate(graph)
        except ValidationError as e:
            raise PipelineError(f"before pipeline {pipeline.name}: {e}") from e
    stopped = None
    try:
        for s in pipeline.steps:
            runner.run_loop(s) if isinstance(s, Loop) else runner.run_step(s)
    except _Stop:
        stopped = stop_after
    result = PipelineResult(runner.graph, tuple(runner.runs), stopped)
    if debug.timing:
        print(f"nir_tensor: pipeline {pipeline.name} timing", file=runner.out)
        print(result.format_timing(), file=runner.out)
    return result


def with_options(s: Step, **options: Any) -> Step:
    """A copy of a step with some options changed (for a driver variant of a shared step)."""
    merged = dict(s.options) | options
    return dataclasses.replace(s, options=tuple(sorted(merged.items())))


__all__ = [
    "DEBUG",
    "DEBUG_ENV",
    "DebugFlags",
    "Loop",
    "PassRun",
    "PassTiming",
    "Pipeline",
    "PipelineError",
    "PipelineResult",
    "Step",
    "loop",
    "run_pipeline",
    "step",
    "with_options",
]
