"""What every conformance case shares: variants, seeds, and quantization picks.

A case is a frozen record whose fields are its parameters; its ``id`` spells them all out
(``conv-in8x8-k3-ic32-oc16-s2-same-u8``) so a fails file reads on its own, and ``build()``
writes the ``.tflite`` bytes through :class:`ModelBuilder` (the schema object API, no
converter). Random data follows Mesa's test_teflon (``src/gallium/targets/teflon``, brief
``teflon-gallium.md`` §3): uint8 weights in 0..255, int32 biases in ±20000, inputs over the
whole integer range. Every random draw comes from a generator seeded by the case ID, so a case
is the same bytes on every run and independent of which other cases run.

Output quantization is picked from the accumulator's distribution (:func:`range_quant`), so the
outputs use most of the integer range instead of saturating to a constant.
"""

from __future__ import annotations

import enum
import zlib
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from ....gallium.tensor import ElementType
from ..writer import ModelBuilder

# Bump when any case's bytes, inputs or quantization change: it keys the expected-output cache.
GENERATOR_VERSION = 1

# Mesa test_teflon's random bias range (brief §3).
BIAS_RANGE = 20000
# Standard deviations either side of the mean that an output range covers; 3 keeps ~99.7% of a
# normal accumulator inside the integer range.
RANGE_SIGMAS = 3.0


class Variant(enum.Enum):
    """Data type of a case. Value: (ID suffix, activation type, per-channel weights)."""

    U8 = ("u8", ElementType.UINT8, False)  # uint8, per-tensor everything (Mesa's own variant)
    I8 = ("i8", ElementType.INT8, False)  # int8 per-tensor (operations without weights)
    I8PC = ("i8pc", ElementType.INT8, True)  # int8 activations, per-channel symmetric weights

    def __init__(self, suffix: str, dtype: ElementType, per_channel: bool) -> None:
        self.suffix = suffix
        self.dtype = dtype
        self.per_channel = per_channel

    @property
    def qmin(self) -> int:
        return self.dtype.qmin

    @property
    def qmax(self) -> int:
        return self.dtype.qmax


WEIGHTED = (Variant.U8, Variant.I8PC)
UNWEIGHTED = (Variant.U8, Variant.I8)


@dataclass(frozen=True, slots=True)
class Q:
    """Per-tensor quantization of one activation tensor."""

    scale: float
    zero_point: int

    def kwargs(self) -> dict:
        return {"scale": self.scale, "zero_point": self.zero_point}


class Case:
    """Base of every case record (subclasses are frozen dataclasses with the parameters)."""

    __slots__ = ()
    suite: ClassVar[str]

    @property
    def id(self) -> str:
        raise NotImplementedError

    @property
    def cost(self) -> int:
        """A work estimate (multiply-accumulates or elements) used to pick the CI sample."""
        raise NotImplementedError

    def build(self) -> bytes:
        raise NotImplementedError

    def params(self) -> tuple[tuple[str, object], ...]:
        return tuple((f.name, getattr(self, f.name)) for f in fields(self))

    def rng(self, stream: int = 0) -> np.random.Generator:
        """The case's random generator, seeded by its ID (``stream`` separates uses)."""
        return np.random.default_rng([zlib.crc32(self.id.encode()), stream])

    @property
    def input_seed(self) -> int:
        """Seed of the case's inputs (``litert.random_inputs``)."""
        return zlib.crc32(self.id.encode()) ^ 0x5EED

    def __str__(self) -> str:
        return self.id


def shape_id(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def input_stats(dtype: ElementType, zero_point: int) -> tuple[float, float]:
    """Mean and variance of ``x - zero_point`` for x uniform over the whole integer range."""
    n = dtype.qmax - dtype.qmin + 1
    return (dtype.qmin + dtype.qmax) / 2 - zero_point, (n * n - 1) / 12


def range_quant(variant: Variant, mean: float, std: float) -> Q:
    """Quantization whose integer range covers ``mean ± RANGE_SIGMAS·std`` and 0 (real units)."""
    std = max(std, abs(mean) * 1e-3, 1e-6)
    # TFLite represents real 0 exactly, so the range always includes it.
    lo, hi = min(mean - RANGE_SIGMAS * std, 0.0), max(mean + RANGE_SIGMAS * std, 0.0)
    scale = float(np.float32((hi - lo) / (variant.qmax - variant.qmin)))
    zero_point = int(np.clip(round(variant.qmin - lo / scale), variant.qmin, variant.qmax))
    return Q(scale, zero_point)


def activation_quant(variant: Variant, rng: np.random.Generator, span: float = 8.0) -> Q:
    """A random activation quantization covering about ``span`` real units, zero inside."""
    levels = variant.qmax - variant.qmin
    scale = float(np.float32(span / levels * rng.uniform(0.5, 1.5)))
    mid = (variant.qmin + variant.qmax) // 2
    zero_point = int(mid + rng.integers(-levels // 4, levels // 4, endpoint=True))
    return Q(scale, zero_point)


def quant_stats(variant: Variant, q: Q) -> tuple[float, float]:
    """Real mean and standard deviation of a tensor uniform over its integer range."""
    mean, var = input_stats(variant.dtype, q.zero_point)
    return q.scale * mean, q.scale * float(np.sqrt(var))


@dataclass(frozen=True, slots=True)
class Weights:
    """Quantized weights with their quantization, and the bias that goes with them."""

    data: np.ndarray
    scale: np.ndarray  # one per output channel (all equal for per-tensor)
    zero_point: int
    bias: np.ndarray  # int32

    @property
    def per_channel(self) -> bool:
        return bool(np.any(self.scale != self.scale[0]))


def make_weights(
    variant: Variant, rng: np.random.Generator, shape: tuple[int, ...], axis: int
) -> Weights:
    """Weights as Mesa draws them (uint8 0..255) or per-channel symmetric int8, plus bias.

    Per-channel scales spread over a factor of 16 so each channel gets its own multiplier.
    """
    channels = shape[axis]
    if variant.per_channel:
        data = rng.integers(-127, 127, shape, endpoint=True).astype(np.int8)
        scale = (0.01 * 2.0 ** rng.uniform(-2, 2, channels)).astype(np.float32)
        zero_point = 0
    else:
        data = rng.integers(0, 255, shape, endpoint=True).astype(np.uint8)
        scale = np.full(channels, rng.uniform(0.002, 0.02), dtype=np.float32)
        # Near the weights' mean, so the accumulator's offset does not dwarf its spread.
        zero_point = int(rng.integers(112, 144, endpoint=True))
    bias = rng.integers(-BIAS_RANGE, BIAS_RANGE, channels, endpoint=True).astype(np.int32)
    return Weights(data, scale, zero_point, bias)


def accumulator_quant(variant: Variant, in_q: Q, w: Weights, axis: int) -> Q:
    """Output quantization from the accumulator of a conv/FC fed uniform random inputs.

    Per output channel ``c``, ``acc = Σ (x - zx)(w - zw) + bias``; with x uniform and
    independent, its mean is ``μx·Σ(w - zw) + bias`` and its variance ``σx²·Σ(w - zw)²``.
    The real output mixes the channels (``in_scale·w_scale[c]·acc``); the range covers the
    mixture's mean ± 3σ, so channel offsets and spread both fit.
    """
    mu_x, var_x = input_stats(variant.dtype, in_q.zero_point)
    centred = np.moveaxis(w.data.astype(np.float64) - w.zero_point, axis, 0)
    centred = centred.reshape(centred.shape[0], -1)
    mean_c = mu_x * centred.sum(axis=1) + w.bias
    var_c = var_x * (centred**2).sum(axis=1)
    real = in_q.scale * w.scale.astype(np.float64)
    mean = float(np.mean(real * mean_c))
    var = float(np.mean(real**2 * (var_c + mean_c**2)) - mean**2)
    return range_quant(variant, mean, float(np.sqrt(max(var, 0.0))))


def add_weights(
    b: ModelBuilder, variant: Variant, w: Weights, in_q: Q, axis: int
) -> tuple[int, int]:
    """Constant weight and bias tensors; the bias scale is ``in_scale·w_scale`` (TFLite checks)."""
    wdtype = ElementType.INT8 if variant.per_channel else ElementType.UINT8
    scale = w.scale if w.per_channel else float(w.scale[0])
    wt = b.tensor(
        w.data.shape, wdtype, scale=scale, zero_point=w.zero_point, axis=axis, data=w.data
    )
    bias_scale = (np.float64(in_q.scale) * w.scale.astype(np.float64)).astype(np.float32)
    bt = b.tensor(
        w.bias.shape,
        ElementType.INT32,
        scale=bias_scale if w.per_channel else float(bias_scale[0]),
        zero_point=0,
        data=w.bias,
    )
    return wt, bt
