"""The suite table and the deterministic CI sample of each suite.

The sample spreads over the parameter space in two steps:

1. *coverage*: for every parameter value that occurs in the suite, the cheapest case having it
   (so ``size 112`` and ``oc 256`` each run at least once, on their smallest partner values);
2. *stride*: every k-th case of the suite's cases sorted by ID, among those whose cost fits
   the suite's per-case budget, so combinations are sampled too.

Both steps depend only on the case list, so the sample is the same on every machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from . import activation, conv, ops
from .common import Case


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    cases: Callable[[], list[Case]]
    sample_size: int  # stride-sampled cases in the CI sample (coverage cases come on top)
    sample_cost: int  # largest cost (MACs or elements) a stride-sampled case may have
    description: str
    uncovered: tuple[str, ...] = ()  # parameters the sample need not cover value by value

    def full(self) -> list[Case]:
        return sorted(self.cases(), key=lambda c: c.id)

    def sample(self) -> list[Case]:
        return ci_sample(self.full(), self.sample_size, self.sample_cost, self.uncovered)


# Budgets: the whole default sample runs in well under a minute on the reference device (2
# cores), leaving room in the ~2 minute budget for slower devices; the cost caps keep the
# convolutions to ~0.05 s a case. The small suites run every case.
SUITES = (
    Suite("conv", conv.conv_cases, 240, 100_000_000, "Mesa Conv2D sweep, u8 and i8 per-channel"),
    Suite("convx", conv.convx_cases, 48, 100_000, "dilation, strides, activations, multiplier"),
    Suite("dwconv", conv.dwconv_cases, 80, 10_000_000, "Mesa DepthwiseConv2D sweep"),
    Suite("add", conv.add_cases, 120, 100_000_000, "Mesa Add: two convs feeding an ADD"),
    Suite(
        "addquant", conv.addquant_cases, 20, 10_000, "Mesa AddQuant: differing scales", ("seed",)
    ),
    Suite("fc", conv.fc_cases, 24, 20_000_000, "Mesa FullyConnected sweep"),
    Suite("elementwise", ops.elementwise_cases, 24, 100_000, "plain ADD, SUB, MUL"),
    Suite("pool", ops.pool_cases, 48, 100_000, "average and max pooling"),
    Suite("concat", ops.concat_cases, 16, 100_000, "concatenation, same or mixed quant"),
    Suite("split", ops.split_cases, 6, 100_000, "split into equal parts"),
    Suite("pad", ops.pad_cases, 6, 100_000, "constant padding with the zero point"),
    Suite("reshape", ops.reshape_cases, 4, 100_000, "reshape across ranks"),
    Suite("transpose", ops.transpose_cases, 6, 100_000, "transpose, rank 3 and 4"),
    Suite("slice", ops.slice_cases, 6, 100_000, "strided slice with masks"),
    Suite("resize", ops.resize_cases, 24, 100_000, "nearest and bilinear resize"),
    Suite("mean", activation.mean_cases, 24, 100_000, "mean over axes"),
    Suite("softmax", activation.softmax_cases, 6, 100_000, "softmax"),
    Suite("logistic", partial(activation.unary_cases, "logistic"), 4, 100_000, "logistic"),
    Suite("tanh", partial(activation.unary_cases, "tanh"), 4, 100_000, "tanh"),
    Suite("hard_swish", partial(activation.unary_cases, "hard_swish"), 4, 100_000, "hard-swish"),
    Suite("relu", partial(activation.unary_cases, "relu"), 6, 100_000, "relu, relu6, relu1"),
    Suite("quantize", activation.quantize_cases, 4, 100_000, "requantize u8/i8"),
)
SUITE_NAMES = tuple(s.name for s in SUITES)


def find_suite(name: str) -> Suite:
    for suite in SUITES:
        if suite.name == name:
            return suite
    raise ValueError(f"unknown suite '{name}' (known: {', '.join(SUITE_NAMES)})")


def ci_sample(
    cases: Sequence[Case], size: int, max_cost: int, uncovered: Sequence[str] = ()
) -> list[Case]:
    """Coverage picks plus a fixed stride through the affordable cases (see module doc)."""
    chosen: dict[str, Case] = {}
    cheapest: dict[tuple[str, object], Case] = {}
    for case in cases:
        for key in case.params():
            if key[0] in uncovered:
                continue
            best = cheapest.get(key)
            if best is None or (case.cost, case.id) < (best.cost, best.id):
                cheapest[key] = case
    for case in sorted(cheapest.values(), key=lambda c: c.id):
        chosen.setdefault(case.id, case)
    affordable = [c for c in cases if c.cost <= max_cost]
    if affordable and size > 0:
        step = max(1, len(affordable) // size)
        for case in affordable[step // 2 :: step][:size]:
            chosen.setdefault(case.id, case)
    return sorted(chosen.values(), key=lambda c: c.id)


def select(
    names: Sequence[str] | None = None, *, full: bool = False
) -> list[tuple[Suite, list[Case]]]:
    """The chosen suites (all by default) with their sample or full case list."""
    suites = [find_suite(n) for n in names] if names else list(SUITES)
    return [(s, s.full() if full else s.sample()) for s in suites]
