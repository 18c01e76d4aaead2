"""Cases that compute a function of each value or reduce: activations, softmax, mean, quantize.

Logistic, tanh and softmax outputs use the fixed quantization TFLite requires (scale 1/256 or
1/128, see ``activations.cc``); the other outputs cover the function's range over the input's
representable values.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from ..writer import options
from .common import UNWEIGHTED, Case, Q, Variant, activation_quant, quant_stats, range_quant
from .common import shape_id as _sid
from .ops import single_op, span_quant

# TFLite's fixed output quantization (activations.cc): (scale, zero point) per variant.
FIXED_OUTPUT = {
    "logistic": {Variant.U8: Q(1 / 256, 0), Variant.I8: Q(1 / 256, -128)},
    "softmax": {Variant.U8: Q(1 / 256, 0), Variant.I8: Q(1 / 256, -128)},
    "tanh": {Variant.U8: Q(1 / 128, 128), Variant.I8: Q(1 / 128, 0)},
}


def _hard_swish(x: np.ndarray) -> np.ndarray:
    return x * np.clip(x + 3, 0, 6) / 6


# op -> (builtin, suite, real input span, function for the output range or None when fixed)
UNARY = {
    "logistic": ("LOGISTIC", "logistic", 10.0, None),
    "tanh": ("TANH", "tanh", 4.0, None),
    "hard_swish": ("HARD_SWISH", "hard_swish", 12.0, _hard_swish),
    "relu": ("RELU", "relu", 16.0, lambda x: np.maximum(x, 0)),
    "relu6": ("RELU6", "relu", 16.0, lambda x: np.clip(x, 0, 6)),
    "relu_n1_to_1": ("RELU_N1_TO_1", "relu", 4.0, lambda x: np.clip(x, -1, 1)),
}
UNARY_SHAPES = ((1, 8, 8, 16), (1, 3, 5, 7))


@dataclass(frozen=True, slots=True)
class UnaryCase(Case):
    op: str  # a key of UNARY
    shape: tuple[int, ...]
    variant: Variant

    @property
    def suite(self) -> str:
        return UNARY[self.op][1]

    @property
    def id(self) -> str:
        return f"{self.op.replace('_', '')}-in{_sid(self.shape[1:])}-{self.variant.suffix}"

    @property
    def cost(self) -> int:
        return int(np.prod(self.shape))

    def build(self) -> bytes:
        builtin, _, span, fn = UNARY[self.op]
        v = self.variant
        in_q = activation_quant(v, self.rng(1), span)
        if fn is None:
            out_q = FIXED_OUTPUT[self.op][v]
        else:
            x = in_q.scale * (np.arange(v.qmin, v.qmax + 1) - in_q.zero_point)
            y = fn(x)
            out_q = span_quant(v, float(y.min()), float(y.max()))
        opts = options(builtin) if builtin == "HARD_SWISH" else None
        return single_op(self, builtin, self.shape, in_q, self.shape, out_q, opts)


def unary_cases(suite: str) -> list[UnaryCase]:
    ops = [op for op, row in UNARY.items() if row[1] == suite]
    return [UnaryCase(op, s, v) for v, op, s in product(UNWEIGHTED, ops, UNARY_SHAPES)]


@dataclass(frozen=True, slots=True)
class SoftmaxCase(Case):
    suite = "softmax"
    shape: tuple[int, ...]
    beta: float
    variant: Variant

    @property
    def id(self) -> str:
        return f"softmax-in{_sid(self.shape[1:])}-beta{self.beta}-{self.variant.suffix}"

    @property
    def cost(self) -> int:
        return int(np.prod(self.shape))

    def build(self) -> bytes:
        in_q = activation_quant(self.variant, self.rng(1), 4.0)
        out_q = FIXED_OUTPUT["softmax"][self.variant]
        opts = options("SOFTMAX", beta=self.beta)
        return single_op(self, "SOFTMAX", self.shape, in_q, self.shape, out_q, opts)


def softmax_cases() -> list[SoftmaxCase]:
    return [
        SoftmaxCase(s, beta, v)
        for v, s, beta in product(UNWEIGHTED, ((1, 10), (1, 32), (1, 4, 4, 16)), (1.0, 0.5))
    ]


@dataclass(frozen=True, slots=True)
class MeanCase(Case):
    """MEAN over ``axes`` (NHWC), keeping the reduced dims or not; ``requant`` gives the output
    its own quantization (the spread of a mean of n values shrinks by √n)."""

    suite = "mean"
    shape: tuple[int, ...]
    axes: tuple[int, ...]
    keep: bool
    requant: bool
    variant: Variant

    @property
    def id(self) -> str:
        keep = "keep" if self.keep else "drop"
        q = "requant" if self.requant else "sameq"
        axes = "".join(map(str, self.axes))
        return f"mean-in{_sid(self.shape[1:])}-ax{axes}-{keep}-{q}-{self.variant.suffix}"

    @property
    def cost(self) -> int:
        return int(np.prod(self.shape))

    def build(self) -> bytes:
        v = self.variant
        in_q = activation_quant(v, self.rng(1))
        out_q = in_q
        if self.requant:
            n = int(np.prod([self.shape[a] for a in self.axes]))
            mean, std = quant_stats(v, in_q)
            out_q = range_quant(v, mean, std / np.sqrt(n))
        out = [1 if a in self.axes else d for a, d in enumerate(self.shape)]
        if not self.keep:
            out = [d for a, d in enumerate(self.shape) if a not in self.axes]
        opts = options("MEAN", keepDims=self.keep)
        return single_op(self, "MEAN", self.shape, in_q, tuple(out), out_q, opts, (self.axes,))


def mean_cases() -> list[MeanCase]:
    return [
        MeanCase(s, axes, keep, rq, v)
        for v, s, axes, keep, rq in product(
            UNWEIGHTED,
            ((1, 8, 8, 16), (1, 7, 5, 3)),
            ((1, 2), (1,), (2,), (3,), (1, 2, 3)),
            (True, False),
            (False, True),
        )
    ]


@dataclass(frozen=True, slots=True)
class QuantizeCase(Case):
    """QUANTIZE between integer types (a requantization) to a new scale and zero point."""

    suite = "quantize"
    shape: tuple[int, ...]
    variant: Variant  # input
    out: Variant

    @property
    def id(self) -> str:
        return f"quantize-in{_sid(self.shape[1:])}-{self.variant.suffix}-to-{self.out.suffix}"

    @property
    def cost(self) -> int:
        return int(np.prod(self.shape))

    def build(self) -> bytes:
        rng = self.rng(1)
        in_q = activation_quant(self.variant, rng)
        mean, std = quant_stats(self.variant, in_q)
        # A range 1 to 2.5 times the input's: mostly in range, never a plain copy.
        out_q = range_quant(self.out, mean, std / 3**0.5 * rng.uniform(1.0, 2.5))
        return single_op(
            self, "QUANTIZE", self.shape, in_q, self.shape, out_q, out_variant=self.out
        )


def quantize_cases() -> list[QuantizeCase]:
    return [
        QuantizeCase(s, a, b)
        for a, b, s in product(UNWEIGHTED, UNWEIGHTED, ((1, 8, 8, 16), (1, 1001)))
    ]
