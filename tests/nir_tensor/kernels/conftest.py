"""The exactness oracle for kernel tests: LiteRT BUILTIN_REF against the reference device.

``oracle(model_bytes, seed)`` maps every operator through the frontend, asks the reference device
whether it supports each one, runs the subgraph (serialized and deserialized, as a user would) on
the same random inputs LiteRT gets, asserts every output element equal, and returns how many
were compared. ``kit`` writes single-operator models. Hypothesis runs a short deterministic
profile by default and a long random one with ``--full-sweep``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from mesa_npu.frontends.teflon import litert
from mesa_npu.frontends.teflon.mapping import map_operation
from mesa_npu.frontends.teflon.tflite import parse_model
from mesa_npu.frontends.teflon.writer import ModelBuilder
from mesa_npu.gallium.loader import open_device
from mesa_npu.gallium.operation import PipeMlOperation
from mesa_npu.gallium.tensor import ElementType

Pairs = list[tuple[np.ndarray, np.ndarray]]
PROFILE = "nir_tensor.kernels"  # test modules: settings(settings.get_profile("nir_tensor.kernels"))


def pytest_configure(config: pytest.Config) -> None:
    full = config.getoption("--full-sweep", default=False)
    settings.register_profile(
        PROFILE,
        max_examples=400 if full else 30,
        deadline=None,
        derandomize=not full,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def run_both(model: bytes, seed: int = 0) -> Pairs:
    it = litert.interpreter(model, "ref")
    inputs = litert.random_inputs(it, seed)
    litert.set_inputs(it, inputs)
    it.invoke()
    want = {d["index"]: it.get_tensor(d["index"]) for d in it.get_output_details()}
    parsed = parse_model(model)
    ops = []
    for op in parsed.ops:
        mapped = map_operation(op, parsed)
        assert isinstance(mapped, PipeMlOperation), f"op {op.index} {op.name}: {mapped}"
        ops.append(mapped)
    device = open_device("reference")
    for op in ops:
        reason = device.operation_supported(op)
        assert reason is None, f"op {op.index} {op.short_name}: {reason}"
    blob = device.subgraph_create(ops).serialize()
    ctx = device.create_context()
    try:
        sub = ctx.subgraph_deserialize(blob)
        ctx.subgraph_invoke(sub, {i: inputs[i] for i in parsed.inputs})
        got = dict(zip((t.index for t in sub.outputs), ctx.subgraph_read_outputs(sub), strict=True))
    finally:
        ctx.destroy()
    return [(got[i].reshape(want[i].shape), want[i]) for i in parsed.outputs]


def assert_exact(pairs: Pairs, label: str = "") -> int:
    """Every element equal; returns how many were compared."""
    count = 0
    for got, want in pairs:
        assert got.dtype == want.dtype, f"{label}: dtype {got.dtype} != {want.dtype}"
        diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
        bad = int((diff != 0).sum())
        assert bad == 0, f"{label}: {bad} of {diff.size} differ, max {diff.max()} LSB"
        count += diff.size
    return count


def check(model: bytes, seed: int = 0, label: str = "") -> int:
    return assert_exact(run_both(model, seed), label)


@pytest.fixture
def oracle() -> Callable[..., int]:
    return check


def quant_of(rng: np.random.Generator, dtype: ElementType) -> tuple[float, int]:
    """A plausible activation (scale, zero point) for ``dtype``."""
    scale = float(np.float32(rng.uniform(0.005, 0.1)))
    if dtype is ElementType.INT16:
        return float(np.float32(scale / 256)), 0
    return scale, int(rng.integers(dtype.qmin + 20, dtype.qmax - 20, endpoint=True))


def scale_of(value: float) -> float:
    """A scale that survives the float32 round trip through the model unchanged."""
    return float(np.float32(value))


def single_op(
    builtin: str,
    inputs: list[dict],
    outputs: list[dict],
    opts=None,
    version: int = 1,
) -> bytes:
    """A one-operator model; each tensor is a dict of ModelBuilder.tensor keyword arguments
    (``shape``, ``dtype`` and optional ``scale``, ``zero_point``, ``axis``, ``data``)."""
    b = ModelBuilder()
    ins = [b.tensor(**spec) if spec is not None else -1 for spec in inputs]
    outs = [b.tensor(**spec) for spec in outputs]
    b.op(builtin, ins, outs, opts, version)
    graph_inputs = [
        i for i, s in zip(ins, inputs, strict=True) if s is not None and "data" not in s
    ]
    return b.build(graph_inputs, outs)


@dataclass(frozen=True, slots=True)
class ModelKit:
    """What the kernel tests need to write models (conftest modules cannot be imported)."""

    single_op: Callable[..., bytes]
    quant: Callable[[np.random.Generator, ElementType], tuple[float, int]]
    scale: Callable[[float], float]


@pytest.fixture
def kit() -> ModelKit:
    return ModelKit(single_op, quant_of, scale_of)
