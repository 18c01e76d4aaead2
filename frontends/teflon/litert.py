"""LiteRT as host and oracle: interpreters for BUILTIN_REF (exact), XNNPACK and the default.

Every loading or invoke failure becomes a one-line :class:`ModelError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from .tflite import ModelError

RESOLVERS = {
    "ref": OpResolverType.BUILTIN_REF,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "xnnpack": OpResolverType.AUTO,
}


def interpreter(
    model: str | bytes,
    kind: str = "ref",
    *,
    preserve: bool = False,
    delegates: Sequence | None = None,
    threads: int = 1,
) -> Interpreter:
    """An allocated interpreter of kind ``ref`` (BUILTIN_REF), ``builtin`` or ``xnnpack``."""
    source = {"model_content": model} if isinstance(model, bytes) else {"model_path": model}
    name = "<memory>" if isinstance(model, bytes) else os.path.basename(model)
    try:
        it = Interpreter(
            **source,
            experimental_op_resolver_type=RESOLVERS[kind],
            experimental_preserve_all_tensors=preserve,
            num_threads=threads,
            experimental_delegates=delegates,
        )
        it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{name}: LiteRT cannot load the model: {first}") from None
    return it


def set_inputs(it: Interpreter, inputs: Mapping[int, np.ndarray]) -> None:
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.asarray(inputs[d["index"]]).reshape(d["shape"]))


def invoke(it: Interpreter, name: str = "model") -> None:
    try:
        it.invoke()
    except RuntimeError as e:
        raise ModelError(
            f"{name}: LiteRT invoke failed: {str(e).strip().splitlines()[0]}"
        ) from None


def random_inputs(it: Interpreter, seed: int = 0) -> dict[int, np.ndarray]:
    """Deterministic inputs spanning each input's full integer range."""
    rng = np.random.default_rng(seed)
    out = {}
    for d in it.get_input_details():
        dtype = np.dtype(d["dtype"])
        info = np.iinfo(dtype)
        out[d["index"]] = rng.integers(info.min, info.max, d["shape"], dtype=dtype, endpoint=True)
    return out


def all_tensors(it: Interpreter) -> dict[int, np.ndarray]:
    """Every tensor of an interpreter made with ``preserve=True`` (copies)."""
    out = {}
    for d in it.get_tensor_details():
        try:
            out[d["index"]] = np.array(it.get_tensor(d["index"]))
        except ValueError:  # tensors without data (e.g. unused optional inputs)
            continue
    return out
