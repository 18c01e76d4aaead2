"""Named lowering pipelines the reference device can run before evaluating.

``teflon check MODEL --device reference:<name>`` compiles every partition, runs pipeline
``<name>`` over its nir_tensor graph and evaluates the lowered graph exactly. Compared with
plain ``reference`` this checks, on real models, that a pipeline keeps the results: an exact
pipeline must stay bit-exact, a bounded one within its bound.

The table maps a name to ``"module:attribute"`` so the reference device imports a driver only
when its pipeline is asked for, and a driver that is not there yet simply has no entry in the
device list. A driver adds its pipeline with one line here.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType

from ...nir_tensor.pipeline import Pipeline

PIPELINES = MappingProxyType(
    {
        "all-exact": "mesa_npu.nir_tensor.pipelines:ALL_EXACT",
        "all": "mesa_npu.nir_tensor.pipelines:ALL",
        "etnaviv": "mesa_npu.drivers.etnaviv.ml:PIPELINE",
        "etnaviv-v8": "mesa_npu.drivers.etnaviv.ml:PIPELINE_V8",
        "rocket": "mesa_npu.drivers.rocket.ml:PIPELINE",
    }
)


def load_pipeline(name: str) -> Pipeline | None:
    """The pipeline called ``name``, or None when it (or its driver) does not exist."""
    target = PIPELINES.get(name)
    if target is None:
        return None
    module, _, attribute = target.partition(":")
    try:
        pipeline = getattr(importlib.import_module(module), attribute, None)
    except ImportError:
        return None
    return pipeline if isinstance(pipeline, Pipeline) else None


def available() -> list[str]:
    return [name for name in PIPELINES if load_pipeline(name) is not None]
