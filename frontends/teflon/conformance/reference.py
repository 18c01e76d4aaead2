"""Expected outputs of a case from LiteRT's reference kernels, with an optional disk cache.

As Mesa's ``TEFLON_ENABLE_CACHE`` does, the cache keeps the model, its inputs and the CPU
outputs per case; it is keyed by the case ID and :data:`GENERATOR_VERSION`, lives in
``$XDG_CACHE_HOME/mesa_npu/conformance`` (or the directory the variable names) and is off unless
the caller passes a directory (:func:`cache_from_env` reads the variable once).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import litert
from .common import GENERATOR_VERSION, Case

CACHE_VARIABLE = "TEFLON_ENABLE_CACHE"


@dataclass(frozen=True, slots=True)
class Expected:
    """A case's model bytes, its inputs and BUILTIN_REF's outputs, keyed by tensor index."""

    model: bytes
    inputs: Mapping[int, np.ndarray]
    outputs: Mapping[int, np.ndarray]


def cache_from_env() -> Path | None:
    """The cache directory named by ``TEFLON_ENABLE_CACHE`` (``1`` = the default place)."""
    value = os.environ.get(CACHE_VARIABLE, "")
    if value in ("", "0"):
        return None
    if value == "1":
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        return Path(base) / "mesa_npu" / "conformance"
    return Path(value)


def _cache_path(cache: Path, case: Case) -> Path:
    return cache / f"v{GENERATOR_VERSION}" / f"{case.id}.npz"


def _load(path: Path) -> Expected | None:
    try:
        with np.load(path) as z:
            model = z["model"].tobytes()
            inputs = {int(k[3:]): z[k] for k in z.files if k.startswith("in_")}
            outputs = {int(k[4:]): z[k] for k in z.files if k.startswith("out_")}
    except (OSError, ValueError, KeyError):  # a damaged entry is recomputed
        return None
    return Expected(model, inputs, outputs)


def _store(path: Path, exp: Expected) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"model": np.frombuffer(exp.model, np.uint8)}
    arrays |= {f"in_{i}": v for i, v in exp.inputs.items()}
    arrays |= {f"out_{i}": v for i, v in exp.outputs.items()}
    # Written beside the target and renamed, so parallel workers never read half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def compute_expected(case: Case, model: bytes | None = None) -> Expected:
    """Run the case (``model``: its already built bytes) on LiteRT BUILTIN_REF with its seeded
    inputs."""
    model = case.build() if model is None else model
    it = litert.interpreter(model, "ref")
    inputs = litert.random_inputs(it, case.input_seed)
    litert.set_inputs(it, inputs)
    litert.invoke(it, case.id)
    outputs = {d["index"]: np.array(it.get_tensor(d["index"])) for d in it.get_output_details()}
    return Expected(model, inputs, outputs)


def cached(case: Case, cache: Path | None) -> Expected | None:
    """The cache's entry for the case, if there is one."""
    if cache is None:
        return None
    path = _cache_path(cache, case)
    return _load(path) if path.exists() else None


def expected(case: Case, cache: Path | None = None, model: bytes | None = None) -> Expected:
    """The case's expected outputs, from the cache when one is given and holds them."""
    hit = cached(case, cache)
    if hit is not None:
        return hit
    exp = compute_expected(case, model)
    if cache is not None:
        _store(_cache_path(cache, case), exp)
    return exp
