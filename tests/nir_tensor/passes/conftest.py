"""Hypothesis settings for the pass tests: a short deterministic run by default, a long random
one with ``--full-sweep``. Test modules use ``settings(settings.get_profile(PROFILE))``."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

PROFILE = "nir_tensor.passes"


def pytest_configure(config: pytest.Config) -> None:
    full = config.getoption("--full-sweep", default=False)
    settings.register_profile(
        PROFILE,
        max_examples=200 if full else 12,
        deadline=None,
        derandomize=not full,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
