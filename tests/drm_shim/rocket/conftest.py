"""Fixtures of the simulated rocket device tests. The helpers live in ``testkit.py``, loaded here
under the name ``rocket_testkit`` (pytest runs in importlib mode, so test modules cannot import
a sibling file by name)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

_spec = importlib.util.spec_from_file_location(
    "rocket_testkit", Path(__file__).with_name("testkit.py")
)
testkit = importlib.util.module_from_spec(_spec)
sys.modules["rocket_testkit"] = testkit
_spec.loader.exec_module(testkit)


@pytest.fixture
def rk() -> SimpleNamespace:
    """The helpers of testkit.py."""
    return SimpleNamespace(**{n: getattr(testkit, n) for n in testkit.__all__})


@pytest.fixture
def sim():
    return testkit.Sim()
