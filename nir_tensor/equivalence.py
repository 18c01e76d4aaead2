"""Equivalence checking: the exact evaluator before and after a pass (or a pipeline).

``check_pass(graph, pass_fn, **options)`` runs the pass on a copy of ``graph``, validates the
result, checks that the graph's interface (input and output tensors, in order) and every
node's ``origin`` survived, then evaluates both graphs on the same random inputs and asserts
identical integers, or at most ``bound`` LSB apart for a pass that changes rounding by design.
Driver tests use it for their own pipelines (``check_pipeline``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .evaluate import Evaluator
from .ir import Graph, Tensor
from .pipeline import DebugFlags, Loop, Pipeline, Step, run_pipeline
from .validate import validate


class EquivalenceError(AssertionError):
    pass


@dataclass(frozen=True, slots=True)
class Equivalence:
    """How far two graphs' outputs are apart over ``trials`` random inputs."""

    max_lsb: int
    elements: int
    differing: int
    progress: bool = True

    @property
    def exact(self) -> bool:
        return self.max_lsb == 0


def random_inputs(inputs: Sequence[Tensor], rng: np.random.Generator) -> list[np.ndarray]:
    """Uniform values over each input's whole integer range."""
    return [
        rng.integers(
            t.dtype.qmin, t.dtype.qmax, size=t.shape, endpoint=True, dtype=np.int64
        ).astype(t.dtype.numpy)
        for t in inputs
    ]


def compare_graphs(before: Graph, after: Graph, *, trials: int = 3, seed: int = 0) -> Equivalence:
    """Evaluate both graphs on the same random inputs and measure the largest difference."""
    if [t.shape for t in before.inputs] != [t.shape for t in after.inputs]:
        raise EquivalenceError("the graphs' inputs differ")
    rng = np.random.default_rng(seed)
    first, second = Evaluator(before), Evaluator(after)
    worst, elements, differing = 0, 0, 0
    for _ in range(trials):
        values = random_inputs(before.inputs, rng)
        a, b = first.run(values), second.run(values)
        for ta, tb in zip(before.outputs, after.outputs, strict=True):
            x = a[ta].astype(np.int64).reshape(-1)
            y = b[tb].astype(np.int64).reshape(-1)
            if x.shape != y.shape:
                raise EquivalenceError(f"output {ta!r} has {x.size} elements, then {y.size}")
            diff = np.abs(x - y)
            worst = max(worst, int(diff.max(initial=0)))
            elements += diff.size
            differing += int((diff != 0).sum())
    return Equivalence(worst, elements, differing)


def _check_interface(before: Graph, after: Graph) -> None:
    for what, x, y in (
        ("input", before.inputs, after.inputs),
        ("output", before.outputs, after.outputs),
    ):
        if len(x) != len(y) or any(a is not b for a, b in zip(x, y, strict=False)):
            raise EquivalenceError(f"the graph {what} tensors changed: {x} -> {y}")
    if all(n.origin >= 0 for n in before) and any(n.origin < 0 for n in after):
        lost = [n for n in after if n.origin < 0]
        raise EquivalenceError(f"nodes without an origin: {lost}")


def _assert_within(result: Equivalence, bound: int, what: str) -> Equivalence:
    if result.max_lsb > bound:
        raise EquivalenceError(
            f"{what}: {result.differing} of {result.elements} elements differ, "
            f"max {result.max_lsb} LSB > bound {bound}"
        )
    return result


def check_pass(
    graph: Graph,
    pass_fn: Callable[..., bool],
    *,
    bound: int = 0,
    trials: int = 3,
    seed: int = 0,
    expect_progress: bool | None = None,
    **options,
) -> Equivalence:
    """Run ``pass_fn(copy, **options)`` and assert the copy is equivalent to ``graph``."""
    before, after = graph.copy(), graph.copy()
    progress = bool(pass_fn(after, **options))
    name = getattr(pass_fn, "__name__", "pass")
    if expect_progress is not None and progress != expect_progress:
        raise EquivalenceError(f"{name}: progress {progress}, expected {expect_progress}")
    validate(after)
    _check_interface(before, after)
    result = compare_graphs(before, after, trials=trials, seed=seed)
    result = Equivalence(result.max_lsb, result.elements, result.differing, progress)
    return _assert_within(result, bound, name)


def check_pipeline(
    graph: Graph,
    pipeline: Pipeline | Sequence[Step | Loop],
    *,
    bound: int = 0,
    trials: int = 3,
    seed: int = 0,
) -> Equivalence:
    """Run a whole pipeline (validating after every pass) and assert equivalence."""
    before = graph.copy()
    run = run_pipeline(graph.copy(), pipeline, debug=DebugFlags(validate=True))
    _check_interface(before, run.graph)
    result = compare_graphs(before, run.graph, trials=trials, seed=seed)
    result = Equivalence(result.max_lsb, result.elements, result.differing, run.progress)
    name = pipeline.name if isinstance(pipeline, Pipeline) else "pipeline"
    return _assert_within(result, bound, name)


__all__ = [
    "Equivalence",
    "EquivalenceError",
    "check_pass",
    "check_pipeline",
    "compare_graphs",
    "random_inputs",
]
