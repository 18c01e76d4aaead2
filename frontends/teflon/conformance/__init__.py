"""The conformance generator: single-op and small-graph ``.tflite`` cases and their suites.

Mirrors Mesa's ``src/gallium/targets/teflon/test_teflon.cpp`` (brief ``teflon-gallium.md``
§3): models written through the TFLite schema object API (no converter), deterministic seeds,
parameter-named case IDs, expected outputs from LiteRT's reference kernels, and sweeps at least
as wide as Mesa's (Conv2D, DepthwiseConv2D, Add, AddQuant, FullyConnected) plus one suite per
other operation. ``suites`` holds the table and the CI sample, ``reference`` the expected
outputs and their cache; ``mesa_npu.frontends.teflon.sweep`` runs cases on a device.
"""

from .common import GENERATOR_VERSION, Case, Variant
from .reference import Expected, cache_from_env, cached, compute_expected, expected
from .suites import SUITE_NAMES, SUITES, Suite, find_suite, select

__all__ = [
    "GENERATOR_VERSION",
    "SUITES",
    "SUITE_NAMES",
    "Case",
    "Expected",
    "Suite",
    "Variant",
    "cache_from_env",
    "cached",
    "compute_expected",
    "expected",
    "find_suite",
    "select",
]
